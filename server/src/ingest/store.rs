//! Writing pushed objects beneath the root, so that a viewer only ever sees a complete
//! version of a name: the bytes go to a file with no name (O_TMPFILE; on filesystems
//! without it, a hidden `.corestream-ingest.*` name that viewers are never served), which is
//! linked under a hidden name and renamed over the real one once the body is complete. An
//! upload that fails leaves nothing behind, and the previous version stays in place.
//!
//! Every directory is reached by the kernel beneath the root (openat2 RESOLVE_BENEATH), one
//! component at a time when it has to be created, so no `..`, symlink or /proc link can
//! point a write outside the root.

use crate::net::fsys;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Why a store operation failed, mapped to a status by the caller.
#[derive(Debug)]
pub enum StoreError {
    /// The path runs into something that is not a directory, or the name is a directory.
    Conflict,
    /// The path leaves the root (a symlink pointing out, a magic link).
    Outside,
    /// No such file (DELETE).
    Missing,
    /// No space (ENOSPC, EDQUOT).
    Full,
    /// The file system refuses an object this large (EFBIG).
    TooLarge,
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> StoreError {
        match e.raw_os_error() {
            Some(libc::ENOTDIR | libc::EISDIR | libc::EEXIST | libc::ENOTEMPTY) => {
                StoreError::Conflict
            }
            Some(libc::EXDEV | libc::ELOOP) => StoreError::Outside,
            Some(libc::ENOENT) => StoreError::Missing,
            Some(libc::ENOSPC | libc::EDQUOT) => StoreError::Full,
            Some(libc::EFBIG) => StoreError::TooLarge,
            _ => StoreError::Io(e),
        }
    }
}

/// Split a root-relative path into its directory and its last segment.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The directory `dir` beneath `root`; created (with its parents) when `create`.
fn directory(root: RawFd, dir: &[u8], create: bool) -> Result<OwnedFd, StoreError> {
    let rel = if dir.is_empty() {
        c".".to_owned()
    } else {
        cstring(dir)?
    };
    match fsys::open_dir_beneath(root, &rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    // One component at a time, each beneath the one before.
    let mut cur = fsys::open_dir_beneath(root, c".")?;
    for comp in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let name = cstring(comp)?;
        match fsys::mkdir_at(cur.as_raw_fd(), &name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = fsys::open_dir_beneath(cur.as_raw_fd(), &name)?;
    }
    Ok(cur)
}

/// An object being written: its directory, its final name and the file holding its bytes.
pub struct Upload {
    dir: OwnedFd,
    name: CString,
    /// The hidden name of the fallback (no O_TMPFILE), removed if the upload fails.
    named_tmp: Option<CString>,
    pub file: OwnedFd,
    pub written: u64,
}

impl Upload {
    /// Start writing `path` (root-relative, already checked by `http::path::decode`).
    pub fn begin(root: RawFd, path: &[u8]) -> Result<Upload, StoreError> {
        let (dir, name) = split(path);
        let dir = directory(root, dir, true)?;
        let name = cstring(name)?;
        let (file, named_tmp) = match fsys::open_tmpfile(dir.as_raw_fd()) {
            Ok(f) => (f, None),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let tmp = hidden_name();
                (fsys::open_new_at(dir.as_raw_fd(), &tmp)?, Some(tmp))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Upload {
            dir,
            name,
            named_tmp,
            file,
            written: 0,
        })
    }

    /// Put the already open `file` (holding `written` bytes) under `path` at `commit`.
    pub fn with_file(
        root: RawFd,
        path: &[u8],
        file: OwnedFd,
        written: u64,
    ) -> Result<Upload, StoreError> {
        let (dir, name) = split(path);
        Ok(Upload {
            dir: directory(root, dir, true)?,
            name: cstring(name)?,
            named_tmp: None,
            file,
            written,
        })
    }

    /// Append body bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        fsys::pwrite_all(self.file.as_raw_fd(), data, self.written)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// The body is complete: put it in place under its name, atomically for readers.
    /// Returns whether the name existed before (a replacement, not a creation).
    pub fn commit(mut self) -> Result<bool, StoreError> {
        let dir = self.dir.as_raw_fd();
        let replaced = match fsys::kind_at(dir, &self.name) {
            Ok(true) => return Err(StoreError::Conflict),
            Ok(false) => true,
            Err(_) => false,
        };
        let tmp = match self.named_tmp.take() {
            Some(t) => t,
            None => {
                let t = hidden_name();
                fsys::link_at(self.file.as_raw_fd(), dir, &t)?;
                t
            }
        };
        if let Err(e) = fsys::rename_at(dir, &tmp, &self.name) {
            let _ = fsys::unlink_at(dir, &tmp);
            return Err(e.into());
        }
        Ok(replaced)
    }
}

impl Drop for Upload {
    /// An upload dropped before its commit leaves nothing: the unnamed file goes with its
    /// descriptor, the fallback's hidden name is removed.
    fn drop(&mut self) {
        if let Some(t) = &self.named_tmp {
            let _ = fsys::unlink_at(self.dir.as_raw_fd(), t);
        }
    }
}

/// A name viewers are never served (a dot segment), unique in the process and across
/// processes sharing the root.
fn hidden_name() -> CString {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let s = format!(".corestream-ingest.{}.{n}", std::process::id());
    CString::new(s).unwrap_or_else(|_| c".corestream-ingest".to_owned())
}

/// Remove `path` (a file) beneath the root.
pub fn delete(root: RawFd, path: &[u8]) -> Result<(), StoreError> {
    let (dir, name) = split(path);
    let dir = directory(root, dir, false)?;
    let name: &CStr = &cstring(name)?;
    if fsys::kind_at(dir.as_raw_fd(), name)? {
        return Err(StoreError::Conflict);
    }
    fsys::unlink_at(dir.as_raw_fd(), name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempdir::Dir, OwnedFd) {
        let d = tempdir::Dir::new();
        let fd = fsys::open_root(d.path()).unwrap();
        (d, fd)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "cs-store-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn listing(d: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_visible_until_commit_and_nothing_after_abort() {
        let (d, root) = root();
        let mut u = Upload::begin(root.as_raw_fd(), b"live/a/seg1.m4s").unwrap();
        u.write(b"hello ").unwrap();
        u.write(b"world").unwrap();
        assert!(listing(&d.path().join("live/a")).is_empty());
        assert!(!u.commit().unwrap());
        assert_eq!(
            std::fs::read(d.path().join("live/a/seg1.m4s")).unwrap(),
            b"hello world"
        );
        let mut u = Upload::begin(root.as_raw_fd(), b"live/a/seg1.m4s").unwrap();
        u.write(b"partial").unwrap();
        drop(u);
        assert_eq!(listing(&d.path().join("live/a")), ["seg1.m4s"]);
        assert_eq!(
            std::fs::read(d.path().join("live/a/seg1.m4s")).unwrap(),
            b"hello world"
        );
        let u = Upload::begin(root.as_raw_fd(), b"live/a/seg1.m4s").unwrap();
        assert!(u.commit().unwrap(), "a replacement");
        delete(root.as_raw_fd(), b"live/a/seg1.m4s").unwrap();
        assert!(matches!(
            delete(root.as_raw_fd(), b"live/a/seg1.m4s"),
            Err(StoreError::Missing)
        ));
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let (d, root) = root();
        let outside = tempdir::Dir::new();
        symlink(outside.path(), d.path().join("escape")).unwrap();
        assert!(matches!(
            Upload::begin(root.as_raw_fd(), b"escape/x.ts"),
            Err(StoreError::Outside)
        ));
        assert!(matches!(
            Upload::begin(root.as_raw_fd(), b"escape/deeper/x.ts"),
            Err(StoreError::Outside)
        ));
        assert!(listing(outside.path()).is_empty());
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(matches!(
            Upload::begin(root.as_raw_fd(), b"file/x.ts"),
            Err(StoreError::Conflict)
        ));
        std::fs::create_dir(d.path().join("dir")).unwrap();
        let u = Upload::begin(root.as_raw_fd(), b"dir").unwrap();
        assert!(matches!(u.commit(), Err(StoreError::Conflict)));
        assert!(matches!(
            delete(root.as_raw_fd(), b"dir"),
            Err(StoreError::Conflict)
        ));
    }
}
