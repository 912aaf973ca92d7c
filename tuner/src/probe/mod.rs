//! Probes: one small parser per `/proc` file (text in, typed value out), and [`take`], which reads
//! them all beneath a root directory into a [`Sample`].
//!
//! A probe that cannot read its file does not fail the sample: the gap is recorded in
//! [`Sample::notes`] so `diagnose` can say what it could not see (containers hide some files).

pub mod caps;
pub mod conntrack;
pub mod fds;
pub mod interrupts;
pub mod listeners;
pub mod netdev;
pub mod netns;
pub mod netstat;
pub mod nic;
pub mod sockets;
pub mod sockstat;
pub mod softirqs;
pub mod softnet;
pub mod stat;
pub mod sysctls;
pub mod unit;

use crate::paths;
use anyhow::Context;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Process name `diagnose` and `watch` look for when no `--pid` is given.
pub const DEFAULT_PROCESS: &str = "corestream";

/// Read and parse one file beneath `root`; errors name the full path.
pub fn read_parse<T>(
    root: &Path,
    rel: &str,
    parse: impl FnOnce(&str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let p = paths::under(root, rel);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    parse(&text).with_context(|| format!("cannot parse {}", p.display()))
}

/// A procfs-core error in words for an SRE. Its "internal error" text names a source line of
/// the crate and asks to report a bug; what it means to us is a malformed line in the file.
pub fn procfs_error(e: procfs_core::ProcError) -> anyhow::Error {
    match e {
        procfs_core::ProcError::InternalError(_) => anyhow::anyhow!(
            "a line is malformed (a field is missing or not a number): is this a complete copy of the kernel's file?"
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Which processes to look at.
#[derive(Debug, Clone)]
pub enum Target {
    Pids(Vec<u32>),
    Named(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    #[serde(skip)]
    pub taken: Instant,
    pub softirqs: Option<softirqs::Softirqs>,
    pub stat: Option<stat::Stat>,
    pub softnet: Option<Vec<softnet::SoftnetRow>>,
    /// `/proc/net/netstat` and `/proc/net/snmp` merged, keyed `Prefix:Name`.
    pub counters: netstat::Counters,
    pub sockstat: Option<sockstat::Sockstat>,
    pub listeners: Option<listeners::Listeners>,
    pub file_nr: Option<fds::FileNr>,
    pub processes: Vec<fds::ProcessFds>,
    pub sysctls: sysctls::Sysctls,
    pub interrupts: Option<interrupts::Interrupts>,
    /// Per interface counters from `/proc/net/dev`.
    pub netdev: Option<Vec<netdev::IfStats>>,
    pub nics: nic::Nics,
    /// `None` when nf_conntrack is not loaded.
    pub conntrack: Option<conntrack::Conntrack>,
    /// Destinations with the most ephemeral ports in use (at most [`TOP`]).
    pub destinations: Vec<sockets::Destination>,
    /// Processes with the most open files (at most [`TOP`]).
    pub top_fds: Vec<sockets::FdUser>,
    /// Whether this process (not the target) may raise a hard limit: CAP_SYS_RESOURCE.
    pub caller_can_raise_hard: Option<bool>,
    /// Whose network namespace this is: device remedies only fit the host's.
    pub netns: netns::Netns,
    /// What could not be read, and why.
    pub notes: Vec<String>,
    /// Probes the rules need that could not be read: a verdict over this sample is UNKNOWN,
    /// not OK (`/proc/net/netstat`, `pid 4242`, ...).
    pub unknown: Vec<String>,
}

/// What a sample could not see: every gap as a sentence (`notes`), and the probes rules
/// depend on (`unknown`), which make a verdict UNKNOWN rather than OK.
#[derive(Default)]
struct Gaps {
    notes: Vec<String>,
    unknown: Vec<String>,
}

impl Gaps {
    fn keep<T>(&mut self, what: &str, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.notes.push(format!("{e:#}"));
                self.unknown.push(what.to_string());
                None
            }
        }
    }
}

/// How many destinations and fd consumers a sample keeps.
pub const TOP: usize = 10;

/// Gaps that do not blind a rule: recorded as notes only.
fn soft<T>(notes: &mut Vec<String>, r: anyhow::Result<T>) -> Option<T> {
    r.map_err(|e| notes.push(format!("{e:#}"))).ok()
}

fn conntrack(
    root: &Path,
    s: &sysctls::Sysctls,
    notes: &mut Vec<String>,
) -> Option<conntrack::Conntrack> {
    let count = s.int(conntrack::COUNT)?;
    let max = s.int(conntrack::MAX)?;
    let stat = if paths::under(root, conntrack::STAT).exists() {
        soft(
            notes,
            read_parse(root, conntrack::STAT, conntrack::parse_stat),
        )
    } else {
        None
    };
    Some(conntrack::Conntrack {
        count: u64::try_from(count).unwrap_or(0),
        max: u64::try_from(max).unwrap_or(0),
        stat,
    })
}

fn destinations(root: &Path) -> anyhow::Result<Vec<sockets::Destination>> {
    let Some(r) = crate::sysctl::read(root, "net.ipv4.ip_local_port_range")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .map(|w| w.parse::<i64>().ok())
                .collect::<Option<Vec<i64>>>()
        })
        .filter(|r| r.len() == 2)
    else {
        return Ok(Vec::new());
    };
    let port = |v: i64| u16::try_from(v).unwrap_or(u16::MAX);
    let range = (port(r[0]), port(r[1]));
    // The live kernel by sock_diag (as `ss` does); a captured tree by its files.
    if root == Path::new("/") {
        if let Ok(mut d) = sockets::ports_per_destination_netlink(range) {
            d.truncate(TOP);
            return Ok(d);
        }
    }
    let mut texts = Vec::new();
    for f in [paths::NET_TCP, paths::NET_TCP6] {
        if let Ok(t) = std::fs::read_to_string(paths::under(root, f)) {
            texts.push(t);
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut d = sockets::ports_per_destination(&refs, range).map_err(|e| {
        e.context(format!(
            "ephemeral ports from {}",
            paths::shown(paths::NET_TCP)
        ))
    })?;
    d.truncate(TOP);
    Ok(d)
}

/// What a sample keeps for the next one: a tuner that samples in a loop (`watch`, `auto`,
/// `diagnose`'s two samples) takes every sample with the same `Memo`.
#[derive(Debug, Default)]
pub struct Memo {
    pub owners: sockets::OwnerMemo,
}

/// Read every probe once.
pub fn take(root: &Path, target: &Target, memo: &mut Memo) -> Sample {
    let mut g = Gaps::default();
    let mut notes = Vec::new();
    // This tool's own heavy reads (a readlink per descriptor of every process when the memo
    // is cold, a dump of every socket) come before the clock and the counters: the rates
    // between two samples are then the box's, not the tuner's.
    let mut listeners = g.keep("listening sockets", listeners::probe(root));
    if let Some(n) = listeners.as_ref().and_then(|l| l.note.clone()) {
        g.notes.push(n);
    }
    let wanted: std::collections::HashSet<u64> = listeners
        .iter()
        .flat_map(|l| l.sockets.iter().filter_map(|s| s.inode))
        .collect();
    let owners = sockets::owners(root, &wanted, TOP, &mut memo.owners);
    if let Some(ls) = listeners.as_mut() {
        for s in ls.sockets.iter_mut() {
            if let Some(o) = s.inode.and_then(|i| owners.sockets.get(&i)) {
                s.owners = o.clone();
            }
        }
    }
    let destinations = soft(&mut notes, destinations(root)).unwrap_or_default();
    let taken = Instant::now();
    let read = |rel: &str| paths::shown(rel);
    let softirqs = g.keep(
        &read(paths::SOFTIRQS),
        read_parse(root, paths::SOFTIRQS, softirqs::parse),
    );
    let stat = g.keep(
        &read(paths::STAT),
        read_parse(root, paths::STAT, stat::parse),
    );
    let softnet = g.keep(
        &read(paths::SOFTNET_STAT),
        read_parse(root, paths::SOFTNET_STAT, softnet::parse),
    );
    let mut counters = netstat::Counters::default();
    for f in [paths::NETSTAT, paths::SNMP] {
        if let Some(c) = g.keep(&read(f), read_parse(root, f, netstat::parse)) {
            counters.merge(c);
        }
    }
    let sockstat = g.keep(
        &read(paths::SOCKSTAT),
        read_parse(root, paths::SOCKSTAT, sockstat::parse),
    );
    let file_nr = g.keep(
        &read(paths::FILE_NR),
        read_parse(root, paths::FILE_NR, fds::parse_file_nr),
    );
    let pids = match target {
        Target::Pids(p) => p.clone(),
        Target::Named(name) => fds::find_by_name(root, name),
    };
    let processes = pids
        .iter()
        .filter_map(|&pid| g.keep(&format!("pid {pid}"), fds::process(root, pid)))
        .collect();
    let interrupts = soft(
        &mut notes,
        read_parse(root, paths::INTERRUPTS, interrupts::parse),
    );
    let netdev = soft(&mut notes, read_parse(root, paths::NET_DEV, netdev::parse));
    let nics = nic::read(root, interrupts.as_ref());
    let sysctls = sysctls::with_nics(root, &nics);
    let conntrack = conntrack(root, &sysctls, &mut notes);
    g.notes.extend(notes);
    if sysctls.values.is_empty() {
        g.notes.push(format!(
            "no kernel setting readable beneath {}",
            paths::under(root, paths::PROC_SYS).display()
        ));
        g.unknown.push(read(paths::PROC_SYS));
    }
    Sample {
        taken,
        softirqs,
        stat,
        softnet,
        counters,
        sockstat,
        listeners,
        file_nr,
        processes,
        sysctls,
        interrupts,
        netdev,
        nics,
        conntrack,
        destinations,
        top_fds: owners.top_fds,
        caller_can_raise_hard: caps::own().map(|c| caps::has(c, caps::CAP_SYS_RESOURCE)),
        netns: netns::detect(root),
        notes: g.notes,
        unknown: g.unknown,
    }
}
