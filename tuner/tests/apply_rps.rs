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

#[test]
fn per_nic_napi_knobs_plan_apply_check_roll_back_and_stay_on_the_host() {
    // Issue 17: the opt-in latency knobs napi_defer_hard_irqs and gro_flush_timeout are per NIC
    // (`nic.ATTR` in a profile sets /sys/class/net/NIC/ATTR on every hardware NIC).
    let r = rps_tree();
    for dev in ["eth0", "eth1", "lo"] {
        r.write(&format!("sys/class/net/{dev}/napi_defer_hard_irqs"), "0\n");
        r.write(&format!("sys/class/net/{dev}/gro_flush_timeout"), "0\n");
    }
    let p =
        r.profile("base = none\nnic.napi_defer_hard_irqs = 2\nnic.gro_flush_timeout = 200000\n");
    let o = r.run(&["plan", "--profile", &p]);
    let line = |k: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k}: {o:?}"))
            .to_string()
    };
    assert!(
        line("eth0 napi_defer_hard_irqs").contains("device")
            && line("eth0 napi_defer_hard_irqs").ends_with("raise")
    );
    assert!(line("eth1 gro_flush_timeout").contains("200000"));
    assert!(
        !o.stdout.contains("lo napi_defer_hard_irqs"),
        "virtual NICs are left alone: {o:?}"
    );
    assert_eq!(r.run(&["apply", "--profile", &p, "--yes"]).code, 0);
    assert_eq!(
        r.read("sys/class/net/eth0/napi_defer_hard_irqs").as_deref(),
        Some("2\n")
    );
    assert_eq!(
        r.read("sys/class/net/eth1/gro_flush_timeout").as_deref(),
        Some("200000\n")
    );
    assert_eq!(
        r.read("sys/class/net/lo/gro_flush_timeout").as_deref(),
        Some("0\n")
    );
    assert_eq!(r.run(&["check", "--profile", &p]).code, 0);
    // Not a sysctl: never in the sysctl.d file.
    let o = r.run(&["profile", "--profile", &p]);
    assert!(!o.stdout.contains("nic."), "{o:?}");
    assert_eq!(r.run(&["rollback", "--yes"]).code, 0);
    assert_eq!(
        r.read("sys/class/net/eth0/napi_defer_hard_irqs").as_deref(),
        Some("0\n")
    );
    // From a child network namespace these are the host's NICs: refused.
    r.netns_link("proc/self/ns/net", "net:[4026532174]");
    r.netns_link("proc/self/ns/pid", "pid:[4026531836]");
    r.netns_link("proc/1/ns/net", "net:[4026531833]");
    let o = r.run(&["apply", "--profile", &p, "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("Run `corestream-tune apply` on the host"),
        "{o:?}"
    );
    assert_eq!(
        r.read("sys/class/net/eth0/napi_defer_hard_irqs").as_deref(),
        Some("0\n")
    );
}
