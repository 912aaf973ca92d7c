use super::*;
use crate::finding::{ev, Evidence, Remedy};
use crate::probe::interrupts::QueueKind;
use crate::rates::CpuRates;
use crate::rps::SOCK_FLOW_ENTRIES;
use crate::steps::Key;
use crate::thresholds::Rule;

pub(super) fn softnet(r: &Rates, b: &Sample, f: &mut Vec<Finding>) {
    let per_cpu = |get: fn(&CpuRates) -> Option<f64>| -> Vec<(u32, f64)> {
        r.cpus
            .iter()
            .filter_map(|c| get(c).map(|v| (c.cpu, v * 60.0)))
            .collect()
    };
    let dropped = per_cpu(|c| c.softnet_dropped_per_s);
    let total: f64 = dropped.iter().map(|x| x.1).sum();
    if let Some(sev) = Rule::SoftnetDropped
        .grade(total)
        .filter(|_| !dropped.is_empty())
    {
        let cur = b.sysctls.int("net.core.netdev_max_backlog");
        let mut evidence: Vec<Evidence> = dropped
            .iter()
            .filter(|x| x.1 > 0.0)
            .map(|(cpu, v)| {
                ev(
                    format!("cpu{cpu} dropped"),
                    *v,
                    "per minute",
                    format!("{} column 2", src(paths::SOFTNET_STAT)),
                )
            })
            .collect();
        if let Some(c) = cur {
            evidence.push(ev(
                "net.core.netdev_max_backlog",
                c as f64,
                "packets",
                sysctl_src("net.core.netdev_max_backlog"),
            ));
        }
        f.push(Finding {
            rule: Rule::SoftnetDropped,
            severity: sev,
            subject: "system".into(),
            summary: format!("{total:.1} packets/min dropped at the per-CPU input backlog"),
            evidence,
            cause: "Packets arrived faster than NET_RX processed them and the per-CPU backlog (netdev_max_backlog) overflowed.".into(),
            remedy: vec![Remedy::sysctl(Key::NetdevMaxBacklog.sysctl(), Key::NetdevMaxBacklog.next(cur))],
        });
    }
    let squeezed = per_cpu(|c| c.softnet_squeezed_per_s);
    let total: f64 = squeezed.iter().map(|x| x.1).sum();
    if let Some(sev) = Rule::SoftnetSqueezed
        .grade(total)
        .filter(|_| !squeezed.is_empty())
    {
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
                    format!("{} column 3", src(paths::SOFTNET_STAT)),
                )
            })
            .collect();
        if let Some(v) = budget {
            evidence.push(ev(
                "net.core.netdev_budget",
                v as f64,
                "packets",
                sysctl_src("net.core.netdev_budget"),
            ));
        }
        if let Some(v) = usecs {
            evidence.push(ev(
                "net.core.netdev_budget_usecs",
                v as f64,
                "us",
                sysctl_src("net.core.netdev_budget_usecs"),
            ));
        }
        let mut remedy = vec![Remedy::sysctl(
            Key::NetdevBudget.sysctl(),
            Key::NetdevBudget.next(budget),
        )];
        if let Some(u) = usecs {
            remedy.push(Remedy::sysctl(
                Key::NetdevBudgetUsecs.sysctl(),
                Key::NetdevBudgetUsecs.next(Some(u)),
            ));
        }
        f.push(Finding {
            rule: Rule::SoftnetSqueezed,
            severity: sev,
            subject: "system".into(),
            summary: format!("NET_RX ran out of budget {total:.1} times/min with packets left"),
            evidence,
            cause: "One NET_RX run hit netdev_budget packets or netdev_budget_usecs before the queues were empty, so receive work was deferred.".into(),
            remedy,
        });
    }
}

pub(super) fn net_rx_imbalance(r: &Rates, b: &Sample, f: &mut Vec<Finding>) {
    let rx: Vec<(u32, f64, Option<f64>)> = r
        .cpus
        .iter()
        .filter_map(|c| c.net_rx_per_s.map(|v| (c.cpu, v, c.busy_pct)))
        .collect();
    if rx.len() < 2 {
        return;
    }
    let total: f64 = rx.iter().map(|x| x.1).sum();
    if Rule::NetRxImbalanceMinRate.grade(total).is_none() {
        return;
    }
    let Some(top) = rx.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1)) else {
        return;
    };
    let share = 100.0 * top.1 / total;
    let Some(sev) = Rule::NetRxImbalance.grade(share) else {
        return;
    };
    let mut evidence = vec![ev(
        "NET_RX, all CPUs",
        total,
        "per second",
        src(paths::SOFTIRQS),
    )];
    for (cpu, v, busy) in &rx {
        evidence.push(ev(
            format!("cpu{cpu} NET_RX"),
            *v,
            "per second",
            src(paths::SOFTIRQS),
        ));
        if let Some(bp) = busy {
            evidence.push(ev(format!("cpu{cpu} busy"), *bp, "%", src(paths::STAT)));
        }
    }
    // Which NIC queue interrupts that CPU: the receive vector with the most interrupts there.
    let culprit = r
        .nic_irqs
        .iter()
        .filter(|i| i.kind != QueueKind::Tx && i.on(top.0) > 0.0)
        .max_by(|x, y| x.on(top.0).total_cmp(&y.on(top.0)));
    let from = match culprit {
        Some(i) => {
            evidence.push(ev(
                format!("{} rx-{} (IRQ {}) on cpu{}", i.nic, i.queue, i.irq, top.0),
                i.on(top.0),
                "interrupts per second",
                src(paths::INTERRUPTS),
            ));
            format!(
                "; its interrupts come from {} rx-{} (IRQ {}, {})",
                i.nic, i.queue, i.irq, i.name
            )
        }
        None => String::new(),
    };
    let remedy = rx_remedies(r, b);
    f.push(Finding {
        rule: Rule::NetRxImbalance,
        severity: sev,
        subject: format!("cpu{}", top.0),
        summary: format!(
            "cpu{} handles {share:.0}% of NET_RX ({:.0}/s of {total:.0}/s){from}",
            top.0, top.1
        ),
        evidence,
        cause: "Receive processing runs on the CPU that takes the NIC interrupt (for loopback, the sending CPU), so that CPU saturates first while the others do little of it.".into(),
        remedy,
    });
}

pub(super) fn softirq_cpu(r: &Rates, f: &mut Vec<Finding>) {
    for c in &r.cpus {
        let Some(si) = c.si_pct else { continue };
        let Some(sev) = Rule::SoftirqCpu.grade(si) else {
            continue;
        };
        let mut evidence = vec![ev(
            format!("cpu{} si", c.cpu),
            si,
            "%",
            format!("{} softirq column", src(paths::STAT)),
        )];
        if let Some(v) = c.net_rx_per_s {
            evidence.push(ev(
                format!("cpu{} NET_RX", c.cpu),
                v,
                "per second",
                src(paths::SOFTIRQS),
            ));
        }
        if let Some(v) = c.net_tx_per_s {
            evidence.push(ev(
                format!("cpu{} NET_TX", c.cpu),
                v,
                "per second",
                src(paths::SOFTIRQS),
            ));
        }
        f.push(Finding {
            rule: Rule::SoftirqCpu,
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

/// How to spread receive work, fitted to where this runs and to the hardware.
fn rx_remedies(r: &Rates, b: &Sample) -> Vec<Remedy> {
    if let Some(why) = b.netns.refusal(
        "changing NIC queues (RPS/RFS, IRQ affinity)",
        "corestream-tune diagnose",
    ) {
        let lead = if matches!(b.netns, crate::probe::netns::Netns::Child(_)) {
            "nothing to change from here: traffic in this namespace arrives over loopback or a veth, whose \
             receive work runs on the sending CPU. "
        } else {
            ""
        };
        return vec![Remedy::command(format!("{lead}{why}"))];
    }
    // Several hardware queues: the NIC already splits flows (RSS); spread their IRQs over the
    // CPUs. One queue: only software can spread it (RPS/RFS).
    let online: Vec<u32> = r.cpus.iter().map(|c| c.cpu).collect();
    let multi: Vec<_> = b
        .nics
        .nics
        .iter()
        .filter(|n| n.physical && n.rx_vectors() > 1 && !n.irqs.is_empty())
        .collect();
    if !multi.is_empty() {
        let mut remedy = Vec::new();
        if b.nics.irqbalance.is_none() {
            remedy.push(Remedy::command(
                "systemctl enable --now irqbalance   (spreads queue IRQs over CPUs and keeps them spread; or pin them by hand as below)".into(),
            ));
        } else {
            remedy.push(Remedy::command(format!(
                "irqbalance runs (pid {}) yet the queue IRQs land on one CPU: check IRQBALANCE_BANNED_CPULIST and its --policyscript, or stop it and pin by hand as below",
                b.nics.irqbalance.unwrap_or(0)
            )));
        }
        for n in multi {
            let rxq: Vec<_> = n.irqs.iter().filter(|i| i.kind != QueueKind::Tx).collect();
            for (k, i) in rxq.iter().enumerate() {
                let cpu = online.get(k % online.len().max(1)).copied().unwrap_or(0);
                remedy.push(Remedy::command(format!(
                    "echo {cpu} > /proc/irq/{}/smp_affinity_list   ({} {} queue {}: now {}; one queue per CPU)",
                    i.irq,
                    n.name,
                    i.name,
                    i.queue,
                    i.effective.as_deref().or(i.affinity.as_deref()).unwrap_or("?")
                )));
            }
        }
        return remedy;
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
    remedy.push(Remedy::sysctl(
        "net.core.rps_sock_flow_entries",
        SOCK_FLOW_ENTRIES,
    ));
    let flow_cnt = SOCK_FLOW_ENTRIES / b.sysctls.rps.len().max(1) as u64;
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
    remedy
}

/// corestream runs with `--incoming-cpu` while some online CPU receives no flow of a NIC:
/// worker i takes the connections whose SYN arrives on CPU i, so the workers of those CPUs
/// get none and the others carry their share.
pub(super) fn incoming_cpu_uncovered(r: &Rates, b: &Sample, f: &mut Vec<Finding>) {
    let pids: Vec<u32> = b
        .processes
        .iter()
        .filter(|p| p.incoming_cpu)
        .map(|p| p.pid)
        .collect();
    if pids.is_empty() || !b.netns.is_initial() {
        return;
    }
    let Some(online) = online_cpus(b) else { return };
    for n in b.nics.nics.iter().filter(|n| n.physical) {
        let (cpus, how) = receiving_cpus(n);
        let idle: Vec<String> = online.difference(&cpus).map(u32::to_string).collect();
        let Some(severity) = Rule::IncomingCpuUncovered.grade(idle.len() as f64) else {
            continue;
        };
        let on: Vec<String> = cpus.iter().map(u32::to_string).collect();
        let shown: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut evidence = vec![
            ev(
                format!("CPUs receiving no flow of {}", n.name),
                idle.len() as f64,
                "CPUs",
                src("proc/irq/N/effective_affinity_list"),
            ),
            crate::finding::ev_text(
                &format!("{} receives on", n.name),
                &format!(
                    "cpus {} ({})",
                    on.join(","),
                    if how.is_empty() {
                        "nothing found".to_string()
                    } else {
                        how.join(", ")
                    }
                ),
                src(&format!("sys/class/net/{}/queues/rx-N/rps_cpus", n.name)),
            ),
        ];
        for p in &pids {
            evidence.push(crate::finding::ev_text(
                &format!("pid {p}"),
                "--incoming-cpu",
                format!("{} or its environ", src(&format!("proc/{p}/cmdline"))),
            ));
        }
        let mut remedy = rx_remedies(r, b);
        remedy.push(Remedy::command(
            "or restart corestream without --incoming-cpu (unset CORESTREAM_INCOMING_CPU): connections are then spread by hash".into(),
        ));
        f.push(Finding {
            rule: Rule::IncomingCpuUncovered,
            severity,
            subject: format!("corestream pid {}", shown.join(",")),
            summary: format!(
                "corestream runs with --incoming-cpu, but CPUs {} receive no flow of {}: their workers get no connection",
                idle.join(","),
                n.name
            ),
            evidence,
            cause: "With --incoming-cpu, worker i takes the connections whose SYN the kernel handles on CPU i. A CPU that receives no packets of a NIC (its queue IRQs are delivered elsewhere and RPS does not target it) hands its worker no connection, and the CPUs that do receive carry all of them.".into(),
            remedy,
        });
    }
}
