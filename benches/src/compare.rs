//! `compare`: corestream and nginx side by side on the same files, same machine, same run.
//!
//! For each connection level both servers are started (laid out to fit the per-process fd
//! ceiling), then for each scenario the rounds alternate A B, B A, ... so drift on a shared
//! machine hits both. Each run is one or more wrk processes (one per <=16k connections, each
//! aimed at its own loopback address 127.0.0.K so every client has its own ephemeral-port
//! space) while the harness samples the server processes' CPU and RSS from /proc.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::die_with_parent;
use crate::holder::Holder;
use crate::machine::{self, cpus, host, today, tool_version};
use crate::media;
use crate::plot;
use crate::procstat;
use crate::servers::{self, Kind, Layout, Server};
use crate::stats::median;
use crate::wrk::{self, Pct, WrkResult};

const REPORT_LUA: &str = include_str!("../lua/report.lua");
const MIX_LUA: &str = include_str!("../lua/mix.lua");
/// Connections per wrk process: below the 20000 fd ceiling and the ~28k ephemeral ports a
/// single (source, destination) address pair offers.
pub const CONNS_PER_CLIENT: usize = 16_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Playlist,
    Segment,
    Mix,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Playlist => "playlist",
            Scenario::Segment => "segment",
            Scenario::Mix => "viewer-mix",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Scenario::Playlist => "/r2500/index.m3u8",
            Scenario::Segment => "/r2500/seg3.ts",
            Scenario::Mix => "/",
        }
    }
    pub fn parse(s: &str) -> Result<Scenario, String> {
        match s {
            "playlist" => Ok(Scenario::Playlist),
            "segment" => Ok(Scenario::Segment),
            "mix" | "viewer-mix" => Ok(Scenario::Mix),
            _ => Err(format!(
                "unknown scenario '{s}'; use playlist, segment or mix"
            )),
        }
    }
}

pub struct Opts {
    pub quick: bool,
    pub rounds: usize,
    pub duration_s: u64,
    pub levels: Vec<usize>,
    pub scenarios: Vec<Scenario>,
    pub out_dir: PathBuf,
    pub corestream_bin: Option<PathBuf>,
    pub build: bool,
    pub port: u16,
    pub timeout_s: u64,
    pub command_line: String,
}

#[derive(Debug, Clone, Default)]
struct Run {
    wrk: WrkResult,
    cpu_s: f64,
    rss_peak: u64,
    rss_base: u64,
    conns: usize,
    server_died: bool,
}

impl Run {
    fn bytes_per_conn(&self) -> f64 {
        (self.rss_peak as f64 - self.rss_base as f64) / self.conns.max(1) as f64
    }
}

/// Median figures over the rounds of one (level, scenario, server).
#[derive(Debug, Clone, Default)]
struct Summary {
    req_s: f64,
    bytes_s: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: [f64; 5],
    cpu_s: f64,
    cpu_us_per_req: f64,
    rss_peak: f64,
    bytes_per_conn: f64,
    rounds: usize,
    died: bool,
}

fn summarize(runs: &[Run]) -> Summary {
    let m = |f: &dyn Fn(&Run) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let q = |p: f64| {
        move |r: &Run| {
            r.wrk
                .quantiles_ms
                .get(&Pct::from_f64(p))
                .copied()
                .unwrap_or(f64::NAN)
        }
    };
    Summary {
        // Only successful answers count as throughput; a fast 503 is not a served request.
        req_s: m(&|r| {
            let ok = r.wrk.requests.saturating_sub(r.wrk.errors.status);
            if r.wrk.requests == 0 {
                0.0
            } else {
                r.wrk.req_per_s * ok as f64 / r.wrk.requests as f64
            }
        }),
        bytes_s: m(&|r| r.wrk.bytes_per_s),
        p50: m(&q(50.0)),
        p99: m(&q(99.0)),
        p999: m(&q(99.9)),
        errors: [
            m(&|r| r.wrk.errors.connect as f64),
            m(&|r| r.wrk.errors.read as f64),
            m(&|r| r.wrk.errors.write as f64),
            m(&|r| r.wrk.errors.timeout as f64),
            m(&|r| r.wrk.errors.status as f64),
        ],
        cpu_s: m(&|r| r.cpu_s),
        cpu_us_per_req: m(&|r| {
            if r.wrk.requests == 0 {
                f64::NAN
            } else {
                r.cpu_s * 1e6 / r.wrk.requests as f64
            }
        }),
        rss_peak: m(&|r| r.rss_peak as f64),
        bytes_per_conn: m(&|r| r.bytes_per_conn()),
        rounds: runs.len(),
        died: runs.iter().any(|r| r.server_died),
    }
}

fn client_split(conns: usize) -> Vec<usize> {
    let n = conns.div_ceil(CONNS_PER_CLIENT).max(1);
    (0..n)
        .map(|i| conns / n + usize::from(i < conns % n))
        .collect()
}

fn spawn_wrk(
    conns: usize,
    threads: usize,
    duration_s: u64,
    timeout_s: u64,
    script: &Path,
    url: &str,
) -> Result<Child, String> {
    die_with_parent(&mut Command::new("wrk"))
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{duration_s}s"))
        .arg(format!("--timeout={timeout_s}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk ({e}); install it: apt-get install -y wrk"))
}

fn run_one(
    server: &mut Server,
    scenario: Scenario,
    conns: usize,
    opts: &Opts,
    scripts: &BTreeMap<Scenario, PathBuf>,
) -> Result<Run, String> {
    let pids = server.pids();
    let (cpu0, rss_base) = procstat::totals(&pids);
    let split = client_split(conns);
    let threads = if split.len() == 1 { conns.min(2) } else { 1 };
    let mut kids = Vec::new();
    for (k, c) in split.iter().enumerate() {
        let url = format!(
            "http://127.0.0.{}:{}{}",
            k + 1,
            server.port,
            scenario.path()
        );
        kids.push(spawn_wrk(
            *c,
            threads,
            opts.duration_s,
            opts.timeout_s,
            &scripts[&scenario],
            &url,
        )?);
    }
    let mut rss_peak = rss_base;
    let deadline = Instant::now() + Duration::from_secs(opts.duration_s + opts.timeout_s + 30);
    loop {
        let running = kids
            .iter_mut()
            .map(|k| k.try_wait())
            .filter(|r| matches!(r, Ok(None)))
            .count();
        rss_peak = rss_peak.max(procstat::totals(&pids).1);
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            for k in &mut kids {
                let _ = k.kill();
            }
            return Err("wrk did not finish in time; killed".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cpu1, _) = procstat::totals(&pids);
    let mut parts = Vec::new();
    for k in kids {
        let out = k
            .wait_with_output()
            .map_err(|e| format!("wrk output: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        parts.push(
            wrk::parse(&text).map_err(|e| {
                format!("{e}\nwrk stderr: {}", String::from_utf8_lossy(&out.stderr))
            })?,
        );
    }
    Ok(Run {
        wrk: wrk::merge(&parts),
        cpu_s: cpu1 - cpu0,
        rss_peak,
        rss_base,
        conns,
        server_died: !server.alive(),
    })
}

/// RSS of a fresh server before and after `conns` idle keep-alive connections (each has
/// completed one playlist request), held by idle-holder children.
fn idle_memory(server: &Server, conns: usize) -> Result<(u64, u64), String> {
    let pids = server.pids();
    {
        // Warm-up so one-time allocations (first request, date cache) are not counted.
        let mut h = Holder::spawn(
            SocketAddr::from(([127, 0, 0, 1], server.port)),
            conns.min(100),
            Some("/r2500/index.m3u8"),
        )?;
        h.wait_ready()?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let base = procstat::totals(&pids).1;
    let mut holders = Vec::new();
    for (k, c) in client_split(conns).iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, k as u8 + 1], server.port));
        holders.push(Holder::spawn(addr, *c, Some("/r2500/index.m3u8"))?);
    }
    for h in &mut holders {
        h.wait_ready()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let with = procstat::totals(&pids).1;
    drop(holders);
    std::thread::sleep(Duration::from_millis(500));
    Ok((base, with))
}

pub fn run(opts: Opts) -> Result<(), String> {
    let nofile = machine::raise_nofile();
    if nofile < (CONNS_PER_CLIENT + 100) as u64 {
        eprintln!(
            "warning: RLIMIT_NOFILE is {nofile}; wrk processes are given up to {CONNS_PER_CLIENT} connections each and may fail. Raise it (ulimit -n 20000)."
        );
    }
    let bin = match &opts.corestream_bin {
        Some(b) => b.clone(),
        None => servers::corestream_binary(opts.build)?,
    };
    let work = std::env::temp_dir().join(format!("corestream-bench-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(work.clone());
    let root = work.join("www");
    media::build(&root).map_err(|e| format!("building media in {}: {e}", root.display()))?;
    let mut scripts = BTreeMap::new();
    for s in &opts.scenarios {
        let p = work.join(format!("{}.lua", s.name()));
        let text = match s {
            Scenario::Mix => format!("{MIX_LUA}\n{REPORT_LUA}"),
            _ => REPORT_LUA.to_string(),
        };
        fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        scripts.insert(*s, p);
    }
    let cpus = cpus();
    let mut notes = Vec::new();
    let mut results: BTreeMap<(usize, Scenario, &'static str), Summary> = BTreeMap::new();
    let mut idle_mem: Vec<(usize, &'static str, u64, u64)> = Vec::new();
    let total_runs = opts.levels.len() * opts.scenarios.len() * opts.rounds * 2;
    let mut done = 0;
    let t_start = Instant::now();

    for (li, &level) in opts.levels.iter().enumerate() {
        let layout: Layout = servers::layout_for(level, cpus);
        let cs_port = opts.port + (li as u16) * 2;
        let ng_port = cs_port + 1;
        let mut cs = Server::corestream(&bin, &root, cs_port, layout, &work)?;
        let mut ng = Server::nginx(&root, ng_port, layout, &work.join(format!("nginx-{level}")))?;
        let split = client_split(level);
        let addrs: Vec<String> = (1..=split.len()).map(|k| format!("127.0.0.{k}")).collect();
        let note = format!(
            "{level} connections: {}; {}; clients: {} wrk process(es) x {} connection(s) ({} thread(s) each) to {}",
            cs.describe,
            ng.describe,
            split.len(),
            split[0],
            if split.len() == 1 { level.min(2) } else { 1 },
            addrs.join(", ")
        );
        eprintln!("== {note}");
        notes.push(note);
        for server in [&cs, &ng] {
            let (base, with) = idle_memory(server, level)?;
            eprintln!(
                "idle memory {} with {level} keep-alive connections: {:.1} MB -> {:.1} MB = {:.0} B/conn",
                server.kind.name(),
                base as f64 / 1e6,
                with as f64 / 1e6,
                (with as f64 - base as f64) / level as f64
            );
            idle_mem.push((level, server.kind.name(), base, with));
        }
        for &sc in &opts.scenarios {
            let mut runs: BTreeMap<Kind, Vec<Run>> = BTreeMap::new();
            for round in 0..opts.rounds {
                let order = if round % 2 == 0 {
                    [Kind::Corestream, Kind::Nginx]
                } else {
                    [Kind::Nginx, Kind::Corestream]
                };
                for kind in order {
                    let server = if kind == Kind::Corestream {
                        &mut cs
                    } else {
                        &mut ng
                    };
                    let r = run_one(server, sc, level, &opts, &scripts)?;
                    done += 1;
                    eprintln!(
                        "[{done}/{total_runs} {:.0}s] {level} {} {} round {}: {:.0} req/s, {:.1} MB/s, p99 {:.2} ms, errors {}, cpu {:.2}s, rss {:.1} MB{}",
                        t_start.elapsed().as_secs_f64(),
                        sc.name(),
                        kind.name(),
                        round + 1,
                        r.wrk.req_per_s,
                        r.wrk.bytes_per_s / 1e6,
                        r.wrk.quantiles_ms.get(&Pct::from_f64(99.0)).copied().unwrap_or(f64::NAN),
                        r.wrk.errors.total(),
                        r.cpu_s,
                        r.rss_peak as f64 / 1e6,
                        if r.server_died { " SERVER DIED" } else { "" }
                    );
                    runs.entry(kind).or_default().push(r);
                    if !server.alive() {
                        return Err(format!(
                            "{} died during the run; see logs in {}",
                            kind.name(),
                            work.display()
                        ));
                    }
                }
            }
            for (kind, rs) in runs {
                results.insert((level, sc, kind.name()), summarize(&rs));
            }
        }
        cs.stop();
        ng.stop();
        // Let client TIME_WAIT sockets and server teardown settle before the next level.
        std::thread::sleep(Duration::from_secs(1));
    }

    let report = render(&opts, &notes, &results, &idle_mem, cpus);
    print!("{report}");
    fs::create_dir_all(&opts.out_dir).map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let stem = opts.out_dir.join(format!(
        "{}-{}{}",
        today(),
        host(),
        if opts.quick { "-quick" } else { "" }
    ));
    let (data, script) = plot_files(&opts, &results, &stem);
    let plot_note = match plot::gnuplot(&stem, &data, &script) {
        Ok(()) => format!(
            "Plot: {}",
            stem.with_extension("png")
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("warning: {e}");
            format!("Plot not made: {e}")
        }
    };
    let md = stem.with_extension("md");
    fs::write(&md, format!("{report}\n{plot_note}\n"))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    eprintln!("wrote {}", md.display());
    Ok(())
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn f2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

fn f1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b.abs() > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn render(
    opts: &Opts,
    notes: &[String],
    results: &BTreeMap<(usize, Scenario, &'static str), Summary>,
    idle_mem: &[(usize, &'static str, u64, u64)],
    cpus: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# corestream vs nginx on {} ({})\n", host(), today());
    let _ = writeln!(s, "Command: `{}`\n", opts.command_line);
    let _ = writeln!(
        s,
        "Machine: {cpus} CPUs, kernel {}, {}, {}. Servers and clients share the machine over loopback; other jobs may be running, so numbers are noisy. Servers alternate within every scenario (A B, B A, ...), {} round(s) of {} s each; every figure is the median over rounds. wrk --timeout {} s.\n",
        machine::kernel(),
        tool_version("nginx", "-v"),
        tool_version("wrk", "-v").split_whitespace().take(2).collect::<Vec<_>>().join(" "),
        opts.rounds,
        opts.duration_s,
        opts.timeout_s
    );
    let _ = writeln!(s, "Media: 2 s segments at 5, 2.5 and 1 Mbit/s ({} / {} / {} bytes, random bytes), live media playlists of {} bytes, a master playlist. Scenarios: playlist = GET /r2500/index.m3u8; segment = GET /r2500/seg3.ts; viewer-mix = master once per 100 playlist+segment pairs, renditions 30/50/20% (benches/lua/mix.lua).\n",
        media::segment_bytes(5000), media::segment_bytes(2500), media::segment_bytes(1000),
        media::media_playlist(0, media::SEGMENTS_PER_RENDITION, media::SEGMENT_SECONDS).len());
    let _ = writeln!(s, "Process layout per level (each process stays under the 20000-fd ceiling; several wrk processes each target their own 127.0.0.K address, which a 0.0.0.0 listener accepts):\n");
    for n in notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(s, "\nRSS is the peak sum over all server processes sampled every 200 ms during the run; dRSS/conn = (peak RSS - RSS before the run) / connections under load (user-space memory only; kernel socket buffers are not included; see the idle table below for the per-connection cost at rest). CPU = utime+stime of all server processes over the run. ok req/s counts 2xx/3xx answers only; latency percentiles are wrk's and include every answer.\n");
    let _ = writeln!(s, "| conns | scenario | server | ok req/s | MB/s | p50 ms | p99 ms | p99.9 ms | errors conn/read/write/timeout/non-2xx | CPU s | CPU us/req | RSS MB | dRSS/conn B |");
    let _ = writeln!(
        s,
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    );
    for ((level, sc, name), m) in results {
        let _ = writeln!(
            s,
            "| {level} | {} | {name}{} | {:.0} | {:.1} | {} | {} | {} | {:.0}/{:.0}/{:.0}/{:.0}/{:.0} | {:.2} | {} | {:.1} | {:.0} |",
            sc.name(),
            if m.died { " (DIED)" } else { "" },
            m.req_s,
            m.bytes_s / 1e6,
            f2(m.p50),
            f2(m.p99),
            f2(m.p999),
            m.errors[0],
            m.errors[1],
            m.errors[2],
            m.errors[3],
            m.errors[4],
            m.cpu_s,
            f1(m.cpu_us_per_req),
            m.rss_peak / 1e6,
            m.bytes_per_conn
        );
    }
    let _ = writeln!(s, "\nA latency of '-' means no request completed within the run: at 10k-50k connections all downloading a 687 KB segment at once, the box's ~1-4 GB/s is shared so thinly that a 10 s run may finish few or none; MB/s is the meaningful figure there.\n");
    let _ = writeln!(s, "Idle keep-alive memory: fresh servers, each connection made one playlist request and then stays open and silent (held by idle-holder child processes). B/conn = RSS delta / connections, user space only. nginx allocates its connection and event arrays for worker_connections (19000 per worker) when a worker starts, so that part of its per-connection cost is in its base RSS, not the delta.\n");
    let _ = writeln!(
        s,
        "| conns | server | RSS before MB | RSS with idle conns MB | B/conn |"
    );
    let _ = writeln!(s, "| ---: | --- | ---: | ---: | ---: |");
    for (level, name, base, with) in idle_mem {
        let _ = writeln!(
            s,
            "| {level} | {name} | {:.1} | {:.1} | {:.0} |",
            *base as f64 / 1e6,
            *with as f64 / 1e6,
            (*with as f64 - *base as f64) / *level as f64
        );
    }
    let _ = writeln!(s, "\ncorestream / nginx (req/s and MB/s: higher is better for corestream; p99, CPU per request and B/conn: lower is better):\n");
    let _ = writeln!(
        s,
        "| conns | scenario | req/s | MB/s | p99 | p99.9 | CPU us/req | dRSS/conn | rounds |"
    );
    let _ = writeln!(
        s,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for &level in &opts.levels {
        for &sc in &opts.scenarios {
            let (Some(a), Some(b)) = (
                results.get(&(level, sc, "corestream")),
                results.get(&(level, sc, "nginx")),
            ) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {level} | {} | {} | {} | {} | {} | {} | {} | {} |",
                sc.name(),
                ratio(a.req_s, b.req_s),
                ratio(a.bytes_s, b.bytes_s),
                ratio(a.p99, b.p99),
                ratio(a.p999, b.p999),
                ratio(a.cpu_us_per_req, b.cpu_us_per_req),
                ratio(a.bytes_per_conn, b.bytes_per_conn),
                a.rounds
            );
        }
    }
    s
}

fn plot_files(
    opts: &Opts,
    results: &BTreeMap<(usize, Scenario, &'static str), Summary>,
    stem: &Path,
) -> (String, String) {
    let mut data = String::from("# conns");
    let mut cols = Vec::new();
    for &sc in &opts.scenarios {
        for name in ["corestream", "nginx"] {
            let _ = write!(
                data,
                " {}_{name}_reqs {}_{name}_p99ms",
                sc.name(),
                sc.name()
            );
            cols.push((sc, name));
        }
    }
    data.push('\n');
    for &level in &opts.levels {
        let _ = write!(data, "{level}");
        for (sc, name) in &cols {
            match results.get(&(level, *sc, *name)) {
                Some(m) => {
                    let _ = write!(data, " {:.1} {:.3}", m.req_s, m.p99);
                }
                None => data.push_str(" NaN NaN"),
            }
        }
        data.push('\n');
    }
    let dat = stem.with_extension("dat");
    let png = stem.with_extension("png");
    let datn = dat
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let pngn = png
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut plots_t = Vec::new();
    let mut plots_p = Vec::new();
    for (i, (sc, name)) in cols.iter().enumerate() {
        let dash = if *name == "corestream" { 1 } else { 2 };
        let color = ["#1f77b4", "#d62728", "#2ca02c"][*sc as usize % 3];
        let style = format!(
            "w lp lw 2 dt {dash} lc rgb '{color}' title '{} {name}'",
            sc.name()
        );
        plots_t.push(format!("'{datn}' u 1:{} {style}", 2 + 2 * i));
        plots_p.push(format!("'{datn}' u 1:{} {style}", 3 + 2 * i));
    }
    let script = format!(
        "set terminal pngcairo size 1200,500 noenhanced\nset output '{pngn}'\nset multiplot layout 1,2 title 'corestream (solid) vs nginx (dashed), {}'\nset logscale x\nset xlabel 'connections'\nset grid\nset key bottom left font ',8'\nset logscale y\nset ylabel 'ok requests/s (log)'\nplot {}\nset key top left font ',8'\nset ylabel 'p99 latency (ms)'\nplot {}\nunset multiplot\n",
        host(),
        plots_t.join(", "),
        plots_p.join(", ")
    );
    (data, script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_split_stays_under_budget() {
        assert_eq!(client_split(100), vec![100]);
        assert_eq!(client_split(10_000), vec![10_000]);
        let s = client_split(50_000);
        assert_eq!(s.iter().sum::<usize>(), 50_000);
        assert!(s.len() >= 4 && s.iter().all(|&c| c <= CONNS_PER_CLIENT));
        let s = client_split(16_001);
        assert_eq!(s, vec![8001, 8000]);
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in [Scenario::Playlist, Scenario::Segment, Scenario::Mix] {
            assert_eq!(Scenario::parse(s.name()).unwrap(), s);
        }
        assert!(Scenario::parse("x").unwrap_err().contains("use playlist"));
    }
}
