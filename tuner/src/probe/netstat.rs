//! `/proc/net/netstat` and `/proc/net/snmp`: pairs of lines, a header `Prefix: Name Name ...`
//! and its values `Prefix: 1 2 ...`. Columns differ between kernels, so values are looked up by
//! `Prefix:Name` (e.g. `TcpExt:ListenOverflows`, `Tcp:RetransSegs`), never by position.
//!
//! Why not `procfs_core::net::Snmp` for `/proc/net/snmp`: it requires every field of its fixed
//! set and rejects the whole file when one is missing (older kernels lack e.g.
//! `Icmp:InCsumErrors`), and it does not cover `/proc/net/netstat` at all. One by-name parser
//! serves both files and any kernel; a unit test shows the difference on an older capture.

use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters keyed `Prefix:Name`. Values are signed because `Tcp:MaxConn` is -1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters(pub BTreeMap<String, i64>);

impl Counters {
    pub fn get(&self, key: &str) -> Option<i64> {
        self.0.get(key).copied()
    }

    /// Add another file's counters (netstat and snmp have disjoint prefixes).
    pub fn merge(&mut self, other: Counters) {
        self.0.extend(other.0);
    }
}

pub fn parse(text: &str) -> anyhow::Result<Counters> {
    let mut map = BTreeMap::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.len().is_multiple_of(2) {
        bail!(
            "{} non-empty lines: header and value lines must pair up",
            lines.len()
        );
    }
    for (n, pair) in lines.chunks(2).enumerate() {
        let (hp, hnames) = pair[0]
            .split_once(':')
            .with_context(|| format!("line {}: no `Prefix:` in {:?}", 2 * n + 1, pair[0]))?;
        let (vp, vvals) = pair[1]
            .split_once(':')
            .with_context(|| format!("line {}: no `Prefix:` in {:?}", 2 * n + 2, pair[1]))?;
        if hp != vp {
            bail!(
                "line {}: header prefix {hp:?} but value prefix {vp:?}",
                2 * n + 2
            );
        }
        let names: Vec<&str> = hnames.split_whitespace().collect();
        let vals: Vec<&str> = vvals.split_whitespace().collect();
        if names.len() != vals.len() {
            bail!("{hp}: {} names but {} values", names.len(), vals.len());
        }
        for (name, val) in names.iter().zip(vals) {
            let v = val
                .parse::<i64>()
                .with_context(|| format!("{hp}:{name}: value {val:?} is not an integer"))?;
            map.insert(format!("{hp}:{name}"), v);
        }
    }
    if map.is_empty() {
        bail!("no counters found");
    }
    Ok(Counters(map))
}
