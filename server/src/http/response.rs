//! A response as a value: its status, the header fields that vary, and its body. `respond`
//! computes one without writing a byte (like nginx's static handler filling `headers_out`);
//! `head::encode` is the only code that turns one into bytes.

use super::cond::ETag;
use super::mime::Kind;
use super::Status;
use crate::live::growing::Growing;
use crate::net::fsys::FileMeta;
use bytes::Bytes;
use std::os::fd::OwnedFd;
use std::sync::Arc;

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
    /// `bytes first-last/*`: a range of an object whose length is not known yet.
    OfUnknown { first: u64, last: u64 },
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
    /// Fields the edge tier passes on from the origin, encoded once when its answer arrived:
    /// its `Cache-Control` and `Expires` (then `cache_control` is None), or a redirect's
    /// `Location`. Boxed: it would make every response value larger.
    pub upstream: Option<Box<Bytes>>,
    /// `Allow`: the methods of the port that answered (405, OPTIONS).
    pub allow: Option<Methods>,
    /// `WWW-Authenticate` with the ingest port's bearer challenge (its 401).
    pub www_authenticate: bool,
    /// `Transfer-Encoding: chunked`: a body whose length is not known yet (an object still
    /// being pushed). Never with `content_length`.
    pub chunked: bool,
    /// An object of the edge tier: `Via`, `Cache-Status` and, for a stored copy, `Age`.
    pub tier: Option<TierStatus>,
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

/// The methods a port answers (`Allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    Viewer,
    Ingest,
}

impl Methods {
    pub fn list(self) -> &'static str {
        match self {
            Methods::Viewer => "GET, HEAD, OPTIONS",
            Methods::Ingest => "PUT, DELETE, OPTIONS",
        }
    }
}

/// How the edge tier answered (RFC 9211 `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierStatus {
    /// A stored copy, this many seconds old (`Age`).
    Hit(u32),
    /// Forwarded to the origin; `collapsed`: waited for a forward another request started.
    /// `age`: of the origin's answer (its own `Age`, and the time since), when it has one.
    Miss { collapsed: bool, age: u32 },
}

/// The ingest port's challenge (RFC 6750 3).
pub const INGEST_CHALLENGE: &str = "Bearer realm=\"corestream ingest\"";

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
    /// An object still arriving, sent as its bytes land (boxed: rare, and it would make
    /// every response value larger).
    Growing(Box<GrowingBody>),
}

/// A response that follows an object in flight: sent from `pos` up to what the writer has
/// published, then waiting for more, until the object is complete (or aborted: then the
/// connection closes without the end of the body, so no client takes it for whole).
pub struct GrowingBody {
    pub obj: Arc<Growing>,
    pub pos: u64,
    /// A range's end (exclusive): the body stops there (206), and an object that completes
    /// short of it ends the connection.
    pub end: Option<u64>,
    /// Chunked framing (the length was not announced, HTTP/1.1 viewer).
    pub chunked: bool,
    /// Bytes of the current chunk not yet sent (chunked), or 0.
    pub chunk_left: u64,
    /// Chunk framing waiting to go out (a size line, a chunk's closing CRLF, or the last
    /// chunk).
    pub frame: [u8; 24],
    pub frame_len: u8,
    pub frame_pos: u8,
    /// The last chunk has been queued.
    pub ended: bool,
    /// Its access-log line, when the length was unknown at the start: written at the end
    /// with the bytes sent (kept here, not in every connection's state).
    pub log: Option<Box<crate::admin::accesslog::Pending>>,
}

impl GrowingBody {
    pub fn new(obj: Arc<Growing>, chunked: bool) -> GrowingBody {
        GrowingBody {
            obj,
            pos: 0,
            end: None,
            chunked,
            chunk_left: 0,
            frame: [0; 24],
            frame_len: 0,
            frame_pos: 0,
            ended: false,
            log: None,
        }
    }

    /// Queue the size line of a chunk of `n` bytes (0: the last chunk and the empty
    /// trailer section).
    pub fn queue_chunk(&mut self, n: u64) {
        let mut len = 0;
        let mut digits = [0u8; 16];
        let mut v = n;
        loop {
            digits[len] = b"0123456789abcdef"[(v & 0xf) as usize];
            len += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            self.frame[i] = *d;
        }
        let tail: &[u8] = if n == 0 { b"\r\n\r\n" } else { b"\r\n" };
        self.frame[len..len + tail.len()].copy_from_slice(tail);
        self.frame_len = (len + tail.len()) as u8;
        self.frame_pos = 0;
        self.chunk_left = n;
        self.ended = n == 0;
    }

    /// Queue the CRLF that closes a chunk whose data is all out: the client has the whole
    /// chunk now, not when the next one starts.
    pub fn queue_chunk_end(&mut self) {
        self.frame[..2].copy_from_slice(b"\r\n");
        self.frame_len = 2;
        self.frame_pos = 0;
    }

    /// Whether the framing queued now is followed at once by data (a size line).
    pub fn data_follows(&self) -> bool {
        self.chunk_left > 0
    }

    /// Framing bytes not yet sent.
    pub fn pending_frame(&self) -> &[u8] {
        &self.frame[usize::from(self.frame_pos)..usize::from(self.frame_len)]
    }
}

impl Body {
    /// Bytes that will follow the head.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Static(b) => b.len() as u64,
            Body::Bytes(b) => b.len() as u64,
            Body::File(f) => f.end.saturating_sub(f.pos),
            Body::Growing(g) => match g.end {
                Some(end) => end.saturating_sub(g.pos),
                None => g.obj.declared.unwrap_or(0),
            },
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
                allow: (status == Status::MethodNotAllowed).then_some(Methods::Viewer),
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
