//! The swarm's event loop: one mio (epoll) loop per process, one or two non-blocking
//! keep-alive connections per viewer (two in LL mode: playlists on one, media on the other,
//! as a player's HTTP/1.1 stack would, so a blocking reload never holds up a part), a timer
//! heap, one shared read buffer. What each viewer asks for and when is `player.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use super::{Counters, EngineOpts, Hists};

/// Largest response head accepted before calling the response malformed.
const MAX_HEAD: usize = 64 * 1024;
/// Largest playlist body kept for parsing.
const MAX_PLAYLIST: usize = 4 * 1024 * 1024;
/// Connections per viewer at most (tokens are viewer * LANES + lane).
const LANES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Master,
    Playlist,
    Segment,
    Part,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Master, Kind::Playlist, Kind::Segment, Kind::Part];

    /// Index into `Counters::requests` and the latency histograms.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Playlist => "playlist",
            Kind::Segment => "segment",
            Kind::Part => "part",
        }
    }
}

/// What a media request brings to the viewer's buffer.
#[derive(Debug, Clone)]
pub(super) struct Media {
    /// Segment (MSN) and, for a part, its index.
    pub msn: u64,
    pub part: Option<usize>,
    pub duration: f64,
    /// When it was published (ms since the Unix epoch), from the playlist's dates.
    pub published_ms: Option<i64>,
    /// Asked for from an EXT-X-PRELOAD-HINT, before it was listed.
    pub hinted: bool,
    /// Fetched to fill the start-up buffer (published before the viewer came): not a
    /// measure of live delivery.
    pub joining: bool,
    pub uri: String,
    /// The viewer's position epoch it was asked for in (a jump to the live edge starts a
    /// new one; media of an old epoch no longer feed the buffer).
    pub epoch: u32,
}

#[derive(Debug, Clone)]
pub(super) struct Req {
    pub kind: Kind,
    pub path: String,
    pub intended: Instant,
    pub media: Option<Media>,
    /// LL blocking reload: the part (MSN, index) asked for with `_HLS_msn`/`_HLS_part`.
    pub wants: Option<(u64, usize)>,
}

impl Req {
    pub fn new(kind: Kind, path: String, intended: Instant) -> Req {
        Req {
            kind,
            path,
            intended,
            media: None,
            wants: None,
        }
    }
}

/// One keep-alive connection of a viewer, with its queue of requests.
#[derive(Default)]
pub(super) struct Lane {
    conn: Option<TcpStream>,
    pub queue: VecDeque<Req>,
    pub inflight: Option<Req>,
    /// Bumped whenever the in-flight request ends, so stale timeout timers are ignored.
    gen: u64,
    out: Vec<u8>,
    out_off: usize,
    head: Vec<u8>,
    body: Vec<u8>,
    headers_done: bool,
    status: u16,
    body_left: usize,
    close_after: bool,
    backoff_until: Option<Instant>,
    /// The current connection has delivered response bytes (else a failure is a connect error).
    got_bytes: bool,
    /// The in-flight request was already resent once after a keep-alive close.
    retried: bool,
}

impl Lane {
    pub fn has(&self, kind: Kind) -> bool {
        self.inflight
            .iter()
            .chain(&self.queue)
            .any(|r| r.kind == kind)
    }
}

/// A simulated viewer: its connections and its player state (see `player.rs`).
#[derive(Default)]
pub(super) struct Viewer {
    pub lanes: Vec<Lane>,
    pub media_path: Option<String>,
    pub target: f64,
    /// Classic: the newest segment queued, and the reload clock.
    pub last_seq: Option<u64>,
    pub next_reload: Option<Instant>,
    pub join_left: usize,
    /// When the playback buffer runs dry; None before playback starts.
    pub buffer_end: Option<Instant>,
    pub buffered_at_join: f64,
    pub stalls: u64,
    pub ended: bool,
    pub epoch: u32,
    /// LL: PART-TARGET (0 for a classic viewer), the next part to ask for, the part the
    /// next blocking reload asks for, the newest part seen listed, recently asked-for URIs.
    pub part_target: f64,
    pub next_part: Option<(u64, usize)>,
    pub wants: Option<(u64, usize)>,
    pub last_seen: Option<(u64, usize)>,
    pub requested: VecDeque<String>,
    /// The last hinted part a server answered 404: not asked for again until listed.
    pub refused_hint: Option<String>,
    pub poll_armed: bool,
    /// Publication time (ms) of the end of the newest media in the buffer, and the last
    /// live-edge distance seen (ms).
    pub media_end_ms: Option<i64>,
    pub last_edge_ms: Option<i64>,
}

impl Viewer {
    /// Requests of `kind` go on the playlist lane (0) or the media lane (the last one).
    pub fn lane_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Master | Kind::Playlist => 0,
            Kind::Segment | Kind::Part => self.lanes.len().saturating_sub(1),
        }
    }

    pub fn is_ll(&self) -> bool {
        self.part_target > 0.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Start,
    /// Classic reload clock.
    Reload,
    /// LL: reload again (after a poll interval, or after a failed reload).
    Poll,
    Timeout(usize, u64),
    Retry(usize),
}

pub(super) struct Engine {
    pub o: EngineOpts,
    poll: Poll,
    pub viewers: Vec<Viewer>,
    pub timers: BinaryHeap<Reverse<(Instant, usize, Timer)>>,
    pub hist: Hists,
    pub c: Counters,
    end: Instant,
    buf: Vec<u8>,
    /// Unix time (ms) at `t0`, to turn instants into the wall clock playlists are dated in.
    t0: Instant,
    unix0_ms: i64,
    /// With --published-from: file mtimes (ms) by URL path, a few hundred recent ones.
    pub mtimes: std::collections::HashMap<String, i64>,
}

/// A non-blocking connect to `addr`, from source address `bind` when given. The port choice
/// is deferred to connect() (IP_BIND_ADDRESS_NO_PORT), so every source address has the whole
/// ephemeral range per destination instead of one port per bind.
fn connect(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = bind else {
        return TcpStream::connect(addr);
    };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    if ip.is_ipv4() {
        setsockopt(&sock, sockopt::IpBindAddressNoPort, &true).map_err(io::Error::from)?;
    }
    sock.bind(&SocketAddr::new(ip, 0).into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        // Completion is reported by the writable event.
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

enum Outcome {
    Pending,
    Done,
    Malformed,
}

/// `write!` into a Vec<u8> without an io::Result.
struct DisplayVec<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for DisplayVec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

pub fn run_engine(o: EngineOpts) -> Result<(Counters, Hists), String> {
    Engine::new(o)?.run()
}

impl Engine {
    fn new(o: EngineOpts) -> Result<Engine, String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let now = Instant::now();
        let unix0_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut timers = BinaryHeap::new();
        let n = o.viewers;
        for i in 0..n {
            // Spread joins evenly over the ramp so the start is not a thundering herd.
            let at = now + o.ramp.mul_f64(i as f64 / n.max(1) as f64);
            timers.push(Reverse((at, i, Timer::Start)));
        }
        let c = Counters {
            viewers: n as u64,
            ..Counters::default()
        };
        let lanes = if o.ll { LANES } else { 1 };
        Ok(Engine {
            end: now + o.duration,
            o,
            poll,
            viewers: (0..n)
                .map(|_| Viewer {
                    lanes: (0..lanes).map(|_| Lane::default()).collect(),
                    ..Viewer::default()
                })
                .collect(),
            timers,
            hist: Hists::new(),
            c,
            buf: vec![0u8; 256 * 1024],
            t0: now,
            unix0_ms,
            mtimes: std::collections::HashMap::new(),
        })
    }

    /// Wall-clock milliseconds at instant `t`, on the monotonic clock's scale.
    pub fn unix_ms(&self, t: Instant) -> i64 {
        let d = t.saturating_duration_since(self.t0).as_millis();
        self.unix0_ms + i64::try_from(d).unwrap_or(i64::MAX / 2)
    }

    fn run(mut self) -> Result<(Counters, Hists), String> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if self.o.until.as_ref().is_some_and(|f| f(&self.c)) {
                self.end = now;
            }
            if now >= self.end {
                break;
            }
            while let Some(Reverse((at, _, _))) = self.timers.peek() {
                if *at > now {
                    break;
                }
                if let Some(Reverse((at, v, t))) = self.timers.pop() {
                    self.on_timer(v, t, at, now);
                }
            }
            let next = self
                .timers
                .peek()
                .map_or(self.end, |Reverse((at, _, _))| (*at).min(self.end));
            let wait = next.saturating_duration_since(Instant::now());
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for ev in events.iter() {
                let (v, lane) = (ev.token().0 / LANES, ev.token().0 % LANES);
                if v < self.viewers.len() && lane < self.viewers[v].lanes.len() {
                    self.on_ready(v, lane);
                }
            }
        }
        self.finish();
        Ok((self.c, self.hist))
    }

    /// End-of-run accounting: what was still waiting, and viewers whose buffer ran dry
    /// before the end without the next piece of media.
    fn finish(&mut self) {
        let end = self.end;
        for v in &mut self.viewers {
            for r in v
                .lanes
                .iter()
                .flat_map(|l| l.inflight.iter().chain(l.queue.iter()))
            {
                self.c.unfinished += 1;
                let age = end.saturating_duration_since(r.intended).as_millis() as u64;
                self.c.unfinished_oldest_ms_max = self.c.unfinished_oldest_ms_max.max(age);
            }
            if let Some(be) = v.buffer_end {
                self.c.playing_viewers += 1;
                let unit = if v.is_ll() { v.part_target } else { v.target };
                if be + Duration::from_secs_f64(unit.max(1.0)) < end {
                    v.stalls += 1;
                    self.c.stalls += 1;
                }
            }
            if v.stalls > 0 {
                self.c.stalled_viewers += 1;
            }
            if let Some(e) = v.last_edge_ms {
                self.hist.edge_final().saturating_record(ms_to_us(e));
            }
        }
    }

    fn on_timer(&mut self, v: usize, t: Timer, at: Instant, now: Instant) {
        match t {
            Timer::Start => {
                // From the scheduled join time: a late loop must not hide its lateness.
                let path = self.o.target.path.clone();
                self.enqueue(v, Req::new(Kind::Master, path, at), now);
            }
            Timer::Reload => self.on_reload_clock(v, at, now),
            Timer::Poll => {
                self.viewers[v].poll_armed = false;
                self.ll_reload(v, at, now);
            }
            Timer::Timeout(lane, gen) => {
                let l = &self.viewers[v].lanes[lane];
                if l.gen == gen && l.inflight.is_some() {
                    self.c.err_timeout += 1;
                    self.fail(v, lane, now);
                }
            }
            Timer::Retry(lane) => self.issue(v, lane, now),
        }
    }

    /// Queue `req` on its lane and start it if the connection is free.
    pub fn enqueue(&mut self, v: usize, req: Req, now: Instant) {
        let lane = self.viewers[v].lane_for(req.kind);
        self.viewers[v].lanes[lane].queue.push_back(req);
        self.issue(v, lane, now);
    }

    /// Start the next queued request of a lane if its connection is free.
    pub fn issue(&mut self, v: usize, lane: usize, now: Instant) {
        let l = &mut self.viewers[v].lanes[lane];
        if l.inflight.is_some() || l.queue.is_empty() {
            return;
        }
        if l.backoff_until.is_some_and(|t| t > now) {
            return;
        }
        if l.conn.is_none() {
            let registered = connect(self.o.target.addr, self.o.bind).and_then(|mut s| {
                self.poll
                    .registry()
                    .register(
                        &mut s,
                        Token(v * LANES + lane),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map(|()| s)
            });
            match registered {
                Ok(s) => {
                    let l = &mut self.viewers[v].lanes[lane];
                    l.conn = Some(s);
                    l.got_bytes = false;
                }
                Err(_) => {
                    self.c.err_connect += 1;
                    self.backoff(v, lane, now);
                    return;
                }
            }
        }
        let l = &mut self.viewers[v].lanes[lane];
        let Some(req) = l.queue.pop_front() else {
            return;
        };
        l.out.clear();
        l.out_off = 0;
        let _ = write!(
            DisplayVec(&mut l.out),
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: corestream-bench-swarm\r\nAccept: */*\r\n\r\n",
            req.path, self.o.target.host_header
        );
        l.head.clear();
        l.body.clear();
        l.headers_done = false;
        l.body_left = 0;
        l.status = 0;
        l.close_after = false;
        l.gen += 1;
        let gen = l.gen;
        l.inflight = Some(req);
        self.timers.push(Reverse((
            now + self.o.timeout,
            v,
            Timer::Timeout(lane, gen),
        )));
        self.flush(v, lane, now);
    }

    /// A connection that never delivered a response byte failed to connect (refused, reset
    /// in the handshake or accept queue); otherwise it is a read/reset error.
    fn count_io_error(&mut self, v: usize, lane: usize) {
        if self.viewers[v].lanes[lane].got_bytes {
            if self.retry_on_fresh(v, lane) {
                return;
            }
            self.c.err_read += 1;
        } else {
            self.c.err_connect += 1;
        }
    }

    /// A reused keep-alive connection that the server closed before any byte of the current
    /// response (idle timeout race): resend once on a new connection, as browsers do. Returns
    /// whether the request was requeued; `fail` then finds nothing in flight.
    fn retry_on_fresh(&mut self, v: usize, lane: usize) -> bool {
        let l = &mut self.viewers[v].lanes[lane];
        if l.headers_done || !l.head.is_empty() || l.retried {
            return false;
        }
        if let Some(r) = l.inflight.take() {
            l.queue.push_front(r);
            l.retried = true;
            self.c.reconnects += 1;
            return true;
        }
        false
    }

    fn backoff(&mut self, v: usize, lane: usize, now: Instant) {
        let at = now + Duration::from_millis(500);
        // The request stays queued and is sent when a connect succeeds; its latency keeps
        // counting from its intended time.
        self.viewers[v].lanes[lane].backoff_until = Some(at);
        self.timers.push(Reverse((at, v, Timer::Retry(lane))));
    }

    fn flush(&mut self, v: usize, lane: usize, now: Instant) {
        let l = &mut self.viewers[v].lanes[lane];
        let Some(conn) = l.conn.as_mut() else { return };
        while l.out_off < l.out.len() {
            match conn.write(&l.out[l.out_off..]) {
                Ok(0) => {
                    self.count_io_error(v, lane);
                    self.fail(v, lane, now);
                    return;
                }
                Ok(n) => l.out_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.count_io_error(v, lane);
                    self.fail(v, lane, now);
                    return;
                }
            }
        }
    }

    fn on_ready(&mut self, v: usize, lane: usize) {
        let now = Instant::now();
        let l = &self.viewers[v].lanes[lane];
        if l.out_off < l.out.len() {
            self.flush(v, lane, now);
        }
        loop {
            let l = &mut self.viewers[v].lanes[lane];
            let Some(conn) = l.conn.as_mut() else { return };
            match conn.read(&mut self.buf) {
                Ok(0) => {
                    if l.inflight.is_some() {
                        self.count_io_error(v, lane);
                    }
                    self.close(v, lane);
                    self.fail(v, lane, now);
                    return;
                }
                Ok(n) => {
                    l.got_bytes = true;
                    self.c.bytes += n as u64;
                    let data = std::mem::take(&mut self.buf);
                    let out = self.feed(v, lane, &data[..n]);
                    self.buf = data;
                    match out {
                        Outcome::Pending => {}
                        Outcome::Done => {
                            self.complete(v, lane, Instant::now());
                            if self.viewers[v].lanes[lane].conn.is_none() {
                                return;
                            }
                        }
                        Outcome::Malformed => {
                            self.c.err_parse += 1;
                            self.fail(v, lane, now);
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.count_io_error(v, lane);
                    self.fail(v, lane, now);
                    return;
                }
            }
        }
    }

    /// Feed response bytes to a lane's parser.
    fn feed(&mut self, v: usize, lane: usize, data: &[u8]) -> Outcome {
        let l = &mut self.viewers[v].lanes[lane];
        let Some(req) = l.inflight.as_ref() else {
            // Bytes nobody asked for: the stream is out of sync.
            return Outcome::Malformed;
        };
        let keep_body = matches!(req.kind, Kind::Master | Kind::Playlist);
        if !l.headers_done {
            l.head.extend_from_slice(data);
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut resp = httparse::Response::new(&mut headers);
            return match resp.parse(&l.head) {
                Ok(httparse::Status::Partial) if l.head.len() > MAX_HEAD => Outcome::Malformed,
                Ok(httparse::Status::Partial) => Outcome::Pending,
                Err(_) => Outcome::Malformed,
                Ok(httparse::Status::Complete(n)) => {
                    l.status = resp.code.unwrap_or(0);
                    let mut len = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|s| s.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                        {
                            l.close_after = true;
                        }
                    }
                    // Static file servers always send Content-Length; chunked bodies are not
                    // handled here and count as parse errors.
                    let Some(len) = len else {
                        return Outcome::Malformed;
                    };
                    let rest = l.head.split_off(n);
                    l.head = Vec::new();
                    if (keep_body && len > MAX_PLAYLIST) || rest.len() > len {
                        return Outcome::Malformed;
                    }
                    l.headers_done = true;
                    l.body_left = len - rest.len();
                    if keep_body {
                        l.body = rest;
                    }
                    if l.body_left == 0 {
                        Outcome::Done
                    } else {
                        Outcome::Pending
                    }
                }
            };
        }
        if data.len() > l.body_left {
            return Outcome::Malformed;
        }
        l.body_left -= data.len();
        if keep_body {
            l.body.extend_from_slice(data);
        }
        if l.body_left == 0 {
            Outcome::Done
        } else {
            Outcome::Pending
        }
    }

    fn close(&mut self, v: usize, lane: usize) {
        if let Some(mut c) = self.viewers[v].lanes[lane].conn.take() {
            let _ = self.poll.registry().deregister(&mut c);
        }
    }

    /// The in-flight request failed: drop the connection (its state is unknown) and move on.
    fn fail(&mut self, v: usize, lane: usize, now: Instant) {
        self.close(v, lane);
        let l = &mut self.viewers[v].lanes[lane];
        let was = l.inflight.take();
        if was.is_some() {
            l.retried = false;
        }
        l.gen += 1;
        l.out.clear();
        l.out_off = 0;
        l.head = Vec::new();
        l.body = Vec::new();
        if let Some(r) = was {
            let vw = &mut self.viewers[v];
            // A failed join fetch leaves the viewer nowhere to go: retry it after a pause.
            if r.kind == Kind::Master
                || (r.kind == Kind::Playlist && vw.last_seq.is_none() && vw.next_part.is_none())
            {
                let at = now + Duration::from_millis(500);
                let l = &mut vw.lanes[lane];
                l.queue.push_front(Req { intended: at, ..r });
                l.backoff_until = Some(at);
                self.timers.push(Reverse((at, v, Timer::Retry(lane))));
                return;
            }
            if r.kind == Kind::Playlist && vw.is_ll() {
                self.arm_poll(v, now, Duration::from_millis(500));
            }
            if let Some(m) = r.media.filter(|m| m.hinted) {
                self.forget_requested(v, &m);
            }
        }
        self.issue(v, lane, now);
    }

    fn complete(&mut self, v: usize, lane: usize, now: Instant) {
        let l = &mut self.viewers[v].lanes[lane];
        let Some(req) = l.inflight.take() else {
            return;
        };
        l.gen += 1;
        l.retried = false;
        let close_after = l.close_after;
        let status = l.status;
        let body = std::mem::take(&mut l.body);
        if close_after {
            self.close(v, lane);
        }
        if let Some(m) = req.media.as_ref().filter(|m| m.hinted && status == 404) {
            // A server that cannot hold a request for a hinted part answers 404 at once:
            // not a delivery, not an error. The viewer fetches the part once it is listed.
            self.c.hints_not_held += 1;
            self.viewers[v].refused_hint = Some(m.uri.clone());
            self.forget_requested(v, m);
            self.issue(v, lane, now);
            return;
        }
        let k = req.kind.index();
        self.c.requests[k] += 1;
        let us = now.saturating_duration_since(req.intended).as_micros() as u64;
        self.hist.latency[k].saturating_record(us.max(1));
        if (200..300).contains(&status) {
            match req.kind {
                Kind::Master | Kind::Playlist => self.on_playlist(v, &req, &body, now),
                Kind::Segment | Kind::Part => self.on_media(v, &req, now),
            }
        } else {
            self.c.err_status += 1;
            if req.kind == Kind::Master {
                let at = now + Duration::from_secs(1);
                let l = &mut self.viewers[v].lanes[lane];
                l.queue.push_front(Req {
                    intended: at,
                    ..req
                });
                l.backoff_until = Some(at);
                self.timers.push(Reverse((at, v, Timer::Retry(lane))));
                return;
            }
            if req.kind == Kind::Playlist && self.viewers[v].is_ll() {
                // 503 after blocking too long, or a refused directive: ask again shortly.
                let pt = self.viewers[v].part_target;
                self.arm_poll(v, now, Duration::from_secs_f64(pt));
            }
        }
        self.issue(v, lane, now);
    }

    /// LL: reload after `delay` unless a reload is already waiting or armed.
    pub fn arm_poll(&mut self, v: usize, now: Instant, delay: Duration) {
        let vw = &mut self.viewers[v];
        if vw.poll_armed || vw.lanes[0].has(Kind::Playlist) {
            return;
        }
        vw.poll_armed = true;
        self.timers.push(Reverse((now + delay, v, Timer::Poll)));
    }
}

pub(super) fn ms_to_us(ms: i64) -> u64 {
    u64::try_from(ms.saturating_mul(1000)).unwrap_or(0).max(1)
}
