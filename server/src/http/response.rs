//! A response as a value: its status, the header fields that vary, and its body. `respond`
//! computes one without writing a byte (like nginx's static handler filling `headers_out`);
//! `head::encode` is the only code that turns one into bytes.

use super::cond::ETag;
use super::mime::Kind;
use super::Status;
use crate::net::fsys::FileMeta;
use bytes::Bytes;
use std::os::fd::OwnedFd;

/// Which Cache-Control a response carries. The values come from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheControl {
    /// By the kind of file (`--cache-playlist`, `--cache-segment`, `--cache-other`).
    Kind(Kind),
    /// A 404: `--cache-missing` (a segment about to appear must not be cached as missing).
    Missing,
    /// Errors and anything private: `no-store`.
    NoStore,
}

/// `Content-Range` of a 206 or a 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/size` (last inclusive).
    Bytes { first: u64, last: u64, size: u64 },
    /// `bytes */size`: nothing of the requested range exists.
    Unsatisfied { size: u64 },
}

/// CORS for a viewer response: the request's Origin (echoed when the policy lists it) and
/// whether this is a preflight.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cors<'a> {
    pub origin: Option<&'a [u8]>,
    pub preflight: bool,
}

/// Header fields that vary from response to response. `Server` and `Date` are always
/// written; everything else is here, absent unless set.
#[derive(Default)]
pub struct Fields<'a> {
    pub content_type: Option<&'static str>,
    /// `Content-Length`: the length of the representation being described, even when no body
    /// follows (HEAD, and the 304 of a GET). None only for 204.
    pub content_length: Option<u64>,
    /// Last-Modified and ETag of a file.
    pub validators: Option<Validators>,
    pub accept_ranges: bool,
    pub cache_control: Option<CacheControl>,
    pub content_range: Option<ContentRange>,
    /// `Allow: GET, HEAD, OPTIONS` (405, OPTIONS).
    pub allow: bool,
    pub retry_after_secs: Option<u32>,
    /// None: no CORS fields at all (the admin plane).
    pub cors: Option<Cors<'a>>,
    /// `CMSD-Static` and `CMSD-Dynamic` (`--cmsd`).
    /// Boxed: only with `--cmsd`, and it would double the size of every response value.
    pub cmsd: Option<Box<crate::qoe::cmsd::Cmsd>>,
    /// `Strict-Transport-Security` (`--hsts`), on responses over TLS.
    pub hsts: bool,
    /// `Connection: close` (or keep-alive for HTTP/1.0).
    pub close: bool,
    /// Minor version of the request (0 or 1); an HTTP/1.0 keep-alive must be confirmed.
    pub minor: u8,
}

/// Validators of a file's representation: Last-Modified and (unless this is not the file's
/// own representation, like a delta update) its ETag.
pub struct Validators {
    pub meta: FileMeta,
    pub etag: bool,
}

impl Validators {
    pub fn etag(&self) -> Option<ETag> {
        self.etag.then(|| ETag::of(&self.meta))
    }
}

/// A byte range of an open file, sent with sendfile (or read and encrypted on TLS). `end` is
/// fixed from the size seen at open: nothing beyond it is ever sent.
pub struct FileRange {
    pub file: OwnedFd,
    pub pos: u64,
    pub end: u64,
}

/// What follows the head.
#[derive(Default)]
pub enum Body {
    #[default]
    Empty,
    /// Error texts.
    Static(&'static [u8]),
    /// In-memory representations shared by many responses (cached playlists), or made for
    /// one (delta updates, metrics).
    Bytes(Bytes),
    File(FileRange),
}

impl Body {
    /// Bytes that will follow the head.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Static(b) => b.len() as u64,
            Body::Bytes(b) => b.len() as u64,
            Body::File(f) => f.end.saturating_sub(f.pos),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Response<'a> {
    pub status: Status,
    pub fields: Fields<'a>,
    pub body: Body,
}

impl<'a> Response<'a> {
    /// An error with its short text body (`with_body` false for HEAD, and for an answer to a
    /// request we could not parse the caller still passes true). 404 gets `--cache-missing`,
    /// other errors `no-store`; 405 says what is allowed and 503 when to retry.
    pub fn error(status: Status, fields: Fields<'a>, with_body: bool) -> Response<'a> {
        let text = status.error_body();
        Response {
            status,
            fields: Fields {
                content_type: Some("text/plain; charset=utf-8"),
                content_length: Some(text.len() as u64),
                cache_control: Some(if status == Status::NotFound {
                    CacheControl::Missing
                } else {
                    CacheControl::NoStore
                }),
                allow: status == Status::MethodNotAllowed,
                retry_after_secs: (status == Status::ServiceUnavailable).then_some(1),
                ..fields
            },
            body: if with_body {
                Body::Static(text)
            } else {
                Body::Empty
            },
        }
    }
}
