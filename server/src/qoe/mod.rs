//! Viewer quality of experience at the edge: CMCD from players (`cmcd`), CMSD back to them
//! (`cmsd`), which stream and rendition each file belongs to (`catalog`), and who is watching
//! what right now (this module), for `/metrics`, `/streams` and the access log.
//!
//! Each worker owns one tracker behind its own mutex: the worker is the only one locking it
//! per request (uncontended), the admin thread locks each briefly when scraped and merges.

pub mod catalog;
pub mod cmcd;
pub mod cmsd;

use cmcd::Cmcd;
use corestream_common::sync::lock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};

/// Seconds of the bytes/s window per stream.
const RATE_WINDOW: u64 = 10;
/// Renditions listed per stream (a hostile client inventing `br` values gets no more).
const MAX_RENDITIONS: usize = 16;
/// Upper bounds of the buffer-length histogram (seconds) and the throughput one (bytes/s,
/// Prometheus's base unit: 62.5 kB/s is 500 kbit/s).
pub const BL_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 4.0, 6.0, 10.0, 15.0, 30.0, 60.0];
pub const MTP_BUCKETS: [f64; 9] = [62.5e3, 125e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6, 16e6];

/// Limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A CMCD session counts as watching for this long after its last request.
    pub window_secs: u64,
    /// Sessions (CMCD sids and plain connections) tracked per worker.
    pub max_sessions: usize,
    /// Streams tracked per worker.
    pub max_streams: usize,
}

/// Seconds a connection without CMCD counts after its last playlist reload at most: its
/// window (two target durations, or --qoe-window for a playlist without one) is capped here,
/// which bounds each rendition's ring of per-second counts.
const MAX_CONN_WINDOW: u64 = 600;

/// What the tracker knows of one connection without a CMCD session id, kept in the
/// connection itself (so that an idle viewer costs no table entry): the rendition it last
/// reloaded and when.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The worker's track id; 0: none.
    track: u32,
    /// Unix seconds of the last reload (u32 lasts until 2106).
    last: u32,
}

/// One answered request, as the tracker needs it.
pub struct Seen<'a> {
    /// Root-relative decoded path.
    pub path: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    pub cmcd: Option<&'a Cmcd>,
}

#[derive(Default)]
pub struct Histogram {
    buckets: [u64; 9],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, bounds: &[f64; 9], v: f64) {
        for (b, bound) in self.buckets.iter_mut().zip(bounds) {
            if v <= *bound {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }

    fn add(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
    }
}

/// A stream: the content id a player sent, else the master playlist (or the media playlist,
/// or the directory) a path belongs to. Paths are shared with the catalog: no allocation per
/// request.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Cid(Arc<str>),
    Path(Arc<[u8]>),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Cid(c) => f.write_str(c),
            Key::Path(p) => write!(f, "/{}", String::from_utf8_lossy(p)),
        }
    }
}

/// A rendition: the media playlist, else the encoded bitrate the player reported.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Rendition {
    Playlist(Arc<[u8]>),
    Kbps(i64),
    Unknown,
}

impl std::fmt::Display for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendition::Playlist(p) => write!(f, "/{}", String::from_utf8_lossy(p)),
            Rendition::Kbps(b) => write!(f, "{b} kbps"),
            Rendition::Unknown => f.write_str("unknown"),
        }
    }
}

struct Viewer {
    stream: Key,
    rendition: Rendition,
    last: u64,
    /// Seconds after `last` it still counts.
    window: u64,
}

/// A rendition reloaded by connections without a CMCD session id: how many of them last
/// reloaded it in each of the last `ring.len()` (its window) seconds. A reload moves its
/// connection's count from the second of its previous reload to this one; the viewers are
/// the sum over the window.
struct Track {
    stream: Key,
    rendition: Rendition,
    /// Counts by second, at `second % ring.len()`; the seconds (head - len, head] are held.
    ring: Box<[u32]>,
    head: u64,
}

impl Track {
    fn new(stream: Key, rendition: Rendition, window: u64) -> Track {
        Track {
            stream,
            rendition,
            ring: vec![0; window.clamp(1, MAX_CONN_WINDOW) as usize].into_boxed_slice(),
            head: 0,
        }
    }

    fn len(&self) -> u64 {
        self.ring.len() as u64
    }

    fn slot(&mut self, sec: u64) -> &mut u32 {
        let i = (sec % self.len()) as usize;
        &mut self.ring[i]
    }

    fn holds(&self, sec: u64) -> bool {
        sec <= self.head && sec + self.len() > self.head
    }

    /// Move the ring's end to `now`, clearing the seconds it passes. The clock going back
    /// leaves it where it is: returns the second a reload now counts at.
    fn advance(&mut self, now: u64) -> u64 {
        if now > self.head {
            let from = (self.head + 1).max(now.saturating_sub(self.len() - 1));
            for sec in from..=now {
                *self.slot(sec) = 0;
            }
            self.head = now;
        }
        self.head
    }

    /// A connection reloaded at `now`; `prev`: its previous reload of this rendition.
    /// Returns the second it counts at.
    fn reload(&mut self, now: u64, prev: Option<u64>) -> u64 {
        let at = self.advance(now);
        if let Some(p) = prev {
            self.forget(p);
        }
        let c = self.slot(at);
        *c = c.saturating_add(1);
        at
    }

    /// A connection whose last reload was at `sec` is no longer on this rendition.
    fn forget(&mut self, sec: u64) {
        if self.holds(sec) {
            let c = self.slot(sec);
            *c = c.saturating_sub(1);
        }
    }

    /// A new window (the target duration changed): keep the counts both windows hold.
    fn resize(&mut self, window: u64) {
        let len = window.clamp(1, MAX_CONN_WINDOW);
        if len == self.len() {
            return;
        }
        let mut t = Track::new(self.stream.clone(), self.rendition.clone(), len);
        t.head = self.head;
        for sec in self.head.saturating_sub(len.min(self.len()) - 1)..=self.head {
            if self.holds(sec) {
                *t.slot(sec) = self.ring[(sec % self.len()) as usize];
            }
        }
        *self = t;
    }

    /// Connections whose last reload is within the window ending at `now`.
    fn live(&self, now: u64) -> u64 {
        let lo = now.saturating_sub(self.len() - 1);
        (lo..=now.min(self.head))
            .filter(|s| self.holds(*s))
            .map(|s| u64::from(self.ring[(s % self.len()) as usize]))
            .sum()
    }
}

#[derive(Default)]
struct StreamStat {
    bucket_start: u64,
    bucket_bytes: u64,
    prev_bytes: u64,
    bytes_total: u64,
    starvation: u64,
    last: u64,
}

impl StreamStat {
    fn add(&mut self, now: u64, bytes: u64, starved: bool) {
        if now >= self.bucket_start + RATE_WINDOW {
            self.prev_bytes = if now < self.bucket_start + 2 * RATE_WINDOW {
                self.bucket_bytes
            } else {
                0
            };
            self.bucket_start = now - now % RATE_WINDOW;
            self.bucket_bytes = 0;
        }
        self.bucket_bytes += bytes;
        self.bytes_total += bytes;
        self.last = now;
        self.starvation += u64::from(starved);
    }
}

#[derive(Default)]
struct Tracker {
    /// CMCD sessions by sid.
    sessions: HashMap<Box<str>, Viewer>,
    /// Renditions reloaded by connections without a CMCD sid, by id (the connections'
    /// `Mark`s point here), and the id of each.
    tracks: HashMap<u32, Track, BuildHasherDefault<IdHasher>>,
    track_ids: HashMap<(Key, Rendition), u32>,
    last_track: u32,
    streams: HashMap<Key, StreamStat>,
    dropped_sessions: u64,
    dropped_streams: u64,
    cmcd_requests: u64,
    cmcd_ignored: u64,
    bl: Histogram,
    mtp: Histogram,
}

/// Hashes the track ids this tracker hands out itself (1, 2, 3, ...), which no client
/// chooses: a multiply spreads them over the table. SipHash's keyed rounds, which defend
/// against keys a client picks, cost about 1 % of a worker's cycles on playlist reloads (two
/// or three lookups a request) for nothing here. Written here: no crate in the dependency
/// table has one.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u32 ids are hashed (write_u32); any other input still gets a spread value.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One worker's tracker on cache lines of its own: the workers lock theirs on every request,
/// and a neighbour's writes must not evict it.
#[repr(align(128))]
struct Slot(Mutex<Tracker>);

pub struct Qoe {
    workers: Box<[Slot]>,
    pub catalog: catalog::Catalog,
    limits: Limits,
}

/// A stream as `/streams` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamView {
    pub stream: String,
    pub viewers: u64,
    /// Of which identified by a CMCD session id.
    pub cmcd_sessions: u64,
    pub renditions: Vec<(String, u64)>,
    pub bytes_per_second: f64,
    pub bytes_total: u64,
    pub starvation: u64,
}

pub struct Snapshot {
    pub streams: Vec<StreamView>,
    pub sessions_tracked: u64,
    pub dropped_sessions: u64,
    pub dropped_streams: u64,
    pub cmcd_requests: u64,
    pub cmcd_ignored: u64,
    bl: Histogram,
    mtp: Histogram,
}

struct Place {
    stream: Key,
    rendition: Rendition,
    media_playlist: bool,
    /// Target duration of a media playlist, ms.
    reload_ms: Option<u32>,
}

/// Insert or refresh `key`; when the table is full, expired entries go first, and if none
/// has expired the new one is dropped and counted.
fn insert_bounded<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Viewer>,
    key: K,
    v: Viewer,
    cap: usize,
    now: u64,
    dropped: &mut u64,
) {
    if let Some(slot) = map.get_mut(&key) {
        *slot = v;
        return;
    }
    if map.len() >= cap {
        map.retain(|_, v| v.last + v.window > now);
    }
    if map.len() >= cap {
        *dropped += 1;
        return;
    }
    map.insert(key, v);
}

impl Tracker {
    /// The id of the track of (`stream`, `rendition`), made if new and there is room
    /// (renditions without viewers go first); None when there is none.
    fn track(
        &mut self,
        stream: Key,
        rendition: Rendition,
        window: u64,
        lim: &Limits,
        now: u64,
    ) -> Option<u32> {
        let key = (stream, rendition);
        if let Some(&id) = self.track_ids.get(&key) {
            if let Some(tr) = self.tracks.get_mut(&id) {
                tr.resize(window);
                return Some(id);
            }
        }
        let cap = lim.max_streams.saturating_mul(MAX_RENDITIONS);
        if self.tracks.len() >= cap {
            self.drop_idle_tracks(now);
            if self.tracks.len() >= cap {
                return None;
            }
        }
        // Ids are not reused while a track holds them: a connection's mark never points at
        // another rendition's counts.
        let mut id = self.last_track;
        loop {
            id = id.wrapping_add(1).max(1);
            if !self.tracks.contains_key(&id) {
                break;
            }
        }
        self.last_track = id;
        let (stream, rendition) = key.clone();
        self.tracks
            .insert(id, Track::new(stream, rendition, window));
        self.track_ids.insert(key, id);
        Some(id)
    }

    /// Forget the tracks nobody reloaded within their window. A connection whose mark points
    /// at one counts anew at its next reload; it counted for nothing meanwhile.
    fn drop_idle_tracks(&mut self, now: u64) {
        self.tracks.retain(|_, tr| {
            tr.advance(now);
            tr.ring.iter().any(|&c| c > 0)
        });
        let tracks = &self.tracks;
        self.track_ids.retain(|_, id| tracks.contains_key(id));
    }
}

impl Qoe {
    pub fn new(workers: usize, limits: Limits) -> Qoe {
        Qoe {
            workers: (0..workers.max(1))
                .map(|_| Slot(Mutex::new(Tracker::default())))
                .collect(),
            catalog: catalog::Catalog::default(),
            limits,
        }
    }

    /// Where a path belongs, by what the playlists said.
    fn place(&self, path: &[u8], cmcd: Option<&Cmcd>) -> Place {
        let entry = self.catalog.get(path).unwrap_or_default();
        let mpd = path.ends_with(b".mpd");
        let media_playlist = mpd || (path.ends_with(b".m3u8") && entry.duration_ms > 0);
        let master_playlist = path.ends_with(b".m3u8") && !media_playlist;
        let media: Option<Arc<[u8]>> = match (&entry.media, media_playlist) {
            (Some(m), _) => Some(m.clone()),
            (None, true) => Some(Arc::from(path)),
            (None, false) => None,
        };
        let master: Option<Arc<[u8]>> = if master_playlist {
            Some(Arc::from(path))
        } else if media_playlist {
            entry.master.clone()
        } else {
            media
                .as_deref()
                .and_then(|m| self.catalog.get(m))
                .and_then(|e| e.master)
        };
        let stream = match (
            cmcd.and_then(|c| c.str("cid")),
            master.or_else(|| media.clone()),
        ) {
            (Some(cid), _) => Key::Cid(Arc::from(cid)),
            (None, Some(p)) => Key::Path(p),
            (None, None) => {
                let end = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                Key::Path(Arc::from(&path[..end]))
            }
        };
        let rendition = match (media, cmcd.and_then(|c| c.int("br"))) {
            (Some(m), _) => Rendition::Playlist(m),
            (None, Some(br)) => Rendition::Kbps(br),
            (None, None) => Rendition::Unknown,
        };
        Place {
            stream,
            rendition,
            media_playlist,
            reload_ms: (media_playlist && entry.duration_ms > 0).then_some(entry.duration_ms),
        }
    }

    /// The common case, kept cheap: a connection without CMCD reloading the media playlist it
    /// reloaded last time. Refreshes it without asking the catalog. False if it is not that.
    fn reload(&self, slot: &Mutex<Tracker>, now: u64, seen: &Seen<'_>, mark: &mut Mark) -> bool {
        if mark.track == 0 {
            return false;
        }
        let mut t = lock(slot);
        let Tracker {
            tracks, streams, ..
        } = &mut *t;
        let Some(tr) = tracks.get_mut(&mark.track) else {
            return false;
        };
        if !matches!(&tr.rendition, Rendition::Playlist(p) if **p == *seen.path) {
            return false;
        }
        if !(200..400).contains(&seen.status) {
            return true;
        }
        let at = tr.reload(now, Some(u64::from(mark.last)));
        mark.last = u32::try_from(at).unwrap_or(u32::MAX);
        if let Some(s) = streams.get_mut(&tr.stream) {
            s.add(now, seen.bytes, false);
        }
        true
    }

    /// Count what connection `mark` was answered.
    pub fn observe(&self, worker: usize, now: u64, seen: &Seen<'_>, mark: &mut Mark) {
        let Some(Slot(slot)) = self.workers.get(worker) else {
            return;
        };
        if seen.cmcd.is_none() && self.reload(slot, now, seen, mark) {
            return;
        }
        let place = self.place(seen.path, seen.cmcd);
        let mut t = lock(slot);
        crate::fault::injected("CORESTREAM_DEBUG_PANIC_QOE", seen.path);
        let lim = self.limits;
        let t = &mut *t;
        let stream = place.stream;
        if !t.streams.contains_key(&stream) && t.streams.len() >= lim.max_streams {
            let keep = 2 * lim.window_secs.max(RATE_WINDOW);
            t.streams.retain(|_, s| s.last + keep > now);
        }
        let st = if let Some(s) = t.streams.get_mut(&stream) {
            Some(s)
        } else if t.streams.len() < lim.max_streams {
            Some(t.streams.entry(stream.clone()).or_default())
        } else {
            t.dropped_streams += 1;
            None
        };
        if let Some(s) = st {
            let starved = seen.cmcd.and_then(|c| c.flag("bs")) == Some(true);
            s.add(now, seen.bytes, starved);
        }
        let ok = (200..400).contains(&seen.status);
        if let Some(c) = seen.cmcd {
            t.cmcd_requests += 1;
            t.cmcd_ignored += u64::from(c.ignored);
            if let Some(bl) = c.int("bl").filter(|v| *v >= 0) {
                t.bl.observe(&BL_BUCKETS, bl as f64 / 1000.0);
            }
            if let Some(mtp) = c.int("mtp").filter(|v| *v >= 0) {
                // kbit/s to bytes/s.
                t.mtp.observe(&MTP_BUCKETS, mtp as f64 * 125.0);
            }
            if let Some(sid) = c.str("sid") {
                if !ok {
                    return;
                }
                if let Some(v) = t.sessions.get_mut(sid) {
                    v.stream = stream;
                    // A media playlist or one of its segments names the rendition; a bare
                    // `br` only until one does.
                    let named = |r: &Rendition| matches!(r, Rendition::Playlist(_));
                    if named(&place.rendition) || !named(&v.rendition) {
                        v.rendition = place.rendition;
                    }
                    v.last = now;
                    return;
                }
                let viewer = Viewer {
                    stream,
                    rendition: place.rendition,
                    last: now,
                    window: lim.window_secs,
                };
                insert_bounded(
                    &mut t.sessions,
                    sid.into(),
                    viewer,
                    lim.max_sessions,
                    now,
                    &mut t.dropped_sessions,
                );
                return;
            }
        }
        if !(ok && place.media_playlist) {
            return;
        }
        // Without a session id: the connections reloading a media playlist, each counting for
        // two target durations after its last reload.
        let window = place.reload_ms.map_or(lim.window_secs, |ms| {
            (2 * u64::from(ms)).div_ceil(1000).max(1)
        });
        let prev = (mark.track != 0).then_some(*mark);
        *mark = Mark::default();
        let id = t.track(stream, place.rendition, window, &lim, now);
        let prev_here = prev.filter(|p| Some(p.track) == id);
        if let Some(p) = prev.filter(|p| Some(p.track) != id) {
            if let Some(old) = t.tracks.get_mut(&p.track) {
                old.forget(u64::from(p.last));
            }
        }
        let Some(id) = id else {
            t.dropped_sessions += 1;
            return;
        };
        if let Some(tr) = t.tracks.get_mut(&id) {
            let at = tr.reload(now, prev_here.map(|p| u64::from(p.last)));
            *mark = Mark {
                track: id,
                last: u32::try_from(at).unwrap_or(u32::MAX),
            };
        }
    }

    /// Everyone watching now, merged over the workers (a CMCD session seen by two workers
    /// counts once, where it was seen last).
    pub fn snapshot(&self, now: u64) -> Snapshot {
        struct Agg {
            sids: HashSet<String>,
            conns: u64,
            renditions: BTreeMap<String, u64>,
            prev_bytes: u64,
            bytes_total: u64,
            starvation: u64,
        }
        let mut sessions: HashMap<String, (u64, Key, Rendition)> = HashMap::new();
        let mut conns: Vec<(Key, Rendition, u64)> = Vec::new();
        let mut streams: BTreeMap<String, Agg> = BTreeMap::new();
        let mut snap = Snapshot {
            streams: Vec::new(),
            sessions_tracked: 0,
            dropped_sessions: 0,
            dropped_streams: 0,
            cmcd_requests: 0,
            cmcd_ignored: 0,
            bl: Histogram::default(),
            mtp: Histogram::default(),
        };
        let new_agg = || Agg {
            sids: HashSet::new(),
            conns: 0,
            renditions: BTreeMap::new(),
            prev_bytes: 0,
            bytes_total: 0,
            starvation: 0,
        };
        for Slot(w) in self.workers.iter() {
            let mut t = lock(w);
            t.sessions.retain(|_, v| v.last + v.window > now);
            t.drop_idle_tracks(now);
            for tr in t.tracks.values() {
                let n = tr.live(now);
                if n > 0 {
                    conns.push((tr.stream.clone(), tr.rendition.clone(), n));
                }
            }
            snap.sessions_tracked += t.sessions.len() as u64;
            snap.dropped_sessions += t.dropped_sessions;
            snap.dropped_streams += t.dropped_streams;
            snap.cmcd_requests += t.cmcd_requests;
            snap.cmcd_ignored += t.cmcd_ignored;
            snap.bl.add(&t.bl);
            snap.mtp.add(&t.mtp);
            for (sid, v) in &t.sessions {
                let e = sessions.entry(sid.to_string()).or_insert((
                    0,
                    v.stream.clone(),
                    v.rendition.clone(),
                ));
                // Where it was seen last; in the same second, where a playlist named it.
                let named = matches!(v.rendition, Rendition::Playlist(_));
                if v.last > e.0 || (v.last == e.0 && named) {
                    *e = (v.last, v.stream.clone(), v.rendition.clone());
                }
            }
            for (name, s) in &t.streams {
                let a = streams.entry(name.to_string()).or_insert_with(new_agg);
                // Bytes of the last complete window, if it is the one just before now.
                if now < s.bucket_start + 2 * RATE_WINDOW {
                    a.prev_bytes += if now >= s.bucket_start + RATE_WINDOW {
                        s.bucket_bytes
                    } else {
                        s.prev_bytes
                    };
                }
                a.bytes_total += s.bytes_total;
                a.starvation += s.starvation;
            }
        }
        for (sid, (_, stream, rendition)) in sessions {
            let a = streams.entry(stream.to_string()).or_insert_with(new_agg);
            a.sids.insert(sid);
            *a.renditions.entry(rendition.to_string()).or_default() += 1;
        }
        for (stream, rendition, n) in conns {
            snap.sessions_tracked += n;
            let a = streams.entry(stream.to_string()).or_insert_with(new_agg);
            a.conns += n;
            *a.renditions.entry(rendition.to_string()).or_default() += n;
        }
        snap.streams = streams
            .into_iter()
            .map(|(stream, a)| {
                let mut renditions: Vec<(String, u64)> = a.renditions.into_iter().collect();
                renditions.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
                renditions.truncate(MAX_RENDITIONS);
                StreamView {
                    stream,
                    viewers: a.sids.len() as u64 + a.conns,
                    cmcd_sessions: a.sids.len() as u64,
                    renditions,
                    bytes_per_second: a.prev_bytes as f64 / RATE_WINDOW as f64,
                    bytes_total: a.bytes_total,
                    starvation: a.starvation,
                }
            })
            .collect();
        snap.streams.sort_by(|a, b| {
            b.viewers
                .cmp(&a.viewers)
                .then_with(|| b.bytes_per_second.total_cmp(&a.bytes_per_second))
                .then_with(|| a.stream.cmp(&b.stream))
        });
        snap
    }
}

impl Snapshot {
    /// The `/streams` document.
    pub fn to_json(&self, window_secs: u64) -> String {
        let streams: Vec<serde_json::Value> = self
            .streams
            .iter()
            .map(|s| {
                serde_json::json!({
                    "stream": s.stream,
                    "viewers": s.viewers,
                    "cmcd_sessions": s.cmcd_sessions,
                    "renditions": s.renditions.iter().map(|(r, n)| serde_json::json!({"rendition": r, "viewers": n})).collect::<Vec<_>>(),
                    "bytes_per_second": s.bytes_per_second,
                    "bytes_total": s.bytes_total,
                    "buffer_starvation_total": s.starvation,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "window_seconds": window_secs,
            "viewers": self.streams.iter().map(|s| s.viewers).sum::<u64>(),
            "streams": streams,
            "sessions_tracked": self.sessions_tracked,
            "dropped": {"sessions": self.dropped_sessions, "streams": self.dropped_streams},
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }

    /// The QoE families of `/metrics`.
    pub fn render(&self, o: &mut crate::admin::metrics::Exposition) {
        o.family("corestream_viewers", "gauge", "Viewers watching each stream now: distinct CMCD session ids seen within --qoe-window, plus connections without one that reloaded a media playlist within two target durations.");
        for s in &self.streams {
            o.sample("corestream_viewers", &[("stream", &s.stream)], s.viewers);
        }
        o.family("corestream_rendition_viewers", "gauge", "Viewers of each stream by rendition (media playlist path, or the CMCD encoded bitrate).");
        for s in &self.streams {
            for (r, n) in &s.renditions {
                o.sample(
                    "corestream_rendition_viewers",
                    &[("stream", &s.stream), ("rendition", r)],
                    *n,
                );
            }
        }
        o.family(
            "corestream_buffer_starvation_total",
            "counter",
            "Requests whose CMCD said the player's buffer ran dry since its previous request (bs).",
        );
        for s in &self.streams {
            o.sample(
                "corestream_buffer_starvation_total",
                &[("stream", &s.stream)],
                s.starvation,
            );
        }
        o.family(
            "corestream_stream_response_bytes_total",
            "counter",
            "Body bytes sent for each stream.",
        );
        for s in &self.streams {
            o.sample(
                "corestream_stream_response_bytes_total",
                &[("stream", &s.stream)],
                s.bytes_total,
            );
        }
        histogram(
            o,
            "corestream_cmcd_buffer_length_seconds",
            "Buffer length players reported (CMCD bl).",
            &BL_BUCKETS,
            &self.bl,
        );
        histogram(
            o,
            "corestream_cmcd_measured_throughput_bytes_per_second",
            "Throughput players measured (CMCD mtp).",
            &MTP_BUCKETS,
            &self.mtp,
        );
        o.single(
            "corestream_cmcd_requests_total",
            "counter",
            "Requests that carried CMCD.",
            self.cmcd_requests,
        );
        o.single(
            "corestream_cmcd_ignored_members_total",
            "counter",
            "CMCD members ignored: malformed, or past the per-request cap.",
            self.cmcd_ignored,
        );
        o.single("corestream_viewer_sessions_tracked", "gauge", "CMCD sessions held in memory (bounded by --qoe-max-sessions) and connections without one counted as reloading a media playlist (held by the connections themselves).", self.sessions_tracked);
        o.family(
            "corestream_viewer_tracking_dropped_total",
            "counter",
            "Sessions or streams not tracked because their table was full.",
        );
        o.sample(
            "corestream_viewer_tracking_dropped_total",
            &[("what", "session")],
            self.dropped_sessions,
        );
        o.sample(
            "corestream_viewer_tracking_dropped_total",
            &[("what", "stream")],
            self.dropped_streams,
        );
    }
}

pub fn histogram(
    o: &mut crate::admin::metrics::Exposition,
    name: &str,
    help: &str,
    bounds: &[f64; 9],
    h: &Histogram,
) {
    o.family(name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (b, n) in bounds.iter().zip(&h.buckets) {
        o.sample(&bucket, &[("le", &b.to_string())], *n);
    }
    o.sample(&bucket, &[("le", "+Inf")], h.count);
    o.sample(&format!("{name}_sum"), &[], h.sum);
    o.sample(&format!("{name}_count"), &[], h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qoe(window_secs: u64) -> Qoe {
        Qoe::new(
            1,
            Limits {
                window_secs,
                max_sessions: 100,
                max_streams: 1,
            },
        )
    }

    fn seen(path: &[u8]) -> Seen<'_> {
        Seen {
            path,
            status: 200,
            bytes: 100,
            cmcd: None,
        }
    }

    fn viewers(q: &Qoe, now: u64) -> Vec<(String, u64)> {
        let snap = q.snapshot(now);
        let mut v: Vec<(String, u64)> = snap
            .streams
            .iter()
            .flat_map(|s| s.renditions.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_connection_counts_once_where_it_reloaded_last_until_its_window_passes() {
        let q = qoe(10);
        let (mut a, mut b) = (Mark::default(), Mark::default());
        for t in 100..105 {
            q.observe(0, t, &seen(b"live/hi.mpd"), &mut a);
            q.observe(0, t, &seen(b"live/hi.mpd"), &mut b);
        }
        assert_eq!(viewers(&q, 104), [("/live/hi.mpd".to_string(), 2)]);
        // b switches rendition: it leaves the first at once.
        q.observe(0, 106, &seen(b"live/lo.mpd"), &mut b);
        assert_eq!(
            viewers(&q, 106),
            [
                ("/live/hi.mpd".to_string(), 1),
                ("/live/lo.mpd".to_string(), 1)
            ]
        );
        // a's last reload was at 104: it counts through 113 and not at 114.
        assert_eq!(viewers(&q, 113)[0], ("/live/hi.mpd".to_string(), 1));
        assert_eq!(viewers(&q, 114), [("/live/lo.mpd".to_string(), 1)]);
        assert_eq!(q.snapshot(116).sessions_tracked, 0);
        // A reload long after its track was forgotten counts anew, once.
        q.observe(0, 500, &seen(b"live/hi.mpd"), &mut a);
        q.observe(0, 501, &seen(b"live/hi.mpd"), &mut a);
        assert_eq!(viewers(&q, 501), [("/live/hi.mpd".to_string(), 1)]);
    }

    #[test]
    fn errors_and_a_clock_going_back_do_not_add_viewers() {
        let q = qoe(5);
        let mut a = Mark::default();
        q.observe(0, 10_000, &seen(b"s/a.mpd"), &mut a);
        let mut gone = seen(b"s/a.mpd");
        gone.status = 404;
        q.observe(0, 10_001, &gone, &mut a);
        // The wall clock steps back an hour: the reload counts at the ring's newest second.
        q.observe(0, 10_000 - 3600, &seen(b"s/a.mpd"), &mut a);
        q.observe(0, 10_002, &seen(b"s/a.mpd"), &mut a);
        assert_eq!(viewers(&q, 10_002), [("/s/a.mpd".to_string(), 1)]);
        assert_eq!(viewers(&q, 10_006), [("/s/a.mpd".to_string(), 1)]);
        assert!(viewers(&q, 10_007).is_empty());
    }

    #[test]
    fn a_ring_resized_keeps_what_both_windows_hold() {
        let mut t = Track::new(Key::Path(Arc::from(&b"s"[..])), Rendition::Unknown, 10);
        for (i, sec) in (100..110).enumerate() {
            for _ in 0..=i {
                t.reload(sec, None);
            }
        }
        assert_eq!(t.live(109), (1..=10).sum::<u64>());
        t.resize(3);
        assert_eq!(t.live(109), 8 + 9 + 10);
        t.resize(20);
        assert_eq!(t.live(109), 8 + 9 + 10);
        assert_eq!(t.live(128), 10);
        assert_eq!(t.live(129), 0);
    }
}
