//! One worker: one thread, one `mio::Poll`, one SO_REUSEPORT listener, a slab of connections.
//!
//! Edge-triggered discipline: readiness is remembered per connection (`CAN_READ`,
//! `CAN_WRITE`) and cleared only when a syscall says WouldBlock. Work per turn is bounded;
//! a connection that still has work goes back on the ready queue instead of starving others.

use crate::accesslog::AccessLog;
use crate::cache::{Miss, PlaylistCache};
use crate::config::{Config, Cors};
use crate::fsys;
use crate::http::{self, Decision, FileMeta, Method, Parse, Request, Status};
use crate::live;
use crate::metrics::{bump, CloseReason, WorkerStats};
use crate::mime::{self, Kind};
use crate::path::{self, PathError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// State shared by all workers of a process.
pub struct Shared {
    pub cfg: Config,
    /// The media root; follows the path if the directory is deleted and recreated.
    pub root: Arc<crate::fsys::Root>,
    /// Set by the first SIGTERM/SIGINT: stop accepting, finish what is in flight, exit.
    pub draining: AtomicBool,
    /// Bumped by SIGHUP: workers reopen the access log.
    pub log_generation: AtomicU64,
    /// One per worker, indexed by worker id.
    pub stats: Box<[WorkerStats]>,
    /// inotify on served playlist directories (None if inotify is unavailable: parked
    /// requests are then re-checked every second instead).
    pub watcher: Option<Arc<live::Watcher>>,
    /// Parts announced by live playlists, for holding requests instead of 404.
    pub hints: live::Hints,
}

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
/// Timer resolution: deadlines fire within one tick after they pass.
const TICK: Duration = Duration::from_millis(250);
/// Wheel slots; 1024 x 250 ms = 256 s spans every default timeout in one round. Longer
/// deadlines stay in their slot for extra rounds.
const WHEEL_SLOTS: usize = 1024;
/// How long a closing connection may keep sending us bytes before we close anyway.
const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
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
/// Bytes freed by one pool trim above which the allocator is asked to hand free pages back
/// to the kernel (after a surge, so RSS follows the load down).
const RETURN_TO_OS: usize = 1 << 20;

/// Ask glibc to release free heap pages (madvise) instead of keeping them for later.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe and
    // takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

const CAN_READ: u8 = 1;
const CAN_WRITE: u8 = 2;
const QUEUED: u8 = 4;
/// Close (after shutting down our side) once the current response is out.
const CLOSE_AFTER: u8 = 8;
/// Our write side is shut: read and discard until the peer closes.
const LINGER: u8 = 16;
/// Accepted but no request byte yet: the header deadline runs from accept.
const FRESH: u8 = 32;

/// What a connection is waiting for, which decides its timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Header = 0,
    Idle = 1,
    Send = 2,
    Linger = 3,
    Parked = 4,
}

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
    phase: Phase,
    /// Lingering: bytes drained so far. Sending: the last SIOCOUTQ reading.
    lingered: u32,
    /// Tick when the current phase began (or, while sending, of the last write progress).
    since: u32,
    /// Tick of this connection's pending wheel entry, 0 if none.
    armed: u32,
    parked: Option<Box<Parked>>,
}

impl Conn {
    fn current_phase(&self) -> Phase {
        if self.flags & LINGER != 0 {
            Phase::Linger
        } else if self.out_pos < self.out.len() || self.body.is_some() {
            Phase::Send
        } else if self.parked.is_some() {
            Phase::Parked
        } else if !self.rbuf.is_empty() || self.flags & FRESH != 0 {
            Phase::Header
        } else {
            Phase::Idle
        }
    }
}

enum Step {
    /// Waiting for the kernel to report readiness.
    Idle,
    /// Budget used up with work left: go round the ready queue again.
    Yield,
    Close(CloseReason),
}

/// Request and response-head buffers kept for reuse, so a busy connection does not cost a
/// malloc/free pair per request. Sized to recent demand: buffers no request needed for a
/// whole trim interval are freed, so a surge of in-flight requests does not leave its peak
/// behind for good.
struct Pool {
    bufs: Vec<Vec<u8>>,
    /// Fewest buffers in the pool since the last trim: that many went unused.
    low: usize,
}

/// Pool trim interval, in ticks (1 s).
const POOL_TRIM_TICKS: u32 = 4;

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        let v = self
            .bufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        self.low = self.low.min(self.bufs.len());
        v
    }
    fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() == 0 {
            return;
        }
        if self.bufs.len() < POOL_MAX && v.capacity() <= 4 * READ_CHUNK {
            v.clear();
            self.bufs.push(v);
        }
    }
    /// Free the buffers that sat unused since the last trim (the bottom of the stack: the
    /// top is what take() hands out). Returns the bytes freed.
    fn trim(&mut self) -> usize {
        let idle = self.low.min(self.bufs.len());
        let freed = self.bufs.drain(..idle).map(|b| b.capacity()).sum();
        if self.bufs.capacity() > 2 * self.bufs.len().max(64) {
            self.bufs.shrink_to_fit();
        }
        self.low = self.bufs.len();
        freed
    }
}

pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    /// None once draining: closed so the kernel sends new connections to other listeners.
    listener: Option<TcpListener>,
    start: Instant,
    /// Last tick whose wheel slot has been processed.
    tick: u32,
    wheel: Vec<Vec<(u32, u32)>>,
    /// Ticks per phase timeout, indexed by Phase.
    timeouts: [u32; 5],
    draining: bool,
    /// Stopped accepting at --max-connections.
    capped: bool,
    access_log: Option<AccessLog>,
    cache: PlaylistCache,
    /// Parked requests by the path that wakes them. Entries go stale when a connection is
    /// answered or closed; they are skipped and dropped when the key is next processed.
    parked: HashMap<Box<[u8]>, Vec<usize>>,
    inbox: Arc<live::Inbox>,
    last_parked_sweep: u32,
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
    /// A worker and the waker that interrupts its poll (for shutdown and log reopening).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        mut listener: TcpListener,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let inbox = Arc::new(live::Inbox {
            paths: std::sync::Mutex::new(Vec::new()),
            waker: waker.clone(),
        });
        if let Some(w) = &shared.watcher {
            w.subscribe(inbox.clone());
        }
        let ticks = |d: Duration| (d.as_millis() / TICK.as_millis()).max(1) as u32 + 1;
        let cfg = &shared.cfg;
        let timeouts = [
            ticks(cfg.header_timeout),
            ticks(cfg.keepalive_timeout),
            ticks(cfg.send_timeout),
            ticks(LINGER_TIMEOUT),
            // Parked requests carry their own deadline.
            u32::MAX,
        ];
        let access_log = match &cfg.access_log {
            Some(p) => Some(AccessLog::open(
                p,
                shared.log_generation.load(Ordering::Relaxed),
            )?),
            None => None,
        };
        let w = Worker {
            id,
            shared,
            poll,
            listener: Some(listener),
            start: Instant::now(),
            tick: 1,
            wheel: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(),
            timeouts,
            draining: false,
            capped: false,
            access_log,
            cache: PlaylistCache::default(),
            parked: HashMap::new(),
            inbox: inbox.clone(),
            last_parked_sweep: 0,
            conns: Slab::with_capacity(1024),
            ready: VecDeque::with_capacity(1024),
            pool: Pool {
                bufs: Vec::new(),
                low: 0,
            },
            date: http::DateCache::default(),
            path_buf: Vec::with_capacity(256),
            accept_pending: true,
            accept_paused_until: None,
            last_emfile_log: None,
        };
        Ok((w, waker))
    }

    fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id]
    }

    fn now_tick(&self) -> u32 {
        (self.start.elapsed().as_millis() / TICK.as_millis()) as u32 + 1
    }

    fn can_accept(&self) -> bool {
        self.accept_pending
            && self.accept_paused_until.is_none()
            && !self.capped
            && self.listener.is_some()
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
            let timeout = if !self.ready.is_empty() || self.can_accept() {
                Some(Duration::ZERO)
            } else {
                // Idle with buffers pooled: wake to trim them (then sleep for good).
                let mut t = if self.conns.is_empty() && self.pool.bufs.is_empty() {
                    None
                } else {
                    Some(TICK)
                };
                if let Some(u) = self.accept_paused_until {
                    let d = u.saturating_duration_since(now);
                    t = Some(t.map_or(d, |t| t.min(d)));
                }
                if self.access_log.is_some() {
                    t = Some(t.map_or(Duration::from_secs(1), |t| t.min(Duration::from_secs(1))));
                }
                t
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // Before any request of this turn: a root deleted and recreated is picked up
            // (at most one fstat per 250 ms across workers).
            self.shared.root.refresh_if_deleted();
            let wall = SystemTime::now();
            self.date.update(wall);
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept_pending = true;
                    continue;
                }
                if ev.token() == WAKER {
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
            self.handle_changes();
            if !self.draining && self.shared.draining.load(Ordering::Relaxed) {
                self.begin_drain();
            }
            if self.capped && self.conns.len() <= self.low_water() {
                self.capped = false;
            }
            if self.can_accept() {
                self.accept();
            }
            for _ in 0..self.ready.len() {
                let Some(k) = self.ready.pop_front() else {
                    break;
                };
                let step = self.drive(k);
                self.after(k, step);
            }
            self.expire_timers();
            if let Some(log) = self.access_log.as_mut() {
                log.maybe_reopen(self.shared.log_generation.load(Ordering::Relaxed));
                log.flush();
            }
            if self.draining && self.conns.is_empty() {
                if let Some(log) = self.access_log.as_mut() {
                    log.flush();
                }
                return Ok(());
            }
        }
    }

    fn low_water(&self) -> usize {
        let cap = self.shared.cfg.worker_max_connections;
        cap - cap / 10
    }

    /// Bookkeeping after a connection's turn: requeue, park, or close; keep its timer.
    fn after(&mut self, k: usize, step: Step) {
        match step {
            Step::Close(reason) => self.close(k, reason),
            Step::Yield => {
                self.track_phase(k);
                self.ready.push_back(k);
            }
            Step::Idle => {
                let draining = self.draining;
                let phase = self.track_phase(k);
                if let Some(c) = self.conns.get_mut(k) {
                    c.flags &= !QUEUED;
                }
                if draining && phase == Some(Phase::Idle) {
                    self.close(k, CloseReason::Shutdown);
                }
            }
        }
    }

    /// Note phase changes (restarting the phase clock) and make sure a wheel entry exists
    /// no later than the phase's deadline. Entries are never removed: a stale one is
    /// recognised when it fires (its tick no longer equals `armed`), so arming and
    /// cancelling are O(1) and a tick costs O(entries in its slot).
    fn track_phase(&mut self, k: usize) -> Option<Phase> {
        let now = self.now_tick();
        let timeouts = self.timeouts;
        let c = self.conns.get_mut(k)?;
        let phase = c.current_phase();
        if phase != c.phase {
            c.phase = phase;
            c.since = now;
            if phase == Phase::Send {
                c.lingered = u32::MAX;
            }
        }
        let due = match &c.parked {
            Some(p) if phase == Phase::Parked => p.deadline,
            _ => c.since.saturating_add(timeouts[phase as usize]),
        };
        if c.armed == 0 || due < c.armed {
            c.armed = due.max(self.tick + 1);
            self.wheel[c.armed as usize % WHEEL_SLOTS].push((k as u32, c.armed));
        }
        Some(phase)
    }

    fn expire_timers(&mut self) {
        let now = self.now_tick();
        let mut expired: Vec<(usize, CloseReason)> = Vec::new();
        let mut rearm: Vec<usize> = Vec::new();
        let mut park_expired: Vec<usize> = Vec::new();
        while self.tick < now {
            self.tick += 1;
            let t = self.tick;
            let slot = t as usize % WHEEL_SLOTS;
            let mut entries = std::mem::take(&mut self.wheel[slot]);
            entries.retain(|&(k, due)| {
                if due > t {
                    return true; // a later round
                }
                let Some(c) = self.conns.get_mut(k as usize) else {
                    return false;
                };
                if c.armed != due {
                    return false; // stale: re-armed earlier, or the key was reused
                }
                c.armed = 0;
                let phase = c.current_phase();
                let due_now = match &c.parked {
                    Some(p) if phase == Phase::Parked => p.deadline,
                    _ => c.since.saturating_add(self.timeouts[phase as usize]),
                };
                if phase != c.phase {
                    rearm.push(k as usize);
                } else if phase == Phase::Parked && due_now <= t {
                    park_expired.push(k as usize);
                } else if phase == Phase::Send && due_now <= t && unsent_shrank(c) {
                    // The client is still taking bytes out of a full socket buffer: it is
                    // slow, not stalled.
                    c.since = t;
                    rearm.push(k as usize);
                } else if due_now <= t {
                    expired.push((
                        k as usize,
                        match phase {
                            Phase::Header => CloseReason::HeaderTimeout,
                            Phase::Idle => CloseReason::IdleTimeout,
                            Phase::Send => CloseReason::SendStall,
                            Phase::Linger | Phase::Parked => CloseReason::Done,
                        },
                    ));
                } else {
                    rearm.push(k as usize);
                }
                false
            });
            // Entries pushed into this slot while it was out stay; keep both.
            let pushed = std::mem::replace(&mut self.wheel[slot], entries);
            self.wheel[slot].extend(pushed);
            // A processed slot is usually empty until its next round: give its memory
            // back instead of keeping every slot at its busiest size (1024 slots at
            // 19k connections would otherwise hold megabytes of stale capacity).
            let kept = &mut self.wheel[slot];
            if kept.capacity() > 2 * kept.len().max(16) {
                kept.shrink_to_fit();
            }
            if t.is_multiple_of(POOL_TRIM_TICKS) && self.pool.trim() >= RETURN_TO_OS {
                return_free_memory();
            }
        }
        for (k, reason) in expired {
            self.close(k, reason);
        }
        for k in rearm {
            self.track_phase(k);
        }
        for k in park_expired {
            self.rerun_parked(k, true);
        }
    }

    /// Paths the watcher reported changed: drop their cache entries and re-run the requests
    /// parked on them. Once a second every parked request is re-run as well, so a missed or
    /// unavailable inotify event only delays an answer.
    fn handle_changes(&mut self) {
        let changed = match self.inbox.paths.lock() {
            Ok(mut q) if !q.is_empty() => std::mem::take(&mut *q),
            _ => Vec::new(),
        };
        for path in &changed {
            self.cache.remove(path);
        }
        let mut keys: Vec<Box<[u8]>> = Vec::new();
        for path in changed {
            if self.parked.contains_key(path.as_slice()) && !keys.iter().any(|k| **k == *path) {
                keys.push(path.into());
            }
        }
        let now = self.now_tick();
        if !self.parked.is_empty() && now >= self.last_parked_sweep + 4 {
            self.last_parked_sweep = now;
            keys = self.parked.keys().cloned().collect();
        }
        for key in keys {
            let Some(list) = self.parked.remove(&key) else {
                continue;
            };
            for k in list {
                let still = self
                    .conns
                    .get(k)
                    .and_then(|c| c.parked.as_ref())
                    .is_some_and(|p| p.key == key);
                if still {
                    self.rerun_parked(k, false);
                }
            }
        }
    }

    /// Run a parked request again. If it still has to wait it stays parked (same deadline);
    /// otherwise its response is queued for writing.
    fn rerun_parked(&mut self, k: usize, expired: bool) {
        let tick = self.now_tick();
        let Some(conn) = self.conns.get_mut(k) else {
            return;
        };
        let Some(p) = conn.parked.take() else { return };
        let req = Request {
            method: Some(if p.head { Method::Head } else { Method::Get }),
            method_str: if p.head { "HEAD" } else { "GET" },
            target: &p.target,
            minor: p.minor,
            keep_alive: p.keep_alive,
            host_count: 1,
            origin: p.origin.as_deref(),
            ..Request::default()
        };
        if conn.out.capacity() == 0 {
            conn.out = self.pool.take();
        }
        let mut ctx = Ctx {
            shared: &self.shared,
            draining: self.draining,
            date: self.date.get(),
            path_buf: &mut self.path_buf,
            cache: &mut self.cache,
            tick,
            expired,
        };
        let o = respond(&mut ctx, &req, &mut conn.out, &mut conn.body);
        if let Some(mut again) = o.park {
            again.deadline = p.deadline;
            let key = again.key.clone();
            conn.parked = Some(again);
            if conn.out.is_empty() {
                self.pool.give(std::mem::take(&mut conn.out));
            }
            self.parked.entry(key).or_default().push(k);
            return;
        }
        if o.close {
            conn.flags |= CLOSE_AFTER;
        }
        self.shared.stats[self.id].request(o.status.code());
        if let Some(log) = self.access_log.as_mut() {
            let peer = conn.sock.peer_addr().ok().map(|a| a.ip());
            log.record(
                self.date.unix_secs(),
                peer,
                Some(&req),
                o.status.code(),
                o.body_len,
            );
        }
        if conn.flags & QUEUED == 0 {
            conn.flags |= QUEUED;
            self.ready.push_back(k);
        }
    }

    /// Stop accepting: take what is already queued on our listener (those clients are
    /// waiting for an answer), then close it so the kernel sends new connections to the
    /// other listeners of the port. Idle keep-alive connections are closed; busy ones
    /// finish their response with `Connection: close`.
    fn begin_drain(&mut self) {
        self.draining = true;
        self.capped = false;
        self.accept_paused_until = None;
        self.accept_pending = true;
        self.accept();
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.current_phase() == Phase::Idle && c.flags & QUEUED == 0)
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close(k, CloseReason::Shutdown);
        }
    }

    fn accept(&mut self) {
        let cap = self.shared.cfg.worker_max_connections;
        for _ in 0..ACCEPT_BUDGET {
            if cap > 0 && self.conns.len() >= cap && !self.draining {
                // Leave the rest in the kernel's queue until we are below the low-water mark.
                self.capped = true;
                bump(&self.stats().max_conn_pauses, 1);
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, _peer)) => {
                    // Small responses (playlists) must not wait for Nagle; bodies are
                    // coalesced with MSG_MORE instead.
                    let _ = sock.set_nodelay(true);
                    let now = self.now_tick();
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
                        flags: CAN_READ | CAN_WRITE | QUEUED | FRESH,
                        phase: Phase::Header,
                        lingered: 0,
                        since: now,
                        armed: 0,
                        parked: None,
                    });
                    self.ready.push_back(k);
                    let st = self.stats();
                    bump(&st.accepted, 1);
                    bump(&st.active, 1);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    self.stats().accept_error(errno);
                    if errno == libc::EMFILE || errno == libc::ENFILE {
                        bump(&self.stats().listener_pauses, 1);
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

    fn close(&mut self, k: usize, reason: CloseReason) {
        if self.conns.contains(k) {
            let c = self.conns.remove(k);
            self.pool.give(c.rbuf);
            self.pool.give(c.out);
            let st = &self.shared.stats[self.id];
            st.closed(reason);
            bump(&st.active, 0u64.wrapping_sub(1));
            // Resume accepting here, not at the next wake-up: with no connections left the
            // loop would otherwise sleep with no timeout while the kernel queue holds clients
            // (edge-triggered: the listener will not be reported readable again for them).
            if self.capped && self.conns.len() <= self.low_water() {
                self.capped = false;
            }
            // Dropping the socket closes it, which also removes it from the epoll set.
        }
    }

    fn drive(&mut self, k: usize) -> Step {
        let tick = self.now_tick();
        let Some(conn) = self.conns.get_mut(k) else {
            return Step::Idle;
        };
        let fd = conn.sock.as_raw_fd();
        let stats = &self.shared.stats[self.id];
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
                let before = sent;
                let file_before = conn.body.as_ref().map_or(0, |b| b.pos);
                let result = write_response(conn, fd, &mut sent);
                if sent > before {
                    bump(&stats.response_bytes, (sent - before) as u64);
                    let file_after = conn.body.as_ref().map_or(file_before, |b| b.pos);
                    bump(
                        &stats.sendfile_bytes,
                        file_after.saturating_sub(file_before),
                    );
                    // Progress restarts the send-stall clock.
                    conn.since = (self.start.elapsed().as_millis() / TICK.as_millis()) as u32 + 1;
                }
                match result {
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
                            conn.lingered = 0;
                            conn.rbuf.clear();
                        }
                        continue;
                    }
                    Ok(false) if sent >= WRITE_BUDGET => return Step::Yield,
                    Ok(false) => {
                        conn.flags &= !CAN_WRITE;
                        // Waiting on a slow reader (every viewer at once when a segment
                        // is published): hold no buffer while the kernel drains the
                        // socket. The head is out once only the file body remains.
                        if conn.rbuf.is_empty() {
                            self.pool.give(std::mem::take(&mut conn.rbuf));
                        }
                        if conn.out_pos >= conn.out.len() {
                            conn.out.clear();
                            conn.out_pos = 0;
                            self.pool.give(std::mem::take(&mut conn.out));
                        }
                        return Step::Idle;
                    }
                    Err(_) => return Step::Close(CloseReason::Error),
                }
            }
            if conn.parked.is_some() {
                // Held for LL-HLS with no buffer: only notice the peer leaving; keep
                // (bounded) pipelined bytes for after the answer.
                if conn.out.is_empty() {
                    self.pool.give(std::mem::take(&mut conn.out));
                }
                if conn.rbuf.is_empty() {
                    self.pool.give(std::mem::take(&mut conn.rbuf));
                }
                return parked_read(conn, fd, self.shared.cfg.limits.max_header_bytes);
            }
            if !conn.rbuf.is_empty() {
                conn.flags &= !FRESH;
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
                        let mut ctx = Ctx {
                            shared: &self.shared,
                            draining: self.draining,
                            date: self.date.get(),
                            path_buf: &mut self.path_buf,
                            cache: &mut self.cache,
                            tick,
                            expired: false,
                        };
                        let out = respond(&mut ctx, &req, &mut conn.out, &mut conn.body);
                        if let Some(p) = out.park {
                            self.parked.entry(p.key.clone()).or_default().push(k);
                            conn.parked = Some(p);
                            conn.rbuf.drain(..len);
                            continue;
                        }
                        if out.close {
                            conn.flags |= CLOSE_AFTER;
                        }
                        stats.request(out.status.code());
                        if let Some(log) = self.access_log.as_mut() {
                            let peer = conn.sock.peer_addr().ok().map(|a| a.ip());
                            log.record(
                                self.date.unix_secs(),
                                peer,
                                Some(&req),
                                out.status.code(),
                                out.body_len,
                            );
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
                        stats.request(status.code());
                        if let Some(log) = self.access_log.as_mut() {
                            let peer = conn.sock.peer_addr().ok().map(|a| a.ip());
                            let len = status.error_body().len() as u64;
                            log.record(self.date.unix_secs(), peer, None, status.code(), len);
                        }
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
                } else if conn.rbuf.capacity() - conn.rbuf.len() > READ_CHUNK / 2 {
                    // Part of a head, waiting for the rest (a slow link, or a slowloris
                    // client holding thousands of these): keep only the bytes it holds
                    // and put the read buffer back. Whole heads never come here.
                    let part = conn.rbuf.to_vec();
                    self.pool.give(std::mem::replace(&mut conn.rbuf, part));
                }
                return Step::Idle;
            }
            if conn.rbuf.capacity() == 0 {
                conn.rbuf = self.pool.take();
            }
            match fsys::recv_into(fd, &mut conn.rbuf, READ_CHUNK) {
                // Peer closed. Everything it sent before has been answered (we only read
                // when no response is pending), so there is nothing left to do.
                Ok(0) => return Step::Close(CloseReason::Peer),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => conn.flags &= !CAN_READ,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseReason::Peer),
            }
        }
    }
}

/// Whether the bytes queued in the kernel for this socket decreased since the last check
/// (SIOCOUTQ); remembers the new level. `lingered` holds it while sending.
fn unsent_shrank(c: &mut Conn) -> bool {
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one int through the valid pointer.
    if unsafe { libc::ioctl(c.sock.as_raw_fd(), libc::TIOCOUTQ, &mut outq) } < 0 {
        return false;
    }
    let outq = outq.max(0) as u32;
    let shrank = outq < c.lingered;
    c.lingered = outq;
    shrank
}

fn parked_read(conn: &mut Conn, fd: i32, cap: usize) -> Step {
    loop {
        if conn.flags & CAN_READ == 0 || conn.rbuf.len() > cap {
            return Step::Idle;
        }
        if conn.rbuf.capacity() == 0 {
            conn.rbuf = Vec::with_capacity(READ_CHUNK);
        }
        match fsys::recv_into(fd, &mut conn.rbuf, READ_CHUNK) {
            Ok(0) => return Step::Close(CloseReason::Peer),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => conn.flags &= !CAN_READ,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Step::Close(CloseReason::Peer),
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
            return Step::Close(CloseReason::Done);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                ErrorKind::WouldBlock => conn.flags &= !CAN_READ,
                ErrorKind::Interrupted => {}
                _ => return Step::Close(CloseReason::Done),
            }
            continue;
        }
        conn.lingered = conn.lingered.saturating_add(n as u32);
        if conn.lingered as usize > LINGER_LIMIT {
            return Step::Close(CloseReason::Done);
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

/// What `respond` decided, for the connection, the metrics and the access log.
struct Outcome {
    close: bool,
    status: Status,
    body_len: u64,
    /// Hold the request (LL-HLS blocking reload or a preload-hinted part not there yet).
    park: Option<Box<Parked>>,
}

/// A request held until a playlist or part changes: no read buffer, no file, just what is
/// needed to run it again.
struct Parked {
    /// Root-relative path whose change wakes it (the playlist, or the hinted file).
    key: Box<[u8]>,
    /// The original request target, to run the request again on wake.
    target: Box<[u8]>,
    head: bool,
    keep_alive: bool,
    minor: u8,
    origin: Option<Box<[u8]>>,
    /// Tick after which the wait ends (503 for playlists, 404 for parts).
    deadline: u32,
}

/// Per-request context the response path borrows from its worker.
struct Ctx<'a> {
    shared: &'a Shared,
    draining: bool,
    date: &'a [u8],
    path_buf: &'a mut Vec<u8>,
    cache: &'a mut PlaylistCache,
    /// Current tick, and ticks per second, for park deadlines.
    tick: u32,
    /// True when running a parked request again: never park a second time on the same
    /// wake, answer the timeout instead.
    expired: bool,
}

/// Build the response for one parsed request into `out` (head, small bodies) and `body`
/// (an open file range).
fn respond(
    ctx: &mut Ctx<'_>,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    body: &mut Option<FileBody>,
) -> Outcome {
    let mut status = Status::Ok;
    let mut park = None;
    let mut body_len = 0u64;
    let close = respond_inner(ctx, req, out, body, &mut status, &mut park, &mut body_len);
    if let Some(b) = body {
        body_len = b.end - b.pos;
    }
    Outcome {
        close,
        status,
        body_len,
        park,
    }
}

/// Head of a 200/206/304 for a file or cached playlist.
#[allow(clippy::too_many_arguments)]
fn entity_head(
    cfg: &Config,
    req: &Request<'_>,
    keep_alive: bool,
    status: Status,
    date: &[u8],
    content_type: &str,
    kind: Kind,
    meta: &FileMeta,
    len: u64,
    range: Option<(u64, u64)>,
    etag: bool,
    out: &mut Vec<u8>,
) {
    common_head(out, status, date);
    push_header(out, b"Content-Type", content_type.as_bytes());
    out.extend_from_slice(b"Content-Length: ");
    http::push_u64(out, len);
    out.extend_from_slice(b"\r\nLast-Modified: ");
    http::push_http_date(out, meta.mtime());
    if etag {
        out.extend_from_slice(b"\r\nETag: ");
        meta.write_etag(out);
    }
    out.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\nCache-Control: ");
    out.extend_from_slice(match kind {
        Kind::Playlist => &cfg.cache_playlist,
        Kind::Segment => &cfg.cache_segment,
        Kind::Other => &cfg.cache_other,
    });
    out.extend_from_slice(b"\r\n");
    if let Some((start, end)) = range {
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
}

fn unsatisfiable(
    cfg: &Config,
    req: &Request<'_>,
    keep_alive: bool,
    date: &[u8],
    size: u64,
    out: &mut Vec<u8>,
) -> u64 {
    let is_head = req.method() == Method::Head;
    common_head(out, Status::RangeNotSatisfiable, date);
    let msg = Status::RangeNotSatisfiable.error_body();
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    http::push_u64(out, msg.len() as u64);
    out.extend_from_slice(b"\r\nContent-Range: bytes */");
    http::push_u64(out, size);
    out.extend_from_slice(b"\r\nCache-Control: no-store\r\n");
    cors_headers(cfg, req.origin, out);
    connection_header(out, keep_alive, req.minor);
    out.extend_from_slice(b"\r\n");
    if is_head {
        0
    } else {
        out.extend_from_slice(msg);
        msg.len() as u64
    }
}

fn park_for(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    keep_alive: bool,
    key: &[u8],
    secs: f64,
) -> Box<Parked> {
    let ticks = (secs * 1000.0 / TICK.as_millis() as f64).ceil().max(1.0) as u32;
    let origin = match &ctx.shared.cfg.cors {
        Cors::Any => None,
        Cors::List(_) => req.origin.map(Into::into),
    };
    Box::new(Parked {
        key: key.into(),
        target: req.target.into(),
        head: req.method() == Method::Head,
        keep_alive,
        minor: req.minor,
        origin,
        deadline: ctx.tick.saturating_add(ticks),
    })
}

/// A representation about to be answered: a file, a cached playlist or a delta update.
struct Entity<'a> {
    content_type: &'a str,
    kind: Kind,
    meta: &'a FileMeta,
    /// Bytes of this representation (a delta is shorter than the file).
    len: u64,
    /// Send ETag (not for a delta update, which is not the file's representation).
    etag: bool,
}

/// Write the head for a GET/HEAD of `what` after conditional and Range evaluation
/// (`decision`), and return the byte range the body must carry, if any: the caller sends
/// it from memory or with sendfile. Error answers (412, 416) are written whole here.
#[allow(clippy::too_many_arguments)]
fn answer_entity(
    cfg: &Config,
    req: &Request<'_>,
    keep_alive: bool,
    date: &[u8],
    what: &Entity<'_>,
    decision: Decision,
    out: &mut Vec<u8>,
    status_out: &mut Status,
    body_len: &mut u64,
) -> Option<(u64, u64)> {
    let is_head = req.method() == Method::Head;
    let (status, start, end) = match decision {
        Decision::Full => (Status::Ok, 0, what.len),
        Decision::Partial { start, end } => (Status::PartialContent, start, end + 1),
        Decision::NotModified => (Status::NotModified, 0, 0),
        Decision::PreconditionFailed => {
            *status_out = Status::PreconditionFailed;
            write_error(
                cfg,
                Status::PreconditionFailed,
                Some(req),
                date,
                keep_alive,
                out,
                !is_head,
            );
            if !is_head {
                *body_len = Status::PreconditionFailed.error_body().len() as u64;
            }
            return None;
        }
        Decision::Unsatisfiable => {
            *status_out = Status::RangeNotSatisfiable;
            *body_len = unsatisfiable(cfg, req, keep_alive, date, what.len, out);
            return None;
        }
    };
    *status_out = status;
    // A 304 may state the length the 200 would have (RFC 9110 8.6).
    let len = if status == Status::NotModified {
        what.len
    } else {
        end - start
    };
    let range = (status == Status::PartialContent).then_some((start, end));
    entity_head(
        cfg,
        req,
        keep_alive,
        status,
        date,
        what.content_type,
        what.kind,
        what.meta,
        len,
        range,
        what.etag,
        out,
    );
    if is_head || status == Status::NotModified || end <= start {
        return None;
    }
    *body_len = end - start;
    Some((start, end))
}

#[allow(clippy::too_many_arguments)]
fn respond_inner(
    ctx: &mut Ctx<'_>,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    body: &mut Option<FileBody>,
    status_out: &mut Status,
    park: &mut Option<Box<Parked>>,
    body_len: &mut u64,
) -> bool {
    let shared = ctx.shared;
    let cfg = &shared.cfg;
    let date = ctx.date;
    // While shutting down every response ends its connection.
    let keep_alive = req.keep_alive && !ctx.draining;
    let is_head = req.method() == Method::Head;
    match req.method() {
        Method::Other => {
            *status_out = Status::MethodNotAllowed;
            write_error(
                cfg,
                Status::MethodNotAllowed,
                Some(req),
                date,
                keep_alive,
                out,
                true,
            );
            *body_len = Status::MethodNotAllowed.error_body().len() as u64;
            return !keep_alive;
        }
        Method::Options => {
            *status_out = Status::NoContent;
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
    let mut err = |status: Status, out: &mut Vec<u8>, body_len: &mut u64| {
        *status_out = status;
        write_error(cfg, status, Some(req), date, keep_alive, out, !is_head);
        if !is_head {
            *body_len = status.error_body().len() as u64;
        }
        !keep_alive
    };
    match path::decode(req.target, ctx.path_buf) {
        Ok(()) => {}
        Err(PathError::Bad) => return err(Status::BadRequest, out, body_len),
        Err(PathError::Hidden) => return err(Status::NotFound, out, body_len),
    }
    if cfg
        .hidden_suffixes
        .iter()
        .any(|s| ctx.path_buf.ends_with(s))
    {
        // Not renamed into place yet: never serve a half-written file.
        return err(Status::NotFound, out, body_len);
    }
    let (content_type, kind) = mime::lookup(ctx.path_buf);
    let path_len = ctx.path_buf.len();
    ctx.path_buf.push(0);
    let Ok(cpath) = CStr::from_bytes_with_nul(ctx.path_buf) else {
        return err(Status::BadRequest, out, body_len);
    };
    let root = shared.root.as_raw_fd();
    let query = req
        .target
        .iter()
        .position(|&b| b == b'?')
        .map_or(&b""[..], |i| &req.target[i + 1..]);

    if kind == Kind::Playlist {
        let path = &ctx.path_buf[..path_len];
        match ctx
            .cache
            .get(root, path, cpath, shared.watcher.as_deref(), &shared.hints)
        {
            Ok(c) => {
                let mut delta: Option<Vec<u8>> = None;
                if let Some(info) = &c.info {
                    if query.windows(5).any(|w| w == b"_HLS_") {
                        let Ok(d) = live::directives(query) else {
                            return err(Status::BadRequest, out, body_len);
                        };
                        match live::blocking(info, &d) {
                            live::Block::Bad => return err(Status::BadRequest, out, body_len),
                            live::Block::Wait(_) if ctx.expired => {
                                return err(Status::ServiceUnavailable, out, body_len);
                            }
                            live::Block::Wait(secs) => {
                                *park = Some(park_for(ctx, req, keep_alive, path, secs));
                                return false;
                            }
                            live::Block::Now => {}
                        }
                        if d.skip {
                            let mut v = Vec::new();
                            let text = std::str::from_utf8(&c.body).unwrap_or("");
                            if live::delta_update(text, info, &mut v) {
                                delta = Some(v);
                            }
                        }
                    }
                }
                let full: &[u8] = delta.as_deref().unwrap_or(&c.body);
                // A delta update is its own representation: no validators of the full one.
                // A delta update is its own representation: no validators of the full one.
                let decision = if delta.is_some() {
                    Decision::Full
                } else {
                    http::decide(req, &c.meta)
                };
                let what = Entity {
                    content_type,
                    kind,
                    meta: &c.meta,
                    len: full.len() as u64,
                    etag: delta.is_none(),
                };
                if let Some((start, end)) = answer_entity(
                    cfg, req, keep_alive, date, &what, decision, out, status_out, body_len,
                ) {
                    out.extend_from_slice(&full[start as usize..end as usize]);
                }
                return !keep_alive;
            }
            Err(Miss::TooLarge) => {}
            Err(Miss::NotFound) => return err(Status::NotFound, out, body_len),
            Err(Miss::Io(e)) => {
                let st = match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
                    _ => Status::InternalError,
                };
                return err(st, out, body_len);
            }
        }
    }

    let file = match fsys::open_beneath(root, cpath) {
        Ok(f) => f,
        Err(e) => {
            let status = match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
                Some(libc::EIO) => Status::InternalError,
                Some(libc::ENOENT) => {
                    // A part named by a preload hint (or listed but not yet renamed into
                    // place) is held until it is complete instead of answered 404.
                    let path = &ctx.path_buf[..path_len];
                    if let Some(secs) = shared.hints.wait_for(path) {
                        if !ctx.expired {
                            if let Some(w) = shared.watcher.as_deref() {
                                w.watch_dir_of(path);
                            }
                            *park = Some(park_for(ctx, req, keep_alive, path, secs));
                            return false;
                        }
                    }
                    Status::NotFound
                }
                // ENOTDIR, EXDEV (escapes the root), ELOOP, EACCES, ENAMETOOLONG...: all
                // look the same from outside, which reveals nothing about the layout.
                _ => Status::NotFound,
            };
            return err(status, out, body_len);
        }
    };
    let meta = match fsys::regular_meta(&file) {
        Ok(Some(m)) => m,
        Ok(None) => return err(Status::NotFound, out, body_len),
        Err(_) => return err(Status::InternalError, out, body_len),
    };
    let decision = http::decide(req, &meta);
    let what = Entity {
        content_type,
        kind,
        meta: &meta,
        len: meta.size,
        etag: true,
    };
    if let Some((start, end)) = answer_entity(
        cfg, req, keep_alive, date, &what, decision, out, status_out, body_len,
    ) {
        *body = Some(FileBody {
            file,
            pos: start,
            end,
        });
    }
    !keep_alive
}

impl Shared {
    /// Shared state for a process serving `cfg` (opens nothing but what is given).
    pub fn new(cfg: Config, root: OwnedFd) -> Shared {
        Shared {
            stats: (0..cfg.workers).map(|_| WorkerStats::default()).collect(),
            root: Arc::new(crate::fsys::Root::new(cfg.root.clone(), root)),
            cfg,
            draining: AtomicBool::new(false),
            log_generation: AtomicU64::new(0),
            watcher: None,
            hints: live::Hints::default(),
        }
    }
}

/// The request path without sockets: bytes in as one connection would send them (parsing,
/// routing, range and conditional handling), response heads and small bodies out. File
/// bodies are represented by their head only. For fuzzing and property tests.
#[doc(hidden)]
pub fn process_bytes(shared: &Shared, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut path_buf = Vec::new();
    let mut cache = PlaylistCache::default();
    let date = b"Thu, 01 Jan 2026 00:00:00 GMT";
    let mut rest = input;
    while !rest.is_empty() {
        match http::parse(rest, shared.cfg.limits) {
            Parse::Complete(req, len) => {
                let mut body = None;
                let mut ctx = Ctx {
                    shared,
                    draining: false,
                    date,
                    path_buf: &mut path_buf,
                    cache: &mut cache,
                    tick: 1,
                    // A request that would be held is answered as its timeout would be.
                    expired: true,
                };
                let o = respond(&mut ctx, &req, &mut out, &mut body);
                rest = &rest[len..];
                if o.close {
                    break;
                }
            }
            Parse::Partial => break,
            Parse::Error(status) => {
                write_error(&shared.cfg, status, None, date, false, &mut out, true);
                break;
            }
        }
    }
    out
}
