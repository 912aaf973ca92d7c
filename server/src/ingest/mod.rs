//! The ingest plane: packagers (ffmpeg's HLS and DASH muxers with `-method PUT`, Shaka
//! Packager, GPAC, cloud encoders) push playlists and segments over HTTP/1.1 to their own
//! port, and viewers get them at once: a segment or part pushed with chunked encoding is
//! served while it arrives (`live::growing`), a pushed playlist replaces the cached one and
//! wakes the LL-HLS requests held on it, without waiting for inotify.
//!
//! A thread per ingest connection with blocking I/O, like the admin plane, and unlike the
//! viewers' event loops: a box has a handful of packagers (tens of connections, each
//! writing to disk), not tens of thousands of viewers, and a blocked disk write must never
//! stall a viewer loop. `mod.rs` reads requests and answers them (bodies decoded by
//! `http::body`); `store` writes them beneath the root, `auth` decides who may push.

pub mod auth;
pub mod store;

use crate::admin::accesslog::{AccessLog, Entry};
use crate::admin::metrics::Exposition;
use crate::http::body::{self, BodyError, Framing};
use crate::http::date::DateCache;
use crate::http::head;
use crate::http::mime::{self, Kind};
use crate::http::path::{self, PathError};
use crate::http::response::{CacheControl, Fields, Methods};
use crate::http::{Body, Request, Response, Status};
use crate::live::growing::{Growing, State};
use crate::net::fsys;
use crate::qoe::Histogram;
use crate::shared::Shared;
use auth::{Auth, Verdict};
use corestream_common::sync::lock;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use store::{StoreError, Upload};

/// Bodies of requests that store nothing (ffmpeg's DELETE is chunked, with an empty body)
/// are read and dropped up to this size; larger ones end the connection.
const MAX_DISCARD: u64 = 64 * 1024;
/// How long a connection being closed may go on sending before it is dropped, in all.
const LINGER: Duration = Duration::from_secs(1);
/// Upper bounds of the upload-duration histogram (seconds).
const DURATION_BOUNDS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];

/// `--ingest*` options.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub allow: Vec<ipnet::IpNet>,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_connections: usize,
}

/// Counters of the ingest port, for /metrics.
#[derive(Default)]
pub struct Stats {
    /// Requests answered, by method and status.
    answered: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Body bytes received (stored or not).
    pub bytes_in: AtomicU64,
    /// Uploads receiving their body now.
    pub in_flight: AtomicU64,
    /// Open ingest connections, and those refused at --ingest-max-connections.
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    /// Seconds from the head of a PUT to its answer, for PUTs that stored an object.
    durations: Mutex<Histogram>,
}

impl Stats {
    fn answered(&self, method: &'static str, status: u16) {
        *lock(&self.answered).entry((method, status)).or_default() += 1;
    }

    fn stored(&self, secs: f64) {
        lock(&self.durations).observe(&DURATION_BOUNDS, secs);
    }

    pub fn render(&self, o: &mut Exposition) {
        o.family(
            "corestream_ingest_requests_total",
            "counter",
            "Requests answered on the ingest port, by method and status.",
        );
        {
            let m = lock(&self.answered);
            for ((method, status), n) in m.iter() {
                o.sample(
                    "corestream_ingest_requests_total",
                    &[("method", method), ("status", &status.to_string())],
                    n,
                );
            }
        }
        o.single(
            "corestream_ingest_bytes_total",
            "counter",
            "Body bytes received on the ingest port.",
            self.bytes_in.load(Relaxed),
        );
        o.single(
            "corestream_ingest_uploads_in_flight",
            "gauge",
            "PUTs receiving their body now.",
            self.in_flight.load(Relaxed),
        );
        o.single(
            "corestream_ingest_connections",
            "gauge",
            "Open ingest connections.",
            self.connections.load(Relaxed),
        );
        o.single(
            "corestream_ingest_connections_refused_total",
            "counter",
            "Ingest connections answered 503 at --ingest-max-connections.",
            self.refused.load(Relaxed),
        );
        {
            let h = lock(&self.durations);
            crate::qoe::histogram(
                o,
                "corestream_ingest_upload_duration_seconds",
                "Seconds from the head of a PUT to its answer, for objects stored.",
                &DURATION_BOUNDS,
                &h,
            );
        }
    }
}

struct Ctx {
    shared: Arc<Shared>,
    opts: Options,
    auth: Auth,
    log: Mutex<Option<AccessLog>>,
}

/// Open the ingest listener and serve it on its own threads. Returns its address.
pub fn start(shared: Arc<Shared>, opts: Options) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(opts.addr)
        .map_err(|e| io::Error::new(e.kind(), format!("ingest listener {}: {e}", opts.addr)))?;
    let local = listener.local_addr()?;
    let log = match &shared.cfg.access_log {
        Some(p) => Some(AccessLog::open(
            p,
            shared.log_generation.load(Relaxed),
            shared.cfg.access_log_format,
        )?),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        auth: Auth::new(opts.token_file.clone(), opts.allow.clone()),
        opts,
        shared,
        log: Mutex::new(log),
    });
    std::thread::Builder::new()
        .name("corestream-ingest".into())
        .spawn(move || loop {
            match listener.accept() {
                Ok((s, peer)) => admit(&ctx, s, peer),
                Err(e) => {
                    say!("corestream: ingest accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
    Ok(local)
}

/// Serve a new connection on its own thread, or refuse it when there are too many.
fn admit(ctx: &Arc<Ctx>, s: TcpStream, peer: SocketAddr) {
    let stats = &ctx.shared.ingest;
    if stats.connections.load(Relaxed) >= ctx.opts.max_connections as u64 {
        stats.refused.fetch_add(1, Relaxed);
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let mut c = Conn::new(ctx, s, peer);
        c.reply(
            "-",
            Status::ServiceUnavailable,
            "503 too many ingest connections (--ingest-max-connections)\n",
            true,
        );
        return;
    }
    stats.connections.fetch_add(1, Relaxed);
    let ctx2 = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("corestream-push".into())
        .spawn(move || {
            let mut c = Conn::new(&ctx2, s, peer);
            // A panic (crate::fault) ends this connection: viewers following the object it
            // was pushing are closed (its upload is dropped unstored), the slot is freed.
            if crate::fault::contain(|| c.serve()).is_none() {
                let open = c
                    .publishing
                    .take()
                    .filter(|g| g.available().1 == State::Open);
                if let Some(obj) = open {
                    ctx2.shared.growing.end(&c.path, &obj, State::Aborted);
                }
            }
            ctx2.shared.ingest.connections.fetch_sub(1, Relaxed);
        });
    if let Err(e) = spawned {
        stats.connections.fetch_sub(1, Relaxed);
        say!("corestream: cannot start an ingest connection thread: {e}");
    }
}

/// A request head, owned (the body is read from the same buffer afterwards).
#[derive(Default)]
pub(crate) struct Head {
    method: String,
    target: Vec<u8>,
    minor: u8,
    close: bool,
    framing: Option<Framing>,
    expect_continue: bool,
    authorization: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
}

/// Why a head cannot be served, and the answer.
pub(crate) type Refusal = (Status, &'static str);

pub(crate) fn parse_head(raw: &[u8]) -> Result<Head, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err((Status::HeadersTooLarge, "431 too many header fields\n"))
        }
        _ => return Err((Status::BadRequest, "400 malformed request head\n")),
    }
    let minor = match req.version {
        Some(0) => 0,
        Some(1) => 1,
        _ => return Err((Status::VersionNotSupported, "505 use HTTP/1.1\n")),
    };
    let mut h = Head {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").as_bytes().to_vec(),
        minor,
        close: minor == 0,
        ..Head::default()
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut coded = false;
    for f in req.headers.iter() {
        let v = crate::http::trim(f.value);
        let name = f.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or((Status::BadRequest, "400 bad Content-Length\n"))?;
            if length.is_some_and(|l| l != n) {
                return Err((
                    Status::BadRequest,
                    "400 conflicting Content-Length fields\n",
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in v.split(|&b| b == b',').map(crate::http::trim) {
                if coding.is_empty() {
                    continue;
                }
                if chunked {
                    // Anything after chunked leaves the body unframed (RFC 9112 6.3).
                    return Err((
                        Status::BadRequest,
                        "400 chunked must be the last transfer coding\n",
                    ));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    coded = true;
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for t in v.split(|&b| b == b',').map(crate::http::trim) {
                if t.eq_ignore_ascii_case(b"close") {
                    h.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    h.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if v.eq_ignore_ascii_case(b"100-continue") {
                h.expect_continue = minor == 1;
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            h.authorization = Some(v.to_vec());
        } else if name.eq_ignore_ascii_case("user-agent") {
            h.user_agent = Some(v.to_vec());
        }
    }
    if coded {
        return Err((
            Status::NotImplemented,
            "501 only the chunked transfer coding is accepted\n",
        ));
    }
    h.framing = match (chunked, length) {
        // Both framings at once is how requests are smuggled (RFC 9112 6.1): refuse.
        (true, Some(_)) => {
            return Err((
                Status::BadRequest,
                "400 Content-Length and Transfer-Encoding together\n",
            ))
        }
        (true, None) if minor == 0 => {
            return Err((Status::BadRequest, "400 chunked needs HTTP/1.1\n"))
        }
        (true, None) => Some(Framing::Chunked),
        (false, Some(n)) => Some(Framing::Length(n)),
        (false, None) => None,
    };
    Ok(h)
}

/// What one request came to, for its answer and its log line.
struct Outcome {
    status: Status,
    text: std::borrow::Cow<'static, str>,
    /// The body was not (entirely) read: the connection must end after the answer.
    close: bool,
    bytes_in: u64,
}

impl Outcome {
    fn new(status: Status, text: &'static str) -> Outcome {
        Outcome {
            status,
            text: text.into(),
            close: false,
            bytes_in: 0,
        }
    }

    fn closing(mut self) -> Outcome {
        self.close = true;
        self
    }
}

struct Conn<'a> {
    ctx: &'a Ctx,
    s: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    date: DateCache,
    /// The path being answered (decoded), for the log.
    path: Vec<u8>,
    /// The object this request is publishing while it arrives, for the panic handler
    /// (crate::fault): only this connection's own object is aborted, never another push's
    /// at the same path.
    publishing: Option<Arc<Growing>>,
}

impl<'a> Conn<'a> {
    fn new(ctx: &'a Ctx, s: TcpStream, peer: SocketAddr) -> Conn<'a> {
        let t = Some(ctx.opts.timeout);
        let _ = s.set_read_timeout(t);
        let _ = s.set_write_timeout(t);
        let _ = s.set_nodelay(true);
        Conn {
            ctx,
            s,
            peer,
            buf: Vec::with_capacity(8192),
            date: DateCache::default(),
            path: Vec::new(),
            publishing: None,
        }
    }

    fn serve(&mut self) {
        loop {
            let Some(len) = self.read_head() else {
                return;
            };
            let head = parse_head(&self.buf[..len]);
            self.buf.drain(..len);
            let started = Instant::now();
            let (head, outcome) = match head {
                Ok(h) => {
                    let o = self.handle(&h, started);
                    (h, o)
                }
                Err((status, text)) => (Head::default(), Outcome::new(status, text).closing()),
            };
            let close = outcome.close || head.close;
            let method = method_label(&head.method);
            self.reply(method, outcome.status, &outcome.text, close);
            self.log(&head, &outcome);
            if close {
                let _ = self.s.shutdown(std::net::Shutdown::Write);
                // Let the client read the answer before the socket goes away: a second in
                // all, not per read, or a refused client (no token, body too large) sending
                // a byte now and then kept its slot for good.
                let mut sink = [0u8; 4096];
                let until = Instant::now() + LINGER;
                while corestream_common::deadline::arm(&self.s, until).is_ok()
                    && matches!(self.s.read(&mut sink), Ok(n) if n > 0)
                {}
                return;
            }
        }
    }

    /// Read until a whole head is buffered: its length, or None when the connection ends
    /// (closed, a head not whole within the timeout, or a head too large, which is answered
    /// first). The timeout holds for the whole head, waiting for it included, not per read:
    /// a client sending a byte now and then must not keep a connection slot.
    fn read_head(&mut self) -> Option<usize> {
        let max = self.ctx.shared.cfg.limits.max_header_bytes;
        let deadline = Instant::now() + self.ctx.opts.timeout;
        let head = self.read_head_by(max, deadline);
        // The body's reads wait up to the timeout each: a slow upload moves, a stalled one not.
        let _ = self.s.set_read_timeout(Some(self.ctx.opts.timeout));
        head
    }

    fn read_head_by(&mut self, max: usize, deadline: Instant) -> Option<usize> {
        loop {
            // Empty lines before a request are allowed (RFC 9112 2.2).
            while self.buf.first() == Some(&b'\n') || self.buf.starts_with(b"\r\n") {
                let n = if self.buf[0] == b'\n' { 1 } else { 2 };
                self.buf.drain(..n);
            }
            if !self.buf.is_empty() {
                // httparse finds the end of the head, bare-LF line ends included (RFC 9112
                // 2.2); a malformed head is answered by `parse_head`.
                let mut headers = [httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
                match httparse::Request::new(&mut headers).parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) if n <= max => return Some(n),
                    Ok(httparse::Status::Complete(_)) => {}
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Some(self.buf.len()),
                }
            }
            if self.buf.len() > max {
                self.reply(
                    "-",
                    Status::HeadersTooLarge,
                    "431 request head too large\n",
                    true,
                );
                return None;
            }
            if corestream_common::deadline::arm(&self.s, deadline).is_err() {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    fn handle(&mut self, h: &Head, started: Instant) -> Outcome {
        self.path.clear();
        let method = h.method.as_str();
        if method == "OPTIONS" {
            return self.without_body(h, Outcome::new(Status::NoContent, ""));
        }
        if method != "PUT" && method != "DELETE" {
            return self.without_body(
                h,
                Outcome::new(
                    Status::MethodNotAllowed,
                    "405 the ingest port takes PUT and DELETE (viewers use the viewers' port)\n",
                ),
            );
        }
        let peer = self.peer.ip();
        let refusal = match self.ctx.auth.check(peer, h.authorization.as_deref()) {
            Verdict::Allowed => None,
            Verdict::NoToken => Some(Outcome::new(
                Status::Unauthorized,
                "401 this port needs a token: send Authorization: Bearer <token> (--ingest-token-file)\n",
            )),
            Verdict::WrongToken => Some(Outcome::new(Status::Forbidden, "403 wrong token\n")),
            Verdict::Address(why) => Some(Outcome {
                text: format!("403 {why}\n").into(),
                ..Outcome::new(Status::Forbidden, "")
            }),
            Verdict::TokenUnavailable => Some(Outcome::new(
                Status::ServiceUnavailable,
                "503 the ingest token file cannot be read; fix --ingest-token-file\n",
            )),
        };
        if let Some(o) = refusal {
            // The body (if any) stays unread: end the connection after the answer.
            return if h.framing.is_some() { o.closing() } else { o };
        }
        match path::decode(&h.target, &mut self.path) {
            Ok(()) if !self.path.is_empty() && !h.target.ends_with(b"/") => {}
            Ok(()) => {
                return self.without_body(
                    h,
                    Outcome::new(Status::BadRequest, "400 the path must name a file\n"),
                )
            }
            Err(PathError::Bad) => {
                return self
                    .without_body(h, Outcome::new(Status::BadRequest, "400 malformed path\n"))
            }
            Err(PathError::Hidden) => return self.without_body(
                h,
                Outcome::new(
                    Status::BadRequest,
                    "400 names starting with a dot (and ..) are never served: rename the object\n",
                ),
            ),
        }
        let cfg = &self.ctx.shared.cfg;
        if cfg.hidden_suffixes.iter().any(|s| self.path.ends_with(s)) {
            return self.without_body(
                h,
                Outcome::new(
                    Status::BadRequest,
                    "400 this suffix is never served (--hidden-suffixes): push the final name\n",
                ),
            );
        }
        if method == "DELETE" {
            let o = self.without_body(h, Outcome::new(Status::NoContent, ""));
            if o.status != Status::NoContent {
                return o;
            }
            return match store::delete(self.ctx.shared.root.as_raw_fd(), &self.path) {
                Ok(()) => {
                    self.ctx
                        .shared
                        .inboxes
                        .changed(std::slice::from_ref(&self.path));
                    o
                }
                Err(e) => Outcome {
                    bytes_in: o.bytes_in,
                    ..store_refusal(e)
                },
            };
        }
        let outcome = self.put(h, started);
        // Ended one way or the other: the file's space must not wait for the next request.
        self.publishing = None;
        outcome
    }

    /// Answer `o` to a request whose body (if any) is read and dropped first.
    fn without_body(&mut self, h: &Head, o: Outcome) -> Outcome {
        let Some(framing) = h.framing else {
            return o;
        };
        // A client waiting for 100 Continue has its answer now (RFC 9110 10.1.1); the body
        // it holds back is never read.
        if h.expect_continue || matches!(framing, Framing::Length(n) if n > MAX_DISCARD) {
            return o.closing();
        }
        // At most MAX_DISCARD bytes in all and --ingest-timeout for the whole body: these
        // answers come before (or without) the token check, so a client trickling a body
        // must not keep a slot.
        let mut by = corestream_common::deadline::By {
            s: &mut self.s,
            deadline: Instant::now() + self.ctx.opts.timeout,
        };
        let mut total = 0u64;
        let read = body::read(&mut by, &mut self.buf, framing, |d| {
            total += d.len() as u64;
            if total > MAX_DISCARD {
                Err(())
            } else {
                Ok(())
            }
        });
        match read {
            Ok(n) => Outcome { bytes_in: n, ..o },
            Err(BodyError::Malformed(why)) => Outcome {
                text: format!("400 {why}\n").into(),
                ..Outcome::new(Status::BadRequest, "")
            }
            .closing(),
            Err(_) => o.closing(),
        }
    }

    fn put(&mut self, h: &Head, started: Instant) -> Outcome {
        let shared = &self.ctx.shared;
        let max = self.ctx.opts.max_bytes;
        let Some(framing) = h.framing else {
            return Outcome::new(
                Status::LengthRequired,
                "411 send Content-Length or Transfer-Encoding: chunked\n",
            );
        };
        let declared = match framing {
            Framing::Length(n) if n > max => {
                return Outcome::new(
                    Status::PayloadTooLarge,
                    "413 object larger than --ingest-max-bytes\n",
                )
                .closing()
            }
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        let mut up = match Upload::begin(shared.root.as_raw_fd(), &self.path) {
            Ok(u) => u,
            Err(e) => return store_refusal(e).closing(),
        };
        if h.expect_continue && self.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return Outcome::new(Status::BadRequest, "").closing();
        }
        let (content_type, kind) = mime::lookup(&self.path);
        // Playlists are never served half-written: viewers keep the previous version until
        // the new one is complete. Everything else is served as it arrives.
        let growing = if kind == Kind::Playlist {
            None
        } else {
            match up.file.try_clone() {
                Ok(f) => {
                    let g = Arc::new(Growing::new(
                        f,
                        content_type,
                        kind,
                        declared,
                        shared.cfg.workers,
                    ));
                    shared.growing.begin(&self.path, g.clone());
                    self.publishing = Some(g.clone());
                    Some(g)
                }
                Err(_) => None,
            }
        };
        let stats = &shared.ingest;
        stats.in_flight.fetch_add(1, Relaxed);
        // Decremented when this function is left, a panic included (crate::fault).
        struct InFlight<'a>(&'a AtomicU64);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Relaxed);
            }
        }
        let in_flight = InFlight(&stats.in_flight);
        let read = body::read(&mut self.s, &mut self.buf, framing, |d| {
            crate::fault::injected("CORESTREAM_DEBUG_PANIC_PUSH", d);
            stats.bytes_in.fetch_add(d.len() as u64, Relaxed);
            if up.written + d.len() as u64 > max {
                return Err(StoreError::TooLarge);
            }
            up.write(d)?;
            if let Some(g) = &growing {
                shared.growing.wrote(g, up.written);
            }
            Ok(())
        });
        drop(in_flight);
        let end = |state| {
            if let Some(g) = &growing {
                shared.growing.end(&self.path, g, state);
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                end(State::Aborted);
                return match e {
                    BodyError::Gone | BodyError::Reset | BodyError::Timeout => Outcome::new(
                        Status::BadRequest,
                        "400 the body ended early (connection closed or timed out); nothing was stored\n",
                    ),
                    BodyError::Malformed(why) => Outcome {
                        text: format!("400 {why}; nothing was stored\n").into(),
                        ..Outcome::new(Status::BadRequest, "")
                    },
                    BodyError::Sink(e) => store_refusal(e),
                }
                .closing();
            }
        };
        let playlist = (kind == Kind::Playlist
            && self.path.ends_with(b".m3u8")
            && up.written <= crate::live::cache::MAX_CACHED_BYTES)
            .then(|| fsys::read_exact_size(up.file.as_raw_fd(), up.written).ok())
            .flatten();
        match up.commit() {
            Ok(replaced) => {
                end(State::Complete);
                if let Some(text) = playlist {
                    // Preload hints are known before any viewer re-reads the playlist.
                    if let Ok(t) = std::str::from_utf8(&text) {
                        shared
                            .hints
                            .update(&self.path, &crate::live::playlist::scan(t));
                    }
                }
                shared.inboxes.changed(std::slice::from_ref(&self.path));
                stats.stored(started.elapsed().as_secs_f64());
                Outcome {
                    bytes_in: n,
                    ..if replaced {
                        Outcome::new(Status::NoContent, "")
                    } else {
                        Outcome::new(Status::Created, "201 created\n")
                    }
                }
            }
            Err(e) => {
                end(State::Aborted);
                Outcome {
                    bytes_in: n,
                    ..store_refusal(e)
                }
            }
        }
    }

    /// Write an answer (`text` as its body).
    fn reply(&mut self, method: &'static str, status: Status, text: &str, close: bool) {
        self.date.update(SystemTime::now());
        let cfg = &self.ctx.shared.cfg;
        let resp = Response {
            status,
            fields: Fields {
                content_type: (!text.is_empty()).then_some("text/plain; charset=utf-8"),
                content_length: (status != Status::NoContent).then_some(text.len() as u64),
                cache_control: Some(CacheControl::NoStore),
                allow: (status == Status::MethodNotAllowed || method == "OPTIONS")
                    .then_some(Methods::Ingest),
                www_authenticate: status == Status::Unauthorized,
                close,
                minor: 1,
                ..Fields::default()
            },
            body: Body::Empty,
        };
        let env = head::Env::new(&self.date, cfg);
        let mut out = Vec::with_capacity(256 + text.len());
        head::encode(&resp, &env, &mut out);
        if status != Status::NoContent {
            out.extend_from_slice(text.as_bytes());
        }
        let _ = self.s.write_all(&out);
        self.ctx.shared.ingest.answered(method, status.code());
    }

    fn log(&self, h: &Head, o: &Outcome) {
        let mut guard = lock(&self.ctx.log);
        let Some(log) = guard.as_mut() else {
            return;
        };
        log.maybe_reopen(self.ctx.shared.log_generation.load(Relaxed));
        let req = Request {
            method_str: if h.method.is_empty() { "-" } else { &h.method },
            target: &h.target,
            minor: h.minor,
            user_agent: h.user_agent.as_deref(),
            ..Request::default()
        };
        log.record(&Entry {
            now_secs: self.date.unix_secs(),
            peer: Some(self.peer.ip()),
            req: Some(&req),
            status: o.status.code(),
            bytes: o.bytes_in,
            cmcd: None,
        });
        log.flush();
    }
}

/// The method as a metric label (a fixed set: clients choose the method string).
fn method_label(m: &str) -> &'static str {
    match m {
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "" => "-",
        _ => "other",
    }
}

/// The answer for a failed store operation.
fn store_refusal(e: StoreError) -> Outcome {
    match e {
        StoreError::Conflict => Outcome::new(
            Status::Conflict,
            "409 a directory stands where the file would go, or a file where a directory would\n",
        ),
        StoreError::Outside => Outcome::new(
            Status::Forbidden,
            "403 the path leaves the media root (a symlink pointing out)\n",
        ),
        StoreError::Missing => Outcome::new(Status::NotFound, "404 no such file\n"),
        StoreError::Full => Outcome::new(
            Status::InsufficientStorage,
            "507 no space left on the media file system; nothing was stored and the previous version is kept\n",
        ),
        StoreError::TooLarge => Outcome::new(
            Status::PayloadTooLarge,
            "413 object larger than --ingest-max-bytes (or than the file system allows); nothing was stored\n",
        ),
        StoreError::Io(e) => {
            say!("corestream: ingest: {e}");
            Outcome::new(
                Status::InternalError,
                "500 cannot store the object (see the server log)\n",
            )
        }
    }
}
