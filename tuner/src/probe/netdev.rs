//! `/proc/net/dev`: bytes, packets, errors and drops per interface since boot. Two header
//! lines, then `name: 8 receive columns 8 transmit columns`.

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IfStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

pub fn parse(text: &str) -> anyhow::Result<Vec<IfStats>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        // The two header lines have `|` and no colon-separated counters.
        if name.contains('|') {
            continue;
        }
        let v = rest
            .split_whitespace()
            .map(|w| w.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: non-numeric counter in {line:?}", i + 1))?;
        if v.len() < 16 {
            bail!("line {}: {} counters, expected 16", i + 1, v.len());
        }
        out.push(IfStats {
            name: name.trim().to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errs: v[2],
            rx_drop: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errs: v[10],
            tx_drop: v[11],
        });
    }
    if out.is_empty() {
        bail!("no interface lines");
    }
    Ok(out)
}
