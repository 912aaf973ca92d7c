//! The statuses this server answers with: code, reason phrase and the short text body of
//! errors, in one table.

/// A response status. Adding one is one variant and one row in `ROWS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Created,
    NoContent,
    PartialContent,
    MovedPermanently,
    Found,
    SeeOther,
    NotModified,
    TemporaryRedirect,
    PermanentRedirect,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    LengthRequired,
    PreconditionFailed,
    PayloadTooLarge,
    UriTooLong,
    RangeNotSatisfiable,
    HeadersTooLarge,
    InternalError,
    NotImplemented,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    VersionNotSupported,
    InsufficientStorage,
}

struct Row {
    status: Status,
    code: u16,
    line: &'static [u8],
    body: &'static [u8],
}

const ROWS: [Row; 29] = [
    row(Status::Ok, 200, b"HTTP/1.1 200 OK\r\n", b""),
    row(Status::Created, 201, b"HTTP/1.1 201 Created\r\n", b""),
    row(Status::NoContent, 204, b"HTTP/1.1 204 No Content\r\n", b""),
    row(
        Status::PartialContent,
        206,
        b"HTTP/1.1 206 Partial Content\r\n",
        b"",
    ),
    row(
        Status::MovedPermanently,
        301,
        b"HTTP/1.1 301 Moved Permanently\r\n",
        b"",
    ),
    row(Status::Found, 302, b"HTTP/1.1 302 Found\r\n", b""),
    row(Status::SeeOther, 303, b"HTTP/1.1 303 See Other\r\n", b""),
    row(
        Status::NotModified,
        304,
        b"HTTP/1.1 304 Not Modified\r\n",
        b"",
    ),
    row(
        Status::TemporaryRedirect,
        307,
        b"HTTP/1.1 307 Temporary Redirect\r\n",
        b"",
    ),
    row(
        Status::PermanentRedirect,
        308,
        b"HTTP/1.1 308 Permanent Redirect\r\n",
        b"",
    ),
    row(
        Status::BadRequest,
        400,
        b"HTTP/1.1 400 Bad Request\r\n",
        b"400 bad request\n",
    ),
    row(
        Status::Unauthorized,
        401,
        b"HTTP/1.1 401 Unauthorized\r\n",
        b"401 this port needs a token: send Authorization: Bearer <token>\n",
    ),
    row(
        Status::Forbidden,
        403,
        b"HTTP/1.1 403 Forbidden\r\n",
        b"403 forbidden\n",
    ),
    row(
        Status::NotFound,
        404,
        b"HTTP/1.1 404 Not Found\r\n",
        b"404 not found\n",
    ),
    row(
        Status::MethodNotAllowed,
        405,
        b"HTTP/1.1 405 Method Not Allowed\r\n",
        b"405 method not allowed: use GET, HEAD or OPTIONS\n",
    ),
    row(
        Status::Conflict,
        409,
        b"HTTP/1.1 409 Conflict\r\n",
        b"409 conflict with what is on disk (a directory where a file would go, or the reverse)\n",
    ),
    row(
        Status::LengthRequired,
        411,
        b"HTTP/1.1 411 Length Required\r\n",
        b"411 send Content-Length or Transfer-Encoding: chunked\n",
    ),
    row(
        Status::PreconditionFailed,
        412,
        b"HTTP/1.1 412 Precondition Failed\r\n",
        b"412 precondition failed\n",
    ),
    row(
        Status::PayloadTooLarge,
        413,
        b"HTTP/1.1 413 Content Too Large\r\n",
        b"413 object larger than --ingest-max-bytes\n",
    ),
    row(
        Status::UriTooLong,
        414,
        b"HTTP/1.1 414 URI Too Long\r\n",
        b"414 request target too long\n",
    ),
    row(
        Status::RangeNotSatisfiable,
        416,
        b"HTTP/1.1 416 Range Not Satisfiable\r\n",
        b"416 range not satisfiable\n",
    ),
    row(
        Status::HeadersTooLarge,
        431,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        b"431 request header fields too large\n",
    ),
    row(
        Status::InternalError,
        500,
        b"HTTP/1.1 500 Internal Server Error\r\n",
        b"500 internal server error\n",
    ),
    row(
        Status::NotImplemented,
        501,
        b"HTTP/1.1 501 Not Implemented\r\n",
        b"501 transfer coding not implemented: use chunked or none\n",
    ),
    row(
        Status::BadGateway,
        502,
        b"HTTP/1.1 502 Bad Gateway\r\n",
        b"502 the origin is unreachable or answered with an error; retry shortly\n",
    ),
    row(
        Status::ServiceUnavailable,
        503,
        b"HTTP/1.1 503 Service Unavailable\r\n",
        b"503 server busy, retry shortly\n",
    ),
    row(
        Status::GatewayTimeout,
        504,
        b"HTTP/1.1 504 Gateway Timeout\r\n",
        b"504 the origin did not answer in time (--origin-timeout); retry shortly\n",
    ),
    row(
        Status::VersionNotSupported,
        505,
        b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        b"505 only HTTP/1.0 and HTTP/1.1 are served here\n",
    ),
    row(
        Status::InsufficientStorage,
        507,
        b"HTTP/1.1 507 Insufficient Storage\r\n",
        b"507 no space left for this object; the previous version is kept\n",
    ),
];

const fn row(status: Status, code: u16, line: &'static [u8], body: &'static [u8]) -> Row {
    Row {
        status,
        code,
        line,
        body,
    }
}

impl Status {
    /// Every status, in table order (for metrics and tests).
    pub const ALL: [Status; ROWS.len()] = {
        let mut all = [Status::Ok; ROWS.len()];
        let mut i = 0;
        while i < ROWS.len() {
            all[i] = ROWS[i].status;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static Row {
        // The table is in declaration order; the test below keeps it that way.
        &ROWS[self as usize]
    }

    pub fn code(self) -> u16 {
        self.row().code
    }

    /// `HTTP/1.1 NNN Reason\r\n`
    pub fn line(self) -> &'static [u8] {
        self.row().line
    }

    /// Short plain-text body for error statuses (empty for the others).
    pub fn error_body(self) -> &'static [u8] {
        self.row().body
    }

    /// The redirect an origin answered with (RFC 9110 15.4), passed on to viewers.
    pub fn redirect(code: u16) -> Option<Status> {
        match code {
            301 | 302 | 303 | 307 | 308 => ROWS.iter().find(|r| r.code == code).map(|r| r.status),
            _ => None,
        }
    }

    /// Heuristically cacheable when the origin gives no freshness (RFC 9110 15.4.2, 15.4.9).
    pub fn is_permanent_redirect(self) -> bool {
        matches!(self, Status::MovedPermanently | Status::PermanentRedirect)
    }

    pub fn is_error(self) -> bool {
        self.code() >= 400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order_and_consistent() {
        for (i, r) in ROWS.iter().enumerate() {
            assert_eq!(r.status as usize, i, "{:?}", r.status);
            let line = std::str::from_utf8(r.line).unwrap();
            assert!(line.starts_with(&format!("HTTP/1.1 {} ", r.code)), "{line}");
            assert!(line.ends_with("\r\n"));
            assert_eq!(r.code >= 400, !r.body.is_empty(), "{:?}", r.status);
            if !r.body.is_empty() {
                assert!(std::str::from_utf8(r.body)
                    .unwrap()
                    .starts_with(&r.code.to_string()));
            }
        }
        assert_eq!(Status::ALL.len(), ROWS.len());
    }
}
