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
    /// The stretch of the head holding its CMCD-Object/-Request/-Session/-Status lines (from
    /// the first to the last; other lines may sit between): one slice keeps the request
    /// small, and `cmcd_headers` picks the values out only when a response is logged.
    pub cmcd: Option<&'a [u8]>,
    /// Held behind an upstream fetch that another request started (the edge tier's
    /// `Cache-Status: ...; collapsed`); never set by the parser.
    pub collapsed: bool,
    /// When a held request began waiting (never set by the parser): the edge tier answers
    /// it with a copy validated since then, fresh or not.
    pub held_since: Option<std::time::Instant>,
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
// Boxing the request would allocate on every request; the value lives on the stack for the
// length of one match.
#[allow(clippy::large_enum_variant)]
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
    // Uninitialised: an initialised array is 100 headers x 32 bytes written on every
    // request before httparse overwrites the few a request has.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'a>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
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
            // Only a well-formed request line with another HTTP version gets 505 (an
            // HTTP/2 preface, HTTP/3.0; HTTP/1.2 too, which the caller then handles as
            // HTTP/1.1 with `higher_minor`); anything else is a malformed line: 400.
            return Parse::Error(if version_of(buf).is_some() {
                Status::VersionNotSupported
            } else {
                Status::BadRequest
            });
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
    let mut cmcd_span: Option<(usize, usize)> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let v = trim(h.value);
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if !valid_host(v) {
                    // RFC 9112 3.2: a server MUST answer 400 to an invalid Host.
                    return Parse::Error(Status::BadRequest);
                }
                r.host_count = r.host_count.saturating_add(1)
            }
            5 if name.eq_ignore_ascii_case(b"range") => r.range = Some(v),
            6 if name.eq_ignore_ascii_case(b"origin") => r.origin = Some(v),
            8 if name.eq_ignore_ascii_case(b"if-match") => r.if_match = Some(v),
            8 if name.eq_ignore_ascii_case(b"if-range") => r.if_range = Some(v),
            7 if name.eq_ignore_ascii_case(b"referer") => r.referer = Some(v),
            10 if name.eq_ignore_ascii_case(b"user-agent") => r.user_agent = Some(v),
            11 | 12 if name.len() > 5 && name[..5].eq_ignore_ascii_case(b"cmcd-") => {
                // Offsets into `buf` of this line (the name and value are slices of it).
                let start = h.name.as_ptr() as usize - buf.as_ptr() as usize;
                let end = h.value.as_ptr() as usize + h.value.len() - buf.as_ptr() as usize;
                cmcd_span = Some(match cmcd_span {
                    Some((s, _)) => (s, end),
                    None => (start, end),
                });
            }
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
    r.cmcd = cmcd_span.and_then(|(s, e)| buf.get(s..e));
    Parse::Complete(r, len)
}

/// The values of the CMCD header lines in a stretch of a request head (`Request::cmcd`).
pub fn cmcd_headers(span: &[u8]) -> impl Iterator<Item = &[u8]> {
    span.split(|&b| b == b'\n').filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = trim(&line[..colon]);
        let known = [
            &b"cmcd-object"[..],
            b"cmcd-request",
            b"cmcd-session",
            b"cmcd-status",
        ];
        known.iter().any(|k| name.eq_ignore_ascii_case(k)).then(|| {
            trim(
                line[colon + 1..]
                    .strip_suffix(b"\r")
                    .unwrap_or(&line[colon + 1..]),
            )
        })
    })
}

/// The complete request line of `buf` (without CR LF), if it has arrived.
fn request_line(buf: &[u8]) -> Option<&[u8]> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..end];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// (major, minor, offset of the minor digit) of a request line made of exactly three
/// tokens ending in `HTTP/d.d`.
fn version_of(buf: &[u8]) -> Option<(u8, u8, usize)> {
    let line = request_line(buf)?;
    let mut tokens = line.split(|&b| b == b' ');
    let (Some(m), Some(t), Some(v), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return None;
    };
    if m.is_empty() || t.is_empty() {
        return None;
    }
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0', line.len() - 1))
        }
        _ => None,
    }
}

/// Where to write `1` so that a request line saying HTTP/1.2 (or any higher HTTP/1 minor)
/// parses as HTTP/1.1: RFC 9110 section 2.5 says such a request is handled as the highest
/// minor version the server implements. None for any other line.
pub fn higher_minor(buf: &[u8]) -> Option<usize> {
    match version_of(buf)? {
        (1, minor, at) if minor >= 2 => Some(at),
        _ => None,
    }
}

/// RFC 3986 unreserved and sub-delims: what a reg-name holds besides pct-encodings (and,
/// with ':', an IPvFuture literal).
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        i += 1;
    }
    t
};

/// RFC 9112 3.2 and RFC 3986 3.2.2: `uri-host [ ":" port ]`, where uri-host is a bracketed
/// IPv6 literal or a reg-name (IPv4 addresses are reg-names by their characters). An empty
/// value is valid (a target without authority).
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        let ok = std::str::from_utf8(literal).is_ok_and(|s| {
            s.parse::<std::net::Ipv6Addr>().is_ok()
                || (s.starts_with(['v', 'V'])
                    && s.len() > 3
                    && s.bytes().all(|b| b == b':' || REG_NAME[usize::from(b)]))
        });
        if !ok {
            return false;
        }
        (&[][..], &rest[close + 1..])
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &[][..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let hex = |x: Option<&u8>| x.is_some_and(u8::is_ascii_hexdigit);
            if !(hex(host.get(i + 1)) && hex(host.get(i + 2))) {
                return false;
            }
            i += 3;
            continue;
        }
        if !REG_NAME[usize::from(b)] {
            return false;
        }
        i += 1;
    }
    port_ok
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
    fn host_grammar() {
        for ok in [
            "media.example",
            "media.example:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "[2001:db8::7]",
            "xn--bcher-kva.example",
            "a%2Eb",
            "",
            "host:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?} is valid");
        }
        for bad in [
            "media.example/evil",
            "media example",
            "a@b",
            "[::1",
            "[nothex]",
            "host:port",
            "host:123456",
            "a%zz",
            "a%2",
            "[::1]x",
            "caf\u{e9}.example",
            "a\\b",
            "a?b",
            "a#b",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} is invalid");
        }
    }

    #[test]
    fn request_line_versions() {
        let e = |s: &str| match parse(s.as_bytes(), L) {
            Parse::Error(st) => st.code(),
            Parse::Complete(..) => 200,
            Parse::Partial => 0,
        };
        assert_eq!(e("GET /a b.ts HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(e("GET /a HTTP/1.1 x\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(e("GET /a HTTX/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(e("GET /a HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(e("GET /a HTTP/3.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(e("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        let mut raw = b"GET /a HTTP/1.2\r\nHost: a\r\n\r\n".to_vec();
        let at = higher_minor(&raw).expect("a higher minor");
        raw[at] = b'1';
        assert_eq!(e(std::str::from_utf8(&raw).unwrap()), 200);
        assert_eq!(higher_minor(b"GET /a HTTP/1.1\r\n"), None);
        assert_eq!(higher_minor(b"GET /a HTTP/2.0\r\n"), None);
        assert_eq!(higher_minor(b"GET /a HTTP/1.9"), None, "line not complete");
        assert_eq!(e("GET / HTTP/1.1\r\nHost: media.example/evil\r\n\r\n"), 400);
        assert_eq!(e("GET / HTTP/1.1\r\nHost: media example\r\n\r\n"), 400);
        assert_eq!(e("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), 400);
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
