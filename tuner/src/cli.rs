//! The command line: every flag and subcommand of `corestream-tune`, public so the man pages
//! and shell completions are generated from the same definitions as `--help`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "corestream-tune",
    version,
    about = "See and fix what the Linux kernel does to an edge video server"
)]
pub struct Cli {
    /// Root directory that /proc and /sys are read (and written) beneath; tests point it at a fake tree.
    #[arg(long, global = true, default_value = "/", env = "CORESTREAM_TUNE_ROOT")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Take two samples, compute rates, and explain what is wrong with numbers and the exact fix.
    Diagnose(crate::diagnose::Args),
    /// Live per-CPU table of softirq, softnet drops, listen overflows and fds.
    Watch(crate::watch::Args),
    /// Count softirq tracepoints per vector per CPU through perf_event_open.
    Softirq(crate::softirq::Args),
    /// Show what `apply` would change: key, scope, current, target, action.
    Plan(crate::cmd::plan::Args),
    /// Write the profile at runtime (and with --persist, to sysctl.d, limits.d and systemd).
    Apply(crate::cmd::apply::Args),
    /// Exit 0 if the running system meets the profile, 1 with the list of drifts.
    Check(crate::cmd::check::Args),
    /// Restore values saved by `apply` and remove the files it wrote.
    Rollback(crate::cmd::rollback::Args),
    /// Print the effective profile as a sysctl.d, limits.d or systemd drop-in file.
    Profile(crate::cmd::profile::Args),
    /// Evidence-gated tuning: raise one step at a time, within the profile, logged and undoable.
    Auto(crate::cmd::auto::Args),
    /// Raise a running process's RLIMIT_NOFILE with prlimit(2), or explain why not.
    Nofile(crate::nofile::Args),
}
