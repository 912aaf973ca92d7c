use clap::Parser;
use corestream::config::{Cli, Config};
use corestream::demo::{Demo, DemoConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut cfg = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            corestream_common::say!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    // The demo publishes into --root, or a temporary directory removed at exit.
    let demo = if cli.demo || cli.demo_ll {
        let created = cli.root.is_none();
        let dc = DemoConfig {
            dir: cfg.root.clone(),
            low_latency: cli.demo_ll,
            // Longer than CAN-SKIP-UNTIL (12 s), so delta updates have segments to skip.
            window: if cli.demo_ll { 10 } else { 6 },
            ..DemoConfig::default()
        };
        match Demo::start(dc) {
            Ok(d) => {
                cfg.announce = Some(d.master_path().to_string());
                Some((d, created))
            }
            Err(e) => {
                corestream_common::say!(
                    "corestream: cannot start the demo stream in {}: {e}",
                    cfg.root.display()
                );
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let root = cfg.root.clone();
    let result = corestream::serve(cfg);
    if let Some((d, created)) = demo {
        d.stop();
        if created {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
    // One way out for every thread (see shared::exit): the admin, watcher and signal
    // threads end with the process, never after it said it was done.
    match result {
        Ok(()) => corestream::shared::exit(0),
        Err(e) => {
            corestream_common::say!("corestream: {e}");
            corestream::shared::exit(1)
        }
    }
}
