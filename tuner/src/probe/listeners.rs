//! Listening TCP sockets with their accept queue: current length and maximum (the effective
//! backlog, min(application backlog, net.core.somaxconn)), as `ss -lnt` shows Recv-Q/Send-Q.
//!
//! Sources, in order:
//! 1. `<root>/corestream-fixtures/listeners`: output of `ss -Hlnt` captured elsewhere. Lets tests
//!    and offline analysis of a captured tree see queue maxima without a live kernel.
//! 2. sock_diag netlink (inet_diag dump of TCP LISTEN sockets, IPv4 and IPv6) when the root is
//!    `/`. Netlink answers for the network namespace the tool runs in, not for `--root`.
//! 3. `<root>/proc/net/tcp` and `tcp6` (parsed by `procfs_core`): the current queue length only,
//!    the maximum is unknown. Used for a fake root, or when netlink is refused.

use crate::paths;
use anyhow::{bail, Context};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};
use procfs_core::net::{TcpNetEntries, TcpState};
use procfs_core::{ExplicitSystemInfo, FromReadSI};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub address: SocketAddr,
    /// Connections completed and waiting in the accept queue (Recv-Q of `ss -lnt`).
    pub accept_queue: u32,
    /// Accept-queue maximum (Send-Q of `ss -lnt`); None when read from /proc/net/tcp.
    pub backlog: Option<u32>,
    /// Socket inode, to find the owning process (`None` in an `ss` capture).
    pub inode: Option<u64>,
    /// Processes holding it (pid, comm), as `ss -lntp` shows them.
    pub owners: Vec<(u32, String)>,
}

impl Listener {
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The kernel drops new connections once the queue holds more than `backlog` entries; a
    /// queue at or above the backlog is full for practical purposes.
    pub fn is_full(&self) -> bool {
        matches!(self.backlog, Some(b) if self.accept_queue >= b.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// sock_diag netlink of the current network namespace.
    Netlink,
    /// `<root>/corestream-fixtures/listeners`
    Fixture,
    /// `<root>/proc/net/tcp{,6}`: no backlog maximum.
    ProcNetTcp,
}

impl Source {
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Netlink => "sock_diag netlink (inet_diag), current network namespace",
            Source::Fixture => paths::LISTENERS_FIXTURE,
            Source::ProcNetTcp => "/proc/net/tcp and /proc/net/tcp6",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listeners {
    pub source: Source,
    pub sockets: Vec<Listener>,
    /// Why a better source was not used (e.g. netlink refused).
    pub note: Option<String>,
}

pub fn probe(root: &Path) -> anyhow::Result<Listeners> {
    let fixture = paths::under(root, paths::LISTENERS_FIXTURE);
    if fixture.exists() {
        let text = std::fs::read_to_string(&fixture)
            .with_context(|| format!("cannot read {}", fixture.display()))?;
        let sockets = parse_ss(&text).with_context(|| format!("in {}", fixture.display()))?;
        return Ok(Listeners {
            source: Source::Fixture,
            sockets,
            note: None,
        });
    }
    let mut note = None;
    if root == Path::new("/") {
        match netlink_dump() {
            Ok(sockets) => {
                return Ok(Listeners {
                    source: Source::Netlink,
                    sockets,
                    note: None,
                })
            }
            Err(e) => {
                note = Some(format!(
                    "sock_diag netlink failed ({e:#}); accept-queue maxima unknown"
                ))
            }
        }
    }
    let mut sockets = Vec::new();
    for f in [paths::NET_TCP, paths::NET_TCP6] {
        let path = paths::under(root, f);
        // tcp6 is absent when IPv6 is disabled; tcp must exist.
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if f == paths::NET_TCP6 && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        sockets
            .extend(parse_proc_net_tcp(&text).with_context(|| format!("in {}", path.display()))?);
    }
    Ok(Listeners {
        source: Source::ProcNetTcp,
        sockets,
        note,
    })
}

/// LISTEN sockets of a `/proc/net/tcp` or `tcp6` text (rx_queue is the accept-queue length).
pub fn parse_proc_net_tcp(text: &str) -> anyhow::Result<Vec<Listener>> {
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        // Addresses in /proc/net/tcp are in host byte order of the kernel that wrote them.
        is_little_endian: cfg!(target_endian = "little"),
    };
    let entries = TcpNetEntries::from_read(text.as_bytes(), &info).map_err(super::procfs_error)?;
    Ok(entries
        .0
        .into_iter()
        .filter(|e| e.state == TcpState::Listen)
        .map(|e| Listener {
            address: e.local_address,
            accept_queue: e.rx_queue,
            backlog: None,
            inode: Some(e.inode),
            owners: Vec::new(),
        })
        .collect())
}

/// LISTEN lines of `ss -Hlnt` (also accepts the header line and `ss -lnt` without -H).
pub fn parse_ss(text: &str) -> anyhow::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() || w[0] == "State" {
            continue;
        }
        if w.len() < 4 {
            bail!(
                "line {}: expected `State Recv-Q Send-Q Local:Port ...`, got {line:?}",
                i + 1
            );
        }
        if w[0] != "LISTEN" {
            continue;
        }
        let q = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("line {}: queue {s:?} is not a number", i + 1))
        };
        out.push(Listener {
            address: parse_ss_addr(w[3]).with_context(|| format!("line {}", i + 1))?,
            accept_queue: q(w[1])?,
            backlog: Some(q(w[2])?),
            inode: None,
            owners: Vec::new(),
        });
    }
    Ok(out)
}

/// `0.0.0.0:80`, `*:80`, `[::]:443`, `127.0.0.53%lo:53`, `[fe80::1]%eth0:22`.
fn parse_ss_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("address {s:?} has no :port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("port in {s:?} is not a number"))?;
    let host = host.split('%').next().unwrap_or(host);
    let ip: IpAddr = if host == "*" {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        IpAddr::V6(
            v6.parse::<Ipv6Addr>()
                .with_context(|| format!("bad IPv6 address in {s:?}"))?,
        )
    } else {
        host.parse()
            .with_context(|| format!("bad address in {s:?}"))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// inet_diag dump of TCP sockets in LISTEN state for both address families.
pub fn netlink_dump() -> anyhow::Result<Vec<Listener>> {
    let mut out = Vec::new();
    inet_diag_dump(StateFlags::LISTEN, None, |h| {
        out.push(Listener {
            address: SocketAddr::new(h.socket_id.source_address, h.socket_id.source_port),
            accept_queue: h.recv_queue,
            backlog: Some(h.send_queue),
            inode: Some(u64::from(h.inode)),
            owners: Vec::new(),
        })
    })?;
    out.sort_by_key(|l| (l.address.port(), l.address.ip()));
    Ok(out)
}

/// inet_diag dump of the TCP sockets in `states`, IPv4 then IPv6, each handed to `each`. O(n)
/// in the kernel, where reading /proc/net/tcp restarts its walk for every chunk read: at 200k
/// sockets (100k loopback connections) that read took ~9 s of wall time per sample. With
/// `local_ports`, the kernel sends only sockets whose local port is in that range (a filter
/// program, as `ss 'sport >= :LO and sport <= :HI'`): an edge's viewers, all on port 80 or
/// 443, are then walked past instead of each being described, sent and parsed.
pub fn inet_diag_dump(
    states: StateFlags,
    local_ports: Option<(u16, u16)>,
    mut each: impl FnMut(&InetResponseHeader),
) -> anyhow::Result<()> {
    let mut socket =
        Socket::new(NETLINK_SOCK_DIAG).context("socket(AF_NETLINK, NETLINK_SOCK_DIAG)")?;
    socket.bind_auto().context("bind netlink socket")?;
    socket
        .connect(&NlAddr::new(0, 0))
        .context("connect netlink socket")?;
    for (family, id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: states.clone(),
                socket_id: id,
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        if let Some((lo, hi)) = local_ports {
            append_local_port_filter(&mut buf, lo, hi);
        }
        socket.send(&buf, 0).context("send inet_diag request")?;
        'dump: loop {
            let (data, _) = socket.recv_from_full().context("receive inet_diag reply")?;
            if data.is_empty() {
                bail!("netlink socket closed mid-dump");
            }
            let mut off = 0;
            while off < data.len() {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&data[off..])
                    .map_err(|e| anyhow::anyhow!("bad inet_diag reply: {e}"))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        each(&r.header)
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) => {
                        // IPv6 may be compiled out: that family simply has no sockets.
                        if family == AF_INET6 {
                            break 'dump;
                        }
                        return Err(e.to_io()).context("kernel refused the inet_diag dump");
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }
    Ok(())
}

/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Filter operations (`enum` in linux/inet_diag.h): local port >= / <= the next op's `no`.
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;

/// Append to a serialized inet_diag request a program keeping sockets whose local port is in
/// `lo..=hi`, and fix the message length. netlink-packet-sock-diag's request has no field for
/// it. A program is a list of 4-byte ops `{code, yes, no}`: from an op the kernel moves `yes`
/// bytes on when its test holds and `no` bytes when not; a socket is kept when that ends
/// exactly at the program's end, so a `no` landing 4 bytes past the end rejects it. A
/// comparison takes two ops, the second holding the port in its `no`.
fn append_local_port_filter(buf: &mut Vec<u8>, lo: u16, hi: u16) {
    let op = |code: u8, yes: u8, no: u16| {
        let mut b = [code, yes, 0, 0];
        b[2..].copy_from_slice(&no.to_ne_bytes());
        b
    };
    let mut program = Vec::with_capacity(16);
    program.extend(op(INET_DIAG_BC_S_GE, 8, 20));
    program.extend(op(0, 0, lo));
    program.extend(op(INET_DIAG_BC_S_LE, 8, 12));
    program.extend(op(0, 0, hi));
    let attr_len = 4 + program.len() as u16;
    buf.extend(attr_len.to_ne_bytes());
    buf.extend(INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    buf.extend(program);
    let total = buf.len() as u32;
    buf[..4].copy_from_slice(&total.to_ne_bytes());
}
