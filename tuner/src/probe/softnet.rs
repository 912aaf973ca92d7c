//! `/proc/net/softnet_stat`: one hex line per online CPU.
//!
//! Columns: 0 processed, 1 dropped (input queue longer than `net.core.netdev_max_backlog`),
//! 2 time_squeeze (`net.core.netdev_budget` or `netdev_budget_usecs` ran out with work left),
//! 3-7 zero, 8 cpu_collision, 9 received_rps, 10 flow_limit_count; since 5.10 also
//! 11 backlog length and 12 the CPU id; 6.x adds input/process queue lengths.
//! Old kernels print 9 or 11 columns and no CPU id: then the line index is the CPU, which is
//! only right while no CPU is offline (offline CPUs are skipped).

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoftnetRow {
    pub cpu: u32,
    /// True when `cpu` came from the kernel's CPU-id column, false when it is the line index.
    pub cpu_id_from_kernel: bool,
    pub processed: u64,
    pub dropped: u64,
    pub time_squeeze: u64,
    pub received_rps: Option<u64>,
    pub flow_limit_count: Option<u64>,
    pub backlog_len: Option<u64>,
}

pub fn parse(text: &str) -> anyhow::Result<Vec<SoftnetRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: non-hex column in {line:?}", i + 1))?;
        if cols.len() < 3 {
            bail!("line {}: {} columns, need at least 3", i + 1, cols.len());
        }
        let (cpu, from_kernel) = match cols.get(12) {
            Some(&id) => (
                u32::try_from(id)
                    .with_context(|| format!("line {}: CPU id {id} too large", i + 1))?,
                true,
            ),
            None => (u32::try_from(rows.len()).unwrap_or(u32::MAX), false),
        };
        rows.push(SoftnetRow {
            cpu,
            cpu_id_from_kernel: from_kernel,
            processed: cols[0],
            dropped: cols[1],
            time_squeeze: cols[2],
            received_rps: cols.get(9).copied(),
            flow_limit_count: cols.get(10).copied(),
            backlog_len: cols.get(11).copied(),
        });
    }
    if rows.is_empty() {
        bail!("no CPU lines");
    }
    Ok(rows)
}
