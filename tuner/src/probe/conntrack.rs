//! Connection tracking: entries in use against `nf_conntrack_max`, and the per-CPU statistics of
//! `/proc/net/stat/nf_conntrack` (a header of column names, then one hex line per CPU; columns
//! vary by kernel, so they are read by name). A full table drops new connections, which looks
//! to clients exactly like an accept-queue overflow. Absent when nf_conntrack is not loaded.

use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::BTreeMap;

pub const COUNT: &str = "net.netfilter.nf_conntrack_count";
pub const MAX: &str = "net.netfilter.nf_conntrack_max";
pub const STAT: &str = crate::paths::CONNTRACK_STAT;

/// Columns summed over CPUs, by name (`drop`, `insert_failed`, `early_drop`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stat(pub BTreeMap<String, u64>);

impl Stat {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }
}

pub fn parse_stat(text: &str) -> anyhow::Result<Stat> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<&str> = lines
        .next()
        .context("empty file, expected a header of column names")?
        .split_whitespace()
        .collect();
    if names.is_empty() || names.iter().any(|n| n.parse::<u64>().is_ok()) {
        bail!("the first line must name the columns");
    }
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let vals = line
            .split_whitespace()
            .map(|v| u64::from_str_radix(v, 16))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: non-hex value in {line:?}", i + 2))?;
        if vals.len() != names.len() {
            bail!(
                "line {}: {} values for {} columns",
                i + 2,
                vals.len(),
                names.len()
            );
        }
        for (n, v) in names.iter().zip(vals) {
            let e = sums.entry((*n).to_string()).or_default();
            *e = e.saturating_add(v);
        }
    }
    Ok(Stat(sums))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conntrack {
    pub count: u64,
    pub max: u64,
    /// Per-CPU statistics summed; `None` when the file is absent (older kernels).
    pub stat: Option<Stat>,
}
