//! The sysctls that decide how the network stack queues and drops, read beneath `--root`, plus
//! the RPS masks per NIC receive queue (`/sys/class/net/<dev>/queues/rx-<n>/rps_cpus`).

use crate::{paths, sysctl};
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
    let mut values = BTreeMap::new();
    for key in KEYS {
        if let Ok(v) = sysctl::read(root, key) {
            values.insert((*key).to_string(), v);
        }
    }
    Sysctls {
        values,
        rps: read_rps(root),
    }
}

/// RPS masks of every RX queue of every hardware NIC. Virtual devices (lo, ifb, veth, bridges)
/// have no `device` link and take no interrupt, so spreading their receive work is not the fix.
pub fn read_rps(root: &Path) -> Vec<RpsQueue> {
    let mut out = Vec::new();
    let net = paths::under(root, paths::CLASS_NET);
    let Ok(devs) = std::fs::read_dir(&net) else {
        return out;
    };
    let mut devs: Vec<_> = devs
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    devs.sort();
    for dev in devs
        .into_iter()
        .filter(|d| net.join(d).join("device").exists())
    {
        let qdir = net.join(&dev).join("queues");
        let Ok(queues) = std::fs::read_dir(&qdir) else {
            continue;
        };
        let mut queues: Vec<_> = queues
            .flatten()
            .map(|q| q.file_name().to_string_lossy().into_owned())
            .filter(|q| q.starts_with("rx-"))
            .collect();
        queues.sort();
        for q in queues {
            let Ok(mask) = std::fs::read_to_string(qdir.join(&q).join("rps_cpus")) else {
                continue;
            };
            let flow = std::fs::read_to_string(qdir.join(&q).join("rps_flow_cnt"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            out.push(RpsQueue {
                device: dev.clone(),
                queue: q,
                rps_cpus: mask.trim().to_string(),
                rps_flow_cnt: flow,
            });
        }
    }
    out
}
