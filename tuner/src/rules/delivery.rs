//! Advice on the delivery path: knobs whose values are words or trade-offs (qdisc and
//! congestion control, unsent-data watermark), what the kernel offers for HTTPS (the kTLS
//! upper-layer protocol), and whether corestream's `--incoming-cpu` fits the NICs. Advice never raises the status: it is a tuning opportunity with its
//! cost, not a fault. Suggested values come from the profile's opt-in catalogue.

use super::*;
use crate::finding::{ev, ev_text, Remedy, Severity};
use crate::profile::opt_in;
use crate::thresholds::Rule;

fn advice(
    rule: Rule,
    summary: String,
    evidence: Vec<crate::finding::Evidence>,
    cause: String,
    remedy: Vec<Remedy>,
) -> Finding {
    Finding {
        rule,
        severity: Severity::Info,
        subject: "system".into(),
        summary,
        evidence,
        cause,
        remedy,
    }
}

fn suggest(key: &str) -> Vec<Remedy> {
    opt_in(key)
        .map(|o| {
            vec![Remedy::sysctl(
                o.key,
                format!("{}   (gain: {}; cost: {})", o.value, o.gain, o.cost),
            )]
        })
        .unwrap_or_default()
}

pub(super) fn qdisc_for_bbr(b: &Sample, f: &mut Vec<Finding>) {
    let (Some(cc), Some(q)) = (
        b.sysctls.get("net.ipv4.tcp_congestion_control"),
        b.sysctls.get("net.core.default_qdisc"),
    ) else {
        return;
    };
    if cc != "bbr" || q == "fq" {
        return;
    }
    let mut remedy = suggest("net.core.default_qdisc");
    for n in b.nics.nics.iter().filter(|n| n.physical) {
        remedy.push(Remedy::command(format!(
            "tc qdisc replace dev {} root fq   (default_qdisc applies to qdiscs created later)",
            n.name
        )));
    }
    f.push(advice(
        Rule::QdiscForBbr,
        format!("tcp_congestion_control is bbr but default_qdisc is {q}"),
        vec![
            ev_text("net.ipv4.tcp_congestion_control", cc, sysctl_src("net.ipv4.tcp_congestion_control")),
            ev_text("net.core.default_qdisc", q, sysctl_src("net.core.default_qdisc")),
        ],
        "Without the fq qdisc, bbr paces inside TCP with a timer per socket: it works (Linux 4.13+) but costs more CPU than fq's pacing.".into(),
        remedy,
    ));
}

pub(super) fn ktls(b: &Sample, f: &mut Vec<Finding>) {
    let Some(ulp) = b.sysctls.get("net.ipv4.tcp_available_ulp") else {
        return;
    };
    if ulp.split_whitespace().any(|u| u == "tls") {
        return;
    }
    f.push(advice(
        Rule::KtlsUnavailable,
        format!("the kernel offers no tls upper-layer protocol (available: {})", if ulp.is_empty() { "none" } else { ulp }),
        vec![ev_text("net.ipv4.tcp_available_ulp", ulp, sysctl_src("net.ipv4.tcp_available_ulp"))],
        "Without kTLS, HTTPS is encrypted in user space: each byte of a segment is read into the server and copied out again, so sendfile's zero copy is lost and TLS costs CPU per byte. With kTLS (Linux 4.13+ AES-GCM) the kernel encrypts during sendfile.".into(),
        vec![Remedy::command(
            "modprobe tls && echo tls > /etc/modules-load.d/tls.conf   (if the kernel was built with CONFIG_TLS; measure: kTLS can be slower on small responses)".into(),
        )],
    ));
}

pub(super) fn notsent_lowat(b: &Sample, f: &mut Vec<Finding>) {
    const KEY: &str = "net.ipv4.tcp_notsent_lowat";
    let (Some(cur), Some(o)) = (b.sysctls.int(KEY), opt_in(KEY)) else {
        return;
    };
    let Ok(want) = o.value.parse::<i64>() else {
        return;
    };
    if cur <= want {
        return;
    }
    f.push(advice(
        Rule::NotsentLowat,
        format!("{KEY} is {cur}: unsent data per socket is bounded only by its send buffer"),
        vec![ev(KEY, cur as f64, "bytes", sysctl_src(KEY))],
        "Every slow viewer can hold a full send buffer of data the kernel has not sent yet; with many viewers that is memory doing nothing.".into(),
        suggest(KEY),
    ));
}

/// `corestream --incoming-cpu` gives worker i the connections whose packets arrive on CPU i.
/// It pays when every CPU receives its own share of flows; when some CPUs receive nothing
/// their workers would get no connection, so it is advised only when each online CPU does
/// receive work of every NIC that takes interrupts.
pub(super) fn incoming_cpu(b: &Sample, f: &mut Vec<Finding>) {
    if !b.netns.is_initial() {
        return;
    }
    let Some(online) = online_cpus(b) else { return };
    let nics: Vec<_> = b.nics.nics.iter().filter(|n| n.physical).collect();
    if online.len() < 2 || nics.is_empty() {
        return;
    }
    let mut evidence = Vec::new();
    for n in &nics {
        let (cpus, how) = receiving_cpus(n);
        if !online.is_subset(&cpus) {
            return;
        }
        let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
        evidence.push(ev_text(
            &format!("{} receives on", n.name),
            &format!("cpus {} ({})", list.join(","), how.join(", ")),
            format!(
                "{} and {}",
                src("proc/irq/N/effective_affinity_list"),
                src(&format!("sys/class/net/{}/queues/rx-N/rps_cpus", n.name))
            ),
        ));
    }
    let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
    f.push(advice(
        Rule::IncomingCpu,
        format!(
            "every one of the {} online CPUs receives flows of {}: corestream --incoming-cpu can serve each connection on the CPU its packets arrive on",
            online.len(),
            names.join(", ")
        ),
        evidence,
        "By default SO_REUSEPORT hashes each connection to a worker, so the CPU that receives a connection's packets and the worker that answers it differ: every request wakes a thread on another CPU. With --incoming-cpu worker i takes the connections whose SYN arrives on CPU i (Linux 6.1+); measured over loopback on 2 CPUs: 1.6x the playlist requests at 100 connections and a tenth of the p99. Start one worker per CPU (the default).".into(),
        vec![Remedy::command(
            "corestream --incoming-cpu ...   (or CORESTREAM_INCOMING_CPU=true in the unit's environment; keep it off if a NIC's queues or RPS later stop covering every CPU)".into(),
        )],
    ));
}
