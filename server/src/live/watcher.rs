//! inotify on the directories of served playlists: a rename into place drops the workers'
//! cached copy and wakes the requests parked on it, without polling. One inotify instance
//! for the process, read by whoever gets there first: its own thread (which sleeps in
//! poll(2) so that parked requests are woken while the workers idle) or a worker checking,
//! after reading a batch of requests and before answering them, that nothing changed
//! (`sync`). Whoever reads it hands the changed paths to every worker's inbox before
//! letting go of the reader lock, so when a worker's `sync` returns, every change made
//! before it started is in that worker's inbox.
//!
//! Paths handed out are root-relative; one ending in `/` stands for everything beneath
//! that directory (`/` alone: everything), for changes to directories themselves (moved,
//! deleted, unmounted, a watch lost) and for a queue overflow.

use crate::http::mime::{self, Kind};
use crate::net::notify::Inboxes;
use corestream_common::sync::lock;
use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Watched directories both ways; one lock for both so that no order between two locks
/// has to be kept.
#[derive(Default)]
struct Watches {
    /// Root-relative directory -> its watch; None where adding the watch failed (not
    /// retried: out of fs.inotify.max_user_watches).
    dirs: HashMap<Vec<u8>, Option<WatchDescriptor>>,
    /// Every path that names the watched directory: through a symlink, two paths reach one
    /// inode, and inotify gives both the same watch.
    by_wd: HashMap<WatchDescriptor, Vec<Vec<u8>>>,
}

pub struct Watcher {
    inotify: Inotify,
    /// Read at every new watch: the root may have been recreated since start.
    root: Arc<crate::net::fsys::Root>,
    watches: Mutex<Watches>,
    /// Held while reading the instance and delivering what was read (see the module doc).
    reader: Mutex<()>,
    /// Reading failed once: `sync` reports nothing any more.
    broken: AtomicBool,
    inboxes: Arc<Inboxes>,
}

impl Watcher {
    pub fn new(
        root: Arc<crate::net::fsys::Root>,
        inboxes: Arc<Inboxes>,
    ) -> std::io::Result<Arc<Watcher>> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(std::io::Error::from)?;
        Ok(Arc::new(Watcher {
            inotify,
            root,
            watches: Mutex::new(Watches::default()),
            reader: Mutex::new(()),
            broken: AtomicBool::new(false),
            inboxes,
        }))
    }

    /// Watch the directory of a root-relative file path (idempotent, cheap when known).
    pub fn watch_dir_of(&self, rel: &[u8]) -> bool {
        let dir = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => &rel[..i],
            None => b"",
        };
        self.watch(dir)
    }

    /// Watch the directory of `rel` and every directory above it up to the root, so that
    /// the path cannot come to name another file without an event: a file renamed or
    /// written in place, or any directory on the way moved or deleted. True when all
    /// these watches are in place.
    pub fn watch_path(&self, rel: &[u8]) -> bool {
        let mut all = true;
        let mut end = rel.len();
        while let Some(i) = rel[..end].iter().rposition(|&b| b == b'/') {
            all &= self.watch(&rel[..i]);
            end = i;
        }
        all & self.watch(b"")
    }

    fn watch(&self, dir: &[u8]) -> bool {
        let mut w = lock(&self.watches);
        if let Some(known) = w.dirs.get(dir) {
            return known.is_some();
        }
        // The directory is reached through our root fd, so a renamed or re-mounted root
        // does not redirect the watch elsewhere.
        let mut path = format!("/proc/self/fd/{}", self.root.as_raw_fd()).into_bytes();
        if !dir.is_empty() {
            path.push(b'/');
            path.extend_from_slice(dir);
        }
        let path = std::path::PathBuf::from(std::ffi::OsString::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path),
        ));
        let mask = F::IN_CLOSE_WRITE
            | F::IN_MODIFY
            | F::IN_ATTRIB
            | F::IN_MOVED_TO
            | F::IN_MOVED_FROM
            | F::IN_DELETE
            | F::IN_CREATE
            | F::IN_DELETE_SELF
            | F::IN_MOVE_SELF
            | F::IN_ONLYDIR;
        match self.inotify.add_watch(&path, mask) {
            Ok(wd) => {
                w.dirs.insert(dir.to_vec(), Some(wd));
                w.by_wd.entry(wd).or_default().push(dir.to_vec());
                true
            }
            Err(e) => {
                // Out of watches (fs.inotify.max_user_watches): playlists there are checked
                // with a stat per request and parked requests progress through the
                // per-tick re-check, just later.
                if e != nix::errno::Errno::ENOENT && e != nix::errno::Errno::ENOTDIR {
                    say!(
                        "corestream: inotify watch on {}: {e}",
                        String::from_utf8_lossy(dir)
                    );
                    w.dirs.insert(dir.to_vec(), None);
                }
                false
            }
        }
    }

    /// Read every queued event and deliver the changes to every worker's inbox, all under
    /// the reader lock. Cheap when nothing happened: one read(2) that says EAGAIN. False
    /// once the instance has failed: from then on nothing may be trusted to be reported.
    pub fn sync(&self) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        let _reading = lock(&self.reader);
        let mut changed: Vec<Vec<u8>> = Vec::new();
        let ok = loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => self.translate(&events, &mut changed),
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => break true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    say!(
                        "corestream: inotify read failed, playlists are now checked with a stat per request: {e}"
                    );
                    self.broken.store(true, Ordering::Relaxed);
                    changed.push(b"/".to_vec());
                    break false;
                }
            }
        };
        self.inboxes.changed(&changed);
        ok
    }

    fn translate(&self, events: &[InotifyEvent], changed: &mut Vec<Vec<u8>>) {
        let mut w = lock(&self.watches);
        for ev in events {
            if ev.mask.contains(F::IN_Q_OVERFLOW) {
                changed.push(b"/".to_vec());
                continue;
            }
            let Some(dirs) = w.by_wd.get(&ev.wd).cloned() else {
                continue;
            };
            let under = |dir: &[u8]| {
                let mut p = dir.to_vec();
                p.push(b'/');
                p
            };
            let gone = F::IN_DELETE_SELF | F::IN_MOVE_SELF | F::IN_IGNORED | F::IN_UNMOUNT;
            if ev.mask.intersects(gone) {
                // The directory at these paths is not the one watched any more (or no
                // longer watched): forget it, so the next file served from there adds a
                // watch on whatever is at the path then.
                for dir in &dirs {
                    w.dirs.remove(dir);
                    changed.push(under(dir));
                }
                if ev.mask.contains(F::IN_IGNORED) {
                    w.by_wd.remove(&ev.wd);
                } else if ev.mask.contains(F::IN_MOVE_SELF) {
                    // Still watching the moved directory: stop (IN_IGNORED follows).
                    let _ = self.inotify.rm_watch(ev.wd);
                }
                continue;
            }
            let Some(name) = &ev.name else {
                continue;
            };
            let name = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
            // Writes and attribute changes to segments are frequent and cached nowhere.
            let content_only = !ev.mask.intersects(!(F::IN_MODIFY | F::IN_ATTRIB));
            let is_dir = ev.mask.contains(F::IN_ISDIR);
            if content_only && !is_dir && mime::lookup(name).1 != Kind::Playlist {
                continue;
            }
            for dir in &dirs {
                let mut p = dir.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                changed.push(if is_dir { under(&p) } else { p });
            }
        }
    }

    /// Deliver changes as they happen while the workers sleep: wait in poll(2) (the
    /// instance is non-blocking), then `sync`. Run on its own thread.
    pub fn run(&self) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        loop {
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    say!("corestream: inotify poll failed, held requests now look again once a second: {e}");
                    return;
                }
            }
            if !self.sync() {
                return;
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}
