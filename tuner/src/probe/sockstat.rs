//! `/proc/net/sockstat`: socket counts per protocol; TCP `mem` is in pages and is compared with
//! `net.ipv4.tcp_mem` (also pages).

use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sockstat {
    /// `sockets: used N`
    pub sockets_used: Option<u64>,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_tw: u64,
    pub tcp_alloc: u64,
    /// Pages of memory charged to TCP sockets.
    pub tcp_mem_pages: u64,
}

pub fn parse(text: &str) -> anyhow::Result<Sockstat> {
    let mut sections: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if !words.len().is_multiple_of(2) {
            bail!(
                "line {}: fields must be `name value` pairs in {line:?}",
                i + 1
            );
        }
        let mut fields = BTreeMap::new();
        for kv in words.chunks(2) {
            let v = kv[1].parse::<u64>().with_context(|| {
                format!(
                    "line {}: {proto} {} = {:?} is not a number",
                    i + 1,
                    kv[0],
                    kv[1]
                )
            })?;
            fields.insert(kv[0], v);
        }
        sections.insert(proto.trim(), fields);
    }
    let tcp = sections.get("TCP").context("no `TCP:` line")?;
    let field = |k: &str| {
        tcp.get(k)
            .copied()
            .with_context(|| format!("TCP line has no `{k}`"))
    };
    Ok(Sockstat {
        sockets_used: sections.get("sockets").and_then(|s| s.get("used").copied()),
        tcp_inuse: field("inuse")?,
        tcp_orphan: field("orphan")?,
        tcp_tw: field("tw")?,
        tcp_alloc: field("alloc")?,
        tcp_mem_pages: field("mem")?,
    })
}
