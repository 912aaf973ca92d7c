//! One viewer connection: a state machine over a `Transport`, driven by `ready()` whenever
//! the worker gives it a turn. Each state is what the connection waits for:
//!
//! ```text
//!   accept -> Head --request--> Send --done--> Idle --bytes--> Head ...
//!                    \--held--> Parked --wake--> Send
//!             Send --done, Connection: close--> Linger --peer closes--> (closed)
//! ```
//!
//! Edge-triggered rules: readiness is remembered (`can_read`, `can_write`) and cleared only
//! when a syscall says WouldBlock; a turn is bounded by a request and a byte budget, after
//! which the worker puts the connection back on its ready queue.

use super::pool::{Pool, READ_CHUNK};
use super::timer::Phase;
use super::transport::Transport;
use crate::admin::accesslog::{self, AccessLog};
use crate::admin::metrics::{bump, CloseReason, WorkerStats};
use crate::http::date::DateCache;
use crate::http::encoded::{self, Encoded};
use crate::http::head;
use crate::http::parse::{cmcd_headers, higher_minor};
use crate::http::path;
use crate::http::respond::{self, Answer, Parked};
use crate::http::response::GrowingBody;
use crate::http::{parse, Body, Method, Parse, Request, Response, Status};
use crate::live::cache::{Cached, PlaylistCache};
use crate::live::growing::State as Arrival;
use crate::qoe::cmcd::Cmcd;
use crate::qoe::cmsd::{self, Cmsd};
use crate::qoe::{Mark, Seen};
use crate::shared::Shared;
use crate::tls::stream::is_cleartext_http;
use std::io::{self, ErrorKind};
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

/// Bytes one connection may send per turn before others get theirs.
const WRITE_BUDGET: usize = 1 << 20;
/// Requests one connection may have answered per turn (pipelining floods).
const REQUEST_BUDGET: u32 = 32;
/// In-memory bodies up to this size are copied after the head (one buffer, one send);
/// larger ones are sent from their shared buffer with the head in one sendmsg(2).
const INLINE_BODY: usize = 16 * 1024;
/// Bytes a closing connection may still send us before we stop draining and close.
const LINGER_LIMIT: usize = 64 * 1024;

/// What the worker should do with the connection after its turn.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the kernel to report readiness.
    #[default]
    Idle,
    /// Budget used up with work left: go round the ready queue again.
    Yield,
    /// The request is held: index it under `parked_key()` until that path changes.
    Parked,
    /// Sending an object still arriving, and caught up with it: run again when its writer
    /// publishes more (`Worker::following`).
    Follow,
    Close(CloseReason),
}

/// What a connection borrows from its worker for one turn.
pub struct Cx<'a> {
    pub shared: &'a Shared,
    pub stats: &'a WorkerStats,
    /// This worker's index.
    pub worker: usize,
    pub pool: &'a mut Pool,
    pub date: &'a DateCache,
    pub cache: &'a mut PlaylistCache,
    pub encoded: &'a mut Encoded,
    pub path_buf: &'a mut Vec<u8>,
    pub log: &'a mut Option<AccessLog>,
    /// Current timer tick.
    pub now: u32,
    pub draining: bool,
    /// How many times this worker has drained the inotify queue (`Watcher::sync`).
    pub epoch: u64,
}

impl Cx<'_> {
    /// Answer `req`; `rerun`: a held request run again (`expired`: at its deadline).
    /// `synced`: the request was read before the last inotify drain. Also returns the
    /// watched playlist entry a whole 200 was made from, if that is what it is.
    fn respond<'r>(
        &mut self,
        req: &Request<'r>,
        rerun: bool,
        expired: bool,
        synced: bool,
    ) -> (Answer<'r>, Option<Arc<Cached>>) {
        let mut rcx = respond::Cx {
            shared: self.shared,
            draining: self.draining,
            path_buf: self.path_buf,
            cache: self.cache,
            now: self.now,
            now_secs: self.date.unix_secs(),
            expired,
            rerun,
            synced,
            served: None,
        };
        let answer = respond::respond(&mut rcx, req);
        (answer, rcx.served)
    }
}

enum State {
    /// Waiting for (the rest of) a request head, since accept or since its first byte.
    Head,
    /// Keep-alive: between requests, nothing buffered.
    Idle,
    Send(Sending),
    /// Held until a playlist or part changes; no buffer, no file.
    Parked(Box<Parked>),
    /// Our side is shut; reading and dropping until the peer closes.
    Linger {
        drained: usize,
    },
}

/// A response being written: head bytes in `Machine::out`, then the body.
struct Sending {
    /// The body, unless it went into `out` with the head (playlists, error texts: no
    /// allocation for them). Boxed so that every connection's slot stays small.
    rest: Option<Box<Rest>>,
    /// End the connection once this response is out.
    close: bool,
    /// Last SIOCOUTQ reading (u32::MAX before the first).
    outq: u32,
}

/// A body sent after the head.
struct Rest {
    body: Body,
    /// Bytes of an in-memory body already sent.
    sent: usize,
}

/// The response side of a connection, apart from its read buffer so that a request borrowed
/// from that buffer can be answered without copying it.
struct Machine {
    /// What QoE counts this connection as, if it sends no CMCD session id.
    viewer: Mark,
    state: State,
    /// Tick the current phase began (while sending: of the last write progress).
    since: u32,
    /// Head bytes not yet sent. Capacity 0 while nothing is being sent.
    out: Vec<u8>,
    /// Bytes of `out` sent. Heads are kilobytes; 32 bits keep every connection 8 bytes
    /// smaller (with `since`, one word).
    out_pos: u32,
}

impl Machine {
    fn phase(&self) -> Phase {
        match self.state {
            State::Head => Phase::Head,
            State::Idle => Phase::Idle,
            State::Send(_) => Phase::Send,
            State::Parked(_) => Phase::Parked,
            State::Linger { .. } => Phase::Linger,
        }
    }

    /// Move to `state`, restarting the phase clock when the phase changes.
    fn enter(&mut self, state: State, now: u32) {
        let before = self.phase();
        self.state = state;
        if self.phase() != before {
            self.since = now;
        }
    }

    /// Start sending the response kept for `target` (`http::encoded`) if the playlist it was
    /// made from is still the current one; false if there is none to use.
    fn begin_kept(&mut self, cx: &mut Cx<'_>, target: &[u8], tls: bool) -> bool {
        let root = cx.shared.root.as_raw_fd();
        let Some(kept) = cx.encoded.get(target, tls) else {
            return false;
        };
        match cx.cache.watched(&kept.path, root) {
            Some(c) if Arc::ptr_eq(c, &kept.cached) => {}
            _ => return false,
        }
        let at = (cx.shared, cx.worker, cx.date.unix_secs());
        observe(at, &mut self.viewer, &kept.path, 200, kept.body_len(), None);
        if self.out.capacity() == 0 {
            self.out = cx.pool.take();
        }
        self.out.extend_from_slice(kept.bytes(cx.date));
        cx.stats.request(200);
        self.send(Body::Empty, false, cx.now);
        true
    }

    /// After `begin` of a whole playlist answering a bare GET: keep head and body (both in
    /// `out`) for the next such request.
    fn keep(&mut self, cx: &mut Cx<'_>, target: &[u8], tls: bool, cached: Arc<Cached>) {
        let inline = matches!(&self.state, State::Send(s) if s.rest.is_none() && !s.close);
        if !inline || self.out_pos != 0 {
            return;
        }
        let path = cx.path_buf.strip_suffix(&[0]).unwrap_or(cx.path_buf);
        cx.encoded
            .put(target, tls, (cached, path), &self.out, cx.date);
    }

    /// Enter the sending state with `body` after the head in `out`.
    fn send(&mut self, body: Body, close: bool, now: u32) {
        let rest = match body {
            Body::Empty => None,
            body => Some(Box::new(Rest { body, sent: 0 })),
        };
        let sending = Sending {
            rest,
            close,
            outq: u32::MAX,
        };
        self.enter(State::Send(sending), now);
    }

    /// Start sending `resp` (the answer to `req`, or to an unparsable request): note who
    /// watches what, add CMSD, encode its head, count it and log it. `held`: when a blocking
    /// request was first parked.
    fn begin(
        &mut self,
        cx: &mut Cx<'_>,
        io: &Transport,
        req: Option<&Request<'_>>,
        mut resp: Response<'_>,
        held: Option<Instant>,
    ) {
        resp.fields.hsts = io.is_tls();
        let code = resp.status.code();
        let body_len = resp.body.len();
        let cmcd = req
            .and_then(|r| Cmcd::from_request(r.target, r.cmcd.into_iter().flat_map(cmcd_headers)));
        let now_secs = cx.date.unix_secs();
        let answered = (200..400).contains(&code);
        let watched = req.filter(|r| {
            matches!(r.method(), Method::Get | Method::Head) && (answered || cmcd.is_some())
        });
        if let Some(r) = watched {
            // A GET or HEAD answered 2xx/3xx went through `respond`, which left the decoded
            // path (and a NUL) in path_buf; anything else is decoded again.
            let decoded = if answered && cx.path_buf.last() == Some(&0) {
                cx.path_buf.pop();
                true
            } else {
                path::decode(r.target, cx.path_buf).is_ok()
            };
            if decoded {
                let path = cx.path_buf.as_slice();
                let at = (cx.shared, cx.worker, now_secs);
                observe(at, &mut self.viewer, path, code, body_len, cmcd.as_ref());
                if cx.shared.cfg.cmsd_name.is_some() && matches!(code, 200 | 206 | 304) {
                    let qoe = &cx.shared.qoe;
                    resp.fields.cmsd =
                        Some(Box::new(server_data(io, path, cmcd.as_ref(), held, qoe)));
                }
            }
        }
        if self.out.capacity() == 0 {
            self.out = cx.pool.take();
        }
        let env = head::Env::new(cx.date, &cx.shared.cfg);
        head::encode(&resp, &env, &mut self.out);
        cx.stats.request(code);
        // An object still arriving, sent without a length: logged when it ends, with the
        // bytes actually sent (a range of one has its length).
        let unknown_len =
            matches!(&resp.body, Body::Growing(g) if g.obj.declared.is_none() && g.end.is_none());
        let mut pending = None;
        if let Some(log) = cx.log.as_mut() {
            let entry = accesslog::Entry {
                now_secs,
                peer: io.peer_ip(),
                req,
                status: code,
                bytes: body_len,
                cmcd: cmcd.as_ref(),
            };
            if unknown_len {
                pending = Some(Box::new(accesslog::Pending::of(&entry)));
            } else {
                log.record(&entry);
            }
        }
        // A small in-memory body (a playlist, an error text) joins the head in one buffer:
        // one send(2), one segment.
        let mut body = match resp.body {
            Body::Static(b) if b.len() <= INLINE_BODY => {
                self.out.extend_from_slice(b);
                Body::Empty
            }
            Body::Bytes(b) if b.len() <= INLINE_BODY => {
                self.out.extend_from_slice(&b);
                Body::Empty
            }
            other => other,
        };
        if let Body::Growing(g) = &mut body {
            // Before the first byte is read: the writer wakes this worker from now on.
            g.obj.follow(cx.worker);
            g.log = pending;
            bump(&cx.stats.growing_responses, 1);
        }
        self.send(body, resp.fields.close, cx.now);
    }
}

/// Tell QoE what the connection `viewer` marks was answered for `path`.
fn observe(
    (shared, worker, now_secs): (&Shared, usize, u64),
    viewer: &mut Mark,
    path: &[u8],
    status: u16,
    bytes: u64,
    cmcd: Option<&Cmcd>,
) {
    shared.qoe.observe(
        worker,
        now_secs,
        &Seen {
            path,
            status,
            bytes,
            cmcd,
        },
        viewer,
    );
}

/// CMSD for one response: what the playlists say of the object, how long it was held, and
/// the kernel's view of the path to this viewer.
fn server_data(
    io: &Transport,
    path: &[u8],
    cmcd: Option<&Cmcd>,
    held: Option<Instant>,
    qoe: &crate::qoe::Qoe,
) -> Cmsd {
    let entry = qoe.catalog.get(path);
    let ot = cmsd::object_type(path, cmcd.and_then(|c| c.str("ot")));
    let rate = io.tcp_rate();
    Cmsd {
        ot,
        sf: cmsd::format(path, entry.as_ref()),
        d_ms: entry.filter(|_| ot != "m").map(|e| e.duration_ms),
        ht_ms: held.map(|t| t.elapsed().as_millis() as u64),
        etp_kbps: rate.and_then(|(r, _)| r).map(|bps| bps * 8 / 1000),
        rtt_ms: rate.map(|(_, us)| u64::from(us).div_ceil(1000)),
    }
}

/// Send what exists of a growing object: chunk framing, then the file up to what its writer
/// published; the last chunk once it is complete. An aborted object ends the connection
/// without the end of the body, so no client takes a truncated object for a whole one.
fn send_growing(
    io: &mut Transport,
    g: &mut GrowingBody,
    sent: &mut usize,
    file_bytes: &mut u64,
) -> io::Result<Progress> {
    loop {
        let frame = g.pending_frame();
        if !frame.is_empty() {
            // A size line is followed by its data; a chunk's end must not wait for more.
            match io.send(frame, &[], g.data_follows()) {
                Ok(n) => {
                    *sent += n;
                    g.frame_pos += n as u8;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        if g.end.is_some_and(|end| g.pos >= end) {
            g.ended = true;
        }
        if g.ended {
            return Ok(if io.flush()? {
                Progress::Done
            } else {
                Progress::Blocked
            });
        }
        let (avail, state) = g.obj.available();
        let limit = if g.chunked {
            g.pos + g.chunk_left
        } else {
            avail.min(g.end.unwrap_or(u64::MAX))
        };
        if g.pos < limit {
            if *sent >= WRITE_BUDGET {
                return Ok(Progress::Budget);
            }
            let want = (limit - g.pos).min((WRITE_BUDGET - *sent) as u64) as usize;
            let before = g.pos;
            match io.send_file(&g.obj.file, &mut g.pos, want) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "growing object shorter than published",
                    ))
                }
                Ok(n) => {
                    *sent += n;
                    *file_bytes += n as u64;
                    if g.chunked {
                        g.chunk_left = g.chunk_left.saturating_sub(g.pos - before);
                        if g.chunk_left == 0 {
                            g.queue_chunk_end();
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        if g.pos < avail {
            // Chunked, and the writer published more since this chunk was announced.
            g.queue_chunk(avail - g.pos);
            continue;
        }
        match state {
            Arrival::Open => {
                return Ok(if io.flush()? {
                    Progress::Wait
                } else {
                    Progress::Blocked
                })
            }
            Arrival::Complete if g.chunked => g.queue_chunk(0),
            // A range the object turned out too short for: the 206 cannot be completed.
            Arrival::Complete if g.end.is_some() => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "object complete short of the requested range",
                ))
            }
            Arrival::Complete => g.ended = true,
            Arrival::Aborted => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "upload aborted: the object is not complete",
                ))
            }
        }
    }
}

/// How far one write attempt got.
enum Progress {
    Done,
    /// The socket is full.
    Blocked,
    /// This turn's byte budget is spent.
    Budget,
    /// Everything that exists of a growing object is out; more will come.
    Wait,
}

pub struct Conn {
    io: Transport,
    /// Unparsed request bytes. Capacity 0 while idle.
    rbuf: Vec<u8>,
    m: Machine,
    pub can_read: bool,
    pub can_write: bool,
    /// The peer's FIN (or an error) has been reported: read until EOF, whatever a short read
    /// suggests, or the end of the stream would never be seen.
    pub read_closed: bool,
    /// On the worker's ready queue.
    pub queued: bool,
    /// Tick of this connection's pending timer entry, 0 if none.
    pub armed: u32,
    /// The worker's `Cx::epoch` at the last recv: requests in `rbuf` were all read before
    /// the inotify drain that ended that epoch once the worker's epoch is past it.
    read_epoch: u64,
}

impl Conn {
    /// A new connection; a request may already be waiting, so it starts readable and
    /// writable (the worker queues it at once).
    pub fn new(io: Transport, now: u32) -> Conn {
        Conn {
            io,
            rbuf: Vec::new(),
            m: Machine {
                viewer: Mark::default(),
                state: State::Head,
                since: now,
                out: Vec::new(),
                out_pos: 0,
            },
            can_read: true,
            can_write: true,
            read_closed: false,
            queued: true,
            armed: 0,
            read_epoch: u64::MAX,
        }
    }

    pub fn transport(&mut self) -> &mut Transport {
        &mut self.io
    }

    /// A TLS connection whose handshake has not finished.
    pub fn is_handshaking(&self) -> bool {
        self.io.is_handshaking()
    }

    pub fn phase(&self) -> Phase {
        match self.m.phase() {
            // Blocked on a socket whose peer sent its FIN: its own clock (timer::PHASES).
            Phase::Send if self.read_closed && !self.can_write => Phase::SendPeerClosed,
            p => p,
        }
    }

    /// Tick the current phase's clock started from.
    pub fn since(&self) -> u32 {
        self.m.since
    }

    /// The path a parked request waits on, and its deadline.
    pub fn parked(&self) -> Option<(&[u8], u32)> {
        match &self.m.state {
            State::Parked(p) => Some((&p.key, p.deadline)),
            _ => None,
        }
    }

    /// Restart the current phase's clock (an idle connection given a grace period at drain).
    pub fn restart_clock(&mut self, now: u32) {
        self.m.since = now;
    }

    /// Bring a parked request's deadline forward to `latest` (at drain: answer before the
    /// process must exit).
    pub fn clamp_park_deadline(&mut self, latest: u32) {
        if let State::Parked(p) = &mut self.m.state {
            p.deadline = p.deadline.min(latest);
        }
    }

    /// Give back the buffers of a connection being closed.
    /// The access-log line still owed for the response being sent (one whose length was
    /// unknown), with the body bytes sent so far: at its end, or when the connection closes
    /// first.
    pub fn take_pending_log(&mut self) -> Option<(Box<accesslog::Pending>, u64)> {
        let State::Send(s) = &mut self.m.state else {
            return None;
        };
        let Some(Rest {
            body: Body::Growing(g),
            ..
        }) = s.rest.as_deref_mut()
        else {
            return None;
        };
        Some((g.log.take()?, g.pos))
    }

    pub fn release(self, pool: &mut Pool) {
        pool.give(self.rbuf);
        pool.give(self.m.out);
    }

    /// At a send-stall deadline: is the peer still taking bytes out of a full socket buffer
    /// (slow, not stalled)? Restarts the stall clock if so.
    pub fn still_draining(&mut self, now: u32) -> bool {
        let State::Send(s) = &mut self.m.state else {
            return false;
        };
        let Some(outq) = self.io.unsent() else {
            return false;
        };
        let shrank = outq < s.outq;
        s.outq = outq;
        if shrank {
            self.m.since = now;
        }
        shrank
    }

    /// Do all the work the remembered readiness allows, within this turn's budgets.
    pub fn ready(&mut self, cx: &mut Cx<'_>) -> Step {
        let mut requests = 0u32;
        let mut sent = 0usize;
        loop {
            let flow = match self.m.state {
                State::Linger { .. } => return self.linger(),
                State::Parked(_) => return self.watch_parked(cx),
                State::Send(_) => self.write(cx, &mut sent),
                State::Head | State::Idle => self.read_request(cx, &mut requests),
            };
            if let ControlFlow::Break(step) = flow {
                return step;
            }
        }
    }

    /// Run a parked request again (its path changed, or `expired`: its deadline passed).
    /// Returns true when it now has a response to write.
    pub fn rerun(&mut self, cx: &mut Cx<'_>, expired: bool) -> bool {
        let State::Parked(p) = std::mem::replace(&mut self.m.state, State::Idle) else {
            return false;
        };
        let req = p.request();
        match cx.respond(&req, true, expired, false).0 {
            Answer::Park(mut again) => {
                again.deadline = p.deadline;
                again.since = p.since;
                again.collapsed |= p.collapsed;
                self.m.state = State::Parked(again);
                false
            }
            Answer::Now(resp) => {
                self.m.begin(cx, &self.io, Some(&req), resp, Some(p.since));
                true
            }
        }
    }

    fn write(&mut self, cx: &mut Cx<'_>, sent: &mut usize) -> ControlFlow<Step> {
        if !self.can_write {
            return ControlFlow::Break(Step::Idle);
        }
        let before = *sent;
        let mut file_bytes = 0u64;
        let result = self.send_response(sent, &mut file_bytes);
        if *sent > before {
            bump(&cx.stats.response_bytes, (*sent - before) as u64);
            bump(&cx.stats.sendfile_bytes, file_bytes);
            // Progress restarts the send-stall clock.
            self.m.since = cx.now;
        }
        match result {
            Ok(Progress::Done) => {
                self.finish_response(cx);
                ControlFlow::Continue(())
            }
            Ok(Progress::Budget) => ControlFlow::Break(Step::Yield),
            Ok(p @ (Progress::Blocked | Progress::Wait)) => {
                let waiting = matches!(p, Progress::Wait);
                self.can_write &= waiting;
                // Waiting on a slow reader (every viewer at once when a segment is
                // published): hold no buffer while the kernel drains the socket. The head is
                // out once only the body remains.
                cx.pool.give_if_empty(&mut self.rbuf);
                if self.m.out_pos as usize >= self.m.out.len() {
                    self.m.out.clear();
                    self.m.out_pos = 0;
                    cx.pool.give(std::mem::take(&mut self.m.out));
                }
                ControlFlow::Break(if waiting { Step::Follow } else { Step::Idle })
            }
            Err(_) => ControlFlow::Break(Step::Close(CloseReason::Error)),
        }
    }

    /// Send pending head bytes with any in-memory body, then the file body.
    fn send_response(&mut self, sent: &mut usize, file_bytes: &mut u64) -> io::Result<Progress> {
        let m = &mut self.m;
        let State::Send(s) = &mut m.state else {
            return Ok(Progress::Done);
        };
        let mut rest = s.rest.as_deref_mut();
        let file_follows = rest
            .as_deref()
            .is_some_and(|r| matches!(r.body, Body::File(_) | Body::Growing(_)));
        loop {
            let head = &m.out[(m.out_pos as usize).min(m.out.len())..];
            let mem: &[u8] = match rest.as_deref() {
                Some(Rest {
                    body: Body::Static(b),
                    sent,
                }) => &b[*sent..],
                Some(Rest {
                    body: Body::Bytes(b),
                    sent,
                }) => &b[*sent..],
                _ => &[],
            };
            if head.is_empty() && mem.is_empty() {
                break;
            }
            match self.io.send(head, mem, file_follows) {
                Ok(n) => {
                    *sent += n;
                    let from_head = n.min(head.len());
                    let from_head32 = u32::try_from(from_head).unwrap_or(u32::MAX);
                    m.out_pos = m.out_pos.saturating_add(from_head32);
                    if let Some(r) = rest.as_deref_mut() {
                        r.sent += n - from_head;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let body = rest.map(|r| &mut r.body);
        if let Some(Body::Growing(g)) = body {
            return send_growing(&mut self.io, g, sent, file_bytes);
        }
        let Some(Body::File(f)) = body else {
            return Ok(if self.io.flush()? {
                Progress::Done
            } else {
                Progress::Blocked
            });
        };
        while f.pos < f.end {
            if *sent >= WRITE_BUDGET {
                return Ok(Progress::Budget);
            }
            let want = (f.end - f.pos).min((WRITE_BUDGET - *sent) as u64) as usize;
            match self.io.send_file(&f.file, &mut f.pos, want) {
                // The file is shorter than when we opened it: the response cannot be
                // completed truthfully, so the connection must end.
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "file shrank during send",
                    ))
                }
                Ok(n) => {
                    *sent += n;
                    *file_bytes += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Done only once the transport holds nothing more (TLS records already encrypted).
        Ok(if self.io.flush()? {
            Progress::Done
        } else {
            Progress::Blocked
        })
    }

    /// A response is under way: its head, or part of its body, may be out.
    pub fn mid_response(&self) -> bool {
        matches!(self.m.state, State::Send(_))
    }

    /// Sending an object still arriving (and not blocked on the socket).
    pub fn is_following(&self) -> bool {
        matches!(&self.m.state, State::Send(Sending { rest: Some(r), .. }) if matches!(r.body, Body::Growing(_)))
    }

    fn finish_response(&mut self, cx: &mut Cx<'_>) {
        if let (Some((p, bytes)), Some(log)) = (self.take_pending_log(), cx.log.as_mut()) {
            log.record_pending(&p, bytes);
        }
        let close = matches!(&self.m.state, State::Send(s) if s.close);
        self.m.out.clear();
        self.m.out_pos = 0;
        cx.pool.give(std::mem::take(&mut self.m.out));
        cx.pool.give_if_empty(&mut self.rbuf);
        if close {
            // Shut our side and drain theirs so unread pipelined bytes do not turn our close
            // into a reset that destroys the response.
            self.io.shutdown_write();
            self.rbuf.clear();
            self.m.enter(State::Linger { drained: 0 }, cx.now);
        } else if self.rbuf.is_empty() {
            self.m.enter(State::Idle, cx.now);
        } else {
            // Pipelined: the next head is already here; its clock starts now.
            self.m.enter(State::Head, cx.now);
        }
    }

    /// Answer what is buffered, then read more.
    fn read_request(&mut self, cx: &mut Cx<'_>, requests: &mut u32) -> ControlFlow<Step> {
        // TLS handshake messages queued while the socket was full go out first.
        if self.can_write {
            match self.io.flush() {
                Ok(true) => {}
                Ok(false) => self.can_write = false,
                Err(_) => return ControlFlow::Break(Step::Close(CloseReason::Error)),
            }
        }
        if !self.rbuf.is_empty() {
            if *requests >= REQUEST_BUDGET {
                return ControlFlow::Break(Step::Yield);
            }
            let limits = cx.shared.cfg.limits;
            let mut verdict = parse(&self.rbuf, limits);
            if matches!(verdict, Parse::Error(Status::VersionNotSupported)) {
                // HTTP/1.2 and up are answered as HTTP/1.1 (RFC 9110 2.5).
                if let Some(at) = higher_minor(&self.rbuf) {
                    self.rbuf[at] = b'1';
                    verdict = parse(&self.rbuf, limits);
                }
            }
            let used = match verdict {
                Parse::Complete(req, len) => {
                    *requests += 1;
                    let synced = self.read_epoch < cx.epoch;
                    let tls = self.io.is_tls();
                    let plain = encoded::plain(&req)
                        && !cx.draining
                        && cx.log.is_none()
                        && cx.shared.cfg.cmsd_name.is_none();
                    if plain && synced && self.m.begin_kept(cx, req.target, tls) {
                        self.rbuf.drain(..len);
                        return ControlFlow::Continue(());
                    }
                    let (answer, served) = cx.respond(&req, false, false, synced);
                    match answer {
                        Answer::Now(resp) => {
                            let whole = resp.status == Status::Ok;
                            self.m.begin(cx, &self.io, Some(&req), resp, None);
                            if let (true, true, Some(c)) = (plain, whole, served) {
                                self.m.keep(cx, req.target, tls, c);
                            }
                        }
                        Answer::Park(p) => {
                            self.m.enter(State::Parked(p), cx.now);
                            self.rbuf.drain(..len);
                            // Held with no buffer: only the peer leaving is noticed.
                            cx.pool.give_if_empty(&mut self.rbuf);
                            cx.pool.give_if_empty(&mut self.m.out);
                            return ControlFlow::Break(Step::Parked);
                        }
                    }
                    Some(len)
                }
                Parse::Partial => None,
                Parse::Error(status) => {
                    self.m
                        .begin(cx, &self.io, None, respond::unparsable(status), None);
                    Some(self.rbuf.len())
                }
            };
            if let Some(len) = used {
                self.rbuf.drain(..len);
                return ControlFlow::Continue(());
            }
        }
        if !self.can_read {
            if self.rbuf.is_empty() {
                cx.pool.give(std::mem::take(&mut self.rbuf));
            } else if self.rbuf.capacity() - self.rbuf.len() > READ_CHUNK / 2 {
                // Part of a head, waiting for the rest (a slow link, or a slowloris client
                // holding thousands of these): keep only the bytes it holds and put the read
                // buffer back. Whole heads never come here.
                let part = self.rbuf.to_vec();
                cx.pool.give(std::mem::replace(&mut self.rbuf, part));
            }
            return ControlFlow::Break(Step::Idle);
        }
        match self.fill(cx.pool, cx.now, cx.epoch) {
            // Peer closed. Everything it sent before has been answered (we only read when no
            // response is pending), so there is nothing left to do.
            Ok(0) => return ControlFlow::Break(Step::Close(CloseReason::Peer)),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) if is_cleartext_http(&e) => {
                // A plaintext request on the TLS port: say so in clear text, then close.
                self.rbuf.clear();
                let resp = respond::plain_http_on_tls_port();
                self.m.begin(cx, &self.io, None, resp, None);
            }
            Err(_) => return ControlFlow::Break(Step::Close(CloseReason::Peer)),
        }
        ControlFlow::Continue(())
    }

    /// One recv into the read buffer at worker epoch `epoch`.
    fn fill(&mut self, pool: &mut Pool, now: u32, epoch: u64) -> io::Result<usize> {
        if self.rbuf.capacity() == 0 {
            self.rbuf = pool.take();
        }
        match self.io.recv(&mut self.rbuf, READ_CHUNK) {
            Ok((0, _)) => Ok(0),
            Ok((n, drained)) => {
                // Saves the recv(2) that would only say EAGAIN after every request.
                if drained && !self.read_closed {
                    self.can_read = false;
                }
                if matches!(self.m.state, State::Idle) {
                    self.m.enter(State::Head, now);
                }
                self.read_epoch = epoch;
                Ok(n)
            }
            Err(e) => {
                if e.kind() == ErrorKind::WouldBlock {
                    self.can_read = false;
                }
                Err(e)
            }
        }
    }

    /// Before the worker drains inotify: take what a connection waiting for a request has
    /// sent, so that its requests count as read before the drain. True when bytes came. End
    /// of stream and errors are left for the turn's own read, which sees them again (a
    /// reset socket reads as closed; a TLS stream that failed stays ended). A TLS handshake
    /// is left to the turn, which answers its flights.
    pub fn read_ahead(&mut self, pool: &mut Pool, now: u32, epoch: u64) -> bool {
        if !self.can_read
            || !self.rbuf.is_empty()
            || !matches!(self.m.state, State::Head | State::Idle)
            || self.io.is_handshaking()
        {
            return false;
        }
        matches!(self.fill(pool, now, epoch), Ok(n) if n > 0)
    }

    /// Parked: notice the peer leaving, and keep (bounded) pipelined bytes for after the
    /// answer.
    fn watch_parked(&mut self, cx: &mut Cx<'_>) -> Step {
        let cap = cx.shared.cfg.limits.max_header_bytes;
        loop {
            if !self.can_read || self.rbuf.len() > cap {
                return Step::Idle;
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = Vec::with_capacity(READ_CHUNK);
            }
            match self.io.recv(&mut self.rbuf, READ_CHUNK) {
                Ok((0, _)) => return Step::Close(CloseReason::Peer),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.can_read = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseReason::Peer),
            }
        }
    }

    fn linger(&mut self) -> Step {
        let mut scratch = [0u8; 4096];
        if self.can_write && matches!(self.io.flush(), Ok(false)) {
            self.can_write = false;
        }
        loop {
            if !self.can_read {
                return Step::Idle;
            }
            match self.io.discard(&mut scratch) {
                Ok(0) => return Step::Close(CloseReason::Done),
                Ok(n) => {
                    if let State::Linger { drained } = &mut self.m.state {
                        *drained += n;
                        if *drained > LINGER_LIMIT {
                            return Step::Close(CloseReason::Done);
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.can_read = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseReason::Done),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every open connection costs its slot, idle or not: 50k idle viewers are 50k of these.
    /// Bodies, parked requests and TLS state are boxed so that they cost only while in use.
    #[test]
    fn a_connection_slot_stays_small() {
        let size = std::mem::size_of::<super::Conn>();
        assert!(
            size <= 112,
            "Conn is {size} bytes; an idle connection must cost at most 150 B in all (issue 18)"
        );
    }
}
