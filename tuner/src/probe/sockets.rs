//! Sockets across the system, for connection capacity: ephemeral ports in use per destination
//! (against `ip_local_port_range`), and from one pass over `/proc/*/fd` the processes with the
//! most open files and the owner of each listening socket (as `ss -lntp` shows it).

use crate::paths;
use procfs_core::net::{TcpNetEntries, TcpState};
use procfs_core::{ExplicitSystemInfo, FromRead, FromReadSI};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Outgoing connections from one local address to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub local: IpAddr,
    pub remote: SocketAddr,
    /// Sockets using an ephemeral local port toward it (any state but LISTEN).
    pub ports: u64,
}

/// Destinations by ephemeral ports in use, most first, from `/proc/net/tcp` and `tcp6` texts.
pub fn ports_per_destination(
    texts: &[&str],
    range: (u16, u16),
) -> anyhow::Result<Vec<Destination>> {
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let mut pairs = Vec::new();
    for t in texts {
        let entries = TcpNetEntries::from_read(t.as_bytes(), &info).map_err(super::procfs_error)?;
        pairs.extend(
            entries
                .0
                .into_iter()
                .filter(|e| e.state != TcpState::Listen)
                .map(|e| (e.local_address, e.remote_address)),
        );
    }
    Ok(count_destinations(pairs, range))
}

/// The same from the kernel's inet_diag dump of every non-listening TCP socket (the live
/// root): linear in the sockets, where /proc/net/tcp's walk is not.
pub fn ports_per_destination_netlink(range: (u16, u16)) -> anyhow::Result<Vec<Destination>> {
    Ok(count_destinations(ephemeral_sockets_netlink(range)?, range))
}

/// (local, remote) of the live kernel's non-listening TCP sockets on a local port in `range`,
/// by sock_diag, the kernel keeping the others to itself.
pub fn ephemeral_sockets_netlink(
    range: (u16, u16),
) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    use netlink_packet_sock_diag::inet::StateFlags;
    let mut pairs = Vec::new();
    super::listeners::inet_diag_dump(StateFlags::all() - StateFlags::LISTEN, Some(range), |h| {
        let id = &h.socket_id;
        pairs.push((
            SocketAddr::new(id.source_address, id.source_port),
            SocketAddr::new(id.destination_address, id.destination_port),
        ));
    })?;
    Ok(pairs)
}

/// (local, remote) pairs of non-listening sockets to destinations by ephemeral ports used.
fn count_destinations(
    pairs: impl IntoIterator<Item = (SocketAddr, SocketAddr)>,
    range: (u16, u16),
) -> Vec<Destination> {
    let mut counts: HashMap<(IpAddr, SocketAddr), u64> = HashMap::new();
    for (local, remote) in pairs {
        if local.port() < range.0 || local.port() > range.1 {
            continue;
        }
        *counts.entry((local.ip(), remote)).or_default() += 1;
    }
    let mut out: Vec<Destination> = counts
        .into_iter()
        .map(|((local, remote), ports)| Destination {
            local,
            remote,
            ports,
        })
        .collect();
    out.sort_by(|a, b| b.ports.cmp(&a.ports).then(a.remote.cmp(&b.remote)));
    out
}

/// A process and its open files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdUser {
    pub pid: u32,
    pub comm: String,
    pub open_fds: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Owners {
    /// Processes with the most open files, most first (Netdata's per-application view).
    pub top_fds: Vec<FdUser>,
    /// Socket inode -> owning processes (pid, comm).
    pub sockets: BTreeMap<u64, Vec<(u32, String)>>,
    /// Processes whose fds could not be listed (another user's, without root).
    pub unreadable: u64,
}

/// `socket:[12345]` -> 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// How often the owners of listening sockets are looked for in every process's fds even
/// when nothing says they moved: what a sample cannot see cheaply (a descriptor passed to a
/// running process over a Unix socket) is at most this old.
pub const FULL_PASS_EVERY: Duration = Duration::from_secs(60);

/// What the last samples learned of who holds the listening sockets, so the next one reads
/// only what may have changed. Finding an owner takes a readlink of every descriptor of every
/// process (as `ss -p` does): 0.6 s of system time per sample with 114,000 sockets open here,
/// more than half a CPU for `watch` at its default 1 s, on the very box it watches. Kept: each
/// holder's (pid, fd), checked with one readlink per sample, and each process's start time.
/// A process not seen before (or a pid reused) has its descriptors read; a listener not seen
/// before, a holder that moved, and every `FULL_PASS_EVERY`, a full pass.
#[derive(Debug, Default)]
pub struct OwnerMemo {
    /// pid -> its start time (`/proc/PID/stat`), when readable: a reused pid is a new process.
    started: HashMap<u32, u64>,
    /// Socket inode -> the (pid, fd) that held it.
    held: HashMap<u64, Vec<(u32, u32)>>,
    /// When the last full pass was made, and the sockets it looked for.
    full: Option<(Instant, HashSet<u64>)>,
    /// readlink calls made, over the memo's life.
    pub links_read: u64,
}

impl OwnerMemo {
    fn full_pass_due(&self, wanted: &HashSet<u64>, now: Instant) -> bool {
        match &self.full {
            None => true,
            Some((at, looked_for)) => {
                now.duration_since(*at) >= FULL_PASS_EVERY || !wanted.is_subset(looked_for)
            }
        }
    }

    fn link(&mut self, path: &Path) -> Option<u64> {
        self.links_read += 1;
        std::fs::read_link(path)
            .ok()
            .and_then(|l| socket_inode(&l.to_string_lossy()))
    }

    /// Read every descriptor of `pid`, recording those that hold a socket in `wanted`.
    fn scan(&mut self, fd_dir: &Path, pid: u32, wanted: &HashSet<u64>) {
        for v in self.held.values_mut() {
            v.retain(|(p, _)| *p != pid);
        }
        let Ok(fds) = std::fs::read_dir(fd_dir) else {
            return;
        };
        for e in fds.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(i) = self.link(&e.path()).filter(|i| wanted.contains(i)) {
                self.held.entry(i).or_default().push((pid, fd));
            }
        }
    }
}

/// A process's start time, in clock ticks after boot (field 22 of `/proc/PID/stat`).
fn start_time(pid_dir: &Path) -> Option<u64> {
    let f = std::fs::File::open(pid_dir.join("stat")).ok()?;
    procfs_core::process::Stat::from_read(f)
        .ok()
        .map(|s| s.starttime)
}

/// Every process's open descriptor count, and the owners of the sockets in `wanted`, with
/// what `memo` kept from the samples before (see `OwnerMemo`).
pub fn owners(root: &Path, wanted: &HashSet<u64>, top: usize, memo: &mut OwnerMemo) -> Owners {
    let mut out = Owners::default();
    let Ok(rd) = std::fs::read_dir(paths::under(root, paths::PROC)) else {
        return out;
    };
    let now = Instant::now();
    let mut full = !wanted.is_empty() && memo.full_pass_due(wanted, now);
    let mut started = HashMap::new();
    let mut comms = HashMap::new();
    let mut to_scan = Vec::new();
    let mut all = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = e.path();
        let Ok(n) = super::fds::count_open(&dir.join("fd")) else {
            out.unreadable += 1;
            continue;
        };
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        let start = start_time(&dir);
        let known = start.is_some() && memo.started.get(&pid) == start.as_ref();
        if let Some(t) = start {
            started.insert(pid, t);
        }
        if !wanted.is_empty() {
            all.push(pid);
            if !known {
                to_scan.push(pid);
            }
        }
        out.top_fds.push(FdUser {
            pid,
            comm: comm.clone(),
            open_fds: n,
        });
        comms.insert(pid, comm);
    }
    if !full {
        // Holders still where they were; those that are not are read again.
        memo.held.retain(|i, _| wanted.contains(i));
        let held_before: Vec<u64> = memo.held.keys().copied().collect();
        let kept: Vec<(u64, u32, u32)> = memo
            .held
            .iter()
            .flat_map(|(i, v)| v.iter().map(move |(p, fd)| (*i, *p, *fd)))
            .collect();
        for (i, pid, fd) in kept {
            let gone = !started.contains_key(&pid) || to_scan.contains(&pid);
            let path = paths::under(root, &paths::pid(pid, &format!("fd/{fd}")));
            if gone || memo.link(&path) != Some(i) {
                if let Some(v) = memo.held.get_mut(&i) {
                    v.retain(|h| *h != (pid, fd));
                }
                if started.contains_key(&pid) && !to_scan.contains(&pid) {
                    to_scan.push(pid);
                }
            }
        }
        for &pid in &to_scan {
            let fd_dir = paths::under(root, &paths::pid(pid, "fd"));
            memo.scan(&fd_dir, pid, wanted);
        }
        // A listener that lost every holder it had is held by someone not read since.
        full = held_before
            .iter()
            .any(|i| memo.held.get(i).is_none_or(|v| v.is_empty()));
    }
    if full {
        memo.held.clear();
        for &pid in &all {
            let fd_dir = paths::under(root, &paths::pid(pid, "fd"));
            memo.scan(&fd_dir, pid, wanted);
        }
    }
    memo.held.retain(|_, v| !v.is_empty());
    memo.started = started;
    if full {
        memo.full = Some((now, wanted.clone()));
    }
    for (&i, holders) in &memo.held {
        let mut pids: Vec<u32> = holders.iter().map(|(p, _)| *p).collect();
        pids.sort_unstable();
        pids.dedup();
        out.sockets.insert(
            i,
            pids.into_iter()
                .map(|p| (p, comms.get(&p).cloned().unwrap_or_default()))
                .collect(),
        );
    }
    out.top_fds
        .sort_by(|a, b| b.open_fds.cmp(&a.open_fds).then(a.pid.cmp(&b.pid)));
    out.top_fds.truncate(top);
    out
}
