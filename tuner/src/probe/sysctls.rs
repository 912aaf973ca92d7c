//! The sysctls that decide how the network stack queues and drops, read beneath `--root`, plus
//! the RPS masks per NIC receive queue (`/sys/class/net/<dev>/queues/rx-<n>/rps_cpus`).

use crate::sysctl;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys read by every sample. Missing keys (older kernels, containers) are recorded as absent.
pub const KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.rps_sock_flow_entries",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_migrate_req",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.core.default_qdisc",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_available_congestion_control",
    "net.ipv4.tcp_available_ulp",
    "net.ipv4.tcp_notsent_lowat",
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_max",
    "fs.file-max",
    "fs.nr_open",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sysctls {
    /// Key -> whitespace-normalised value; keys that could not be read are absent.
    pub values: BTreeMap<String, String>,
    pub rps: Vec<RpsQueue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpsQueue {
    pub device: String,
    pub queue: String,
    /// Hex CPU mask as the kernel prints it (`0` or `00000000` = RPS off).
    pub rps_cpus: String,
    pub rps_flow_cnt: Option<u64>,
}

impl RpsQueue {
    pub fn enabled(&self) -> bool {
        self.rps_cpus
            .chars()
            .any(|c| c.is_ascii_hexdigit() && c != '0')
    }
}

impl Sysctls {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// First integer of a key (`tcp_mem` has three: use [`Sysctls::ints`]).
    pub fn int(&self, key: &str) -> Option<i64> {
        self.ints(key)?.first().copied()
    }

    pub fn ints(&self, key: &str) -> Option<Vec<i64>> {
        self.get(key)?
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect()
    }
}

pub fn read(root: &Path) -> Sysctls {
    with_nics(root, &super::nic::read(root, None))
}

/// [`read`], taking the RPS masks from NICs already read.
pub fn with_nics(root: &Path, nics: &super::nic::Nics) -> Sysctls {
    let mut values = BTreeMap::new();
    for key in KEYS {
        if let Ok(v) = sysctl::read(root, key) {
            values.insert((*key).to_string(), v);
        }
    }
    Sysctls {
        values,
        rps: rps_queues(nics),
    }
}

/// RPS masks of every RX queue of every hardware NIC. Virtual devices (lo, ifb, veth, bridges)
/// have no `device` link and take no interrupt, so spreading their receive work is not the fix.
pub fn rps_queues(nics: &super::nic::Nics) -> Vec<RpsQueue> {
    nics.nics
        .iter()
        .filter(|n| n.physical)
        .flat_map(|n| {
            n.rx.iter().filter_map(|q| {
                Some(RpsQueue {
                    device: n.name.clone(),
                    rps_cpus: q.rps_cpus.clone()?,
                    rps_flow_cnt: q.rps_flow_cnt,
                    queue: q.name.clone(),
                })
            })
        })
        .collect()
}
