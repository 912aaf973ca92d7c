//! `/proc/softirqs`: cumulative softirq counts per vector (HI, TIMER, NET_TX, NET_RX, ...) per CPU.
//!
//! The header names the CPU columns (`CPU0 CPU1 ...`); offline CPUs are absent from the
//! header, so the CPU id comes from the header, never from the column position.

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Softirqs {
    /// CPU ids in column order, from the header.
    pub cpus: Vec<u32>,
    /// One row per vector, in the kernel's order.
    pub vectors: Vec<Vector>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vector {
    /// Vector name as the kernel prints it: `NET_RX`, `TIMER`, `BLOCK_IOPOLL` (before 4.5), ...
    pub name: String,
    /// Count per CPU, aligned with [`Softirqs::cpus`].
    pub per_cpu: Vec<u64>,
}

impl Softirqs {
    pub fn vector(&self, name: &str) -> Option<&Vector> {
        self.vectors.iter().find(|v| v.name == name)
    }

    /// Count of `name` on CPU `cpu`, if both exist.
    pub fn get(&self, name: &str, cpu: u32) -> Option<u64> {
        let col = self.cpus.iter().position(|&c| c == cpu)?;
        self.vector(name)?.per_cpu.get(col).copied()
    }
}

pub fn parse(text: &str) -> anyhow::Result<Softirqs> {
    let mut lines = text.lines();
    let cpus = cpu_header(lines.next())?;
    let mut vectors = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line
            .split_once(':')
            .with_context(|| format!("line {}: no `NAME:` prefix in {line:?}", i + 2))?;
        let per_cpu = rest
            .split_whitespace()
            .map(|v| v.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: non-numeric count in {line:?}", i + 2))?;
        if per_cpu.len() != cpus.len() {
            bail!(
                "line {}: {} counts for {} CPU columns in {line:?}",
                i + 2,
                per_cpu.len(),
                cpus.len()
            );
        }
        vectors.push(Vector {
            name: name.trim().to_string(),
            per_cpu,
        });
    }
    if vectors.is_empty() {
        bail!("no vector rows after the header");
    }
    Ok(Softirqs { cpus, vectors })
}

/// The `CPU0 CPU1 ...` header of a per-CPU table (`/proc/softirqs`, `/proc/interrupts`): CPU
/// ids in column order. Offline CPUs are absent, so ids come from here, never from positions.
pub fn cpu_header(line: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let header = line.context("empty file, expected a `CPU0 CPU1 ...` header")?;
    let cpus = header
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CPU")
                .and_then(|n| n.parse::<u32>().ok())
                .with_context(|| format!("header column {c:?} is not CPU<n>"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if cpus.is_empty() {
        bail!("header names no CPU column");
    }
    Ok(cpus)
}
