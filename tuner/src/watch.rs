//! `corestream-tune watch`: a live per-CPU table (NET_RX/s, NET_TX/s, si%, softnet drops/s,
//! squeezes/s) plus listen overflows/s and fds, redrawn in place on a terminal and printed as
//! plain timestamped lines when stdout is not a terminal (logs, pipes).

use crate::diagnose::{parse_interval, target};
use crate::exporter::{self, Exporter};
use crate::finding::Status;
use crate::probe::{self, Sample};
use crate::rates::{self, Rates};
use crate::{metrics, rules};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Refresh period: `1s`, `500ms`, `1m` or plain seconds.
    #[arg(long, default_value = "1s", value_parser = parse_interval, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Stop after N refreshes (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Process whose fds are shown (repeatable); default: every process named `corestream`.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Process name looked up when no --pid is given.
    #[arg(long, default_value = probe::DEFAULT_PROCESS)]
    pub name: String,
    /// Serve the rates, findings and probes as Prometheus metrics at http://ADDR:PORT/metrics
    /// (port 0 picks a free one and prints it).
    #[arg(long, value_name = "ADDR:PORT")]
    pub prometheus: Option<std::net::SocketAddr>,
    /// Also write them to DIR/corestream_tune.prom each interval, for node_exporter's textfile
    /// collector (--collector.textfile.directory).
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<std::path::PathBuf>,
    /// Profile whose values the findings' remedies use (default: the built-in `edge` profile).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<std::path::PathBuf>,
    /// Print nothing per interval (with --prometheus or --textfile).
    #[arg(long)]
    pub quiet: bool,
}

/// `HH:MM:SS` UTC, without pulling in a date crate for one clock.
fn utc_clock() -> String {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn fds_text(b: &Sample) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = b.file_nr {
        out.push(format!("system fds {}/{}", n.allocated, n.max));
    }
    for p in &b.processes {
        let soft = p
            .soft_limit
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unlimited".into());
        out.push(format!("pid {} fds {}/{}", p.pid, p.open_fds, soft));
    }
    for pid in gone(b) {
        out.push(format!("pid {pid} gone (exited, or unreadable)"));
    }
    out
}

/// Watched processes the sample could not read: exited, or no longer readable.
fn gone(b: &Sample) -> impl Iterator<Item = &str> {
    b.unknown.iter().filter_map(|u| u.strip_prefix("pid "))
}

/// One screen for a terminal.
pub fn frame(r: &Rates, b: &Sample, clock: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "corestream-tune watch  {clock} UTC  every {:.1}s  (Ctrl-C to stop)\n",
        r.seconds
    );
    let _ = writeln!(
        o,
        "{:>5} {:>10} {:>10} {:>6} {:>9} {:>11}",
        "cpu", "NET_RX/s", "NET_TX/s", "si%", "drops/s", "squeezes/s"
    );
    for c in &r.cpus {
        let _ = writeln!(
            o,
            "{:>5} {:>10} {:>10} {:>6} {:>9} {:>11}",
            c.cpu,
            f(c.net_rx_per_s),
            f(c.net_tx_per_s),
            f(c.si_pct),
            f(c.softnet_dropped_per_s),
            f(c.softnet_squeezed_per_s)
        );
    }
    let get = |k: &str| f(r.counters.get(k).copied());
    let _ = writeln!(
        o,
        "\nlisten overflows/s {}   listen drops/s {}   SYN-queue drops/s {}",
        get("TcpExt:ListenOverflows"),
        get("TcpExt:ListenDrops"),
        get("TcpExt:TCPReqQFullDrop")
    );
    let _ = writeln!(o, "{}", fds_text(b).join("   "));
    o
}

/// Plain lines for logs: one per CPU and one summary, each stamped.
pub fn lines(r: &Rates, b: &Sample, clock: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for c in &r.cpus {
        let _ = writeln!(
            o,
            "{clock} cpu{} net_rx/s={} net_tx/s={} si%={} drops/s={} squeezes/s={}",
            c.cpu,
            f(c.net_rx_per_s),
            f(c.net_tx_per_s),
            f(c.si_pct),
            f(c.softnet_dropped_per_s),
            f(c.softnet_squeezed_per_s)
        );
    }
    let get = |k: &str| f(r.counters.get(k).copied());
    let mut summary = format!(
        "{clock} listen_overflows/s={} listen_drops/s={} syn_queue_drops/s={}",
        get("TcpExt:ListenOverflows"),
        get("TcpExt:ListenDrops"),
        get("TcpExt:TCPReqQFullDrop")
    );
    if let Some(n) = b.file_nr {
        let _ = write!(summary, " system_fds={}/{}", n.allocated, n.max);
    }
    for p in &b.processes {
        let soft = p
            .soft_limit
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unlimited".into());
        let _ = write!(summary, " pid{}_fds={}/{}", p.pid, p.open_fds, soft);
    }
    for pid in gone(b) {
        let _ = write!(summary, " pid{pid}_fds=gone");
    }
    let _ = writeln!(o, "{summary}");
    o
}

/// Findings and status of one interval, exported as metrics.
fn exposition(a: &Sample, b: &Sample, r: &Rates, prof: &crate::profile::Profile) -> String {
    let findings = rules::evaluate(a, b, r, prof);
    let worst = findings.iter().map(|f| f.severity).max();
    let status = Status::of(worst, !b.unknown.is_empty());
    metrics::render(r, b, &findings, status)
}

pub fn run(root: &Path, args: Args) -> anyhow::Result<u8> {
    if args.count == Some(0) {
        return crate::report::usage("--count must be at least 1");
    }
    let target = target(root, &args.pids, &args.name)?;
    let prof = crate::profile::load_for_cli(args.profile.as_deref())?;
    if let Some(dir) = &args.textfile {
        if !dir.is_dir() {
            return crate::report::usage(format!(
                "--textfile {}: not a directory (give node_exporter's --collector.textfile.directory)",
                dir.display()
            ));
        }
    }
    let tty = std::io::stdout().is_terminal();
    let mut memo = probe::Memo::default();
    let mut a = probe::take(root, &target, &mut memo);
    for note in &a.notes {
        say!("corestream-tune watch: not read: {note}");
    }
    let exporter = match args.prometheus {
        Some(addr) => {
            let e = Exporter::serve(addr)?;
            // Until the first interval ends, a scrape sees the levels of the first sample.
            e.publish(exposition(&a, &a, &rates::between(&a, &a, 1.0), &prof));
            // Stderr: stdout may be a pipe of plain lines; this is how a caller learns the port.
            say!(
                "corestream-tune watch: serving metrics on http://{}/metrics",
                e.addr
            );
            Some(e)
        }
        None => None,
    };
    let mut n = 0u64;
    loop {
        std::thread::sleep(args.interval);
        let b = probe::take(root, &target, &mut memo);
        for pid in gone(&b).filter(|p| !gone(&a).any(|q| q == *p)) {
            say!("corestream-tune watch: pid {pid} is gone (exited, or no longer readable)");
        }
        let secs = b.taken.duration_since(a.taken).as_secs_f64();
        let r = rates::between(&a, &b, secs);
        if exporter.is_some() || args.textfile.is_some() {
            let text = exposition(&a, &b, &r, &prof);
            if let Some(dir) = &args.textfile {
                exporter::write_textfile(dir, &text)?;
            }
            if let Some(e) = &exporter {
                e.publish(text);
            }
        }
        if !args.quiet {
            let clock = utc_clock();
            let text = if tty {
                // Home the cursor and clear the screen, then draw: the table stays in place.
                format!("\x1b[H\x1b[2J{}", frame(&r, &b, &clock))
            } else {
                lines(&r, &b, &clock)
            };
            let mut out = std::io::stdout().lock();
            if out
                .write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                // The reader went away (`| head`): stop quietly, that is not a failure.
                return Ok(0);
            }
        }
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            // Watching a process that is gone is not a healthy ending.
            return Ok(if gone(&b).next().is_some() { 3 } else { 0 });
        }
        a = b;
    }
}
