//! `corestream-tune nofile --pid PID [--to N]`: change a running process's RLIMIT_NOFILE with
//! prlimit(2), or explain exactly why the kernel will not allow it.
//!
//! Rules (kernel/sys.c do_prlimit): anyone may lower limits or raise the soft limit up to the
//! hard limit of a process they own; raising the hard limit needs CAP_SYS_RESOURCE; no limit
//! may exceed fs.nr_open; acting on another user's process needs CAP_SYS_RESOURCE too. What
//! *this* process may do is judged from its own capabilities, never the target's.
//!
//! Like `apply`: raise-only unless `--allow-lower`, `--dry-run` shows and stops, and it asks (or
//! needs `--yes`). prlimit acts on live processes, so with a `--root` other than `/` it only
//! shows what it would do from that tree's `/proc/PID/limits`.

use crate::paths;
use crate::probe::{caps, fds};
use crate::report::{self, Report};
use crate::sysctl;
use anyhow::bail;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// PF_KTHREAD in the flags field of /proc/PID/stat (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Process to change.
    #[arg(long)]
    pub pid: i32,
    /// New soft limit (the hard limit is raised to it if needed) [default: the profile's nofile].
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// Show what would change and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow a limit below the current one (files already open stay open; new opens fail).
    #[arg(long)]
    pub allow_lower: bool,
    /// Profile whose `nofile` is the default target (default: the built-in `edge` profile).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// (soft, hard) of `pid` via prlimit(2) (read-only call).
pub fn get(pid: i32) -> std::io::Result<(u64, u64)> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: new_limit is null (read only); old_limit points to a valid, writable rlimit.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((old.rlim_cur, old.rlim_max))
}

/// Set (soft, hard) of `pid` via prlimit(2).
pub fn set(pid: i32, soft: u64, hard: u64) -> std::io::Result<()> {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: new_limit points to a valid rlimit that outlives the call; old_limit is null.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `<root>/proc/PID/stat` marks a kernel thread (their limits are not the server's).
pub fn is_kernel_thread(stat_text: &str) -> Option<bool> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat_text[stat_text.rfind(')')? + 1..];
    let flags: u64 = rest.split_whitespace().nth(6)?.parse().ok()?;
    Some(flags & PF_KTHREAD != 0)
}

fn fmt_lim(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    AlreadyThere,
    /// Lowering asked for without --allow-lower.
    WouldLower,
    DryRun,
    NotConfirmed,
    Changed {
        soft: u64,
        hard: u64,
    },
    /// The kernel reports another value than asked.
    Mismatch {
        soft: u64,
        hard: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct NofileReport {
    pub pid: i32,
    pub soft: u64,
    pub hard: u64,
    pub to: u64,
    pub new_hard: u64,
    /// Read from `--root`'s tree rather than the live process.
    pub from_tree: bool,
    pub outcome: Outcome,
}

impl NofileReport {
    fn head(&self) -> String {
        format!(
            "pid {}: RLIMIT_NOFILE soft {} hard {}{}\n",
            self.pid,
            fmt_lim(self.soft),
            fmt_lim(self.hard),
            if self.from_tree {
                " (from the tree's /proc; nothing is changed beneath a --root)"
            } else {
                ""
            }
        )
    }

    fn tail(&self) -> String {
        let mut o = String::new();
        let (to, pid) = (self.to, self.pid);
        match &self.outcome {
            Outcome::AlreadyThere => {
                let _ = writeln!(o, "Already {to}: nothing to do.");
            }
            Outcome::WouldLower => {
                let _ = writeln!(
                    o,
                    "{to} is below the current soft limit {}: not lowered (pass --allow-lower to lower it).",
                    fmt_lim(self.soft)
                );
            }
            Outcome::DryRun => {
                let _ = writeln!(
                    o,
                    "dry run: would set pid {pid} to soft {to} hard {}; nothing was changed.",
                    fmt_lim(self.new_hard)
                );
            }
            Outcome::NotConfirmed => {
                let _ = writeln!(o, "Not changed.");
            }
            Outcome::Changed { soft, hard } | Outcome::Mismatch { soft, hard } => {
                let _ = writeln!(
                    o,
                    "pid {pid}: RLIMIT_NOFILE now soft {} hard {}",
                    fmt_lim(*soft),
                    fmt_lim(*hard)
                );
                if matches!(self.outcome, Outcome::Mismatch { .. }) {
                    let _ = writeln!(
                        o,
                        "The kernel reports soft {} instead of {to}.",
                        fmt_lim(*soft)
                    );
                } else if to < self.soft {
                    let _ = writeln!(
                        o,
                        "Lowered: files already open stay open; new opens above {to} fail with EMFILE."
                    );
                }
            }
        }
        o
    }
}

impl Report for NofileReport {
    fn text(&self) -> String {
        format!("{}{}", self.head(), self.tail())
    }
    fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::AlreadyThere | Outcome::DryRun | Outcome::Changed { .. } => 0,
            Outcome::WouldLower | Outcome::NotConfirmed | Outcome::Mismatch { .. } => 1,
        }
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    if a.pid <= 0 {
        return report::usage(format!(
            "--pid must be a process id (a positive number), got {}",
            a.pid
        ));
    }
    let live = root == Path::new("/");
    if !live && !a.dry_run {
        return report::usage(format!(
            "nofile changes a live process with prlimit(2), but --root {} is a tree, not this \
             kernel: add --dry-run to see what it would do from the tree, or run without --root",
            root.display()
        ));
    }
    let to = match a.to {
        Some(n) => n,
        None => match crate::profile::load_for_cli(a.profile.as_deref())?.nofile {
            Some((n, _)) => n,
            None => return report::usage("no --to given and the profile sets no nofile"),
        },
    };
    if to == 0 {
        return report::usage(
            "--to 0 would leave the process unable to open any file; give a positive limit",
        );
    }
    let pid = a.pid;
    let pid_u = pid.unsigned_abs();
    let stat = std::fs::read_to_string(paths::under(root, &paths::pid(pid_u, "stat")));
    if let Ok(t) = &stat {
        if is_kernel_thread(t) == Some(true) {
            return report::usage(format!(
                "pid {pid} is a kernel thread: it opens no files and its limits are nobody's; give the server's pid (pgrep corestream)"
            ));
        }
    }
    let (soft, hard) = if live {
        match get(pid) {
            Ok(l) => l,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return report::usage(format!("no process {pid}: it has exited or the pid is wrong (is it in another PID namespace?)"))
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
                "not permitted to read the limits of pid {pid}: it belongs to another user and this process lacks \
                 CAP_SYS_RESOURCE. Run as that user or as root on the host"
            ),
            Err(e) => bail!("prlimit(pid {pid}): {e}"),
        }
    } else {
        let file = paths::under(root, &paths::pid(pid_u, "limits"));
        let text = std::fs::read_to_string(&file).map_err(|e| {
            crate::report::Usage(format!(
                "no process {pid} beneath the root: {}: {e}",
                file.display()
            ))
        })?;
        let (s, h) = fds::parse_nofile(&text)?;
        (
            s.unwrap_or(libc::RLIM_INFINITY),
            h.unwrap_or(libc::RLIM_INFINITY),
        )
    };
    let new_hard = hard.max(to);
    let mut r = NofileReport {
        pid,
        soft,
        hard,
        to,
        new_hard,
        from_tree: !live,
        outcome: Outcome::AlreadyThere,
    };
    if soft == to {
        return report::emit(&r, a.json);
    }
    if to < soft && !a.allow_lower {
        r.outcome = Outcome::WouldLower;
        return report::emit(&r, a.json);
    }
    let nr_open = sysctl::read(root, "fs.nr_open")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(cap) = nr_open {
        if to > cap {
            bail!(
                "{to} is above fs.nr_open = {cap}, the kernel's ceiling for any process's open-file limit. \
                 Raise fs.nr_open first (global: on the host, `sysctl -w fs.nr_open=...` or the profile's fs.nr_open), \
                 or ask for --to {cap} or less"
            );
        }
    }
    if new_hard > hard && caps::own().is_none_or(|c| !caps::has(c, caps::CAP_SYS_RESOURCE)) {
        bail!(
            "raising the hard limit above {} needs CAP_SYS_RESOURCE, which this process does not have \
             (CapEff of /proc/self/status). Options: run this as root on the host (containers usually drop \
             CAP_SYS_RESOURCE); set LimitNOFILE={to} in the service's unit and restart it; or raise only the \
             soft limit with --to {}",
            fmt_lim(hard),
            fmt_lim(hard)
        );
    }
    if a.dry_run {
        r.outcome = Outcome::DryRun;
        return report::emit(&r, a.json);
    }
    if !a.yes {
        report::print_text(&r.head())?;
        let q = format!("Set pid {pid} to soft {to} hard {}?", fmt_lim(new_hard));
        if !report::confirm(&q, "change a process's open-file limit")? {
            r.outcome = Outcome::NotConfirmed;
        } else {
            r.outcome = change(pid, to, new_hard)?;
        }
        report::print_text(&r.tail())?;
        return Ok(r.exit_code());
    }
    r.outcome = change(pid, to, new_hard)?;
    report::emit(&r, a.json)
}

fn change(pid: i32, to: u64, new_hard: u64) -> anyhow::Result<Outcome> {
    match set(pid, to, new_hard) {
        Ok(()) => {
            let (soft, hard) = get(pid).unwrap_or((to, new_hard));
            Ok(if soft == to {
                Outcome::Changed { soft, hard }
            } else {
                Outcome::Mismatch { soft, hard }
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
            "not permitted to set pid {pid}: the process belongs to another user (or changed credentials) \
             and this process lacks CAP_SYS_RESOURCE. Run as that user, or as root on the host"
        ),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => bail!(
            "the kernel rejected soft {to} hard {}: EINVAL (soft above hard, or above fs.nr_open)",
            fmt_lim(new_hard)
        ),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("process {pid} exited"),
        Err(e) => bail!("prlimit(pid {pid}): {e}"),
    }
}
