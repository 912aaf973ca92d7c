//! The edge tier: objects that are not under the local root are pulled from an origin (a
//! packager's server, another corestream acting as a shield, nginx), kept in a cache
//! directory and served from it like local files. Every miss for an object collapses into one
//! upstream request, across all workers of the process; the viewers that asked wait parked
//! (no buffer, no file) and are woken when the origin's answer starts, then follow the
//! object's bytes as they arrive (`live::growing`, the path the ingest port uses too).
//!
//! Workers never block on an origin: fetches run on a pool of fetcher threads with blocking
//! I/O (connect, head and stall timeouts), `--origin-max-connections` per origin, each
//! waking the workers through their inboxes when it has something to say. A thread per
//! fetch keeps the event loop free of a second protocol state machine, and fetches are few
//! (one per object, not one per viewer).
//!
//! `origin` (URLs, rendezvous order, keep-alive pools), `fresh` (RFC 9111 freshness),
//! `fetch` (one upstream exchange and what becomes of its answer), `share` (one fetch per
//! object for all the processes sharing a --cache-dir).

pub mod fetch;
pub mod fresh;
pub mod origin;
pub mod share;

use crate::admin::metrics::Exposition;
use crate::http::mime::Kind;
use crate::http::Status;
use crate::qoe::Histogram;
use bytes::Bytes;
use corestream_common::sync::lock;
use lru::LruCache;
use origin::Origin;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Upper bounds of the upstream first-byte histogram (seconds).
const LATENCY_BOUNDS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
/// Remembered answers (404s, failures, blocking playlist responses) kept at most, so a
/// crawler asking for endless missing names cannot grow the map without bound.
const MAX_OUTCOMES: usize = 100_000;

/// `--origin` and the cache options.
#[derive(Debug, Clone)]
pub struct Options {
    pub origins: Vec<Origin>,
    pub cache_dir: PathBuf,
    pub max_bytes: u64,
    pub max_connections: usize,
    pub timeout: Duration,
    pub stall_timeout: Duration,
    pub negative_ttl: Duration,
    /// CA bundle that https origins are verified against.
    pub ca: PathBuf,
}

/// An object stored in the cache directory, under its request path.
pub(crate) struct Entry {
    pub(crate) size: u64,
    pub(crate) stored: Instant,
    /// Age it had when it reached us.
    pub(crate) age: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) etag: Option<Vec<u8>>,
    pub(crate) last_modified: Option<Vec<u8>>,
    /// The origin's `Cache-Control` and `Expires`, encoded for viewers (`fetch::passed_on`).
    pub(crate) passed: Option<Bytes>,
}

/// An answer remembered for a while instead of asking the origin again.
#[derive(Clone)]
enum Remembered {
    Status(Status),
    /// The response to a blocking LL-HLS playlist request, for its identical followers, and
    /// the origin's freshness fields.
    Playlist(Bytes, Option<Bytes>),
    /// The origin redirected: this status, with the fields viewers are given (`Location`,
    /// and the origin's `Cache-Control`/`Expires` when the flag says it sent any).
    Redirect(Status, Bytes, bool),
    /// The last fetch broke off mid-body. A new request fetches again; a held one woken
    /// after the failure gets 502 instead, or held requests would refetch in a loop from an
    /// origin that fails every body at once.
    Broken,
}

/// What the cache says about a request.
pub enum Lookup {
    /// Stored and fresh: serve the file at the request path beneath `cache_fd`, this old,
    /// with the origin's freshness fields.
    Hit { age: u64, passed: Option<Bytes> },
    /// The origin's answer to this blocking playlist request, remembered `age` seconds ago.
    Playlist {
        body: Bytes,
        age: u64,
        passed: Option<Bytes>,
    },
    /// The origin's redirect, remembered `age` seconds ago: its `Location` field, which
    /// `origin::edge_location` made the edge's own where it pointed into the origin, and its
    /// freshness fields if `passed` (else the edge says `no-store`).
    Redirect {
        status: Status,
        fields: Bytes,
        passed: bool,
        age: u64,
    },
    /// The origin's answer was this status (a 404 remembered, or a failure), remembered
    /// `age` seconds ago (None: not an answer of the origin's).
    Status { status: Status, age: Option<u64> },
    /// The fetch this held request waited for broke off mid-body before it could follow
    /// the bytes: 502, and the connection ends like those of the viewers that were following.
    Broken,
    /// A fetch is under way: hold the request under the key until it says more.
    /// `joined`: another request had started it (RFC 9211 `collapsed`).
    Wait { joined: bool },
}

/// The ETag and Last-Modified of a stored copy, sent as If-None-Match and If-Modified-Since.
pub type Validators = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Bytes of remembered playlist bodies kept at most: a client asking for every old
/// msn/part/skip combination of a long playlist makes an upstream request and a body to keep
/// for each, and 100,000 of them would be gigabytes.
const MAX_OUTCOME_BYTES: u64 = 64 << 20;

/// Remembered answers by key, with the instant each stops being used and the one it began;
/// the oldest go first when a bound is reached.
#[derive(Default)]
struct Outcomes {
    map: HashMap<Box<[u8]>, (Remembered, Instant, Instant)>,
    /// Keys in the order they were remembered, with that instant (a key remembered again
    /// later is found by its newer instant and kept).
    order: VecDeque<(Box<[u8]>, Instant)>,
    /// Bytes of the playlist bodies in `map`.
    bytes: u64,
}

impl Remembered {
    fn bytes(&self) -> u64 {
        match self {
            Remembered::Playlist(b, p) => (b.len() + p.as_ref().map_or(0, Bytes::len)) as u64,
            Remembered::Redirect(_, b, _) => b.len() as u64,
            _ => 0,
        }
    }
}

impl Outcomes {
    fn get(&self, key: &[u8]) -> Option<&(Remembered, Instant, Instant)> {
        self.map.get(key)
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some((a, ..)) = self.map.remove(key) {
            self.bytes -= a.bytes();
        }
    }

    /// Remember `answer` until `until`, making room first: a new answer is always kept (a
    /// held request woken for it must find it, or it would fetch again).
    fn insert(&mut self, key: &[u8], answer: Remembered, until: Instant, now: Instant) {
        self.remove(key);
        let need = answer.bytes();
        while self.map.len() >= MAX_OUTCOMES || self.bytes + need > MAX_OUTCOME_BYTES {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(.., since)| *since == at) {
                self.remove(&old);
            }
        }
        // Keys forgotten or remembered again leave stale places in `order`; drop them
        // before it outgrows the map.
        if self.order.len() >= 2 * MAX_OUTCOMES {
            let map = &self.map;
            self.order
                .retain(|(k, at)| map.get(k).is_some_and(|(.., since)| since == at));
        }
        self.bytes += need;
        self.order.push_back((key.into(), now));
        self.map.insert(key.into(), (answer, until, now));
    }
}

/// Directories of live media playlists seen, at most (a bound like `MAX_OUTCOMES`).
const MAX_CADENCES: usize = 10_000;

/// How often new names appear beside a live media playlist: its target duration and, for
/// LL-HLS, its part target. A name missing now may exist one part (or segment) later, so a
/// 404 for it is not remembered longer than that.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cadence {
    target: f64,
    part_target: Option<f64>,
}

/// The directory part of a root-relative path (empty at the top).
fn dir_of(path: &[u8]) -> &[u8] {
    &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)]
}

/// A fetch to run: the object, the query of a blocking playlist request, and the validators
/// of a stale copy to revalidate.
pub struct Job {
    pub key: Box<[u8]>,
    pub path: Vec<u8>,
    pub query: Option<Vec<u8>>,
    pub kind: Kind,
    pub content_type: &'static str,
    pub revalidate: Option<Validators>,
}

struct Index {
    map: LruCache<Box<[u8]>, Entry>,
    bytes: u64,
}

#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub collapsed: AtomicU64,
    pub remembered: AtomicU64,
    pub evictions: AtomicU64,
    pub in_flight: AtomicU64,
    /// Upstream requests by origin and status (0: no answer).
    upstream: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<Histogram>,
}

pub struct Tier {
    pub opts: Options,
    /// TLS client configuration for https origins (None when every origin is http).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Fetches shared with the other processes using the same --cache-dir (None if the
    /// shared directory cannot be used: each process then fetches for itself).
    pub share: Option<Arc<share::Share>>,
    /// `<cache-dir>/objects`, an O_PATH directory every stored object is beneath.
    pub cache_fd: OwnedFd,
    index: Mutex<Index>,
    in_flight: Mutex<HashSet<Box<[u8]>>>,
    remembered: Mutex<Outcomes>,
    /// By directory: the cadence of the live media playlists pulled from it.
    cadences: Mutex<HashMap<Box<[u8]>, Cadence>>,
    jobs: Mutex<VecDeque<Job>>,
    job_ready: Condvar,
    pub stats: Stats,
}

/// The key a request waits under: the path, plus the normalised LL-HLS directives of a
/// blocking playlist request.
pub fn key(path: &[u8], query: Option<&[u8]>) -> Box<[u8]> {
    match query {
        None => path.into(),
        Some(q) => [path, b"?", q].concat().into(),
    }
}

/// The LL-HLS directives of a playlist request (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), in a
/// fixed order: identical blocking requests share one upstream request whatever else their
/// queries carry (CMCD, cache busters).
pub fn blocking_query(target: &[u8]) -> Option<Vec<u8>> {
    let q = &target[target.iter().position(|&b| b == b'?')? + 1..];
    let mut found: [Option<&[u8]>; 3] = [None; 3];
    for pair in q.split(|&b| b == b'&') {
        let (name, _) = pair.split_at(pair.iter().position(|&b| b == b'=').unwrap_or(pair.len()));
        let slot = match name {
            b"_HLS_msn" => 0,
            b"_HLS_part" => 1,
            b"_HLS_skip" => 2,
            _ => continue,
        };
        found[slot] = Some(pair);
    }
    let parts: Vec<Vec<u8>> = found.iter().flatten().map(|p| canonical(p)).collect();
    (!parts.is_empty()).then(|| parts.join(&b'&'))
}

/// `name=value` with a decimal value written without leading zeros (`_HLS_msn=0007` is
/// `_HLS_msn=7`): one request, and one remembered answer, for every spelling of a number.
/// Anything else is kept as written, for the origin to judge.
fn canonical(pair: &[u8]) -> Vec<u8> {
    let Some(eq) = pair.iter().position(|&b| b == b'=') else {
        return pair.to_vec();
    };
    let value = &pair[eq + 1..];
    if value.len() < 2 || !value.iter().all(u8::is_ascii_digit) {
        return pair.to_vec();
    }
    let zeros = value
        .iter()
        .take_while(|&&b| b == b'0')
        .count()
        .min(value.len() - 1);
    [&pair[..=eq], &value[zeros..]].concat()
}

impl Tier {
    pub fn new(opts: Options, cache_fd: OwnedFd) -> Result<Tier, String> {
        let tls = if opts.origins.iter().any(|o| o.tls) {
            Some(origin::tls_client(&opts.ca)?)
        } else {
            None
        };
        let share = match share::Share::open(&opts.cache_dir) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                say!("corestream: {e}; processes sharing --cache-dir fetch separately");
                None
            }
        };
        Ok(Tier {
            tls,
            share,
            opts,
            cache_fd,
            index: Mutex::new(Index {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            in_flight: Mutex::new(HashSet::new()),
            remembered: Mutex::new(Outcomes::default()),
            cadences: Mutex::new(HashMap::new()),
            jobs: Mutex::new(VecDeque::new()),
            job_ready: Condvar::new(),
            stats: Stats::default(),
        })
    }

    pub fn origins(&self) -> &[Origin] {
        &self.opts.origins
    }

    /// What to do with a request for `path` (and the blocking directives `query`) that the
    /// local root does not have. Starts a fetch when nothing is stored or under way.
    /// `fresh`: a new request (not a held one run again), for the counters. `held_since`:
    /// when a held request began waiting; a copy stored or revalidated since then is its
    /// answer, however short its freshness (below).
    pub fn lookup(
        &self,
        path: &[u8],
        query: Option<&[u8]>,
        kind: Kind,
        content_type: &'static str,
        fresh: bool,
        held_since: Option<Instant>,
    ) -> Lookup {
        let count = |c: &AtomicU64| {
            if fresh {
                c.fetch_add(1, Relaxed);
            }
        };
        let key = key(path, query);
        let now = Instant::now();
        {
            let mut r = lock(&self.remembered);
            // A held request run again (not `fresh`) takes the answer of the fetch it waited
            // for however late it runs: on a loaded box, or with a negative TTL of half a
            // part target, the answer can expire before the request's turn, and each such
            // rerun started another upstream request. New requests use an answer only while
            // it is remembered, and never a broken fetch.
            match r.get(&key) {
                Some((Remembered::Broken, ..)) if !fresh => {
                    return Lookup::Broken;
                }
                Some((Remembered::Broken, ..)) => {
                    r.remove(&key);
                }
                Some((answer, until, since)) if *until > now || !fresh => {
                    count(&self.stats.remembered);
                    let age = now.saturating_duration_since(*since).as_secs();
                    return match answer {
                        Remembered::Status(s) => Lookup::Status {
                            status: *s,
                            age: Some(age),
                        },
                        Remembered::Playlist(b, passed) => Lookup::Playlist {
                            body: b.clone(),
                            age,
                            passed: passed.clone(),
                        },
                        Remembered::Redirect(status, fields, passed) => Lookup::Redirect {
                            status: *status,
                            fields: fields.clone(),
                            passed: *passed,
                            age,
                        },
                        Remembered::Broken => Lookup::Broken,
                    };
                }
                Some(_) => {
                    r.remove(&key);
                }
                None => {}
            }
        }
        let mut revalidate = None;
        if query.is_none() {
            {
                let mut idx = lock(&self.index);
                if let Some(e) = idx.map.get(path) {
                    let age = e.age + e.stored.elapsed();
                    // The viewers that waited for a fetch take what it brought even when
                    // it is stale on arrival (`no-cache`, `max-age=0`, an `Age` past its
                    // max-age: the usual live playlist of an nginx-rtmp or shield origin):
                    // it was validated after they asked (RFC 9111 4.3). Judged by
                    // freshness alone, each rerun fetched again and woke them again, until
                    // their wait ended in a 504.
                    if age < e.lifetime || held_since.is_some_and(|s| e.stored >= s) {
                        count(&self.stats.hits);
                        return Lookup::Hit {
                            age: age.as_secs(),
                            passed: e.passed.clone(),
                        };
                    }
                    if e.etag.is_some() || e.last_modified.is_some() {
                        revalidate = Some((e.etag.clone(), e.last_modified.clone()));
                    }
                }
            }
        }
        let mut flying = lock(&self.in_flight);
        if flying.contains(&key) {
            count(&self.stats.collapsed);
            return Lookup::Wait { joined: true };
        }
        flying.insert(key.clone());
        drop(flying);
        self.stats.misses.fetch_add(1, Relaxed);
        self.stats.in_flight.fetch_add(1, Relaxed);
        {
            let mut q = lock(&self.jobs);
            q.push_back(Job {
                key,
                path: path.to_vec(),
                query: query.map(<[u8]>::to_vec),
                kind,
                content_type,
                revalidate,
            });
        }
        self.job_ready.notify_one();
        Lookup::Wait { joined: false }
    }

    /// The stored copy of `path` is gone (evicted between lookup and open) or no longer
    /// exists upstream (a 404 or 410 on revalidation, as segments that left the live window
    /// get): forget it, and delete its file, which --cache-max-bytes no longer counts.
    pub fn forget(&self, path: &[u8]) {
        let mut idx = lock(&self.index);
        if let Some(e) = idx.map.pop(path) {
            idx.bytes = idx.bytes.saturating_sub(e.size);
            // Under the index lock: a fetch storing the path anew waits for it. Viewers
            // still sending the old copy keep their descriptor.
            let _ =
                crate::ingest::store::delete(std::os::fd::AsRawFd::as_raw_fd(&self.cache_fd), path);
        }
    }

    /// Block until a fetch is queued (fetcher threads).
    fn next_job(&self) -> Option<Job> {
        let mut q = lock(&self.jobs);
        loop {
            if let Some(j) = q.pop_front() {
                return Some(j);
            }
            q = self
                .job_ready
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The fetch of `key` is over (its answer is stored, remembered or failed).
    pub(crate) fn done(&self, key: &[u8]) {
        lock(&self.in_flight).remove(key);
        self.stats.in_flight.fetch_sub(1, Relaxed);
    }

    fn remember(&self, key: &[u8], answer: Remembered, ttl: Duration) {
        let now = Instant::now();
        lock(&self.remembered).insert(key, answer, now + ttl, now);
    }

    /// A media playlist at `path` came from an origin: remember how often names appear
    /// beside it while it is live (a finished one, `EXT-X-ENDLIST`, adds none).
    pub(crate) fn learn(&self, path: &[u8], info: &crate::live::playlist::PlaylistInfo) {
        if !info.is_media || info.target_duration <= 0.0 {
            return;
        }
        let mut c = lock(&self.cadences);
        let dir = dir_of(path);
        if info.endlist {
            c.remove(dir);
            return;
        }
        let cadence = Cadence {
            target: info.target_duration,
            part_target: info.part_target.filter(|p| *p > 0.0),
        };
        if c.get(dir) == Some(&cadence) {
            return;
        }
        if c.len() >= MAX_CADENCES {
            c.clear();
        }
        c.insert(dir.into(), cadence);
    }

    /// The live media playlist nearest above `path` (its own directory, then each parent).
    fn cadence(&self, path: &[u8]) -> Option<Cadence> {
        let c = lock(&self.cadences);
        let mut dir = dir_of(path);
        loop {
            if let Some(k) = c.get(dir) {
                return Some(*k);
            }
            if dir.is_empty() {
                return None;
            }
            dir = dir_of(dir);
        }
    }

    /// How long a 404 (or a failure) for `job` is remembered. A blocking playlist request's:
    /// 4 target durations (LL-HLS server configuration profile). Any other: --negative-ttl,
    /// but never longer than half the part target (LL-HLS) or half the target duration of
    /// the live playlist beside it, since the missing name may be published by then.
    pub(crate) fn negative_ttl(&self, job: &Job) -> Duration {
        let ttl = self.opts.negative_ttl;
        match (self.cadence(&job.path), job.query.is_some()) {
            (Some(c), true) => Duration::from_secs_f64((4.0 * c.target).min(60.0)),
            (None, true) => ttl,
            (Some(c), false) => {
                let every = c.part_target.unwrap_or(c.target);
                ttl.min(Duration::from_secs_f64(every / 2.0))
            }
            (None, false) => ttl,
        }
    }

    /// Record a stored object; evict the least recently used beyond --cache-max-bytes.
    pub(crate) fn store(&self, path: &[u8], e: Entry) {
        let mut idx = lock(&self.index);
        idx.bytes += e.size;
        if let Some(old) = idx.map.put(path.into(), e) {
            idx.bytes = idx.bytes.saturating_sub(old.size);
        }
        while idx.bytes > self.opts.max_bytes {
            let Some((victim, old)) = idx.map.pop_lru() else {
                break;
            };
            idx.bytes = idx.bytes.saturating_sub(old.size);
            // Viewers still sending it keep their descriptor: the bytes stay readable.
            let _ = crate::ingest::store::delete(
                std::os::fd::AsRawFd::as_raw_fd(&self.cache_fd),
                &victim,
            );
            self.stats.evictions.fetch_add(1, Relaxed);
        }
    }

    /// A 304 from the origin: the stored copy is fresh again. What the 304 says replaces
    /// what was stored, what it leaves out stays (RFC 9111 4.3.4): a 304 with no
    /// Cache-Control keeps the lifetime the 200 gave (it fell to the 60 s default, so a
    /// `no-cache` object went unvalidated for a minute), and a new validator is kept.
    fn refresh(
        &self,
        path: &[u8],
        policy: &fresh::Policy,
        (etag, lm): Validators,
        passed: Option<Bytes>,
    ) -> bool {
        let mut idx = lock(&self.index);
        match idx.map.get_mut(path) {
            Some(e) => {
                e.stored = Instant::now();
                e.age = policy.age;
                e.lifetime = policy.lifetime.unwrap_or(e.lifetime);
                if etag.is_some() {
                    e.etag = etag;
                }
                if lm.is_some() {
                    e.last_modified = lm;
                }
                // RFC 9111 4.3.4: what the 304 says replaces what was stored.
                if let Some(new) = passed {
                    e.passed = Some(match &e.passed {
                        Some(old) => fetch::update_fields(old, &new),
                        None => new,
                    });
                }
                true
            }
            None => false,
        }
    }

    fn cache_bytes(&self) -> u64 {
        lock(&self.index).bytes
    }

    pub fn render(&self, o: &mut Exposition) {
        let s = &self.stats;
        o.family(
            "corestream_tier_requests_total",
            "counter",
            "Requests for objects not under --root, by what the cache did: hit (stored and \
             fresh), miss (started an upstream request), collapsed (waited for one already \
             under way), remembered (a recent 404 or failure, or a blocking playlist answer).",
        );
        for (label, v) in [
            ("hit", &s.hits),
            ("miss", &s.misses),
            ("collapsed", &s.collapsed),
            ("remembered", &s.remembered),
        ] {
            o.sample(
                "corestream_tier_requests_total",
                &[("result", label)],
                v.load(Relaxed),
            );
        }
        o.family(
            "corestream_tier_upstream_requests_total",
            "counter",
            "Requests sent to origins, by origin and status (0: no answer).",
        );
        {
            let m = lock(&s.upstream);
            for ((origin, status), n) in m.iter() {
                o.sample(
                    "corestream_tier_upstream_requests_total",
                    &[("origin", origin), ("status", &status.to_string())],
                    n,
                );
            }
        }
        {
            let h = lock(&s.latency);
            crate::qoe::histogram(
                o,
                "corestream_tier_upstream_first_byte_seconds",
                "Seconds from sending an upstream request to the head of its answer.",
                &LATENCY_BOUNDS,
                &h,
            );
        }
        o.single(
            "corestream_tier_cache_bytes",
            "gauge",
            "Bytes of objects stored in --cache-dir (bounded by --cache-max-bytes).",
            self.cache_bytes(),
        );
        o.single(
            "corestream_tier_cache_evictions_total",
            "counter",
            "Objects removed from --cache-dir to stay within --cache-max-bytes.",
            s.evictions.load(Relaxed),
        );
        o.single(
            "corestream_tier_fetches_in_flight",
            "gauge",
            "Upstream requests under way.",
            s.in_flight.load(Relaxed),
        );
    }
}

/// Prepare `--cache-dir`: this process keeps its objects in `objects-<pid>` (their
/// freshness lives in its memory), and removes what processes that are gone left behind;
/// other corestream processes sharing the directory (several on one port) keep theirs.
/// Returns the handle objects are stored beneath.
pub fn open_cache(dir: &std::path::Path) -> Result<OwnedFd, String> {
    let fix = |e: std::io::Error| {
        format!(
            "cannot use --cache-dir {}: {e} (create it, writable by this user, or choose another)",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(fix)?;
    let mine = std::process::id();
    let objects = dir.join(format!("objects-{mine}"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // A leftover of an earlier process that had our pid: out of the way first.
    if objects.exists() {
        std::fs::rename(&objects, dir.join(format!("trash-{stamp}"))).map_err(fix)?;
    }
    let mut trash = Vec::new();
    for e in std::fs::read_dir(dir).map_err(fix)?.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let dead = match name.strip_prefix("objects-").map(str::parse::<i32>) {
            Some(Ok(pid)) if pid > 0 => {
                // SAFETY: kill with signal 0 sends nothing; it only asks whether the pid exists.
                let r = unsafe { libc::kill(pid, 0) };
                r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            }
            _ => name.starts_with("trash-"),
        };
        if dead {
            trash.push(e.path());
        }
    }
    std::thread::spawn(move || {
        for t in trash {
            let _ = std::fs::remove_dir_all(t);
        }
    });
    std::fs::create_dir_all(&objects).map_err(fix)?;
    crate::net::fsys::open_root(&objects).map_err(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_directives_are_keyed_by_their_numbers_not_their_spelling() {
        let q = |t: &[u8]| blocking_query(t).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            q(b"/l/p.m3u8?_HLS_part=02&cb=1&_HLS_msn=0007"),
            Some("_HLS_msn=7&_HLS_part=2".into())
        );
        assert_eq!(q(b"/l/p.m3u8?_HLS_msn=0"), Some("_HLS_msn=0".into()));
        assert_eq!(q(b"/l/p.m3u8?_HLS_msn=000"), Some("_HLS_msn=0".into()));
        assert_eq!(
            q(b"/l/p.m3u8?_HLS_msn=12&_HLS_skip=YES"),
            Some("_HLS_msn=12&_HLS_skip=YES".into())
        );
        // Not a number: as written (the origin answers it 400).
        assert_eq!(q(b"/l/p.m3u8?_HLS_msn=-01"), Some("_HLS_msn=-01".into()));
        assert_eq!(q(b"/l/p.m3u8?cb=1"), None);
    }

    #[test]
    fn remembered_answers_stay_within_their_count_and_bytes_oldest_first() {
        let mut o = Outcomes::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let body = Bytes::from(vec![b'#'; 1 << 20]);
        // 100 playlists of 1 MiB: only the newest 64 fit.
        for i in 0..100u32 {
            let key = format!("/l/p.m3u8?_HLS_msn={i}");
            let at = now + Duration::from_micros(u64::from(i));
            o.insert(
                key.as_bytes(),
                Remembered::Playlist(body.clone(), None),
                later,
                at,
            );
            assert!(o.bytes <= MAX_OUTCOME_BYTES);
        }
        assert_eq!(o.bytes, 64 << 20);
        assert!(o.get(b"/l/p.m3u8?_HLS_msn=35").is_none());
        assert!(o.get(b"/l/p.m3u8?_HLS_msn=36").is_some());
        assert!(o.get(b"/l/p.m3u8?_HLS_msn=99").is_some());
        // A new answer is always kept (the oldest makes room), a 404 costs no bytes.
        o.insert(
            b"/gone.ts",
            Remembered::Status(Status::NotFound),
            later,
            later,
        );
        assert!(o.get(b"/gone.ts").is_some());
        // Remembered again: counted once, and its earlier place in the order is stale.
        o.insert(
            b"/l/p.m3u8?_HLS_msn=99",
            Remembered::Status(Status::NotFound),
            later,
            later,
        );
        assert_eq!(o.bytes, 63 << 20);
        o.remove(b"/l/p.m3u8?_HLS_msn=98");
        assert_eq!(o.bytes, 62 << 20);
        // Count bound: filling with 404s evicts the playlists first (they are older).
        for i in 0..MAX_OUTCOMES {
            let key = format!("/m/{i}.ts");
            o.insert(
                key.as_bytes(),
                Remembered::Status(Status::NotFound),
                later,
                later,
            );
        }
        assert_eq!(o.map.len(), MAX_OUTCOMES);
        assert_eq!(o.bytes, 0);
        assert!(o.order.len() < 2 * MAX_OUTCOMES);
    }
}
