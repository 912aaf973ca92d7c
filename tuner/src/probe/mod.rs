//! Probes: one small parser per `/proc` file (text in, typed value out), and [`take`], which reads
//! them all beneath a root directory into a [`Sample`].
//!
//! A probe that cannot read its file does not fail the sample: the gap is recorded in
//! [`Sample::notes`] so `diagnose` can say what it could not see (containers hide some files).

pub mod caps;
pub mod fds;
pub mod listeners;
pub mod netns;
pub mod netstat;
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

/// Read every probe once.
pub fn take(root: &Path, target: &Target) -> Sample {
    let mut g = Gaps::default();
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
    let listeners = g.keep("listening sockets", listeners::probe(root));
    if let Some(n) = listeners.as_ref().and_then(|l| l.note.clone()) {
        g.notes.push(n);
    }
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
    let sysctls = sysctls::read(root);
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
        caller_can_raise_hard: caps::own().map(|c| caps::has(c, caps::CAP_SYS_RESOURCE)),
        netns: netns::detect(root),
        notes: g.notes,
        unknown: g.unknown,
    }
}
