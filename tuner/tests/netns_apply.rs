//! The real kernel, inside a fresh network namespace (`unshare -n`): apply, check and roll back
//! the per-namespace keys somaxconn, tcp_max_syn_backlog and tcp_migrate_req with `--root /`,
//! and show the host's values are untouched. The profile names only those keys (`base = none`),
//! so no global key is ever written.

mod fakeroot;
use fakeroot::BIN;
use std::process::Command;

const KEYS: [&str; 3] = [
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_migrate_req",
];

fn host_values() -> Vec<String> {
    KEYS.iter()
        .map(|k| {
            std::fs::read_to_string(format!("/proc/sys/{k}"))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

/// Run `script` in `sh` inside a fresh network namespace with $1 the tool, $2 the profile and
/// $3 the state directory.
fn in_netns(script: &str, profile: &std::path::Path, state: &std::path::Path) -> fakeroot::Out {
    fakeroot::run(Command::new("unshare").args([
        "-n",
        "sh",
        "-c",
        script,
        "sh",
        BIN,
        profile.to_str().unwrap(),
        state.to_str().unwrap(),
    ]))
}

#[test]
fn apply_check_rollback_in_a_child_netns_leaves_the_host_alone() {
    let host_before = host_values();
    let dir = std::env::temp_dir().join(format!("cstune-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("netns.conf");
    // Targets chosen to differ from the kernel defaults a new namespace starts with
    // (somaxconn 4096, tcp_max_syn_backlog >= 128, tcp_migrate_req 0).
    std::fs::write(
        &profile,
        "base = none\n\
         net.core.somaxconn = 65000 # test\n\
         net.ipv4.tcp_max_syn_backlog = 60000\n\
         net.ipv4.tcp_migrate_req = 1\n",
    )
    .unwrap();
    let state = dir.join("state");
    // One shell inside one namespace runs every step; markers split its output.
    let script = r#"
        set -u
        B="$1"; P="$2"; S="$3"
        show() { echo "values: $(cat /proc/sys/net/core/somaxconn) $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog) $(cat /proc/sys/net/ipv4/tcp_migrate_req)"; }
        echo "== before"; show
        echo "== check1"; "$B" --root / check --profile "$P"; echo "rc=$?"
        echo "== apply"; "$B" --root / apply --profile "$P" --yes --state-dir "$S"; echo "rc=$?"
        show
        echo "== apply2"; "$B" --root / apply --profile "$P" --yes --state-dir "$S"; echo "rc=$?"
        echo "== check2"; "$B" --root / check --profile "$P"; echo "rc=$?"
        echo "== rollback"; "$B" --root / rollback --yes --state-dir "$S"; echo "rc=$?"
        show
        echo "== check3"; "$B" --root / check --profile "$P"; echo "rc=$?"
    "#;
    let o = in_netns(script, &profile, &state);
    let host_after = host_values();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        o.code, 0,
        "unshare -n failed (needs root or CAP_SYS_ADMIN): {o:?}"
    );
    let section = |name: &str| -> String {
        let start = o
            .stdout
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("{o:?}"));
        let rest = &o.stdout[start + name.len() + 4..];
        rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
    };
    let before = section("before");
    let fresh: Vec<u64> = before
        .trim()
        .strip_prefix("values: ")
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        fresh[0] < 65000 && fresh[1] < 60000 && fresh[2] == 0,
        "namespace defaults {fresh:?}"
    );
    assert!(section("check1").contains("rc=1"), "{o:?}");
    let apply = section("apply");
    assert!(apply.contains("rc=0"), "{o:?}");
    assert!(
        apply.contains(&format!(
            "ok      net.core.somaxconn [per-netns]: {} -> 65000 (read back)",
            fresh[0]
        )),
        "{o:?}"
    );
    assert!(
        apply.contains("ok      net.ipv4.tcp_migrate_req [per-netns]: 0 -> 1 (read back)"),
        "{o:?}"
    );
    assert!(apply.contains("values: 65000 60000 1"), "{o:?}");
    let apply2 = section("apply2");
    assert!(
        apply2.contains("Nothing to change") && apply2.contains("rc=0"),
        "{o:?}"
    );
    let check2 = section("check2");
    assert!(
        check2.contains("OK: 3 keys meet profile") && check2.contains("rc=0"),
        "{o:?}"
    );
    let rb = section("rollback");
    assert!(rb.contains("Rolled back.") && rb.contains("rc=0"), "{o:?}");
    assert!(
        rb.contains(&format!("values: {} {} {}", fresh[0], fresh[1], fresh[2])),
        "{o:?}"
    );
    assert!(section("check3").contains("rc=1"), "{o:?}");
    // The host's own namespace never saw any of it.
    assert_eq!(host_before, host_after);
    assert_ne!(host_after[0], "65000");
}

#[test]
fn a_value_the_kernel_rejects_is_reported_and_nothing_else_breaks() {
    let host_before = host_values();
    let host_fin = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fin_timeout").unwrap();
    let dir = std::env::temp_dir().join(format!("cstune-netns-einval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("p.conf");
    // 99999999 s passes the profile's number check but overflows the kernel's jiffies range.
    std::fs::write(
        &profile,
        "base = none\nnet.ipv4.tcp_fin_timeout = 99999999\nnet.core.somaxconn = 65000\n",
    )
    .unwrap();
    let script = r#"
        "$1" --root / apply --profile "$2" --yes --state-dir "$3"; echo "rc=$?"
        echo "fin=$(cat /proc/sys/net/ipv4/tcp_fin_timeout) somaxconn=$(cat /proc/sys/net/core/somaxconn)"
    "#;
    let o = in_netns(script, &profile, &dir.join("state"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("FAILED  net.ipv4.tcp_fin_timeout [per-netns]: the kernel rejected the value for net.ipv4.tcp_fin_timeout (EINVAL"),
        "{o:?}"
    );
    assert!(o.stdout.contains("rc=1"), "{o:?}");
    assert!(o.stdout.contains("somaxconn=65000"), "{o:?}");
    assert!(!o.stdout.contains("fin=99999999"), "{o:?}");
    assert_eq!(host_values(), host_before);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fin_timeout").unwrap(),
        host_fin
    );
}

#[test]
fn a_word_valued_knob_in_a_child_netns() {
    // tcp_congestion_control is per network namespace: apply, read back, roll back for real.
    let host_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    // Any namespace may pick from the allowed list (cubic, though available, is refused with
    // EPERM on this machine's kernel).
    let allowed =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control").unwrap();
    let want = allowed
        .split_whitespace()
        .find(|c| *c != host_cc.trim())
        .unwrap_or("reno")
        .to_string();
    let dir = std::env::temp_dir().join(format!("cstune-netns-cc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("p.conf");
    std::fs::write(
        &profile,
        format!("base = none\nnet.ipv4.tcp_congestion_control = {want}\n"),
    )
    .unwrap();
    let script = r#"
        before=$(cat /proc/sys/net/ipv4/tcp_congestion_control)
        "$1" --root / apply --profile "$2" --yes --state-dir "$3"; echo "rc=$?"
        echo "now=$(cat /proc/sys/net/ipv4/tcp_congestion_control)"
        "$1" --root / rollback --yes --state-dir "$3"; echo "rc=$?"
        echo "after=$(cat /proc/sys/net/ipv4/tcp_congestion_control) before=$before"
    "#;
    let o = in_netns(script, &profile, &dir.join("state"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.stdout.contains(&format!("now={want}")), "{o:?}");
    let after = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("after="))
        .unwrap();
    let (a, b) = after.split_once(" before=").unwrap();
    assert_eq!(a, b, "{o:?}");
    assert!(
        !o.stdout.contains("rc=1") && !o.stdout.contains("rc=3"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap(),
        host_cc
    );
}
