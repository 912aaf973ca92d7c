//! `corestream-tune`: the SRE's CLI. Each subcommand lives in its own module of the library;
//! this file only parses arguments and turns results into exit codes.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "corestream-tune",
    version,
    about = "See and fix what the Linux kernel does to an edge video server"
)]
struct Cli {
    /// Root directory that /proc and /sys are read (and written) beneath; tests point it at a fake tree.
    #[arg(long, global = true, default_value = "/", env = "CORESTREAM_TUNE_ROOT")]
    root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Take two samples, compute rates, and explain what is wrong with numbers and the exact fix.
    Diagnose(corestream_tune::diagnose::Args),
    /// Live per-CPU table of softirq, softnet drops, listen overflows and fds.
    Watch(corestream_tune::watch::Args),
    /// Count softirq tracepoints per vector per CPU through perf_event_open.
    Softirq(corestream_tune::softirq::Args),
    /// Show what `apply` would change: key, scope, current, target, action.
    Plan(corestream_tune::plan::PlanArgs),
    /// Write the profile at runtime (and with --persist, to sysctl.d, limits.d and systemd).
    Apply(corestream_tune::plan::ApplyArgs),
    /// Exit 0 if the running system meets the profile, 1 with the list of drifts.
    Check(corestream_tune::plan::CheckArgs),
    /// Restore values saved by `apply` and remove the files it wrote.
    Rollback(corestream_tune::plan::RollbackArgs),
    /// Print the effective profile as a sysctl.d, limits.d or systemd drop-in file.
    Profile(corestream_tune::plan::ShowArgs),
    /// Raise a running process's RLIMIT_NOFILE with prlimit(2), or explain why not.
    Nofile(corestream_tune::nofile::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Diagnose(a) => corestream_tune::diagnose::run(&cli.root, a),
        Cmd::Watch(a) => corestream_tune::watch::run(&cli.root, a),
        Cmd::Softirq(a) => corestream_tune::softirq::run(&cli.root, a),
        Cmd::Plan(a) => corestream_tune::plan::run_plan(&cli.root, a),
        Cmd::Apply(a) => corestream_tune::plan::run_apply(&cli.root, a),
        Cmd::Check(a) => corestream_tune::plan::run_check(&cli.root, a),
        Cmd::Rollback(a) => corestream_tune::plan::run_rollback(&cli.root, a),
        Cmd::Profile(a) => corestream_tune::plan::run_show(&cli.root, a),
        Cmd::Nofile(a) => corestream_tune::nofile::run(&cli.root, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("corestream-tune: {e:#}");
            ExitCode::from(2)
        }
    }
}
