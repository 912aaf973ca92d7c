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
}

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
    }
}
