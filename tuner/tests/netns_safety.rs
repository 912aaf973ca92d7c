//! Issue 17, defect 1: outside the host's (initial) network namespace `/sys/class/net` and
//! `/etc` are still the host's, so device-scoped (RPS) and persistent (`--persist`) writes are
//! refused with what to run on the host; and when the namespace cannot be told, too.

mod fakeroot;
use fakeroot::{FakeRoot, BIN};
use std::process::Command;

/// A tree with one hardware NIC of one RX queue for two CPUs: `--rps` wants to write it.
fn nic_tree() -> FakeRoot {
    let r = FakeRoot::new();
    r.write("sys/devices/system/cpu/online", "0-1\n");
    r.write("sys/class/net/eth0/device/vendor", "0x1af4\n");
    r.write("sys/class/net/eth0/queues/rx-0/rps_cpus", "0\n");
    r.write("sys/class/net/eth0/queues/rx-0/rps_flow_cnt", "0\n");
    r
}

const ARGS: [&str; 5] = ["apply", "--rps", "--persist", "--dry-run", "--yes"];

fn assert_refused(o: &fakeroot::Out, why: &str) {
    assert!(
        !o.stdout.contains("would write eth0/rx-0"),
        "a host NIC was planned: {o:?}"
    );
    assert!(
        !o.stdout.contains("would create") && !o.stdout.contains("would replace"),
        "a host file was planned: {o:?}"
    );
    assert!(o.stdout.contains(why), "{o:?}");
    assert!(
        o.stdout
            .contains("Run `corestream-tune apply --rps` on the host"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("Run `corestream-tune apply --persist` on the host"),
        "{o:?}"
    );
    assert_eq!(o.code, 1, "refusals are not success: {o:?}");
}

#[test]
fn host_namespace_plans_device_and_persistent_writes() {
    let r = nic_tree();
    let o = r.run(&ARGS);
    assert!(
        o.stdout.contains("would write eth0/rx-0 rps_cpus = 3"),
        "{o:?}"
    );
    assert!(o.stdout.contains("would create"), "{o:?}");
}

#[test]
fn child_namespace_by_inode_refuses_device_and_persistent_writes() {
    // `ip netns exec` from the host: initial PID namespace, another network namespace.
    let r = nic_tree();
    r.netns_link("proc/self/ns/net", "net:[4026532174]");
    r.netns_link("proc/self/ns/pid", "pid:[4026531836]");
    r.netns_link("proc/1/ns/net", "net:[4026531833]");
    let o = r.run(&ARGS);
    assert_refused(&o, "runs in a child network namespace");
}

#[test]
fn unknown_namespace_is_refused_and_says_why() {
    let r = nic_tree();
    std::fs::remove_file(r.path("proc/self/ns/net")).unwrap();
    let o = r.run(&ARGS);
    assert_refused(&o, "cannot be told");
}

#[test]
fn unshare_n_plans_nothing_for_the_hosts_nics_or_etc() {
    // A real child namespace: the host's NICs are visible in /sys/class/net, nothing may be
    // planned for them, and nothing beneath the host's /etc.
    let o = fakeroot::run(Command::new("unshare").args([
        "-n",
        BIN,
        "--root",
        "/",
        "apply",
        "--rps",
        "--persist",
        "--dry-run",
    ]));
    assert!(
        !o.stdout.contains("rps_cpus =") && !o.stdout.contains("rps_flow_cnt ="),
        "{o:?}"
    );
    assert!(!o.stdout.contains("would create /etc"), "{o:?}");
    assert!(!o.stdout.contains("would replace /etc"), "{o:?}");
    assert!(
        o.stdout.contains("child network namespace"),
        "the refusal says where it runs: {o:?}"
    );
}
