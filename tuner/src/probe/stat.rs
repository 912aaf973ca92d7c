//! `/proc/stat`: cumulative CPU time per CPU in clock ticks (USER_HZ), including `irq` and
//! `softirq` (the `hi`/`si` columns of top). Parsed with `procfs_core::KernelStats`; the CPU ids
//! are taken from the `cpuN` labels because offline CPUs are absent and procfs keeps only order.

use anyhow::{bail, Context};
use procfs_core::{ExplicitSystemInfo, FromReadSI, KernelStats};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTicks {
    /// All ticks; guest time is already inside `user`/`nice`, so it is not added again.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub total: CpuTicks,
    /// (cpu id, ticks) for each online CPU.
    pub cpus: Vec<(u32, CpuTicks)>,
}

fn ticks(c: &procfs_core::CpuTime) -> CpuTicks {
    CpuTicks {
        user: c.user,
        nice: c.nice,
        system: c.system,
        idle: c.idle,
        iowait: c.iowait.unwrap_or(0),
        irq: c.irq.unwrap_or(0),
        softirq: c.softirq.unwrap_or(0),
        steal: c.steal.unwrap_or(0),
    }
}

pub fn parse(text: &str) -> anyhow::Result<Stat> {
    // procfs converts ticks to ms with these only in helper methods we do not call; the raw
    // tick fields are what we keep, so the values here do not change the result.
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let ks = KernelStats::from_read(text.as_bytes(), &info).map_err(super::procfs_error)?;
    let ids = text
        .lines()
        .filter_map(|l| l.strip_prefix("cpu"))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .map(|rest| {
            let id = rest.split_whitespace().next().unwrap_or("");
            id.parse::<u32>()
                .with_context(|| format!("bad CPU label cpu{id}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if ids.len() != ks.cpu_time.len() {
        bail!(
            "{} cpuN labels but procfs parsed {} CPU lines",
            ids.len(),
            ks.cpu_time.len()
        );
    }
    Ok(Stat {
        total: ticks(&ks.total),
        cpus: ids.into_iter().zip(ks.cpu_time.iter().map(ticks)).collect(),
    })
}
