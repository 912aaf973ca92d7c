//! One worker: one thread, one `mio::Poll`, one SO_REUSEPORT listener, a slab of connections.
//!
//! Edge-triggered discipline: readiness is remembered per connection (`CAN_READ`,
//! `CAN_WRITE`) and cleared only when a syscall says WouldBlock. Work per turn is bounded;
//! a connection that still has work goes back on the ready queue instead of starving others.

use crate::config::{Config, Cors};
use crate::fsys;
use crate::http::{self, Decision, Method, Parse, Request, Status};
use crate::mime::{self, Kind};
use crate::path::{self, PathError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::ffi::CStr;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// State shared read-only by all workers of a process.
pub struct Shared {
    pub cfg: Config,
    pub root: OwnedFd,
}

const LISTENER: Token = Token(usize::MAX);
/// Bytes asked of recv() at a time; a request head is usually well under this.
const READ_CHUNK: usize = 4096;
/// Bytes one connection may send per turn before others get theirs.
const WRITE_BUDGET: usize = 1 << 20;
/// Requests one connection may have answered per turn (pipelining floods).
const REQUEST_BUDGET: u32 = 32;
/// Connections accepted per turn before events of existing ones are served.
const ACCEPT_BUDGET: usize = 256;
/// How long to stop accepting after EMFILE/ENFILE instead of spinning on a listener the
/// kernel keeps reporting readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Bytes a closing connection may still send us before we stop draining and close.
const LINGER_LIMIT: usize = 64 * 1024;
/// Buffers kept for reuse; beyond this they are freed.
const POOL_MAX: usize = 1024;

const CAN_READ: u8 = 1;
const CAN_WRITE: u8 = 2;
const QUEUED: u8 = 4;
/// Close (after shutting down our side) once the current response is out.
const CLOSE_AFTER: u8 = 8;
/// Our write side is shut: read and discard until the peer closes.
const LINGER: u8 = 16;

struct FileBody {
    file: OwnedFd,
    pos: u64,
    /// Exclusive end, fixed from the size seen at open: never send beyond it.
    end: u64,
}

struct Conn {
    sock: TcpStream,
    /// Unparsed request bytes. Capacity 0 while idle.
    rbuf: Vec<u8>,
    /// Response head (and small in-memory bodies) not yet sent. Capacity 0 while idle.
    out: Vec<u8>,
    out_pos: usize,
    body: Option<FileBody>,
    flags: u8,
    lingered: u32,
}

enum Step {
    /// Waiting for the kernel to report readiness.
    Idle,
    /// Budget used up with work left: go round the ready queue again.
    Yield,
    Close,
}

struct Pool(Vec<Vec<u8>>);

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        self.0
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK))
    }
    fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() == 0 {
            return;
        }
        if self.0.len() < POOL_MAX && v.capacity() <= 4 * READ_CHUNK {
            v.clear();
            self.0.push(v);
        }
    }
}

pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    ready: VecDeque<usize>,
    pool: Pool,
    date: http::DateCache,
    /// Decoded request path, NUL-terminated before the open.
    path_buf: Vec<u8>,
    accept_pending: bool,
    accept_paused_until: Option<Instant>,
    last_emfile_log: Option<Instant>,
}

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>, mut listener: TcpListener) -> io::Result<Worker> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Worker {
            id,
            shared,
            poll,
            listener,
            conns: Slab::with_capacity(1024),
            ready: VecDeque::with_capacity(1024),
            pool: Pool(Vec::new()),
            date: http::DateCache::default(),
            path_buf: Vec::with_capacity(256),
            accept_pending: true,
            accept_paused_until: None,
            last_emfile_log: None,
        })
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if let Some(until) = self.accept_paused_until {
                if now >= until {
                    self.accept_paused_until = None;
                    // Edge-triggered: the kernel will not tell us again about connections
                    // that queued while we were paused, so try accepting unprompted.
                    self.accept_pending = true;
                }
            }
            let timeout = if !self.ready.is_empty()
                || (self.accept_pending && self.accept_paused_until.is_none())
            {
                Some(Duration::ZERO)
            } else {
                self.accept_paused_until
                    .map(|u| u.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.date.update(SystemTime::now());
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept_pending = true;
                    continue;
                }
                let k = ev.token().0;
                let Some(c) = self.conns.get_mut(k) else {
                    continue;
                };
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.flags |= CAN_READ;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.flags |= CAN_WRITE;
                }
                if c.flags & QUEUED == 0 {
                    c.flags |= QUEUED;
                    self.ready.push_back(k);
                }
            }
            if self.accept_pending && self.accept_paused_until.is_none() {
                self.accept();
            }
            for _ in 0..self.ready.len() {
                let Some(k) = self.ready.pop_front() else {
                    break;
                };
                match self.drive(k) {
                    Step::Idle => {
                        if let Some(c) = self.conns.get_mut(k) {
                            c.flags &= !QUEUED;
                        }
                    }
                    Step::Yield => self.ready.push_back(k),
                    Step::Close => self.close(k),
                }
            }
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((mut sock, _peer)) => {
                    // Small responses (playlists) must not wait for Nagle; bodies are
                    // coalesced with MSG_MORE instead.
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let k = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        Token(k),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        eprintln!(
                            "corestream: worker {}: cannot register connection: {e}",
                            self.id
                        );
                        continue;
                    }
                    entry.insert(Conn {
                        sock,
                        rbuf: Vec::new(),
                        out: Vec::new(),
                        out_pos: 0,
                        body: None,
                        // A request may already be waiting; try reading at once.
                        flags: CAN_READ | CAN_WRITE | QUEUED,
                        lingered: 0,
                    });
                    self.ready.push_back(k);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    if errno == libc::EMFILE || errno == libc::ENFILE {
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        let now = Instant::now();
                        if self
                            .last_emfile_log
                            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                        {
                            self.last_emfile_log = Some(now);
                            let (soft, _) = crate::nofile_limit();
                            eprintln!(
                                "corestream: worker {}: accept: {e} (nofile limit {soft}); pausing accepts {} ms. \
                                 Raise the limit: LimitNOFILE= in the unit, fs.file-max, see `corestream-tune diagnose`",
                                self.id,
                                ACCEPT_PAUSE.as_millis()
                            );
                        }
                        return;
                    }
                    // ECONNABORTED and friends concern one connection only: keep accepting.
                    if errno == libc::ECONNABORTED || errno == libc::EPERM || errno == libc::EPROTO
                    {
                        continue;
                    }
                    eprintln!("corestream: worker {}: accept: {e}", self.id);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
        // Budget spent with connections possibly still queued: accept_pending stays set.
    }

    fn close(&mut self, k: usize) {
        if self.conns.contains(k) {
            let c = self.conns.remove(k);
            self.pool.give(c.rbuf);
            self.pool.give(c.out);
            // Dropping the socket closes it, which also removes it from the epoll set.
        }
    }

    fn drive(&mut self, k: usize) -> Step {
        let Some(conn) = self.conns.get_mut(k) else {
            return Step::Idle;
        };
        let fd = conn.sock.as_raw_fd();
        let mut requests = 0u32;
        let mut sent = 0usize;
        loop {
            if conn.flags & LINGER != 0 {
                return linger(conn, fd);
            }
            if conn.out_pos < conn.out.len() || conn.body.is_some() {
                if conn.flags & CAN_WRITE == 0 {
                    return Step::Idle;
                }
                match write_response(conn, fd, &mut sent) {
                    Ok(true) => {
                        conn.out.clear();
                        conn.out_pos = 0;
                        conn.body = None;
                        if conn.rbuf.is_empty() {
                            self.pool.give(std::mem::take(&mut conn.rbuf));
                        }
                        self.pool.give(std::mem::take(&mut conn.out));
                        if conn.flags & CLOSE_AFTER != 0 {
                            // Shut our side and drain theirs so unread pipelined bytes do
                            // not turn our close into a reset that destroys the response.
                            let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                            conn.flags |= LINGER;
                            conn.rbuf.clear();
                        }
                        continue;
                    }
                    Ok(false) if sent >= WRITE_BUDGET => return Step::Yield,
                    Ok(false) => {
                        conn.flags &= !CAN_WRITE;
                        return Step::Idle;
                    }
                    Err(_) => return Step::Close,
                }
            }
            if !conn.rbuf.is_empty() {
                if requests >= REQUEST_BUDGET {
                    return Step::Yield;
                }
                let limits = self.shared.cfg.limits;
                let used = match http::parse(&conn.rbuf, limits) {
                    Parse::Complete(req, len) => {
                        requests += 1;
                        if conn.out.capacity() == 0 {
                            conn.out = self.pool.take();
                        }
                        let close = respond(
                            &self.shared,
                            &req,
                            &mut self.path_buf,
                            self.date.get(),
                            &mut conn.out,
                            &mut conn.body,
                        );
                        if close {
                            conn.flags |= CLOSE_AFTER;
                        }
                        Some(len)
                    }
                    Parse::Partial => None,
                    Parse::Error(status) => {
                        if conn.out.capacity() == 0 {
                            conn.out = self.pool.take();
                        }
                        write_error(
                            &self.shared.cfg,
                            status,
                            None,
                            self.date.get(),
                            false,
                            &mut conn.out,
                            true,
                        );
                        conn.flags |= CLOSE_AFTER;
                        Some(conn.rbuf.len())
                    }
                };
                if let Some(len) = used {
                    conn.rbuf.drain(..len);
                    continue;
                }
            }
            if conn.flags & CAN_READ == 0 {
                if conn.rbuf.is_empty() {
                    self.pool.give(std::mem::take(&mut conn.rbuf));
                }
                return Step::Idle;
            }
            if conn.rbuf.capacity() == 0 {
                conn.rbuf = self.pool.take();
            }
            match fsys::recv_into(fd, &mut conn.rbuf, READ_CHUNK) {
                // Peer closed. Everything it sent before has been answered (we only read
                // when no response is pending), so there is nothing left to do.
                Ok(0) => return Step::Close,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => conn.flags &= !CAN_READ,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
    }
}

fn linger(conn: &mut Conn, fd: i32) -> Step {
    let mut scratch = [0u8; 4096];
    loop {
        if conn.flags & CAN_READ == 0 {
            return Step::Idle;
        }
        // SAFETY: scratch is a valid writable buffer of its length.
        let n = unsafe { libc::recv(fd, scratch.as_mut_ptr().cast(), scratch.len(), 0) };
        if n == 0 {
            return Step::Close;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                ErrorKind::WouldBlock => conn.flags &= !CAN_READ,
                ErrorKind::Interrupted => {}
                _ => return Step::Close,
            }
            continue;
        }
        conn.lingered = conn.lingered.saturating_add(n as u32);
        if conn.lingered as usize > LINGER_LIMIT {
            return Step::Close;
        }
    }
}

/// Send pending head bytes, then the file body. Ok(true) when the response is complete,
/// Ok(false) when the socket would block or the turn's budget is spent.
fn write_response(conn: &mut Conn, fd: i32, sent: &mut usize) -> io::Result<bool> {
    while conn.out_pos < conn.out.len() {
        let more = conn.body.is_some();
        match fsys::send(fd, &conn.out[conn.out_pos..], more) {
            Ok(n) => {
                conn.out_pos += n;
                *sent += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let Some(body) = conn.body.as_mut() else {
        return Ok(true);
    };
    while body.pos < body.end {
        if *sent >= WRITE_BUDGET {
            return Ok(false);
        }
        let want = (body.end - body.pos).min((WRITE_BUDGET - *sent) as u64) as usize;
        match fsys::sendfile(fd, body.file.as_raw_fd(), &mut body.pos, want) {
            // The file is shorter than when we opened it: the response cannot be completed
            // truthfully, so the connection must end.
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "file shrank during send",
                ))
            }
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn common_head(out: &mut Vec<u8>, status: Status, date: &[u8]) {
    out.extend_from_slice(status.line());
    out.extend_from_slice(b"Server: corestream\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
}

fn cors_headers(cfg: &Config, origin: Option<&[u8]>, out: &mut Vec<u8>) {
    match &cfg.cors {
        Cors::Any => out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n"),
        Cors::List(list) => {
            if let Some(o) = origin {
                if list.iter().any(|a| a.as_slice() == o) {
                    push_header(out, b"Access-Control-Allow-Origin", o);
                }
            }
            out.extend_from_slice(b"Vary: Origin\r\n");
        }
    }
    out.extend_from_slice(b"Access-Control-Expose-Headers: Content-Length, Content-Range\r\n");
}

fn connection_header(out: &mut Vec<u8>, keep_alive: bool, minor: u8) {
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}

/// An error answer with a short text body. `bare` marks a request we could not parse (no
/// origin to echo, and HTTP/1.1 framing).
fn write_error(
    cfg: &Config,
    status: Status,
    req: Option<&Request<'_>>,
    date: &[u8],
    keep_alive: bool,
    out: &mut Vec<u8>,
    send_body: bool,
) {
    common_head(out, status, date);
    let body = status.error_body();
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    http::push_u64(out, body.len() as u64);
    out.extend_from_slice(b"\r\nCache-Control: ");
    if status == Status::NotFound {
        out.extend_from_slice(&cfg.cache_missing);
    } else {
        out.extend_from_slice(b"no-store");
    }
    out.extend_from_slice(b"\r\n");
    if status == Status::MethodNotAllowed {
        out.extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\n");
    }
    if status == Status::ServiceUnavailable {
        out.extend_from_slice(b"Retry-After: 1\r\n");
    }
    cors_headers(cfg, req.and_then(|r| r.origin), out);
    connection_header(out, keep_alive, req.map_or(1, |r| r.minor));
    out.extend_from_slice(b"\r\n");
    if send_body {
        out.extend_from_slice(body);
    }
}

/// Build the response for one parsed request into `out` (head, small bodies) and `body`
/// (an open file range). Returns true when the connection must close afterwards.
fn respond(
    shared: &Shared,
    req: &Request<'_>,
    path_buf: &mut Vec<u8>,
    date: &[u8],
    out: &mut Vec<u8>,
    body: &mut Option<FileBody>,
) -> bool {
    let cfg = &shared.cfg;
    let keep_alive = req.keep_alive;
    let is_head = req.method() == Method::Head;
    match req.method() {
        Method::Other => {
            write_error(
                cfg,
                Status::MethodNotAllowed,
                Some(req),
                date,
                keep_alive,
                out,
                true,
            );
            return !keep_alive;
        }
        Method::Options => {
            common_head(out, Status::NoContent, date);
            out.extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\n");
            cors_headers(cfg, req.origin, out);
            if req.preflight {
                out.extend_from_slice(
                    b"Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n\
                      Access-Control-Allow-Headers: Range, If-Range, If-None-Match, If-Modified-Since\r\n\
                      Access-Control-Max-Age: 86400\r\n",
                );
            }
            connection_header(out, keep_alive, req.minor);
            out.extend_from_slice(b"\r\n");
            return !keep_alive;
        }
        Method::Get | Method::Head => {}
    }
    let err = |status: Status, out: &mut Vec<u8>| {
        write_error(cfg, status, Some(req), date, keep_alive, out, !is_head);
        !keep_alive
    };
    match path::decode(req.target, path_buf) {
        Ok(()) => {}
        Err(PathError::Bad) => return err(Status::BadRequest, out),
        Err(PathError::Hidden) => return err(Status::NotFound, out),
    }
    let (content_type, kind) = mime::lookup(path_buf);
    path_buf.push(0);
    let Ok(cpath) = CStr::from_bytes_with_nul(path_buf) else {
        return err(Status::BadRequest, out);
    };
    let file = match fsys::open_beneath(shared.root.as_raw_fd(), cpath) {
        Ok(f) => f,
        Err(e) => {
            let status = match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
                Some(libc::EIO) => Status::InternalError,
                // ENOENT, ENOTDIR, EXDEV (escapes the root), ELOOP, EACCES, ENAMETOOLONG...:
                // all look the same from outside, which reveals nothing about the layout.
                _ => Status::NotFound,
            };
            return err(status, out);
        }
    };
    let meta = match fsys::regular_meta(&file) {
        Ok(Some(m)) => m,
        Ok(None) => return err(Status::NotFound, out),
        Err(_) => return err(Status::InternalError, out),
    };
    let (status, start, end) = match http::decide(req, &meta) {
        Decision::Full => (Status::Ok, 0, meta.size),
        Decision::Partial { start, end } => (Status::PartialContent, start, end + 1),
        Decision::NotModified => (Status::NotModified, 0, 0),
        Decision::PreconditionFailed => return err(Status::PreconditionFailed, out),
        Decision::Unsatisfiable => {
            common_head(out, Status::RangeNotSatisfiable, date);
            let msg = Status::RangeNotSatisfiable.error_body();
            out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
            http::push_u64(out, if is_head { 0 } else { msg.len() as u64 });
            out.extend_from_slice(b"\r\nContent-Range: bytes */");
            http::push_u64(out, meta.size);
            out.extend_from_slice(b"\r\nCache-Control: no-store\r\n");
            cors_headers(cfg, req.origin, out);
            connection_header(out, keep_alive, req.minor);
            out.extend_from_slice(b"\r\n");
            if !is_head {
                out.extend_from_slice(msg);
            }
            return !keep_alive;
        }
    };
    common_head(out, status, date);
    push_header(out, b"Content-Type", content_type.as_bytes());
    out.extend_from_slice(b"Content-Length: ");
    http::push_u64(
        out,
        if status == Status::NotModified {
            meta.size
        } else {
            end - start
        },
    );
    out.extend_from_slice(b"\r\nLast-Modified: ");
    http::push_http_date(out, meta.mtime());
    out.extend_from_slice(b"\r\nETag: ");
    meta.write_etag(out);
    out.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\nCache-Control: ");
    out.extend_from_slice(match kind {
        Kind::Playlist => &cfg.cache_playlist,
        Kind::Segment => &cfg.cache_segment,
        Kind::Other => &cfg.cache_other,
    });
    out.extend_from_slice(b"\r\n");
    if status == Status::PartialContent {
        out.extend_from_slice(b"Content-Range: bytes ");
        http::push_u64(out, start);
        out.push(b'-');
        http::push_u64(out, end - 1);
        out.push(b'/');
        http::push_u64(out, meta.size);
        out.extend_from_slice(b"\r\n");
    }
    cors_headers(cfg, req.origin, out);
    connection_header(out, keep_alive, req.minor);
    out.extend_from_slice(b"\r\n");
    if !is_head && status != Status::NotModified && end > start {
        *body = Some(FileBody {
            file,
            pos: start,
            end,
        });
    }
    !keep_alive
}
