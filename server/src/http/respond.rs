//! Routing one parsed request to an answer: static files beneath the root, cached playlists
//! with LL-HLS blocking reloads and delta updates, preload-hinted parts held until they
//! exist, errors. Computes a `Response` value (or parks the request); writes no bytes.

use super::cond::{self, Decision};
use super::head;
use super::mime::{self, Kind};
use super::parse::higher_minor;
use super::path::{self, PathError};
use super::range::{self, RangeResult};
use super::response::TierStatus;
use super::response::{
    Body, CacheControl, ContentRange, Cors, Fields, FileRange, GrowingBody, Validators,
};
use super::{parse, Method, Parse, Request, Response, Status};
use crate::live::cache::{Cached, Dir, Miss, PlaylistCache};
use crate::live::growing::Growing;
use crate::live::playlist as live;
use crate::net::fsys::{self, FileMeta};
use crate::net::timer;
use crate::shared::Shared;
use crate::tier::{self, Lookup, Tier};
use bytes::Bytes;
use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// What answering one request borrows from its worker.
pub struct Cx<'a> {
    pub shared: &'a Shared,
    pub draining: bool,
    /// Scratch for the decoded path (NUL-terminated before the open).
    pub path_buf: &'a mut Vec<u8>,
    pub cache: &'a mut PlaylistCache,
    /// Current timer tick, for park deadlines.
    pub now: u32,
    /// Unix seconds of this answer's Date.
    pub now_secs: u64,
    /// Running a parked request again after its deadline: answer the timeout instead of
    /// parking a second time.
    pub expired: bool,
    /// Running a parked request again (woken, or at its deadline): not a new request for
    /// the counters.
    pub rerun: bool,
    /// Read before the worker's last inotify drain (see `live::cache`).
    pub synced: bool,
    /// Set when the answer is a whole watched playlist from the cache: what
    /// `http::encoded` may keep it as.
    pub served: Option<Arc<Cached>>,
}

/// The outcome for one request.
pub enum Answer<'r> {
    Now(Response<'r>),
    /// Hold the request (LL-HLS blocking reload, or a preload-hinted part not there yet).
    Park(Box<Parked>),
}

/// A request held until a playlist or part changes: no read buffer, no file, just what is
/// needed to run it again.
pub struct Parked {
    /// Root-relative path whose change wakes it (the playlist, or the hinted file).
    pub key: Box<[u8]>,
    /// The original request target, to run the request again on wake.
    target: Box<[u8]>,
    head: bool,
    keep_alive: bool,
    minor: u8,
    origin: Option<Box<[u8]>>,
    /// The CMCD header lines it carried (the query form stays in `target`).
    cmcd: Option<Box<[u8]>>,
    kept: Kept,
    /// When it was first held (CMSD `ht`).
    pub since: std::time::Instant,
    /// Waiting for an upstream fetch another request started.
    pub collapsed: bool,
    /// Tick after which the wait ends (503 for playlists, 404 for parts).
    pub deadline: u32,
}

/// What else of a held request its answer depends on (Range, If-Range and the validators)
/// or its log line shows (Referer, User-Agent; only with an access log): copied, since the
/// read buffer is not kept while it waits. Without them a rerun answered 200 and the whole
/// object to a Range (a byte-range part behind a preload hint, any range on a cold edge) and
/// ignored If-Match and If-None-Match.
#[derive(Default)]
struct Kept {
    range: Option<Box<[u8]>>,
    if_range: Option<Box<[u8]>>,
    if_match: Option<Box<[u8]>>,
    if_unmodified_since: Option<Box<[u8]>>,
    if_none_match: Option<Box<[u8]>>,
    if_modified_since: Option<Box<[u8]>>,
    referer: Option<Box<[u8]>>,
    user_agent: Option<Box<[u8]>>,
}

impl Kept {
    fn of(req: &Request<'_>, logged: bool) -> Kept {
        let copy = |v: Option<&[u8]>| v.map(Into::into);
        Kept {
            range: copy(req.range),
            if_range: copy(req.if_range),
            if_match: copy(req.if_match),
            if_unmodified_since: copy(req.if_unmodified_since),
            if_none_match: copy(req.if_none_match),
            if_modified_since: copy(req.if_modified_since),
            referer: copy(req.referer.filter(|_| logged)),
            user_agent: copy(req.user_agent.filter(|_| logged)),
        }
    }
}

impl Parked {
    /// The request as it was parsed, to run it again.
    pub fn request(&self) -> Request<'_> {
        let k = &self.kept;
        Request {
            range: k.range.as_deref(),
            if_range: k.if_range.as_deref(),
            if_match: k.if_match.as_deref(),
            if_unmodified_since: k.if_unmodified_since.as_deref(),
            if_none_match: k.if_none_match.as_deref(),
            if_modified_since: k.if_modified_since.as_deref(),
            referer: k.referer.as_deref(),
            user_agent: k.user_agent.as_deref(),
            held_since: Some(self.since),
            method: Some(if self.head { Method::Head } else { Method::Get }),
            method_str: if self.head { "HEAD" } else { "GET" },
            target: &self.target,
            minor: self.minor,
            keep_alive: self.keep_alive,
            host_count: 1,
            origin: self.origin.as_deref(),
            cmcd: self.cmcd.as_deref(),
            collapsed: self.collapsed,
            ..Request::default()
        }
    }
}

/// Fields every viewer response starts from: CORS and connection handling.
fn base<'r>(req: &Request<'r>, close: bool) -> Fields<'r> {
    Fields {
        cors: Some(Cors {
            origin: req.origin,
            preflight: false,
        }),
        close,
        minor: req.minor,
        ..Fields::default()
    }
}

/// The answer to a request that could not be parsed: no origin to echo, HTTP/1.1 framing,
/// and the connection closes (the byte stream may be out of sync).
pub fn unparsable(status: Status) -> Response<'static> {
    Response::error(
        status,
        Fields {
            cors: Some(Cors::default()),
            close: true,
            minor: 1,
            ..Fields::default()
        },
        true,
    )
}

/// The answer to a plaintext HTTP request sent to the TLS port (sent in clear text).
pub fn plain_http_on_tls_port() -> Response<'static> {
    let mut r = unparsable(Status::BadRequest);
    let text: &'static [u8] = b"400 this port speaks HTTPS: use an https:// URL\n";
    r.fields.content_length = Some(text.len() as u64);
    r.body = Body::Static(text);
    r
}

/// A representation about to be answered: a file, a cached playlist or a delta update.
struct Entity<'m> {
    content_type: &'static str,
    kind: Kind,
    meta: &'m FileMeta,
    /// Bytes of this representation (a delta is shorter than the file).
    len: u64,
    /// The file's own representation (a delta update has no validators of its own).
    etag: bool,
}

/// The response for a GET/HEAD of `what` after conditional and Range evaluation, with the
/// byte range its body must carry (none for HEAD, 304 and errors).
fn entity<'r>(
    req: &Request<'r>,
    close: bool,
    what: &Entity<'_>,
    decision: Decision,
) -> (Response<'r>, Option<(u64, u64)>) {
    let is_head = req.method() == Method::Head;
    let (status, start, end) = match decision {
        Decision::Full => (Status::Ok, 0, what.len),
        Decision::Partial { start, end } => (Status::PartialContent, start, end + 1),
        Decision::NotModified => (Status::NotModified, 0, 0),
        Decision::PreconditionFailed => {
            let r = Response::error(Status::PreconditionFailed, base(req, close), !is_head);
            return (r, None);
        }
        Decision::Unsatisfiable => {
            let mut r = Response::error(Status::RangeNotSatisfiable, base(req, close), !is_head);
            r.fields.content_range = Some(ContentRange::Unsatisfied { size: what.len });
            return (r, None);
        }
    };
    // A 304 may state the length the 200 would have (RFC 9110 8.6).
    let len = if status == Status::NotModified {
        what.len
    } else {
        end - start
    };
    let r = Response {
        status,
        fields: Fields {
            content_type: Some(what.content_type),
            content_length: Some(len),
            validators: Some(Validators {
                meta: *what.meta,
                etag: what.etag,
            }),
            accept_ranges: true,
            cache_control: Some(CacheControl::Kind(what.kind)),
            content_range: (status == Status::PartialContent).then_some(ContentRange::Bytes {
                first: start,
                last: end.saturating_sub(1),
                size: what.len,
            }),
            ..base(req, close)
        },
        body: Body::Empty,
    };
    let range = (!is_head && status != Status::NotModified && end > start).then_some((start, end));
    (r, range)
}

/// An object still arriving (being pushed to the ingest port, or pulled from an origin):
/// answered at once, its bytes sent as they land. The length is the one the upload
/// announced, else the body is chunked (or, for HTTP/1.0, ends with the connection).
/// Validators and conditionals wait for the complete file (there is no version to name yet).
/// A single Range is answered 206 as the bytes arrive: any form when the length was
/// announced, a closed `first-last` otherwise (`Content-Range: bytes first-last/*`), which is
/// how LL-HLS players fetch byte-range parts of a segment still being written; an open-ended
/// or suffix range of an object of unknown length, or one under If-Range, gets the whole
/// body (RFC 9110 14.2 lets a server ignore Range).
fn growing<'r>(req: &Request<'r>, close: bool, g: Arc<Growing>) -> Response<'r> {
    // An object still arriving has no validator yet (no ETag, no Last-Modified): of the
    // preconditions only `If-Match: *` can hold (RFC 9110 13.1.1); the others need one.
    if req
        .if_match
        .is_some_and(|v| crate::http::parse::trim(v) != b"*")
    {
        let is_head = req.method() == Method::Head;
        return Response::error(Status::PreconditionFailed, base(req, close), !is_head);
    }
    if let Some(r) = growing_range(req, close, &g) {
        return r;
    }
    let chunked = g.declared.is_none() && req.minor >= 1;
    let fields = Fields {
        content_length: g.declared,
        chunked,
        close: close || (g.declared.is_none() && !chunked),
        ..growing_fields(req, close, &g)
    };
    let body = if req.method() == Method::Head {
        Body::Empty
    } else {
        Body::Growing(Box::new(GrowingBody::new(g, chunked)))
    };
    Response {
        status: Status::Ok,
        fields,
        body,
    }
}

/// What every answer with an object still arriving says, whatever part of it it carries.
fn growing_fields<'r>(req: &Request<'r>, close: bool, g: &Growing) -> Fields<'r> {
    Fields {
        tier: g.upstream.then_some(TierStatus::Miss {
            collapsed: req.collapsed,
            age: g.age(),
        }),
        content_type: Some(g.content_type),
        cache_control: g.passed.is_none().then_some(CacheControl::Kind(g.kind)),
        upstream: g.passed.clone().map(Box::new),
        ..base(req, close)
    }
}

/// The origin's freshness fields instead of this edge's `--cache-*` (edge tier), on the
/// answers that carry the object (a 304 says what a 200 would, RFC 9110 15.4.5).
fn pass_on(r: &mut Response<'_>, passed: Option<Bytes>) {
    if let Some(p) = passed {
        if matches!(
            r.status,
            Status::Ok | Status::PartialContent | Status::NotModified
        ) {
            r.fields.cache_control = None;
            r.fields.upstream = Some(Box::new(p));
        }
    }
}

/// The 206 (or 416) for a Range request of an object still arriving, if it has one.
fn growing_range<'r>(req: &Request<'r>, close: bool, g: &Arc<Growing>) -> Option<Response<'r>> {
    // Range is defined for GET only (RFC 9110 14.2): a HEAD gets the whole object's head, as
    // for a file (`cond::decide`).
    let value = req
        .range
        .filter(|_| req.if_range.is_none() && req.method() == Method::Get)?;
    let result = match g.declared {
        Some(len) => range::evaluate(value, len),
        None => range::evaluate_unknown_length(value),
    };
    let (start, end) = match result {
        RangeResult::Full => return None,
        RangeResult::Partial { start, end } => (start, end),
        RangeResult::Unsatisfiable => {
            let mut r = Response::error(Status::RangeNotSatisfiable, base(req, close), true);
            r.fields.content_range = Some(ContentRange::Unsatisfied {
                size: g.declared.unwrap_or(0),
            });
            return Some(r);
        }
    };
    let content_range = match g.declared {
        Some(size) => ContentRange::Bytes {
            first: start,
            last: end,
            size,
        },
        None => ContentRange::OfUnknown {
            first: start,
            last: end,
        },
    };
    let fields = Fields {
        content_length: Some(end - start + 1),
        content_range: Some(content_range),
        accept_ranges: true,
        ..growing_fields(req, close, g)
    };
    let mut b = GrowingBody::new(Arc::clone(g), false);
    b.pos = start;
    b.end = Some(end + 1);
    let body = Body::Growing(Box::new(b));
    Some(Response {
        status: Status::PartialContent,
        fields,
        body,
    })
}

/// A request the local root cannot answer, with an origin configured. The decoded path
/// (`path_len` bytes and a NUL in `cx.path_buf`) is moved out of `cx` meanwhile, so that
/// `pulled` may use the rest of it mutably (the playlist cache).
fn pull<'r>(
    cx: &mut Cx<'_>,
    req: &Request<'r>,
    t: &Tier,
    path_len: usize,
    kinds: (Kind, &'static str),
    close: bool,
) -> Answer<'r> {
    let buf = std::mem::take(cx.path_buf);
    let answer = match CStr::from_bytes_with_nul(&buf) {
        Ok(cpath) => pulled(cx, req, t, (&buf[..path_len], cpath), kinds, close),
        Err(_) => Answer::Now(Response::error(
            Status::BadRequest,
            base(req, close),
            req.method() != Method::Head,
        )),
    };
    *cx.path_buf = buf;
    answer
}

/// A stored copy (playlists from memory, the rest by sendfile from the cache directory), a
/// remembered answer, or a wait for the fetch (started here unless one is under way).
fn pulled<'r>(
    cx: &mut Cx<'_>,
    req: &Request<'r>,
    t: &Tier,
    (path, cpath): (&[u8], &CStr),
    (kind, content_type): (Kind, &'static str),
    close: bool,
) -> Answer<'r> {
    let is_head = req.method() == Method::Head;
    let miss = TierStatus::Miss {
        collapsed: req.collapsed,
        age: 0,
    };
    let answer = |status: Status, tier: TierStatus| {
        let mut r = Response::error(status, base(req, close), !is_head);
        r.fields.tier = Some(tier);
        Answer::Now(r)
    };
    let forwarded = |status: Status| answer(status, miss);
    // RFC 9211: a stored copy or a remembered answer given to a new request is a hit; a
    // held request that waited for the forward was part of the miss.
    let stored_answer = |age: u64| {
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        if cx.rerun {
            TierStatus::Miss {
                collapsed: req.collapsed,
                age,
            }
        } else {
            TierStatus::Hit(age)
        }
    };
    let query = if kind == Kind::Playlist {
        tier::blocking_query(req.target)
    } else {
        None
    };
    let mut lookup = t.lookup(
        path,
        query.as_deref(),
        kind,
        content_type,
        !cx.rerun,
        req.held_since,
    );
    for _ in 0..2 {
        let Lookup::Hit { age, passed } = lookup else {
            break;
        };
        let fd = t.cache_fd.as_raw_fd();
        let shared = cx.shared;
        let in_memory = match kind {
            Kind::Playlist => cx.cache.get(
                Dir::Pulled(fd),
                (path, cpath),
                false,
                &shared.hints,
                &shared.qoe.catalog,
            ),
            _ => Err(Miss::TooLarge),
        };
        let stored = match in_memory {
            Ok(c) => Some(playlist_response(
                cx,
                req,
                close,
                (content_type, kind),
                &c,
                None,
            )),
            Err(Miss::Io(e)) => return forwarded(io_status(e.raw_os_error())),
            Err(Miss::NotFound) => None,
            // Not a playlist, or too large to keep in memory: by sendfile from the file.
            Err(Miss::TooLarge) => fsys::open_beneath(fd, cpath)
                .ok()
                .and_then(|f| Some((fsys::regular_meta(&f).ok()??, f)))
                .map(|(meta, file)| {
                    file_response(cx, req, close, (content_type, kind), file, &meta)
                }),
        };
        let Some(mut r) = stored else {
            // Evicted between the lookup and the open: fetch it again.
            t.forget(path);
            lookup = t.lookup(
                path,
                query.as_deref(),
                kind,
                content_type,
                false,
                req.held_since,
            );
            continue;
        };
        r.fields.tier = Some(stored_answer(age));
        pass_on(&mut r, passed);
        return Answer::Now(r);
    }
    match lookup {
        Lookup::Playlist { body, age, passed } => {
            let mut r = Response {
                status: Status::Ok,
                fields: Fields {
                    content_type: Some(content_type),
                    content_length: Some(body.len() as u64),
                    cache_control: Some(CacheControl::Kind(kind)),
                    tier: Some(stored_answer(age)),
                    ..base(req, close)
                },
                body: if is_head {
                    Body::Empty
                } else {
                    Body::Bytes(body)
                },
            };
            pass_on(&mut r, passed);
            Answer::Now(r)
        }
        Lookup::Status { status, age } => answer(status, age.map_or(miss, stored_answer)),
        Lookup::Redirect {
            status,
            fields,
            passed,
            age,
        } => Answer::Now(Response {
            status,
            fields: Fields {
                content_length: Some(0),
                upstream: Some(Box::new(fields)),
                // Without the origin's word, viewers ask again (as the edge will).
                cache_control: (!passed).then_some(CacheControl::NoStore),
                tier: Some(stored_answer(age)),
                ..base(req, close)
            },
            body: Body::Empty,
        }),
        Lookup::Broken => {
            let mut r = Response::error(Status::BadGateway, base(req, true), !is_head);
            r.fields.tier = Some(miss);
            Answer::Now(r)
        }
        Lookup::Hit { .. } => forwarded(Status::ServiceUnavailable),
        Lookup::Wait { .. } if cx.expired => forwarded(Status::GatewayTimeout),
        Lookup::Wait { joined } => {
            let o = &t.opts;
            let mut wait = 2 * o.timeout + o.stall_timeout;
            if query.is_some() {
                wait += std::time::Duration::from_secs(30);
            }
            let key = tier::key(path, query.as_deref());
            let mut parked = park_for(cx, req, &key, wait.as_secs_f64());
            // A held request run again finds in flight the fetch it started itself, or the
            // one it joined the first time (which `req.collapsed` remembers).
            parked.collapsed = (joined && !cx.rerun) || req.collapsed;
            Answer::Park(parked)
        }
    }
}

fn park_for(cx: &Cx<'_>, req: &Request<'_>, key: &[u8], secs: f64) -> Box<Parked> {
    let origin = match &cx.shared.cfg.cors {
        crate::config::Cors::Any => None,
        crate::config::Cors::List(_) => req.origin.map(Into::into),
    };
    Box::new(Parked {
        key: key.into(),
        cmcd: req.cmcd.map(Into::into),
        kept: Kept::of(req, cx.shared.cfg.access_log.is_some()),
        since: std::time::Instant::now(),
        collapsed: false,
        target: req.target.into(),
        head: req.method() == Method::Head,
        keep_alive: req.keep_alive,
        minor: req.minor,
        origin,
        deadline: cx.now.saturating_add(timer::ticks_for_secs(secs)),
    })
}

/// Status for an errno met while opening or reading a file.
fn io_status(errno: Option<i32>) -> Status {
    match errno {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
        _ => Status::InternalError,
    }
}

/// Answer one parsed request.
pub fn respond<'r>(cx: &mut Cx<'_>, req: &Request<'r>) -> Answer<'r> {
    crate::fault::injected("CORESTREAM_DEBUG_PANIC_ON", req.target);
    let shared = cx.shared;
    let cfg = &shared.cfg;
    // While shutting down every response ends its connection.
    let close = !req.keep_alive || cx.draining;
    let is_head = req.method() == Method::Head;
    let err = |status: Status| Answer::Now(Response::error(status, base(req, close), !is_head));
    match req.method() {
        Method::Other => {
            return Answer::Now(Response::error(
                Status::MethodNotAllowed,
                base(req, close),
                true,
            ))
        }
        Method::Options => {
            let mut fields = base(req, close);
            fields.allow = Some(super::response::Methods::Viewer);
            fields.cors = Some(Cors {
                origin: req.origin,
                preflight: req.preflight,
            });
            return Answer::Now(Response {
                status: Status::NoContent,
                fields,
                body: Body::Empty,
            });
        }
        Method::Get | Method::Head => {}
    }
    match path::decode(req.target, cx.path_buf) {
        Ok(()) => {}
        Err(PathError::Bad) => return err(Status::BadRequest),
        Err(PathError::Hidden) => return err(Status::NotFound),
    }
    if cfg.hidden_suffixes.iter().any(|s| cx.path_buf.ends_with(s)) {
        // Not renamed into place yet: never serve a half-written file.
        return err(Status::NotFound);
    }
    let (content_type, kind) = mime::lookup(cx.path_buf);
    let path_len = cx.path_buf.len();
    cx.path_buf.push(0);
    let Ok(cpath) = CStr::from_bytes_with_nul(cx.path_buf) else {
        return err(Status::BadRequest);
    };
    let root = shared.root.as_raw_fd();
    let path = &cx.path_buf[..path_len];

    if kind == Kind::Playlist {
        let query = req
            .target
            .iter()
            .position(|&b| b == b'?')
            .map_or(&b""[..], |i| &req.target[i + 1..]);
        match cx.cache.get(
            Dir::Root(root, shared.watcher.as_deref()),
            (path, cpath),
            cx.synced,
            &shared.hints,
            &shared.qoe.catalog,
        ) {
            Ok(c) => {
                let mut delta: Option<Bytes> = None;
                if let Some(info) = &c.info {
                    if query.windows(5).any(|w| w == b"_HLS_") {
                        let Ok(d) = live::directives(query) else {
                            return err(Status::BadRequest);
                        };
                        match live::blocking(info, &d) {
                            live::Block::Bad => return err(Status::BadRequest),
                            live::Block::Wait(_) if cx.expired => {
                                return err(Status::ServiceUnavailable);
                            }
                            live::Block::Wait(secs) => {
                                return Answer::Park(park_for(cx, req, path, secs));
                            }
                            live::Block::Now => {}
                        }
                        if d.skip {
                            let mut v = Vec::new();
                            let text = std::str::from_utf8(&c.body).unwrap_or("");
                            if live::delta_update(text, info, &mut v) {
                                delta = Some(Bytes::from(v));
                            }
                        }
                    }
                }
                if delta.is_none() && c.watched_under(root) {
                    cx.served = Some(c.clone());
                }
                return Answer::Now(playlist_response(
                    cx,
                    req,
                    close,
                    (content_type, kind),
                    &c,
                    delta,
                ));
            }
            Err(Miss::TooLarge) => {}
            Err(Miss::NotFound) => {
                if let Some(t) = shared.tier.as_deref() {
                    return pull(cx, req, t, path_len, (kind, content_type), close);
                }
                return err(Status::NotFound);
            }
            Err(Miss::Io(e)) => return err(io_status(e.raw_os_error())),
        }
    }

    if kind != Kind::Playlist {
        if let Some(g) = shared.growing.get(path) {
            return Answer::Now(growing(req, close, g));
        }
    }

    let file = match fsys::open_beneath(root, cpath) {
        Ok(f) => f,
        Err(e) => {
            let status = match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
                Some(libc::EIO) => Status::InternalError,
                Some(libc::ENOENT) if shared.tier.is_some() => {
                    if let Some(t) = shared.tier.as_deref() {
                        return pull(cx, req, t, path_len, (kind, content_type), close);
                    }
                    Status::NotFound
                }
                Some(libc::ENOENT) => {
                    // A part named by a preload hint (or listed but not yet renamed into
                    // place) is held until it is complete instead of answered 404.
                    if let Some(secs) = shared.hints.wait_for(path) {
                        if !cx.expired {
                            if let Some(w) = shared.watcher.as_deref() {
                                w.watch_dir_of(path);
                            }
                            return Answer::Park(park_for(cx, req, path, secs));
                        }
                    }
                    Status::NotFound
                }
                // ENOTDIR, EXDEV (escapes the root), ELOOP, EACCES, ENAMETOOLONG...: all
                // look the same from outside, which reveals nothing about the layout.
                _ => Status::NotFound,
            };
            return err(status);
        }
    };
    let meta = match fsys::regular_meta(&file) {
        Ok(Some(m)) => m,
        Ok(None) => return err(Status::NotFound),
        Err(_) => return err(Status::InternalError),
    };
    Answer::Now(file_response(
        cx,
        req,
        close,
        (content_type, kind),
        file,
        &meta,
    ))
}

/// The answer from a playlist held in memory (or its delta update): conditionals and Range
/// evaluated against it.
fn playlist_response<'r>(
    cx: &Cx<'_>,
    req: &Request<'r>,
    close: bool,
    (content_type, kind): (&'static str, Kind),
    c: &Cached,
    delta: Option<Bytes>,
) -> Response<'r> {
    // A delta update is its own representation: no validators of the full one.
    let is_delta = delta.is_some();
    let decision = if is_delta {
        Decision::Full
    } else {
        cond::decide(req, &c.meta, cx.now_secs)
    };
    let full = delta.unwrap_or_else(|| c.body.clone());
    let what = Entity {
        content_type,
        kind,
        meta: &c.meta,
        len: full.len() as u64,
        etag: !is_delta,
    };
    let (mut r, range) = entity(req, close, &what, decision);
    if let Some((start, end)) = range {
        r.body = Body::Bytes(full.slice(start as usize..end as usize));
    }
    r
}

/// The answer for an open regular file: conditionals and Range evaluated, the body the
/// range of the file they leave.
fn file_response<'r>(
    cx: &Cx<'_>,
    req: &Request<'r>,
    close: bool,
    (content_type, kind): (&'static str, Kind),
    file: std::os::fd::OwnedFd,
    meta: &FileMeta,
) -> Response<'r> {
    let what = Entity {
        content_type,
        kind,
        meta,
        len: meta.size,
        etag: true,
    };
    let (mut r, range) = entity(req, close, &what, cond::decide(req, meta, cx.now_secs));
    if let Some((start, end)) = range {
        r.body = Body::File(FileRange {
            file,
            pos: start,
            end,
        });
    }
    r
}

/// The request path without sockets: bytes in as one connection would send them (parsing,
/// routing, range and conditional handling), response heads and in-memory bodies out. File
/// bodies are represented by their head only. For fuzzing and property tests.
#[doc(hidden)]
pub fn process_bytes(shared: &Shared, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut path_buf = Vec::new();
    let mut cache = PlaylistCache::default();
    let env = head::Env {
        date: b"Thu, 01 Jan 2026 00:00:00 GMT",
        now: 1_767_225_600,
        cfg: &shared.cfg,
    };
    let mut buf = input.to_vec();
    let mut start = 0;
    while start < buf.len() {
        let limits = shared.cfg.limits;
        let mut verdict = parse(&buf[start..], limits);
        if matches!(verdict, Parse::Error(Status::VersionNotSupported)) {
            if let Some(at) = higher_minor(&buf[start..]) {
                buf[start + at] = b'1';
                verdict = parse(&buf[start..], limits);
            }
        }
        let rest = &buf[start..];
        let (r, used) = match verdict {
            Parse::Complete(req, len) => {
                let mut cx = Cx {
                    shared,
                    draining: false,
                    path_buf: &mut path_buf,
                    cache: &mut cache,
                    now: 1,
                    now_secs: env.now,
                    // A request that would be held is answered as its timeout would be.
                    expired: true,
                    rerun: false,
                    synced: false,
                    served: None,
                };
                match respond(&mut cx, &req) {
                    Answer::Now(r) => (r, len),
                    Answer::Park(_) => break,
                }
            }
            Parse::Partial => break,
            Parse::Error(status) => (unparsable(status), rest.len()),
        };
        head::encode(&r, &env, &mut out);
        match &r.body {
            Body::Static(b) => out.extend_from_slice(b),
            Body::Bytes(b) => out.extend_from_slice(b),
            Body::Empty | Body::File(_) | Body::Growing(_) => {}
        }
        start += used;
        if r.fields.close {
            break;
        }
    }
    out
}
