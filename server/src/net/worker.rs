//! One worker: one thread, one `mio::Poll`, one SO_REUSEPORT listener, a slab of
//! connections. The loop accepts (with back-pressure: a pause on EMFILE/ENFILE, a cap on
//! connections), gives ready connections a turn in order, fires timers, wakes parked
//! requests, and drains on shutdown. Nothing here knows HTTP: that is `Conn`'s business.

use super::conn::{Conn, Cx, Step};
use super::fsys;
use super::pool::Pool;
use super::timer::{self, Expiry, Phase, Wheel, PHASES, TICK};
use super::transport::Transport;
use crate::admin::accesslog::AccessLog;
use crate::admin::metrics::{bump, CloseReason, WorkerStats};
use crate::http::date::DateCache;
use crate::live::cache::PlaylistCache;
use crate::net::notify::Inbox;
use crate::shared::{nofile_limit, Shared};
use crate::tls::stream::TlsStream;
use crate::tls::TlsShared;
use corestream_common::sync::lock;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const WAKER: Token = Token(usize::MAX);
/// Listener tokens count down from here (one per listener of the worker: plain, TLS).
const LISTENER0: usize = usize::MAX - 1;
const MAX_LISTENERS: usize = 8;
/// Connections accepted per turn before events of existing ones are served.
const ACCEPT_BUDGET: usize = 256;
/// How long to stop accepting after EMFILE/ENFILE instead of spinning on a listener the
/// kernel keeps reporting readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Ready connections read ahead of one inotify drain: at most this many read buffers are
/// held at once by the read-ahead (4 KiB each), and one drain costs one read(2) per this many
/// requests at worst.
const READ_AHEAD_CHUNK: usize = 16;
/// Pool trim interval, in ticks (1 s).
const POOL_TRIM_TICKS: u32 = 4;
/// Parked requests are all re-run this often (in ticks), so a missed or unavailable
/// inotify event only delays an answer.
const PARKED_SWEEP_TICKS: u32 = 4;
/// At drain, how long an idle keep-alive connection stays open for one more request (then
/// answered with `Connection: close`): closing it at once races with a request the client
/// is sending right then, which it would see as a reset.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// A listening socket of the worker and what its connections speak.
pub struct Listener {
    pub sock: TcpListener,
    /// The TLS configuration for HTTPS listeners.
    pub tls: Option<Arc<TlsShared>>,
    /// Readiness remembered until accept says WouldBlock (edge-triggered).
    pending: bool,
}

impl Listener {
    pub fn new(sock: TcpListener, tls: Option<Arc<TlsShared>>) -> Listener {
        Listener {
            sock,
            tls,
            pending: true,
        }
    }
}

pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    /// Emptied at drain: closed so the kernel sends new connections to other listeners.
    listeners: Vec<Listener>,
    wheel: Wheel,
    /// Each phase's timeout in ticks, from the configuration.
    timeouts: [u32; PHASES.len()],
    draining: bool,
    /// Tick by which a drain must end: what is still open then is closed.
    drain_deadline: u32,
    /// Stopped accepting at --max-connections.
    capped: bool,
    access_log: Option<AccessLog>,
    cache: PlaylistCache,
    /// Parked requests by the path that wakes them. Entries go stale when a connection is
    /// answered or closed; they are skipped and dropped when the key is next processed.
    parked: HashMap<Box<[u8]>, Vec<usize>>,
    inbox: Arc<Inbox>,
    last_parked_sweep: u32,
    /// Connections sending a growing object, run again when it moves on. Entries go stale
    /// when the response ends; they are dropped at the next wake-up.
    following: HashSet<usize>,
    conns: Slab<Conn>,
    ready: VecDeque<usize>,
    pool: Pool,
    date: DateCache,
    /// Decoded request path, NUL-terminated before the open.
    path_buf: Vec<u8>,
    accept_paused_until: Option<Instant>,
    last_emfile_log: Option<Instant>,
    /// SIGHUPs seen (the shared generation): each one re-applies the listen backlog.
    hups: u64,
    /// inotify drains this worker made (`Watcher::sync`); see `Conn::read_ahead`.
    epoch: u64,
    /// The wheel's tick, read once per turn.
    tick: u32,
    /// Whole playlist responses kept for bare GETs (`http::encoded`).
    encoded: crate::http::encoded::Encoded,
    #[cfg(feature = "loop-stats")]
    loop_stats: super::loopstats::LoopStats,
}

impl Worker {
    /// A worker and the waker that interrupts its poll (for shutdown and log reopening).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        mut listeners: Vec<Listener>,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::other("too many listeners for one worker"));
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(&mut l.sock, Token(LISTENER0 - i), Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let inbox = Arc::new(Inbox {
            paths: std::sync::Mutex::new(Vec::new()),
            progress: std::sync::atomic::AtomicBool::new(false),
            waker: waker.clone(),
        });
        shared.inboxes.subscribe(inbox.clone());
        let cfg = &shared.cfg;
        let access_log = match &cfg.access_log {
            Some(p) => Some(AccessLog::open(
                p,
                shared.log_generation.load(Ordering::Relaxed),
                cfg.access_log_format,
            )?),
            None => None,
        };
        let cache_bytes = cfg.worker_playlist_cache_bytes;
        let hups = shared.log_generation.load(Ordering::Relaxed);
        let w = Worker {
            id,
            timeouts: timer::phase_ticks(cfg),
            shared,
            poll,
            listeners,
            wheel: Wheel::new(Instant::now()),
            draining: false,
            drain_deadline: u32::MAX,
            capped: false,
            access_log,
            cache: PlaylistCache::new(cache_bytes),
            parked: HashMap::new(),
            following: HashSet::new(),
            inbox,
            last_parked_sweep: 0,
            conns: Slab::with_capacity(1024),
            ready: VecDeque::with_capacity(1024),
            pool: Pool::default(),
            date: DateCache::default(),
            path_buf: Vec::with_capacity(256),
            accept_paused_until: None,
            last_emfile_log: None,
            hups,
            epoch: 0,
            tick: 0,
            encoded: Default::default(),
            #[cfg(feature = "loop-stats")]
            loop_stats: Default::default(),
        };
        Ok((w, waker))
    }

    fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id]
    }

    fn can_accept(&self) -> bool {
        self.listeners.iter().any(|l| l.pending)
            && self.accept_paused_until.is_none()
            && !self.capped
    }

    /// How long poll may sleep: not at all with work queued, else until the next timer
    /// matters (none when nothing is held).
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() || self.can_accept() {
            return Some(Duration::ZERO);
        }
        // Idle with buffers pooled: wake to trim them (then sleep for good).
        let mut t = if self.conns.is_empty() && self.pool.is_empty() {
            None
        } else {
            Some(TICK)
        };
        if let Some(u) = self.accept_paused_until {
            let d = u.saturating_duration_since(now);
            t = Some(t.map_or(d, |t| t.min(d)));
        }
        if self.access_log.is_some() {
            let flush = Duration::from_secs(1);
            t = Some(t.map_or(flush, |t| t.min(flush)));
        }
        t
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                // Edge-triggered: the kernel will not tell us again about connections that
                // queued while we were paused, so try accepting unprompted.
                self.listeners.iter_mut().for_each(|l| l.pending = true);
            }
            #[cfg(feature = "loop-stats")]
            self.loop_stats.before_poll();
            if let Err(e) = self.poll.poll(&mut events, self.poll_timeout(now)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // One clock read per turn: the wheel counts in 250 ms ticks.
            self.tick = self.wheel.now();
            // Before any request of this turn: a root deleted and recreated is picked up
            // (at most one fstat per 250 ms across workers).
            self.shared.root.refresh_if_deleted();
            self.date.update(SystemTime::now());
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t > LISTENER0 - MAX_LISTENERS => {
                        if let Some(l) = self.listeners.get_mut(LISTENER0 - t) {
                            l.pending = true;
                        }
                    }
                    Token(k) => {
                        let Some(c) = self.conns.get_mut(k) else {
                            continue;
                        };
                        c.can_read |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        c.read_closed |= ev.is_read_closed() || ev.is_error();
                        c.can_write |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
                        if !c.queued {
                            c.queued = true;
                            self.ready.push_back(k);
                        }
                    }
                }
            }
            #[cfg(feature = "loop-stats")]
            self.loop_stats
                .after_poll(events.iter().count(), self.ready.len());
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
            // What is queued now gets its turn; what turns queue again waits for the next.
            let mut left = self.ready.len();
            while left > 0 {
                let chunk = left.min(READ_AHEAD_CHUNK);
                left -= chunk;
                self.read_ahead(chunk);
                for _ in 0..chunk {
                    let Some(k) = self.ready.pop_front() else {
                        break;
                    };
                    let step = self.turn(k, |c, cx| c.ready(cx));
                    self.after(k, step);
                }
            }
            self.expire_timers();
            let st = &self.shared.stats[self.id];
            st.playlist_cache_bytes
                .store(self.cache.bytes() as u64, Ordering::Relaxed);
            st.playlist_cache_evictions
                .store(self.cache.evictions, Ordering::Relaxed);
            let generation = self.shared.log_generation.load(Ordering::Relaxed);
            if generation != self.hups {
                self.hups = generation;
                self.relisten();
            }
            if let Some(log) = self.access_log.as_mut() {
                log.maybe_reopen(generation);
                log.flush();
            }
            if self.draining && (self.conns.is_empty() || self.tick >= self.drain_deadline) {
                self.end_drain();
                #[cfg(feature = "loop-stats")]
                self.loop_stats.report(self.id);
                return Ok(());
            }
        }
    }

    /// Read, then drain inotify, then answer: a request read before the drain can be
    /// answered from a watched playlist in memory without a stat (live::cache). Done for
    /// the first `n` queued connections, which are answered next: each holds a read buffer
    /// until then, so a burst of ready connections is taken `READ_AHEAD_CHUNK` at a time
    /// instead of holding a buffer for every one of them at once.
    fn read_ahead(&mut self, n: usize) {
        let Some(w) = self.shared.watcher.as_deref() else {
            return;
        };
        let mut read = false;
        for &k in self.ready.iter().take(n) {
            if let Some(c) = self.conns.get_mut(k) {
                read |= c.read_ahead(&mut self.pool, self.tick, self.epoch);
            }
        }
        if read && w.sync() {
            self.epoch += 1;
            // What the drain reported must reach this worker's cache before the requests
            // read ahead of it are answered from there.
            self.handle_changes();
        }
    }

    /// Give connection `k` a turn with its worker's context. A panic in the turn ends that
    /// connection (`reason="panic"`), not the worker (`crate::fault`).
    fn turn<T: Default>(&mut self, k: usize, f: impl FnOnce(&mut Conn, &mut Cx<'_>) -> T) -> T {
        match crate::fault::contain(|| self.turn_inner(k, f)) {
            Some(v) => v,
            None => {
                self.close(k, CloseReason::Panic);
                T::default()
            }
        }
    }

    fn turn_inner<T: Default>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut Conn, &mut Cx<'_>) -> T,
    ) -> T {
        let Some(conn) = self.conns.get_mut(k) else {
            return T::default();
        };
        let mut cx = Cx {
            shared: &self.shared,
            stats: &self.shared.stats[self.id],
            worker: self.id,
            pool: &mut self.pool,
            date: &self.date,
            cache: &mut self.cache,
            encoded: &mut self.encoded,
            path_buf: &mut self.path_buf,
            log: &mut self.access_log,
            now: self.tick,
            draining: self.draining,
            epoch: self.epoch,
        };
        f(conn, &mut cx)
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
                self.arm(k);
                self.ready.push_back(k);
            }
            Step::Idle | Step::Parked | Step::Follow => {
                if step == Step::Follow && self.following.insert(k) {
                    bump(&self.stats().growing_viewers, 1);
                }
                if step == Step::Parked {
                    if let Some((key, _)) = self.conns.get(k).and_then(Conn::parked) {
                        self.parked.entry(key.into()).or_default().push(k);
                    }
                    self.clamp_for_drain(k);
                }
                self.arm(k);
                if let Some(c) = self.conns.get_mut(k) {
                    c.queued = false;
                }
            }
        }
    }

    /// Make sure a wheel entry exists no later than the connection's current deadline.
    fn arm(&mut self, k: usize) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let due = match c.parked() {
            Some((_, deadline)) => deadline,
            None => c.since().saturating_add(self.timeouts[c.phase() as usize]),
        };
        if c.armed == 0 || due < c.armed {
            c.armed = self.wheel.schedule(k, due);
        }
    }

    fn expire_timers(&mut self) {
        let now = self.tick;
        let mut due = Vec::new();
        let pool = &mut self.pool;
        self.wheel.advance(now, &mut due, |t| {
            if t.is_multiple_of(POOL_TRIM_TICKS) {
                pool.trim();
            }
        });
        for (k, tick) in due {
            let Some(c) = self.conns.get_mut(k) else {
                continue;
            };
            if c.armed != tick {
                continue; // stale: re-armed earlier, or the key was reused
            }
            c.armed = 0;
            let phase = c.phase();
            let deadline = match c.parked() {
                Some((_, d)) => d,
                None => c.since().saturating_add(self.timeouts[phase as usize]),
            };
            let sending = matches!(phase, Phase::Send | Phase::SendPeerClosed);
            if deadline > now || (sending && c.still_draining(now)) {
                // Moved on since it was armed, or a slow reader still taking bytes.
                self.arm(k);
                continue;
            }
            match phase.row().expiry {
                // The drain's grace for idle connections, not a keep-alive timeout.
                Expiry::Timeout { .. } if self.draining && phase == Phase::Idle => {
                    self.close(k, CloseReason::Shutdown)
                }
                Expiry::Timeout { .. } => self.close(k, CloseReason::Timeout(phase)),
                Expiry::Done => self.close(k, CloseReason::Done),
                Expiry::Rerun => self.rerun_parked(k, true),
            }
        }
    }

    /// Growing objects moved on: give every connection following one a turn (those whose
    /// response has ended since are dropped from the set).
    fn handle_progress(&mut self) {
        if !self.inbox.progress.swap(false, Ordering::SeqCst) {
            return;
        }
        let conns = &mut self.conns;
        let ready = &mut self.ready;
        self.following.retain(|&k| {
            let Some(c) = conns.get_mut(k).filter(|c| c.is_following()) else {
                return false;
            };
            if !c.queued {
                c.queued = true;
                ready.push_back(k);
            }
            true
        });
        self.shared.stats[self.id]
            .growing_viewers
            .store(self.following.len() as u64, Ordering::Relaxed);
    }

    /// Paths the watcher reported changed: drop their cache entries and re-run the requests
    /// parked on them. Every parked request is re-run once a second as well.
    fn handle_changes(&mut self) {
        self.handle_progress();
        let changed = std::mem::take(&mut *lock(&self.inbox.paths));
        let mut whole_dirs = false;
        for path in &changed {
            if path.ends_with(b"/") {
                self.cache.remove_under(path);
                whole_dirs = true;
            } else {
                self.cache.remove(path);
            }
        }
        let mut keys: Vec<Box<[u8]>> = Vec::new();
        for path in changed {
            if self.parked.contains_key(path.as_slice()) && !keys.iter().any(|k| **k == *path) {
                keys.push(path.into());
            }
        }
        let now = self.tick;
        // A directory changed (rare): every held request looks again.
        if whole_dirs
            || !self.parked.is_empty() && now >= self.last_parked_sweep + PARKED_SWEEP_TICKS
        {
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
                    .and_then(Conn::parked)
                    .is_some_and(|(p, _)| *p == *key);
                if still {
                    self.rerun_parked(k, false);
                }
            }
        }
    }

    /// Run a parked request again. If it still has to wait it stays parked (same deadline);
    /// otherwise its response is queued for writing.
    fn rerun_parked(&mut self, k: usize, expired: bool) {
        if self.turn(k, |c, cx| c.rerun(cx, expired)) {
            if let Some(c) = self.conns.get_mut(k) {
                if !c.queued {
                    c.queued = true;
                    self.ready.push_back(k);
                }
            }
        } else if let Some((key, _)) = self.conns.get(k).and_then(Conn::parked) {
            self.parked.entry(key.into()).or_default().push(k);
            self.arm(k);
        }
    }

    /// Stop accepting: take what is already queued on our listener (those clients are
    /// waiting for an answer), then close it so the kernel sends new connections to the
    /// other listeners of the port. Responses in flight finish; every response from now on
    /// says `Connection: close`; idle keep-alive connections get a short grace for one more
    /// request; held LL-HLS requests are answered (with the playlist, or their timeout)
    /// before the drain deadline.
    fn begin_drain(&mut self) {
        self.draining = true;
        self.capped = false;
        self.accept_paused_until = None;
        self.listeners.iter_mut().for_each(|l| l.pending = true);
        self.accept();
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        let now = self.tick;
        self.drain_deadline = now.saturating_add(timer::ticks(self.shared.cfg.drain_timeout));
        let grace = DRAIN_IDLE_GRACE.min(self.shared.cfg.keepalive_timeout);
        self.timeouts[Phase::Idle as usize] = timer::ticks(grace).saturating_add(1);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(c) = self.conns.get_mut(k) {
                if c.phase() == Phase::Idle {
                    c.restart_clock(now);
                    c.armed = 0;
                }
            }
            self.clamp_for_drain(k);
            self.arm(k);
        }
    }

    /// A request parked while draining must be answered well before the drain deadline.
    fn clamp_for_drain(&mut self, k: usize) {
        if !self.draining {
            return;
        }
        let now = self.tick;
        let half = self.drain_deadline.saturating_sub(now) / 2;
        if let Some(c) = self.conns.get_mut(k) {
            if c.parked().is_some() {
                c.clamp_park_deadline(now.saturating_add(half.max(1)));
                c.armed = 0;
            }
        }
    }

    /// The drain is over: close whatever is still open (only at the deadline).
    fn end_drain(&mut self) {
        if !self.conns.is_empty() {
            say!(
                "corestream: worker {}: drain timeout reached, closing {} connections still open",
                self.id,
                self.conns.len()
            );
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        if let Some(log) = self.access_log.as_mut() {
            log.flush();
        }
    }

    fn accept(&mut self) {
        let cap = self.shared.cfg.worker_max_connections;
        let mut budget = ACCEPT_BUDGET;
        for li in 0..self.listeners.len() {
            while self.listeners[li].pending && budget > 0 {
                if cap > 0 && self.conns.len() >= cap && !self.draining {
                    // Leave the rest in the kernel's queue until below the low-water mark.
                    self.capped = true;
                    bump(&self.stats().max_conn_pauses, 1);
                    return;
                }
                budget -= 1;
                let l = &mut self.listeners[li];
                match l.sock.accept() {
                    Ok((sock, _peer)) => {
                        let tls = l.tls.clone();
                        self.admit(sock, tls);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => l.pending = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(0);
                        self.stats().accept_error(errno);
                        if errno == libc::EMFILE || errno == libc::ENFILE {
                            self.pause_for_fds(&e);
                            return;
                        }
                        // ECONNABORTED and friends concern one connection only.
                        if errno == libc::ECONNABORTED
                            || errno == libc::EPERM
                            || errno == libc::EPROTO
                        {
                            continue;
                        }
                        say!("corestream: worker {}: accept: {e}", self.id);
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        return;
                    }
                }
            }
        }
        // Budget spent with connections possibly still queued: `pending` stays set.
    }

    /// Take a new connection into the slab and give it a first turn.
    fn admit(&mut self, sock: mio::net::TcpStream, tls: Option<Arc<TlsShared>>) {
        // Small responses (playlists) must not wait for Nagle; bodies are coalesced with
        // MSG_MORE instead.
        let _ = sock.set_nodelay(true);
        let io = match tls {
            None => Transport::Plain(sock),
            Some(t) => match TlsStream::new(sock, t) {
                Ok(s) => Transport::Tls(Box::new(s)),
                Err(e) => {
                    say!("corestream: worker {}: {e}", self.id);
                    return;
                }
            },
        };
        let entry = self.conns.vacant_entry();
        let k = entry.key();
        let mut conn = Conn::new(io, self.tick);
        if let Err(e) = self.poll.registry().register(
            conn.transport().socket(),
            Token(k),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            say!(
                "corestream: worker {}: cannot register connection: {e}",
                self.id
            );
            return;
        }
        entry.insert(conn);
        self.ready.push_back(k);
        let st = self.stats();
        bump(&st.accepted, 1);
        bump(&st.active, 1);
    }

    /// SIGHUP: call listen(2) again on our listeners, so a net.core.somaxconn raised since
    /// start (by `corestream-tune auto` or an SRE) takes effect without a restart.
    fn relisten(&mut self) {
        let backlog = self.shared.cfg.backlog;
        for l in &self.listeners {
            if let Err(e) = fsys::relisten(l.sock.as_raw_fd(), backlog) {
                say!("corestream: worker {}: listen again: {e}", self.id);
            }
        }
        if self.id == 0 && !self.listeners.is_empty() {
            let cap = super::listen::somaxconn().map_or("unknown".to_string(), |v| v.to_string());
            say!(
                "corestream: listen backlog re-applied on SIGHUP: asked {backlog}, net.core.somaxconn is {cap}"
            );
        }
    }

    /// Out of descriptors: stop accepting for a moment (and say so at most once a second).
    fn pause_for_fds(&mut self, e: &io::Error) {
        bump(&self.stats().listener_pauses, 1);
        let now = Instant::now();
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
        if self
            .last_emfile_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_emfile_log = Some(now);
            let (soft, _) = nofile_limit();
            say!(
                "corestream: worker {}: accept: {e} (nofile limit {soft}); pausing accepts {} ms. \
                 Raise the limit: LimitNOFILE= in the unit, fs.file-max, see `corestream-tune diagnose`",
                self.id,
                ACCEPT_PAUSE.as_millis()
            );
        }
    }

    fn close(&mut self, k: usize, reason: CloseReason) {
        if let Some(mut c) = self.conns.try_remove(k) {
            if let (Some((p, bytes)), Some(log)) = (c.take_pending_log(), self.access_log.as_mut())
            {
                log.record_pending(&p, bytes);
            }
            if reason == CloseReason::Timeout(Phase::Head) && c.is_handshaking() {
                if let Some(t) = &self.shared.tls {
                    t.stats.failures[crate::tls::FAIL_TIMEOUT].fetch_add(1, Ordering::Relaxed);
                }
            }
            if !self.following.is_empty() && self.following.remove(&k) {
                bump(&self.shared.stats[self.id].growing_viewers, u64::MAX);
            }
            // A response cut short ends in a reset, never a FIN: a body delimited by the
            // close (HTTP/1.0, an object of unknown length still arriving) would otherwise
            // look complete to the viewer and to any cache in front when its upload or
            // origin fetch broke off.
            if matches!(
                reason,
                CloseReason::Timeout(Phase::Send | Phase::SendPeerClosed)
            ) || (reason == CloseReason::Error && c.mid_response())
            {
                c.transport().discard_unsent_on_close();
            }
            c.release(&mut self.pool);
            let st = &self.shared.stats[self.id];
            st.closed(reason);
            bump(&st.active, 0u64.wrapping_sub(1));
            // Resume accepting here, not at the next wake-up: with no connections left the
            // loop would otherwise sleep with no timeout while the kernel queue holds
            // clients (edge-triggered: the listener will not be reported readable again).
            if self.capped && self.conns.len() <= self.low_water() {
                self.capped = false;
            }
            // Dropping the socket closes it, which also removes it from the epoll set.
        }
    }
}
