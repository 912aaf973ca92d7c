//! `corestream-tune diagnose`: two samples `--interval` apart, rates per second, findings with
//! evidence, cause and remedy. Exit status as monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN (a probe a rule needs could not be read, or the tool failed); 64 for usage errors. `--json` output is versioned by its `schema` field.

use crate::finding::{number, Finding, Status};
use crate::probe::{self, Sample, Target};
use crate::rates::{self, Rates};
use crate::report;
use crate::{profile, rules};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// JSON schema identifier; bumped only on incompatible changes (fields are only ever added).
pub const SCHEMA: &str = "corestream-tune/diagnose/v1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Time between the two samples: `5s`, `500ms`, `1m` or plain seconds (`2`, `0.5`).
    #[arg(long, default_value = "5s", value_parser = parse_interval, allow_hyphen_values = true)]
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
    /// Profile whose values the remedies propose (default: the built-in `edge` profile).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<std::path::PathBuf>,
}

/// Shortest and longest time between two samples: below 10 ms the counters barely move, above an
/// hour a monitoring check has long timed out.
pub const INTERVAL_MIN: Duration = Duration::from_millis(10);
pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// Parse an interval (`5s`, `500ms`, `1m`, `1h` or plain seconds) within
/// [`INTERVAL_MIN`]..=[`INTERVAL_MAX`]; `watch` and `softirq` take the same.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    corestream_common::duration::parse_within(s, INTERVAL_MIN, INTERVAL_MAX)
}

/// The target of the fd probes, checking explicit PIDs exist so a typo is an error, not silence.
pub fn target(root: &Path, pids: &[u32], name: &str) -> anyhow::Result<Target> {
    if pids.is_empty() {
        return Ok(Target::Named(name.to_string()));
    }
    for pid in pids {
        let dir = crate::paths::under(root, &crate::paths::pid(*pid, ""));
        if !dir.is_dir() {
            return report::usage(format!("no process with pid {pid} ({} does not exist); check the pid with `pgrep corestream`", dir.display()));
        }
    }
    Ok(Target::Pids(pids.to_vec()))
}

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub root: String,
    pub interval_seconds: f64,
    pub status: Status,
    pub exit_code: u8,
    pub findings: Vec<Finding>,
    pub rates: Rates,
    pub listeners: Option<probe::listeners::Listeners>,
    pub processes: Vec<probe::fds::ProcessFds>,
    pub file_nr: Option<probe::fds::FileNr>,
    pub sysctls: probe::sysctls::Sysctls,
    pub sockstat: Option<probe::sockstat::Sockstat>,
    /// Tuning opportunities with their cost (severity `info`); never change the status.
    pub advice: Vec<Finding>,
    /// Whose network namespace this ran in.
    pub netns: probe::netns::Netns,
    /// NICs: queues, the IRQ of each queue and its CPUs, RPS/XPS, threaded NAPI; irqbalance.
    pub nics: probe::nic::Nics,
    pub conntrack: Option<probe::conntrack::Conntrack>,
    /// Destinations with the most ephemeral ports in use.
    pub destinations: Vec<probe::sockets::Destination>,
    /// Processes with the most open files.
    pub top_fds: Vec<probe::sockets::FdUser>,
    pub notes: Vec<String>,
    /// Probes the rules need that could not be read; with no finding they make the status
    /// UNKNOWN (exit 3).
    pub unknown: Vec<String>,
}

pub fn report(root: &Path, a: &Sample, b: Sample, prof: &profile::Profile) -> Report {
    let secs = b.taken.duration_since(a.taken).as_secs_f64();
    let rates = rates::between(a, &b, secs);
    let findings = rules::evaluate(a, &b, &rates, prof);
    let advice = rules::advise(&b);
    let worst = findings.iter().map(|f| f.severity).max();
    let mut unknown = a.unknown.clone();
    unknown.extend(b.unknown.iter().cloned());
    unknown.sort();
    unknown.dedup();
    let status = Status::of(worst, !unknown.is_empty());
    Report {
        schema: SCHEMA,
        root: root.display().to_string(),
        interval_seconds: secs,
        status,
        exit_code: status.exit_code(),
        findings,
        rates,
        listeners: b.listeners,
        processes: b.processes,
        file_nr: b.file_nr,
        sysctls: b.sysctls,
        sockstat: b.sockstat,
        advice,
        netns: b.netns,
        nics: b.nics,
        conntrack: b.conntrack,
        destinations: b.destinations,
        top_fds: b.top_fds,
        notes: b.notes,
        unknown,
    }
}

pub fn run(root: &Path, args: Args) -> anyhow::Result<u8> {
    let target = target(root, &args.pids, &args.name)?;
    let prof = profile::load_for_cli(args.profile.as_deref())?;
    let mut memo = probe::Memo::default();
    let a = probe::take(root, &target, &mut memo);
    std::thread::sleep(args.interval);
    let b = probe::take(root, &target, &mut memo);
    report::emit(&report(root, &a, b, &prof), args.json)
}

impl report::Report for Report {
    fn text(&self) -> String {
        render(self)
    }
    fn exit_code(&self) -> u8 {
        self.exit_code
    }
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
        "corestream-tune diagnose: 2 samples {:.1}s apart, root {}\nstatus: {} ({} finding{}{})",
        r.interval_seconds,
        r.root,
        r.status.label(),
        r.findings.len(),
        if r.findings.len() == 1 { "" } else { "s" },
        if r.unknown.is_empty() {
            String::new()
        } else {
            format!("; blind to {}: see \"not read\"", r.unknown.join(", "))
        }
    );
    for f in r.findings.iter().chain(&r.advice) {
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
            let value = match &e.text {
                Some(t) => t.clone(),
                None => format!("{} {}", number(e.value), e.unit),
            };
            let _ = writeln!(o, "    {} = {value}   ({})", e.name, e.source);
        }
        let _ = writeln!(o, "  cause: {}", f.cause);
        let _ = writeln!(o, "  remedy:");
        for m in &f.remedy {
            let kind = m.kind.label();
            match &m.file {
                Some(file) => {
                    let _ = writeln!(o, "    {kind:<9} {}   (in {file})", m.text);
                }
                None => {
                    let _ = writeln!(o, "    {kind:<9} {}", m.text);
                }
            }
            if let Some(host) = &m.host {
                let _ = writeln!(o, "              on the host: {host}");
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
            let owners: Vec<String> = l
                .owners
                .iter()
                .map(|(p, c)| format!("{c} (pid {p})"))
                .collect();
            let _ = writeln!(
                o,
                "  {:<40} {:>12} {:>8}  {}",
                l.address.to_string(),
                l.accept_queue,
                max,
                owners.join(", ")
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
    render_path(&mut o, r);
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

/// The delivery path: NICs and their queues, connection capacity, who holds the most files.
fn render_path(o: &mut String, r: &Report) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "\nNICs (irqbalance {})",
        match r.nics.irqbalance {
            Some(p) => format!("running, pid {p}"),
            None => "not running".into(),
        }
    );
    for n in r.nics.nics.iter().filter(|n| n.physical) {
        let rate = r.rates.ifaces.iter().find(|i| i.name == n.name);
        let _ = writeln!(
            o,
            "  {}: {} rx / {} tx queues, {} queue IRQs, threaded NAPI {}{}",
            n.name,
            n.rx.len(),
            n.tx.len(),
            n.irqs.len(),
            n.threaded.as_deref().unwrap_or("?"),
            rate.map(|i| format!(
                ", {:.0} rx / {:.0} tx packets/s, {:.0} drops/s",
                i.rx_packets_per_s, i.tx_packets_per_s, i.drops_per_s
            ))
            .unwrap_or_default()
        );
        for i in &n.irqs {
            let per_s = r
                .rates
                .nic_irqs
                .iter()
                .find(|x| x.irq == i.irq)
                .map(|x| {
                    x.per_cpu
                        .iter()
                        .filter(|c| c.1 > 0.0)
                        .map(|(c, v)| format!("cpu{c} {v:.0}/s"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "    IRQ {:<5} {:<20} queue {} ({:?}) allowed on {}, delivered to {}  {}",
                i.irq,
                i.name,
                i.queue,
                i.kind,
                i.affinity.as_deref().unwrap_or("?"),
                i.effective.as_deref().unwrap_or("?"),
                per_s
            );
        }
        for q in &n.rx {
            let _ = writeln!(
                o,
                "    {}: rps_cpus {} rps_flow_cnt {}",
                q.name,
                q.rps_cpus.as_deref().unwrap_or("?"),
                q.rps_flow_cnt.map_or("?".to_string(), |v| v.to_string())
            );
        }
        for q in n.tx.iter().filter(|q| q.xps_cpus.is_some()) {
            let _ = writeln!(
                o,
                "    {}: xps_cpus {}",
                q.name,
                q.xps_cpus.as_deref().unwrap_or("?")
            );
        }
    }
    let _ = writeln!(o, "\nconnection capacity");
    match &r.conntrack {
        Some(c) => {
            let _ = writeln!(
                o,
                "  conntrack: {} of {} entries{}",
                c.count,
                c.max,
                r.rates
                    .conntrack_drops_per_s
                    .map(|d| format!(", {d:.2} drops/s"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(o, "  conntrack: not loaded (no table to fill)");
        }
    }
    if let Some(s) = &r.sockstat {
        let _ = writeln!(
            o,
            "  TIME_WAIT {} of tcp_max_tw_buckets {}; orphans {} of tcp_max_orphans {}",
            s.tcp_tw,
            r.sysctls.get("net.ipv4.tcp_max_tw_buckets").unwrap_or("?"),
            s.tcp_orphan,
            r.sysctls.get("net.ipv4.tcp_max_orphans").unwrap_or("?")
        );
    }
    let _ = writeln!(
        o,
        "  ephemeral ports (ip_local_port_range {}), busiest destinations:",
        r.sysctls.get("net.ipv4.ip_local_port_range").unwrap_or("?")
    );
    if r.destinations.is_empty() {
        let _ = writeln!(o, "    none");
    }
    for d in r.destinations.iter().take(5) {
        let _ = writeln!(o, "    {} -> {}: {} ports", d.local, d.remote, d.ports);
    }
    let _ = writeln!(o, "\nmost open files");
    for p in r.top_fds.iter().take(5) {
        let _ = writeln!(o, "  pid {} ({}): {} fds", p.pid, p.comm, p.open_fds);
    }
    let _ = writeln!(
        o,
        "\ndelivery: congestion control {}, default qdisc {}, kTLS {}",
        r.sysctls
            .get("net.ipv4.tcp_congestion_control")
            .unwrap_or("?"),
        r.sysctls.get("net.core.default_qdisc").unwrap_or("?"),
        match r.sysctls.get("net.ipv4.tcp_available_ulp") {
            Some(u) if u.split_whitespace().any(|w| w == "tls") => "available (tls ULP)",
            Some(_) => "unavailable (no tls ULP)",
            None => "unknown",
        }
    );
}
