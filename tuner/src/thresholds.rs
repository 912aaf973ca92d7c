//! The one thresholds table, keyed by [`Rule`] (in the spirit of Netdata's alarms: tcp_listen,
//! softnet, fds). `docs/sre-diagnose.md` prints the same table; a test keeps them equal.
//!
//! A rule's name is written once, in [`Rule::name`]: JSON, text and docs all take it from there,
//! and code names rules by variant, so a misspelling does not compile.

use crate::finding::{number, Severity};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    ListenOverflows,
    AcceptQueueFull,
    SynQueueDrops,
    SoftnetDropped,
    SoftnetSqueezed,
    NetRxImbalance,
    /// Not a finding of its own: below this total NET_RX rate, [`Rule::NetRxImbalance`] is noise.
    NetRxImbalanceMinRate,
    SoftirqCpu,
    ProcessFds,
    NofileSoftLow,
    SystemFds,
    TcpMemory,
    TcpBacklogDrops,
    SomaxconnLow,
    SyncookiesOff,
    ConntrackFull,
    ConntrackDrops,
    EphemeralPorts,
    TimeWait,
    TimeWaitOverflow,
    Orphans,
    /// Advice, never a warning: what the delivery path could do better.
    QdiscForBbr,
    KtlsUnavailable,
    NotsentLowat,
    IncomingCpu,
    IncomingCpuUncovered,
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One threshold: a finding fires when the measured value is strictly above `warn` (warning)
/// or `crit` (critical), or strictly below them when `below` is set; `None` means that severity
/// is never reached by this measure alone.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Threshold {
    pub rule: Rule,
    pub measure: &'static str,
    pub unit: &'static str,
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub below: bool,
}

const fn row(
    rule: Rule,
    measure: &'static str,
    unit: &'static str,
    warn: Option<f64>,
    crit: Option<f64>,
    below: bool,
) -> Threshold {
    Threshold {
        rule,
        measure,
        unit,
        warn,
        crit,
        below,
    }
}

impl Rule {
    /// Every rule, in the order of the table.
    pub const ALL: [Rule; 26] = [
        Rule::ListenOverflows,
        Rule::AcceptQueueFull,
        Rule::SynQueueDrops,
        Rule::SoftnetDropped,
        Rule::SoftnetSqueezed,
        Rule::NetRxImbalance,
        Rule::NetRxImbalanceMinRate,
        Rule::SoftirqCpu,
        Rule::ProcessFds,
        Rule::NofileSoftLow,
        Rule::SystemFds,
        Rule::TcpMemory,
        Rule::TcpBacklogDrops,
        Rule::SomaxconnLow,
        Rule::SyncookiesOff,
        Rule::ConntrackFull,
        Rule::ConntrackDrops,
        Rule::EphemeralPorts,
        Rule::TimeWait,
        Rule::TimeWaitOverflow,
        Rule::Orphans,
        Rule::QdiscForBbr,
        Rule::KtlsUnavailable,
        Rule::NotsentLowat,
        Rule::IncomingCpu,
        Rule::IncomingCpuUncovered,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Rule::ListenOverflows => "listen_overflows",
            Rule::AcceptQueueFull => "accept_queue_full",
            Rule::SynQueueDrops => "syn_queue_drops",
            Rule::SoftnetDropped => "softnet_dropped",
            Rule::SoftnetSqueezed => "softnet_squeezed",
            Rule::NetRxImbalance => "net_rx_imbalance",
            Rule::NetRxImbalanceMinRate => "net_rx_imbalance_min_rate",
            Rule::SoftirqCpu => "softirq_cpu",
            Rule::ProcessFds => "process_fds",
            Rule::NofileSoftLow => "nofile_soft_low",
            Rule::SystemFds => "system_fds",
            Rule::TcpMemory => "tcp_memory",
            Rule::TcpBacklogDrops => "tcp_backlog_drops",
            Rule::SomaxconnLow => "somaxconn_low",
            Rule::SyncookiesOff => "syncookies_off",
            Rule::ConntrackFull => "conntrack_full",
            Rule::ConntrackDrops => "conntrack_drops",
            Rule::EphemeralPorts => "ephemeral_ports",
            Rule::TimeWait => "time_wait",
            Rule::TimeWaitOverflow => "time_wait_overflow",
            Rule::Orphans => "orphans",
            Rule::QdiscForBbr => "qdisc_for_bbr",
            Rule::KtlsUnavailable => "ktls_unavailable",
            Rule::NotsentLowat => "notsent_lowat",
            Rule::IncomingCpu => "incoming_cpu",
            Rule::IncomingCpuUncovered => "incoming_cpu_uncovered",
        }
    }

    /// The rule's row of the table.
    #[rustfmt::skip]
    pub const fn threshold(self) -> Threshold {
        use Rule::*;
        match self {
            ListenOverflows => row(self, "TcpExt:ListenOverflows increase", "per minute", Some(0.0), Some(5.0), false),
            AcceptQueueFull => row(self, "listener accept queue / its backlog", "%", Some(99.9), None, false),
            SynQueueDrops => row(self, "TcpExt:TCPReqQFullDrop increase", "per minute", Some(0.0), Some(5.0), false),
            SoftnetDropped => row(self, "softnet_stat dropped, all CPUs", "per minute", Some(10.0), Some(600.0), false),
            SoftnetSqueezed => row(self, "softnet_stat time_squeeze, all CPUs", "per minute", Some(10.0), None, false),
            NetRxImbalance => row(self, "share of NET_RX softirqs on the busiest CPU", "%", Some(80.0), None, false),
            NetRxImbalanceMinRate => row(self, "NET_RX softirqs, all CPUs (below this the share is noise)", "per second", Some(500.0), None, false),
            SoftirqCpu => row(self, "softirq (si) time of one CPU", "% of that CPU", Some(30.0), Some(60.0), false),
            ProcessFds => row(self, "open fds / soft RLIMIT_NOFILE", "%", Some(80.0), Some(95.0), false),
            NofileSoftLow => row(self, "soft RLIMIT_NOFILE of the server", "fds", Some(4096.0), None, true),
            SystemFds => row(self, "fs.file-nr allocated / fs.file-max", "%", Some(80.0), Some(90.0), false),
            TcpMemory => row(self, "sockstat TCP mem / tcp_mem pressure (warn) and / tcp_mem high (crit)", "%", Some(100.0), Some(90.0), false),
            TcpBacklogDrops => row(self, "TcpExt:TCPBacklogDrop increase", "per minute", Some(10.0), None, false),
            SomaxconnLow => row(self, "net.core.somaxconn", "connections", Some(4096.0), None, true),
            SyncookiesOff => row(self, "net.ipv4.tcp_syncookies", "0/1/2", Some(1.0), None, true),
            ConntrackFull => row(self, "nf_conntrack_count / nf_conntrack_max", "%", Some(80.0), Some(95.0), false),
            ConntrackDrops => row(self, "conntrack drop + insert_failed + early_drop, all CPUs", "per minute", None, Some(0.0), false),
            EphemeralPorts => row(self, "ephemeral ports in use toward one destination / ports in ip_local_port_range", "%", Some(70.0), Some(90.0), false),
            TimeWait => row(self, "sockstat TCP tw / net.ipv4.tcp_max_tw_buckets", "%", Some(80.0), None, false),
            TimeWaitOverflow => row(self, "TcpExt:TCPTimeWaitOverflow increase", "per minute", Some(0.0), None, false),
            Orphans => row(self, "sockstat TCP orphan / net.ipv4.tcp_max_orphans", "%", Some(80.0), Some(95.0), false),
            QdiscForBbr => row(self, "advice: tcp_congestion_control = bbr over a default_qdisc other than fq", "-", None, None, false),
            KtlsUnavailable => row(self, "advice: tls absent from net.ipv4.tcp_available_ulp", "-", None, None, false),
            NotsentLowat => row(self, "advice: net.ipv4.tcp_notsent_lowat above its opt-in value", "bytes", None, None, false),
            IncomingCpu => row(self, "advice: every online CPU receives flows of every NIC (a queue IRQ or RPS on each)", "-", None, None, false),
            IncomingCpuUncovered => row(self, "online CPUs receiving no flow of a NIC, corestream running with --incoming-cpu", "CPUs", Some(0.0), None, false),
        }
    }

    /// Severity of `value` against this rule's row.
    pub fn grade(self, value: f64) -> Option<Severity> {
        let t = self.threshold();
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
}

/// The thresholds table as Markdown, as printed in docs/sre-diagnose.md (a test keeps them equal).
pub fn markdown() -> String {
    let mut o = String::from(
        "| rule | measure | unit | warning | critical |\n| --- | --- | --- | --- | --- |\n",
    );
    for t in Rule::ALL.map(Rule::threshold) {
        let cmp = if t.below { "<" } else { ">" };
        let cell = |v: Option<f64>| {
            v.map(|x| format!("{cmp} {}", number(x)))
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
