//! Connection capacity an edge runs into before CPU: the conntrack table, ephemeral ports per
//! destination (origin fetches), TIME_WAIT buckets and orphaned sockets. Each one, when full,
//! refuses connections in a way clients cannot tell from an accept-queue overflow.

use super::*;
use crate::finding::{ev, Remedy};
use crate::probe::conntrack;
use crate::thresholds::Rule;

fn pct(part: f64, whole: f64) -> f64 {
    100.0 * part / whole.max(1.0)
}

pub(super) fn conntrack(b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(ct) = &b.conntrack else { return };
    let used = pct(ct.count as f64, ct.max as f64);
    let drops_per_min = r.conntrack_drops_per_s.map(|d| d * 60.0);
    let next_max = ct.max.saturating_mul(2).max(262_144);
    let remedy = || {
        vec![
            Remedy::sysctl(conntrack::MAX, next_max),
            Remedy::command(
                "or exempt the viewers' port from tracking: nft add rule inet raw prerouting tcp dport 443 notrack (a stateless edge needs no conntrack)".into(),
            ),
        ]
    };
    if let Some(sev) = Rule::ConntrackFull.grade(used) {
        f.push(Finding {
            rule: Rule::ConntrackFull,
            severity: sev,
            subject: "system".into(),
            summary: format!("conntrack holds {} of {} entries ({used:.0}%)", ct.count, ct.max),
            evidence: vec![
                ev("nf_conntrack_count", ct.count as f64, "entries", sysctl_src(conntrack::COUNT)),
                ev("nf_conntrack_max", ct.max as f64, "entries", sysctl_src(conntrack::MAX)),
            ],
            cause: "Every connection through netfilter takes a conntrack entry; when the table is full new connections are dropped, which clients see as a SYN timeout, like an accept-queue overflow.".into(),
            remedy: remedy(),
        });
    }
    if let Some(d) = drops_per_min {
        if let Some(sev) = Rule::ConntrackDrops.grade(d) {
            f.push(Finding {
                rule: Rule::ConntrackDrops,
                severity: sev,
                subject: "system".into(),
                summary: format!("conntrack dropped or failed to insert {d:.1} connections/min"),
                evidence: vec![
                    ev("drop + insert_failed + early_drop", d, "per minute", src(conntrack::STAT)),
                    ev("nf_conntrack_count", ct.count as f64, "entries", sysctl_src(conntrack::COUNT)),
                    ev("nf_conntrack_max", ct.max as f64, "entries", sysctl_src(conntrack::MAX)),
                ],
                cause: "The conntrack table refused new entries (full, or hash-chain clashes under load): those packets were dropped.".into(),
                remedy: remedy(),
            });
        }
    }
}

pub(super) fn ephemeral_ports(b: &Sample, p: &Profile, f: &mut Vec<Finding>) {
    let Some(range) = b
        .sysctls
        .ints("net.ipv4.ip_local_port_range")
        .filter(|r| r.len() == 2)
    else {
        return;
    };
    let size = (range[1] - range[0] + 1).max(1) as f64;
    let Some(top) = b.destinations.first() else {
        return;
    };
    let used = pct(top.ports as f64, size);
    let Some(sev) = Rule::EphemeralPorts.grade(used) else {
        return;
    };
    f.push(Finding {
        rule: Rule::EphemeralPorts,
        severity: sev,
        subject: format!("{} -> {}", top.local, top.remote),
        summary: format!(
            "{} of {} ephemeral ports in use from {} to {} ({used:.0}%)",
            top.ports, size, top.local, top.remote
        ),
        evidence: vec![
            ev(format!("sockets {} -> {}", top.local, top.remote), top.ports as f64, "ports", src(paths::NET_TCP)),
            ev("net.ipv4.ip_local_port_range size", size, "ports", sysctl_src("net.ipv4.ip_local_port_range")),
        ],
        cause: "Each outgoing connection to one destination needs its own local port; when the range is used up connect() fails with EADDRNOTAVAIL (origin fetches fail) while nothing else looks wrong.".into(),
        remedy: profile_value(p, "net.ipv4.ip_local_port_range")
            .map(|v| Remedy::sysctl("net.ipv4.ip_local_port_range", v))
            .into_iter()
            .chain([Remedy::code("keep origin connections alive (a pool) instead of one per fetch, or fetch from several origin addresses".into())])
            .collect(),
    });
}

pub(super) fn time_wait(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(ss) = &b.sockstat else { return };
    if let Some(max) = b.sysctls.int("net.ipv4.tcp_max_tw_buckets") {
        let used = pct(ss.tcp_tw as f64, max as f64);
        if let Some(sev) = Rule::TimeWait.grade(used) {
            f.push(Finding {
                rule: Rule::TimeWait,
                severity: sev,
                subject: "system".into(),
                summary: format!("{} sockets in TIME_WAIT of tcp_max_tw_buckets {max} ({used:.0}%)", ss.tcp_tw),
                evidence: vec![
                    ev("TIME_WAIT sockets", ss.tcp_tw as f64, "sockets", src(paths::SOCKSTAT)),
                    ev("net.ipv4.tcp_max_tw_buckets", max as f64, "sockets", sysctl_src("net.ipv4.tcp_max_tw_buckets")),
                ],
                cause: "Past tcp_max_tw_buckets the kernel destroys closing sockets at once (TCPTimeWaitOverflow) and late segments of old connections can reach new ones.".into(),
                remedy: vec![
                    Remedy::sysctl("net.ipv4.tcp_max_tw_buckets", max.saturating_mul(2)),
                    Remedy::code("let clients close first (keep-alive) so TIME_WAIT stays on their side".into()),
                ],
            });
        }
    }
    let Some(d) = counter_increase(a, b, "TcpExt:TCPTimeWaitOverflow") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    if let Some(sev) = Rule::TimeWaitOverflow.grade(per_min) {
        f.push(Finding {
            rule: Rule::TimeWaitOverflow,
            severity: sev,
            subject: "system".into(),
            summary: format!("{d} sockets skipped TIME_WAIT because the buckets were full ({per_min:.1}/min)"),
            evidence: vec![ev("TcpExt:TCPTimeWaitOverflow increase", d as f64, "sockets", src(paths::NETSTAT))],
            cause: "tcp_max_tw_buckets was reached: closing connections were destroyed without TIME_WAIT.".into(),
            remedy: b
                .sysctls
                .int("net.ipv4.tcp_max_tw_buckets")
                .map(|m| Remedy::sysctl("net.ipv4.tcp_max_tw_buckets", m.saturating_mul(2)))
                .into_iter()
                .collect(),
        });
    }
}

pub(super) fn orphans(b: &Sample, f: &mut Vec<Finding>) {
    let (Some(ss), Some(max)) = (&b.sockstat, b.sysctls.int("net.ipv4.tcp_max_orphans")) else {
        return;
    };
    let used = pct(ss.tcp_orphan as f64, max as f64);
    let Some(sev) = Rule::Orphans.grade(used) else {
        return;
    };
    f.push(Finding {
        rule: Rule::Orphans,
        severity: sev,
        subject: "system".into(),
        summary: format!("{} orphaned sockets of tcp_max_orphans {max} ({used:.0}%)", ss.tcp_orphan),
        evidence: vec![
            ev("orphaned sockets", ss.tcp_orphan as f64, "sockets", src(paths::SOCKSTAT)),
            ev("net.ipv4.tcp_max_orphans", max as f64, "sockets", sysctl_src("net.ipv4.tcp_max_orphans")),
        ],
        cause: "Sockets the server closed while data was still unsent (slow viewers) linger as orphans; past tcp_max_orphans the kernel resets them (\"too many orphaned sockets\").".into(),
        remedy: vec![Remedy::sysctl("net.ipv4.tcp_max_orphans", max.saturating_mul(2))],
    });
}
