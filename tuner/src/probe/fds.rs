//! File descriptors: system-wide (`fs.file-nr` against `fs.file-max`, `fs.nr_open`) and per
//! process (entries of `/proc/PID/fd` against RLIMIT_NOFILE from `/proc/PID/limits`, parsed by
//! `procfs_core::process::Limits`), plus whether the process may raise its hard limit
//! (CAP_SYS_RESOURCE in `CapEff` of `/proc/PID/status`).

use anyhow::{bail, Context};
use procfs_core::process::{LimitValue, Limits};
use procfs_core::FromRead;
use serde::Serialize;
use std::path::Path;

/// CAP_SYS_RESOURCE, from linux/capability.h.
const CAP_SYS_RESOURCE: u32 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileNr {
    /// Allocated file handles (first field of `fs.file-nr`).
    pub allocated: u64,
    /// Allocated but unused (always 0 since 2.6).
    pub unused: u64,
    /// `fs.file-max` as printed in the third field.
    pub max: u64,
}

pub fn parse_file_nr(text: &str) -> anyhow::Result<FileNr> {
    let f: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse::<u64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("fs.file-nr {text:?} is not three integers"))?;
    if f.len() != 3 {
        bail!("fs.file-nr has {} fields, expected 3", f.len());
    }
    Ok(FileNr {
        allocated: f[0],
        unused: f[1],
        max: f[2],
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessFds {
    pub pid: u32,
    pub comm: String,
    pub open_fds: u64,
    /// Soft RLIMIT_NOFILE; None = unlimited.
    pub soft_limit: Option<u64>,
    /// Hard RLIMIT_NOFILE; None = unlimited.
    pub hard_limit: Option<u64>,
    /// CAP_SYS_RESOURCE in the effective set: the process may raise its own hard limit.
    pub cap_sys_resource: Option<bool>,
}

fn limit(v: &LimitValue) -> Option<u64> {
    match v {
        LimitValue::Unlimited => None,
        LimitValue::Value(n) => Some(*n),
    }
}

/// (soft, hard) RLIMIT_NOFILE from the text of `/proc/PID/limits`.
pub fn parse_nofile(limits_text: &str) -> anyhow::Result<(Option<u64>, Option<u64>)> {
    // procfs-core indexes `words - 3` without checking, which overflows (a panic in debug builds)
    // on a short or blank line; every real line has a name, soft, hard (and units), so blank
    // lines are dropped and short ones rejected before procfs sees the text.
    let mut clean = String::with_capacity(limits_text.len());
    for (i, line) in limits_text.lines().enumerate() {
        match line.split_whitespace().count() {
            0 => continue,
            1 | 2 => bail!(
                "line {}: {line:?} is not a `Name Soft Hard Units` limits line",
                i + 1
            ),
            _ => {
                clean.push_str(line);
                clean.push('\n');
            }
        }
    }
    let l = Limits::from_read(clean.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("procfs could not parse /proc/PID/limits")?;
    Ok((
        limit(&l.max_open_files.soft_limit),
        limit(&l.max_open_files.hard_limit),
    ))
}

/// Whether `CapEff` in the text of `/proc/PID/status` holds CAP_SYS_RESOURCE.
pub fn parse_cap_sys_resource(status_text: &str) -> anyhow::Result<bool> {
    let hex = status_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff line in status")?
        .trim();
    let caps =
        u64::from_str_radix(hex, 16).with_context(|| format!("CapEff {hex:?} is not hex"))?;
    Ok(caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// PIDs under `<root>/proc` whose `comm` equals `name`, sorted.
pub fn find_by_name(root: &Path, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(root.join(format!("proc/{pid}/comm")))
                .map(|c| c.trim_end_matches('\n') == name)
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Open fds and limits of one process beneath `root`.
pub fn process(root: &Path, pid: u32) -> anyhow::Result<ProcessFds> {
    let dir = root.join(format!("proc/{pid}"));
    if !dir.is_dir() {
        bail!("no process {pid}: {} does not exist", dir.display());
    }
    let comm = std::fs::read_to_string(dir.join("comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default();
    let fd_dir = dir.join("fd");
    let open_fds = std::fs::read_dir(&fd_dir)
        .with_context(|| {
            format!(
                "cannot list {} (run as the process owner or root)",
                fd_dir.display()
            )
        })?
        .count() as u64;
    let limits_path = dir.join("limits");
    let limits_text = std::fs::read_to_string(&limits_path)
        .with_context(|| format!("cannot read {}", limits_path.display()))?;
    let (soft_limit, hard_limit) =
        parse_nofile(&limits_text).with_context(|| format!("in {}", limits_path.display()))?;
    let cap_sys_resource = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| parse_cap_sys_resource(&s).ok());
    Ok(ProcessFds {
        pid,
        comm,
        open_fds,
        soft_limit,
        hard_limit,
        cap_sys_resource,
    })
}
