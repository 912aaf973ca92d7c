//! Per-worker in-memory cache of playlists and manifests (.m3u8, .mpd), bounded in bytes
//! (`--playlist-cache-bytes` split across workers) with least-recently-used eviction: a
//! crawler walking a catalogue of large playlists cannot take the memory of the box. What
//! does not fit is served from the file like any other body.
//!
//! A viewer never gets a playlist older than the file on disk once the packager's rename
//! (or close after writing) has happened; the staleness window is zero by construction,
//! not the latency of an inotify event. Two ways to know:
//! - Watched entries (`Cached::watched`): before the file was opened, inotify watches were
//!   in place on its directory and every directory above it up to the root, the path has
//!   no symlink, the file has one link and lives on a filesystem whose every change this
//!   kernel makes (`fsys::changes_reach_inotify`). Any later change to what the path names
//!   then queues an event before the changing syscall returns. The worker reads its
//!   requests, then drains the inotify queue (`Watcher::sync`, one read(2) per batch of
//!   requests), then answers: a request read before that drain (`synced`) is answered from
//!   a watched entry that is still here without looking at the file.
//! - Every other hit (a request read after the last drain, an entry that could not be
//!   watched, a pulled playlist) is validated with one `fstatat` against the inode, size and
//!   mtime the entry was read with.
//!
//! Entries come only from files opened beneath the root with openat2, so the unconfined stat
//! can only confirm an entry, never admit a file. Playlists the edge tier pulled into its
//! cache directory are held here too (`Dir::Pulled`), validated by the stat against the
//! stored file each fetch replaces.

use super::hints::Hints;
use super::playlist::{self, PlaylistInfo};
use super::watcher::Watcher;
use crate::net::fsys::{self, FileMeta};
use bytes::Bytes;
use lru::LruCache;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Playlists larger than this are not cached (they go out by sendfile like segments).
pub const MAX_CACHED_BYTES: u64 = 1 << 20;
/// Bookkeeping bytes charged per entry besides its body and name (map slot, Arc, scan).
const ENTRY_OVERHEAD: usize = 256;

pub struct Cached {
    pub meta: FileMeta,
    /// The root handle the entry was read beneath when it may be served on the watcher's
    /// word (see the module doc); None: validated by a stat on every hit.
    watched: Option<RawFd>,
    pub body: Bytes,
    /// Scanned LL-HLS facts for media playlists (.m3u8).
    pub info: Option<PlaylistInfo>,
}

impl Cached {
    /// Read beneath `root` and served on the watcher's word (see the module doc).
    pub fn watched_under(&self, root: RawFd) -> bool {
        self.watched == Some(root)
    }

    /// Bytes this entry holds, as charged against the cache's bound.
    fn cost(&self, key: &[u8]) -> usize {
        let scan = self.info.as_ref().map_or(0, |i| {
            i.part_uris.iter().map(String::len).sum::<usize>()
                + i.preload_hint.as_ref().map_or(0, String::len)
                + i.parts.len() * 16
        });
        self.body.len() + key.len() + scan + ENTRY_OVERHEAD
    }
}

pub struct PlaylistCache {
    map: LruCache<Box<[u8]>, Arc<Cached>>,
    /// Bytes held (sum of entry costs) and the most it may hold.
    bytes: usize,
    budget: usize,
    /// Entries evicted to stay within the budget, since start.
    pub evictions: u64,
}

impl Default for PlaylistCache {
    fn default() -> Self {
        PlaylistCache::new(64 << 20)
    }
}

/// Where a playlist's file is.
#[derive(Clone, Copy)]
pub enum Dir<'w> {
    /// Beneath the root, whose changes the watcher (if any) reports.
    Root(RawFd, Option<&'w Watcher>),
    /// In the edge tier's cache directory (pulled from an origin): every hit is validated
    /// by its fstatat alone, and the entry is kept apart from a root file of the same path
    /// (its key ends with the path's NUL, which no decoded path contains).
    Pulled(RawFd),
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
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> PlaylistCache {
        PlaylistCache {
            map: LruCache::unbounded(),
            bytes: 0,
            budget,
            evictions: 0,
        }
    }

    pub fn remove(&mut self, path: &[u8]) {
        if let Some(c) = self.map.pop(path) {
            self.bytes -= c.cost(path);
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop every entry beneath the root-relative directory `prefix` (ending in `/`; `/`
    /// alone: all entries).
    pub fn remove_under(&mut self, prefix: &[u8]) {
        let doomed: Vec<Box<[u8]>> = self
            .map
            .iter()
            .filter(|(k, _)| prefix == b"/" || k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.remove(&k);
        }
    }

    /// The entry for root-relative `path` beneath `root` if it is watched: for a request read
    /// before the last `Watcher::sync`, the current version without looking at the file.
    pub fn watched(&mut self, path: &[u8], root: RawFd) -> Option<&Arc<Cached>> {
        self.map.get(path).filter(|c| c.watched == Some(root))
    }

    /// The current version of the playlist at `path` (`cpath` is the same, NUL-terminated)
    /// in `dir`. `synced`: the request was read before this worker's last `Watcher::sync`.
    pub fn get(
        &mut self,
        dir: Dir<'_>,
        (path, cpath): (&[u8], &CStr),
        synced: bool,
        hints: &Hints,
        catalog: &crate::qoe::catalog::Catalog,
    ) -> Result<Arc<Cached>, Miss> {
        let (root, watcher, key) = match dir {
            Dir::Root(fd, w) => (fd, w, path),
            Dir::Pulled(fd) => (fd, None, cpath.to_bytes_with_nul()),
        };
        if synced && watcher.is_some() {
            if let Some(c) = self.watched(key, root) {
                return Ok(c.clone());
            }
        }
        let now = match fsys::stat_at(root, cpath) {
            Ok(m) => m,
            Err(e) => {
                self.remove(key);
                return Err(match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EIO) => Miss::Io(e),
                    _ => Miss::NotFound,
                });
            }
        };
        if let Some(c) = self.map.get(key) {
            if c.meta == now {
                return Ok(c.clone());
            }
        }
        self.remove(key);
        // Watches first: a change after they are in place is reported, one before is in
        // what we read.
        let watching = watcher.is_some_and(|w| w.watch_path(path));
        let io_miss = |e: io::Error| match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EIO) => Miss::Io(e),
            _ => Miss::NotFound,
        };
        let (file, direct) = match fsys::open_beneath_no_symlinks(root, cpath).map_err(io_miss)? {
            Some(f) => (f, true),
            None => (fsys::open_beneath(root, cpath).map_err(io_miss)?, false),
        };
        let meta = match fsys::regular_meta(&file) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(Miss::NotFound),
            Err(e) => return Err(Miss::Io(e)),
        };
        if meta.size > MAX_CACHED_BYTES || meta.size as usize + ENTRY_OVERHEAD > self.budget {
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
        let watched = (watching && direct && fsys::changes_reach_inotify(&file)).then_some(root);
        if let Some(i) = &info {
            hints.update(path, i);
            if let Ok(text) = std::str::from_utf8(&body) {
                catalog.learn(path, text);
            }
        }
        let entry = Arc::new(Cached {
            meta,
            watched,
            body: Bytes::from(body),
            info,
        });
        let cost = entry.cost(key);
        while self.bytes + cost > self.budget {
            let Some((k, old)) = self.map.pop_lru() else {
                break;
            };
            self.bytes -= old.cost(&k);
            self.evictions += 1;
        }
        if self.bytes + cost <= self.budget {
            self.bytes += cost;
            self.map.put(key.into(), entry.clone());
        }
        Ok(entry)
    }
}
