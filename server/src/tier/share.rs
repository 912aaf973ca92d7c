//! One upstream request per object per box, when several corestream processes serve one port
//! (SO_REUSEPORT) from one `--cache-dir`: the process that fetches an object writes it into
//! `<cache-dir>/shared/<key>.part` and holds an exclusive flock on it; the others find that
//! file, follow it as it grows (inotify on the directory: each write is a modify event) and
//! serve its bytes to their own viewers. The fetching process publishes the object's
//! freshness in `<key>.meta` and renames `.part` to `.done` when it is complete (deletes it
//! when the fetch fails); a `.done` stays a few seconds so that a process that asks just
//! after takes it too. A leader whose fetch panicked withdraws its `.part` as it unwinds; one
//! that dies leaves it unlocked: followers notice within a second and give up on it, and the
//! next request fetches again.

use super::{Entry, Job, Tier};
use crate::ingest::store::Upload;
use crate::live::growing::{Growing, State};
use crate::net::fsys;
use crate::shared::Shared;
use bytes::Bytes;
use corestream_common::sync::lock;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The origin's fields for viewers (`fetch::encode_fields`), on the shared file from before
/// its first byte: the other processes' viewers get them while the object arrives.
pub const PASSED_XATTR: &CStr = c"user.corestream.passed";

/// The `Age` the origin's answer came with, in seconds (when not 0), beside `PASSED_XATTR`.
pub const AGE_XATTR: &CStr = c"user.corestream.age";

/// How long a completed `.done` (and its `.meta`) stays for processes that ask just after.
const KEEP_DONE: Duration = Duration::from_secs(10);

/// What `claim` decided.
pub enum Claim {
    /// Fetch it: this process writes into the shared file.
    Lead(Lead),
    /// Another process is fetching it: the watcher thread will finish the job.
    Follow,
    /// Another process fetched it a moment ago: it is stored here now.
    Adopted,
    /// Sharing is not possible (a file system error): fetch it for this process alone.
    Alone,
}

/// The shared file of an object this process fetches. Dropped without `Share::finish` (the
/// fetch panicked, `crate::fault`), it withdraws the file: its followers stop at once, as
/// for any failed fetch, instead of waiting to find the lock gone.
pub struct Lead {
    /// Opened through its shared name (the bytes are written through this one).
    pub file: OwnedFd,
    /// The descriptor holding the exclusive lock that says "being fetched".
    _lock: OwnedFd,
    name: String,
    /// The shared directory (a duplicate: a Lead lives on its fetch thread's stack).
    dir: OwnedFd,
    finished: bool,
}

impl Drop for Lead {
    fn drop(&mut self) {
        // The lock is still held here (fields drop after this), so the name is still ours.
        if !self.finished {
            if let Some(part) = cname(&format!("{}.part", self.name)) {
                let _ = fsys::unlink_at(self.dir.as_raw_fd(), &part);
            }
        }
    }
}

/// An object another process fetches, followed here.
struct Follow {
    key: Box<[u8]>,
    path: Vec<u8>,
    job_kind: crate::http::mime::Kind,
    content_type: &'static str,
    file: OwnedFd,
    growing: Option<Arc<Growing>>,
    since: Instant,
}

pub struct Share {
    dir: OwnedFd,
    inotify: Inotify,
    follows: Mutex<HashMap<String, Follow>>,
}

/// Freshness of a completed object, as the fetching process wrote it.
pub struct Meta {
    pub lifetime: Duration,
    pub age: Duration,
    pub etag: Option<Vec<u8>>,
    pub last_modified: Option<Vec<u8>>,
    /// The origin's freshness fields for viewers (`fetch::encode_fields`).
    pub passed: Option<Bytes>,
    /// False: complete, but not to be kept (`no-store`, `private`, over --cache-max-bytes).
    /// The followers' viewers get it whole; no process stores or adopts it.
    pub stored: bool,
}

/// Bytes from the hex digits `finish` wrote.
fn unhex(v: &[u8]) -> Option<Vec<u8>> {
    if !v.len().is_multiple_of(2) {
        return None;
    }
    v.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

fn cname(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

/// The file-name stem of a key: 32 hex digits of two independent hashes.
fn stem(key: &[u8]) -> String {
    let a = super::origin::stable_hash(&[b"a", key]);
    let b = super::origin::stable_hash(&[b"b", key]);
    format!("{a:016x}{b:016x}")
}

impl Share {
    /// `<cache-dir>/shared`, watched for the files other processes write.
    pub fn open(cache_dir: &std::path::Path) -> Result<Share, String> {
        let path: PathBuf = cache_dir.join("shared");
        let fix = |e: std::io::Error| format!("cannot use {}: {e}", path.display());
        std::fs::create_dir_all(&path).map_err(fix)?;
        let dir = fsys::open_root(&path).map_err(fix)?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| fix(e.into()))?;
        inotify
            .add_watch(
                &path,
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_DELETE,
            )
            .map_err(|e| fix(e.into()))?;
        Ok(Share {
            dir,
            inotify,
            follows: Mutex::new(HashMap::new()),
        })
    }

    /// Decide who fetches `job` on this box.
    pub fn claim(&self, t: &Tier, shared: &Shared, job: &Job) -> Claim {
        let stem = stem(&job.key);
        let part = format!("{stem}.part");
        let Some(cpart) = cname(&part) else {
            return Claim::Alone;
        };
        let dir = self.dir.as_raw_fd();
        for _ in 0..3 {
            // Lead: a locked unnamed file, then its name (atomic: whoever links first leads).
            let Ok(file) = fsys::open_tmpfile(dir) else {
                return Claim::Alone;
            };
            if !matches!(fsys::try_flock(file.as_raw_fd(), true), Ok(true)) {
                return Claim::Alone;
            }
            match fsys::link_at(file.as_raw_fd(), dir, &cpart) {
                Ok(()) => {
                    // Write through the name: inotify reports writes to the directory's
                    // watchers only for files opened through it (not an O_TMPFILE).
                    return match (fsys::open_rw_at(dir, &cpart), self.dir.try_clone()) {
                        (Ok(named), Ok(dir)) => Claim::Lead(Lead {
                            file: named,
                            _lock: file,
                            name: stem,
                            dir,
                            finished: false,
                        }),
                        _ => {
                            let _ = fsys::unlink_at(dir, &cpart);
                            Claim::Alone
                        }
                    };
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(_) => return Claim::Alone,
            }
            // Someone has it: a live leader holds its lock.
            let theirs = match fsys::open_beneath(dir, &cpart) {
                Ok(f) => f,
                Err(_) => {
                    if self.adopt(t, &stem, &job.path) {
                        return Claim::Adopted;
                    }
                    continue;
                }
            };
            match fsys::try_flock(theirs.as_raw_fd(), false) {
                Ok(false) => {
                    self.follow(t, shared, job, part, theirs);
                    return Claim::Follow;
                }
                // Unlocked: its process died mid-fetch. Clear that file, not a new leader's
                // that took the name meanwhile: hold its lock (another process clearing it
                // now sees it taken) and unlink the name only if it still is this file.
                _ => {
                    let mine = fsys::try_flock(theirs.as_raw_fd(), true);
                    let same = || {
                        let named = fsys::stat_at(dir, &cpart).map(|m| m.ino);
                        let held = fsys::regular_meta(&theirs).map(|m| m.map(|m| m.ino));
                        matches!((named, held), (Ok(a), Ok(Some(b))) if a == b)
                    };
                    if matches!(mine, Ok(true)) && same() {
                        let _ = fsys::unlink_at(dir, &cpart);
                    }
                }
            }
        }
        Claim::Alone
    }

    /// Take a `.done` another process completed a moment ago, if it is still fresh.
    fn adopt(&self, t: &Tier, stem: &str, path: &[u8]) -> bool {
        let dir = self.dir.as_raw_fd();
        let (Some(done), Some(meta)) = (cname(&format!("{stem}.done")), self.meta(stem)) else {
            return false;
        };
        if !meta.stored {
            // Not to be reused: this request fetches again.
            return false;
        }
        let Ok(file) = fsys::open_beneath(dir, &done) else {
            return false;
        };
        self.store(t, path, file, meta)
    }

    fn meta(&self, stem: &str) -> Option<Meta> {
        let name = cname(&format!("{stem}.meta"))?;
        let f = fsys::open_beneath(self.dir.as_raw_fd(), &name).ok()?;
        let size = fsys::size_of(f.as_raw_fd()).ok()?;
        let text = fsys::read_exact_size(f.as_raw_fd(), size.min(64 * 1024)).ok()?;
        let mut m = Meta {
            lifetime: Duration::ZERO,
            age: Duration::ZERO,
            etag: None,
            last_modified: None,
            passed: None,
            stored: true,
        };
        for line in text.split(|&b| b == b'\n') {
            let Some(sp) = line.iter().position(|&b| b == b' ') else {
                continue;
            };
            let (k, v) = line.split_at(sp);
            let v = &v[1..];
            let num = || std::str::from_utf8(v).ok()?.parse::<u64>().ok();
            match k {
                b"lifetime_ms" => m.lifetime = Duration::from_millis(num()?),
                b"age_s" => m.age = Duration::from_secs(num()?),
                b"etag" => m.etag = Some(v.to_vec()),
                b"last_modified" => m.last_modified = Some(v.to_vec()),
                // Hex: the block has line ends of its own.
                b"passed" => m.passed = Some(unhex(v)?.into()),
                b"stored" => m.stored = v != b"0",
                _ => {}
            }
        }
        Some(m)
    }

    /// Put a complete shared object into this process's cache.
    fn store(&self, t: &Tier, path: &[u8], file: OwnedFd, meta: Meta) -> bool {
        let Ok(size) = fsys::size_of(file.as_raw_fd()) else {
            return false;
        };
        let Ok(up) = Upload::with_file(t.cache_fd.as_raw_fd(), path, file, size) else {
            return false;
        };
        if up.commit().is_err() {
            return false;
        }
        t.store(
            path,
            Entry {
                size,
                stored: Instant::now(),
                age: meta.age,
                lifetime: meta.lifetime,
                etag: meta.etag,
                last_modified: meta.last_modified,
                passed: meta.passed,
            },
        );
        true
    }

    fn follow(&self, t: &Tier, shared: &Shared, job: &Job, part: String, file: OwnedFd) {
        let f = Follow {
            key: job.key.clone(),
            path: job.path.clone(),
            job_kind: job.kind,
            content_type: job.content_type,
            file,
            growing: None,
            since: Instant::now(),
        };
        lock(&self.follows).insert(part.clone(), f);
        // It may have moved on before the watch saw us: look once now.
        self.progress(t, shared, &part);
        let exists =
            cname(&part).is_some_and(|c| fsys::open_beneath(self.dir.as_raw_fd(), &c).is_ok());
        if !exists {
            self.end(t, shared, &part, true);
        }
    }

    /// The leader is done: publish `meta` and the complete file, or withdraw the file.
    pub fn finish(&self, mut lead: Lead, meta: Option<Meta>) {
        lead.finished = true;
        let dir = self.dir.as_raw_fd();
        let stem = std::mem::take(&mut lead.name);
        let (Some(part), Some(done), Some(mname)) = (
            cname(&format!("{stem}.part")),
            cname(&format!("{stem}.done")),
            cname(&format!("{stem}.meta")),
        ) else {
            return;
        };
        let Some(m) = meta else {
            let _ = fsys::unlink_at(dir, &part);
            return;
        };
        let mut text = format!(
            "lifetime_ms {}\nage_s {}\nstored {}\n",
            m.lifetime.as_millis(),
            m.age.as_secs(),
            u8::from(m.stored)
        )
        .into_bytes();
        if let Some(p) = &m.passed {
            text.extend_from_slice(b"passed ");
            for b in p.iter() {
                text.extend_from_slice(format!("{b:02x}").as_bytes());
            }
            text.push(b'\n');
        }
        for (k, v) in [("etag", &m.etag), ("last_modified", &m.last_modified)] {
            if let Some(v) = v {
                text.extend_from_slice(k.as_bytes());
                text.push(b' ');
                text.extend_from_slice(v);
                text.push(b'\n');
            }
        }
        let published = fsys::open_tmpfile(dir).and_then(|f| {
            fsys::pwrite_all(f.as_raw_fd(), &text, 0)?;
            let _ = fsys::unlink_at(dir, &mname);
            fsys::link_at(f.as_raw_fd(), dir, &mname)
        });
        if published.is_err() || fsys::rename_at(dir, &part, &done).is_err() {
            let _ = fsys::unlink_at(dir, &part);
            return;
        }
        let dir = match self.dir.try_clone() {
            Ok(d) => d,
            Err(_) => return,
        };
        std::thread::spawn(move || {
            std::thread::sleep(KEEP_DONE);
            let _ = fsys::unlink_at(dir.as_raw_fd(), &done);
            let _ = fsys::unlink_at(dir.as_raw_fd(), &mname);
        });
    }

    /// New bytes in a followed file: serve them (registering the object on its first bytes).
    fn progress(&self, _t: &Tier, shared: &Shared, part: &str) {
        let mut m = lock(&self.follows);
        let Some(f) = m.get_mut(part) else {
            return;
        };
        let Ok(size) = fsys::size_of(f.file.as_raw_fd()) else {
            return;
        };
        if f.growing.is_none() && size > 0 {
            if let Ok(fd) = f.file.try_clone() {
                let g = Arc::new(
                    // Set by the leader before its first byte (where the file system keeps
                    // user attributes; elsewhere the edge's own Cache-Control until the
                    // object is complete and its metadata says).
                    Growing::new(fd, f.content_type, f.job_kind, None, shared.cfg.workers).pulled(
                        fsys::get_xattr(f.file.as_raw_fd(), PASSED_XATTR, super::fetch::MAX_PASSED)
                            .ok()
                            .map(Bytes::from),
                        fsys::get_xattr(f.file.as_raw_fd(), AGE_XATTR, 20)
                            .ok()
                            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
                            .map_or(Duration::ZERO, Duration::from_secs),
                    ),
                );
                shared.growing.begin(&f.path, g.clone());
                f.growing = Some(g);
            }
        }
        if let Some(g) = &f.growing {
            shared.growing.wrote(g, size);
        }
    }

    /// A followed file is complete (`ok`) or withdrawn.
    fn end(&self, t: &Tier, shared: &Shared, part: &str, ok: bool) {
        let Some(f) = lock(&self.follows).remove(part) else {
            return;
        };
        let stem = part.trim_end_matches(".part");
        let meta = if ok { self.meta(stem) } else { None };
        let complete = match (meta, f.file.try_clone()) {
            (Some(meta), Ok(fd)) => {
                let size = fsys::size_of(fd.as_raw_fd());
                if let (Some(g), Ok(size)) = (&f.growing, &size) {
                    shared.growing.wrote(g, *size);
                }
                if meta.stored {
                    self.store(t, &f.path, fd, meta)
                } else {
                    // Whole, but not to be kept: its viewers here get it all the same (they
                    // were closed as for a failed fetch).
                    if let Ok(size) = size {
                        super::fetch::hand_to_waiters(
                            t,
                            &f.key,
                            (f.job_kind, meta.passed.clone()),
                            fd.as_raw_fd(),
                            size,
                        );
                    }
                    size.is_ok()
                }
            }
            _ => false,
        };
        if let Some(g) = &f.growing {
            let state = if complete {
                State::Complete
            } else {
                State::Aborted
            };
            shared.growing.end(&f.path, g, state);
        }
        t.done(&f.key);
        shared
            .inboxes
            .changed(std::slice::from_ref(&f.key.to_vec()));
    }

    /// The watcher: inotify events on the shared directory, and once a second a check that
    /// every followed file still has a live leader.
    pub fn run(self: Arc<Self>, t: Arc<Tier>, shared: Arc<Shared>) {
        let fd = self.inotify.as_fd().as_raw_fd();
        loop {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            unsafe { libc::poll(&mut p, 1, 1000) };
            if let Ok(events) = self.inotify.read_events() {
                for ev in events {
                    let Some(name) = ev.name.as_ref().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if !name.ends_with(".part") {
                        continue;
                    }
                    if ev.mask.contains(AddWatchFlags::IN_MODIFY) {
                        self.progress(&t, &shared, name);
                    } else if ev.mask.contains(AddWatchFlags::IN_MOVED_FROM) {
                        self.end(&t, &shared, name, true);
                    } else if ev.mask.contains(AddWatchFlags::IN_DELETE) {
                        self.end(&t, &shared, name, false);
                    }
                }
            }
            // A leader that died holds no lock: its followers stop waiting.
            let orphans: Vec<String> = lock(&self.follows)
                .iter()
                .filter(|(_, f)| {
                    f.since.elapsed() > Duration::from_secs(1)
                        && matches!(fsys::try_flock(f.file.as_raw_fd(), false), Ok(true))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for name in orphans {
                // Renamed to .done already: complete, its event just not read yet.
                let gone = cname(&name)
                    .is_none_or(|c| fsys::open_beneath(self.dir.as_raw_fd(), &c).is_err());
                self.end(&t, &shared, &name, gone);
            }
        }
    }
}
