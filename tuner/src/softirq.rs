//! `corestream-tune softirq`: how many softirqs of each vector (NET_RX, TIMER, ...) each CPU runs,
//! and how much time they take.
//!
//! Counts: perf_event_open counting the `irq:softirq_entry` tracepoint, one counter per
//! (CPU, vector) with a kernel filter `vec == N` (PERF_EVENT_IOC_SET_FILTER). That counts every
//! entry exactly, on every online CPU, with no sampling.
//!
//! Time: `softirq_entry` and `softirq_exit` sampled on every event (period 1) with their
//! timestamps into one ring buffer per CPU (PERF_EVENT_IOC_SET_OUTPUT), drained every 50 ms.
//! Softirqs do not nest on a CPU, so each exit closes the entry before it on the same CPU.
//! Lost records (a ring overrun on a very busy CPU) are counted and reported.
//!
//! When perf events are not permitted (`kernel.perf_event_paranoid`, missing CAP_PERFMON, no
//! tracefs, or `--root` is not `/`) it says why and falls back to deltas of `/proc/softirqs`,
//! which count the same events; the softirq share of each CPU (`si`, from `/proc/stat`) is
//! printed beside the counts in every mode.

use crate::diagnose::parse_interval;
use crate::paths;
use crate::probe::{self, caps, softirqs::Softirqs, stat::Stat};
use anyhow::Context;
use perf_event::events::Tracepoint;
use perf_event::{Builder, Counter, SampleFlag, Sampler};
use serde::Serialize;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SCHEMA: &str = "corestream-tune/softirq/v1";

/// Where tracefs may be mounted, newest convention first.
pub use crate::paths::TRACEFS_DIRS;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to count: `5s`, `500ms`, `1m` or plain seconds.
    #[arg(long, default_value = "5s", value_parser = parse_interval, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Do not use perf events; report /proc/softirqs deltas (what the fallback shows).
    #[arg(long)]
    pub no_perf: bool,
    /// Do not mount tracefs privately when it is not mounted.
    #[arg(long)]
    pub no_mount: bool,
    /// Count only; do not record entry/exit timestamps (time per vector).
    #[arg(long)]
    pub no_time: bool,
    /// Print JSON (schema in docs/sre-diagnose.md).
    #[arg(long)]
    pub json: bool,
}

/// Vector numbers and names from the tracepoint's `format` file
/// (`__print_symbolic(REC->vec, { 0, "HI" }, { 1, "TIMER" }, ...)`).
pub fn parse_vector_names(format: &str) -> anyhow::Result<Vec<(u32, String)>> {
    let start = format
        .find("__print_symbolic(REC->vec")
        .context("format has no __print_symbolic(REC->vec, ...) table")?;
    let mut out = Vec::new();
    let mut rest = &format[start..];
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        if let Some((n, name)) = inner.split_once(',') {
            if let Ok(n) = n.trim().parse::<u32>() {
                out.push((n, name.trim().trim_matches('"').to_string()));
            }
        }
        rest = &rest[open + close + 1..];
    }
    if out.is_empty() {
        anyhow::bail!("no {{ number, \"NAME\" }} pairs in the vector table");
    }
    Ok(out)
}

/// Tracepoint id from `<tracefs>/events/irq/<name>/id`.
pub fn tracepoint_id(tracefs: &Path, name: &str) -> anyhow::Result<u64> {
    let p = tracefs.join("events/irq").join(name).join("id");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{} is not a number: {text:?}", p.display()))
}

/// The tracefs directory holding the softirq tracepoints, `Ok(None)` when none is mounted, or why
/// a mounted one cannot be used (tracefs is root-only by default).
fn find_tracefs(root: &Path) -> Result<Option<PathBuf>, String> {
    for dir in TRACEFS_DIRS.iter().map(|d| root.join(d)) {
        let id = dir.join("events/irq/softirq_entry/id");
        match std::fs::File::open(&id) {
            Ok(_) => return Ok(Some(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "{} is not readable by this user (uid {}): tracefs is root-only; run as root",
                    id.display(),
                    // SAFETY: getuid has no preconditions and cannot fail.
                    unsafe { libc::getuid() }
                ));
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

/// Mount tracefs at /sys/kernel/tracing in a private mount namespace of this process only, so the
/// host's mounts are untouched. Needs CAP_SYS_ADMIN and a single-threaded process.
fn mount_tracefs_privately() -> anyhow::Result<PathBuf> {
    let live = paths::shown(paths::TRACEFS);
    let target = CString::new(live.as_str()).context("path")?;
    let fstype = CString::new("tracefs").context("fstype")?;
    let root = CString::new("/").context("root")?;
    // SAFETY: unshare takes only flags; the CLI is single-threaded when it gets here.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNS)");
    }
    // SAFETY: valid NUL-terminated strings that outlive the calls; null data/source are allowed.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error())
                .context("make / private in the new mount namespace");
        }
        if libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error())
                .context("mount -t tracefs on /sys/kernel/tracing");
        }
    }
    Ok(PathBuf::from(live))
}

/// Open per-(CPU, vector) counters, or the reason they cannot be used.
pub struct PerfCounters {
    pub tracepoint_id: u64,
    pub tracefs: PathBuf,
    pub mounted_privately: bool,
    pub vectors: Vec<(u32, String)>,
    pub cpus: Vec<u32>,
    /// counters[cpu_index][vector_index]
    counters: Vec<Vec<Counter>>,
}

fn set_filter(counter: &Counter, filter: &str) -> std::io::Result<()> {
    let c = CString::new(filter)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: the fd is an open perf event owned by `counter`; the kernel copies the NUL-terminated
    // filter string during the call and does not keep the pointer.
    let rc = unsafe {
        perf_event_open_sys::ioctls::SET_FILTER(
            counter.as_raw_fd(),
            c.as_ptr() as *mut libc::c_char,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn permission_hint(root: &Path) -> String {
    let paranoid = crate::sysctl::read(root, "kernel.perf_event_paranoid")
        .unwrap_or_else(|_| "unknown".into());
    let c = caps::own().unwrap_or(0);
    let perfmon = caps::has(c, caps::CAP_PERFMON) || caps::has(c, caps::CAP_SYS_ADMIN);
    format!(
        "kernel.perf_event_paranoid = {paranoid}; this process {} CAP_PERFMON/CAP_SYS_ADMIN. System-wide tracepoint counting needs CAP_PERFMON (run as root) or kernel.perf_event_paranoid <= -1",
        if perfmon { "has" } else { "lacks" }
    )
}

impl PerfCounters {
    /// Set up counting, or return the reason it is not possible here.
    pub fn open(root: &Path, cpus: &[u32], allow_mount: bool) -> Result<PerfCounters, String> {
        if root != Path::new("/") {
            return Err(format!(
                "--root is {}: perf events observe the running kernel, not a tree beneath a root",
                root.display()
            ));
        }
        let mut mounted_privately = false;
        let tracefs = match find_tracefs(root)? {
            Some(t) => t,
            None => {
                let supported = std::fs::read_to_string(paths::shown(paths::FILESYSTEMS))
                    .map(|f| f.contains("tracefs"))
                    .unwrap_or(false);
                if !supported {
                    return Err("the kernel has no tracefs (CONFIG_FTRACE off), so the softirq tracepoints do not exist".into());
                }
                if !allow_mount {
                    return Err("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing) and --no-mount was given".into());
                }
                match mount_tracefs_privately() {
                    Ok(t) if matches!(find_tracefs(Path::new("/")), Ok(Some(_))) => {
                        mounted_privately = true;
                        t
                    }
                    Ok(_) => return Err("mounted tracefs privately but it has no events/irq/softirq_entry".into()),
                    Err(e) => {
                        return Err(format!(
                            "tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing, and mounting it privately failed ({e:#}); mount it: mount -t tracefs nodev /sys/kernel/tracing"
                        ))
                    }
                }
            }
        };
        let id = tracepoint_id(&tracefs, "softirq_entry").map_err(|e| format!("{e:#}"))?;
        let format_path = tracefs.join("events/irq/softirq_entry/format");
        let vectors = std::fs::read_to_string(&format_path)
            .map_err(anyhow::Error::from)
            .and_then(|f| parse_vector_names(&f))
            .map_err(|e| {
                format!(
                    "cannot read the vector names from {}: {e:#}",
                    format_path.display()
                )
            })?;
        let mut counters = Vec::with_capacity(cpus.len());
        for &cpu in cpus {
            let mut row = Vec::with_capacity(vectors.len());
            for (n, name) in &vectors {
                let mut c = Builder::new(Tracepoint::with_id(id))
                    .one_cpu(cpu as usize)
                    .any_pid()
                    .include_kernel()
                    .build()
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::EACCES) | Some(libc::EPERM) => {
                            format!("perf_event_open refused ({e}): {}", permission_hint(root))
                        }
                        Some(libc::EMFILE) => format!(
                            "perf_event_open: out of file descriptors ({} CPUs x {} vectors counters); raise `ulimit -n`",
                            cpus.len(),
                            vectors.len()
                        ),
                        _ => format!("perf_event_open(tracepoint {id}, cpu {cpu}) failed: {e}"),
                    })?;
                set_filter(&c, &format!("vec == {n}")).map_err(|e| {
                    format!("PERF_EVENT_IOC_SET_FILTER(\"vec == {n}\") for {name} failed: {e}")
                })?;
                c.reset().map_err(|e| format!("reset counter: {e}"))?;
                row.push(c);
            }
            counters.push(row);
        }
        Ok(PerfCounters {
            tracepoint_id: id,
            tracefs,
            mounted_privately,
            vectors,
            cpus: cpus.to_vec(),
            counters,
        })
    }

    pub fn enable(&mut self) -> std::io::Result<()> {
        for c in self.counters.iter_mut().flatten() {
            c.enable()?;
        }
        Ok(())
    }

    /// Counts per CPU per vector since enable, then stop.
    pub fn finish(&mut self) -> std::io::Result<Vec<Vec<u64>>> {
        for c in self.counters.iter_mut().flatten() {
            c.disable()?;
        }
        self.counters
            .iter_mut()
            .map(|row| row.iter_mut().map(|c| c.read()).collect())
            .collect()
    }

    pub fn counter_count(&self) -> usize {
        self.counters.iter().map(Vec::len).sum()
    }
}

/// Byte offset of the `vec` field in the raw tracepoint record, from the `format` file
/// (`field:unsigned int vec;\toffset:8;\tsize:4;`).
pub fn parse_vec_offset(format: &str) -> anyhow::Result<usize> {
    let line = format
        .lines()
        .find(|l| l.contains(" vec;"))
        .context("format has no `vec` field")?;
    let off = line
        .split(';')
        .find_map(|f| f.trim().strip_prefix("offset:"))
        .context("`vec` field has no offset")?;
    off.trim()
        .parse()
        .with_context(|| format!("bad vec offset {off:?}"))
}

/// Entry/exit timestamps per CPU, paired into time per vector.
pub struct TimeSampler {
    entry_id: u64,
    exit_id: u64,
    vec_offset: usize,
    /// vector number -> column in the report
    columns: Vec<u32>,
    /// One ring per CPU, fed by that CPU's entry (owner) and exit (redirected) events.
    rings: Vec<(Sampler, Counter)>,
}

/// What the timestamps added up to.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// ns[cpu_index][vector column]
    pub ns: Vec<Vec<u64>>,
    open: Vec<Option<(usize, u64)>>,
    pub lost: u64,
    pub unpaired: u64,
}

/// Per-CPU ring sizes to try: 4 MiB holds about 50,000 softirqs (entry + exit records, 80 bytes),
/// a million per second per CPU at the 50 ms drain period. Without CAP_IPC_LOCK the kernel limits
/// locked perf buffers (`kernel.perf_event_mlock_kb`), so smaller rings are tried next.
const RING_BYTES: &[usize] = &[4 << 20, 1 << 20, 256 << 10];

/// Locked memory all rings together may take, so a many-CPU box does not pin gigabytes.
const RING_BUDGET: usize = 64 << 20;

/// Ring sizes to try on a box with `ncpu` CPUs: the list above, capped by the shared budget.
pub fn ring_sizes(ncpu: usize) -> Vec<usize> {
    let cap = (RING_BUDGET / ncpu.max(1)).max(RING_BYTES[RING_BYTES.len() - 1]);
    RING_BYTES.iter().copied().filter(|&b| b <= cap).collect()
}

impl TimeSampler {
    pub fn open(p: &PerfCounters) -> Result<TimeSampler, String> {
        let exit_id = tracepoint_id(&p.tracefs, "softirq_exit").map_err(|e| format!("{e:#}"))?;
        let format_path = p.tracefs.join("events/irq/softirq_entry/format");
        let vec_offset = std::fs::read_to_string(&format_path)
            .map_err(anyhow::Error::from)
            .and_then(|f| parse_vec_offset(&f))
            .map_err(|e| format!("{}: {e:#}", format_path.display()))?;
        let mut rings = Vec::with_capacity(p.cpus.len());
        for &cpu in &p.cpus {
            let build = |id: u64| {
                Builder::new(Tracepoint::with_id(id))
                    .one_cpu(cpu as usize)
                    .any_pid()
                    .include_kernel()
                    .sample(SampleFlag::TIME | SampleFlag::RAW)
                    .sample_period(1)
                    .build()
            };
            let mut entry = None;
            let mut last_err = None;
            for bytes in ring_sizes(p.cpus.len()) {
                match build(p.tracepoint_id).and_then(|c| c.sampled(bytes)) {
                    Ok(s) => {
                        entry = Some(s);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            let entry = entry.ok_or_else(|| {
                format!(
                    "sampling softirq_entry on cpu {cpu}: {}",
                    last_err.map(|e| e.to_string()).unwrap_or_default()
                )
            })?;
            let exit =
                build(exit_id).map_err(|e| format!("sampling softirq_exit on cpu {cpu}: {e}"))?;
            // SAFETY: both fds are open perf events on the same CPU with the same sample layout,
            // which is what PERF_EVENT_IOC_SET_OUTPUT requires; no memory is passed.
            let rc = unsafe {
                perf_event_open_sys::ioctls::SET_OUTPUT(exit.as_raw_fd(), entry.as_raw_fd())
            };
            if rc != 0 {
                return Err(format!(
                    "PERF_EVENT_IOC_SET_OUTPUT on cpu {cpu}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            rings.push((entry, exit));
        }
        Ok(TimeSampler {
            entry_id: p.tracepoint_id,
            exit_id,
            vec_offset,
            columns: p.vectors.iter().map(|v| v.0).collect(),
            rings,
        })
    }

    pub fn enable(&mut self) -> std::io::Result<()> {
        for (entry, exit) in &mut self.rings {
            entry.enable()?;
            exit.enable()?;
        }
        Ok(())
    }

    pub fn disable(&mut self) -> std::io::Result<()> {
        for (entry, exit) in &mut self.rings {
            entry.disable()?;
            exit.disable()?;
        }
        Ok(())
    }

    /// Read every record now in the rings into `t`.
    pub fn drain(&mut self, t: &mut Timing) {
        let ncpu = self.rings.len();
        if t.ns.len() != ncpu {
            t.ns = vec![vec![0; self.columns.len()]; ncpu];
            t.open = vec![None; ncpu];
        }
        for (ci, (ring, _)) in self.rings.iter_mut().enumerate() {
            while let Some(rec) = ring.next_record() {
                match rec.parse_record() {
                    Ok(perf_event::data::Record::Sample(sample)) => {
                        let (Some(time), Some(raw)) = (sample.time(), sample.raw()) else {
                            continue;
                        };
                        let field = |off: usize, len: usize| raw.get(off..off + len);
                        let Some(ty) =
                            field(0, 2).map(|b| u64::from(u16::from_ne_bytes([b[0], b[1]])))
                        else {
                            continue;
                        };
                        let Some(vec) = field(self.vec_offset, 4)
                            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        else {
                            continue;
                        };
                        let Some(col) = self.columns.iter().position(|&n| n == vec) else {
                            continue;
                        };
                        if ty == self.entry_id {
                            t.open[ci] = Some((col, time));
                        } else if ty == self.exit_id {
                            match t.open[ci].take() {
                                Some((c, start)) if c == col && time >= start => {
                                    t.ns[ci][col] += time - start;
                                }
                                _ => t.unpaired += 1,
                            }
                        }
                    }
                    Ok(perf_event::data::Record::Lost(l)) => {
                        t.lost += l.lost;
                        // The entry matching the next exit may be among the lost ones.
                        t.open[ci] = None;
                    }
                    _ => {}
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VectorRates {
    pub name: String,
    /// Per second, aligned with `Report::cpus`.
    pub per_cpu: Vec<f64>,
    pub total: f64,
    /// Same interval from `/proc/softirqs`, as a cross-check of the perf counts.
    pub proc_softirqs_total: Option<f64>,
    /// Share of each CPU's time spent in this vector (entry to exit), when measured.
    pub time_pct_per_cpu: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// `perf` or `proc-softirqs`.
    pub source: &'static str,
    /// Why perf events were not used (absent when they were).
    pub fallback_reason: Option<String>,
    pub tracepoint: Option<String>,
    pub tracefs_mounted_privately: bool,
    pub interval_seconds: f64,
    pub cpus: Vec<u32>,
    pub vectors: Vec<VectorRates>,
    /// softirq share of each CPU over the interval, from `/proc/stat`.
    pub si_pct: Vec<Option<f64>>,
    /// How time per vector was measured, or why it was not.
    pub time_per_vector: String,
    /// Entry/exit records the kernel dropped (ring overrun); the times are then a lower bound.
    pub records_lost: u64,
}

fn si_pct(a: &Option<Stat>, b: &Option<Stat>, cpu: u32) -> Option<f64> {
    let x = a.as_ref()?.cpus.iter().find(|c| c.0 == cpu)?.1;
    let y = b.as_ref()?.cpus.iter().find(|c| c.0 == cpu)?.1;
    let total = y.total().saturating_sub(x.total());
    (total > 0).then(|| 100.0 * y.softirq.saturating_sub(x.softirq) as f64 / total as f64)
}

/// Per-second rates per vector per CPU from two `/proc/softirqs` snapshots.
pub fn proc_rates(a: &Softirqs, b: &Softirqs, secs: f64) -> Vec<VectorRates> {
    b.vectors
        .iter()
        .map(|v| {
            let per_cpu: Vec<f64> = b
                .cpus
                .iter()
                .zip(&v.per_cpu)
                .map(|(&cpu, &y)| {
                    a.get(&v.name, cpu)
                        .map(|x| y.saturating_sub(x) as f64 / secs)
                        .unwrap_or(0.0)
                })
                .collect();
            let total = per_cpu.iter().sum();
            VectorRates {
                name: v.name.clone(),
                per_cpu,
                total,
                proc_softirqs_total: Some(total),
                time_pct_per_cpu: None,
            }
        })
        .collect()
}

pub fn measure(root: &Path, args: &Args) -> anyhow::Result<Report> {
    let read_softirqs = || probe::read_parse(root, crate::paths::SOFTIRQS, probe::softirqs::parse);
    let read_stat = || probe::read_parse(root, crate::paths::STAT, probe::stat::parse).ok();
    let first = read_softirqs()?;
    let cpus = first.cpus.clone();
    let mut perf = if args.no_perf {
        Err("--no-perf given".to_string())
    } else {
        PerfCounters::open(root, &cpus, !args.no_mount)
    };
    let mut timer = match (&perf, args.no_time) {
        (Ok(_), true) => Err("not measured: --no-time given".to_string()),
        (Ok(p), false) => TimeSampler::open(p).map_err(|e| format!("not measured: {e}")),
        (Err(_), _) => Err(
            "not measured: needs the perf tracepoints; see si% (softirq share of each CPU)"
                .to_string(),
        ),
    };
    if let Ok(p) = perf.as_mut() {
        if let Err(e) = p.enable() {
            perf = Err(format!("enabling the counters failed: {e}"));
        }
    }
    if let Ok(t) = timer.as_mut() {
        if let Err(e) = t.enable() {
            timer = Err(format!("not measured: enabling the samplers failed: {e}"));
        }
    }
    let stat_a = read_stat();
    let a = read_softirqs()?;
    let start = Instant::now();
    let mut timing = Timing::default();
    match timer.as_mut() {
        // Drain often enough that a busy CPU does not overrun its ring.
        Ok(t) => {
            while start.elapsed() < args.interval {
                let left = args.interval.saturating_sub(start.elapsed());
                std::thread::sleep(left.min(Duration::from_millis(50)));
                t.drain(&mut timing);
            }
        }
        Err(_) => std::thread::sleep(args.interval),
    }
    let counts = match perf.as_mut() {
        Ok(p) => Some(p.finish().context("reading perf counters")?),
        Err(_) => None,
    };
    if let Ok(t) = timer.as_mut() {
        t.disable().context("stopping the samplers")?;
        t.drain(&mut timing);
    }
    let secs = start.elapsed().as_secs_f64();
    let b = read_softirqs()?;
    let stat_b = read_stat();
    let proc = proc_rates(&a, &b, secs);
    let si = cpus.iter().map(|&c| si_pct(&stat_a, &stat_b, c)).collect();
    let (time_note, lost) = match &timer {
        Ok(_) => (
            format!(
                "measured from irq:softirq_entry/softirq_exit timestamps ({} records lost, {} exits without their entry)",
                timing.lost, timing.unpaired
            ),
            timing.lost,
        ),
        Err(why) => (why.clone(), 0),
    };
    Ok(match (perf, counts) {
        (Ok(p), Some(counts)) => {
            let vectors = p
                .vectors
                .iter()
                .enumerate()
                .map(|(vi, (_, name))| {
                    let per_cpu: Vec<f64> =
                        counts.iter().map(|row| row[vi] as f64 / secs).collect();
                    let time_pct_per_cpu = timer.is_ok().then(|| {
                        timing
                            .ns
                            .iter()
                            .map(|row| {
                                100.0 * row.get(vi).copied().unwrap_or(0) as f64 / (secs * 1e9)
                            })
                            .collect()
                    });
                    VectorRates {
                        name: name.clone(),
                        total: per_cpu.iter().sum(),
                        per_cpu,
                        proc_softirqs_total: proc.iter().find(|v| &v.name == name).map(|v| v.total),
                        time_pct_per_cpu,
                    }
                })
                .collect();
            Report {
                schema: SCHEMA,
                source: "perf",
                fallback_reason: None,
                tracepoint: Some(format!(
                    "irq:softirq_entry (id {}, {}) x {} counters",
                    p.tracepoint_id,
                    p.tracefs.display(),
                    p.counter_count()
                )),
                tracefs_mounted_privately: p.mounted_privately,
                interval_seconds: secs,
                cpus: p.cpus.clone(),
                vectors,
                si_pct: si,
                time_per_vector: time_note,
                records_lost: lost,
            }
        }
        (perf, _) => Report {
            schema: SCHEMA,
            source: "proc-softirqs",
            fallback_reason: Some(perf.err().unwrap_or_default()),
            tracepoint: None,
            tracefs_mounted_privately: false,
            interval_seconds: secs,
            cpus: b.cpus.clone(),
            vectors: proc,
            si_pct: si,
            time_per_vector: time_note,
            records_lost: 0,
        },
    })
}

pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    match &r.fallback_reason {
        None => {
            let _ = writeln!(
                o,
                "softirq: perf_event_open on {}, {:.1}s",
                r.tracepoint.as_deref().unwrap_or("irq:softirq_entry"),
                r.interval_seconds
            );
            if r.tracefs_mounted_privately {
                let _ = writeln!(o, "(tracefs was not mounted: mounted it in a private mount namespace of this process)");
            }
        }
        Some(why) => {
            let _ = writeln!(o, "softirq: perf events not used: {why}");
            let _ = writeln!(
                o,
                "falling back to /proc/softirqs deltas over {:.1}s",
                r.interval_seconds
            );
        }
    }
    let _ = write!(o, "{:<13}", "per second");
    for c in &r.cpus {
        let _ = write!(o, "{:>11}", format!("cpu{c}"));
    }
    let _ = write!(o, "{:>11}", "total");
    if r.source == "perf" {
        let _ = write!(o, "{:>16}", paths::shown(paths::SOFTIRQS));
    }
    let _ = writeln!(o);
    for v in &r.vectors {
        let _ = write!(o, "{:<13}", v.name);
        for x in &v.per_cpu {
            let _ = write!(o, "{x:>11.1}");
        }
        let _ = write!(o, "{:>11.1}", v.total);
        if r.source == "perf" {
            let p = v
                .proc_softirqs_total
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "-".into());
            let _ = write!(o, "{p:>16}");
        }
        let _ = writeln!(o);
    }
    if r.vectors.iter().any(|v| v.time_pct_per_cpu.is_some()) {
        let _ = writeln!(o, "time in softirq, % of each CPU (entry to exit)");
        for v in &r.vectors {
            let Some(t) = &v.time_pct_per_cpu else {
                continue;
            };
            let _ = write!(o, "{:<13}", v.name);
            for x in t {
                let _ = write!(o, "{x:>11.3}");
            }
            let _ = writeln!(o, "{:>11.3}", t.iter().sum::<f64>());
        }
    }
    let _ = write!(o, "{:<13}", "si% (stat)");
    for s in &r.si_pct {
        let _ = write!(
            o,
            "{:>11}",
            s.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "time per vector: {}", r.time_per_vector);
    o
}

impl crate::report::Report for Report {
    fn text(&self) -> String {
        render(self)
    }
    fn exit_code(&self) -> u8 {
        0
    }
}

pub fn run(root: &Path, args: Args) -> anyhow::Result<u8> {
    crate::report::emit(&measure(root, &args)?, args.json)
}
