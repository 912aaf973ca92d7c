//! Every error path of plan/apply: missing key, global key in a child network namespace,
//! unknown key or malformed value in a profile file, garbage from the kernel, a read-only
//! /proc/sys (a real read-only bind mount) and permission denied (a real unprivileged user).

mod fakeroot;
use fakeroot::{FakeRoot, BIN};
use std::process::Command;

#[test]
fn missing_key_is_explained_and_the_rest_applies() {
    let r = FakeRoot::new();
    std::fs::remove_file(r.path("proc/sys/net/ipv4/tcp_migrate_req")).unwrap();
    let o = r.run(&["plan"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("net.ipv4.tcp_migrate_req: "), "{o:?}");
    assert!(
        o.stdout
            .contains("does not exist: this kernel does not have net.ipv4.tcp_migrate_req")
            && o.stdout.contains("`net.ipv4.tcp_migrate_req = skip`"),
        "{o:?}"
    );
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "65535");
    assert!(
        !r.path("proc/sys/net/ipv4/tcp_migrate_req").exists(),
        "a missing key is never created"
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stdout.contains("DRIFT: 1 of 13"), "{o:?}");
    // The documented way out: skip it.
    let p = r.profile("net.ipv4.tcp_migrate_req = skip\n");
    assert_eq!(r.run(&["check", "--profile", &p]).code, 0);
}

#[test]
fn global_key_in_a_child_network_namespace() {
    let r = FakeRoot::new();
    // What `unshare -n` shows: per-netns keys present, global net.core keys absent.
    for k in [
        "net/core/netdev_max_backlog",
        "net/core/netdev_budget",
        "net/core/netdev_budget_usecs",
        "net/ipv4/tcp_mem",
    ] {
        std::fs::remove_file(r.path(&format!("proc/sys/{k}"))).unwrap();
    }
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("net.core.netdev_budget is global and only exists in the host's (initial) network namespace; this process runs in another one"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("net.ipv4.tcp_mem is global and only exists"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "65535");
}

#[test]
fn unknown_key_and_malformed_values_in_a_profile_name_the_line() {
    let r = FakeRoot::new();
    for (text, want) in [
        (
            "# mine\nnet.core.somaxconn = 8192\nnet.core.somaxcon = 1\n",
            ":3: unknown key \"net.core.somaxcon\"; known keys: nofile, net.core.somaxconn",
        ),
        (
            "net.ipv4.tcp_rmem = 4096 lots 6291456\n",
            ":1: bad value for net.ipv4.tcp_rmem: \"lots\" is not a non-negative whole number",
        ),
        (
            "\nnet.ipv4.tcp_wmem = 4096 16384\n",
            ":2: bad value for net.ipv4.tcp_wmem: expected 3 whole numbers",
        ),
        (
            "net.ipv4.ip_local_port_range = 60000 1024\n",
            ":1: bad value for net.ipv4.ip_local_port_range: port range must be low < high",
        ),
        (
            "net.ipv4.tcp_syncookies = 3\n",
            ":1: bad value for net.ipv4.tcp_syncookies: 3 is out of range 0..=2",
        ),
        (
            "net.core.somaxconn = -5\n",
            ":1: bad value for net.core.somaxconn",
        ),
        ("nofile = many\n", ":1: nofile must be a whole number"),
        ("somaxconn 5\n", ":1: expected `key = value`"),
        ("base = tiny\n", ":1: unknown base profile \"tiny\""),
    ] {
        let p = r.profile(text);
        for cmd in ["plan", "apply", "check"] {
            let o = r.run(&[cmd, "--profile", &p, "--yes"][..if cmd == "apply" { 4 } else { 3 }]);
            assert_eq!(o.code, 64, "{text:?} {o:?}");
            assert!(
                o.stderr.contains(&format!("{p}{want}")),
                "{text:?}: want {want:?} in {o:?}"
            );
        }
    }
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(r.backups().is_empty());
    let o = r.run(&["plan", "--profile", "/nonexistent/p.conf"]);
    assert_eq!(o.code, 64);
    assert!(
        o.stderr
            .contains("cannot read profile file /nonexistent/p.conf"),
        "{o:?}"
    );
}

#[test]
fn garbage_or_a_directory_where_a_value_should_be() {
    let r = FakeRoot::new();
    r.set("net/core/somaxconn", "banana");
    std::fs::remove_file(r.path("proc/sys/net/core/netdev_budget")).unwrap();
    std::fs::create_dir(r.path("proc/sys/net/core/netdev_budget")).unwrap();
    let o = r.run(&["plan"]);
    assert!(
        o.stdout
            .contains("holds \"banana\", which is not a value for net.core.somaxconn"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("netdev_budget is a directory, not a kernel setting"),
        "{o:?}"
    );
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(
        r.get("net/core/somaxconn"),
        "banana",
        "unparseable values are left alone"
    );
}

#[test]
fn read_only_proc_sys_says_set_it_on_the_host_or_the_pod() {
    let r = FakeRoot::new();
    let sys = r.path("proc/sys");
    // A real read-only bind mount in a private mount namespace: what a container's /proc/sys is.
    let o = fakeroot::run(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && exec \"$2\" --root \"$3\" apply --yes --state-dir \"$3/state\"",
        "sh",
        sys.to_str().unwrap(),
        BIN,
        r.dir.to_str().unwrap(),
    ]));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("FAILED  net.core.somaxconn [per-netns]:")
            && o.stdout.contains("is on a read-only filesystem: /proc/sys is mounted read-only, as in most containers. net.core.somaxconn is per network namespace: set it for the pod (Kubernetes securityContext.sysctls"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains("net.core.netdev_budget is global to the machine: set it on the host"),
        "{o:?}"
    );
    assert!(
        o.stdout.contains("Nothing was changed; backup removed."),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(fakeroot::list(&r.path("state"), ".json").is_empty());
}

#[test]
fn permission_denied_names_the_capability() {
    let r = FakeRoot::new();
    let state = r.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // A real unprivileged user against root-owned 0644 files: what EACCES on /proc/sys looks like.
    let o = fakeroot::run(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "--root",
        r.dir.to_str().unwrap(),
        "apply",
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("permission denied on") && o.stdout.contains("needs root with CAP_SYS_ADMIN (global keys) or CAP_NET_ADMIN over the network namespace"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}

#[test]
fn visible_global_keys_are_left_to_the_host_inside_a_child_netns() {
    let r = FakeRoot::new();
    for k in [
        "net/core/netdev_max_backlog",
        "net/core/netdev_budget",
        "net/core/netdev_budget_usecs",
        "net/ipv4/tcp_mem",
    ] {
        std::fs::remove_file(r.path(&format!("proc/sys/{k}"))).unwrap();
    }
    r.set("fs/file-max", "1000");
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("fs.file-max is global (one value for the whole machine) and this process runs in a child network namespace"),
        "{o:?}"
    );
    assert_eq!(
        r.get("fs/file-max"),
        "1000",
        "never written from a child namespace"
    );
    assert_eq!(r.get("net/core/somaxconn"), "65535");
}

#[test]
fn tcp_mem_is_not_raised_past_a_quarter_of_ram() {
    let r = FakeRoot::new();
    // A 2 GiB box: the kernel's own tcp_mem default is small.
    r.write(
        "proc/meminfo",
        "MemTotal:        2097152 kB\nMemFree:         1000000 kB\n",
    );
    r.set("net/ipv4/tcp_mem", "23040\t30720\t46080");
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout.contains("tcp_mem's ceiling 393216 pages (1.5 GiB) would exceed a quarter of this box's 2.0 GiB RAM")
            && o.stdout.contains("`net.ipv4.tcp_mem = 65536 87381 131072`"),
        "{o:?}"
    );
    assert_eq!(r.get("net/ipv4/tcp_mem"), "23040 30720 46080");
    // A 16 GiB box takes the profile.
    r.write("proc/meminfo", "MemTotal:       16777216 kB\n");
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/ipv4/tcp_mem"), "196608 262144 393216");
}
