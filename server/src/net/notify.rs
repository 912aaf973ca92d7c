//! How other threads tell the workers that something changed: the inotify watcher and the
//! ingest plane (a playlist pushed or deleted, an upload begun) deliver root-relative paths,
//! and an upload in progress says that a growing object has more bytes. Each worker has one
//! inbox and a waker that interrupts its poll.

use corestream_common::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One worker's inbox.
pub struct Inbox {
    /// Root-relative paths that changed: drop cached copies, re-run requests parked on them.
    pub paths: Mutex<Vec<Vec<u8>>>,
    /// A growing object this worker's viewers follow has new bytes (or ended).
    pub progress: AtomicBool,
    pub waker: Arc<mio::Waker>,
}

/// Every worker's inbox, in worker order.
#[derive(Default)]
pub struct Inboxes(Mutex<Vec<Arc<Inbox>>>);

impl Inboxes {
    pub fn subscribe(&self, inbox: Arc<Inbox>) {
        lock(&self.0).push(inbox);
    }

    /// Tell every worker that `paths` changed.
    pub fn changed(&self, paths: &[Vec<u8>]) {
        if paths.is_empty() {
            return;
        }
        let all = lock(&self.0);
        for inbox in all.iter() {
            lock(&inbox.paths).extend(paths.iter().cloned());
            let _ = inbox.waker.wake();
        }
    }

    /// Tell the workers for which `wanted(worker)` holds that a growing object moved on.
    pub fn progress(&self, wanted: impl Fn(usize) -> bool) {
        let all = lock(&self.0);
        for (i, inbox) in all.iter().enumerate() {
            // One wake-up per burst: a worker that has not looked yet will see all of it.
            if wanted(i) && !inbox.progress.swap(true, Ordering::SeqCst) {
                let _ = inbox.waker.wake();
            }
        }
    }
}
