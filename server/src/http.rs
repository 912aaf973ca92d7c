//! HTTP/1.1 request parsing (httparse) and response-head writing.
//!
//! The response path is the product's core, so head writing is hand-rolled into a reused
//! byte buffer: no per-request String, no `format!`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Headers we look at; anything beyond this many is answered 431.
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    Other,
}

/// The parts of a request the server acts on, borrowed from the read buffer.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: Option<Method>,
    pub method_str: &'a str,
    pub target: &'a [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub keep_alive: bool,
    pub host_count: u8,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub preflight: bool,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// The request announced a body (Content-Length > 0): we never read bodies, so the
    /// connection must close after the response to stay in sync.
    pub has_body: bool,
}

impl Request<'_> {
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }
}

/// Statuses this server produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NoContent,
    PartialContent,
    NotModified,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    PreconditionFailed,
    UriTooLong,
    RangeNotSatisfiable,
    HeadersTooLarge,
    InternalError,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::PreconditionFailed => 412,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::NoContent => b"HTTP/1.1 204 No Content\r\n",
            Status::PartialContent => b"HTTP/1.1 206 Partial Content\r\n",
            Status::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::PreconditionFailed => b"HTTP/1.1 412 Precondition Failed\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::RangeNotSatisfiable => b"HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::HeadersTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalError => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }

    /// Short plain-text body for error statuses.
    pub fn error_body(self) -> &'static [u8] {
        match self {
            Status::BadRequest => b"400 bad request\n",
            Status::NotFound => b"404 not found\n",
            Status::MethodNotAllowed => b"405 method not allowed: use GET, HEAD or OPTIONS\n",
            Status::PreconditionFailed => b"412 precondition failed\n",
            Status::UriTooLong => b"414 request target too long\n",
            Status::RangeNotSatisfiable => b"416 range not satisfiable\n",
            Status::HeadersTooLarge => b"431 request header fields too large\n",
            Status::InternalError => b"500 internal server error\n",
            Status::ServiceUnavailable => b"503 server busy, retry shortly\n",
            Status::VersionNotSupported => b"505 only HTTP/1.0 and HTTP/1.1 are served here\n",
            _ => b"",
        }
    }
}

/// Result of trying to parse one request from the front of a buffer.
#[derive(Debug)]
pub enum Parse<'a> {
    /// A whole request head of `len` bytes.
    Complete(Request<'a>, usize),
    /// More bytes needed.
    Partial,
    /// Unusable request: answer with this status and close.
    Error(Status),
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

pub fn trim(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Parse one request head from the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: Limits) -> Parse<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            let line_done = buf.contains(&b'\n');
            if !line_done && buf.len() > limits.max_uri_bytes + 32 {
                return Parse::Error(Status::UriTooLong);
            }
            if buf.len() > limits.max_header_bytes {
                return Parse::Error(if line_done {
                    Status::HeadersTooLarge
                } else {
                    Status::UriTooLong
                });
            }
            return Parse::Partial;
        }
        Err(httparse::Error::TooManyHeaders) => return Parse::Error(Status::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            // An HTTP/2 preface or a future version: say what we speak.
            return Parse::Error(
                if buf.starts_with(b"PRI * HTTP/2") || looks_versioned(buf) {
                    Status::VersionNotSupported
                } else {
                    Status::BadRequest
                },
            );
        }
        Err(_) => return Parse::Error(Status::BadRequest),
    };
    if len > limits.max_header_bytes {
        return Parse::Error(Status::HeadersTooLarge);
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Parse::Error(Status::BadRequest);
    };
    if path.len() > limits.max_uri_bytes {
        return Parse::Error(Status::UriTooLong);
    }
    let mut r = Request {
        method: Some(match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }),
        method_str: method,
        target: path.as_bytes(),
        minor,
        ..Request::default()
    };
    let mut conn_close = false;
    let mut conn_keep = false;
    let mut content_length: Option<&[u8]> = None;
    let mut acr_method = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let v = trim(h.value);
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                r.host_count = r.host_count.saturating_add(1)
            }
            5 if name.eq_ignore_ascii_case(b"range") => r.range = Some(v),
            6 if name.eq_ignore_ascii_case(b"origin") => r.origin = Some(v),
            8 if name.eq_ignore_ascii_case(b"if-match") => r.if_match = Some(v),
            8 if name.eq_ignore_ascii_case(b"if-range") => r.if_range = Some(v),
            7 if name.eq_ignore_ascii_case(b"referer") => r.referer = Some(v),
            10 if name.eq_ignore_ascii_case(b"user-agent") => r.user_agent = Some(v),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                conn_close |= has_token(v, b"close");
                conn_keep |= has_token(v, b"keep-alive");
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => r.if_none_match = Some(v),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if !v.iter().all(u8::is_ascii_digit) || v.is_empty() {
                    return Parse::Error(Status::BadRequest);
                }
                match content_length {
                    // Differing duplicates are a request-smuggling vector (RFC 9112 6.3).
                    Some(prev) if prev != v => return Parse::Error(Status::BadRequest),
                    _ => content_length = Some(v),
                }
            }
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => r.if_modified_since = Some(v),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // We accept no request bodies, and TE with CL is how smuggling starts.
                return Parse::Error(Status::BadRequest);
            }
            19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => {
                r.if_unmodified_since = Some(v)
            }
            29 if name.eq_ignore_ascii_case(b"access-control-request-method") => acr_method = true,
            _ => {}
        }
    }
    if minor == 1 && r.host_count != 1 || r.host_count > 1 {
        // RFC 9112 3.2: exactly one Host in HTTP/1.1.
        return Parse::Error(Status::BadRequest);
    }
    r.has_body = content_length.is_some_and(|v| v.iter().any(|&b| b != b'0'));
    r.keep_alive = !r.has_body
        && if minor == 0 {
            conn_keep && !conn_close
        } else {
            !conn_close
        };
    r.preflight = r.method == Some(Method::Options) && acr_method && r.origin.is_some();
    Parse::Complete(r, len)
}

fn looks_versioned(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = &buf[..line_end];
    line.windows(5).any(|w| w == b"HTTP/")
}

/// File identity used for validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

impl FileMeta {
    pub fn mtime(&self) -> SystemTime {
        if self.mtime_sec >= 0 {
            UNIX_EPOCH
                + Duration::new(
                    self.mtime_sec as u64,
                    self.mtime_nsec.clamp(0, 999_999_999) as u32,
                )
        } else {
            UNIX_EPOCH
        }
    }

    /// Strong ETag: changes whenever the file is replaced (inode), resized or rewritten.
    pub fn write_etag(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        push_hex(out, self.ino);
        out.push(b'-');
        push_hex(out, self.size);
        out.push(b'-');
        push_hex(out, self.mtime_sec as u64);
        out.push(b'.');
        push_hex(out, self.mtime_nsec as u64);
        out.push(b'"');
    }

    fn etag_matches(&self, candidate: &[u8]) -> bool {
        // Compared on the stack: conditional requests are hot for playlist reloads.
        let mut mine = [0u8; 72];
        let mut w = StackBuf {
            buf: &mut mine,
            len: 0,
        };
        w.push(b'"');
        w.hex(self.ino);
        w.push(b'-');
        w.hex(self.size);
        w.push(b'-');
        w.hex(self.mtime_sec as u64);
        w.push(b'.');
        w.hex(self.mtime_nsec as u64);
        w.push(b'"');
        let len = w.len;
        candidate == &mine[..len]
    }
}

struct StackBuf<'a> {
    buf: &'a mut [u8; 72],
    len: usize,
}

impl StackBuf<'_> {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }
    fn hex(&mut self, mut v: u64) {
        let start = self.len;
        loop {
            self.push(b"0123456789abcdef"[(v & 15) as usize]);
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.buf[start..self.len].reverse();
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
        meta.etag_matches(t)
    })
}

fn parse_date(v: &[u8]) -> Option<SystemTime> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
}

fn secs(t: SystemTime) -> u64 {
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

pub fn decide(req: &Request<'_>, meta: &FileMeta) -> Decision {
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
        if mtime <= secs(t) {
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
            meta.etag_matches(ir)
        } else if ir.starts_with(b"W/") {
            false
        } else {
            parse_date(ir).is_some_and(|t| secs(t) == mtime)
        };
        if !still_valid {
            return Decision::Full;
        }
    }
    match crate::range::evaluate(range, meta.size) {
        crate::range::RangeResult::Full => Decision::Full,
        crate::range::RangeResult::Partial { start, end } => Decision::Partial { start, end },
        crate::range::RangeResult::Unsatisfiable => Decision::Unsatisfiable,
    }
}

pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

pub fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

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
    let t = UNIX_EPOCH + Duration::from_secs(secs(t).min(LAST_HTTP_DATE));
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", httpdate::HttpDate::from(t));
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_header_bytes: 8192,
        max_uri_bytes: 4096,
    };

    fn req(s: &str) -> Request<'_> {
        match parse(s.as_bytes(), L) {
            Parse::Complete(r, _) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!req("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!req("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc").keep_alive);
    }

    #[test]
    fn errors() {
        let e = |s: &str| match parse(s.as_bytes(), L) {
            Parse::Error(st) => st.code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(e("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(e("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(
            e("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            e("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(e("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(e("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..200 {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(e(&many), 431);
    }

    #[test]
    fn partial_limits() {
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(5000));
        assert!(matches!(
            parse(long_line.as_bytes(), L),
            Parse::Error(Status::UriTooLong)
        ));
        let long_head = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert!(matches!(
            parse(long_head.as_bytes(), L),
            Parse::Error(Status::HeadersTooLarge)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n", L),
            Parse::Partial
        ));
    }

    #[test]
    fn conditionals() {
        let meta = FileMeta {
            size: 100,
            ino: 7,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 5,
        };
        let mut tag = Vec::new();
        meta.write_etag(&mut tag);
        let tag = String::from_utf8(tag).unwrap();
        let lm = httpdate::fmt_http_date(meta.mtime());
        let d = |extra: &str| {
            let s = format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
            let leaked: &'static str = Box::leak(s.into_boxed_str());
            decide(&req(leaked), &meta)
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
    fn numbers() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        v.push(b' ');
        push_hex(&mut v, 0xdead);
        assert_eq!(v, b"0 18446744073709551615 dead");
    }
}
