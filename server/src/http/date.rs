//! The `Date` header and HTTP-dates of files (IMF-fixdate, RFC 9110 section 5.6.7).

use super::cond::secs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `Date` header value, formatted at most once per second.
pub struct DateCache {
    secs: u64,
    text: Vec<u8>,
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            secs: u64::MAX,
            text: Vec::with_capacity(29),
        };
        d.update(SystemTime::now());
        d
    }
}

impl DateCache {
    pub fn update(&mut self, now: SystemTime) {
        let s = secs(now);
        if s != self.secs {
            self.secs = s;
            self.text.clear();
            self.text.extend_from_slice(
                httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(s.min(LAST_HTTP_DATE)))
                    .as_bytes(),
            );
        }
    }

    pub fn get(&self) -> &[u8] {
        &self.text
    }

    pub fn unix_secs(&self) -> u64 {
        self.secs
    }
}

/// 9999-12-31T23:59:59Z, the last instant an HTTP-date can carry. httpdate panics beyond
/// it, and a file's mtime is input: tmpfs and XFS accept mtimes far past year 9999.
pub const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// Append `t` as an IMF-fixdate; times before 1970 or after year 9999 are clamped to the
/// nearest representable date.
pub fn push_http_date(out: &mut Vec<u8>, t: SystemTime) {
    use std::io::Write;
    thread_local! {
        // The last date formatted on this thread: a hot playlist's Last-Modified stays the
        // same for every request until its next version.
        static LAST: std::cell::Cell<(u64, [u8; 29])> =
            const { std::cell::Cell::new((u64::MAX, [0; 29])) };
    }
    let s = secs(t).min(LAST_HTTP_DATE);
    let (last, text) = LAST.get();
    if last == s {
        out.extend_from_slice(&text);
        return;
    }
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{}",
        httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(s))
    );
    if let Ok(text) = <[u8; 29]>::try_from(&out[start..]) {
        LAST.set((s, text));
    }
}
