//! `corestream-tune`: the SRE's CLI. Each subcommand lives in its own module of the library;
//! this file only parses arguments (`cli.rs`) and turns results into exit codes.

use clap::Parser;
use corestream_tune::cli::{Cli, Cmd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Diagnose(a) => corestream_tune::diagnose::run(&cli.root, a),
        Cmd::Watch(a) => corestream_tune::watch::run(&cli.root, a),
        Cmd::Softirq(a) => corestream_tune::softirq::run(&cli.root, a),
        Cmd::Plan(a) => corestream_tune::cmd::plan::run(&cli.root, a),
        Cmd::Apply(a) => corestream_tune::cmd::apply::run(&cli.root, a),
        Cmd::Check(a) => corestream_tune::cmd::check::run(&cli.root, a),
        Cmd::Rollback(a) => corestream_tune::cmd::rollback::run(&cli.root, a),
        Cmd::Profile(a) => corestream_tune::cmd::profile::run(&cli.root, a),
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
