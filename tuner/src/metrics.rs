//! The Prometheus text exposition of one watch interval: the same rates, findings and probes
//! `diagnose` reports, as gauges (levels and per-second rates) and counters (the kernel's own
//! cumulative counters). Served by `watch --prometheus ADDR:PORT` and written by
//! `watch --textfile DIR` for node_exporter's textfile collector.
//!
//! The kernel counts accept-queue overflows per system, not per listener: listeners export
//! their queue length and backlog, and the overflow rate is system-wide.

use crate::finding::{Finding, Severity, Status};
use crate::probe::Sample;
use crate::rates::{Rates, RATE_COUNTERS};
use crate::thresholds::Rule;
use std::fmt::Write as _;

/// File name `--textfile DIR` writes (node_exporter reads `*.prom`).
pub const TEXTFILE: &str = "corestream_tune.prom";

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP corestream_tune_{name} {help}");
        let _ = writeln!(self.0, "# TYPE corestream_tune_{name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.0, "corestream_tune_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {}", value(v));
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

/// Label values escape backslash, double quote and newline (exposition format).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn value(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// Everything one interval says, as Prometheus text.
pub fn render(r: &Rates, b: &Sample, findings: &[Finding], status: Status) -> String {
    let mut o = Out(String::new());
    o.one(
        "status",
        "gauge",
        "Verdict of the last interval: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a probe could not be read).",
        f64::from(status.exit_code()),
    );
    o.one(
        "interval_seconds",
        "gauge",
        "Seconds between the two samples the rates come from.",
        r.seconds,
    );
    o.family(
        "rule_severity",
        "gauge",
        "Worst finding of each rule in the last interval: 0 none, 1 warning, 2 critical.",
    );
    // The minimum-rate row gates net_rx_imbalance; it is never a finding of its own.
    for rule in Rule::ALL
        .into_iter()
        .filter(|r| *r != Rule::NetRxImbalanceMinRate)
    {
        let worst = findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| f.severity)
            .max();
        let v = match worst {
            Some(Severity::Critical) => 2.0,
            Some(Severity::Warning) => 1.0,
            _ => 0.0,
        };
        o.sample("rule_severity", &[("rule", rule.name())], v);
    }
    o.family(
        "unknown_probe",
        "gauge",
        "1 for each probe a rule needs that could not be read.",
    );
    for u in &b.unknown {
        o.sample("unknown_probe", &[("probe", u)], 1.0);
    }

    let cpus: Vec<(String, &crate::rates::CpuRates)> =
        r.cpus.iter().map(|c| (c.cpu.to_string(), c)).collect();
    let per_cpu =
        |o: &mut Out, name: &str, help: &str, get: fn(&crate::rates::CpuRates) -> Option<f64>| {
            o.family(name, "gauge", help);
            for (cpu, c) in &cpus {
                if let Some(v) = get(c) {
                    o.sample(name, &[("cpu", cpu)], v);
                }
            }
        };
    per_cpu(
        &mut o,
        "cpu_softirq_percent",
        "Share of the CPU's time in softirq (the si column of top).",
        |c| c.si_pct,
    );
    per_cpu(
        &mut o,
        "cpu_busy_percent",
        "Share of the CPU's time not idle nor iowait.",
        |c| c.busy_pct,
    );
    per_cpu(
        &mut o,
        "net_rx_softirqs_per_second",
        "NET_RX softirqs run per second (/proc/softirqs).",
        |c| c.net_rx_per_s,
    );
    per_cpu(
        &mut o,
        "net_tx_softirqs_per_second",
        "NET_TX softirqs run per second (/proc/softirqs).",
        |c| c.net_tx_per_s,
    );
    per_cpu(
        &mut o,
        "softnet_dropped_per_second",
        "Packets dropped at the per-CPU input backlog per second (softnet_stat column 2).",
        |c| c.softnet_dropped_per_s,
    );
    per_cpu(
        &mut o,
        "softnet_squeezed_per_second",
        "NET_RX rounds that ran out of budget per second (softnet_stat column 3).",
        |c| c.softnet_squeezed_per_s,
    );

    o.family("netstat_increase_per_second", "gauge", "Increase per second of a /proc/net/netstat or snmp counter (TcpExt:ListenOverflows counts dropped handshake packets, system-wide).");
    for (k, v) in &r.counters {
        o.sample("netstat_increase_per_second", &[("name", k)], *v);
    }
    o.family(
        "netstat_events_total",
        "counter",
        "The kernel's cumulative /proc/net/netstat and snmp counters.",
    );
    for k in RATE_COUNTERS {
        if let Some(v) = b.counters.get(k) {
            o.sample("netstat_events_total", &[("name", k)], v.max(0) as f64);
        }
    }

    if let Some(ls) = &b.listeners {
        o.family(
            "listener_accept_queue",
            "gauge",
            "Connections waiting in a listener's accept queue.",
        );
        for l in &ls.sockets {
            o.sample(
                "listener_accept_queue",
                &[("address", &l.address.to_string())],
                f64::from(l.accept_queue),
            );
        }
        o.family(
            "listener_backlog",
            "gauge",
            "A listener's accept-queue maximum: min(listen() backlog, somaxconn).",
        );
        for l in &ls.sockets {
            if let Some(m) = l.backlog {
                o.sample(
                    "listener_backlog",
                    &[("address", &l.address.to_string())],
                    f64::from(m),
                );
            }
        }
    }

    if let Some(n) = b.file_nr {
        o.one(
            "file_handles_allocated",
            "gauge",
            "File handles allocated system-wide (fs.file-nr).",
            n.allocated as f64,
        );
        o.one("file_handles_max", "gauge", "fs.file-max.", n.max as f64);
    }
    o.family(
        "process_open_fds",
        "gauge",
        "Open file descriptors of a watched process.",
    );
    for p in &b.processes {
        o.sample(
            "process_open_fds",
            &[("pid", &p.pid.to_string()), ("comm", &p.comm)],
            p.open_fds as f64,
        );
    }
    o.family(
        "process_fd_limit",
        "gauge",
        "Soft RLIMIT_NOFILE of a watched process.",
    );
    for p in &b.processes {
        if let Some(s) = p.soft_limit {
            o.sample(
                "process_fd_limit",
                &[("pid", &p.pid.to_string()), ("comm", &p.comm)],
                s as f64,
            );
        }
    }
    o.family(
        "top_process_open_fds",
        "gauge",
        "Open file descriptors of the processes holding the most.",
    );
    for p in &b.top_fds {
        o.sample(
            "top_process_open_fds",
            &[("pid", &p.pid.to_string()), ("comm", &p.comm)],
            p.open_fds as f64,
        );
    }

    if let Some(c) = &b.conntrack {
        o.one(
            "conntrack_entries",
            "gauge",
            "nf_conntrack_count.",
            c.count as f64,
        );
        o.one("conntrack_max", "gauge", "nf_conntrack_max.", c.max as f64);
    }
    if let Some(d) = r.conntrack_drops_per_s {
        o.one(
            "conntrack_drops_per_second",
            "gauge",
            "Conntrack drop + insert_failed + early_drop per second.",
            d,
        );
    }
    if let Some(range) = b
        .sysctls
        .ints("net.ipv4.ip_local_port_range")
        .filter(|r| r.len() == 2)
    {
        o.one(
            "ephemeral_port_range_size",
            "gauge",
            "Ports in net.ipv4.ip_local_port_range.",
            (range[1] - range[0] + 1) as f64,
        );
    }
    o.family(
        "ephemeral_ports_in_use",
        "gauge",
        "Ephemeral ports in use from a local address to a destination (busiest ones).",
    );
    for d in &b.destinations {
        o.sample(
            "ephemeral_ports_in_use",
            &[
                ("local", &d.local.to_string()),
                ("destination", &d.remote.to_string()),
            ],
            d.ports as f64,
        );
    }
    if let Some(s) = &b.sockstat {
        o.one(
            "tcp_time_wait_sockets",
            "gauge",
            "TCP sockets in TIME_WAIT (sockstat tw).",
            s.tcp_tw as f64,
        );
        o.one(
            "tcp_orphan_sockets",
            "gauge",
            "Orphaned TCP sockets (sockstat orphan).",
            s.tcp_orphan as f64,
        );
        o.one(
            "tcp_memory_pages",
            "gauge",
            "Pages charged to TCP socket buffers (sockstat mem).",
            s.tcp_mem_pages as f64,
        );
    }
    o.family(
        "nic_irqs_per_second",
        "gauge",
        "Interrupts per second of a NIC queue vector on a CPU.",
    );
    for i in &r.nic_irqs {
        for (cpu, v) in &i.per_cpu {
            o.sample(
                "nic_irqs_per_second",
                &[
                    ("nic", &i.nic),
                    ("irq", &i.irq.to_string()),
                    ("queue", &i.queue.to_string()),
                    ("cpu", &cpu.to_string()),
                ],
                *v,
            );
        }
    }
    o.family(
        "nic_packets_per_second",
        "gauge",
        "Packets per second through an interface (/proc/net/dev).",
    );
    for i in &r.ifaces {
        o.sample(
            "nic_packets_per_second",
            &[("nic", &i.name), ("direction", "rx")],
            i.rx_packets_per_s,
        );
        o.sample(
            "nic_packets_per_second",
            &[("nic", &i.name), ("direction", "tx")],
            i.tx_packets_per_s,
        );
    }
    o.0
}
