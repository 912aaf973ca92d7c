//! corestream-bench: the load harness. See docs/bench.md.
//!
//! - `compare`: corestream vs nginx side by side (wrk), 100 to 50k connections.
//! - `idle-scaling`: cost of one event-loop iteration with poll(2) vs epoll_wait(2) as idle
//!   connections grow.
//! - `swarm`: simulated HLS viewers on a constant clock against any live HLS URL.
//! - `publish`: a zero-CPU live HLS publisher to point servers and the swarm at.

mod compare;
// Used by the swarm (next commit); until then only by tests.
#[allow(dead_code)]
mod hls;
mod idle;
mod media;
mod plot;
mod procstat;
mod servers;
mod stats;
mod wrk;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "corestream-bench",
    version,
    about = "Load harness for Corestream"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// corestream vs nginx with wrk on the same files: playlist, segment and viewer-mix
    /// scenarios at 100, 1k, 10k and 50k connections; writes a table and a PNG to --out.
    Compare {
        /// Fewer rounds and shorter runs (a few minutes in all).
        #[arg(long)]
        quick: bool,
        /// Rounds per scenario and server [default: 3, --quick: 1].
        #[arg(long)]
        rounds: Option<usize>,
        /// Seconds per wrk run [default: 10, --quick: 4].
        #[arg(long)]
        duration: Option<u64>,
        /// Connection levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,50000")]
        connections: Vec<usize>,
        /// Scenarios, comma-separated: playlist, segment, mix.
        #[arg(long, value_delimiter = ',', default_value = "playlist,segment,mix")]
        scenarios: Vec<String>,
        /// Directory for the report (<date>-<host>.md, .png, .dat, .gp).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
        out: PathBuf,
        /// corestream binary to test [default: built with cargo next to this binary].
        #[arg(long)]
        corestream_bin: Option<PathBuf>,
        /// Do not run `cargo build --release -p corestream` first.
        #[arg(long)]
        no_build: bool,
        /// First port; level i uses port+2i (corestream) and port+2i+1 (nginx).
        #[arg(long, default_value_t = 18100)]
        port: u16,
        /// wrk --timeout in seconds: a response slower than this counts as a timeout error.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Time one event-loop iteration with poll(2) and epoll_wait(2) as idle connections grow.
    IdleScaling {
        /// Idle connection counts, comma-separated (each costs one descriptor here).
        #[arg(long, value_delimiter = ',', default_value = "0,1000,5000,10000,19000")]
        idle: Vec<usize>,
        /// Active connections that get one byte every iteration.
        #[arg(long, default_value_t = 100)]
        active: usize,
        /// Timed iterations per cell.
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        /// Directory for the report (<date>-<host>-idle-scaling.md, .png).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
        out: PathBuf,
    },
    /// Internal: hold N idle TCP connections until stdin closes (used by compare and
    /// idle-scaling to keep client ends out of the measuring process's fd table).
    #[command(hide = true)]
    IdleHolder {
        #[arg(long)]
        connect: std::net::SocketAddr,
        #[arg(long)]
        count: usize,
        /// Send one GET for this path on each connection and read the response first.
        #[arg(long)]
        request: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let res = match cli.cmd {
        Cmd::Compare {
            quick,
            rounds,
            duration,
            connections,
            scenarios,
            out,
            corestream_bin,
            no_build,
            port,
            timeout,
        } => (|| {
            let scenarios = scenarios
                .iter()
                .map(|s| compare::Scenario::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            if connections.contains(&0) {
                return Err("--connections: every level must be at least 1".to_string());
            }
            let rounds = rounds.unwrap_or(if quick { 1 } else { 3 });
            if rounds == 0 {
                return Err("--rounds must be at least 1".into());
            }
            compare::run(compare::Opts {
                quick,
                rounds,
                duration_s: duration.unwrap_or(if quick { 4 } else { 10 }).max(1),
                levels: connections,
                scenarios,
                out_dir: out,
                corestream_bin,
                build: !no_build,
                port,
                timeout_s: timeout.max(1),
                command_line,
            })
        })(),
        Cmd::IdleScaling {
            idle,
            active,
            iterations,
            out,
        } => {
            if active == 0 || iterations == 0 {
                Err("--active and --iterations must be at least 1".to_string())
            } else {
                idle::run(idle::Opts {
                    idle,
                    active,
                    iterations,
                    out_dir: out,
                    command_line,
                })
            }
        }
        Cmd::IdleHolder {
            connect,
            count,
            request,
        } => idle::holder(connect, count, request.as_deref()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corestream-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
