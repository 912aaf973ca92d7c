use clap::Parser;
use corestream::config::{Cli, Config};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    match corestream::serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corestream: {e}");
            ExitCode::FAILURE
        }
    }
}
