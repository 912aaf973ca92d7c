//! Issue 17, "see the whole delivery path": the new probes on files captured from this
//! machine (tests/fixtures/linux-6.18) and on hand-made 4-queue NIC trees with and without
//! irqbalance (tests/fixtures/nic-4q*), and the rules that read them.

mod fakeroot;
use corestream_tune::probe::interrupts::{self, QueueKind};
use corestream_tune::probe::{conntrack, netdev, nic, sockets, Target};
use corestream_tune::thresholds::Rule;
use corestream_tune::{profile, rates, rules};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).expect("fixture")
}

#[test]
fn interrupts_real_capture() {
    let i = interrupts::parse(&text("linux-6.18/proc/interrupts")).expect("parse");
    assert_eq!(i.cpus, vec![0, 1]);
    let rx = i.get(38).expect("IRQ 38");
    assert_eq!(rx.name, "virtio2-input.0");
    assert_eq!(rx.counts, vec![0, 8629]);
    assert!(rx.desc.starts_with("PCI-MSIX-0000:00:03.0"), "{}", rx.desc);
    let err = i.lines.iter().find(|l| l.irq == "ERR").expect("ERR row");
    assert_eq!(err.counts, vec![0, 0], "one count, padded");
    assert!(interrupts::parse("").is_err());
    assert!(interrupts::parse("CPU0 X1\n").is_err());
    assert!(interrupts::parse("CPU0\n").is_err());
}

#[test]
fn queue_names_drivers_use() {
    for (name, want) in [
        ("virtio2-input.0", Some((QueueKind::Rx, 0))),
        ("virtio2-output.3", Some((QueueKind::Tx, 3))),
        ("eth0-TxRx-7", Some((QueueKind::Combined, 7))),
        ("ens5-Tx-Rx-1", Some((QueueKind::Combined, 1))),
        ("i40e-eth0-TxRx-0", Some((QueueKind::Combined, 0))),
        (
            "mlx5_comp4@pci:0000:00:05.0",
            Some((QueueKind::Combined, 4)),
        ),
        ("eth0-rx-2", Some((QueueKind::Rx, 2))),
        ("virtio2-config", None),
        ("eth0", None),
    ] {
        assert_eq!(interrupts::queue_of(name), want, "{name}");
    }
}

#[test]
fn net_dev_real_capture() {
    let d = netdev::parse(&text("linux-6.18/proc/net/dev")).expect("parse");
    let names: Vec<&str> = d.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    let eth0 = &d[3];
    assert_eq!((eth0.rx_packets, eth0.tx_packets), (13039, 7652));
    assert!(netdev::parse("Inter-| Receive\n face |bytes\n").is_err());
    assert!(netdev::parse("eth0: 1 2 3\n").is_err());
}

#[test]
fn conntrack_stat_real_capture_by_column_name() {
    let s = conntrack::parse_stat(&text("linux-6.18/proc/net/stat/nf_conntrack")).expect("parse");
    assert_eq!(s.get("drop"), Some(0));
    assert_eq!(s.get("insert_failed"), Some(0));
    assert_eq!(s.get("search_restart"), Some(0));
    let s = conntrack::parse_stat(
        "entries drop early_drop\n0000000a 00000001 00000000\n00000005 00000002 00000003\n",
    )
    .expect("parse");
    assert_eq!(
        (s.get("entries"), s.get("drop"), s.get("early_drop")),
        (Some(15), Some(3), Some(3))
    );
    assert!(conntrack::parse_stat("entries drop\n1\n").is_err());
    assert!(conntrack::parse_stat("00000001 00000002\n").is_err());
}

#[test]
fn nic_queues_irqs_and_affinity_from_the_real_capture() {
    let root = fixture("linux-6.18");
    let ints = interrupts::parse(&text("linux-6.18/proc/interrupts")).expect("parse");
    let n = nic::read(&root, Some(&ints));
    let eth0 = n.nics.iter().find(|n| n.name == "eth0").expect("eth0");
    assert!(eth0.physical);
    assert_eq!(eth0.device.as_deref(), Some("virtio2"));
    assert_eq!(eth0.pci.as_deref(), Some("0000:00:03.0"));
    let irqs: Vec<(u32, QueueKind, u32)> =
        eth0.irqs.iter().map(|i| (i.irq, i.kind, i.queue)).collect();
    assert_eq!(irqs, vec![(38, QueueKind::Rx, 0), (39, QueueKind::Tx, 0)]);
    assert_eq!(eth0.irqs[0].affinity.as_deref(), Some("0-1"));
    assert_eq!(eth0.irqs[0].effective.as_deref(), Some("1"));
    assert_eq!(eth0.threaded.as_deref(), Some("0"));
    assert_eq!(eth0.rx_vectors(), 1);
    let ifb = n.nics.iter().find(|n| n.name == "ifb0").expect("ifb0");
    assert!(!ifb.physical && ifb.irqs.is_empty());
    assert_eq!(n.irqbalance, None);
}

#[test]
fn four_queue_nic_with_and_without_irqbalance() {
    for (tree, balanced) in [("nic-4q", false), ("nic-4q-irqbalance", true)] {
        let root = fixture(tree);
        let ints = interrupts::parse(&text(&format!("{tree}/proc/interrupts"))).expect("parse");
        let n = nic::read(&root, Some(&ints));
        let eth0 = n.nics.iter().find(|n| n.name == "eth0").expect("eth0");
        assert_eq!(eth0.rx_vectors(), 4, "{tree}");
        assert_eq!((eth0.rx.len(), eth0.tx.len()), (4, 4));
        assert_eq!(eth0.tx[2].xps_cpus.as_deref(), Some("4"));
        let eff: Vec<&str> = eth0
            .irqs
            .iter()
            .filter_map(|i| i.effective.as_deref())
            .collect();
        if balanced {
            assert_eq!(n.irqbalance, Some(777));
            assert_eq!(eff, ["0", "1", "2", "3"]);
        } else {
            assert_eq!(n.irqbalance, None);
            assert_eq!(eff, ["0", "0", "0", "0"]);
        }
        // The link-state vector `eth0` serves no queue.
        assert!(eth0.irqs.iter().all(|i| i.irq != 54));
    }
}

fn copy(tree: &str) -> PathBuf {
    fakeroot::scratch_copy(tree)
}

/// Add `delta` to column `col` of the `label:` row of a per-CPU table (softirqs, interrupts).
fn bump(file: &Path, label: &str, col: usize, delta: u64) {
    let t = std::fs::read_to_string(file).expect("read");
    let out: Vec<String> = t
        .lines()
        .map(|l| match l.split_once(':') {
            Some((n, rest)) if n.trim() == label => {
                let mut w: Vec<String> = rest.split_whitespace().map(String::from).collect();
                let v: u64 = w[col].parse().expect("count");
                w[col] = (v + delta).to_string();
                format!("{n}: {}", w.join(" "))
            }
            _ => l.to_string(),
        })
        .collect();
    std::fs::write(file, out.join("\n") + "\n").expect("write");
}

#[test]
fn one_cpu_doing_all_net_rx_names_the_nic_queue_and_spreads_irqs_on_a_multiqueue_nic() {
    let (a, b) = (copy("nic-4q"), copy("nic-4q"));
    // 60 s: cpu0 takes 60000 NET_RX and all four queues' interrupts; the others a trickle.
    bump(&b.join("proc/softirqs"), "NET_RX", 0, 60_000);
    for cpu in 1..4 {
        bump(&b.join("proc/softirqs"), "NET_RX", cpu, 600);
    }
    for (q, n) in [(50, 30_000), (51, 20_000), (52, 6_000), (53, 4_000)] {
        bump(&b.join("proc/interrupts"), &q.to_string(), 0, n);
    }
    let t = Target::Pids(vec![]);
    let (sa, sb) = (
        corestream_tune::probe::take(&a, &t, &mut Default::default()),
        corestream_tune::probe::take(&b, &t, &mut Default::default()),
    );
    let r = rates::between(&sa, &sb, 60.0);
    let f = rules::evaluate(&sa, &sb, &r, &profile::edge());
    let hit = f
        .iter()
        .find(|x| x.rule == Rule::NetRxImbalance)
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        hit.summary.contains("eth0 rx-0 (IRQ 50, eth0-TxRx-0)"),
        "{}",
        hit.summary
    );
    // Printed for docs/sre-diagnose.md (cargo test -- --nocapture).
    eprintln!(
        "[{:?}] {}: {}\n  {}",
        hit.severity, hit.rule, hit.subject, hit.summary
    );
    for r in &hit.remedy {
        eprintln!("    {:<9} {}", r.kind.label(), r.text);
    }
    let texts: Vec<&str> = hit.remedy.iter().map(|r| r.text.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("systemctl enable --now irqbalance")),
        "{texts:#?}"
    );
    for (irq, cpu) in [(50, 0), (51, 1), (52, 2), (53, 3)] {
        let want = format!("echo {cpu} > /proc/irq/{irq}/smp_affinity_list");
        assert!(
            texts.iter().any(|t| t.starts_with(&want)),
            "{want}: {texts:#?}"
        );
    }
    assert!(
        texts.iter().all(|t| !t.contains("rps_cpus")),
        "RPS is for one-queue NICs: {texts:#?}"
    );
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn connection_capacity_rules() {
    let (a, b) = (copy("linux-6.18"), copy("linux-6.18"));
    let t = Target::Pids(vec![]);
    let eval = |a: &Path, b: &Path| {
        let (sa, sb) = (
            corestream_tune::probe::take(a, &t, &mut Default::default()),
            corestream_tune::probe::take(b, &t, &mut Default::default()),
        );
        rules::evaluate(&sa, &sb, &rates::between(&sa, &sb, 60.0), &profile::edge())
    };
    let has = |f: &[corestream_tune::finding::Finding], r: Rule| f.iter().any(|x| x.rule == r);
    assert!(eval(&a, &b).is_empty());
    // Conntrack 90% full: warning; a drop: critical.
    std::fs::write(
        b.join("proc/sys/net/netfilter/nf_conntrack_count"),
        "236000\n",
    )
    .expect("w");
    let f = eval(&a, &b);
    assert!(has(&f, Rule::ConntrackFull), "{f:#?}");
    let st = text("linux-6.18/proc/net/stat/nf_conntrack");
    let mut lines: Vec<String> = st.lines().map(String::from).collect();
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    let drop_col = cols.iter().position(|c| *c == "drop").expect("drop column");
    let mut v: Vec<String> = lines[1].split_whitespace().map(String::from).collect();
    v[drop_col] = "00000003".into();
    lines[1] = v.join(" ");
    std::fs::write(
        b.join("proc/net/stat/nf_conntrack"),
        lines.join("\n") + "\n",
    )
    .expect("w");
    let f = eval(&a, &b);
    let d = f
        .iter()
        .find(|x| x.rule == Rule::ConntrackDrops)
        .expect("drops");
    assert_eq!(d.severity, corestream_tune::finding::Severity::Critical);
    // TIME_WAIT past 80% of its buckets; orphans past 95%.
    let (a2, b2) = (copy("linux-6.18"), copy("linux-6.18"));
    let ss = std::fs::read_to_string(b2.join("proc/net/sockstat")).expect("sockstat");
    let tw = ss
        .split("tw ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .expect("tw")
        .to_string();
    let orphan = ss
        .split("orphan ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .expect("orphan")
        .to_string();
    let ss = ss
        .replace(&format!("tw {tw}"), "tw 120000")
        .replace(&format!("orphan {orphan}"), "orphan 130000");
    std::fs::write(b2.join("proc/net/sockstat"), ss).expect("w");
    let f = eval(&a2, &b2);
    assert!(has(&f, Rule::TimeWait) && has(&f, Rule::Orphans), "{f:#?}");
    for d in [a, b, a2, b2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn ephemeral_ports_per_destination() {
    // Three sockets to 10.0.0.9:80 from ephemeral ports, one listener, one from a low port.
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:8000 0900000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:8001 0900000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:8002 0900000A:0050 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1\n\
   4: 0100007F:0016 0900000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1\n";
    let d = sockets::ports_per_destination(&[tcp], (32768, 60999)).expect("parse");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].remote.to_string(), "10.0.0.9:80");
    assert_eq!(d[0].ports, 3);
    // A range of 4 ports with 3 in use: 75% is a warning.
    let dir = copy("linux-6.18");
    std::fs::write(dir.join("proc/net/tcp"), tcp).expect("w");
    std::fs::write(
        dir.join("proc/sys/net/ipv4/ip_local_port_range"),
        "32768\t32771\n",
    )
    .expect("w");
    let t = Target::Pids(vec![]);
    let s = corestream_tune::probe::take(&dir, &t, &mut Default::default());
    let f = rules::evaluate(&s, &s, &rates::between(&s, &s, 60.0), &profile::edge());
    let hit = f
        .iter()
        .find(|x| x.rule == Rule::EphemeralPorts)
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        hit.summary
            .contains("3 of 4 ephemeral ports in use from 127.0.0.1 to 10.0.0.9:80"),
        "{}",
        hit.summary
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn delivery_advice_from_this_machines_capture() {
    // This box runs bbr on pfifo_fast, no tls ULP, unlimited notsent_lowat: advice, status OK.
    let root = fixture("linux-6.18");
    let s = corestream_tune::probe::take(&root, &Target::Pids(vec![]), &mut Default::default());
    let adv = rules::advise(&s);
    let names: Vec<Rule> = adv.iter().map(|f| f.rule).collect();
    assert_eq!(
        names,
        [Rule::QdiscForBbr, Rule::NotsentLowat, Rule::KtlsUnavailable]
    );
    assert!(adv
        .iter()
        .all(|f| f.severity == corestream_tune::finding::Severity::Info));
    assert!(adv[0]
        .remedy
        .iter()
        .any(|r| r.text.starts_with("net.core.default_qdisc = fq")));
    assert!(adv[0]
        .remedy
        .iter()
        .any(|r| r.text.starts_with("tc qdisc replace dev eth0 root fq")));
    assert!(adv[2].cause.contains("sendfile"));
}

#[test]
fn incoming_cpu_is_advised_only_where_every_cpu_receives() {
    let advised = |root: &Path| {
        let s = corestream_tune::probe::take(root, &Target::Pids(vec![]), &mut Default::default());
        rules::advise(&s)
            .into_iter()
            .find(|f| f.rule == Rule::IncomingCpu)
    };
    // Four queues, one IRQ per CPU (irqbalance): every CPU receives.
    let hit = advised(&fixture("nic-4q-irqbalance")).expect("advice with a queue per CPU");
    assert!(hit.summary.contains("4 online CPUs"), "{}", hit.summary);
    assert!(
        hit.evidence[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("cpus 0,1,2,3"),
        "{:?}",
        hit.evidence
    );
    assert!(hit.remedy[0].text.starts_with("corestream --incoming-cpu"));
    // The same four queues all delivered to CPU0: CPUs 1-3 would get no connection.
    assert!(advised(&fixture("nic-4q")).is_none());
    // This machine: one virtio receive queue, RPS off.
    assert!(advised(&fixture("linux-6.18")).is_none());
    // RPS over all four CPUs on the single-CPU-IRQ host makes every CPU receive again.
    let dir = copy("nic-4q");
    for q in 0..4 {
        std::fs::write(
            dir.join(format!("sys/class/net/eth0/queues/rx-{q}/rps_cpus")),
            "f\n",
        )
        .unwrap();
    }
    let hit = advised(&dir).expect("advice with RPS over every CPU");
    assert!(
        hit.evidence[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("RPS on 4 queue(s)"),
        "{:?}",
        hit.evidence
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn incoming_cpu_where_some_cpus_receive_nothing_is_a_warning() {
    // corestream pid 4242 (its /proc entry as captured on this machine) on the host whose four
    // queue IRQs all land on CPU0.
    let findings = |tree: &str, cmdline: &str, environ: &str| {
        let dir = copy(tree);
        fakeroot::copy_tree(&fixture("linux-6.18/proc/4242"), &dir.join("proc/4242"));
        std::fs::write(dir.join("proc/4242/cmdline"), cmdline.replace(' ', "\0")).unwrap();
        std::fs::write(dir.join("proc/4242/environ"), environ.replace(' ', "\0")).unwrap();
        let s =
            corestream_tune::probe::take(&dir, &Target::Pids(vec![4242]), &mut Default::default());
        let f = rules::evaluate(&s, &s, &rates::between(&s, &s, 60.0), &profile::edge());
        let _ = std::fs::remove_dir_all(dir);
        f.into_iter()
            .filter(|x| x.rule == Rule::IncomingCpuUncovered)
            .collect::<Vec<_>>()
    };
    let on = "corestream --root /srv --incoming-cpu ";
    let hit = findings("nic-4q", on, "HOME=/root ");
    assert_eq!(hit.len(), 1, "{hit:#?}");
    assert_eq!(hit[0].severity, corestream_tune::finding::Severity::Warning);
    assert!(
        hit[0]
            .summary
            .contains("CPUs 1,2,3 receive no flow of eth0"),
        "{}",
        hit[0].summary
    );
    assert!(hit[0]
        .remedy
        .iter()
        .any(|r| r.text.contains("without --incoming-cpu")));
    // Turned on from the environment (a systemd unit's Environment=) counts the same.
    let by_env = findings(
        "nic-4q",
        "corestream --root /srv ",
        "CORESTREAM_INCOMING_CPU=true ",
    );
    assert_eq!(by_env.len(), 1);
    // Off, or on where every CPU receives: nothing to say.
    assert!(findings(
        "nic-4q",
        "corestream --root /srv ",
        "CORESTREAM_INCOMING_CPU=false "
    )
    .is_empty());
    assert!(findings("nic-4q-irqbalance", on, "").is_empty());
}
