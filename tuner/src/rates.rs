//! Rates between two samples, computed once: per CPU (softirqs per second, si%, softnet drops
//! and squeezes) and per counter (netstat/snmp increases per second). Rules, `diagnose`, `watch`
//! and the exporters all read the same [`Rates`].

use crate::probe::Sample;
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-CPU rates between two samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuRates {
    pub cpu: u32,
    pub net_rx_per_s: Option<f64>,
    pub net_tx_per_s: Option<f64>,
    /// Softirq time as a share of this CPU's time (the `si` column of top).
    pub si_pct: Option<f64>,
    pub irq_pct: Option<f64>,
    /// Everything but idle and iowait.
    pub busy_pct: Option<f64>,
    pub softnet_dropped_per_s: Option<f64>,
    pub softnet_squeezed_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    pub seconds: f64,
    pub cpus: Vec<CpuRates>,
    /// Per-second increase of the netstat/snmp counters in [`RATE_COUNTERS`].
    pub counters: BTreeMap<String, f64>,
    /// Interrupts per second of every NIC queue vector, per CPU.
    pub nic_irqs: Vec<IrqRate>,
    /// Packets and drops per second per interface (`/proc/net/dev`).
    pub ifaces: Vec<IfRate>,
    /// nf_conntrack drops, insert failures and early drops per second (all CPUs).
    pub conntrack_drops_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IrqRate {
    pub nic: String,
    pub irq: u32,
    pub name: String,
    pub kind: crate::probe::interrupts::QueueKind,
    pub queue: u32,
    /// (cpu, interrupts per second), CPUs as `/proc/interrupts` names them.
    pub per_cpu: Vec<(u32, f64)>,
}

impl IrqRate {
    pub fn total(&self) -> f64 {
        self.per_cpu.iter().map(|c| c.1).sum()
    }
    pub fn on(&self, cpu: u32) -> f64 {
        self.per_cpu
            .iter()
            .find(|c| c.0 == cpu)
            .map_or(0.0, |c| c.1)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IfRate {
    pub name: String,
    pub rx_packets_per_s: f64,
    pub tx_packets_per_s: f64,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    pub drops_per_s: f64,
}

/// Conntrack columns that mean a connection was refused or lost.
pub const CONNTRACK_DROPS: [&str; 3] = ["drop", "insert_failed", "early_drop"];

/// Counters whose rates `diagnose --json` reports and rules read.
pub const RATE_COUNTERS: &[&str] = &[
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:TCPReqQFullDrop",
    "TcpExt:TCPReqQFullDoCookies",
    "TcpExt:TCPBacklogDrop",
    "TcpExt:TCPAbortOnMemory",
    "TcpExt:TCPMemoryPressures",
    "Tcp:PassiveOpens",
    "Tcp:ActiveOpens",
    "Tcp:AttemptFails",
    "Tcp:EstabResets",
    "Tcp:RetransSegs",
    "TcpExt:TCPTimeWaitOverflow",
];

/// Increase of a counter, 0 when it went backwards (reset, or a different namespace).
fn inc(a: u64, b: u64) -> f64 {
    b.saturating_sub(a) as f64
}

/// Rates between two samples taken `seconds` apart: computed once per pair, read by every rule
/// and every output.
pub fn between(a: &Sample, b: &Sample, seconds: f64) -> Rates {
    let secs = if seconds > 0.0 { seconds } else { 1.0 };
    let mut ids: Vec<u32> = Vec::new();
    if let Some(s) = &b.softirqs {
        ids.extend(&s.cpus);
    }
    if let Some(s) = &b.stat {
        ids.extend(s.cpus.iter().map(|c| c.0));
    }
    if let Some(s) = &b.softnet {
        ids.extend(s.iter().map(|r| r.cpu));
    }
    ids.sort_unstable();
    ids.dedup();
    let cpus = ids
        .into_iter()
        .map(|cpu| {
            let vec_rate = |name: &str| -> Option<f64> {
                let x = a.softirqs.as_ref()?.get(name, cpu)?;
                let y = b.softirqs.as_ref()?.get(name, cpu)?;
                Some(inc(x, y) / secs)
            };
            let ticks = |s: &Sample| {
                s.stat
                    .as_ref()?
                    .cpus
                    .iter()
                    .find(|c| c.0 == cpu)
                    .map(|c| c.1)
            };
            let (mut si, mut irq, mut busy) = (None, None, None);
            if let (Some(x), Some(y)) = (ticks(a), ticks(b)) {
                let total = inc(x.total(), y.total());
                if total > 0.0 {
                    si = Some(100.0 * inc(x.softirq, y.softirq) / total);
                    irq = Some(100.0 * inc(x.irq, y.irq) / total);
                    busy = Some(
                        100.0 * (total - inc(x.idle, y.idle) - inc(x.iowait, y.iowait)).max(0.0)
                            / total,
                    );
                }
            }
            let sn = |s: &Sample| s.softnet.as_ref()?.iter().find(|r| r.cpu == cpu).cloned();
            let (mut dropped, mut squeezed) = (None, None);
            if let (Some(x), Some(y)) = (sn(a), sn(b)) {
                dropped = Some(inc(x.dropped, y.dropped) / secs);
                squeezed = Some(inc(x.time_squeeze, y.time_squeeze) / secs);
            }
            CpuRates {
                cpu,
                net_rx_per_s: vec_rate("NET_RX"),
                net_tx_per_s: vec_rate("NET_TX"),
                si_pct: si,
                irq_pct: irq,
                busy_pct: busy,
                softnet_dropped_per_s: dropped,
                softnet_squeezed_per_s: squeezed,
            }
        })
        .collect();
    let mut counters = BTreeMap::new();
    for key in RATE_COUNTERS {
        if let (Some(x), Some(y)) = (a.counters.get(key), b.counters.get(key)) {
            counters.insert((*key).to_string(), (y - x).max(0) as f64 / secs);
        }
    }
    Rates {
        seconds: secs,
        cpus,
        counters,
        nic_irqs: nic_irqs(a, b, secs),
        ifaces: ifaces(a, b, secs),
        conntrack_drops_per_s: conntrack_drops(a, b, secs),
    }
}

fn nic_irqs(a: &Sample, b: &Sample, secs: f64) -> Vec<IrqRate> {
    let (Some(x), Some(y)) = (&a.interrupts, &b.interrupts) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for nic in &b.nics.nics {
        for i in &nic.irqs {
            let (Some(lx), Some(ly)) = (x.get(i.irq), y.get(i.irq)) else {
                continue;
            };
            let per_cpu = y
                .cpus
                .iter()
                .enumerate()
                .map(|(col, &cpu)| {
                    let before = x
                        .cpus
                        .iter()
                        .position(|&c| c == cpu)
                        .and_then(|c| lx.counts.get(c))
                        .copied()
                        .unwrap_or(0);
                    let after = ly.counts.get(col).copied().unwrap_or(0);
                    (cpu, inc(before, after) / secs)
                })
                .collect();
            out.push(IrqRate {
                nic: nic.name.clone(),
                irq: i.irq,
                name: i.name.clone(),
                kind: i.kind,
                queue: i.queue,
                per_cpu,
            });
        }
    }
    out
}

fn ifaces(a: &Sample, b: &Sample, secs: f64) -> Vec<IfRate> {
    let (Some(x), Some(y)) = (&a.netdev, &b.netdev) else {
        return Vec::new();
    };
    y.iter()
        .filter_map(|n| {
            let o = x.iter().find(|o| o.name == n.name)?;
            Some(IfRate {
                name: n.name.clone(),
                rx_packets_per_s: inc(o.rx_packets, n.rx_packets) / secs,
                tx_packets_per_s: inc(o.tx_packets, n.tx_packets) / secs,
                rx_bytes_per_s: inc(o.rx_bytes, n.rx_bytes) / secs,
                tx_bytes_per_s: inc(o.tx_bytes, n.tx_bytes) / secs,
                drops_per_s: (inc(o.rx_drop, n.rx_drop) + inc(o.tx_drop, n.tx_drop)) / secs,
            })
        })
        .collect()
}

fn conntrack_drops(a: &Sample, b: &Sample, secs: f64) -> Option<f64> {
    let x = a.conntrack.as_ref()?.stat.as_ref()?;
    let y = b.conntrack.as_ref()?.stat.as_ref()?;
    let d: f64 = CONNTRACK_DROPS
        .iter()
        .filter_map(|k| Some(inc(x.get(k)?, y.get(k)?)))
        .sum();
    Some(d / secs)
}
