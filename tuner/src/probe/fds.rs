//! File descriptors: system-wide (`fs.file-nr` against `fs.file-max`, `fs.nr_open`) and per
//! process (entries of `/proc/PID/fd` against RLIMIT_NOFILE from `/proc/PID/limits`), plus whether the process may raise its hard limit
//! (CAP_SYS_RESOURCE in `CapEff` of `/proc/PID/status`).

use super::caps;
use crate::paths;
use anyhow::{bail, Context};
use serde::Serialize;
use std::path::Path;

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
    /// The systemd unit it runs in, from `/proc/PID/cgroup` (`corestream.service`); `None`
    /// outside any service (a login session, a container's init) or when unreadable.
    pub unit: Option<String>,
    /// Started with corestream's `--incoming-cpu` (its command line, or
    /// `CORESTREAM_INCOMING_CPU` in its environment).
    #[serde(skip)]
    pub incoming_cpu: bool,
}

/// The systemd service of a `/proc/PID/cgroup` text: the innermost `*.service` on the unified
/// (`0::`) line, else on the v1 `name=systemd` line.
pub fn parse_cgroup_unit(text: &str) -> Option<String> {
    let service = |path: &str| {
        path.rsplit('/')
            .find(|c| c.ends_with(".service"))
            .map(String::from)
    };
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(service)
    };
    line("0::").or_else(|| {
        text.lines()
            .find_map(|l| l.split_once(":name=systemd:").map(|x| x.1))
            .and_then(service)
    })
}

/// (soft, hard) RLIMIT_NOFILE from the text of `/proc/PID/limits`; `None` is unlimited.
///
/// Only the `Max open files` row is read: `procfs_core::process::Limits` insists on all sixteen
/// rows (and indexes short lines unchecked), so a partial file, as a container or a test tree
/// may show, would lose the one limit we need.
pub fn parse_nofile(limits_text: &str) -> anyhow::Result<(Option<u64>, Option<u64>)> {
    let line = limits_text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Max open files"))
        .context("no `Max open files` line in /proc/PID/limits")?;
    let mut w = line.split_whitespace();
    let mut next = |what: &str| -> anyhow::Result<Option<u64>> {
        let v = w
            .next()
            .with_context(|| format!("`Max open files` has no {what} limit: {line:?}"))?;
        if v == "unlimited" {
            return Ok(None);
        }
        v.parse::<u64>()
            .map(Some)
            .with_context(|| format!("{what} limit {v:?} is not a number"))
    };
    Ok((next("soft")?, next("hard")?))
}

/// Whether `CapEff` in the text of `/proc/PID/status` holds CAP_SYS_RESOURCE.
pub fn parse_cap_sys_resource(status_text: &str) -> anyhow::Result<bool> {
    Ok(caps::has(
        caps::parse_eff(status_text)?,
        caps::CAP_SYS_RESOURCE,
    ))
}

/// PIDs under `<root>/proc` whose `comm` equals `name`, sorted.
pub fn find_by_name(root: &Path, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(paths::under(root, paths::PROC)) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(paths::under(root, &paths::pid(*pid, "comm")))
                .map(|c| c.trim_end_matches('\n') == name)
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// procfs's `statfs` f_type.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Open descriptors of a process, from its `fd` directory (`/proc/PID/fd`). On procfs
/// since Linux 6.2 the directory's size is that count: one open and one fstat, where listing
/// it makes the kernel build an entry per descriptor (13 ms of system time for 19,000 here,
/// paid for every process at every sample). An older kernel (size 0) or a captured tree
/// (not procfs) has its entries counted. Opening the directory checks the same permission a
/// listing would.
pub fn count_open(fd_dir: &Path) -> std::io::Result<u64> {
    let dir = std::fs::File::open(fd_dir)?;
    let size = dir.metadata()?.len();
    if size > 0 && on_procfs(&dir) {
        return Ok(size);
    }
    Ok(std::fs::read_dir(fd_dir)?.count() as u64)
}

fn on_procfs(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: zeroed is a valid bit pattern for libc::statfs (plain integers).
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: f is open for the duration of the call; fs is a valid out-pointer.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut fs) } < 0 {
        return false;
    }
    fs.f_type as i64 == PROC_SUPER_MAGIC
}

/// Open fds and limits of one process beneath `root`.
pub fn process(root: &Path, pid: u32) -> anyhow::Result<ProcessFds> {
    let dir = paths::under(root, &paths::pid(pid, ""));
    if !dir.is_dir() {
        bail!("no process {pid}: {} does not exist", dir.display());
    }
    let comm = std::fs::read_to_string(dir.join("comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default();
    let fd_dir = dir.join("fd");
    let open_fds = count_open(&fd_dir).with_context(|| {
        format!(
            "cannot list {} (run as the process owner or root)",
            fd_dir.display()
        )
    })?;
    let limits_path = dir.join("limits");
    let limits_text = std::fs::read_to_string(&limits_path)
        .with_context(|| format!("cannot read {}", limits_path.display()))?;
    let (soft_limit, hard_limit) =
        parse_nofile(&limits_text).with_context(|| format!("in {}", limits_path.display()))?;
    let cap_sys_resource = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| parse_cap_sys_resource(&s).ok());
    let unit = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| parse_cgroup_unit(&t));
    let incoming_cpu = parse_incoming_cpu(
        &std::fs::read(dir.join("cmdline")).unwrap_or_default(),
        &std::fs::read(dir.join("environ")).unwrap_or_default(),
    );
    Ok(ProcessFds {
        pid,
        comm,
        open_fds,
        soft_limit,
        hard_limit,
        cap_sys_resource,
        unit,
        incoming_cpu,
    })
}

/// Whether a `/proc/PID/cmdline` and `environ` (NUL-separated) turn on corestream's
/// `--incoming-cpu`: the flag, or the variable set to anything clap does not read as false.
pub fn parse_incoming_cpu(cmdline: &[u8], environ: &[u8]) -> bool {
    let flag = cmdline.split(|b| *b == 0).any(|a| a == b"--incoming-cpu");
    let env = environ.split(|b| *b == 0).any(|v| {
        v.strip_prefix(b"CORESTREAM_INCOMING_CPU=")
            .is_some_and(|v| {
                let v = String::from_utf8_lossy(v).to_ascii_lowercase();
                !matches!(v.as_str(), "" | "0" | "n" | "no" | "f" | "false" | "off")
            })
    });
    flag || env
}
