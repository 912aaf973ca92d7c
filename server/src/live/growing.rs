//! Objects whose bytes are still arriving (a segment or LL-HLS part being pushed to the
//! ingest port; later, one being pulled from an origin), served to every viewer while they
//! arrive. The writer appends to a file nobody else can see and publishes how far it got;
//! each viewer sends from that file up to there (sendfile, or pread and encrypt on TLS),
//! then waits for the next publication. One writer per object, any number of readers, no
//! copy of the bytes in memory.
//!
//! Wake-ups: a worker that serves an object marks itself in the object's `followers`
//! before its first byte goes out; the writer, after publishing a length, wakes the marked
//! workers through their inboxes (`net::notify`). Both sides use SeqCst on the length and
//! the marks, so a reader that saw the old length is always woken for the new one.

use crate::http::mime::Kind;
use crate::net::notify::Inboxes;
use bytes::Bytes;
use corestream_common::sync::lock;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where an object's writer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// More bytes may come.
    Open,
    /// Every byte is there; the object now also exists under its name.
    Complete,
    /// The writer failed: what was sent is not the object, and viewers must see that.
    Aborted,
}

pub struct Growing {
    /// The file being written (readable: viewers send from it at their own offsets).
    pub file: OwnedFd,
    pub content_type: &'static str,
    pub kind: Kind,
    /// The length the writer announced (Content-Length of the upload), if any.
    pub declared: Option<u64>,
    /// Pulled from an origin (the edge tier), not pushed to the ingest port.
    pub upstream: bool,
    /// The origin's freshness fields, passed on to viewers (`Fields::upstream`).
    pub passed: Option<Bytes>,
    /// When the origin's answer was new (its `Age` before it arrived): viewers are told
    /// how old it is now.
    pub new_at: Option<Instant>,
    written: AtomicU64,
    state: AtomicU8,
    /// One flag per worker: some connection of that worker is sending this object.
    followers: Box<[AtomicBool]>,
}

impl Growing {
    pub fn new(
        file: OwnedFd,
        content_type: &'static str,
        kind: Kind,
        declared: Option<u64>,
        workers: usize,
    ) -> Growing {
        Growing {
            file,
            content_type,
            kind,
            declared,
            upstream: false,
            passed: None,
            new_at: None,
            written: AtomicU64::new(0),
            state: AtomicU8::new(State::Open as u8),
            followers: (0..workers.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }

    /// Mark an object the edge tier pulls from an origin.
    /// Pulled from an origin, whose freshness fields (if any) viewers get, with the `Age`
    /// its answer came with.
    pub fn pulled(mut self, passed: Option<Bytes>, age: Duration) -> Growing {
        self.upstream = true;
        self.passed = passed;
        self.new_at = Instant::now().checked_sub(age);
        self
    }

    /// Seconds since the origin's answer was new (`Age`).
    pub fn age(&self) -> u32 {
        self.new_at.map_or(0, |t| {
            u32::try_from(t.elapsed().as_secs()).unwrap_or(u32::MAX)
        })
    }

    /// Bytes readable now, and whether more will come. The length is read after the state,
    /// so `Complete` always comes with the final length.
    pub fn available(&self) -> (u64, State) {
        let state = match self.state.load(SeqCst) {
            0 => State::Open,
            1 => State::Complete,
            _ => State::Aborted,
        };
        (self.written.load(SeqCst), state)
    }

    /// Worker `w` has a connection sending this object: wake it on every change.
    pub fn follow(&self, w: usize) {
        if let Some(f) = self.followers.get(w) {
            f.store(true, SeqCst);
        }
    }

    fn wake(&self, inboxes: &Inboxes) {
        inboxes.progress(|w| self.followers.get(w).is_some_and(|f| f.load(SeqCst)));
    }
}

/// The objects in flight, by root-relative path.
pub struct Registry {
    map: Mutex<HashMap<Box<[u8]>, Arc<Growing>>>,
    /// Entries in `map`: the viewers' path checks it before taking the lock, so serving
    /// costs nothing while nothing is being pushed.
    count: AtomicUsize,
    inboxes: Arc<Inboxes>,
}

impl Registry {
    pub fn new(inboxes: Arc<Inboxes>) -> Registry {
        Registry {
            map: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            inboxes,
        }
    }

    /// Objects in flight now.
    pub fn len(&self) -> usize {
        self.count.load(SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The object in flight at `path`, if any.
    pub fn get(&self, path: &[u8]) -> Option<Arc<Growing>> {
        if self.count.load(SeqCst) == 0 {
            return None;
        }
        lock(&self.map).get(path).cloned()
    }

    /// Publish a new object at `path` (replacing, for new viewers, one still in flight
    /// there), and wake requests held for that path (a preload-hinted part).
    pub fn begin(&self, path: &[u8], g: Arc<Growing>) {
        {
            let mut m = lock(&self.map);
            m.insert(path.into(), g);
            self.count.store(m.len(), SeqCst);
        }
        self.inboxes.changed(&[path.to_vec()]);
    }

    /// The writer has `len` bytes in the file.
    pub fn wrote(&self, g: &Growing, len: u64) {
        g.written.store(len, SeqCst);
        g.wake(&self.inboxes);
    }

    /// The writer is done: `Complete` (called after the object was renamed into place, so
    /// new requests find the file) or `Aborted` (nothing under the name changed).
    pub fn end(&self, path: &[u8], g: &Arc<Growing>, state: State) {
        self.unlist(path, g);
        g.state.store(state as u8, SeqCst);
        g.wake(&self.inboxes);
    }

    /// The writer is done and `len` bytes long, the last of them published only now: new
    /// requests no longer find it here before its viewers can have it all, so a viewer that
    /// asks again once it has every byte finds what replaced it (a stored copy).
    pub fn complete(&self, path: &[u8], g: &Arc<Growing>, len: u64) {
        self.unlist(path, g);
        g.written.store(len, SeqCst);
        g.state.store(State::Complete as u8, SeqCst);
        g.wake(&self.inboxes);
    }

    fn unlist(&self, path: &[u8], g: &Arc<Growing>) {
        {
            let mut m = lock(&self.map);
            if m.get(path).is_some_and(|cur| Arc::ptr_eq(cur, g)) {
                m.remove(path);
            }
            self.count.store(m.len(), SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(workers: usize) -> Arc<Growing> {
        let f = std::fs::File::open("/dev/null").unwrap();
        Arc::new(Growing::new(
            f.into(),
            "video/mp4",
            Kind::Segment,
            None,
            workers,
        ))
    }

    #[test]
    fn lifecycle_and_replacement() {
        let r = Registry::new(Arc::default());
        assert!(r.get(b"a.m4s").is_none());
        let g = object(2);
        r.begin(b"a.m4s", g.clone());
        assert_eq!(r.len(), 1);
        r.wrote(&g, 100);
        assert_eq!(g.available(), (100, State::Open));
        // A second upload of the same name takes over for new viewers; the first one ending
        // does not remove it.
        let g2 = object(2);
        r.begin(b"a.m4s", g2.clone());
        r.end(b"a.m4s", &g, State::Aborted);
        assert!(Arc::ptr_eq(&r.get(b"a.m4s").unwrap(), &g2));
        assert_eq!(g.available().1, State::Aborted);
        r.end(b"a.m4s", &g2, State::Complete);
        assert!(r.get(b"a.m4s").is_none());
        assert!(r.is_empty());
    }
}
