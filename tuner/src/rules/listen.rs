use super::*;
use crate::finding::{ev, Remedy};
use crate::steps::Key;
use crate::thresholds::Rule;

/// Remedies for a listener whose accept queue is too small or drained too slowly.
pub(super) fn backlog_remedies(l: Option<&Listener>, somax: Option<i64>) -> Vec<Remedy> {
    let mut out = Vec::new();
    let port = l
        .map(|l| format!(" on port {}", l.port()))
        .unwrap_or_default();
    match (l.and_then(|l| l.backlog), somax) {
        (Some(backlog), Some(s)) if i64::from(backlog) < s => out.push(Remedy::code(format!(
            "the process listening{port} asked listen() for a backlog of {backlog}; raise it to {s} (net.core.somaxconn caps it), e.g. socket2 Socket::listen({s}), then restart the listener"
        ))),
        (_, Some(s)) => {
            let target = Key::Somaxconn.next(Some(s));
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

pub(super) fn listen_overflows(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(d) = counter_increase(a, b, "TcpExt:ListenOverflows") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = Rule::ListenOverflows.grade(per_min) else {
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
            "drops",
            src(paths::NETSTAT),
        ),
        ev(
            "ListenOverflows rate",
            per_min,
            "per minute",
            src(paths::NETSTAT),
        ),
    ];
    if let Some(ld) = counter_increase(a, b, "TcpExt:ListenDrops") {
        evidence.push(ev(
            "TcpExt:ListenDrops increase",
            ld as f64,
            "drops",
            src(paths::NETSTAT),
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
            sysctl_src("net.core.somaxconn"),
        ));
    }
    f.push(Finding {
        rule: Rule::ListenOverflows,
        severity: sev,
        subject,
        summary: format!(
            "an accept queue was full {d} times in {:.1}s ({per_min:.1}/min): the kernel dropped that many handshake packets (ListenOverflows counts drops, a client's retransmitted SYN or ACK again each time, not distinct clients)",
            r.seconds
        ),
        evidence,
        cause: "A listener's accept queue was full, so the kernel dropped new connections (clients retry the SYN after 1 s, 3 s, 7 s: viewers see slow starts).".into(),
        remedy: backlog_remedies(culprits.first().copied(), somaxconn(b)),
    });
}

pub(super) fn accept_queue_full(b: &Sample, f: &mut Vec<Finding>) {
    let Some(ls) = &b.listeners else { return };
    for l in ls.sockets.iter() {
        let Some(max) = l.backlog else { continue };
        let pct = 100.0 * f64::from(l.accept_queue) / f64::from(max.max(1));
        let Some(sev) = Rule::AcceptQueueFull.grade(pct) else {
            continue;
        };
        f.push(Finding {
            rule: Rule::AcceptQueueFull,
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

pub(super) fn syn_queue_drops(a: &Sample, b: &Sample, r: &Rates, f: &mut Vec<Finding>) {
    let Some(d) = counter_increase(a, b, "TcpExt:TCPReqQFullDrop") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = Rule::SynQueueDrops.grade(per_min) else {
        return;
    };
    let cookies = b.sysctls.int("net.ipv4.tcp_syncookies");
    let syn_backlog = b.sysctls.int("net.ipv4.tcp_max_syn_backlog");
    let mut evidence = vec![
        ev(
            "TcpExt:TCPReqQFullDrop increase",
            d as f64,
            "SYNs",
            src(paths::NETSTAT),
        ),
        ev(
            "TCPReqQFullDrop rate",
            per_min,
            "per minute",
            src(paths::NETSTAT),
        ),
    ];
    if let Some(c) = counter_increase(a, b, "TcpExt:TCPReqQFullDoCookies") {
        evidence.push(ev(
            "TcpExt:TCPReqQFullDoCookies increase",
            c as f64,
            "SYNs",
            src(paths::NETSTAT),
        ));
    }
    if let Some(c) = cookies {
        evidence.push(ev(
            "net.ipv4.tcp_syncookies",
            c as f64,
            "",
            sysctl_src("net.ipv4.tcp_syncookies"),
        ));
    }
    if let Some(s) = syn_backlog {
        evidence.push(ev(
            "net.ipv4.tcp_max_syn_backlog",
            s as f64,
            "",
            sysctl_src("net.ipv4.tcp_max_syn_backlog"),
        ));
    }
    let mut remedy = Vec::new();
    if cookies != Some(1) {
        remedy.push(Remedy::sysctl("net.ipv4.tcp_syncookies", 1));
    }
    remedy.push(Remedy::sysctl(
        "net.ipv4.tcp_max_syn_backlog",
        Key::TcpMaxSynBacklog.next(syn_backlog),
    ));
    remedy.push(Remedy::code(
        "raise the listen() backlog too: the SYN queue is also bounded by it".into(),
    ));
    f.push(Finding {
        rule: Rule::SynQueueDrops,
        severity: sev,
        subject: "system".into(),
        summary: format!("{d} SYNs dropped because a SYN queue was full ({per_min:.1}/min)"),
        evidence,
        cause: "Half-open connections filled the SYN queue (a SYN burst or flood) and syncookies did not absorb them.".into(),
        remedy,
    });
}

pub(super) fn tcp_backlog_drops(
    a: &Sample,
    b: &Sample,
    r: &Rates,
    p: &Profile,
    f: &mut Vec<Finding>,
) {
    let Some(d) = counter_increase(a, b, "TcpExt:TCPBacklogDrop") else {
        return;
    };
    let per_min = d as f64 * 60.0 / r.seconds;
    let Some(sev) = Rule::TcpBacklogDrops.grade(per_min) else {
        return;
    };
    f.push(Finding {
        rule: Rule::TcpBacklogDrops,
        severity: sev,
        subject: "system".into(),
        summary: format!("{d} segments dropped at socket backlogs ({per_min:.1}/min)"),
        evidence: vec![
            ev("TcpExt:TCPBacklogDrop increase", d as f64, "segments", src(paths::NETSTAT)),
            ev("TCPBacklogDrop rate", per_min, "per minute", src(paths::NETSTAT)),
        ],
        cause: "Segments arrived while a socket was locked by its owner and its backlog exceeded the receive buffer, so the application holds sockets too long.".into(),
        remedy: profile_value(p, "net.ipv4.tcp_rmem")
            .map(|v| Remedy::sysctl("net.ipv4.tcp_rmem", v))
            .into_iter()
            .chain([Remedy::code("do less work per socket per event-loop turn so sockets are released to the softirq quickly".into())])
            .collect(),
    });
}

pub(super) fn somaxconn_low(b: &Sample, f: &mut Vec<Finding>) {
    let Some(s) = somaxconn(b) else { return };
    let Some(sev) = Rule::SomaxconnLow.grade(s as f64) else {
        return;
    };
    f.push(Finding {
        rule: Rule::SomaxconnLow,
        severity: sev,
        subject: "system".into(),
        summary: format!("net.core.somaxconn is {s}: every listen backlog is capped at {s}"),
        evidence: vec![ev("net.core.somaxconn", s as f64, "connections", sysctl_src("net.core.somaxconn"))],
        cause: "The kernel silently caps every listen() backlog at somaxconn, so a burst of viewers overflows the accept queue.".into(),
        remedy: vec![Remedy::sysctl(Key::Somaxconn.sysctl(), Key::Somaxconn.next(Some(s)))],
    });
}

pub(super) fn syncookies_off(b: &Sample, f: &mut Vec<Finding>) {
    let Some(c) = b.sysctls.int("net.ipv4.tcp_syncookies") else {
        return;
    };
    let Some(sev) = Rule::SyncookiesOff.grade(c as f64) else {
        return;
    };
    f.push(Finding {
        rule: Rule::SyncookiesOff,
        severity: sev,
        subject: "system".into(),
        summary: "SYN cookies are disabled".into(),
        evidence: vec![ev("net.ipv4.tcp_syncookies", c as f64, "", sysctl_src("net.ipv4.tcp_syncookies"))],
        cause: "Without SYN cookies a full SYN queue drops new connections instead of answering them statelessly.".into(),
        remedy: vec![Remedy::sysctl("net.ipv4.tcp_syncookies", 1)],
    });
}
