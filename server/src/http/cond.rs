//! Validators and conditional requests (RFC 9110 section 13): the strong ETag of a file and
//! what a GET/HEAD gets given If-Match, If-Unmodified-Since, If-None-Match,
//! If-Modified-Since, Range and If-Range.

use super::{range, trim, Method, Request};
use crate::net::fsys::FileMeta;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest tag: `"` + 4 x 16 hex digits + 3 separators + `"`.
const ETAG_MAX: usize = 69;

/// A strong entity tag, built on the stack: conditional requests are hot (every playlist
/// reload of a player that revalidates).
pub struct ETag {
    buf: [u8; ETAG_MAX],
    len: usize,
}

impl ETag {
    /// Changes whenever the file is replaced (inode), resized or rewritten (mtime).
    pub fn of(meta: &FileMeta) -> ETag {
        let mut t = ETag {
            buf: [0; ETAG_MAX],
            len: 0,
        };
        t.push(b'"');
        t.hex(meta.ino);
        t.push(b'-');
        t.hex(meta.size);
        t.push(b'-');
        t.hex(meta.mtime_sec as u64);
        t.push(b'.');
        t.hex(meta.mtime_nsec as u64);
        t.push(b'"');
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `v` in lowercase hex, no leading zeros: each digit written in its place once (this
    /// runs for every response with validators).
    fn hex(&mut self, v: u64) {
        let digits = (64 - v.leading_zeros()).div_ceil(4).max(1) as usize;
        let out = &mut self.buf[self.len..self.len + digits];
        for (i, d) in out.iter_mut().rev().enumerate() {
            *d = b"0123456789abcdef"[((v >> (4 * i)) & 15) as usize];
        }
        self.len += digits;
    }
}

/// Does an If-None-Match / If-Match list contain our tag? `weak` compares W/ tags too.
fn list_matches(list: &[u8], meta: &FileMeta, weak: bool) -> bool {
    if trim(list) == b"*" {
        return true;
    }
    list.split(|&b| b == b',').any(|t| {
        let t = trim(t);
        let t = match t.strip_prefix(b"W/") {
            Some(stripped) if weak => stripped,
            Some(_) => return false,
            None => t,
        };
        ETag::of(meta).as_bytes() == t
    })
}

fn parse_date(v: &[u8]) -> Option<SystemTime> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
}

pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What to send for a GET/HEAD of an existing file, given the conditional headers
/// (RFC 9110 section 13.2.2 order of evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Full,
    Partial { start: u64, end: u64 },
    NotModified,
    PreconditionFailed,
    Unsatisfiable,
}

/// `now` (Unix seconds) is the Date of the answer: a file modified after it (a wrong clock)
/// was sent with Last-Modified clamped to a Date, so If-Modified-Since cannot vouch for it.
pub fn decide(req: &Request<'_>, meta: &FileMeta, now: u64) -> Decision {
    let mtime = secs(meta.mtime());
    if let Some(v) = req.if_match {
        if !list_matches(v, meta, false) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(t) = req.if_unmodified_since.and_then(parse_date) {
        if mtime > secs(t) {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(v) = req.if_none_match {
        if list_matches(v, meta, true) {
            return Decision::NotModified;
        }
    } else if let Some(t) = req.if_modified_since.and_then(parse_date) {
        if mtime <= secs(t) && mtime <= now {
            return Decision::NotModified;
        }
    }
    if req.method() != Method::Get {
        return Decision::Full;
    }
    let Some(range) = req.range else {
        return Decision::Full;
    };
    if let Some(ir) = req.if_range {
        let still_valid = if ir.starts_with(b"\"") {
            ETag::of(meta).as_bytes() == ir
        } else if ir.starts_with(b"W/") {
            false
        } else {
            parse_date(ir).is_some_and(|t| secs(t) == mtime)
        };
        if !still_valid {
            return Decision::Full;
        }
    }
    match range::evaluate(range, meta.size) {
        range::RangeResult::Full => Decision::Full,
        range::RangeResult::Partial { start, end } => Decision::Partial { start, end },
        range::RangeResult::Unsatisfiable => Decision::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::parsed as req;

    #[test]
    fn conditionals() {
        let meta = FileMeta {
            size: 100,
            ino: 7,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 5,
        };
        let tag = String::from_utf8(ETag::of(&meta).as_bytes().to_vec()).unwrap();
        let lm = httpdate::fmt_http_date(meta.mtime());
        let d = |extra: &str| {
            let s = format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
            let leaked: &'static str = Box::leak(s.into_boxed_str());
            decide(&req(leaked), &meta, u64::MAX)
        };
        assert_eq!(
            d(&format!("If-None-Match: \"x\", {tag}\r\n")),
            Decision::NotModified
        );
        assert_eq!(
            d(&format!("If-None-Match: W/{tag}\r\n")),
            Decision::NotModified
        );
        assert_eq!(d("If-None-Match: \"other\"\r\n"), Decision::Full);
        assert_eq!(
            d(&format!("If-Modified-Since: {lm}\r\n")),
            Decision::NotModified
        );
        assert_eq!(
            d("If-Modified-Since: Thu, 01 Jan 2015 00:00:00 GMT\r\n"),
            Decision::Full
        );
        assert_eq!(d("If-Modified-Since: garbage\r\n"), Decision::Full);
        assert_eq!(d("If-Match: \"nope\"\r\n"), Decision::PreconditionFailed);
        assert_eq!(
            d("Range: bytes=0-9\r\n"),
            Decision::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            d(&format!("Range: bytes=0-9\r\nIf-Range: {tag}\r\n")),
            Decision::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            d("Range: bytes=0-9\r\nIf-Range: \"old\"\r\n"),
            Decision::Full
        );
        assert_eq!(
            d(&format!("Range: bytes=0-9\r\nIf-Range: {lm}\r\n")),
            Decision::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            d("Range: bytes=0-9\r\nIf-Range: Thu, 01 Jan 2015 00:00:00 GMT\r\n"),
            Decision::Full
        );
        assert_eq!(d("Range: bytes=100-\r\n"), Decision::Unsatisfiable);
    }

    #[test]
    fn etag_has_every_field_and_fits() {
        let meta = FileMeta {
            size: u64::MAX,
            ino: u64::MAX,
            mtime_sec: -1,
            mtime_nsec: i64::MAX,
        };
        let t = ETag::of(&meta);
        assert_eq!(t.as_bytes().len(), ETAG_MAX);
        let small = FileMeta {
            size: 0x10,
            ino: 0xab,
            mtime_sec: 1,
            mtime_nsec: 0,
        };
        assert_eq!(ETag::of(&small).as_bytes(), b"\"ab-10-1.0\"");
    }
}
