//! RPS/RFS (opt-in, `--rps`): when a NIC has fewer receive queues than CPUs, each queue's
//! interrupt and its NET_RX softirq land on one CPU. Receive Packet Steering spreads the
//! protocol work over the other CPUs (rps_cpus), and Receive Flow Steering sends each flow to the
//! CPU where its reader runs (rps_sock_flow_entries globally, rps_flow_cnt per queue).
//! See Documentation/networking/scaling.rst.

use crate::paths;
use crate::profile::{self, Scope, Shape};
use std::path::{Path, PathBuf};

/// Global RFS table size suggested by the kernel's scaling.rst for a moderately loaded server.
pub const SOCK_FLOW_ENTRIES: u64 = 32768;

/// One file to set, beneath the root.
#[derive(Clone, Debug)]
pub struct RpsTarget {
    /// Display name, e.g. `eth0/rx-0 rps_cpus`.
    pub key: String,
    /// Path relative to the root, e.g. `sys/class/net/eth0/queues/rx-0/rps_cpus`.
    pub rel_path: PathBuf,
    pub shape: Shape,
    pub value: profile::Value,
    pub reason: String,
}

/// What `--rps` found: files to set and notes about devices it left alone.
#[derive(Debug, Default)]
pub struct RpsPlan {
    pub targets: Vec<RpsTarget>,
    pub notes: Vec<String>,
}

pub use crate::probe::interrupts::parse_cpu_list;

/// Find NICs whose RX queues are fewer than the online CPUs and plan RPS/RFS for them.
/// Virtual devices (no `device` link: lo, veth, bridges, ifb) are skipped: their receive work
/// already runs on the sending CPU.
pub fn plan(root: &Path) -> anyhow::Result<RpsPlan> {
    let online_path = paths::under(root, paths::CPU_ONLINE);
    let online = std::fs::read_to_string(&online_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e} (needed to build RPS masks)",
            online_path.display()
        )
    })?;
    let cpus =
        parse_cpu_list(&online).map_err(|e| anyhow::anyhow!("{}: {e}", online_path.display()))?;
    let mut out = RpsPlan::default();
    let net = paths::under(root, paths::CLASS_NET);
    let mut devs: Vec<String> = match std::fs::read_dir(&net) {
        Ok(rd) => rd
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => anyhow::bail!("cannot list {}: {e}", net.display()),
    };
    devs.sort();
    let mut queues_total = 0u64;
    let mut per_queue: Vec<(String, PathBuf)> = Vec::new();
    for dev in devs {
        let dir = net.join(&dev);
        if !dir.join("device").exists() {
            continue;
        }
        let mut rx: Vec<String> = match std::fs::read_dir(dir.join("queues")) {
            Ok(rd) => rd
                .filter_map(|d| d.ok())
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rx-"))
                .collect(),
            Err(_) => continue,
        };
        rx.sort_by_key(|n| n[3..].parse::<u32>().unwrap_or(u32::MAX));
        if rx.is_empty() {
            continue;
        }
        if rx.len() >= cpus.len() {
            out.notes.push(format!(
                "{dev}: {} RX queues for {} CPUs: hardware RSS already spreads receive work; RPS left alone",
                rx.len(),
                cpus.len()
            ));
            continue;
        }
        for q in rx {
            queues_total += 1;
            per_queue.push((
                format!("{dev}/{q}"),
                PathBuf::from(paths::CLASS_NET)
                    .join(&dev)
                    .join("queues")
                    .join(&q),
            ));
        }
    }
    if per_queue.is_empty() {
        if out.notes.is_empty() {
            out.notes
                .push("no physical NIC found under sys/class/net: nothing for RPS to do".into());
        }
        return Ok(out);
    }
    out.targets.push(RpsTarget {
        key: "net.core.rps_sock_flow_entries".into(),
        rel_path: paths::sysctl("net.core.rps_sock_flow_entries"),
        shape: Shape::Int { min: 0, max: i32::MAX as u64 },
        value: vec![SOCK_FLOW_ENTRIES],
        reason: "RFS: global table of flows' consuming CPUs; ~32768 for a moderately loaded server (scaling.rst).".into(),
    });
    // The kernel rounds rps_flow_cnt up to a power of two; asking for one keeps read-back exact.
    let flow_cnt = (SOCK_FLOW_ENTRIES / queues_total.max(1)).next_power_of_two();
    let mask = profile::mask_of(&cpus);
    for (name, dir) in per_queue {
        out.targets.push(RpsTarget {
            key: format!("{name} rps_cpus"),
            rel_path: dir.join("rps_cpus"),
            shape: Shape::Mask,
            value: mask.clone(),
            reason: format!(
                "RPS: spread this queue's protocol processing over all {} online CPUs instead of the one its interrupt lands on.",
                cpus.len()
            ),
        });
        out.targets.push(RpsTarget {
            key: format!("{name} rps_flow_cnt"),
            rel_path: dir.join("rps_flow_cnt"),
            shape: Shape::Int { min: 0, max: i32::MAX as u64 },
            value: vec![flow_cnt],
            reason: format!("RFS: per-queue flow table = rps_sock_flow_entries / {queues_total} RX queues (power of two)."),
        });
    }
    Ok(out)
}

/// Scope of an RPS target: the sysctl is global, the queue files belong to the device.
pub fn scope_of(t: &RpsTarget) -> Scope {
    if t.key.starts_with("net.") {
        Scope::Global
    } else {
        Scope::Device
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2-3,8").unwrap(), vec![0, 2, 3, 8]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("a").is_err());
    }
}
