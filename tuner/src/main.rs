//! `corestream-tune`: the SRE's CLI. Each subcommand lives in its own module of the library;
//! this file only parses arguments (`cli.rs`) and turns results into exit statuses
//! (`report::exit`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN or failed, 64 usage).

use clap::Parser;
use corestream_tune::cli::{Cli, Cmd};
use corestream_tune::report::{self, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap exits 2 on a usage error, which monitoring reads as CRITICAL.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // One spelling of the root (`r4`, `./r4/`, a symlink): backups compare it.
    let root = std::fs::canonicalize(&cli.root).unwrap_or(cli.root);
    let root = root.as_path();
    let result = match cli.cmd {
        Cmd::Diagnose(a) => corestream_tune::diagnose::run(root, a),
        Cmd::Watch(a) => corestream_tune::watch::run(root, a),
        Cmd::Softirq(a) => corestream_tune::softirq::run(root, a),
        Cmd::Plan(a) => corestream_tune::cmd::plan::run(root, a),
        Cmd::Apply(a) => corestream_tune::cmd::apply::run(root, a),
        Cmd::Check(a) => corestream_tune::cmd::check::run(root, a),
        Cmd::Rollback(a) => corestream_tune::cmd::rollback::run(root, a),
        Cmd::Profile(a) => corestream_tune::cmd::profile::run(root, a),
        Cmd::Nofile(a) => corestream_tune::nofile::run(root, a),
        Cmd::Auto(a) => corestream_tune::cmd::auto::run(root, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            corestream_common::say!("corestream-tune: {e:#}");
            ExitCode::from(report::error_exit(&e))
        }
    }
}
