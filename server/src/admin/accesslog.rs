//! Optional access log, buffered per worker and reopened when SIGHUP bumps the shared
//! generation (logrotate's `postrotate kill -HUP`). Two formats (`--access-log-format`):
//!
//! - `combined`: nginx's combined format, as log tools expect it;
//! - `combined-cmcd`: the same, then the CMCD keys an operator needs as `key=value` fields in
//!   a fixed order, `-` where the player sent none:
//!   `sid="..." cid="..." br=3200 bl=21300 mtp=48100 bs=0 su=0 ot=v rtp=15000`;
//! - `json`: one object per line: `time` (RFC 3339), `remote`, `method`, `target`,
//!   `protocol`, `status`, `bytes`, `referer`, `user_agent`, and `cmcd` with every key the
//!   player sent (numbers, strings, booleans as JSON ones).

use crate::config::LogFormat;
use crate::http::Request;
use crate::qoe::cmcd::{Cmcd, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The CMCD keys the combined format carries, in order.
const COMBINED_KEYS: [&str; 9] = ["sid", "cid", "br", "bl", "mtp", "bs", "su", "ot", "rtp"];

/// One answered request, as logged.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub now_secs: u64,
    pub peer: Option<IpAddr>,
    pub req: Option<&'a Request<'a>>,
    pub status: u16,
    pub bytes: u64,
    pub cmcd: Option<&'a Cmcd>,
}

/// An entry whose body length is known only when the response ends (an object still
/// arriving, sent without a Content-Length): owned copies of what its line needs, recorded
/// with the bytes actually sent once the response is over, however it ends.
pub struct Pending {
    now_secs: u64,
    peer: Option<IpAddr>,
    method: Box<str>,
    target: Box<[u8]>,
    minor: u8,
    referer: Option<Box<[u8]>>,
    user_agent: Option<Box<[u8]>>,
    status: u16,
    cmcd: Option<Cmcd>,
}

impl Pending {
    pub fn of(e: &Entry<'_>) -> Pending {
        let req = e.req;
        Pending {
            now_secs: e.now_secs,
            peer: e.peer,
            method: req.map_or("-", |r| r.method_str).into(),
            target: req.map_or(&b"-"[..], |r| r.target).into(),
            minor: req.map_or(1, |r| r.minor),
            referer: req.and_then(|r| r.referer).map(Into::into),
            user_agent: req.and_then(|r| r.user_agent).map(Into::into),
            status: e.status,
            cmcd: e.cmcd.cloned(),
        }
    }
}

pub struct AccessLog {
    format: LogFormat,
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
    pub fn open(path: &Path, generation: u64, format: LogFormat) -> io::Result<AccessLog> {
        Ok(AccessLog {
            format,
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
            Err(e) => say!(
                "corestream: cannot reopen access log {}: {e}",
                self.path.display()
            ),
        }
    }

    /// Record a pending entry now that its response has ended, `bytes` of body sent.
    pub fn record_pending(&mut self, p: &Pending, bytes: u64) {
        let req = Request {
            method_str: &p.method,
            target: &p.target,
            minor: p.minor,
            referer: p.referer.as_deref(),
            user_agent: p.user_agent.as_deref(),
            ..Request::default()
        };
        self.record(&Entry {
            now_secs: p.now_secs,
            peer: p.peer,
            req: Some(&req),
            status: p.status,
            bytes,
            cmcd: p.cmcd.as_ref(),
        });
    }

    pub fn record(&mut self, e: &Entry<'_>) {
        let line = match self.format {
            LogFormat::Combined => self.combined(e, None),
            LogFormat::CombinedCmcd => {
                let none = Cmcd::default();
                self.combined(e, Some(e.cmcd.unwrap_or(&none)))
            }
            LogFormat::Json => json(e),
        };
        if let Err(err) = self.out.write_all(&line) {
            say!("corestream: access log write failed: {err}");
        }
    }

    /// `cmcd`: None for plain combined, Some for combined-cmcd (all nine fields).
    fn combined(&mut self, e: &Entry<'_>, cmcd: Option<&Cmcd>) -> Vec<u8> {
        let Entry {
            now_secs,
            peer,
            req,
            status,
            bytes,
            ..
        } = *e;
        if now_secs != self.secs {
            self.secs = now_secs;
            self.stamp = clf_time(now_secs).into_bytes();
        }
        let mut line = Vec::with_capacity(320);
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
        line.push(b'"');
        for key in COMBINED_KEYS.iter().filter(|_| cmcd.is_some()) {
            let _ = write!(line, " {key}=");
            match cmcd.and_then(|c| c.get(key)) {
                None => line.push(b'-'),
                Some(Value::Str(s)) => {
                    line.push(b'"');
                    escaped(&mut line, s.as_bytes());
                    line.push(b'"');
                }
                Some(Value::Token(t)) => escaped(&mut line, t.as_bytes()),
                Some(Value::Int(i)) => {
                    let _ = write!(line, "{i}");
                }
                Some(Value::Dec(d)) => {
                    let _ = write!(line, "{d}");
                }
                Some(Value::Bool(b)) => line.push(if *b { b'1' } else { b'0' }),
            }
        }
        line.push(b'\n');
        line
    }
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// One JSON line. Allocates (serde_json) where the combined format does not: JSON is for
/// operators who ship the log to an analytics store and want every CMCD key typed.
fn json(e: &Entry<'_>) -> Vec<u8> {
    let Entry {
        now_secs,
        peer,
        req,
        status,
        bytes,
        cmcd,
    } = *e;
    use serde_json::{json, Map, Value as J};
    let text = |b: &[u8]| J::String(String::from_utf8_lossy(b).into_owned());
    let mut keys = Map::new();
    for (k, v) in cmcd.map(|c| c.items.as_slice()).unwrap_or_default() {
        let v = match v {
            Value::Int(i) => J::from(*i),
            Value::Dec(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
            Value::Str(s) | Value::Token(s) => J::String(s.clone()),
            Value::Bool(b) => J::Bool(*b),
        };
        keys.insert(k.clone(), v);
    }
    let doc = json!({
        "time": corestream_common::date::Civil::from_unix_secs(now_secs).rfc3339_millis(),
        "remote": peer.map(|ip| ip.to_string()),
        "method": req.map(|r| r.method_str),
        "target": req.map(|r| text(r.target)),
        "protocol": req.map(|r| format!("HTTP/1.{}", r.minor)),
        "status": status,
        "bytes": bytes,
        "referer": req.and_then(|r| r.referer).map(text),
        "user_agent": req.and_then(|r| r.user_agent).map(text),
        "cmcd": keys,
    });
    let mut line = serde_json::to_vec(&doc).unwrap_or_default();
    line.push(b'\n');
    line
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
