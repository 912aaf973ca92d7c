//! Which network namespace this process is in: the host's (initial) one, a child (a container,
//! `unshare -n`), or unknown. Outside the initial namespace `/sys/class/net`, `/proc/irq` and
//! `/etc` still show the host's, so device and persistent writes from there change the host.
//!
//! Evidence, strongest first:
//! 1. The kernel registers the global `net.core` tables (netdev_max_backlog, ...) only for the
//!    initial namespace: `somaxconn` visible without `netdev_max_backlog` means a child.
//! 2. Since Linux 6.18 the initial namespace has a fixed inode, PROC_NET_INIT_INO (0xEFFFFFF9),
//!    readable as the target of `/proc/self/ns/net` (`net:[4026531833]`); dynamically numbered
//!    namespaces start at 0xF0000000, so equality is proof.
//! 3. In the initial PID namespace (fixed inode PROC_PID_INIT_INO since 3.8), `/proc/1` is the
//!    real init: the same `ns/net` as it means the initial namespace, a different one a child.
//!    `/proc/1/ns/net` is unreadable even to root on some machines (this one).
//!
//! A captured tree may hold the link's text in a regular file instead of a symlink.

use crate::{paths, sysctl};
use serde::Serialize;
use std::path::Path;

pub const PROC_NET_INIT_INO: u64 = 0xEFFF_FFF9;
pub const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "netns", content = "evidence", rename_all = "kebab-case")]
pub enum Netns {
    Initial(String),
    Child(String),
    Unknown(String),
}

impl Netns {
    pub fn is_initial(&self) -> bool {
        matches!(self, Netns::Initial(_))
    }

    /// Why a host-wide write (a device, a global key, a file in /etc) is refused here, and
    /// what to run instead; `None` in the initial namespace.
    pub fn refusal(&self, what: &str, on_host: &str) -> Option<String> {
        match self {
            Netns::Initial(_) => None,
            Netns::Child(why) => Some(format!(
                "{what} would change the host, and this process runs in a child network namespace \
                 (a container or `unshare -n`: {why}); /sys/class/net, /proc/irq and /etc here are the \
                 host's. Run `{on_host}` on the host (its initial network namespace) instead"
            )),
            Netns::Unknown(why) => Some(format!(
                "{what} would change the host, and whether this is the host's network namespace cannot \
                 be told ({why}); refusing rather than guessing. Run `{on_host}` on the host"
            )),
        }
    }
}

/// `net:[4026531833]` (a link target, or a captured file holding it) to the inode number.
pub fn parse_link(text: &str) -> Option<u64> {
    let t = text.trim();
    let inner = t.split_once(":[")?.1.strip_suffix(']')?;
    inner.parse().ok()
}

fn ns_inode(root: &Path, rel: &str) -> Result<u64, String> {
    let p = paths::under(root, rel);
    let text = match std::fs::read_link(&p) {
        Ok(t) => t.to_string_lossy().into_owned(),
        Err(_) => std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
    };
    parse_link(&text).ok_or_else(|| format!("{} holds {text:?}, not `net:[N]`", p.display()))
}

pub fn detect(root: &Path) -> Netns {
    let exists = |k: &str| sysctl::path(root, k).exists();
    if exists("net.core.somaxconn") && !exists("net.core.netdev_max_backlog") {
        return Netns::Child(
            "net.core.netdev_max_backlog, which the kernel shows only in the initial namespace, is absent"
                .into(),
        );
    }
    let own = match ns_inode(root, paths::SELF_NETNS) {
        Ok(i) if i == PROC_NET_INIT_INO => {
            return Netns::Initial(format!(
                "{} is net:[{i}], the initial namespace's fixed inode",
                paths::shown(paths::SELF_NETNS)
            ))
        }
        Ok(i) => i,
        Err(e) => return Netns::Unknown(format!("cannot read the namespace link: {e}")),
    };
    let in_init_pidns = ns_inode(root, paths::SELF_PIDNS) == Ok(PROC_PID_INIT_INO);
    match ns_inode(root, paths::INIT_NETNS) {
        Ok(init) if in_init_pidns && init == own => Netns::Initial(format!(
            "same network namespace as init (pid 1 of the initial PID namespace): net:[{own}]"
        )),
        Ok(init) if init != own => Netns::Child(format!(
            "this process is in net:[{own}], pid 1 in net:[{init}]"
        )),
        Ok(_) => Netns::Unknown(format!(
            "net:[{own}] is not the fixed initial inode, and pid 1 shares it but is not the host's init"
        )),
        Err(e) => Netns::Unknown(format!(
            "net:[{own}] is not the fixed initial inode of Linux 6.18+, and pid 1's namespace cannot be compared ({e})"
        )),
    }
}
