//! Sockets across the system, for connection capacity: ephemeral ports in use per destination
//! (against `ip_local_port_range`), and from one pass over `/proc/*/fd` the processes with the
//! most open files and the owner of each listening socket (as `ss -lntp` shows it).

use crate::paths;
use procfs_core::net::{TcpNetEntries, TcpState};
use procfs_core::{ExplicitSystemInfo, FromReadSI};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

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
    use netlink_packet_sock_diag::inet::StateFlags;
    let mut pairs = Vec::new();
    super::listeners::inet_diag_dump(StateFlags::all() - StateFlags::LISTEN, |h| {
        let id = &h.socket_id;
        pairs.push((
            SocketAddr::new(id.source_address, id.source_port),
            SocketAddr::new(id.destination_address, id.destination_port),
        ));
    })?;
    Ok(count_destinations(pairs, range))
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

/// One pass over every process's fds: counts, and owners of the sockets in `wanted`.
pub fn owners(root: &Path, wanted: &HashSet<u64>, top: usize) -> Owners {
    let mut out = Owners::default();
    let Ok(rd) = std::fs::read_dir(paths::under(root, paths::PROC)) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            out.unreadable += 1;
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        let mut n = 0;
        for fd in fds.flatten() {
            n += 1;
            if wanted.is_empty() {
                continue;
            }
            let inode = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| socket_inode(&l.to_string_lossy()));
            if let Some(i) = inode.filter(|i| wanted.contains(i)) {
                let v = out.sockets.entry(i).or_default();
                if !v.iter().any(|(p, _)| *p == pid) {
                    v.push((pid, comm.clone()));
                }
            }
        }
        out.top_fds.push(FdUser {
            pid,
            comm,
            open_fds: n,
        });
    }
    out.top_fds
        .sort_by(|a, b| b.open_fds.cmp(&a.open_fds).then(a.pid.cmp(&b.pid)));
    out.top_fds.truncate(top);
    out
}
