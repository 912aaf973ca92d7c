//! inotify on the directories of served playlists: a rename into place drops the workers'
//! cached copy and wakes the requests parked on it, without polling. One thread for the
//! process; each worker gets the changed paths in its inbox and a wake-up.

use crate::net::notify::Inboxes;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

/// inotify on the directories holding playlists that viewers ask for. Directories are
/// added as they are first served; events (close-after-write, moved-to, delete, moved-from)
/// become root-relative paths pushed to every worker's inbox.
pub struct Watcher {
    inotify: nix::sys::inotify::Inotify,
    /// Read at every new watch: the root may have been recreated since start.
    root: Arc<crate::net::fsys::Root>,
    /// Watched directories; None where adding the watch failed (not retried).
    dirs: Mutex<HashMap<Vec<u8>, Option<nix::sys::inotify::WatchDescriptor>>>,
    by_wd: Mutex<HashMap<nix::sys::inotify::WatchDescriptor, Vec<u8>>>,
    inboxes: Arc<Inboxes>,
}

impl Watcher {
    pub fn new(
        root: Arc<crate::net::fsys::Root>,
        inboxes: Arc<Inboxes>,
    ) -> std::io::Result<Arc<Watcher>> {
        use nix::sys::inotify::{InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(std::io::Error::from)?;
        Ok(Arc::new(Watcher {
            inotify,
            root,
            dirs: Mutex::new(HashMap::new()),
            by_wd: Mutex::new(HashMap::new()),
            inboxes,
        }))
    }

    /// Watch the directory of a root-relative file path (idempotent, cheap when known).
    pub fn watch_dir_of(&self, rel: &[u8]) {
        use nix::sys::inotify::AddWatchFlags as F;
        let dir = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => rel[..i].to_vec(),
            None => Vec::new(),
        };
        let Ok(mut dirs) = self.dirs.lock() else {
            return;
        };
        if dirs.contains_key(&dir) {
            return;
        }
        // The directory is reached through our root fd, so a renamed or re-mounted root
        // does not redirect the watch elsewhere.
        let mut path = format!("/proc/self/fd/{}", self.root.as_raw_fd()).into_bytes();
        if !dir.is_empty() {
            path.push(b'/');
            path.extend_from_slice(&dir);
        }
        let path = std::path::PathBuf::from(std::ffi::OsString::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path),
        ));
        let mask = F::IN_CLOSE_WRITE
            | F::IN_MOVED_TO
            | F::IN_MOVED_FROM
            | F::IN_DELETE
            | F::IN_CREATE
            | F::IN_DELETE_SELF;
        match self.inotify.add_watch(&path, mask) {
            Ok(wd) => {
                dirs.insert(dir.clone(), Some(wd));
                if let Ok(mut m) = self.by_wd.lock() {
                    m.insert(wd, dir);
                }
            }
            Err(e) => {
                // Out of watches (fs.inotify.max_user_watches): parked requests still
                // progress through the per-tick re-check, just later.
                eprintln!(
                    "corestream: inotify watch on {}: {e}",
                    String::from_utf8_lossy(&dir)
                );
                dirs.insert(dir, None);
            }
        }
    }

    /// Blocking loop; run on its own thread.
    pub fn run(&self) {
        loop {
            let events = match self.inotify.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("corestream: inotify read failed, playlist changes now seen by polling only: {e}");
                    return;
                }
            };
            let mut changed: Vec<Vec<u8>> = Vec::new();
            {
                let Ok(by_wd) = self.by_wd.lock() else { return };
                for ev in &events {
                    let Some(dir) = by_wd.get(&ev.wd) else {
                        continue;
                    };
                    if ev
                        .mask
                        .contains(nix::sys::inotify::AddWatchFlags::IN_DELETE_SELF)
                        || ev
                            .mask
                            .contains(nix::sys::inotify::AddWatchFlags::IN_IGNORED)
                    {
                        changed.push(dir.clone());
                        continue;
                    }
                    if let Some(name) = &ev.name {
                        let mut p = dir.clone();
                        if !p.is_empty() {
                            p.push(b'/');
                        }
                        p.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(
                            name.as_os_str(),
                        ));
                        changed.push(p);
                    }
                }
            }
            // A deleted directory's watch is gone: forget it so it is re-added if the
            // directory comes back.
            for ev in &events {
                if ev
                    .mask
                    .contains(nix::sys::inotify::AddWatchFlags::IN_IGNORED)
                {
                    if let (Ok(mut by_wd), Ok(mut dirs)) = (self.by_wd.lock(), self.dirs.lock()) {
                        if let Some(dir) = by_wd.remove(&ev.wd) {
                            dirs.remove(&dir);
                        }
                    }
                }
            }
            if changed.is_empty() {
                continue;
            }
            self.inboxes.changed(&changed);
        }
    }

    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}
