//! `corestream-tune diagnose`: two samples `--interval` apart, rates per second, findings with
//! evidence, cause and remedy. Exit status 0 healthy, 1 warnings, 2 critical (also used for
//! errors), so it can run from monitoring. `--json` output is versioned by its `schema` field.

use crate::probe::{self, Sample, Target};
use crate::rules::{self, Finding, Rates, Severity};
use anyhow::bail;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// JSON schema identifier; bumped only on incompatible changes (fields are only ever added).
pub const SCHEMA: &str = "corestream-tune/diagnose/v1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Time between the two samples: `5s`, `500ms`, `1m` or plain seconds (`2`, `0.5`).
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Process to check fds for (repeatable); default: every process named `corestream`.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Process name looked up when no --pid is given.
    #[arg(long, default_value = probe::DEFAULT_PROCESS)]
    pub name: String,
    /// Print one JSON document (schema documented in docs/sre-diagnose.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parse `5s`, `500ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 5s, 500ms, 1m or plain seconds"))?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.01..=3600.0).contains(&secs) {
        return Err(format!(
            "{s:?} is out of range: the interval must be between 10ms and 1h"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The target of the fd probes, checking explicit PIDs exist so a typo is an error, not silence.
pub fn target(root: &Path, pids: &[u32], name: &str) -> anyhow::Result<Target> {
    if pids.is_empty() {
        return Ok(Target::Named(name.to_string()));
    }
    for pid in pids {
        let dir = probe::path(root, &format!("proc/{pid}"));
        if !dir.is_dir() {
            bail!("no process with pid {pid} ({} does not exist); check the pid with `pgrep corestream`", dir.display());
        }
    }
    Ok(Target::Pids(pids.to_vec()))
}

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub root: String,
    pub interval_seconds: f64,
    pub status: &'static str,
    pub exit_code: u8,
    pub findings: Vec<Finding>,
    pub rates: Rates,
    pub listeners: Option<probe::listeners::Listeners>,
    pub processes: Vec<probe::fds::ProcessFds>,
    pub file_nr: Option<probe::fds::FileNr>,
    pub sysctls: probe::sysctls::Sysctls,
    pub sockstat: Option<probe::sockstat::Sockstat>,
    pub notes: Vec<String>,
}

pub fn report(root: &Path, a: &Sample, b: Sample) -> Report {
    let secs = b.taken.duration_since(a.taken).as_secs_f64();
    let findings = rules::evaluate(a, &b, secs);
    let worst = findings.iter().map(|f| f.severity).max();
    let exit_code = Severity::exit_code(worst);
    Report {
        schema: SCHEMA,
        root: root.display().to_string(),
        interval_seconds: secs,
        status: match worst {
            None => "ok",
            Some(Severity::Warning) => "warning",
            Some(Severity::Critical) => "critical",
        },
        exit_code,
        findings,
        rates: rules::rates(a, &b, secs),
        listeners: b.listeners,
        processes: b.processes,
        file_nr: b.file_nr,
        sysctls: b.sysctls,
        sockstat: b.sockstat,
        notes: b.notes,
    }
}

pub fn run(root: &Path, args: Args) -> anyhow::Result<u8> {
    let target = target(root, &args.pids, &args.name)?;
    let a = probe::take(root, &target);
    std::thread::sleep(args.interval);
    let b = probe::take(root, &target);
    let r = report(root, &a, b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render(&r));
    }
    Ok(r.exit_code)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// The text report.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "corestream-tune diagnose: 2 samples {:.1}s apart, root {}\nstatus: {} ({} finding{})",
        r.interval_seconds,
        r.root,
        r.status.to_uppercase(),
        r.findings.len(),
        if r.findings.len() == 1 { "" } else { "s" }
    );
    for f in &r.findings {
        let _ = writeln!(
            o,
            "\n[{}] {}: {}\n  {}",
            f.severity.label(),
            f.rule,
            f.subject,
            f.summary
        );
        let _ = writeln!(o, "  evidence:");
        for e in &f.evidence {
            let _ = writeln!(
                o,
                "    {} = {} {}   ({})",
                e.name,
                rules::number(e.value),
                e.unit,
                e.source
            );
        }
        let _ = writeln!(o, "  cause: {}", f.cause);
        let _ = writeln!(o, "  remedy:");
        for m in &f.remedy {
            let kind = serde_json::to_value(&m.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            match &m.file {
                Some(file) => {
                    let _ = writeln!(o, "    {kind:<9} {}   (in {file})", m.text);
                }
                None => {
                    let _ = writeln!(o, "    {kind:<9} {}", m.text);
                }
            }
        }
    }
    let _ = writeln!(o, "\nper CPU (rates over the interval)");
    let _ = writeln!(
        o,
        "  {:>4} {:>10} {:>10} {:>6} {:>6} {:>6} {:>9} {:>10}",
        "cpu", "NET_RX/s", "NET_TX/s", "si%", "irq%", "busy%", "drops/s", "squeeze/s"
    );
    for c in &r.rates.cpus {
        let _ = writeln!(
            o,
            "  {:>4} {:>10} {:>10} {:>6} {:>6} {:>6} {:>9} {:>10}",
            c.cpu,
            opt(c.net_rx_per_s, 1),
            opt(c.net_tx_per_s, 1),
            opt(c.si_pct, 1),
            opt(c.irq_pct, 1),
            opt(c.busy_pct, 1),
            opt(c.softnet_dropped_per_s, 1),
            opt(c.softnet_squeezed_per_s, 1)
        );
    }
    let _ = writeln!(o, "\nTCP counters (per second)");
    for (k, v) in &r.rates.counters {
        let _ = writeln!(o, "  {k:<30} {v:>10.2}");
    }
    if let Some(ls) = &r.listeners {
        let _ = writeln!(o, "\nlisteners ({})", ls.source.describe());
        let _ = writeln!(
            o,
            "  {:<40} {:>12} {:>8}",
            "address", "accept queue", "backlog"
        );
        for l in &ls.sockets {
            let max = l
                .backlog
                .map(|b| b.to_string())
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                o,
                "  {:<40} {:>12} {:>8}",
                l.address.to_string(),
                l.accept_queue,
                max
            );
        }
    }
    let _ = writeln!(o, "\nfile descriptors");
    if let Some(n) = r.file_nr {
        let _ = writeln!(
            o,
            "  system: {} allocated of fs.file-max {}",
            n.allocated, n.max
        );
    }
    if let Some(v) = r.sysctls.get("fs.nr_open") {
        let _ = writeln!(o, "  fs.nr_open (ceiling of any RLIMIT_NOFILE): {v}");
    }
    if r.processes.is_empty() {
        let _ = writeln!(
            o,
            "  no target process found (use --pid PID or --name NAME)"
        );
    }
    for p in &r.processes {
        let lim = |l: Option<u64>| {
            l.map(|v| v.to_string())
                .unwrap_or_else(|| "unlimited".into())
        };
        let cap = match p.cap_sys_resource {
            Some(true) => "may raise its hard limit (CAP_SYS_RESOURCE)",
            Some(false) => "cannot raise its hard limit (no CAP_SYS_RESOURCE)",
            None => "capabilities unknown",
        };
        let _ = writeln!(
            o,
            "  pid {} ({}): {} open, soft {}, hard {}; {cap}",
            p.pid,
            p.comm,
            p.open_fds,
            lim(p.soft_limit),
            lim(p.hard_limit)
        );
    }
    let _ = writeln!(o, "\nsettings");
    for k in probe::sysctls::KEYS {
        match r.sysctls.get(k) {
            Some(v) => {
                let _ = writeln!(o, "  {k} = {v}");
            }
            // Global keys such as netdev_max_backlog are hidden inside a child network namespace.
            None => {
                let _ = writeln!(
                    o,
                    "  {k}: not readable here (absent in this kernel or network namespace)"
                );
            }
        }
    }
    for q in &r.sysctls.rps {
        let _ = writeln!(
            o,
            "  {}/{} rps_cpus = {} (RPS {})",
            q.device,
            q.queue,
            q.rps_cpus,
            if q.enabled() { "on" } else { "off" }
        );
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "\nnot read");
        for n in &r.notes {
            let _ = writeln!(o, "  {n}");
        }
    }
    o
}
