//! plan / apply / check / rollback on a fake root tree: the round trip, never-lower,
//! idempotence, backup contents, persistence files and confirmation.

mod fakeroot;
use fakeroot::FakeRoot;

fn row<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no row for {key} in\n{out}"))
}

#[test]
fn plan_shows_scope_current_target_action_and_changes_nothing() {
    let r = FakeRoot::new();
    let o = r.run(&["plan"]);
    assert_eq!(o.code, 0, "{o:?}");
    let somax = row(&o.stdout, "net.core.somaxconn");
    assert!(
        somax.contains("per-netns")
            && somax.contains("4096")
            && somax.contains("65535")
            && somax.ends_with("raise"),
        "{somax}"
    );
    let budget = row(&o.stdout, "net.core.netdev_budget");
    assert!(
        budget.contains("global") && budget.contains("300") && budget.ends_with("raise"),
        "{budget}"
    );
    assert!(row(&o.stdout, "net.core.netdev_budget_usecs").ends_with("already fine"));
    assert!(row(&o.stdout, "fs.file-max").contains("would lower: skipped"));
    // tcp_rmem: only the max field is above the profile.
    assert!(row(&o.stdout, "net.ipv4.tcp_rmem").contains("would lower"));
    // A wider port range is a raise.
    assert!(row(&o.stdout, "net.ipv4.ip_local_port_range").ends_with("raise"));
    assert!(o.stdout.contains("LimitNOFILE (corestream.service)"));
    assert!(
        o.stdout
            .contains("6 to change, 4 already fine, 3 skipped (would lower), 0 unavailable"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(r.backups().is_empty());

    let o = r.run(&["plan", "--allow-lower"]);
    assert!(
        row(&o.stdout, "fs.file-max").contains("lower (--allow-lower)"),
        "{o:?}"
    );
}

#[test]
fn apply_raises_only_with_backup_first_then_check_and_rollback() {
    let r = FakeRoot::new();
    // Mixed fields: low below the profile, pressure and high above: the higher ones are kept.
    r.set("net/ipv4/tcp_mem", "100000\t500000\t600000");
    let before = fakeroot::HOST_VALUES
        .iter()
        .map(|(k, _)| (k.to_string(), r.get(k)))
        .collect::<Vec<_>>();

    assert_eq!(r.run(&["check"]).code, 1);

    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("ok      net.core.somaxconn [per-netns]: 4096 -> 65535 (read back)"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "65535");
    assert_eq!(r.get("net/core/netdev_max_backlog"), "16384");
    assert_eq!(r.get("net/core/netdev_budget"), "600");
    assert_eq!(r.get("net/ipv4/tcp_max_syn_backlog"), "65535");
    assert_eq!(r.get("net/ipv4/tcp_migrate_req"), "1");
    assert_eq!(r.get("net/ipv4/ip_local_port_range"), "15000 65000");
    assert_eq!(r.get("net/ipv4/tcp_mem"), "196608 500000 600000");
    // Never lowered.
    assert_eq!(r.get("fs/file-max"), "2466183");
    assert_eq!(r.get("net/ipv4/tcp_rmem"), "4096 131072 33554432");

    // Backup: one file, the previous values of exactly the keys that were written.
    let backups = r.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("backup-2") && name.ends_with("Z.json"),
        "{name}"
    );
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&backups[0]).unwrap()).unwrap();
    assert_eq!(b["root"], r.dir.to_str().unwrap());
    let values = b["values"].as_array().unwrap();
    let keys: Vec<&str> = values.iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "net.core.somaxconn",
            "net.core.netdev_max_backlog",
            "net.core.netdev_budget",
            "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_migrate_req",
            "net.ipv4.tcp_mem",
            "net.ipv4.ip_local_port_range"
        ]
    );
    let mem = values
        .iter()
        .find(|v| v["key"] == "net.ipv4.tcp_mem")
        .unwrap();
    assert_eq!(mem["previous"], "100000 500000 600000");
    assert_eq!(mem["applied"], "196608 500000 600000");
    assert_eq!(mem["scope"], "global");
    assert_eq!(mem["path"], "proc/sys/net/ipv4/tcp_mem");
    assert!(b["files"].as_array().unwrap().is_empty());

    let o = r.run(&["check"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .starts_with("OK: 13 keys meet profile edge (built-in)"),
        "{o:?}"
    );

    // Idempotent: nothing to do, no second backup.
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("Nothing to change"), "{o:?}");
    assert_eq!(r.backups().len(), 1);

    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("restore net.core.somaxconn [per-netns]: 65535 -> 4096"),
        "{o:?}"
    );
    for (k, v) in &before {
        assert_eq!(&r.get(k), v, "{k} after rollback");
    }
    assert!(r.backups().is_empty());
    assert_eq!(
        fakeroot::list(&r.path("var/lib/corestream-tune"), ".rolled-back").len(),
        1
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("net.core.somaxconn [per-netns]: running 4096, profile wants at least 65535"),
        "{o:?}"
    );

    // Nothing left to roll back.
    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr.contains("no backup in") && o.stderr.contains("nothing to roll back"),
        "{o:?}"
    );
}

#[test]
fn allow_lower_lowers_and_rollback_restores() {
    let r = FakeRoot::new();
    let o = r.run(&["apply", "--yes", "--allow-lower"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("fs/file-max"), "2097152");
    assert_eq!(r.get("net/ipv4/tcp_rmem"), "4096 131072 6291456");
    assert_eq!(r.get("net/ipv4/tcp_mem"), "196608 262144 393216");
    assert_eq!(r.run(&["rollback", "--yes"]).code, 0);
    assert_eq!(r.get("fs/file-max"), "2466183");
    assert_eq!(r.get("net/ipv4/tcp_rmem"), "4096 131072 33554432");
}

#[test]
fn rollbacks_stack_newest_first() {
    let r = FakeRoot::new();
    let p1 = r.profile("base = none\nnet.core.somaxconn = 8192\n");
    let p2 = r.profile("base = none\nnet.core.somaxconn = 16384\n");
    let sd = r.path("state");
    let sd = sd.to_str().unwrap();
    assert_eq!(
        r.run(&["apply", "--yes", "--profile", &p1, "--state-dir", sd])
            .code,
        0
    );
    assert_eq!(
        r.run(&["apply", "--yes", "--profile", &p2, "--state-dir", sd])
            .code,
        0
    );
    assert_eq!(r.get("net/core/somaxconn"), "16384");
    assert_eq!(fakeroot::list(&r.path("state"), ".json").len(), 2);
    assert_eq!(r.run(&["rollback", "--yes", "--state-dir", sd]).code, 0);
    assert_eq!(r.get("net/core/somaxconn"), "8192");
    assert_eq!(r.run(&["rollback", "--yes", "--state-dir", sd]).code, 0);
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}

#[test]
fn rollback_leaves_values_changed_since_apply_unless_forced() {
    let r = FakeRoot::new();
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    r.set("net/core/somaxconn", "30000"); // an admin's later change
    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("CHANGED net.core.somaxconn: now 30000, but apply wrote 65535"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "30000");
    assert_eq!(r.get("net/core/netdev_budget"), "300", "others restored");
    assert_eq!(r.backups().len(), 1, "backup kept after a partial rollback");
    let o = r.run(&["rollback", "--yes", "--force"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}

#[test]
fn rollback_refuses_a_backup_from_another_root() {
    let r = FakeRoot::new();
    let other = FakeRoot::new();
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    let b = r.backups()[0].to_str().unwrap().to_string();
    let o = other.run(&["rollback", "--yes", "--backup", &b]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(o.stderr.contains("was taken with --root"), "{o:?}");
    assert_eq!(other.get("net/core/somaxconn"), "4096");
    let bad = r.profile("not json");
    let o = r.run(&["rollback", "--yes", "--backup", &bad]);
    assert_eq!(o.code, 3);
    assert!(
        o.stderr.contains("is not a corestream-tune backup"),
        "{o:?}"
    );
}

#[test]
fn dry_run_and_missing_confirmation_change_nothing() {
    let r = FakeRoot::new();
    let o = r.run(&["apply", "--dry-run", "--persist"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("dry run: would write net.core.somaxconn = 65535"),
        "{o:?}"
    );
    assert!(o.stdout.contains("dry run: would create"), "{o:?}");
    let o = r.run(&["apply"]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(
        o.stderr.contains("refusing to change kernel settings without confirmation: stdin is not a terminal. Re-run with --yes"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(r.backups().is_empty());
    assert!(r.read("etc/sysctl.d/60-corestream.conf").is_none());
    assert!(!r.path("var/lib/corestream-tune").exists());
    // Rollback asks too.
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    let o = r.run(&["rollback"]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(
        o.stderr
            .contains("refusing to roll back kernel settings without confirmation"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "65535");
}

#[test]
fn persist_writes_three_files_and_rollback_restores_or_removes_them() {
    let r = FakeRoot::new();
    // An older file of ours exists: rollback must put it back, not delete it.
    r.write(
        "etc/sysctl.d/60-corestream.conf",
        "net.core.somaxconn = 8192\n",
    );
    let o = r.run(&["apply", "--yes", "--persist"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("systemd ignores limits.d"), "{o:?}");

    let sysctl_d = r.read("etc/sysctl.d/60-corestream.conf").unwrap();
    for line in [
        "net.core.somaxconn = 65535",
        "net.core.netdev_budget_usecs = 8000",
        "net.ipv4.tcp_migrate_req = 1",
        "net.ipv4.ip_local_port_range = 15000 65000",
        "net.ipv4.tcp_wmem = 4096 16384 4194304",
    ] {
        assert!(
            sysctl_d.lines().any(|l| l == line),
            "{line} missing from\n{sysctl_d}"
        );
    }
    // Values above the profile are not pinned (next boot must not lower them).
    assert!(
        !sysctl_d.lines().any(|l| l.starts_with("fs.file-max")),
        "{sysctl_d}"
    );
    assert!(sysctl_d.contains(
        "# fs.file-max: the running value 2466183 is above the profile's 2097152; not pinned here."
    ));
    assert!(sysctl_d.contains("# [per-netns] Accept queue = min(listen backlog, somaxconn)"));

    let limits = r.read("etc/security/limits.d/90-corestream.conf").unwrap();
    assert!(
        limits.contains("\ncorestream soft nofile 262144\ncorestream hard nofile 262144\n"),
        "{limits}"
    );
    assert!(limits.contains("systemd services do NOT read limits.d"));
    let dropin = r
        .read("etc/systemd/system/corestream.service.d/nofile.conf")
        .unwrap();
    assert!(
        dropin.contains("[Service]\nLimitNOFILE=262144\n"),
        "{dropin}"
    );

    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&r.backups()[0]).unwrap()).unwrap();
    let files = b["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["path"], "etc/sysctl.d/60-corestream.conf");
    assert_eq!(files[0]["previous"], "net.core.somaxconn = 8192\n");
    assert_eq!(files[1]["previous"], serde_json::Value::Null);

    // The plan now sees the drop-in.
    let o = r.run(&["plan"]);
    assert!(
        row(&o.stdout, "LimitNOFILE").ends_with("already fine"),
        "{o:?}"
    );
    // Idempotent with --persist too.
    let o = r.run(&["apply", "--yes", "--persist"]);
    assert!(o.stdout.contains("Nothing to change"), "{o:?}");

    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        r.read("etc/sysctl.d/60-corestream.conf").unwrap(),
        "net.core.somaxconn = 8192\n"
    );
    assert!(r.read("etc/security/limits.d/90-corestream.conf").is_none());
    assert!(!r.path("etc/systemd/system/corestream.service.d").exists());
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}

#[test]
fn rollback_leaves_an_edited_persisted_file() {
    let r = FakeRoot::new();
    assert_eq!(r.run(&["apply", "--yes", "--persist"]).code, 0);
    r.write(
        "etc/security/limits.d/90-corestream.conf",
        "corestream soft nofile 5\n",
    );
    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("90-corestream.conf: edited since apply wrote it; left alone"),
        "{o:?}"
    );
    assert!(r.read("etc/security/limits.d/90-corestream.conf").is_some());
    assert!(r.read("etc/sysctl.d/60-corestream.conf").is_none());
}

#[test]
fn check_flags_a_running_corestream_with_too_few_files() {
    let r = FakeRoot::new();
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    r.write("proc/4242/comm", "corestream\n");
    r.write(
        "proc/4242/limits",
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max open files            1024                 524288               files     \n",
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("corestream pid 4242: RLIMIT_NOFILE soft 1024, profile wants 262144"),
        "{o:?}"
    );
    r.write(
        "proc/4242/limits",
        "Max open files            262144               262144               files     \n",
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("1 corestream process(es) checked for open files"),
        "{o:?}"
    );
}

#[test]
fn a_second_concurrent_apply_or_rollback_is_refused() {
    use std::os::fd::AsRawFd;
    let r = FakeRoot::new();
    let dir = r.path("var/lib/corestream-tune");
    std::fs::create_dir_all(&dir).unwrap();
    let held = std::fs::File::create(dir.join("lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = r.run(&["apply", "--yes"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr
            .contains("another corestream-tune apply or rollback is running"),
        "{o:?}"
    );
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(r.backups().is_empty());
    drop(held);
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    let held = std::fs::File::create(dir.join("lock")).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = r.run(&["rollback", "--yes"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "65535");
}

#[test]
fn check_json_lists_drifts_for_config_management() {
    let r = FakeRoot::new();
    let o = r.run(&["check", "--json"]);
    assert_eq!(o.code, 1, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["keys"], 13);
    let drifts = v["drifts"].as_array().unwrap();
    assert_eq!(drifts.len(), 6, "{o:?}");
    let range = drifts
        .iter()
        .find(|d| d["key"] == "net.ipv4.ip_local_port_range")
        .unwrap();
    assert_eq!(range["current"], "32768 60999");
    assert_eq!(range["target"], "15000 65000");
    assert_eq!(range["scope"], "per-netns");
    std::fs::remove_file(r.path("proc/sys/net/core/somaxconn")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.run(&["check", "--json"]).stdout).unwrap();
    let somax = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "net.core.somaxconn")
        .unwrap()
        .clone();
    assert_eq!(somax["current"], serde_json::Value::Null);
    assert!(somax["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    r.set("net/core/somaxconn", "4096");
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    let o = r.run(&["check", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["drifts"].as_array().unwrap().is_empty());
}

#[test]
fn rollback_dry_run_fails_on_a_conflict_the_real_run_refuses() {
    // Issue 17, defect 6: the dry run said 0 where the real run refuses.
    let r = FakeRoot::new();
    assert_eq!(r.run(&["apply", "--yes"]).code, 0);
    r.set("net/core/somaxconn", "1000");
    let o = r.run(&["rollback", "--dry-run"]);
    assert!(o.stdout.contains("CHANGED net.core.somaxconn"), "{o:?}");
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(r.run(&["rollback", "--yes"]).code, 1);
}

#[test]
fn the_backup_root_is_canonical() {
    // Issue 17, defect 6: `--root r4` at apply and `--root /abs/r4` at rollback were two roots.
    let r = FakeRoot::new();
    let parent = r.dir.parent().unwrap().to_path_buf();
    let name = r.dir.file_name().unwrap().to_str().unwrap().to_string();
    let run_in = |root: &str, args: &[&str]| {
        fakeroot::run(
            std::process::Command::new(fakeroot::BIN)
                .current_dir(&parent)
                .arg("--root")
                .arg(root)
                .args(args),
        )
    };
    assert_eq!(run_in(&name, &["apply", "--yes"]).code, 0);
    let o = run_in(r.dir.to_str().unwrap(), &["rollback", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}

#[test]
fn word_valued_knobs_plan_apply_check_and_roll_back() {
    // Issue 17: the catalogue takes words (a qdisc, a congestion control) like numbers.
    let r = FakeRoot::new();
    r.set("net/core/default_qdisc", "pfifo_fast");
    r.set("net/ipv4/tcp_congestion_control", "cubic");
    r.set("net/ipv4/tcp_notsent_lowat", "4294967295");
    let p = r.profile(
        "base = none\nnet.core.default_qdisc = fq\nnet.ipv4.tcp_congestion_control = bbr\nnet.ipv4.tcp_notsent_lowat = 131072\n",
    );
    let o = r.run(&["plan", "--profile", &p]);
    assert!(
        row(&o.stdout, "net.core.default_qdisc").ends_with("change"),
        "{o:?}"
    );
    assert!(
        row(&o.stdout, "net.ipv4.tcp_congestion_control").contains("cubic"),
        "{o:?}"
    );
    // A lower unsent watermark is a lowering: only with --allow-lower.
    assert!(
        row(&o.stdout, "net.ipv4.tcp_notsent_lowat").contains("would lower"),
        "{o:?}"
    );
    let o = r.run(&["check", "--profile", &p]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stdout
            .contains("net.core.default_qdisc [global]: running pfifo_fast, profile wants fq"),
        "{o:?}"
    );
    let o = r.run(&["apply", "--profile", &p, "--allow-lower", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/core/default_qdisc"), "fq");
    assert_eq!(r.get("net/ipv4/tcp_congestion_control"), "bbr");
    assert_eq!(r.get("net/ipv4/tcp_notsent_lowat"), "131072");
    assert_eq!(r.run(&["check", "--profile", &p]).code, 0);
    let bad = r.profile("net.core.default_qdisc = fastest\n");
    let o = r.run(&["plan", "--profile", &bad]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(
        o.stderr
            .contains("\"fastest\" is not one of pfifo_fast, fq"),
        "{o:?}"
    );
    assert_eq!(r.run(&["rollback", "--yes"]).code, 0);
    assert_eq!(r.get("net/core/default_qdisc"), "pfifo_fast");
    assert_eq!(r.get("net/ipv4/tcp_congestion_control"), "cubic");
    assert_eq!(r.get("net/ipv4/tcp_notsent_lowat"), "4294967295");
}
