//! `corestream-tune nofile --pid PID [--to N]`: change a running process's RLIMIT_NOFILE with
//! prlimit(2), or explain exactly why the kernel will not allow it.
//!
//! Rules (kernel/sys.c do_prlimit): anyone may lower limits or raise the soft limit up to the
//! hard limit of a process they own; raising the hard limit needs CAP_SYS_RESOURCE; no limit
//! may exceed fs.nr_open; acting on another user's process needs CAP_SYS_RESOURCE too.

use crate::probe::caps;
use crate::sysctl;
use anyhow::bail;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Process to change.
    #[arg(long)]
    pub pid: i32,
    /// New soft limit (the hard limit is raised to it if needed) [default: the edge profile's nofile].
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
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

/// Whether our effective capability set (from `<root>/proc/self/status`) has CAP_SYS_RESOURCE.
pub fn have_cap_sys_resource(root: &Path) -> Option<bool> {
    let status =
        std::fs::read_to_string(crate::paths::under(root, crate::paths::SELF_STATUS)).ok()?;
    let c = caps::parse_eff(&status).ok()?;
    Some(caps::has(c, caps::CAP_SYS_RESOURCE))
}

fn fmt_lim(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    if a.pid <= 0 {
        bail!(
            "--pid must be a process id (a positive number), got {}",
            a.pid
        );
    }
    let to = match a.to {
        Some(n) => n,
        None => match crate::profile::edge().nofile {
            Some((n, _)) => n,
            None => bail!("no --to given and the edge profile sets no nofile"),
        },
    };
    if to == 0 {
        bail!("--to 0 would leave the process unable to open any file; give a positive limit");
    }
    let (soft, hard) = match get(a.pid) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            bail!("no process {}: it has exited or the pid is wrong (is it in another PID namespace?)", a.pid)
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => bail!(
            "not permitted to read the limits of pid {}: it belongs to another user and this process lacks \
             CAP_SYS_RESOURCE. Run as that user or as root on the host",
            a.pid
        ),
        Err(e) => bail!("prlimit(pid {}): {e}", a.pid),
    };
    println!(
        "pid {}: RLIMIT_NOFILE soft {} hard {}",
        a.pid,
        fmt_lim(soft),
        fmt_lim(hard)
    );
    if soft == to {
        println!("Already {to}: nothing to do.");
        return Ok(0);
    }
    let new_hard = hard.max(to);
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
    match set(a.pid, to, new_hard) {
        Ok(()) => {
            let (s, h) = get(a.pid).unwrap_or((to, new_hard));
            println!(
                "pid {}: RLIMIT_NOFILE now soft {} hard {}",
                a.pid,
                fmt_lim(s),
                fmt_lim(h)
            );
            if s != to {
                println!("The kernel reports soft {} instead of {to}.", fmt_lim(s));
                return Ok(1);
            }
            if to < soft {
                println!(
                    "Lowered: files already open stay open; new opens above {to} fail with EMFILE."
                );
            }
            Ok(0)
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let cap = have_cap_sys_resource(root);
            let mut msg = format!(
                "not permitted to set pid {} to soft {to} hard {}: ",
                a.pid,
                fmt_lim(new_hard)
            );
            if new_hard > hard && cap != Some(true) {
                msg.push_str(&format!(
                    "raising the hard limit above {} needs CAP_SYS_RESOURCE, which this process does not have{}. \
                     Options: run this as root on the host (containers usually drop CAP_SYS_RESOURCE); set \
                     LimitNOFILE={to} in the service's unit and restart it; or raise only the soft limit with --to {}",
                    fmt_lim(hard),
                    if cap.is_none() { " (could not read CapEff)" } else { " (CapEff lacks bit 24)" },
                    fmt_lim(hard)
                ));
            } else {
                msg.push_str(
                    "the process belongs to another user (or changed credentials) and this process lacks \
                     CAP_SYS_RESOURCE. Run as that user, or as root on the host",
                );
            }
            bail!(msg)
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => bail!(
            "the kernel rejected soft {to} hard {}: EINVAL (soft above hard, or above fs.nr_open)",
            fmt_lim(new_hard)
        ),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("process {} exited", a.pid),
        Err(e) => bail!("prlimit(pid {}): {e}", a.pid),
    }
}
