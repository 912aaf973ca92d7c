//! `swarm`: simulated HLS viewers against any live HLS URL.
//!
//! Each viewer fetches the master playlist once (when the URL is one), picks a rendition by
//! the --rendition-mix weights, reloads its media playlist every target duration on a
//! constant clock, and downloads every new segment once (three at join, like players
//! building a buffer). Latency is measured from the INTENDED send time, so a slow server
//! cannot hide its queueing by delaying our requests (no coordinated omission). Playback is
//! modelled per viewer: it starts when the join segments are in, and every later segment
//! must be complete before the buffer runs dry, or the viewer stalls.
//!
//! One process drives up to `--per-process` viewers with one mio event loop and one
//! non-blocking keep-alive connection per viewer; above that (fd ceiling 20000 per process)
//! the command re-executes itself as `swarm-worker` children, each bound to its own
//! loopback source address when the target is loopback (IP_BIND_ADDRESS_NO_PORT, so each gets
//! a full ephemeral port range), and merges their HdrHistograms (V2 format, hex over a pipe).
//! No async runtime: a single-threaded readiness loop per process is all this needs and
//! keeps the client's own overhead small on a 2-core box.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::hls;

/// Largest response head accepted before calling the response malformed.
const MAX_HEAD: usize = 64 * 1024;
/// Largest playlist body kept for parsing.
const MAX_PLAYLIST: usize = 4 * 1024 * 1024;
/// Segments fetched at join to build the start-up buffer (what common players do).
const JOIN_SEGMENTS: usize = 3;

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host_header: String,
    pub path: String,
}

/// Parse `http://host[:port]/path`. HTTPS is not supported (the harness measures the file
/// path of the server, not TLS).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("URL must start with http:// (https is not supported): {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("URL has no host: {url}"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    Ok(Target {
        addr,
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Master,
    Playlist,
    Segment,
}

const KINDS: [(Kind, &str); 3] = [
    (Kind::Master, "master"),
    (Kind::Playlist, "playlist"),
    (Kind::Segment, "segment"),
];

#[derive(Debug, Clone)]
struct Req {
    kind: Kind,
    path: String,
    intended: Instant,
    seg_duration: f64,
}

#[derive(Default)]
struct Viewer {
    conn: Option<TcpStream>,
    queue: VecDeque<Req>,
    inflight: Option<Req>,
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
    media_path: Option<String>,
    target: f64,
    last_seq: Option<u64>,
    next_reload: Option<Instant>,
    join_left: usize,
    /// When the playback buffer runs dry; None before playback starts.
    buffer_end: Option<Instant>,
    buffered_at_join: f64,
    stalls: u64,
    ended: bool,
    connect_backoff_until: Option<Instant>,
    /// The current connection has delivered response bytes (else a failure is a connect error).
    got_bytes: bool,
    /// The in-flight request was already resent once after a keep-alive close.
    retried: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub viewers: u64,
    pub requests: [u64; 3],
    pub bytes: u64,
    pub err_connect: u64,
    pub err_read: u64,
    pub err_timeout: u64,
    pub err_status: u64,
    pub err_parse: u64,
    pub stalls: u64,
    pub stalled_viewers: u64,
    pub playing_viewers: u64,
    pub reconnects: u64,
    /// Playlist reloads not queued because the previous one was still waiting: a player
    /// never has two reloads of one playlist outstanding.
    pub reloads_skipped: u64,
    /// Requests still queued or in flight when the run ended, and the oldest one's wait.
    pub unfinished: u64,
    pub unfinished_oldest_ms_max: u64,
}

impl Counters {
    fn fields(&mut self) -> [(&'static str, &mut u64); 17] {
        let [m, p, s] = &mut self.requests;
        [
            ("viewers", &mut self.viewers),
            ("req_master", m),
            ("req_playlist", p),
            ("req_segment", s),
            ("bytes", &mut self.bytes),
            ("err_connect", &mut self.err_connect),
            ("err_read", &mut self.err_read),
            ("err_timeout", &mut self.err_timeout),
            ("err_status", &mut self.err_status),
            ("err_parse", &mut self.err_parse),
            ("stalls", &mut self.stalls),
            ("stalled_viewers", &mut self.stalled_viewers),
            ("playing_viewers", &mut self.playing_viewers),
            ("reconnects", &mut self.reconnects),
            ("reloads_skipped", &mut self.reloads_skipped),
            ("unfinished", &mut self.unfinished),
            (
                "unfinished_oldest_ms_max",
                &mut self.unfinished_oldest_ms_max,
            ),
        ]
    }
}

/// Histograms: latency per kind (microseconds) and segment download time / duration (per mille).
pub struct Hists {
    pub latency: [Histogram<u64>; 3],
    pub seg_ratio: Histogram<u64>,
}

fn new_hist(max: u64) -> Histogram<u64> {
    // Constant bounds (1 .. max, 3 significant digits) that hdrhistogram always accepts; no
    // input reaches this.
    Histogram::new_with_bounds(1, max, 3).expect("constant histogram bounds are valid")
}

impl Hists {
    fn new() -> Hists {
        Hists {
            latency: [
                new_hist(600_000_000),
                new_hist(600_000_000),
                new_hist(600_000_000),
            ],
            seg_ratio: new_hist(1_000_000),
        }
    }
}

/// A condition on the counters that ends a run early.
pub type StopWhen = Box<dyn Fn(&Counters) -> bool>;

pub struct EngineOpts {
    pub target: Target,
    pub viewers: usize,
    pub id_offset: usize,
    pub duration: Duration,
    pub ramp: Duration,
    pub mix: Vec<f64>,
    pub timeout: Duration,
    pub bind: Option<IpAddr>,
    /// End the run early once this holds (tests wait for events, bounded by `duration`).
    pub until: Option<StopWhen>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Start,
    Reload,
    Timeout(u64),
    Retry,
}

struct Engine {
    o: EngineOpts,
    poll: Poll,
    viewers: Vec<Viewer>,
    timers: BinaryHeap<Reverse<(Instant, usize, Timer)>>,
    hist: Hists,
    c: Counters,
    end: Instant,
    buf: Vec<u8>,
}

/// Deterministic per-viewer choice in [0,1) (splitmix64), so runs are reproducible.
fn unit(id: usize, salt: u64) -> f64 {
    let mut z = (id as u64)
        .wrapping_add(salt)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Pick a variant index for viewer `id` by `mix` weights over variants sorted by bandwidth
/// from high to low. Missing weights are 0; no weights at all means equal shares.
pub fn pick_variant(id: usize, n: usize, mix: &[f64]) -> usize {
    let w: Vec<f64> = (0..n)
        .map(|i| mix.get(i).copied().unwrap_or(0.0).max(0.0))
        .collect();
    let total: f64 = w.iter().sum();
    if n == 0 {
        return 0;
    }
    if total <= 0.0 {
        return (unit(id, 1) * n as f64) as usize % n;
    }
    let mut x = unit(id, 1) * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    n - 1
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

impl Engine {
    fn new(o: EngineOpts) -> Result<Engine, String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let now = Instant::now();
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
        Ok(Engine {
            end: now + o.duration,
            o,
            poll,
            viewers: (0..n).map(|_| Viewer::default()).collect(),
            timers,
            hist: Hists::new(),
            c,
            buf: vec![0u8; 256 * 1024],
        })
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
                let v = ev.token().0;
                if v < self.viewers.len() {
                    self.on_ready(v);
                }
            }
        }
        // Viewers whose buffer ran dry before the end and never got the next segment.
        let end = self.end;
        for v in &mut self.viewers {
            for r in v.inflight.iter().chain(v.queue.iter()) {
                self.c.unfinished += 1;
                let age = end.saturating_duration_since(r.intended).as_millis() as u64;
                self.c.unfinished_oldest_ms_max = self.c.unfinished_oldest_ms_max.max(age);
            }
            if let Some(be) = v.buffer_end {
                self.c.playing_viewers += 1;
                if be + Duration::from_secs_f64(v.target.max(1.0)) < end {
                    v.stalls += 1;
                    self.c.stalls += 1;
                }
            }
            if v.stalls > 0 {
                self.c.stalled_viewers += 1;
            }
        }
        Ok((self.c, self.hist))
    }

    fn on_timer(&mut self, v: usize, t: Timer, at: Instant, now: Instant) {
        match t {
            Timer::Start => {
                let path = self.o.target.path.clone();
                // From the scheduled join time: a late loop must not hide its lateness.
                self.viewers[v].queue.push_back(Req {
                    kind: Kind::Master,
                    path,
                    intended: at,
                    seg_duration: 0.0,
                });
                self.issue(v, now);
            }
            Timer::Reload => {
                let vw = &mut self.viewers[v];
                if vw.ended {
                    return;
                }
                let (Some(at), Some(path)) = (vw.next_reload, vw.media_path.clone()) else {
                    return;
                };
                // Like a player, never queue a second reload behind one not yet answered:
                // the waiting one keeps its intended time, so its latency still shows
                // how late the server is.
                let waiting = vw.queue.iter().any(|r| r.kind == Kind::Playlist)
                    || vw
                        .inflight
                        .as_ref()
                        .is_some_and(|r| r.kind == Kind::Playlist);
                if waiting {
                    self.c.reloads_skipped += 1;
                } else {
                    vw.queue.push_back(Req {
                        kind: Kind::Playlist,
                        path,
                        intended: at,
                        seg_duration: 0.0,
                    });
                }
                let next = at + Duration::from_secs_f64(vw.target.max(0.1));
                vw.next_reload = Some(next);
                self.timers.push(Reverse((next, v, Timer::Reload)));
                self.issue(v, now);
            }
            Timer::Timeout(gen) => {
                if self.viewers[v].gen == gen && self.viewers[v].inflight.is_some() {
                    self.c.err_timeout += 1;
                    self.fail(v, now);
                }
            }
            Timer::Retry => self.issue(v, now),
        }
    }

    /// Start the next queued request if the connection is free.
    fn issue(&mut self, v: usize, now: Instant) {
        let vw = &mut self.viewers[v];
        if vw.inflight.is_some() || vw.queue.is_empty() {
            return;
        }
        if vw.connect_backoff_until.is_some_and(|t| t > now) {
            return;
        }
        if vw.conn.is_none() {
            match connect(self.o.target.addr, self.o.bind) {
                Ok(mut s) => {
                    if let Err(_e) = self.poll.registry().register(
                        &mut s,
                        Token(v),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.c.err_connect += 1;
                        self.backoff(v, now);
                        return;
                    }
                    let vw = &mut self.viewers[v];
                    vw.conn = Some(s);
                    vw.got_bytes = false;
                }
                Err(_) => {
                    self.c.err_connect += 1;
                    self.backoff(v, now);
                    return;
                }
            }
        }
        let vw = &mut self.viewers[v];
        let Some(req) = vw.queue.pop_front() else {
            return;
        };
        vw.out.clear();
        vw.out_off = 0;
        let _ = write!(
            DisplayVec(&mut vw.out),
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: corestream-bench-swarm\r\nAccept: */*\r\n\r\n",
            req.path, self.o.target.host_header
        );
        vw.head.clear();
        vw.body.clear();
        vw.headers_done = false;
        vw.body_left = 0;
        vw.status = 0;
        vw.close_after = false;
        vw.gen += 1;
        let gen = vw.gen;
        vw.inflight = Some(req);
        self.timers
            .push(Reverse((now + self.o.timeout, v, Timer::Timeout(gen))));
        self.flush(v, now);
    }

    /// A connection that never delivered a response byte failed to connect (refused, reset
    /// in the handshake or accept queue); otherwise it is a read/reset error.
    fn count_io_error(&mut self, v: usize) {
        if self.viewers[v].got_bytes {
            if self.retry_on_fresh(v) {
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
    fn retry_on_fresh(&mut self, v: usize) -> bool {
        let vw = &mut self.viewers[v];
        if vw.headers_done || !vw.head.is_empty() || vw.retried {
            return false;
        }
        if let Some(r) = vw.inflight.take() {
            vw.queue.push_front(r);
            vw.retried = true;
            self.c.reconnects += 1;
            return true;
        }
        false
    }

    fn backoff(&mut self, v: usize, now: Instant) {
        let at = now + Duration::from_millis(500);
        let vw = &mut self.viewers[v];
        // The request stays queued and is sent when a connect succeeds; its latency keeps
        // counting from its intended time.
        vw.connect_backoff_until = Some(at);
        self.timers.push(Reverse((at, v, Timer::Retry)));
    }

    fn flush(&mut self, v: usize, now: Instant) {
        let vw = &mut self.viewers[v];
        let Some(conn) = vw.conn.as_mut() else { return };
        while vw.out_off < vw.out.len() {
            match conn.write(&vw.out[vw.out_off..]) {
                Ok(0) => {
                    self.count_io_error(v);
                    self.fail(v, now);
                    return;
                }
                Ok(n) => vw.out_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.count_io_error(v);
                    self.fail(v, now);
                    return;
                }
            }
        }
    }

    fn on_ready(&mut self, v: usize) {
        let now = Instant::now();
        if self.viewers[v].out_off < self.viewers[v].out.len() {
            self.flush(v, now);
        }
        loop {
            let vw = &mut self.viewers[v];
            let Some(conn) = vw.conn.as_mut() else { return };
            match conn.read(&mut self.buf) {
                Ok(0) => {
                    if vw.inflight.is_some() {
                        self.count_io_error(v);
                    }
                    self.close(v);
                    self.fail(v, now);
                    return;
                }
                Ok(n) => {
                    vw.got_bytes = true;
                    self.c.bytes += n as u64;
                    let data = std::mem::take(&mut self.buf);
                    let out = self.feed(v, &data[..n]);
                    self.buf = data;
                    match out {
                        Outcome::Pending => {}
                        Outcome::Done => {
                            let now = Instant::now();
                            self.complete(v, now);
                            if self.viewers[v].conn.is_none() {
                                return;
                            }
                        }
                        Outcome::Malformed => {
                            self.c.err_parse += 1;
                            self.fail(v, now);
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.count_io_error(v);
                    self.fail(v, now);
                    return;
                }
            }
        }
    }

    /// Feed response bytes to viewer `v`'s parser.
    fn feed(&mut self, v: usize, mut data: &[u8]) -> Outcome {
        let vw = &mut self.viewers[v];
        let Some(req) = vw.inflight.as_ref() else {
            // Bytes nobody asked for: the stream is out of sync.
            return Outcome::Malformed;
        };
        let keep_body = req.kind != Kind::Segment;
        if !vw.headers_done {
            vw.head.extend_from_slice(data);
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&vw.head) {
                Ok(httparse::Status::Partial) => {
                    return if vw.head.len() > MAX_HEAD {
                        Outcome::Malformed
                    } else {
                        Outcome::Pending
                    };
                }
                Err(_) => return Outcome::Malformed,
                Ok(httparse::Status::Complete(n)) => {
                    vw.status = resp.code.unwrap_or(0);
                    let mut len = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|s| s.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                        {
                            vw.close_after = true;
                        }
                    }
                    // Static file servers always send Content-Length; chunked bodies are not
                    // handled here and count as parse errors.
                    let Some(len) = len else {
                        return Outcome::Malformed;
                    };
                    vw.headers_done = true;
                    vw.body_left = len;
                    let rest = vw.head.split_off(n);
                    vw.head = Vec::new();
                    if keep_body && len > MAX_PLAYLIST {
                        return Outcome::Malformed;
                    }
                    if rest.len() > len {
                        return Outcome::Malformed;
                    }
                    vw.body_left -= rest.len();
                    if keep_body {
                        vw.body = rest;
                    }
                    return if vw.body_left == 0 {
                        Outcome::Done
                    } else {
                        Outcome::Pending
                    };
                }
            }
        }
        if data.len() > vw.body_left {
            return Outcome::Malformed;
        }
        vw.body_left -= data.len();
        if keep_body {
            vw.body.extend_from_slice(data);
        }
        data = &data[..0];
        let _ = data;
        if vw.body_left == 0 {
            Outcome::Done
        } else {
            Outcome::Pending
        }
    }

    fn close(&mut self, v: usize) {
        if let Some(mut c) = self.viewers[v].conn.take() {
            let _ = self.poll.registry().deregister(&mut c);
        }
    }

    /// The in-flight request failed: drop the connection (its state is unknown) and move on.
    fn fail(&mut self, v: usize, now: Instant) {
        self.close(v);
        let vw = &mut self.viewers[v];
        let was = vw.inflight.take();
        if was.is_some() {
            vw.retried = false;
        }
        vw.gen += 1;
        vw.out.clear();
        vw.out_off = 0;
        vw.head = Vec::new();
        vw.body = Vec::new();
        // A failed join fetch leaves the viewer nowhere to go: retry it after a pause.
        if let Some(r) = was {
            if r.kind == Kind::Master || (r.kind == Kind::Playlist && vw.last_seq.is_none()) {
                let at = now + Duration::from_millis(500);
                vw.queue.push_front(Req { intended: at, ..r });
                vw.connect_backoff_until = Some(at);
                self.timers.push(Reverse((at, v, Timer::Retry)));
                return;
            }
        }
        self.issue(v, now);
    }

    fn complete(&mut self, v: usize, now: Instant) {
        let vw = &mut self.viewers[v];
        let Some(req) = vw.inflight.take() else {
            return;
        };
        vw.gen += 1;
        vw.retried = false;
        let kind_i = KINDS.iter().position(|k| k.0 == req.kind).unwrap_or(0);
        self.c.requests[kind_i] += 1;
        let us = now.saturating_duration_since(req.intended).as_micros() as u64;
        self.hist.latency[kind_i].saturating_record(us.max(1));
        let close_after = vw.close_after;
        let status = vw.status;
        let body = std::mem::take(&mut vw.body);
        if close_after {
            self.close(v);
        }
        if !(200..300).contains(&status) {
            self.c.err_status += 1;
            if req.kind == Kind::Master {
                let vw = &mut self.viewers[v];
                let at = now + Duration::from_secs(1);
                vw.queue.push_front(Req {
                    intended: at,
                    ..req
                });
                vw.connect_backoff_until = Some(at);
                self.timers.push(Reverse((at, v, Timer::Retry)));
                return;
            }
        } else {
            match req.kind {
                Kind::Master | Kind::Playlist => self.on_playlist(v, &req, &body, now),
                Kind::Segment => self.on_segment(v, &req, now),
            }
        }
        self.issue(v, now);
    }

    fn on_playlist(&mut self, v: usize, req: &Req, body: &[u8], now: Instant) {
        let Ok(text) = std::str::from_utf8(body) else {
            self.c.err_parse += 1;
            return;
        };
        let pl = match hls::parse(text) {
            Ok(p) => p,
            Err(_) => {
                self.c.err_parse += 1;
                return;
            }
        };
        let id = v + self.o.id_offset;
        let vw = &mut self.viewers[v];
        if pl.is_master() {
            // Variants from high to low bandwidth, so the mix weights read top-down.
            let mut vars = pl.variants.clone();
            vars.sort_by_key(|x| Reverse(x.bandwidth));
            let pick = pick_variant(id, vars.len(), &self.o.mix);
            let path = hls::resolve(&req.path, &vars[pick].uri);
            vw.media_path = Some(path.clone());
            vw.queue.push_back(Req {
                kind: Kind::Playlist,
                path,
                intended: now,
                seg_duration: 0.0,
            });
            return;
        }
        let media_path = vw
            .media_path
            .get_or_insert_with(|| req.path.clone())
            .clone();
        vw.target = pl.target_duration;
        let first = vw.last_seq.is_none();
        let new: Vec<&hls::Segment> = match vw.last_seq {
            None => {
                let n = pl.segments.len();
                pl.segments[n.saturating_sub(JOIN_SEGMENTS)..]
                    .iter()
                    .collect()
            }
            Some(last) => pl.segments.iter().filter(|s| s.seq > last).collect(),
        };
        if first {
            vw.join_left = new.len();
        }
        for s in &new {
            vw.queue.push_back(Req {
                kind: Kind::Segment,
                path: hls::resolve(&media_path, &s.uri),
                intended: now,
                seg_duration: s.duration,
            });
        }
        if let Some(last) = pl.segments.last() {
            vw.last_seq = Some(vw.last_seq.map_or(last.seq, |l| l.max(last.seq)));
        }
        if pl.endlist {
            vw.ended = true;
        }
        if first && !pl.endlist {
            // Constant clock from the intended time of the first media playlist request.
            let at = req.intended + Duration::from_secs_f64(vw.target.max(0.1));
            vw.next_reload = Some(at);
            self.timers.push(Reverse((at, v, Timer::Reload)));
        }
    }

    fn on_segment(&mut self, v: usize, req: &Req, now: Instant) {
        let dur = req.seg_duration.max(0.001);
        let took = now.saturating_duration_since(req.intended).as_secs_f64();
        self.hist
            .seg_ratio
            .saturating_record(((took / dur) * 1000.0).round().max(1.0) as u64);
        let vw = &mut self.viewers[v];
        match vw.buffer_end {
            None => {
                vw.buffered_at_join += dur;
                vw.join_left = vw.join_left.saturating_sub(1);
                if vw.join_left == 0 {
                    vw.buffer_end = Some(now + Duration::from_secs_f64(vw.buffered_at_join));
                }
            }
            Some(be) => {
                let d = Duration::from_secs_f64(dur);
                if now > be {
                    vw.stalls += 1;
                    self.c.stalls += 1;
                    vw.buffer_end = Some(now + d);
                } else {
                    vw.buffer_end = Some(be + d);
                }
            }
        }
    }
}

/// `write!` into a Vec<u8> without an io::Result.
struct DisplayVec<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for DisplayVec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Worker wire format: `COUNTER name value` lines, then `HIST name hex(V2)` lines, then `END`.
pub fn write_results(c: &Counters, h: &Hists, out: &mut impl Write) -> Result<(), String> {
    let mut c = *c;
    for (k, v) in c.fields() {
        writeln!(out, "COUNTER {k} {v}").map_err(|e| e.to_string())?;
    }
    let mut ser = V2Serializer::new();
    let hs: [(&str, &Histogram<u64>); 4] = [
        ("master", &h.latency[0]),
        ("playlist", &h.latency[1]),
        ("segment", &h.latency[2]),
        ("seg_ratio", &h.seg_ratio),
    ];
    for (name, hist) in hs {
        let mut v = Vec::new();
        ser.serialize(hist, &mut v)
            .map_err(|e| format!("serialize {name}: {e:?}"))?;
        writeln!(out, "HIST {name} {}", hex(&v)).map_err(|e| e.to_string())?;
    }
    writeln!(out, "END").map_err(|e| e.to_string())
}

/// Merge one worker's output into `c` and `h`.
pub fn read_results(text: &str, c: &mut Counters, h: &mut Hists) -> Result<(), String> {
    let mut de = Deserializer::new();
    let mut ended = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("COUNTER") => {
                let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
                else {
                    return Err(format!("bad worker line: {line}"));
                };
                for (name, slot) in c.fields() {
                    if name == k {
                        // `_max` counters merge as the maximum, the rest add up.
                        if name.ends_with("_max") {
                            *slot = (*slot).max(v);
                        } else {
                            *slot += v;
                        }
                    }
                }
            }
            Some("HIST") => {
                let (Some(k), Some(hx)) = (it.next(), it.next()) else {
                    return Err(format!("bad worker line: {}", &line[..line.len().min(40)]));
                };
                let bytes = unhex(hx).ok_or("worker histogram is not hex")?;
                let hist: Histogram<u64> = de
                    .deserialize(&mut &bytes[..])
                    .map_err(|e| format!("worker histogram {k}: {e:?}"))?;
                let dst = match k {
                    "master" => &mut h.latency[0],
                    "playlist" => &mut h.latency[1],
                    "segment" => &mut h.latency[2],
                    "seg_ratio" => &mut h.seg_ratio,
                    _ => return Err(format!("unknown histogram {k}")),
                };
                dst.add(&hist).map_err(|e| format!("merge {k}: {e:?}"))?;
            }
            Some("END") => ended = true,
            _ => {}
        }
    }
    if !ended {
        return Err("worker output ended early (no END line)".into());
    }
    Ok(())
}

pub fn run_engine(o: EngineOpts) -> Result<(Counters, Hists), String> {
    Engine::new(o)?.run()
}

pub struct Opts {
    pub url: String,
    pub viewers: usize,
    pub duration: Duration,
    pub ramp: Duration,
    pub mix: Vec<f64>,
    pub timeout: Duration,
    pub per_process: usize,
    pub processes: Option<usize>,
    pub report: Option<PathBuf>,
    pub label: Option<String>,
    pub command_line: String,
}

pub fn run(o: Opts) -> Result<(), String> {
    let soft = crate::machine::raise_nofile() as usize;
    let target = parse_url(&o.url)?;
    let budget = soft.saturating_sub(100).min(o.per_process).max(1);
    let procs = o
        .processes
        .unwrap_or(1)
        .max(o.viewers.div_ceil(budget))
        .max(1);
    if o.viewers.div_ceil(procs) > soft.saturating_sub(100) {
        return Err(format!(
            "{} viewers per process exceed the fd limit {soft}; raise --processes",
            o.viewers.div_ceil(procs)
        ));
    }
    let loopback = target.addr.ip().is_loopback() && target.addr.is_ipv4();
    let mut c = Counters::default();
    let mut h = Hists::new();
    let t0 = Instant::now();
    let mut layout = String::new();
    if procs == 1 {
        let (cc, hh) = run_engine(EngineOpts {
            target: target.clone(),
            viewers: o.viewers,
            id_offset: 0,
            duration: o.duration,
            ramp: o.ramp,
            mix: o.mix.clone(),
            timeout: o.timeout,
            bind: None,
            until: None,
        })?;
        c = cc;
        h = hh;
        layout.push_str("1 process");
    } else {
        let mut kids = Vec::new();
        let mut offset = 0;
        for k in 0..procs {
            let n = o.viewers / procs + usize::from(k < o.viewers % procs);
            let mut cmd = crate::child::own("swarm-worker")?;
            cmd.arg("--viewers")
                .arg(n.to_string())
                .arg("--id-offset")
                .arg(offset.to_string())
                .arg("--duration")
                .arg(o.duration.as_secs_f64().to_string())
                .arg("--ramp")
                .arg(o.ramp.as_secs_f64().to_string())
                .arg("--timeout")
                .arg(o.timeout.as_secs_f64().to_string())
                .arg("--rendition-mix")
                .arg(
                    o.mix
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            if loopback {
                cmd.arg("--bind").arg(format!("127.0.0.{}", k + 2));
            }
            cmd.arg(&o.url);
            offset += n;
            kids.push(crate::child::spawn_reporting(
                &mut cmd,
                Stdio::null(),
                "swarm-worker",
            )?);
        }
        let _ = write!(
            layout,
            "{procs} processes x ~{} viewers{}",
            o.viewers / procs,
            if loopback {
                format!(", sources 127.0.0.2..127.0.0.{}", procs + 1)
            } else {
                String::new()
            }
        );
        let mut first_err = None;
        for mut k in kids {
            let mut text = String::new();
            if let Some(mut out) = k.stdout.take() {
                let _ = BufReader::new(&mut out).read_to_string(&mut text);
            }
            let st = k.wait().map_err(|e| e.to_string())?;
            if let Err(e) = read_results(&text, &mut c, &mut h) {
                first_err.get_or_insert(format!("swarm-worker ({st}): {e}"));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let md = render(&o, &c, &h, wall, &layout, &target);
    print!("{md}");
    if let Some(p) = &o.report {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

fn render(o: &Opts, c: &Counters, h: &Hists, wall: f64, layout: &str, t: &Target) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## swarm: {} viewers{} against {}\n",
        o.viewers,
        o.label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default(),
        o.url
    );
    let _ = writeln!(s, "Command: `{}`\n", o.command_line);
    let total: u64 = c.requests.iter().sum();
    let _ = writeln!(
        s,
        "{layout}; target {}; duration {:.0} s (joins spread over {:.0} s); wall {:.1} s; {} requests ({:.0}/s), {:.1} MB received ({:.1} MB/s); request timeout {:.0} s; rendition mix {:?} (variants high to low bandwidth).\n",
        t.addr,
        o.duration.as_secs_f64(),
        o.ramp.as_secs_f64(),
        wall,
        total,
        total as f64 / o.duration.as_secs_f64().max(0.001),
        c.bytes as f64 / 1e6,
        c.bytes as f64 / 1e6 / o.duration.as_secs_f64().max(0.001),
        o.timeout.as_secs_f64(),
        o.mix
    );
    let _ = writeln!(s, "Latency from the intended send time (ms):\n");
    let _ = writeln!(s, "| kind | requests | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, (_, name)) in KINDS.iter().enumerate() {
        let hh = &h.latency[i];
        let _ = writeln!(
            s,
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            c.requests[i],
            ms(hh, 0.5),
            ms(hh, 0.9),
            ms(hh, 0.99),
            ms(hh, 0.999),
            if hh.is_empty() {
                f64::NAN
            } else {
                hh.max() as f64 / 1000.0
            }
        );
    }
    let r = &h.seg_ratio;
    let q = |p: f64| {
        if r.is_empty() {
            f64::NAN
        } else {
            r.value_at_quantile(p) as f64 / 1000.0
        }
    };
    let _ = writeln!(
        s,
        "\nSegment download time / segment duration: p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3} (above 1.0 a viewer cannot keep up).\n",
        q(0.5),
        q(0.9),
        q(0.99),
        if r.is_empty() { f64::NAN } else { r.max() as f64 / 1000.0 }
    );
    let _ = writeln!(
        s,
        "Stalls: {} events; {} of {} viewers stalled at least once ({:.2}%); {} viewers reached playback.\n",
        c.stalls,
        c.stalled_viewers,
        c.viewers,
        100.0 * c.stalled_viewers as f64 / c.viewers.max(1) as f64,
        c.playing_viewers
    );
    let _ = writeln!(
        s,
        "Unfinished at the end (queued or in flight, not in the percentiles above): {} requests, the oldest waiting {:.0} ms.\n",
        c.unfinished, c.unfinished_oldest_ms_max as f64
    );
    let _ = writeln!(
        s,
        "Errors: connect {}, read/reset {}, timeout {}, non-2xx {}, malformed response/playlist {}. Requests resent once after the server closed an idle keep-alive connection: {}. Reloads skipped because the previous one was still unanswered (the viewer was behind): {}.",
        c.err_connect, c.err_read, c.err_timeout, c.err_status, c.err_parse, c.reconnects, c.reloads_skipped
    );
    s
}

/// `--rendition-mix 30,50,20` -> weights.
pub fn parse_mix(s: &str) -> Result<Vec<f64>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!("--rendition-mix: '{x}' is not a non-negative number (e.g. 30,50,20)")
                })
        })
        .collect()
}

/// `swarm-worker`: run the engine and print results in the wire format.
pub fn worker(o: EngineOpts) -> Result<(), String> {
    crate::machine::raise_nofile();
    let (c, h) = run_engine(o)?;
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    write_results(&c, &h, &mut lock)?;
    lock.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal keep-alive HTTP server for the tests: one thread per connection, GET heads
    /// only; `respond` gets the request path and returns the whole response.
    fn serve(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let respond = std::sync::Arc::new(respond);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let respond = respond.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split_whitespace().nth(1).unwrap_or("/");
                        if s.write_all(&respond(path)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        let mut r =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// Static files from `root` (404 for anything missing).
    fn serve_dir(root: std::path::PathBuf) -> SocketAddr {
        serve(
            move |path| match fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => ok(&body),
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            },
        )
    }

    fn engine(
        url: &str,
        viewers: usize,
        until: impl Fn(&Counters) -> bool + 'static,
    ) -> EngineOpts {
        EngineOpts {
            target: parse_url(url).unwrap(),
            viewers,
            id_offset: 0,
            // Upper bounds only: every test ends when `until` holds. Generous, so a busy
            // machine makes a test slower, never red.
            duration: Duration::from_secs(90),
            ramp: Duration::from_millis(200),
            mix: vec![],
            timeout: Duration::from_secs(30),
            bind: None,
            until: Some(Box::new(until)),
        }
    }

    /// A live media playlist whose reloads after the first take 2.5 s (target duration 1 s):
    /// the viewer keeps one reload outstanding, as players do, instead of queueing one per
    /// second and then fetching a backlog of stale playlists.
    #[test]
    fn reloads_do_not_pile_up_behind_a_slow_answer() {
        let playlists = std::sync::atomic::AtomicUsize::new(0);
        let addr = serve(move |path| {
            if !path.ends_with(".m3u8") {
                return ok(b"0123456789");
            }
            if playlists.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                std::thread::sleep(Duration::from_millis(2500));
            }
            ok(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1.0,\nseg7.ts\n")
        });
        let t0 = Instant::now();
        let (c, _) = run_engine(engine(&format!("http://{addr}/live/index.m3u8"), 1, |c| {
            c.reloads_skipped >= 3 && c.requests[1] >= 2
        }))
        .unwrap();
        let elapsed = t0.elapsed().as_secs_f64();
        assert!(c.reloads_skipped >= 3, "{c:?}");
        // One reload at a time: answers are bounded by the server's pace (first at once,
        // then one per 2.5 s), and at most one is outstanding at the end. A queue per tick
        // would leave several stale reloads waiting.
        assert!(
            c.requests[1] as f64 <= 2.0 + elapsed / 2.5,
            "{c:?} in {elapsed} s"
        );
        assert!(c.unfinished <= 1, "{c:?}");
        assert_eq!(c.err_status + c.err_timeout + c.err_read, 0, "{c:?}");
    }

    #[test]
    fn viewers_follow_a_live_stream() {
        const VIEWERS: u64 = 20;
        let dir = std::env::temp_dir().join(format!("csbench-swarm-{}", std::process::id()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (d2, st) = (dir.clone(), stop.clone());
        let publisher = std::thread::spawn(move || {
            crate::publish::run_until(
                crate::publish::Opts {
                    dir: d2,
                    segment_seconds: 0.5,
                    renditions: vec![200, 100],
                    window: 4,
                    duration: Duration::from_secs(120),
                },
                &st,
            )
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join("r100/index.m3u8").exists() {
            assert!(Instant::now() < deadline, "publisher did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let addr = serve_dir(dir.clone());
        let t0 = Instant::now();
        // Until every viewer could have reloaded twice and fetched two new segments.
        let (c, h) = run_engine(EngineOpts {
            mix: vec![1.0, 1.0],
            ..engine(
                &format!("http://{addr}/master.m3u8"),
                VIEWERS as usize,
                |c| c.requests[1] >= VIEWERS * 3 && c.requests[2] >= VIEWERS * 5,
            )
        })
        .unwrap();
        let elapsed = t0.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        publisher.join().unwrap().unwrap();
        assert!(c.requests[2] >= VIEWERS * 5, "{c:?}");
        assert_eq!(c.requests[0], VIEWERS, "one master per viewer");
        // Reloads on the playlist's clock (#EXT-X-TARGETDURATION: 1 s), not faster.
        assert!(
            c.requests[1] as f64 <= VIEWERS as f64 * (2.0 + elapsed),
            "{c:?} in {elapsed} s"
        );
        assert_eq!(
            c.err_connect + c.err_read + c.err_timeout + c.err_status + c.err_parse,
            0,
            "{c:?}"
        );
        assert_eq!(c.playing_viewers, VIEWERS);
        assert_eq!(h.latency[0].len(), VIEWERS);
        assert!(h.seg_ratio.len() >= c.requests[2] - 1);

        // A server that is not there: connect errors, no panic, no playback.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let (c, _) = run_engine(engine(&format!("http://{dead_addr}/master.m3u8"), 3, |c| {
            c.err_connect >= 3
        }))
        .unwrap();
        assert!(c.err_connect >= 3, "{c:?}");
        assert_eq!(c.playing_viewers, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/live/master.m3u8").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/live/master.m3u8");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t = parse_url("http://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(parse_url("https://x/").unwrap_err().contains("https"));
        assert!(parse_url("http:///a").unwrap_err().contains("no host"));
    }

    #[test]
    fn mix_and_variant_choice() {
        assert_eq!(parse_mix("30,50,20").unwrap(), vec![30.0, 50.0, 20.0]);
        assert!(parse_mix("30,x").is_err());
        assert!(parse_mix("-1").is_err());
        let mut counts = [0usize; 3];
        for id in 0..10_000 {
            counts[pick_variant(id, 3, &[30.0, 50.0, 20.0])] += 1;
        }
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        assert!((4700..5300).contains(&counts[1]), "{counts:?}");
        assert!((1700..2300).contains(&counts[2]), "{counts:?}");
        // Zero weight is never picked; no weights -> equal shares.
        assert!((0..1000).all(|id| pick_variant(id, 2, &[0.0, 1.0]) == 1));
        let mut eq = [0usize; 2];
        for id in 0..1000 {
            eq[pick_variant(id, 2, &[])] += 1;
        }
        assert!(eq[0] > 400 && eq[1] > 400);
    }

    #[test]
    fn results_round_trip_and_merge() {
        let mut h = Hists::new();
        for v in [1000u64, 2000, 3000] {
            h.latency[1].record(v).unwrap();
        }
        h.seg_ratio.record(500).unwrap();
        let c = Counters {
            viewers: 10,
            requests: [1, 3, 2],
            err_timeout: 4,
            unfinished_oldest_ms_max: 7,
            ..Counters::default()
        };
        let mut out = Vec::new();
        write_results(&c, &h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (mut c2, mut h2) = (Counters::default(), Hists::new());
        read_results(&text, &mut c2, &mut h2).unwrap();
        read_results(&text, &mut c2, &mut h2).unwrap();
        assert_eq!(c2.viewers, 20);
        assert_eq!(c2.requests, [2, 6, 4]);
        assert_eq!(c2.err_timeout, 8);
        assert_eq!(
            c2.unfinished_oldest_ms_max, 7,
            "maxima merge as max, not sum"
        );
        assert_eq!(h2.latency[1].len(), 6);
        assert_eq!(h2.latency[1].max(), h.latency[1].max());
        assert!(read_results("COUNTER viewers 1\n", &mut c2, &mut h2).is_err());
        assert!(read_results("HIST segment zz\nEND\n", &mut c2, &mut h2).is_err());
    }
}
