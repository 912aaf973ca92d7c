//! Optional access log in the combined log format, buffered per worker and reopened when
//! SIGHUP bumps the shared generation (logrotate's `postrotate kill -HUP`).

use crate::http::Request;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct AccessLog {
    path: PathBuf,
    out: BufWriter<File>,
    generation: u64,
    secs: u64,
    stamp: Vec<u8>,
}

fn open(path: &Path) -> io::Result<BufWriter<File>> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, f))
}

/// `10/Oct/2000:13:55:36 +0000` for a Unix time.
pub fn clf_time(secs: u64) -> String {
    corestream_common::date::Civil::from_unix_secs(secs).clf()
}

/// Quote a client-supplied value the way nginx does: `"` `\\` and non-printables escaped.
fn escaped(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

impl AccessLog {
    pub fn open(path: &Path, generation: u64) -> io::Result<AccessLog> {
        Ok(AccessLog {
            path: path.to_path_buf(),
            out: open(path)?,
            generation,
            secs: u64::MAX,
            stamp: Vec::new(),
        })
    }

    /// Reopen the file if SIGHUP was received since we opened it.
    pub fn maybe_reopen(&mut self, generation: u64) {
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let _ = self.out.flush();
        match open(&self.path) {
            Ok(w) => self.out = w,
            Err(e) => eprintln!(
                "corestream: cannot reopen access log {}: {e}",
                self.path.display()
            ),
        }
    }

    pub fn record(
        &mut self,
        now_secs: u64,
        peer: Option<IpAddr>,
        req: Option<&Request<'_>>,
        status: u16,
        bytes: u64,
    ) {
        if now_secs != self.secs {
            self.secs = now_secs;
            self.stamp = clf_time(now_secs).into_bytes();
        }
        let mut line = Vec::with_capacity(256);
        match peer {
            Some(ip) => {
                let _ = write!(line, "{ip}");
            }
            None => line.push(b'-'),
        }
        line.extend_from_slice(b" - - [");
        line.extend_from_slice(&self.stamp);
        line.extend_from_slice(b"] \"");
        match req {
            Some(r) => {
                escaped(&mut line, r.method_str.as_bytes());
                line.push(b' ');
                escaped(&mut line, r.target);
                let _ = write!(line, " HTTP/1.{}", r.minor);
            }
            None => line.push(b'-'),
        }
        let _ = write!(line, "\" {status} {bytes} \"");
        escaped(&mut line, req.and_then(|r| r.referer).unwrap_or(b"-"));
        line.extend_from_slice(b"\" \"");
        escaped(&mut line, req.and_then(|r| r.user_agent).unwrap_or(b"-"));
        line.extend_from_slice(b"\"\n");
        if let Err(e) = self.out.write_all(&line) {
            eprintln!("corestream: access log write failed: {e}");
        }
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(clf_time(971_186_136), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(1_709_208_000), "29/Feb/2024:12:00:00 +0000");
    }
}
