//! Every raw syscall of the server, each a thin wrapper that keeps the errno: files (open
//! beneath the root with openat2, stat, pread), sockets (recv, send, sendmsg, sendfile,
//! SIOCOUTQ) and the allocator (malloc_trim). libc rather than nix because nix 0.29 has no
//! openat2 and the raw errno picks the HTTP status.

use corestream_common::sync::lock;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A file's identity as stat(2) gives it: what validators (ETag, Last-Modified) and the
/// playlist cache's freshness check are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

impl FileMeta {
    fn from_stat(st: &libc::stat) -> FileMeta {
        FileMeta {
            size: st.st_size.max(0) as u64,
            ino: st.st_ino,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
        }
    }

    pub fn mtime(&self) -> SystemTime {
        if self.mtime_sec >= 0 {
            UNIX_EPOCH
                + Duration::new(
                    self.mtime_sec as u64,
                    self.mtime_nsec.clamp(0, 999_999_999) as u32,
                )
        } else {
            UNIX_EPOCH
        }
    }
}

/// Open the media root as an O_PATH directory handle that every lookup is resolved beneath.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "root path contains a NUL byte")
    })?;
    // SAFETY: `c` is a valid NUL-terminated string; open returns a new fd or -1.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat2(2) of `rel` beneath `dir` with `flags`: the kernel refuses any resolution that
/// leaves `dir` (`..`, absolute symlinks, symlinks pointing outside) with EXDEV, and /proc
/// magic links with ELOOP.
fn openat2_beneath(
    dir: RawFd,
    rel: &CStr,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers; all-zero is its documented "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | resolve;
    // SAFETY: arguments match openat2(2): a dirfd, a NUL-terminated path, a pointer to a
    // properly initialised open_how and its size. The kernel does not keep the pointers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Open `rel` (NUL-terminated, relative) for reading beneath `root`.
pub fn open_beneath(root: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
    openat2_beneath(
        root,
        rel,
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
        0,
    )
}

/// Like `open_beneath`, and `Ok(None)` when any component of `rel` is a symlink (ELOOP
/// from RESOLVE_NO_SYMLINKS): the caller then knows whether every directory on the way is
/// a real one that a directory watch stands for.
pub fn open_beneath_no_symlinks(root: RawFd, rel: &CStr) -> io::Result<Option<OwnedFd>> {
    match openat2_beneath(
        root,
        rel,
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
        libc::RESOLVE_NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Filesystems (statfs f_type) where every change to a file or directory is made by this
/// kernel and so reaches inotify. Network and FUSE filesystems (NFS, SMB, 9p, virtiofs,
/// sshfs) change under us without events and are not listed.
const INOTIFY_COMPLETE: &[i64] = &[
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0x794C_7630, // overlayfs (changes made through the overlay)
];

/// Whether a change to the file `fd` can only happen through a name inotify reports: one
/// link only, on a filesystem of `INOTIFY_COMPLETE`.
pub fn changes_reach_inotify(fd: &OwnedFd) -> bool {
    // SAFETY: zeroed is a valid bit pattern for libc::stat and libc::statfs (plain
    // integers).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 || st.st_nlink != 1 {
        return false;
    }
    // SAFETY: as above, for statfs.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; fs is a valid out-pointer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut fs) } < 0 {
        return false;
    }
    INOTIFY_COMPLETE.contains(&(fs.f_type as i64))
}

/// Whether the running kernel has openat2 (Linux 5.6+). Checked once at start so the
/// server refuses to run rather than serving with weaker containment.
pub fn openat2_available(root: RawFd) -> bool {
    match open_beneath(root, c".") {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::ENOSYS),
    }
}

/// fstat, returning None for anything but a regular file.
pub fn regular_meta(fd: &OwnedFd) -> io::Result<Option<FileMeta>> {
    // SAFETY: zeroed is a valid bit pattern for libc::stat (plain integers).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    Ok(Some(FileMeta::from_stat(&st)))
}

/// fstatat(2) of `path` relative to `root`, following symlinks. Only ever used to confirm
/// that a file opened earlier beneath the root is still the same one.
pub fn stat_at(root: RawFd, path: &CStr) -> io::Result<FileMeta> {
    // SAFETY: zeroed is a valid bit pattern for libc::stat (plain integers).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: root is an open directory fd, path is NUL-terminated, st a valid out-pointer.
    if unsafe { libc::fstatat(root, path.as_ptr(), &mut st, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileMeta::from_stat(&st))
}

/// pread(2) into `buf` at `offset`; 0 at end of file.
pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        // SAFETY: the destination is a valid writable slice of its length; fd is open.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as libc::off_t,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Read the whole file as sized at open; a file that changes size underneath is read as
/// far as it was (the next request's stat sees the new version).
pub fn read_exact_size(fd: RawFd, size: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut off = 0usize;
    while off < buf.len() {
        let n = pread(fd, &mut buf[off..], off as u64)?;
        if n == 0 {
            buf.truncate(off);
            break;
        }
        off += n;
    }
    Ok(buf)
}

/// send(2) with MSG_NOSIGNAL, and MSG_MORE when a body follows so the head and the first
/// body bytes leave in one segment.
/// sendto(2) with no address, as a plain system call. glibc's send() and recv() are thread
/// cancellation points that bracket every call with __pthread_(dis|en)able_asynccancel,
/// 2 % of a worker's cycles on playlist hits (perf, --incoming-cpu, 100 connections); no
/// thread of this process is ever cancelled, so the wrappers buy nothing here. -1 and errno
/// on failure, like the wrappers.
///
/// # Safety
/// `buf` must be readable for `len` bytes.
unsafe fn raw_sendto(sock: RawFd, buf: *const libc::c_void, len: usize, flags: i32) -> isize {
    // SAFETY: the caller vouches for buf; the null address with length 0 is sendto's "no
    // address", as send(2) passes it.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            libc::c_long::from(sock),
            buf,
            len,
            libc::c_long::from(flags),
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::c_long,
        ) as isize
    }
}

/// recvfrom(2) with no flags and no address, as a plain system call (see `raw_sendto`).
///
/// # Safety
/// `buf` must be writable for `len` bytes.
unsafe fn raw_recvfrom(sock: RawFd, buf: *mut libc::c_void, len: usize) -> isize {
    // SAFETY: the caller vouches for buf; null address and length pointers ask for no
    // sender address, as recv(2) passes them.
    unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            libc::c_long::from(sock),
            buf,
            len,
            0 as libc::c_long,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        ) as isize
    }
}

pub fn send(sock: RawFd, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: buf is a valid readable slice for its length; no address is passed.
    let n = unsafe { raw_sendto(sock, buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// sendmsg(2) of up to two buffers in one call (a head and the in-memory body after it),
/// with MSG_NOSIGNAL, and MSG_MORE when more (a file body) follows.
pub fn send2(sock: RawFd, a: &[u8], b: &[u8], more: bool) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    // SAFETY: msghdr is plain data; all-zero means no address, no control data, no flags.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = if b.is_empty() { 1 } else { 2 };
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: msg points at two iovecs describing live, readable slices; the kernel only
    // reads them during the call.
    let n = unsafe { libc::sendmsg(sock, &msg, flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// listen(2) again on a listening socket: Linux then applies the new backlog (capped by
/// net.core.somaxconn as it is now) without closing the socket or its queue.
pub fn relisten(sock: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes an fd and an int; an fd that is not a socket fails with ENOTSOCK.
    if unsafe { libc::listen(sock, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// recv(2) into `buf` (bytes to discard: a closing connection's leftovers).
pub fn recv(sock: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable buffer of its length.
    let n = unsafe { raw_recvfrom(sock, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Bytes queued in the kernel for this socket that the peer has not acknowledged yet
/// (SIOCOUTQ), or None when the kernel cannot say.
pub fn unsent_bytes(sock: RawFd) -> Option<u32> {
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one int through the valid pointer.
    if unsafe { libc::ioctl(sock, libc::TIOCOUTQ, &mut outq) } < 0 {
        return None;
    }
    Some(outq.max(0) as u32)
}

/// The kernel's `struct tcp_info` up to `tcpi_delivery_rate` (Linux 4.9+). libc's glibc
/// binding stops before it, so the layout is spelled out here.
#[repr(C)]
#[derive(Default)]
struct TcpInfo {
    bytes: [u8; 8],
    /// rto .. total_retrans; `tcpi_rtt` (us) is index 15.
    u32s: [u32; 24],
    /// pacing_rate, max_pacing_rate, bytes_acked, bytes_received.
    u64s: [u64; 4],
    /// segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out.
    more: [u32; 6],
    delivery_rate: u64,
}

/// (delivery rate in bytes/s, smoothed RTT in us) of a TCP socket, from TCP_INFO. The rate is
/// None when the kernel is too old to report it or has not measured one yet.
pub fn tcp_rate(sock: RawFd) -> Option<(Option<u64>, u32)> {
    let mut info = TcpInfo::default();
    let mut len = std::mem::size_of::<TcpInfo>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a plain-old-data struct of
    // that size, and updates `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            sock,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut TcpInfo).cast(),
            &mut len,
        )
    };
    if rc < 0 || (len as usize) < 8 + 16 * 4 {
        return None;
    }
    let full = len as usize >= std::mem::size_of::<TcpInfo>();
    let rate = (full && info.delivery_rate > 0).then_some(info.delivery_rate);
    Some((rate, info.u32s[15]))
}

/// Ask glibc to release free heap pages (madvise) instead of keeping them for later.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe and
    // takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// recv(2) into the spare capacity of `buf`, at most `max` bytes. Returns the bytes read
/// and whether fewer came than there was room for: a stream socket's queue was then empty,
/// and with edge-triggered epoll the next bytes to arrive raise a new event, so reading
/// again now would only return EAGAIN (nginx makes the same inference).
pub fn recv_into(sock: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    // Grow only when little room is left: reserving `max` on every call would double a
    // pooled 4 KiB buffer the moment a partial head sits in it.
    if buf.capacity() - buf.len() < max / 4 {
        buf.reserve(max);
    }
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: the kernel writes at most `want` bytes into the spare capacity, which is
    // valid writable memory owned by `buf`.
    let n = unsafe { raw_recvfrom(sock, spare.as_mut_ptr().cast(), want) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised exactly n bytes after the current length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok((n, n < want))
}

/// sendfile(2) from `file` at `*offset`, advancing it. Returns bytes sent (0 means the file
/// ended early: it shrank since we opened it).
pub fn sendfile(sock: RawFd, file: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both fds are open; `off` is a valid in/out pointer for the call.
    let n = unsafe { libc::sendfile(sock, file, &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    Ok(n as usize)
}

/// How often a worker may look whether the root directory was deleted (one fstat).
const ROOT_CHECK_EVERY: Duration = Duration::from_millis(250);

/// The media root as a handle that follows the path when the directory is deleted and
/// recreated (a packager's `rm -rf ROOT && mkdir ROOT`). An O_PATH fd keeps naming the
/// deleted directory forever, so without this every request would be 404 until a restart.
pub struct Root {
    path: PathBuf,
    current: AtomicI32,
    /// Every handle ever opened stays open: a worker may be resolving beneath an old one
    /// right now, and closing it could hand its number to an unrelated file. One fd per
    /// recreation of the root, which is rare.
    handles: Mutex<Vec<OwnedFd>>,
    born: Instant,
    /// Milliseconds after `born` of the last check, shared by all workers.
    last_check_ms: AtomicU64,
}

impl Root {
    pub fn new(path: PathBuf, fd: OwnedFd) -> Root {
        let current = AtomicI32::new(fd.as_raw_fd());
        Root {
            path,
            current,
            handles: Mutex::new(vec![fd]),
            born: Instant::now(),
            last_check_ms: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cheap enough for every event-loop turn: at most one fstat per 250 ms across all
    /// workers. If the current directory has been deleted and a directory exists at the
    /// path again, switch to it and return true.
    pub fn refresh_if_deleted(&self) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now < last + ROOT_CHECK_EVERY.as_millis() as u64
            || self
                .last_check_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.reopen_if_deleted()
    }

    /// The check itself, without rate limit.
    pub fn reopen_if_deleted(&self) -> bool {
        // SAFETY: zeroed is a valid bit pattern for libc::stat (plain integers).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open (every handle is kept for the life of Root); st is a
        // valid out-pointer.
        if unsafe { libc::fstat(self.as_raw_fd(), &mut st) } < 0 || st.st_nlink > 0 {
            return false;
        }
        let Ok(fd) = open_root(&self.path) else {
            return false; // Not back yet.
        };
        let mut handles = lock(&self.handles);
        self.current.store(fd.as_raw_fd(), Ordering::Release);
        handles.push(fd);
        say!(
            "corestream: --root {} was deleted and recreated; serving the new directory",
            self.path.display()
        );
        true
    }
}

impl AsRawFd for Root {
    fn as_raw_fd(&self) -> RawFd {
        self.current.load(Ordering::Acquire)
    }
}

// Writes beneath the root, for the ingest plane.

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Open the directory `rel` (NUL-terminated, relative, "." for `dir` itself) beneath `dir`
/// as an O_PATH handle, resolved like every read.
pub fn open_dir_beneath(dir: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
    openat2_beneath(dir, rel, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// mkdirat(2) of the single name `name` in `dir`.
pub fn mkdir_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: dir is an open directory fd and name a NUL-terminated string.
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) }).map(drop)
}

/// An unnamed regular file in `dir` (O_TMPFILE), readable and writable: nothing of it is
/// visible under any name until `link_at` gives it one, and it vanishes with its last fd.
pub fn open_tmpfile(dir: RawFd) -> io::Result<OwnedFd> {
    open_at(dir, c".", libc::O_TMPFILE | libc::O_RDWR)
}

/// Create `name` in `dir`, which must not exist yet (O_EXCL, no symlink followed).
pub fn open_new_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    open_at(
        dir,
        name,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
    )
}

/// Open the existing file `name` in `dir` for reading and writing (no symlink followed).
pub fn open_rw_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    open_at(dir, name, libc::O_RDWR | libc::O_NOFOLLOW)
}

/// openat(2) of `name` in `dir` with `flags` (and O_CLOEXEC), mode 0644 for what it creates.
fn open_at(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: dir is an open directory fd and name a NUL-terminated string.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Give the open file `fd` the name `name` in `dir` (linkat through /proc/self/fd, which
/// needs no capability, unlike AT_EMPTY_PATH).
pub fn link_at(fd: RawFd, dir: RawFd, name: &CStr) -> io::Result<()> {
    let proc = std::ffi::CString::new(format!("/proc/self/fd/{fd}"))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both paths are NUL-terminated; dir is an open directory fd.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            dir,
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// renameat(2) within one directory: atomic for every reader of `to`.
pub fn rename_at(dir: RawFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: dir is an open directory fd and both names NUL-terminated strings.
    cvt(unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) }).map(drop)
}

/// unlinkat(2) of a file (not a directory).
pub fn unlink_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: dir is an open directory fd and name a NUL-terminated string.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) }).map(drop)
}

/// lstat of `name` in `dir`: (is a directory, exists).
pub fn kind_at(dir: RawFd, name: &CStr) -> io::Result<bool> {
    // SAFETY: zeroed is a valid bit pattern for libc::stat (plain integers).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir is open, name NUL-terminated, st a valid out-pointer.
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// fsetxattr(2): attach `value` to the open file under `name` (a `user.` attribute).
pub fn set_xattr(fd: RawFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: name is NUL-terminated, value a valid readable slice of its length.
    let r = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// fgetxattr(2): the value of the open file's attribute `name`, if it is at most `max` bytes.
pub fn get_xattr(fd: RawFd, name: &CStr, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    // SAFETY: name is NUL-terminated; buf is a valid writable buffer of its length.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// pwrite(2) all of `buf` at `offset`.
pub fn pwrite_all(fd: RawFd, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice of its length; fd is open for writing.
        let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        buf = &buf[n as usize..];
        offset += n as u64;
    }
    Ok(())
}

/// flock(2) without waiting: Ok(true) if taken, Ok(false) if another open file holds a
/// conflicting lock.
pub fn try_flock(fd: RawFd, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: fd is an open descriptor; flock takes no pointers.
    match cvt(unsafe { libc::flock(fd, op) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Size of an open file.
pub fn size_of(fd: RawFd) -> io::Result<u64> {
    // SAFETY: zeroed is a valid bit pattern for libc::stat (plain integers).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_size.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_follows_a_deleted_and_recreated_directory() {
        let dir = std::env::temp_dir().join(format!("corestream-fsys-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.ts"), b"old").unwrap();
        let root = Root::new(dir.clone(), open_root(&dir).unwrap());
        let first = root.as_raw_fd();
        assert!(open_beneath(root.as_raw_fd(), c"a.ts").is_ok());
        assert!(!root.reopen_if_deleted(), "a live root is kept");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!root.reopen_if_deleted(), "nothing to switch to yet");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.ts"), b"new").unwrap();
        // The rate limit: a check right after construction is skipped.
        assert!(!root.refresh_if_deleted());
        std::thread::sleep(ROOT_CHECK_EVERY);
        assert!(root.refresh_if_deleted());
        assert_ne!(root.as_raw_fd(), first);
        let f = open_beneath(root.as_raw_fd(), c"a.ts").unwrap();
        let mut buf = [0u8; 3];
        // SAFETY: f is open; buf is valid for 3 bytes.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), 3) };
        assert_eq!(n, 3);
        assert_eq!(&buf, b"new");
        // The old handle stays open (no fd reuse under a worker's feet).
        // SAFETY: fcntl F_GETFD on a number we expect to be open.
        assert!(unsafe { libc::fcntl(first, libc::F_GETFD) } >= 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
