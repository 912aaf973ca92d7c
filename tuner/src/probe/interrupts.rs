//! `/proc/interrupts`: interrupt counts per IRQ per CPU, and who raised them.
//!
//! The header names the CPU columns (`CPU0 CPU1 ...`; offline CPUs are absent, so the CPU id
//! comes from the header). Each row is `IRQ: count... chip [hwirq-type] name`; rows such as
//! `ERR:` carry one count only. Chip and name columns vary by kernel and driver:
//! `PCI-MSIX-0000:00:03.0 2-edge virtio2-output.0` (6.x), `PCI-MSI-edge eth0-TxRx-0` (older),
//! `mlx5_comp0@pci:0000:00:05.0`.

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interrupts {
    pub cpus: Vec<u32>,
    pub lines: Vec<IrqLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IrqLine {
    /// `38`, or `LOC`, `NMI` for the architecture's own.
    pub irq: String,
    /// Counts aligned with [`Interrupts::cpus`] (missing trailing columns are zero).
    pub counts: Vec<u64>,
    /// Everything after the counts: chip, hardware irq and trigger, name.
    pub desc: String,
    /// The device's name for this vector: the last word of `desc` (`virtio2-input.0`).
    pub name: String,
}

impl IrqLine {
    pub fn number(&self) -> Option<u32> {
        self.irq.parse().ok()
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Interrupts {
    pub fn get(&self, irq: u32) -> Option<&IrqLine> {
        self.lines.iter().find(|l| l.number() == Some(irq))
    }
}

pub fn parse(text: &str) -> anyhow::Result<Interrupts> {
    let mut lines = text.lines();
    let cpus = super::softirqs::cpu_header(lines.next())?;
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (irq, rest) = line
            .split_once(':')
            .with_context(|| format!("line {}: no `IRQ:` prefix in {line:?}", i + 2))?;
        let mut words = rest.split_whitespace().peekable();
        let mut counts = Vec::with_capacity(cpus.len());
        while counts.len() < cpus.len() {
            match words.peek().and_then(|w| w.parse::<u64>().ok()) {
                Some(n) => {
                    counts.push(n);
                    words.next();
                }
                None => break,
            }
        }
        counts.resize(cpus.len(), 0);
        let desc: Vec<&str> = words.collect();
        out.push(IrqLine {
            irq: irq.trim().to_string(),
            counts,
            name: desc.last().map(|s| s.to_string()).unwrap_or_default(),
            desc: desc.join(" "),
        });
    }
    if out.is_empty() {
        bail!("no interrupt rows after the header");
    }
    Ok(Interrupts { cpus, lines: out })
}

/// Which way a vector's queue carries packets, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueKind {
    Rx,
    Tx,
    /// One vector serves an RX and a TX queue (`TxRx`, `comp`, `-Tx-Rx-`).
    Combined,
}

/// The queue a NIC vector serves, from names drivers use: `virtio2-input.0`, `virtio2-output.0`,
/// `eth0-TxRx-3`, `ens5-Tx-Rx-1`, `eth0-rx-2`, `mlx5_comp4@pci:...`, `i40e-eth0-TxRx-0`.
/// Control vectors (`-config`, `-event`, `-lsc`) serve no queue.
pub fn queue_of(name: &str) -> Option<(QueueKind, u32)> {
    let lower = name.to_ascii_lowercase();
    let base = lower.split('@').next().unwrap_or(&lower);
    let digits: String = base
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let n: u32 = digits.parse().ok()?;
    let stem = &base[..base.len() - digits.len()];
    let kind = if stem.contains("txrx") || stem.contains("tx-rx") || stem.contains("comp") {
        QueueKind::Combined
    } else if stem.contains("input") || stem.contains("rx") {
        QueueKind::Rx
    } else if stem.contains("output") || stem.contains("tx") {
        QueueKind::Tx
    } else {
        return None;
    };
    Some((kind, n))
}

/// A CPU list as the kernel prints it (`0-3,8,10-11`).
pub use corestream_common::cpus::parse_list as parse_cpu_list;
