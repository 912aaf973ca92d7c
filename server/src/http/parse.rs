//! Request heads: httparse finds the fields, this module keeps the ones the server acts on
//! and applies HTTP/1.1's framing rules (Host, Content-Length, Transfer-Encoding, keep-alive).

use super::Status;

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

/// The default limits, for tests.
#[cfg(test)]
pub(crate) const TEST_LIMITS: Limits = Limits {
    max_header_bytes: 8192,
    max_uri_bytes: 4096,
};

/// A request head that must parse, for tests.
#[cfg(test)]
pub(crate) fn parsed(s: &str) -> Request<'_> {
    match parse(s.as_bytes(), TEST_LIMITS) {
        Parse::Complete(r, _) => r,
        other => panic!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = TEST_LIMITS;

    fn req(s: &str) -> Request<'_> {
        parsed(s)
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
}
