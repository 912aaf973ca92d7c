//! corestream-bench: the load harness. See docs/bench.md.
//!
//! - `compare`: corestream vs nginx side by side (wrk), 100 to 50k connections.
//! - `idle-scaling`: cost of one event-loop iteration with poll(2) vs epoll_wait(2) as idle
//!   connections grow.
//! - `swarm`: simulated HLS viewers on a constant clock against any live HLS URL.
//! - `publish`: a zero-CPU live HLS publisher to point servers and the swarm at.

mod compare;
mod hls;
mod idle;
mod media;
mod plot;
mod procstat;
mod publish;
mod servers;
mod stats;
mod swarm;
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
    /// Simulated HLS viewers on a constant clock against a live HLS URL (http://HOST:PORT/PATH,
    /// a master or media playlist). Prints per-kind latency percentiles, segment download
    /// time / duration, stalls and errors.
    Swarm {
        /// Simulated viewers (one keep-alive connection each).
        #[arg(long)]
        viewers: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Seconds over which viewers join (evenly spread).
        #[arg(long, default_value_t = 10.0)]
        ramp: f64,
        /// Share of viewers per variant, variants ordered by bandwidth high to low
        /// (e.g. 30,50,20). Empty: equal shares.
        #[arg(long, default_value = "")]
        rendition_mix: String,
        /// Seconds before an unanswered request counts as a timeout.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Viewers per process at most (each costs a descriptor; the ceiling is 20000).
        #[arg(long, default_value_t = 15000)]
        per_process: usize,
        /// Spread over at least this many processes (e.g. one per CPU).
        #[arg(long)]
        processes: Option<usize>,
        /// Also write the report (markdown) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Name for the server under test in the report (e.g. corestream, nginx).
        #[arg(long)]
        label: Option<String>,
        url: String,
    },
    /// Internal: one swarm process; prints counters and V2-serialized histograms.
    #[command(hide = true)]
    SwarmWorker {
        #[arg(long)]
        viewers: usize,
        #[arg(long, default_value_t = 0)]
        id_offset: usize,
        #[arg(long)]
        duration: f64,
        #[arg(long)]
        ramp: f64,
        #[arg(long)]
        timeout: f64,
        #[arg(long, default_value = "")]
        rendition_mix: String,
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        url: String,
    },
    /// Write a live HLS stream (master + renditions, sliding window, write-then-rename)
    /// into DIR for --duration seconds, without an encoder.
    Publish {
        #[arg(long)]
        dir: PathBuf,
        /// Segment duration in seconds.
        #[arg(long, default_value_t = 2.0)]
        segment_seconds: f64,
        /// Rendition bitrates in kbit/s, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5000,2500,1000")]
        renditions: Vec<u64>,
        /// Segments listed in each media playlist.
        #[arg(long, default_value_t = 6)]
        window: u64,
        /// Seconds to publish, then exit.
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
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

fn secs(v: f64, what: &str) -> Result<std::time::Duration, String> {
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(std::time::Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "{what} must be a number of seconds between 0 and 86400"
        ))
    }
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
        Cmd::Swarm {
            viewers,
            duration,
            ramp,
            rendition_mix,
            timeout,
            per_process,
            processes,
            report,
            label,
            url,
        } => (|| {
            let mix = swarm::parse_mix(&rendition_mix)?;
            if viewers == 0 {
                return Err("--viewers must be at least 1".to_string());
            }
            swarm::run(swarm::Opts {
                url,
                viewers,
                duration: secs(duration, "--duration")?,
                ramp: secs(ramp, "--ramp")?,
                mix,
                timeout: secs(timeout, "--timeout")?,
                per_process: per_process.max(1),
                processes,
                report,
                label,
                command_line,
            })
        })(),
        Cmd::SwarmWorker {
            viewers,
            id_offset,
            duration,
            ramp,
            timeout,
            rendition_mix,
            bind,
            url,
        } => (|| {
            swarm::worker(swarm::EngineOpts {
                target: swarm::parse_url(&url)?,
                viewers,
                id_offset,
                duration: secs(duration, "--duration")?,
                ramp: secs(ramp, "--ramp")?,
                mix: swarm::parse_mix(&rendition_mix)?,
                timeout: secs(timeout, "--timeout")?,
                bind,
            })
        })(),
        Cmd::Publish {
            dir,
            segment_seconds,
            renditions,
            window,
            duration,
        } => (|| {
            publish::run(publish::Opts {
                dir,
                segment_seconds,
                renditions,
                window,
                duration: secs(duration, "--duration")?,
            })
        })(),
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
