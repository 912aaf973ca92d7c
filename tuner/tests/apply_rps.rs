//! `--rps` on a fake sysfs: masks for single-queue NICs, RSS NICs and virtual devices left
//! alone, RFS table sizes, and rollback.

mod fakeroot;
use fakeroot::FakeRoot;

fn rps_tree() -> FakeRoot {
    let r = FakeRoot::new();
    r.write("sys/devices/system/cpu/online", "0-3\n");
    // eth0: one RX queue for four CPUs (the case for RPS), an admin mask on nothing yet.
    r.write("sys/class/net/eth0/device/vendor", "0x1af4\n");
    for q in ["rx-0", "rx-1"] {
        r.write(&format!("sys/class/net/eth0/queues/{q}/rps_cpus"), "0\n");
        r.write(
            &format!("sys/class/net/eth0/queues/{q}/rps_flow_cnt"),
            "0\n",
        );
    }
    r.write("sys/class/net/eth0/queues/tx-0/xps_cpus", "0\n");
    // eth1: as many RX queues as CPUs: RSS already spreads.
    r.write("sys/class/net/eth1/device/vendor", "0x8086\n");
    for q in 0..4 {
        r.write(&format!("sys/class/net/eth1/queues/rx-{q}/rps_cpus"), "0\n");
        r.write(
            &format!("sys/class/net/eth1/queues/rx-{q}/rps_flow_cnt"),
            "0\n",
        );
    }
    // lo: virtual, no device link.
    r.write("sys/class/net/lo/queues/rx-0/rps_cpus", "0\n");
    r
}

#[test]
fn rps_plan_apply_check_rollback() {
    let r = rps_tree();
    let o = r.run(&["plan", "--rps"]);
    assert_eq!(o.code, 0, "{o:?}");
    let line = |k: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k}: {o:?}"))
            .to_string()
    };
    assert!(
        line("eth0/rx-0 rps_cpus").contains("device")
            && line("eth0/rx-0 rps_cpus").ends_with("raise")
    );
    assert!(
        line("eth0/rx-1 rps_flow_cnt").contains("16384"),
        "32768 / 2 queues"
    );
    assert!(line("net.core.rps_sock_flow_entries").contains("32768"));
    assert!(
        o.stdout.contains(
            "rps: eth1: 4 RX queues for 4 CPUs: hardware RSS already spreads receive work"
        ),
        "{o:?}"
    );
    assert!(
        !o.stdout.contains("eth1/rx") && !o.stdout.contains("lo/rx"),
        "{o:?}"
    );
    // Without --rps nothing about RPS.
    assert!(!r.run(&["plan"]).stdout.contains("rps_cpus"));

    // An admin already steers rx-1 to CPU 0 and 4 (4 is offline now): the union is kept.
    r.write("sys/class/net/eth0/queues/rx-1/rps_cpus", "00000011\n");
    let o = r.run(&["apply", "--rps", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    let q = |p: &str| {
        r.read(&format!("sys/class/net/eth0/queues/{p}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(q("rx-0/rps_cpus"), "f");
    assert_eq!(q("rx-1/rps_cpus"), "1f");
    assert_eq!(q("rx-0/rps_flow_cnt"), "16384");
    assert_eq!(r.get("net/core/rps_sock_flow_entries"), "32768");
    assert_eq!(
        r.read("sys/class/net/eth1/queues/rx-0/rps_cpus").unwrap(),
        "0\n"
    );
    assert_eq!(
        r.read("sys/class/net/lo/queues/rx-0/rps_cpus").unwrap(),
        "0\n"
    );
    assert_eq!(r.run(&["check", "--rps"]).code, 0);

    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(q("rx-0/rps_cpus"), "0");
    assert_eq!(q("rx-1/rps_cpus"), "00000011");
    assert_eq!(q("rx-1/rps_flow_cnt"), "0");
    assert_eq!(r.get("net/core/rps_sock_flow_entries"), "0");
    let o = r.run(&["check", "--rps"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("eth0/rx-0 rps_cpus [device]: running 0, profile wants at least CPUs f"),
        "{o:?}"
    );
}

#[test]
fn rps_needs_the_cpu_list() {
    let r = FakeRoot::new();
    let o = r.run(&["plan", "--rps"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr.contains("sys/devices/system/cpu/online")
            && o.stderr.contains("needed to build RPS masks"),
        "{o:?}"
    );
    r.write("sys/devices/system/cpu/online", "0-1\n");
    r.write("sys/class/net/lo/queues/rx-0/rps_cpus", "0\n");
    let o = r.run(&["plan", "--rps"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("rps: no physical NIC found"), "{o:?}");
}
