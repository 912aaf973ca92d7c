//! `compare`: corestream, nginx, h2o and the floor (see `floor.rs`) side by side on the same
//! files, same machine, same run.
//!
//! For each connection level the servers are started (laid out to fit the per-process fd
//! ceiling), then for each scenario the rounds alternate the order (A B C D, D C B A, ...) so
//! drift on a shared machine hits all alike. Each run is one or more wrk processes (one per
//! <=16k connections, each aimed at its own loopback address 127.0.0.K so every client has
//! its own ephemeral-port space) while the harness samples CPU and RSS of the server
//! processes and CPU of the wrk processes from /proc, so CPU per request splits into the
//! server's share and the load generator's.

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
/// Default connection levels and servers of a run.
pub const LEVELS: &str = "100,1000,10000,50000,100000";
pub const SERVERS: &str = "corestream,nginx,h2o,floor";
/// The playlist the playlist scenario asks for (and the floor answers with).
const PLAYLIST: &str = "/r2500/index.m3u8";

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
    pub servers: Vec<Kind>,
    pub out_dir: PathBuf,
    pub corestream_bin: Option<PathBuf>,
    pub build: bool,
    pub port: u16,
    pub timeout_s: u64,
    /// corestream with --incoming-cpu, the floor with SO_INCOMING_CPU.
    pub incoming_cpu: bool,
    /// The floor sends corestream's own playlist response (`floor --verbatim`).
    pub floor_verbatim: bool,
    /// Connections per wrk process and per server process (lowered only to try the
    /// multi-process layouts with few connections).
    pub conns_per_client: usize,
    pub conns_per_process: usize,
    pub command_line: String,
}

/// Whether `kind` takes part in `scenario` at `level` connections: the floor answers one
/// fixed playlist, so it has nothing to say about segments or the mix; h2o runs as one process.
fn takes_part(kind: Kind, scenario: Scenario, level: usize) -> bool {
    match kind {
        Kind::Floor => scenario == Scenario::Playlist,
        Kind::H2o => level <= servers::H2O_MAX_CONNECTIONS,
        Kind::Corestream | Kind::Nginx => true,
    }
}

#[derive(Debug, Clone, Default)]
struct Run {
    wrk: WrkResult,
    cpu_s: f64,
    client_cpu_s: f64,
    rss_peak: u64,
    rss_base: u64,
    conns: usize,
    server_died: bool,
    /// Connections the server closed during the run, by reason (corestream's /metrics).
    closes: BTreeMap<String, u64>,
}

/// Bytes per connection that memory grew by from `before` to `after`.
fn per_conn(before: u64, after: u64, conns: usize) -> f64 {
    (after as f64 - before as f64) / conns.max(1) as f64
}

impl Run {
    fn bytes_per_conn(&self) -> f64 {
        per_conn(self.rss_base, self.rss_peak, self.conns)
    }

    fn us_per_req(&self, cpu_s: f64) -> f64 {
        if self.wrk.requests == 0 {
            f64::NAN
        } else {
            cpu_s * 1e6 / self.wrk.requests as f64
        }
    }
}

/// corestream's closes per (level, scenario), by reason, summed over rounds.
type Closes = BTreeMap<(usize, Scenario), BTreeMap<String, u64>>;

/// Median figures over the rounds of one (level, scenario, server).
#[derive(Debug, Clone, Default)]
struct Summary {
    req_s: f64,
    /// Lowest and highest ok req/s of one round: on a shared 2-CPU box a peer's rounds can
    /// differ by 1.5x, which a median alone hides.
    req_s_range: (f64, f64),
    bytes_s: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: [f64; 5],
    cpu_s: f64,
    cpu_us_per_req: f64,
    client_us_per_req: f64,
    rss_peak: f64,
    bytes_per_conn: f64,
    rounds: usize,
    died: bool,
}

impl Summary {
    fn error_total(&self) -> f64 {
        self.errors.iter().sum()
    }
}

fn summarize(runs: &[Run]) -> Summary {
    let m = |f: &dyn Fn(&Run) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let ok_req_s = |r: &Run| {
        let ok = r.wrk.requests.saturating_sub(r.wrk.errors.status);
        if r.wrk.requests == 0 {
            0.0
        } else {
            r.wrk.req_per_s * ok as f64 / r.wrk.requests as f64
        }
    };
    let each: Vec<f64> = runs.iter().map(ok_req_s).collect();
    let req_s_range = (
        each.iter().copied().fold(f64::INFINITY, f64::min),
        each.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
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
        req_s: m(&ok_req_s),
        req_s_range,
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
        cpu_us_per_req: m(&|r| r.us_per_req(r.cpu_s)),
        client_us_per_req: m(&|r| r.us_per_req(r.client_cpu_s)),
        rss_peak: m(&|r| r.rss_peak as f64),
        bytes_per_conn: m(&|r| r.bytes_per_conn()),
        rounds: runs.len(),
        died: runs.iter().any(|r| r.server_died),
    }
}

fn client_split(conns: usize, per_client: usize) -> Vec<usize> {
    let n = conns.div_ceil(per_client.max(1)).max(1);
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

/// How long each wrk run at a level lasts: `base`, or three times what connecting that many
/// took (`setup`, timed in the idle-memory phase) if longer. wrk's clock includes its
/// connects: at 100k connections on a slow box a 4 s run ended before any connection was up,
/// and every server read 0 req/s with 0 errors.
fn run_secs(base: u64, setup: Duration) -> u64 {
    base.max((setup.as_secs_f64() * 3.0).ceil() as u64)
}

fn run_one(
    server: &mut Server,
    scenario: Scenario,
    conns: usize,
    secs: u64,
    opts: &Opts,
    scripts: &BTreeMap<Scenario, PathBuf>,
) -> Result<Run, String> {
    let pids = server.pids();
    let closes0 = server.closes();
    let (cpu0, rss_base) = procstat::totals(&pids);
    let split = client_split(conns, opts.conns_per_client);
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
            secs,
            opts.timeout_s,
            &scripts[&scenario],
            &url,
        )?);
    }
    // wrk's CPU, read from /proc before each check for its exit: an exited child stays a
    // zombie with its final times until try_wait reaps it, so the last reading is final
    // (up to the instant between the read and the exit).
    let mut client_cpu = vec![0.0f64; kids.len()];
    let mut done = vec![false; kids.len()];
    let mut rss_peak = rss_base;
    let deadline = Instant::now() + Duration::from_secs(secs + opts.timeout_s + 30);
    loop {
        for (i, k) in kids.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            client_cpu[i] = client_cpu[i].max(procstat::cpu_seconds(k.id() as i32));
            done[i] = !matches!(k.try_wait(), Ok(None));
        }
        rss_peak = rss_peak.max(procstat::totals(&pids).1);
        if done.iter().all(|d| *d) {
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
    let closes = if closes0.is_empty() {
        BTreeMap::new()
    } else {
        // The clients' closes reach the server just after wrk exits.
        std::thread::sleep(Duration::from_millis(500));
        let mut after = server.closes();
        for (reason, n) in after.iter_mut() {
            *n = n.saturating_sub(closes0.get(reason).copied().unwrap_or(0));
        }
        after.retain(|_, n| *n > 0);
        after
    };
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
        client_cpu_s: client_cpu.iter().sum(),
        rss_peak,
        rss_base,
        conns,
        server_died: !server.alive(),
        closes,
    })
}

/// Memory of a fresh server before and after `conns` idle keep-alive connections.
struct IdleMemory {
    level: usize,
    server: &'static str,
    rss_before: u64,
    rss_with: u64,
    /// Kernel slab memory of the whole box (/proc/meminfo Slab) before and with them.
    slab_before: u64,
    slab_with: u64,
    /// From starting the holders to every connection having its answer.
    setup: Duration,
}

impl IdleMemory {
    fn user_per_conn(&self) -> f64 {
        per_conn(self.rss_before, self.rss_with, self.level)
    }
    fn kernel_per_conn(&self) -> f64 {
        per_conn(self.slab_before, self.slab_with, self.level)
    }
}

/// RSS of a fresh server and the box's slab memory before and after `conns` idle keep-alive
/// connections (each has completed one playlist request), held by idle-holder children.
fn idle_memory(server: &Server, conns: usize, per_client: usize) -> Result<IdleMemory, String> {
    let pids = server.pids();
    {
        // Warm-up so one-time allocations (first request, date cache) are not counted.
        let mut h = Holder::spawn(
            SocketAddr::from(([127, 0, 0, 1], server.port)),
            conns.min(100),
            Some(PLAYLIST),
        )?;
        h.wait_ready()?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = procstat::totals(&pids).1;
    let slab_before = procstat::slab_bytes();
    let mut holders = Vec::new();
    let t0 = Instant::now();
    for (k, c) in client_split(conns, per_client).iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, k as u8 + 1], server.port));
        holders.push(Holder::spawn(addr, *c, Some(PLAYLIST))?);
    }
    for h in &mut holders {
        h.wait_ready()?;
    }
    let setup = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss_with = procstat::totals(&pids).1;
    let slab_with = procstat::slab_bytes();
    drop(holders);
    std::thread::sleep(Duration::from_millis(500));
    Ok(IdleMemory {
        level: conns,
        server: server.kind.name(),
        rss_before,
        rss_with,
        slab_before,
        slab_with,
        setup,
    })
}

/// corestream's answer to GET PLAYLIST on `port`, whole (head and body), as a client gets it.
fn capture_response(port: u16) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let fail = |e: std::io::Error| format!("--floor-verbatim: asking corestream on {port}: {e}");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    write!(
        c,
        "GET {PLAYLIST} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut r = Vec::new();
    c.read_to_end(&mut r).map_err(fail)?;
    // The floor keeps connections open: send what a keep-alive answer would say.
    let text = String::from_utf8_lossy(&r).replacen("Connection: close\r\n", "", 1);
    Ok(text.into_bytes())
}

/// Start `kind` for one level on `port`. `floor_response`: the floor sends this file as it
/// is (`floor --verbatim`) instead of its own head and the playlist.
#[allow(clippy::too_many_arguments)]
fn start(
    kind: Kind,
    bin: &Path,
    work: &Path,
    port: u16,
    layout: Layout,
    level: usize,
    incoming_cpu: bool,
    floor_response: Option<&Path>,
) -> Result<Server, String> {
    let root = work.join("www");
    match kind {
        Kind::Corestream => Server::corestream(bin, &root, port, layout, work, incoming_cpu),
        Kind::Nginx => Server::nginx(&root, port, layout, &work.join(format!("nginx-{level}"))),
        Kind::H2o => Server::h2o(
            &root,
            port,
            cpus(),
            servers::H2O_MAX_CONNECTIONS + 100,
            &work.join(format!("h2o-{level}")),
        ),
        Kind::Floor => {
            let playlist = root.join(PLAYLIST.trim_start_matches('/'));
            Server::floor(
                floor_response.unwrap_or(&playlist),
                floor_response.is_some(),
                port,
                layout,
                work,
                incoming_cpu,
            )
        }
    }
}

pub fn run(opts: Opts) -> Result<(), String> {
    let nofile = machine::raise_nofile();
    if nofile < (opts.conns_per_client + 100) as u64 {
        corestream_common::say!(
            "warning: RLIMIT_NOFILE is {nofile}; wrk processes are given up to {} connections each and may fail. Raise it (ulimit -n 20000).",
            opts.conns_per_client
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
    let mut results: BTreeMap<(usize, Scenario, Kind), Summary> = BTreeMap::new();
    let mut closes = Closes::new();
    let mut idle_mem: Vec<IdleMemory> = Vec::new();
    let mut total_runs = 0;
    for &l in &opts.levels {
        for &sc in &opts.scenarios {
            total_runs += opts
                .servers
                .iter()
                .filter(|&&k| takes_part(k, sc, l))
                .count();
        }
    }
    total_runs *= opts.rounds;
    let mut done = 0;
    let t_start = Instant::now();

    for (li, &level) in opts.levels.iter().enumerate() {
        let layout: Layout = servers::layout_for(level, cpus, opts.conns_per_process);
        let mut kinds: Vec<Kind> = opts
            .servers
            .iter()
            .copied()
            .filter(|&k| opts.scenarios.iter().any(|&sc| takes_part(k, sc, level)))
            .collect();
        // With --floor-verbatim the floor starts last: it sends what corestream answered.
        if opts.floor_verbatim {
            kinds.sort_by_key(|&k| k == Kind::Floor);
        }
        let mut running: Vec<Server> = Vec::new();
        for (ki, &kind) in kinds.iter().enumerate() {
            let port = opts.port + (li * Kind::ALL.len() + ki) as u16;
            let floor_response = match running.iter().find(|s| s.kind == Kind::Corestream) {
                Some(cs) if kind == Kind::Floor && opts.floor_verbatim => {
                    let path = work.join(format!("floor-response-{level}.http"));
                    fs::write(&path, capture_response(cs.port)?)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    Some(path)
                }
                _ => None,
            };
            running.push(start(
                kind,
                &bin,
                &work,
                port,
                layout,
                level,
                opts.incoming_cpu,
                floor_response.as_deref(),
            )?);
        }
        let split = client_split(level, opts.conns_per_client);
        let addrs: Vec<String> = (1..=split.len()).map(|k| format!("127.0.0.{k}")).collect();
        let mut note = format!("{level} connections: ");
        for s in &running {
            let _ = write!(note, "{}; ", s.describe);
        }
        let _ = write!(
            note,
            "clients: {} wrk process(es) x {} connection(s) ({} thread(s) each) to {}",
            split.len(),
            split[0],
            if split.len() == 1 { level.min(2) } else { 1 },
            addrs.join(", ")
        );
        for k in opts.servers.iter().filter(|k| !kinds.contains(k)) {
            let _ = write!(note, "; {} left out at this level", k.name());
        }
        corestream_common::say!("== {note}");
        notes.push(note);
        let mut setup = Duration::ZERO;
        for server in &running {
            let m = idle_memory(server, level, opts.conns_per_client)?;
            corestream_common::say!(
                "idle memory {} with {level} keep-alive connections: {:.1} MB -> {:.1} MB = {:.0} B/conn user space; kernel slab {:+.0} B/conn (both ends)",
                m.server,
                m.rss_before as f64 / 1e6,
                m.rss_with as f64 / 1e6,
                m.user_per_conn(),
                m.kernel_per_conn()
            );
            setup = setup.max(m.setup);
            idle_mem.push(m);
        }
        let secs = run_secs(opts.duration_s, setup);
        if let Some(n) = notes.last_mut() {
            let _ = write!(
                n,
                "; runs of {secs} s (connecting them took up to {:.1} s in the idle phase)",
                setup.as_secs_f64()
            );
        }
        for &sc in &opts.scenarios {
            let mut runs: BTreeMap<Kind, Vec<Run>> = BTreeMap::new();
            let mut order: Vec<usize> = (0..running.len())
                .filter(|&i| takes_part(running[i].kind, sc, level))
                .collect();
            for round in 0..opts.rounds {
                // A B C D, D C B A, ...: drift within a round hits the servers alike.
                if round > 0 {
                    order.reverse();
                }
                for &i in &order {
                    let server = &mut running[i];
                    let kind = server.kind;
                    let r = run_one(server, sc, level, secs, &opts, &scripts)?;
                    done += 1;
                    corestream_common::say!(
                        "[{done}/{total_runs} {:.0}s] {level} {} {} round {}: {:.0} req/s, {:.1} MB/s, p99 {:.2} ms, errors {}, cpu server {:.2}s wrk {:.2}s, rss {:.1} MB{}",
                        t_start.elapsed().as_secs_f64(),
                        sc.name(),
                        kind.name(),
                        round + 1,
                        r.wrk.req_per_s,
                        r.wrk.bytes_per_s / 1e6,
                        r.wrk.quantiles_ms.get(&Pct::from_f64(99.0)).copied().unwrap_or(f64::NAN),
                        r.wrk.errors.total(),
                        r.cpu_s,
                        r.client_cpu_s,
                        r.rss_peak as f64 / 1e6,
                        if r.server_died { " SERVER DIED" } else { "" }
                    );
                    if !r.closes.is_empty() {
                        let c = closes.entry((level, sc)).or_default();
                        for (reason, n) in &r.closes {
                            *c.entry(reason.clone()).or_default() += n;
                        }
                    }
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
                results.insert((level, sc, kind), summarize(&rs));
            }
        }
        for s in &mut running {
            s.stop();
        }
        // Let client TIME_WAIT sockets and server teardown settle before the next level.
        std::thread::sleep(Duration::from_secs(1));
    }

    let report = render(&opts, &notes, &results, &idle_mem, &closes, cpus);
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
            corestream_common::say!("warning: {e}");
            format!("Plot not made: {e}")
        }
    };
    let md = stem.with_extension("md");
    fs::write(&md, format!("{report}\n{plot_note}\n"))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    corestream_common::say!("wrote {}", md.display());
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
    results: &BTreeMap<(usize, Scenario, Kind), Summary>,
    idle_mem: &[IdleMemory],
    closes: &Closes,
    cpus: usize,
) -> String {
    let names: Vec<&str> = opts.servers.iter().map(|k| k.name()).collect();
    let mut s = String::new();
    let _ = writeln!(s, "# {} on {} ({})\n", names.join(" vs "), host(), today());
    let _ = writeln!(s, "Command: `{}`\n", opts.command_line);
    let _ = writeln!(
        s,
        "Machine: {cpus} CPUs, kernel {}, {}, {}, {}. Servers and clients share the machine over loopback; other jobs may be running, so numbers are noisy. Servers alternate within every scenario (A B C D, D C B A, ...), {} round(s) of {} s each (or three times what connecting took at that level, if longer: wrk's clock includes its connects; see each level's layout below); every figure is the median over rounds (req/s also shows the lowest and highest round, and each ratio the range from corestream's worst round against the other's best to the reverse). wrk --timeout {} s.\n",
        machine::kernel(),
        tool_version("nginx", "-v"),
        tool_version("h2o", "--version"),
        tool_version("wrk", "-v").split_whitespace().take(2).collect::<Vec<_>>().join(" "),
        opts.rounds,
        opts.duration_s,
        opts.timeout_s
    );
    let _ = writeln!(s, "Media: 2 s segments at 5, 2.5 and 1 Mbit/s ({} / {} / {} bytes, random bytes), live media playlists of {} bytes, a master playlist. Scenarios: playlist = GET {PLAYLIST}; segment = GET /r2500/seg3.ts; viewer-mix = master once per 100 playlist+segment pairs, renditions 30/50/20% (benches/lua/mix.lua). The floor (benches/src/floor.rs: one read and one write per request of a response built at start, the same playlist bytes, no parsing) takes part in the playlist scenario only; h2o (one process) up to {} connections.\n",
        media::segment_bytes(5000), media::segment_bytes(2500), media::segment_bytes(1000),
        media::media_playlist(0, media::SEGMENTS_PER_RENDITION, media::SEGMENT_SECONDS).len(),
        servers::H2O_MAX_CONNECTIONS);
    if opts.floor_verbatim {
        let _ = writeln!(s, "The floor sends corestream's own playlist response (--floor-verbatim: head and body as corestream answered a GET at the start of each level, Date and validators included), so the client parses the same bytes from both and the ratio is the servers' work alone.\n");
    }
    if opts.incoming_cpu {
        let _ = writeln!(s, "Connections steered by CPU (--incoming-cpu): corestream's workers and the floor's threads each take the connections whose SYN arrives on their CPU (SO_INCOMING_CPU); nginx and h2o have no such setting and run as usual.\n");
    }
    let _ = writeln!(s, "Process layout per level (each process stays under the 20000-fd ceiling; several wrk processes each target their own 127.0.0.K address, which a 0.0.0.0 listener accepts):\n");
    for n in notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(s, "\nRSS is the peak sum over all server processes sampled every 200 ms during the run; dRSS/conn = (peak RSS - RSS before the run) / connections under load (user-space memory only; see the idle table below for the per-connection cost at rest). CPU = utime+stime of all server processes over the run (server) and of the wrk processes (wrk), from /proc/PID/stat; per request = CPU / requests answered. ok req/s counts 2xx/3xx answers only; latency percentiles are wrk's and include every answer.\n");
    let _ = writeln!(s, "| conns | scenario | server | ok req/s | rounds' ok req/s | MB/s | p50 ms | p99 ms | p99.9 ms | errors conn/read/write/timeout/non-2xx | CPU s | server CPU us/req | wrk CPU us/req | server share | RSS MB | dRSS/conn B |");
    let _ = writeln!(
        s,
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for ((level, sc, kind), m) in results {
        let share = m.cpu_us_per_req / (m.cpu_us_per_req + m.client_us_per_req) * 100.0;
        let _ = writeln!(
            s,
            "| {level} | {} | {}{} | {:.0} | {:.0}-{:.0} | {:.1} | {} | {} | {} | {:.0}/{:.0}/{:.0}/{:.0}/{:.0} | {:.2} | {} | {} | {}% | {:.1} | {:.0} |",
            sc.name(),
            kind.name(),
            if m.died { " (DIED)" } else { "" },
            m.req_s,
            m.req_s_range.0,
            m.req_s_range.1,
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
            f2(m.cpu_us_per_req),
            f2(m.client_us_per_req),
            f1(share),
            m.rss_peak / 1e6,
            m.bytes_per_conn
        );
    }
    let _ = writeln!(s, "\nA latency of '-' means no request completed within the run: at 10k-100k connections all downloading a 687 KB segment at once, the box's ~1-4 GB/s is shared so thinly that a 10 s run may finish few or none; MB/s is the meaningful figure there.\n");
    if !closes.is_empty() {
        let _ = writeln!(s, "Connections corestream closed during each scenario's runs, by reason, summed over its rounds and processes (`corestream_connections_closed_total` from each process's admin port, before each run and 0.5 s after wrk exits): `peer` is the client closing (wrk at its end), `error` a send that failed because the client had already gone (wrk resets downloads in flight when it exits); the rest are corestream's own decisions (timeouts, `peer_gone`, caps) and explain errors the clients saw.\n");
        let _ = writeln!(s, "| conns | scenario | closed by reason |");
        let _ = writeln!(s, "| ---: | --- | --- |");
        for ((level, sc), by) in closes {
            let text: Vec<String> = by.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let _ = writeln!(s, "| {level} | {} | {} |", sc.name(), text.join(", "));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "Idle keep-alive memory: fresh servers, each connection made one playlist request and then stays open and silent (held by idle-holder child processes). User space = server RSS delta / connections. nginx allocates its connection and event arrays for worker_connections (19000 per worker) when a worker starts, so that part of its per-connection cost is in its base RSS, not the delta. Kernel = delta of the box's slab memory (/proc/meminfo Slab) / connections: both ends of each loopback connection (client and server socket, inode, file, dentry, and the server's epoll item) and whatever else the box allocated meanwhile, so read it as an upper bound and compare servers within one level.\n");
    let _ = writeln!(
        s,
        "| conns | server | RSS before MB | RSS with idle conns MB | user B/conn | slab delta MB | kernel B/conn (both ends) |"
    );
    let _ = writeln!(s, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for m in idle_mem {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} |",
            m.level,
            m.server,
            m.rss_before as f64 / 1e6,
            m.rss_with as f64 / 1e6,
            m.user_per_conn(),
            (m.slab_with as f64 - m.slab_before as f64) / 1e6,
            m.kernel_per_conn()
        );
    }
    let others: Vec<Kind> = opts
        .servers
        .iter()
        .copied()
        .filter(|&k| k != Kind::Corestream)
        .collect();
    let _ = writeln!(s, "\ncorestream / each other server, same run (req/s and MB/s: higher is better for corestream; p99, p99.9, CPU per request and dRSS/conn: lower is better):\n");
    let _ = writeln!(
        s,
        "| conns | scenario | vs | req/s | req/s worst-best round pair | MB/s | p99 | p99.9 | server CPU us/req | dRSS/conn | errors corestream / other | rounds |"
    );
    let _ = writeln!(
        s,
        "| ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    );
    for &level in &opts.levels {
        for &sc in &opts.scenarios {
            for &other in &others {
                let (Some(a), Some(b)) = (
                    results.get(&(level, sc, Kind::Corestream)),
                    results.get(&(level, sc, other)),
                ) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {level} | {} | {} | {} | {}-{} | {} | {} | {} | {} | {} | {:.0} / {:.0} | {} |",
                    sc.name(),
                    other.name(),
                    ratio(a.req_s, b.req_s),
                    ratio(a.req_s_range.0, b.req_s_range.1),
                    ratio(a.req_s_range.1, b.req_s_range.0),
                    ratio(a.bytes_s, b.bytes_s),
                    ratio(a.p99, b.p99),
                    ratio(a.p999, b.p999),
                    ratio(a.cpu_us_per_req, b.cpu_us_per_req),
                    ratio(a.bytes_per_conn, b.bytes_per_conn),
                    a.error_total(),
                    b.error_total(),
                    a.rounds
                );
            }
        }
    }
    s
}

fn plot_files(
    opts: &Opts,
    results: &BTreeMap<(usize, Scenario, Kind), Summary>,
    stem: &Path,
) -> (String, String) {
    let mut data = String::from("# conns");
    let mut cols = Vec::new();
    for &sc in &opts.scenarios {
        for &kind in &opts.servers {
            if !opts.levels.iter().any(|&l| takes_part(kind, sc, l)) {
                continue;
            }
            let name = kind.name();
            let _ = write!(
                data,
                " {}_{name}_reqs {}_{name}_p99ms",
                sc.name(),
                sc.name()
            );
            cols.push((sc, kind));
        }
    }
    data.push('\n');
    for &level in &opts.levels {
        let _ = write!(data, "{level}");
        for (sc, kind) in &cols {
            match results.get(&(level, *sc, *kind)) {
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
    for (i, (sc, kind)) in cols.iter().enumerate() {
        let dash = *kind as usize + 1;
        let color = ["#1f77b4", "#d62728", "#2ca02c"][*sc as usize % 3];
        let style = format!(
            "w lp lw 2 dt {dash} lc rgb '{color}' title '{} {}'",
            sc.name(),
            kind.name()
        );
        plots_t.push(format!("'{datn}' u 1:{} {style}", 2 + 2 * i));
        plots_p.push(format!("'{datn}' u 1:{} {style}", 3 + 2 * i));
    }
    let script = format!(
        "set terminal pngcairo size 1200,500 noenhanced\nset output '{pngn}'\nset multiplot layout 1,2 title 'corestream (solid) vs nginx, h2o, floor (dashed), {}'\nset logscale x\nset xlabel 'connections'\nset grid\nset key bottom left font ',8'\nset logscale y\nset ylabel 'ok requests/s (log)'\nplot {}\nset key top left font ',8'\nset ylabel 'p99 latency (ms)'\nplot {}\nunset multiplot\n",
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
    fn a_run_outlasts_the_connecting() {
        assert_eq!(run_secs(10, Duration::from_millis(800)), 10);
        assert_eq!(run_secs(4, Duration::from_millis(4_100)), 13);
        assert_eq!(run_secs(4, Duration::ZERO), 4);
    }

    #[test]
    fn client_split_stays_under_budget() {
        assert_eq!(client_split(100, CONNS_PER_CLIENT), vec![100]);
        assert_eq!(client_split(10_000, CONNS_PER_CLIENT), vec![10_000]);
        for level in [50_000, 100_000] {
            let s = client_split(level, CONNS_PER_CLIENT);
            assert_eq!(s.iter().sum::<usize>(), level);
            assert!(s.iter().all(|&c| c <= CONNS_PER_CLIENT));
            // One destination address each, every one within 127.0.0.0/8's last octet.
            assert!(s.len() < 255);
        }
        assert_eq!(client_split(100_000, CONNS_PER_CLIENT).len(), 7);
        let s = client_split(16_001, CONNS_PER_CLIENT);
        assert_eq!(s, vec![8001, 8000]);
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in [Scenario::Playlist, Scenario::Segment, Scenario::Mix] {
            assert_eq!(Scenario::parse(s.name()).unwrap(), s);
        }
        assert!(Scenario::parse("x").unwrap_err().contains("use playlist"));
    }

    #[test]
    fn who_takes_part() {
        // The floor answers one fixed playlist: nothing to say about segments or the mix.
        assert!(takes_part(Kind::Floor, Scenario::Playlist, 100_000));
        assert!(!takes_part(Kind::Floor, Scenario::Segment, 100));
        assert!(!takes_part(Kind::Floor, Scenario::Mix, 100));
        // h2o is one process: only levels its descriptors can hold.
        assert!(takes_part(Kind::H2o, Scenario::Segment, 1_000));
        assert!(!takes_part(Kind::H2o, Scenario::Playlist, 10_000));
        for sc in [Scenario::Playlist, Scenario::Segment, Scenario::Mix] {
            assert!(takes_part(Kind::Corestream, sc, 100_000));
            assert!(takes_part(Kind::Nginx, sc, 100_000));
        }
    }
}
