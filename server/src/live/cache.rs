//! Per-worker in-memory cache of playlists and manifests (.m3u8, .mpd).
//!
//! Every hit is validated with one `fstatat` against the inode, size and mtime the entry
//! was read with, so a viewer never gets a playlist older than the file on disk once the
//! packager's rename has happened (the staleness window is zero by construction, not the
//! latency of an inotify event). inotify still drops entries early and wakes parked
//! LL-HLS requests (see `live::Watcher`). Entries come only from files opened beneath the
//! root with openat2, so the unconfined stat can only confirm an entry, never admit a file.

use super::hints::Hints;
use super::playlist::{self, PlaylistInfo};
use super::watcher::Watcher;
use crate::net::fsys::{self, FileMeta};
use bytes::Bytes;
use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Playlists larger than this are not cached (they go out by sendfile like segments).
pub const MAX_CACHED_BYTES: u64 = 1 << 20;
/// Entries per worker before the cache is emptied and refilled (a live edge serves a few
/// hundred playlists at most; this only bounds a hostile walk over many names).
const MAX_ENTRIES: usize = 4096;

pub struct Cached {
    pub meta: FileMeta,
    pub body: Bytes,
    /// Scanned LL-HLS facts for media playlists (.m3u8).
    pub info: Option<PlaylistInfo>,
}

#[derive(Default)]
pub struct PlaylistCache {
    map: HashMap<Box<[u8]>, Arc<Cached>>,
}

/// Why a playlist could not be produced from the cache path.
pub enum Miss {
    /// No such file (or not a regular file, or outside the root): 404.
    NotFound,
    /// Too large to cache: serve it with sendfile instead.
    TooLarge,
    /// Any other error, with its errno for the status choice.
    Io(io::Error),
}

impl PlaylistCache {
    pub fn remove(&mut self, path: &[u8]) {
        self.map.remove(path);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The current version of the playlist at `path` (`cpath` is the same, NUL-terminated).
    pub fn get(
        &mut self,
        root: RawFd,
        path: &[u8],
        cpath: &CStr,
        watcher: Option<&Watcher>,
        hints: &Hints,
    ) -> Result<Arc<Cached>, Miss> {
        let now = match fsys::stat_at(root, cpath) {
            Ok(m) => m,
            Err(e) => {
                self.map.remove(path);
                return Err(match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EIO) => Miss::Io(e),
                    _ => Miss::NotFound,
                });
            }
        };
        if let Some(c) = self.map.get(path) {
            if c.meta == now {
                return Ok(c.clone());
            }
        }
        self.map.remove(path);
        let file = fsys::open_beneath(root, cpath).map_err(|e| match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EIO) => Miss::Io(e),
            _ => Miss::NotFound,
        })?;
        let meta = match fsys::regular_meta(&file) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(Miss::NotFound),
            Err(e) => return Err(Miss::Io(e)),
        };
        if meta.size > MAX_CACHED_BYTES {
            return Err(Miss::TooLarge);
        }
        let body = fsys::read_exact_size(file.as_raw_fd(), meta.size).map_err(Miss::Io)?;
        // A file cut short while we read it: describe what we hold (the next request's
        // stat sees the mismatch and reads again).
        let meta = FileMeta {
            size: body.len() as u64,
            ..meta
        };
        let info = if path.ends_with(b".m3u8") {
            std::str::from_utf8(&body).ok().map(playlist::scan)
        } else {
            None
        };
        if let Some(w) = watcher {
            w.watch_dir_of(path);
        }
        if let Some(i) = &info {
            hints.update(path, i);
        }
        let entry = Arc::new(Cached {
            meta,
            body: Bytes::from(body),
            info,
        });
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(path.into(), entry.clone());
        Ok(entry)
    }
}
