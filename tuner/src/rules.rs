//! Rules: plain functions of two samples (rates per second) and current settings that return
//! findings with the numbers that triggered them, the cause, and the exact fix.
//! Every threshold lives in [`THRESHOLDS`]; `docs/sre-diagnose.md` prints the same table.

use crate::probe::{fds::ProcessFds, listeners::Listener, Sample};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where `apply --persist` (part 2) writes the kernel profile; remedies name the same file.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/60-corestream.conf";
/// Unit whose `LimitNOFILE=` governs the server's fd ceiling.
pub const UNIT_FILE: &str = "/etc/systemd/system/corestream.service.d/override.conf";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn exit_code(worst: Option<Severity>) -> u8 {
        match worst {
            None => 0,
            Some(Severity::Warning) => 1,
            Some(Severity::Critical) => 2,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One threshold: a finding fires when the measured value is strictly above `warn` (warning)
/// or `crit` (critical), or strictly below them when `below` is set; `None` means that severity
/// is never reached by this measure alone.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Threshold {
    pub rule: &'static str,
    pub measure: &'static str,
    pub unit: &'static str,
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub below: bool,
}

/// The one thresholds table (in the spirit of Netdata's alarms: tcp_listen, softnet, fds).
#[rustfmt::skip]
pub const THRESHOLDS: &[Threshold] = &[
    Threshold { rule: "listen_overflows", measure: "TcpExt:ListenOverflows increase", unit: "per minute", warn: Some(0.0), crit: Some(5.0), below: false },
    Threshold { rule: "accept_queue_full", measure: "listener accept queue / its backlog", unit: "%", warn: Some(99.9), crit: None, below: false },
    Threshold { rule: "syn_queue_drops", measure: "TcpExt:TCPReqQFullDrop increase", unit: "per minute", warn: Some(0.0), crit: Some(5.0), below: false },
    Threshold { rule: "softnet_dropped", measure: "softnet_stat dropped, all CPUs", unit: "per minute", warn: Some(10.0), crit: Some(600.0), below: false },
    Threshold { rule: "softnet_squeezed", measure: "softnet_stat time_squeeze, all CPUs", unit: "per minute", warn: Some(10.0), crit: None, below: false },
    Threshold { rule: "net_rx_imbalance", measure: "share of NET_RX softirqs on the busiest CPU", unit: "%", warn: Some(80.0), crit: None, below: false },
    Threshold { rule: "net_rx_imbalance_min_rate", measure: "NET_RX softirqs, all CPUs (below this the share is noise)", unit: "per second", warn: Some(500.0), crit: None, below: false },
    Threshold { rule: "softirq_cpu", measure: "softirq (si) time of one CPU", unit: "% of that CPU", warn: Some(30.0), crit: Some(60.0), below: false },
    Threshold { rule: "process_fds", measure: "open fds / soft RLIMIT_NOFILE", unit: "%", warn: Some(80.0), crit: Some(95.0), below: false },
    Threshold { rule: "nofile_soft_low", measure: "soft RLIMIT_NOFILE of the server", unit: "fds", warn: Some(4096.0), crit: None, below: true },
    Threshold { rule: "system_fds", measure: "fs.file-nr allocated / fs.file-max", unit: "%", warn: Some(80.0), crit: Some(90.0), below: false },
    Threshold { rule: "tcp_memory", measure: "sockstat TCP mem / tcp_mem pressure (warn) and / tcp_mem high (crit)", unit: "%", warn: Some(100.0), crit: Some(90.0), below: false },
    Threshold { rule: "tcp_backlog_drops", measure: "TcpExt:TCPBacklogDrop increase", unit: "per minute", warn: Some(10.0), crit: None, below: false },
    Threshold { rule: "somaxconn_low", measure: "net.core.somaxconn", unit: "connections", warn: Some(4096.0), crit: None, below: true },
    Threshold { rule: "syncookies_off", measure: "net.ipv4.tcp_syncookies", unit: "0/1/2", warn: Some(1.0), crit: None, below: true },
];

/// The table row for `rule`. Panics only on a misspelt rule name, which tests cover.
pub fn threshold(rule: &str) -> Threshold {
    match THRESHOLDS.iter().find(|t| t.rule == rule) {
        Some(t) => *t,
        None => panic!("no threshold row for rule {rule}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// File (or interface) the number was read from.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemedyKind {
    /// `key = value` for a sysctl.d file, applied with `sysctl -w key=value`.
    Sysctl,
    /// A line for a systemd unit file.
    UnitFile,
    /// A change to the application.
    Code,
    /// A command to run.
    Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remedy {
    pub kind: RemedyKind,
    pub text: String,
    /// File the line belongs in, when there is one.
    pub file: Option<String>,
}

impl Remedy {
    fn sysctl(key: &str, value: impl std::fmt::Display) -> Remedy {
        Remedy {
            kind: RemedyKind::Sysctl,
            text: format!("{key} = {value}"),
            file: Some(SYSCTL_FILE.into()),
        }
    }
    fn unit(line: String) -> Remedy {
        Remedy {
            kind: RemedyKind::UnitFile,
            text: line,
            file: Some(UNIT_FILE.into()),
        }
    }
    fn code(text: String) -> Remedy {
        Remedy {
            kind: RemedyKind::Code,
            text,
            file: None,
        }
    }
    fn command(text: String) -> Remedy {
        Remedy {
            kind: RemedyKind::Command,
            text,
            file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// What the finding is about: `system`, `cpu1`, `listener 0.0.0.0:8080`, `pid 4242 (corestream)`.
    pub subject: String,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// The cause in one sentence.
    pub cause: String,
    pub remedy: Vec<Remedy>,
}

fn ev(name: impl Into<String>, value: f64, unit: &str, source: &str) -> Evidence {
    Evidence {
        name: name.into(),
        value,
        unit: unit.into(),
        source: source.into(),
    }
}

/// Severity of `value` against the table row of `rule`.
pub fn grade(rule: &str, value: f64) -> Option<Severity> {
    let t = threshold(rule);
    let past = |limit: f64| {
        if t.below {
            value < limit
        } else {
            value > limit
        }
    };
    if t.crit.is_some_and(past) {
        Some(Severity::Critical)
    } else if t.warn.is_some_and(past) {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// Per-CPU rates between two samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuRates {
    pub cpu: u32,
    pub net_rx_per_s: Option<f64>,
    pub net_tx_per_s: Option<f64>,
    /// Softirq time as a share of this CPU's time (the `si` column of top).
    pub si_pct: Option<f64>,
    pub irq_pct: Option<f64>,
    /// Everything but idle and iowait.
    pub busy_pct: Option<f64>,
    pub softnet_dropped_per_s: Option<f64>,
    pub softnet_squeezed_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    pub seconds: f64,
    pub cpus: Vec<CpuRates>,
    /// Per-second increase of the netstat/snmp counters in [`RATE_COUNTERS`].
    pub counters: BTreeMap<String, f64>,
}

/// Counters whose rates `diagnose --json` reports and rules read.
pub const RATE_COUNTERS: &[&str] = &[
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:TCPReqQFullDrop",
    "TcpExt:TCPReqQFullDoCookies",
    "TcpExt:TCPBacklogDrop",
    "TcpExt:TCPAbortOnMemory",
    "TcpExt:TCPMemoryPressures",
    "Tcp:PassiveOpens",
    "Tcp:ActiveOpens",
    "Tcp:AttemptFails",
    "Tcp:EstabResets",
    "Tcp:RetransSegs",
];

/// Increase of a counter, 0 when it went backwards (reset, or a different namespace).
fn inc(a: u64, b: u64) -> f64 {
    b.saturating_sub(a) as f64
}

pub fn rates(a: &Sample, b: &Sample, seconds: f64) -> Rates {
    let secs = if seconds > 0.0 { seconds } else { 1.0 };
    let mut ids: Vec<u32> = Vec::new();
    if let Some(s) = &b.softirqs {
        ids.extend(&s.cpus);
    }
    if let Some(s) = &b.stat {
        ids.extend(s.cpus.iter().map(|c| c.0));
    }
    if let Some(s) = &b.softnet {
        ids.extend(s.iter().map(|r| r.cpu));
    }
    ids.sort_unstable();
    ids.dedup();
    let cpus = ids
        .into_iter()
        .map(|cpu| {
            let vec_rate = |name: &str| -> Option<f64> {
                let x = a.softirqs.as_ref()?.get(name, cpu)?;
                let y = b.softirqs.as_ref()?.get(name, cpu)?;
                Some(inc(x, y) / secs)
            };
            let ticks = |s: &Sample| {
                s.stat
                    .as_ref()?
                    .cpus
                    .iter()
                    .find(|c| c.0 == cpu)
                    .map(|c| c.1)
            };
            let (mut si, mut irq, mut busy) = (None, None, None);
            if let (Some(x), Some(y)) = (ticks(a), ticks(b)) {
                let total = inc(x.total(), y.total());
                if total > 0.0 {
                    si = Some(100.0 * inc(x.softirq, y.softirq) / total);
                    irq = Some(100.0 * inc(x.irq, y.irq) / total);
                    busy = Some(
                        100.0 * (total - inc(x.idle, y.idle) - inc(x.iowait, y.iowait)).max(0.0)
                            / total,
                    );
                }
            }
            let sn = |s: &Sample| s.softnet.as_ref()?.iter().find(|r| r.cpu == cpu).cloned();
            let (mut dropped, mut squeezed) = (None, None);
            if let (Some(x), Some(y)) = (sn(a), sn(b)) {
                dropped = Some(inc(x.dropped, y.dropped) / secs);
                squeezed = Some(inc(x.time_squeeze, y.time_squeeze) / secs);
            }
            CpuRates {
                cpu,
                net_rx_per_s: vec_rate("NET_RX"),
                net_tx_per_s: vec_rate("NET_TX"),
                si_pct: si,
                irq_pct: irq,
                busy_pct: busy,
                softnet_dropped_per_s: dropped,
                softnet_squeezed_per_s: squeezed,
            }
        })
        .collect();
    let mut counters = BTreeMap::new();
    for key in RATE_COUNTERS {
        if let (Some(x), Some(y)) = (a.counters.get(key), b.counters.get(key)) {
            counters.insert((*key).to_string(), (y - x).max(0) as f64 / secs);
        }
    }
    Rates {
        seconds: secs,
        cpus,
        counters,
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// All rules over two samples taken `seconds` apart. Sorted: critical first.
pub fn evaluate(a: &Sample, b: &Sample, seconds: f64) -> Vec<Finding> {
    let r = rates(a, b, seconds);
    let mut f = Vec::new();
    listen_overflows(a, b, &r, &mut f);
    accept_queue_full(b, &mut f);
    syn_queue_drops(a, b, &r, &mut f);
    softnet(&r, b, &mut f);
    net_rx_imbalance(&r, b, &mut f);
    softirq_cpu(&r, &mut f);
    process_fds(b, &mut f);
    system_fds(b, &mut f);
    tcp_memory(a, b, &mut f);
    tcp_backlog_drops(a, b, &r, &mut f);
    somaxconn_low(b, &mut f);
    syncookies_off(b, &mut f);
    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
    f
}

fn counter_increase(a: &Sample, b: &Sample, key: &str) -> Option<i64> {
    Some((b.counters.get(key)? - a.counters.get(key)?).max(0))
}

fn somaxconn(b: &Sample) -> Option<i64> {
    b.sysctls.int("net.core.somaxconn")
}

fn describe_listener(l: &Listener) -> String {
    match l.backlog {
        Some(max) => format!("{} (accept queue {}/{})", l.address, l.accept_queue, max),
        None => format!(
            "{} (accept queue {}, max unknown)",
            l.address, l.accept_queue
        ),
    }
}

/// Remedies for a listener whose accept queue is too small or drained too slowly.
fn backlog_remedies(l: Option<&Listener>, somax: Option<i64>) -> Vec<Remedy> {
    let mut out = Vec::new();
    let port = l
        .map(|l| format!(" on port {}", l.port()))
        .unwrap_or_default();
    match (l.and_then(|l| l.backlog), somax) {
        (Some(backlog), Some(s)) if i64::from(backlog) < s => out.push(Remedy::code(format!(
            "the process listening{port} asked listen() for a backlog of {backlog}; raise it to {s} (net.core.somaxconn caps it), e.g. socket2 Socket::listen({s}), then restart the listener"
        ))),
        (_, Some(s)) => {
            let target = s.saturating_mul(2).max(4096);
            out.push(Remedy::sysctl("net.core.somaxconn", target));
            out.push(Remedy::code(format!(
                "listen(){port} with a backlog of {target} too (the backlog is fixed when listen() is called: restart the listener)"
            )));
        }
        _ => out.push(Remedy::code(format!("raise the listen() backlog{port} (the kernel caps it at net.core.somaxconn)"))),
    }
    out.push(Remedy::code(
        "make the server accept faster: accept until EAGAIN on every readiness event, and run more workers or SO_REUSEPORT listeners".into(),
    ));
    out
}

fn listen_overflows(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(d) = counter_increase(a, b, "TcpExt:ListenOverflows") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = grade("listen_overflows", per_min) else {
        return;
    };
    let listeners: Vec<&Listener> = [b, a]
        .iter()
        .filter_map(|s| s.listeners.as_ref())
        .flat_map(|l| l.sockets.iter())
        .filter(|l| l.is_full() || (l.backlog.is_none() && l.accept_queue > 0))
        .collect();
    let mut seen = Vec::new();
    let culprits: Vec<&Listener> = listeners
        .into_iter()
        .filter(|l| {
            let new = !seen.contains(&l.address);
            seen.push(l.address);
            new
        })
        .collect();
    let subject = if culprits.is_empty() {
        "system (no listener was full at either sample)".to_string()
    } else {
        culprits
            .iter()
            .map(|l| format!("listener {}", describe_listener(l)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut evidence = vec![
        ev(
            "TcpExt:ListenOverflows increase",
            d as f64,
            "connections",
            "/proc/net/netstat",
        ),
        ev(
            "ListenOverflows rate",
            per_min,
            "per minute",
            "/proc/net/netstat",
        ),
    ];
    if let Some(ld) = counter_increase(a, b, "TcpExt:ListenDrops") {
        evidence.push(ev(
            "TcpExt:ListenDrops increase",
            ld as f64,
            "connections",
            "/proc/net/netstat",
        ));
    }
    for l in &culprits {
        let src = b
            .listeners
            .as_ref()
            .map(|x| x.source.describe())
            .unwrap_or("listeners");
        evidence.push(ev(
            format!("{} accept queue", l.address),
            f64::from(l.accept_queue),
            "connections",
            src,
        ));
        if let Some(m) = l.backlog {
            evidence.push(ev(
                format!("{} backlog", l.address),
                f64::from(m),
                "connections",
                src,
            ));
        }
    }
    if let Some(s) = somaxconn(b) {
        evidence.push(ev(
            "net.core.somaxconn",
            s as f64,
            "connections",
            "/proc/sys/net/core/somaxconn",
        ));
    }
    f.push(Finding {
        rule: "listen_overflows",
        severity: sev,
        subject,
        summary: format!("{d} connections overflowed an accept queue in {:.1}s ({per_min:.1}/min)", r.seconds),
        evidence,
        cause: "A listener's accept queue was full, so the kernel dropped new connections (clients retry the SYN after 1 s, 3 s, 7 s: viewers see slow starts).".into(),
        remedy: backlog_remedies(culprits.first().copied(), somaxconn(b)),
    });
}

fn accept_queue_full(b: &Sample, f: &mut Vec<Finding>) {
    let Some(ls) = &b.listeners else { return };
    for l in ls.sockets.iter() {
        let Some(max) = l.backlog else { continue };
        let pct = 100.0 * f64::from(l.accept_queue) / f64::from(max.max(1));
        let Some(sev) = grade("accept_queue_full", pct) else {
            continue;
        };
        f.push(Finding {
            rule: "accept_queue_full",
            severity: sev,
            subject: format!("listener {}", l.address),
            summary: format!("accept queue of {} holds {} of {} connections", l.address, l.accept_queue, max),
            evidence: vec![
                ev(format!("{} accept queue", l.address), f64::from(l.accept_queue), "connections", ls.source.describe()),
                ev(format!("{} backlog", l.address), f64::from(max), "connections", ls.source.describe()),
            ],
            cause: "The application is not calling accept() as fast as connections complete, so the next ones will be dropped.".into(),
            remedy: backlog_remedies(Some(l), somaxconn(b)),
        });
    }
}

fn syn_queue_drops(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(d) = counter_increase(a, b, "TcpExt:TCPReqQFullDrop") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = grade("syn_queue_drops", per_min) else {
        return;
    };
    let cookies = b.sysctls.int("net.ipv4.tcp_syncookies");
    let syn_backlog = b.sysctls.int("net.ipv4.tcp_max_syn_backlog");
    let mut evidence = vec![
        ev(
            "TcpExt:TCPReqQFullDrop increase",
            d as f64,
            "SYNs",
            "/proc/net/netstat",
        ),
        ev(
            "TCPReqQFullDrop rate",
            per_min,
            "per minute",
            "/proc/net/netstat",
        ),
    ];
    if let Some(c) = counter_increase(a, b, "TcpExt:TCPReqQFullDoCookies") {
        evidence.push(ev(
            "TcpExt:TCPReqQFullDoCookies increase",
            c as f64,
            "SYNs",
            "/proc/net/netstat",
        ));
    }
    if let Some(c) = cookies {
        evidence.push(ev(
            "net.ipv4.tcp_syncookies",
            c as f64,
            "",
            "/proc/sys/net/ipv4/tcp_syncookies",
        ));
    }
    if let Some(s) = syn_backlog {
        evidence.push(ev(
            "net.ipv4.tcp_max_syn_backlog",
            s as f64,
            "",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog",
        ));
    }
    let mut remedy = Vec::new();
    if cookies != Some(1) {
        remedy.push(Remedy::sysctl("net.ipv4.tcp_syncookies", 1));
    }
    remedy.push(Remedy::sysctl(
        "net.ipv4.tcp_max_syn_backlog",
        syn_backlog.unwrap_or(1024).saturating_mul(2).max(8192),
    ));
    remedy.push(Remedy::code(
        "raise the listen() backlog too: the SYN queue is also bounded by it".into(),
    ));
    f.push(Finding {
        rule: "syn_queue_drops",
        severity: sev,
        subject: "system".into(),
        summary: format!("{d} SYNs dropped because a SYN queue was full ({per_min:.1}/min)"),
        evidence,
        cause: "Half-open connections filled the SYN queue (a SYN burst or flood) and syncookies did not absorb them.".into(),
        remedy,
    });
}

fn softnet(r: &Rates, b: &Sample, f: &mut Vec<Finding>) {
    let per_cpu = |get: fn(&CpuRates) -> Option<f64>| -> Vec<(u32, f64)> {
        r.cpus
            .iter()
            .filter_map(|c| get(c).map(|v| (c.cpu, v * 60.0)))
            .collect()
    };
    let dropped = per_cpu(|c| c.softnet_dropped_per_s);
    let total: f64 = dropped.iter().map(|x| x.1).sum();
    if let Some(sev) = grade("softnet_dropped", total).filter(|_| !dropped.is_empty()) {
        let cur = b.sysctls.int("net.core.netdev_max_backlog");
        let mut evidence: Vec<Evidence> = dropped
            .iter()
            .filter(|x| x.1 > 0.0)
            .map(|(cpu, v)| {
                ev(
                    format!("cpu{cpu} dropped"),
                    *v,
                    "per minute",
                    "/proc/net/softnet_stat column 2",
                )
            })
            .collect();
        if let Some(c) = cur {
            evidence.push(ev(
                "net.core.netdev_max_backlog",
                c as f64,
                "packets",
                "/proc/sys/net/core/netdev_max_backlog",
            ));
        }
        f.push(Finding {
            rule: "softnet_dropped",
            severity: sev,
            subject: "system".into(),
            summary: format!("{total:.1} packets/min dropped at the per-CPU input backlog"),
            evidence,
            cause: "Packets arrived faster than NET_RX processed them and the per-CPU backlog (netdev_max_backlog) overflowed.".into(),
            remedy: vec![Remedy::sysctl("net.core.netdev_max_backlog", cur.unwrap_or(1000).saturating_mul(2).max(2000))],
        });
    }
    let squeezed = per_cpu(|c| c.softnet_squeezed_per_s);
    let total: f64 = squeezed.iter().map(|x| x.1).sum();
    if let Some(sev) = grade("softnet_squeezed", total).filter(|_| !squeezed.is_empty()) {
        let budget = b.sysctls.int("net.core.netdev_budget");
        let usecs = b.sysctls.int("net.core.netdev_budget_usecs");
        let mut evidence: Vec<Evidence> = squeezed
            .iter()
            .filter(|x| x.1 > 0.0)
            .map(|(cpu, v)| {
                ev(
                    format!("cpu{cpu} time_squeeze"),
                    *v,
                    "per minute",
                    "/proc/net/softnet_stat column 3",
                )
            })
            .collect();
        if let Some(v) = budget {
            evidence.push(ev(
                "net.core.netdev_budget",
                v as f64,
                "packets",
                "/proc/sys/net/core/netdev_budget",
            ));
        }
        if let Some(v) = usecs {
            evidence.push(ev(
                "net.core.netdev_budget_usecs",
                v as f64,
                "us",
                "/proc/sys/net/core/netdev_budget_usecs",
            ));
        }
        let mut remedy = vec![Remedy::sysctl(
            "net.core.netdev_budget",
            budget.unwrap_or(300).saturating_add(100),
        )];
        if let Some(u) = usecs {
            remedy.push(Remedy::sysctl(
                "net.core.netdev_budget_usecs",
                u.saturating_add(2000),
            ));
        }
        f.push(Finding {
            rule: "softnet_squeezed",
            severity: sev,
            subject: "system".into(),
            summary: format!("NET_RX ran out of budget {total:.1} times/min with packets left"),
            evidence,
            cause: "One NET_RX run hit netdev_budget packets or netdev_budget_usecs before the queues were empty, so receive work was deferred.".into(),
            remedy,
        });
    }
}

fn net_rx_imbalance(r: &Rates, b: &Sample, f: &mut Vec<Finding>) {
    let rx: Vec<(u32, f64, Option<f64>)> = r
        .cpus
        .iter()
        .filter_map(|c| c.net_rx_per_s.map(|v| (c.cpu, v, c.busy_pct)))
        .collect();
    if rx.len() < 2 {
        return;
    }
    let total: f64 = rx.iter().map(|x| x.1).sum();
    if grade("net_rx_imbalance_min_rate", total).is_none() {
        return;
    }
    let Some(top) = rx.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1)) else {
        return;
    };
    let share = 100.0 * top.1 / total;
    let Some(sev) = grade("net_rx_imbalance", share) else {
        return;
    };
    let mut evidence = vec![ev(
        "NET_RX, all CPUs",
        total,
        "per second",
        "/proc/softirqs",
    )];
    for (cpu, v, busy) in &rx {
        evidence.push(ev(
            format!("cpu{cpu} NET_RX"),
            *v,
            "per second",
            "/proc/softirqs",
        ));
        if let Some(bp) = busy {
            evidence.push(ev(format!("cpu{cpu} busy"), *bp, "%", "/proc/stat"));
        }
    }
    let ncpu = r.cpus.len();
    let mask = rps_mask(ncpu);
    let mut remedy = Vec::new();
    let queues: Vec<_> = b.sysctls.rps.iter().filter(|q| !q.enabled()).collect();
    if queues.is_empty() {
        remedy.push(Remedy::command(format!(
            "echo {mask} > /sys/class/net/<nic>/queues/rx-<n>/rps_cpus   (spread receive processing over all CPUs)"
        )));
    }
    for q in queues {
        remedy.push(Remedy::command(format!(
            "echo {mask} > /sys/class/net/{}/queues/{}/rps_cpus",
            q.device, q.queue
        )));
    }
    remedy.push(Remedy::sysctl("net.core.rps_sock_flow_entries", 32768));
    let flow_cnt = 32768 / b.sysctls.rps.len().max(1);
    if b.sysctls.rps.is_empty() {
        remedy.push(Remedy::command(format!(
            "echo {flow_cnt} > /sys/class/net/<nic>/queues/rx-<n>/rps_flow_cnt   (RFS: rps_sock_flow_entries / number of RX queues)"
        )));
    }
    for q in &b.sysctls.rps {
        remedy.push(Remedy::command(format!(
            "echo {flow_cnt} > /sys/class/net/{}/queues/{}/rps_flow_cnt   (RFS: rps_sock_flow_entries / {} RX queues)",
            q.device,
            q.queue,
            b.sysctls.rps.len()
        )));
    }
    remedy.push(Remedy::command("systemctl enable --now irqbalance   (spread NIC interrupts when the NIC has several queues)".into()));
    f.push(Finding {
        rule: "net_rx_imbalance",
        severity: sev,
        subject: format!("cpu{}", top.0),
        summary: format!("cpu{} handles {share:.0}% of NET_RX ({:.0}/s of {total:.0}/s)", top.0, top.1),
        evidence,
        cause: "Receive processing runs on the CPU that takes the NIC interrupt (for loopback, the sending CPU), so that CPU saturates first while the others do little of it.".into(),
        remedy,
    });
}

fn softirq_cpu(r: &Rates, f: &mut Vec<Finding>) {
    for c in &r.cpus {
        let Some(si) = c.si_pct else { continue };
        let Some(sev) = grade("softirq_cpu", si) else {
            continue;
        };
        let mut evidence = vec![ev(
            format!("cpu{} si", c.cpu),
            si,
            "%",
            "/proc/stat softirq column",
        )];
        if let Some(v) = c.net_rx_per_s {
            evidence.push(ev(
                format!("cpu{} NET_RX", c.cpu),
                v,
                "per second",
                "/proc/softirqs",
            ));
        }
        if let Some(v) = c.net_tx_per_s {
            evidence.push(ev(
                format!("cpu{} NET_TX", c.cpu),
                v,
                "per second",
                "/proc/softirqs",
            ));
        }
        f.push(Finding {
            rule: "softirq_cpu",
            severity: sev,
            subject: format!("cpu{}", c.cpu),
            summary: format!("cpu{} spends {si:.0}% of its time in softirq", c.cpu),
            evidence,
            cause: "Softirq work (usually NET_RX/NET_TX) is eating this CPU, so processes scheduled on it stall even though overall CPU looks idle.".into(),
            remedy: vec![
                Remedy::command("corestream-tune softirq --interval 5s   (which vector, which CPU)".into()),
                Remedy::command("echo <mask of all CPUs> > /sys/class/net/<nic>/queues/rx-<n>/rps_cpus   (spread NET_RX)".into()),
            ],
        });
    }
}

fn limit_text(l: Option<u64>) -> String {
    l.map(|v| v.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

fn nofile_remedies(p: &ProcessFds, want: u64) -> Vec<Remedy> {
    let mut out = Vec::new();
    let mut want = want;
    // fs.nr_open caps every RLIMIT_NOFILE: when it leaves no room, it has to go up first.
    if p.soft_limit.is_some_and(|s| want <= s) {
        want = p.soft_limit.unwrap_or(0).saturating_mul(4).max(1_048_576);
        out.push(Remedy::sysctl("fs.nr_open", want));
    }
    out.push(Remedy::unit(format!("LimitNOFILE={want}")));
    if p.soft_limit < p.hard_limit || p.hard_limit.is_none() {
        out.push(Remedy::command(format!(
            "corestream-tune nofile --pid {}   (raise the running process's soft limit up to its hard limit {} now)",
            p.pid,
            limit_text(p.hard_limit)
        )));
    } else if p.cap_sys_resource == Some(false) {
        out.push(Remedy::command(format!(
            "restart the service after setting LimitNOFILE: pid {} is at its hard limit and lacks CAP_SYS_RESOURCE, so it cannot be raised live",
            p.pid
        )));
    }
    out
}

fn process_fds(b: &Sample, f: &mut Vec<Finding>) {
    let nr_open = b
        .sysctls
        .int("fs.nr_open")
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(1_048_576);
    for p in &b.processes {
        let subject = format!("pid {} ({})", p.pid, p.comm);
        let limits_src = format!("/proc/{}/limits", p.pid);
        if let Some(soft) = p.soft_limit {
            let pct = 100.0 * p.open_fds as f64 / soft.max(1) as f64;
            if let Some(sev) = grade("process_fds", pct) {
                f.push(Finding {
                    rule: "process_fds",
                    severity: sev,
                    subject: subject.clone(),
                    summary: format!("{} of {} file descriptors in use ({pct:.0}%)", p.open_fds, soft),
                    evidence: vec![
                        ev("open fds", p.open_fds as f64, "fds", &format!("/proc/{}/fd", p.pid)),
                        ev("soft RLIMIT_NOFILE", soft as f64, "fds", &limits_src),
                    ]
                    .into_iter()
                    .chain(p.hard_limit.map(|h| ev("hard RLIMIT_NOFILE", h as f64, "fds", &limits_src)))
                    .collect(),
                    cause: "The process is close to its open-file limit; at the limit accept() fails with EMFILE and new viewers are refused.".into(),
                    remedy: nofile_remedies(p, soft.saturating_mul(4).max(65536).min(nr_open.max(soft))),
                });
            }
            // A soft limit that low is a misconfiguration on an edge server before it is a crisis.
            if grade("nofile_soft_low", soft as f64).is_some() {
                f.push(Finding {
                    rule: "nofile_soft_low",
                    severity: Severity::Warning,
                    subject,
                    summary: format!("soft RLIMIT_NOFILE is {soft}: at most ~{soft} concurrent viewers per process"),
                    evidence: vec![
                        ev("soft RLIMIT_NOFILE", soft as f64, "fds", &limits_src),
                        ev("open fds", p.open_fds as f64, "fds", &format!("/proc/{}/fd", p.pid)),
                    ],
                    cause: "systemd starts services with a soft limit of 1024 unless the unit sets LimitNOFILE=, far below what an edge server needs.".into(),
                    remedy: nofile_remedies(p, nr_open.min(1_048_576)),
                });
            }
        }
    }
}

fn system_fds(b: &Sample, f: &mut Vec<Finding>) {
    let Some(nr) = b.file_nr else { return };
    if nr.max == 0 {
        return;
    }
    let pct = 100.0 * nr.allocated as f64 / nr.max as f64;
    let Some(sev) = grade("system_fds", pct) else {
        return;
    };
    f.push(Finding {
        rule: "system_fds",
        severity: sev,
        subject: "system".into(),
        summary: format!(
            "{} of {} file handles allocated system-wide ({pct:.0}%)",
            nr.allocated, nr.max
        ),
        evidence: vec![
            ev(
                "allocated file handles",
                nr.allocated as f64,
                "handles",
                "/proc/sys/fs/file-nr field 1",
            ),
            ev(
                "fs.file-max",
                nr.max as f64,
                "handles",
                "/proc/sys/fs/file-nr field 3",
            ),
        ],
        cause: "The whole system is close to fs.file-max; at the limit every process gets ENFILE."
            .into(),
        remedy: vec![Remedy::sysctl(
            "fs.file-max",
            (nr.max.saturating_mul(2)).max(2_097_152),
        )],
    });
}

fn tcp_memory(a: &Sample, b: &Sample, f: &mut Vec<Finding>) {
    let Some(ss) = &b.sockstat else { return };
    let Some(mem) = b.sysctls.ints("net.ipv4.tcp_mem").filter(|m| m.len() == 3) else {
        return;
    };
    let (pressure, high) = (mem[1].max(1) as f64, mem[2].max(1) as f64);
    let used = ss.tcp_mem_pages as f64;
    let pct_pressure = 100.0 * used / pressure;
    let pct_high = 100.0 * used / high;
    let t = threshold("tcp_memory");
    let pressures = counter_increase(a, b, "TcpExt:TCPMemoryPressures").unwrap_or(0);
    let aborts = counter_increase(a, b, "TcpExt:TCPAbortOnMemory").unwrap_or(0);
    let sev = if t.crit.is_some_and(|c| pct_high > c) || aborts > 0 {
        Severity::Critical
    } else if t.warn.is_some_and(|w| pct_pressure > w) || pressures > 0 {
        Severity::Warning
    } else {
        return;
    };
    let page_kib = 4.0;
    f.push(Finding {
        rule: "tcp_memory",
        severity: sev,
        subject: "system".into(),
        summary: format!(
            "TCP sockets use {} pages ({:.0} MiB): {pct_pressure:.0}% of the pressure mark, {pct_high:.0}% of the hard limit",
            ss.tcp_mem_pages,
            used * page_kib / 1024.0
        ),
        evidence: vec![
            ev("TCP mem", used, "pages", "/proc/net/sockstat"),
            ev("tcp_mem pressure", pressure, "pages", "/proc/sys/net/ipv4/tcp_mem field 2"),
            ev("tcp_mem high", high, "pages", "/proc/sys/net/ipv4/tcp_mem field 3"),
            ev("TcpExt:TCPMemoryPressures increase", pressures as f64, "", "/proc/net/netstat"),
            ev("TcpExt:TCPAbortOnMemory increase", aborts as f64, "", "/proc/net/netstat"),
        ],
        cause: "Socket buffers of all TCP connections approach tcp_mem, so the kernel shrinks windows (pressure) and at the high mark aborts connections.".into(),
        remedy: vec![
            Remedy::sysctl("net.ipv4.tcp_mem", format!("{} {} {}", mem[0].saturating_mul(2), mem[1].saturating_mul(2), mem[2].saturating_mul(2))),
            Remedy::sysctl("net.ipv4.tcp_wmem", "4096 16384 4194304   (cap per-socket send buffers; 16 MiB x 50k sockets exceeds any RAM)"),
        ],
    });
}

fn tcp_backlog_drops(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(d) = counter_increase(a, b, "TcpExt:TCPBacklogDrop") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = grade("tcp_backlog_drops", per_min) else {
        return;
    };
    f.push(Finding {
        rule: "tcp_backlog_drops",
        severity: sev,
        subject: "system".into(),
        summary: format!("{d} segments dropped at socket backlogs ({per_min:.1}/min)"),
        evidence: vec![
            ev("TcpExt:TCPBacklogDrop increase", d as f64, "segments", "/proc/net/netstat"),
            ev("TCPBacklogDrop rate", per_min, "per minute", "/proc/net/netstat"),
        ],
        cause: "Segments arrived while a socket was locked by its owner and its backlog exceeded the receive buffer, so the application holds sockets too long.".into(),
        remedy: vec![
            Remedy::sysctl("net.ipv4.tcp_rmem", "4096 131072 6291456"),
            Remedy::code("do less work per socket per event-loop turn so sockets are released to the softirq quickly".into()),
        ],
    });
}

fn somaxconn_low(b: &Sample, f: &mut Vec<Finding>) {
    let Some(s) = somaxconn(b) else { return };
    let Some(sev) = grade("somaxconn_low", s as f64) else {
        return;
    };
    f.push(Finding {
        rule: "somaxconn_low",
        severity: sev,
        subject: "system".into(),
        summary: format!("net.core.somaxconn is {s}: every listen backlog is capped at {s}"),
        evidence: vec![ev("net.core.somaxconn", s as f64, "connections", "/proc/sys/net/core/somaxconn")],
        cause: "The kernel silently caps every listen() backlog at somaxconn, so a burst of viewers overflows the accept queue.".into(),
        remedy: vec![Remedy::sysctl("net.core.somaxconn", s.saturating_mul(2).max(4096))],
    });
}

fn syncookies_off(b: &Sample, f: &mut Vec<Finding>) {
    let Some(c) = b.sysctls.int("net.ipv4.tcp_syncookies") else {
        return;
    };
    let Some(sev) = grade("syncookies_off", c as f64) else {
        return;
    };
    f.push(Finding {
        rule: "syncookies_off",
        severity: sev,
        subject: "system".into(),
        summary: "SYN cookies are disabled".into(),
        evidence: vec![ev("net.ipv4.tcp_syncookies", c as f64, "", "/proc/sys/net/ipv4/tcp_syncookies")],
        cause: "Without SYN cookies a full SYN queue drops new connections instead of answering them statelessly.".into(),
        remedy: vec![Remedy::sysctl("net.ipv4.tcp_syncookies", 1)],
    });
}

/// The `rps_cpus` mask selecting CPUs 0..ncpu, in the kernel's format: hex, comma-separated
/// 32-bit groups, most significant first (`3`, `ffffffff,ffffffff`, `f,ffffffff`).
pub fn rps_mask(ncpu: usize) -> String {
    let ncpu = ncpu.max(1);
    let groups = ncpu.div_ceil(32);
    (0..groups)
        .rev()
        .map(|g| {
            let bits = (ncpu - g * 32).min(32);
            let word: u32 = if bits == 32 {
                u32::MAX
            } else {
                (1u32 << bits) - 1
            };
            if g == groups - 1 {
                format!("{word:x}")
            } else {
                format!("{word:08x}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `fmt_num` is used by the text renderers.
pub fn number(v: f64) -> String {
    fmt_num(v)
}

/// The thresholds table as Markdown, as printed in docs/sre-diagnose.md (a test keeps them equal).
pub fn thresholds_markdown() -> String {
    let mut o = String::from(
        "| rule | measure | unit | warning | critical |\n| --- | --- | --- | --- | --- |\n",
    );
    for t in THRESHOLDS {
        let cmp = if t.below { "<" } else { ">" };
        let cell = |v: Option<f64>| {
            v.map(|x| format!("{cmp} {}", fmt_num(x)))
                .unwrap_or_else(|| "-".into())
        };
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            t.rule,
            t.measure,
            t.unit,
            cell(t.warn),
            cell(t.crit)
        ));
    }
    o
}
