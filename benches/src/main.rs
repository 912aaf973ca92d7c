//! corestream-bench: the load harness. See docs/bench.md.
//!
//! - `compare`: corestream vs nginx side by side (wrk), 100 to 50k connections.
//! - `idle-scaling`: cost of one event-loop iteration with poll(2) vs epoll_wait(2) as idle
//!   connections grow.
//! - `swarm`: simulated HLS viewers on a constant clock against any live HLS URL.
//! - `publish`: a zero-CPU live HLS publisher to point servers and the swarm at.

mod child;
mod compare;
mod floor;
mod herd;
mod hls;
mod holder;
mod idle;
mod machine;
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
use std::time::Duration;

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
    /// corestream vs nginx, h2o and the floor with wrk on the same files: playlist, segment
    /// and viewer-mix scenarios at 100 to 100k connections; writes a table and a PNG to --out.
    Compare {
        /// Fewer rounds and shorter runs (a few minutes in all).
        #[arg(long)]
        quick: bool,
        /// Rounds per scenario and server [default: 3, --quick: 1].
        #[arg(long)]
        rounds: Option<usize>,
        /// Length of each wrk run, whole seconds (e.g. 10s, 1m) [default: 10s, --quick: 4s].
        #[arg(long, value_parser = whole_secs)]
        duration: Option<u64>,
        /// Connection levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = compare::LEVELS)]
        connections: Vec<usize>,
        /// Scenarios, comma-separated: playlist, segment, mix.
        #[arg(long, value_delimiter = ',', default_value = "playlist,segment,mix")]
        scenarios: Vec<String>,
        /// Servers, comma-separated: corestream, nginx, h2o, floor.
        #[arg(long, value_delimiter = ',', default_value = compare::SERVERS)]
        servers: Vec<String>,
        /// Connections per wrk process (lower it only to try the multi-client layout).
        #[arg(long, default_value_t = compare::CONNS_PER_CLIENT, hide = true)]
        conns_per_client: usize,
        /// Connections per server process (lower it only to try the multi-process layout).
        #[arg(long, default_value_t = servers::CONNS_PER_PROCESS, hide = true)]
        conns_per_process: usize,
        /// Directory for the report (<date>-<host>.md, .png, .dat, .gp).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
        out: PathBuf,
        /// corestream binary to test [default: built with cargo next to this binary].
        #[arg(long)]
        corestream_bin: Option<PathBuf>,
        /// Do not run `cargo build --release -p corestream` first.
        #[arg(long)]
        no_build: bool,
        /// First port; level i uses port+4i .. port+4i+3 (one per server).
        #[arg(long, default_value_t = 18100)]
        port: u16,
        /// wrk --timeout (whole seconds): a response slower than this counts as a timeout error.
        #[arg(long, default_value = "10s", value_parser = whole_secs)]
        timeout: u64,
        /// Steer connections by the CPU they arrive on: corestream with --incoming-cpu and
        /// the floor's listeners with SO_INCOMING_CPU (nginx and h2o have no such setting).
        #[arg(long)]
        incoming_cpu: bool,
        /// The floor sends corestream's own playlist response (head and body, as corestream
        /// answered it at the start of the level) instead of its short head: the client's
        /// cost of a longer head is then the same for both, and the ratio is the server's.
        #[arg(long)]
        floor_verbatim: bool,
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
    /// Simulated HLS viewers against a live HLS URL (http://HOST:PORT/PATH, a master or media
    /// playlist): classic reloads on the target-duration clock, or LL-HLS with --ll. Prints
    /// per-kind latency percentiles, segment download time / duration, stalls, live-edge
    /// jumps and errors; with --ll also part delivery from publication and the live-edge
    /// distance.
    Swarm {
        /// Simulated viewers (one keep-alive connection each).
        #[arg(long)]
        viewers: usize,
        /// How long to run (e.g. 60s, 2m; a plain number is seconds).
        #[arg(long, default_value = "60s", value_parser = duration)]
        duration: Duration,
        /// Time over which viewers join (evenly spread).
        #[arg(long, default_value = "10s", value_parser = duration)]
        ramp: Duration,
        /// Share of viewers per variant, variants ordered by bandwidth high to low
        /// (e.g. 30,50,20). Empty: equal shares.
        #[arg(long, default_value = "")]
        rendition_mix: String,
        /// Time before an unanswered request counts as a timeout.
        #[arg(long, default_value = "10s", value_parser = duration)]
        timeout: Duration,
        /// Viewers per process at most (each costs a descriptor, two with --ll; the ceiling
        /// is 20000 descriptors per process, which also caps this).
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
        /// Low-Latency HLS: on playlists with EXT-X-PART-INF, start PART-HOLD-BACK from the
        /// live edge, ask for each next part with a blocking reload (_HLS_msn/_HLS_part),
        /// fetch preload-hinted parts at once (two connections per viewer), and report part
        /// delivery from publication and the live-edge distance.
        #[arg(long)]
        ll: bool,
        /// With --ll: take each part's publication time from its file's mtime under DIR (the
        /// directory the server serves, on this machine) instead of PROGRAM-DATE-TIME.
        #[arg(long, value_name = "DIR")]
        published_from: Option<PathBuf>,
        url: String,
    },
    /// Internal: one swarm process; prints counters and V2-serialized histograms.
    #[command(hide = true)]
    SwarmWorker {
        #[arg(long)]
        viewers: usize,
        #[arg(long, default_value_t = 0)]
        id_offset: usize,
        #[arg(long, value_parser = duration)]
        duration: Duration,
        #[arg(long, value_parser = duration)]
        ramp: Duration,
        #[arg(long, value_parser = duration)]
        timeout: Duration,
        #[arg(long, default_value = "")]
        rendition_mix: String,
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        #[arg(long)]
        ll: bool,
        #[arg(long)]
        published_from: Option<PathBuf>,
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
        /// How long to publish, then exit.
        #[arg(long, default_value = "600s", value_parser = duration)]
        duration: Duration,
    },
    /// A thundering herd on an edge: --viewers connections ask for the same new segment at
    /// once, from an origin producing it in real time; corestream --origin against nginx
    /// proxy_cache + proxy_cache_lock, alternated: time until all have it, origin requests,
    /// then hit throughput.
    Herd {
        #[arg(long, default_value_t = 5000)]
        viewers: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 300_000)]
        segment_bytes: usize,
        /// The origin's time to the head of its answer.
        #[arg(long, default_value = "50ms", value_parser = duration)]
        origin_delay: Duration,
        /// The origin's time to produce the body (sent in 20 slices).
        #[arg(long, default_value = "1s", value_parser = duration)]
        origin_duration: Duration,
        /// corestream binary [default: target/release/corestream].
        #[arg(long, default_value = "target/release/corestream")]
        corestream_bin: PathBuf,
        /// Client threads reading the viewers' sockets (one thread alone is the bottleneck
        /// of a 5000-viewer herd on a small box).
        #[arg(long, default_value_t = 2)]
        client_threads: usize,
        /// Also write the table here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Internal: the floor server for compare (one read and one write per request of a
    /// fixed response: the head and the bytes of --body).
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long)]
        body: PathBuf,
        /// --body is a whole response, head included, sent as it is (e.g. `curl -si` of
        /// another server's answer: the floor then sends the same bytes, and what is left
        /// between the two is the server's work, not the client's cost of a longer head).
        #[arg(long)]
        verbatim: bool,
        /// Thread i's listener takes the connections arriving on the i-th CPU.
        #[arg(long)]
        incoming_cpu: bool,
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

/// A command-line duration (`500ms`, `10s`, `2m`; a plain number is seconds), up to a day.
fn duration(s: &str) -> Result<Duration, String> {
    corestream_common::duration::parse_within(s, Duration::ZERO, Duration::from_secs(86_400))
}

/// The same in whole seconds of at least one (wrk takes `-d` and `--timeout` in seconds).
fn whole_secs(s: &str) -> Result<u64, String> {
    Ok(duration(s)?.as_secs_f64().ceil().max(1.0) as u64)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let res = match cli.cmd {
        Cmd::Herd {
            viewers,
            rounds,
            segment_bytes,
            origin_delay,
            origin_duration,
            corestream_bin,
            client_threads,
            out,
        } => herd::run(&herd::Options {
            viewers,
            rounds,
            segment_bytes,
            origin_delay,
            origin_duration,
            corestream_bin,
            out,
            client_threads,
        }),
        Cmd::Compare {
            quick,
            rounds,
            duration,
            connections,
            scenarios,
            servers,
            conns_per_client,
            conns_per_process,
            out,
            corestream_bin,
            no_build,
            port,
            timeout,
            incoming_cpu,
            floor_verbatim,
        } => (|| {
            let scenarios = scenarios
                .iter()
                .map(|s| compare::Scenario::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let servers = servers
                .iter()
                .map(|s| servers::Kind::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            if !servers.contains(&servers::Kind::Corestream) {
                return Err(
                    "--servers must include corestream (the others are its yardsticks)".into(),
                );
            }
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
                servers,
                conns_per_client: conns_per_client.max(1),
                conns_per_process: conns_per_process.max(1),
                out_dir: out,
                corestream_bin,
                build: !no_build,
                port,
                timeout_s: timeout.max(1),
                incoming_cpu,
                floor_verbatim,
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
            ll,
            published_from,
            url,
        } => (|| {
            let mix = swarm::parse_mix(&rendition_mix)?;
            if viewers == 0 {
                return Err("--viewers must be at least 1".to_string());
            }
            swarm::run(swarm::Opts {
                url,
                viewers,
                duration,
                ramp,
                mix,
                timeout,
                per_process: per_process.max(1),
                processes,
                report,
                label,
                ll,
                published_from,
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
            ll,
            published_from,
            url,
        } => (|| {
            swarm::worker(swarm::EngineOpts {
                target: swarm::parse_url(&url)?,
                viewers,
                id_offset,
                duration,
                ramp,
                mix: swarm::parse_mix(&rendition_mix)?,
                timeout,
                bind,
                ll,
                published_from,
                until: None,
            })
        })(),
        Cmd::Publish {
            dir,
            segment_seconds,
            renditions,
            window,
            duration,
        } => publish::run(publish::Opts {
            dir,
            segment_seconds,
            renditions,
            window,
            duration,
        }),
        Cmd::Floor {
            listen,
            threads,
            body,
            verbatim,
            incoming_cpu,
        } => std::fs::read(&body)
            .map_err(|e| format!("{}: {e}", body.display()))
            .and_then(|b| {
                let response = if verbatim {
                    floor::verbatim(b)?
                } else {
                    floor::response(&b, "application/vnd.apple.mpegurl")
                };
                floor::run(listen, threads, response, incoming_cpu)
            }),
        Cmd::IdleHolder {
            connect,
            count,
            request,
        } => holder::holder(connect, count, request.as_deref()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            corestream_common::say!("corestream-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared parser (units, plain seconds) within a day; wrk's whole seconds round up.
    #[test]
    fn command_line_durations_take_units() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("25h").unwrap_err().contains("out of range"));
        assert_eq!(whole_secs("10s"), Ok(10));
        assert_eq!(whole_secs("1.5s"), Ok(2));
        assert_eq!(whole_secs("100ms"), Ok(1));
        assert!(
            Cli::try_parse_from(["b", "swarm", "--viewers", "1", "--ramp", "1m", "http://x/"])
                .is_ok()
        );
    }
}
