//! The receive and transmit path of each NIC as sysfs and procfs show it: queues with their
//! RPS/RFS/XPS settings, the IRQ that serves each queue and the CPUs it may run on, threaded
//! NAPI and the NAPI deferral knobs, and whether irqbalance is running.
//!
//! A NIC's vectors are found in `/proc/interrupts` by its device name (`virtio2-input.0`), its
//! interface name (`eth0-TxRx-3`) or its PCI address (`PCI-MSIX-0000:00:03.0`,
//! `mlx5_comp0@pci:0000:00:03.0`); `sys/class/net/NIC/device` links to the device. Virtual
//! interfaces (lo, veth, bridges, ifb) have no `device` and take no interrupt.

use super::interrupts::{self, Interrupts, QueueKind};
use crate::paths;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RxQueue {
    /// `rx-0`
    pub name: String,
    /// Hex CPU mask (`0` = RPS off).
    pub rps_cpus: Option<String>,
    pub rps_flow_cnt: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TxQueue {
    /// `tx-0`
    pub name: String,
    /// Hex CPU mask (XPS); absent on single-CPU-mapped or old kernels.
    pub xps_cpus: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NicIrq {
    pub irq: u32,
    pub name: String,
    pub kind: QueueKind,
    pub queue: u32,
    /// CPUs the IRQ may be delivered to (`smp_affinity_list`).
    pub affinity: Option<String>,
    /// CPUs the interrupt controller actually uses (`effective_affinity_list`).
    pub effective: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Nic {
    pub name: String,
    /// Backed by a device (takes interrupts); false for lo, veth, bridges, ifb.
    pub physical: bool,
    /// Device the interface belongs to (`virtio2`, `0000:00:03.0`).
    pub device: Option<String>,
    pub pci: Option<String>,
    pub driver: Option<String>,
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
    pub irqs: Vec<NicIrq>,
    /// `threaded` NAPI (1: softirq work in kernel threads the scheduler can move).
    pub threaded: Option<String>,
    pub napi_defer_hard_irqs: Option<u64>,
    pub gro_flush_timeout: Option<u64>,
}

impl Nic {
    /// Receive queues the hardware spreads flows over (RSS): RX or combined vectors, else the
    /// sysfs RX queues.
    pub fn rx_vectors(&self) -> usize {
        let n = self
            .irqs
            .iter()
            .filter(|i| matches!(i.kind, QueueKind::Rx | QueueKind::Combined))
            .count();
        if n > 0 {
            n
        } else {
            self.rx.len()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Nics {
    pub nics: Vec<Nic>,
    /// PID of a running irqbalance, which rewrites IRQ affinities every 10 s.
    pub irqbalance: Option<u32>,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn is_pci_addr(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

fn sorted_names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|n| n[prefix.len()..].parse::<u32>().unwrap_or(u32::MAX));
    v
}

/// PID of a process named `irqbalance` beneath the root.
pub fn irqbalance(root: &Path) -> Option<u32> {
    super::fds::find_by_name(root, "irqbalance")
        .first()
        .copied()
}

pub fn read(root: &Path, ints: Option<&Interrupts>) -> Nics {
    let net = paths::under(root, paths::CLASS_NET);
    let mut names: Vec<String> = std::fs::read_dir(&net)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let nics = names
        .into_iter()
        .map(|name| read_one(root, &net.join(&name), name, ints))
        .collect();
    Nics {
        nics,
        irqbalance: irqbalance(root),
    }
}

fn read_one(root: &Path, dir: &Path, name: String, ints: Option<&Interrupts>) -> Nic {
    let dev = dir.join("device");
    let physical = std::fs::symlink_metadata(&dev).is_ok();
    let link = std::fs::read_link(&dev).ok();
    let device = link
        .as_ref()
        .and_then(|l| l.file_name())
        .map(|f| f.to_string_lossy().into_owned());
    let pci = link.as_ref().and_then(|l| {
        l.iter()
            .map(|c| c.to_string_lossy().into_owned())
            .rfind(|c| is_pci_addr(c))
    });
    let driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|l| l.file_name().map(|f| f.to_string_lossy().into_owned()));
    let q = dir.join("queues");
    let rx = sorted_names(&q, "rx-")
        .into_iter()
        .map(|n| RxQueue {
            rps_cpus: read_trim(&q.join(&n).join("rps_cpus")),
            rps_flow_cnt: read_trim(&q.join(&n).join("rps_flow_cnt")).and_then(|v| v.parse().ok()),
            name: n,
        })
        .collect();
    let tx = sorted_names(&q, "tx-")
        .into_iter()
        .map(|n| TxQueue {
            xps_cpus: read_trim(&q.join(&n).join("xps_cpus")),
            name: n,
        })
        .collect();
    let mut irqs = Vec::new();
    if physical {
        if let Some(ints) = ints {
            for line in &ints.lines {
                let Some(irq) = line.number() else { continue };
                let mine = device
                    .as_ref()
                    .is_some_and(|d| line.name.starts_with(&format!("{d}-")))
                    || line.name.split(['-', '@']).any(|part| part == name)
                    || pci.as_ref().is_some_and(|p| line.desc.contains(p.as_str()));
                if !mine {
                    continue;
                }
                let Some((kind, queue)) = interrupts::queue_of(&line.name) else {
                    continue;
                };
                let irq_dir = paths::under(root, &format!("{}/{irq}", paths::PROC_IRQ));
                irqs.push(NicIrq {
                    irq,
                    name: line.name.clone(),
                    kind,
                    queue,
                    affinity: read_trim(&irq_dir.join("smp_affinity_list")),
                    effective: read_trim(&irq_dir.join("effective_affinity_list")),
                });
            }
        }
    }
    Nic {
        physical,
        device,
        pci,
        driver,
        rx,
        tx,
        irqs,
        threaded: read_trim(&dir.join("threaded")),
        napi_defer_hard_irqs: read_trim(&dir.join("napi_defer_hard_irqs"))
            .and_then(|v| v.parse().ok()),
        gro_flush_timeout: read_trim(&dir.join("gro_flush_timeout")).and_then(|v| v.parse().ok()),
        name,
    }
}
