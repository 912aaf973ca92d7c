//! The built binary end to end: diagnose/watch/softirq on the captured fake root, bad input, and
//! the perf tracepoint path on the real kernel where this machine permits it.

mod fakeroot;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_corestream-tune"))
}

fn fixture_root() -> PathBuf {
    fakeroot::fixture("linux-6.18")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run corestream-tune")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn diagnose_fake_root_healthy_json() {
    let root = fixture_root();
    let o = run(&[
        "--root",
        root.to_str().expect("utf8"),
        "diagnose",
        "--interval",
        "100ms",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["schema"], "corestream-tune/diagnose/v1");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["listeners"]["source"], "proc-net-tcp");
    assert_eq!(v["listeners"]["sockets"][0]["address"], "0.0.0.0:2024");
    assert!(v["listeners"]["sockets"][0]["backlog"].is_null());
    assert_eq!(v["processes"][0]["pid"], 4242);
    assert_eq!(v["processes"][0]["soft_limit"], 20000);
    assert_eq!(v["rates"]["cpus"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["sysctls"]["values"]["net.core.somaxconn"], "4096");
}

#[test]
fn diagnose_text_warns_with_exit_1() {
    // A copy of the capture with somaxconn 128: a warning, exit status 1.
    let dir = fakeroot::scratch_copy("linux-6.18");
    std::fs::write(dir.join("proc/sys/net/core/somaxconn"), "128\n").expect("write");
    let o = run(&[
        "--root",
        dir.to_str().expect("utf8"),
        "diagnose",
        "--interval",
        "50ms",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("status: WARNING (1 finding)"), "{out}");
    assert!(out.contains("[WARNING] somaxconn_low: system"), "{out}");
    assert!(
        out.contains("sysctl    net.core.somaxconn = 4096   (in /etc/sysctl.d/60-corestream.conf)"),
        "{out}"
    );
    assert!(
        out.contains("net.core.somaxconn = 128 connections   (/proc/sys/net/core/somaxconn)"),
        "{out}"
    );
}

#[test]
fn diagnose_bad_input_says_the_fix() {
    let root = fixture_root();
    let r = root.to_str().expect("utf8");
    let o = run(&["--root", r, "diagnose", "--interval", "soon"]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "usage errors exit 64 (EX_USAGE), never 2 (CRITICAL)"
    );
    assert!(
        stderr(&o).contains("write e.g. 500ms, 10s, 2m or 1h"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "--root",
        r,
        "diagnose",
        "--interval",
        "50ms",
        "--pid",
        "999999",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "usage errors exit 64 (EX_USAGE), never 2 (CRITICAL)"
    );
    assert!(
        stderr(&o).contains("no process with pid 999999"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "--root",
        "/nonexistent-root",
        "diagnose",
        "--interval",
        "50ms",
        "--json",
    ]);
    // Nothing readable: no findings, but every gap is reported.
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(v["notes"].as_array().is_some_and(|n| n.len() >= 5), "{v}");
}

#[test]
fn watch_plain_lines_when_not_a_tty() {
    let root = fixture_root();
    let o = run(&[
        "--root",
        root.to_str().expect("utf8"),
        "watch",
        "--interval",
        "50ms",
        "--count",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains('\x1b'), "no ANSI escapes in a pipe");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 * 3, "2 CPUs + 1 summary per refresh: {out}");
    assert!(
        lines[0].contains(" cpu0 net_rx/s=0.0 net_tx/s=0.0 si%="),
        "{out}"
    );
    assert!(
        lines[2].contains("listen_overflows/s=0.0") && lines[2].contains("pid4242_fds=12/20000"),
        "{out}"
    );
    let o = run(&[
        "--root",
        root.to_str().expect("utf8"),
        "watch",
        "--count",
        "0",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "usage errors exit 64 (EX_USAGE), never 2 (CRITICAL)"
    );
    assert!(stderr(&o).contains("--count must be at least 1"));
}

#[test]
fn softirq_falls_back_with_the_reason() {
    let root = fixture_root();
    let o = run(&[
        "--root",
        root.to_str().expect("utf8"),
        "softirq",
        "--interval",
        "50ms",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["source"], "proc-softirqs");
    assert!(
        v["fallback_reason"]
            .as_str()
            .is_some_and(|r| r.contains("perf events observe the running kernel")),
        "{v}"
    );
    assert_eq!(v["vectors"].as_array().map(Vec::len), Some(10));
    let o = run(&["softirq", "--interval", "200ms", "--no-perf"]);
    let out = stdout(&o);
    assert!(
        out.contains("perf events not used: --no-perf given") && out.contains("NET_RX"),
        "{out}"
    );
}

/// Whether this process may count system-wide tracepoints (CAP_PERFMON or CAP_SYS_ADMIN).
fn perf_allowed() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    if caps & (1 << 38) == 0 && caps & (1 << 21) == 0 {
        return Err("no CAP_PERFMON/CAP_SYS_ADMIN".into());
    }
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("tracefs")
    {
        return Err("kernel without tracefs".into());
    }
    Ok(())
}

#[test]
fn softirq_perf_counts_match_proc_softirqs() {
    if let Err(why) = perf_allowed() {
        eprintln!("SKIPPED: perf tracepoint counting not permitted here: {why}");
        return;
    }
    let o = run(&["softirq", "--interval", "1s", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    if v["source"] != "perf" {
        // Containers may forbid perf_event_open or mounts even to root: that must be explained.
        let why = v["fallback_reason"].as_str().unwrap_or("");
        assert!(!why.is_empty(), "fallback without a reason: {v}");
        eprintln!("SKIPPED: perf path unavailable: {why}");
        return;
    }
    let timer = v["vectors"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "TIMER"))
        .expect("TIMER row");
    let perf = timer["total"].as_f64().expect("total");
    let proc = timer["proc_softirqs_total"].as_f64().expect("proc total");
    assert!(perf > 0.0, "timer softirqs always run: {timer}");
    // Both count the same events over nearly the same window.
    assert!(
        (perf - proc).abs() <= 0.2 * proc.max(perf) + 5.0,
        "perf {perf}/s vs /proc/softirqs {proc}/s"
    );
    assert_eq!(
        v["cpus"].as_array().map(Vec::len),
        timer["per_cpu"].as_array().map(Vec::len)
    );
    // Time per vector from entry/exit timestamps: timers run every tick, so some time, and no
    // vector can take more than the whole CPU.
    let note = v["time_per_vector"].as_str().unwrap_or("");
    if note.starts_with("measured") {
        let pct: Vec<f64> = timer["time_pct_per_cpu"]
            .as_array()
            .expect("time_pct_per_cpu")
            .iter()
            .filter_map(|x| x.as_f64())
            .collect();
        assert!(pct.iter().sum::<f64>() > 0.0, "{timer}");
        for vec in v["vectors"].as_array().expect("vectors") {
            for x in vec["time_pct_per_cpu"].as_array().expect("per cpu") {
                let x = x.as_f64().expect("number");
                assert!((0.0..=100.0).contains(&x), "{vec}");
            }
        }
    } else {
        eprintln!("time per vector not measured here: {note}");
    }
    // --no-time keeps the exact counts and says why there is no time.
    let o = run(&["softirq", "--interval", "200ms", "--no-time", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["source"], "perf");
    assert_eq!(v["time_per_vector"], "not measured: --no-time given");
    assert!(v["vectors"][0]["time_pct_per_cpu"].is_null());
}

#[test]
fn softirq_without_privileges_says_why_and_falls_back() {
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIPPED: setpriv (util-linux) is not installed, cannot drop privileges");
        return;
    }
    // Run as nobody with every capability dropped: tracefs (root-only), the private mount and
    // perf_event_open are all refused, and the tool must name the obstacle.
    let o = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_corestream-tune"))
        .args(["softirq", "--interval", "100ms", "--json"])
        .output()
        .expect("run setpriv");
    if matches!(o.status.code(), Some(126) | Some(127)) || stderr(&o).contains("setpriv:") {
        eprintln!(
            "SKIPPED: cannot run the binary as nobody here: {}",
            stderr(&o)
        );
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["source"], "proc-softirqs", "{v}");
    let why = v["fallback_reason"].as_str().unwrap_or("");
    assert!(
        why.contains("not readable by this user")
            || why.contains("Operation not permitted")
            || why.contains("perf_event_paranoid"),
        "reason does not name the obstacle: {why}"
    );
}

#[test]
fn watch_redraws_in_place_on_a_terminal() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("SKIPPED: script (util-linux) is not installed, no pseudo-terminal to test with");
        return;
    }
    let root = fixture_root();
    let cmd = format!(
        "{} --root {} watch --interval 50ms --count 2",
        env!("CARGO_BIN_EXE_corestream-tune"),
        root.display()
    );
    // script(1) gives the command a pseudo-terminal as stdout.
    let o = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("run script");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.matches("\x1b[H\x1b[2J").count(),
        2,
        "one home+clear per frame: {out:?}"
    );
    assert_eq!(out.matches("corestream-tune watch ").count(), 2, "{out}");
    assert!(
        out.contains("NET_RX/s") && out.contains("pid 4242 fds 12/20000"),
        "{out}"
    );
}

#[test]
fn diagnose_json_top_level_fields_are_stable() {
    let root = fixture_root();
    let o = run(&[
        "--root",
        root.to_str().expect("utf8"),
        "diagnose",
        "--interval",
        "50ms",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    // Documented in docs/sre-diagnose.md; removing or renaming one needs a new schema version.
    let mut documented = vec![
        "schema",
        "root",
        "interval_seconds",
        "status",
        "exit_code",
        "findings",
        "rates",
        "listeners",
        "processes",
        "file_nr",
        "sysctls",
        "sockstat",
        "notes",
        "unknown",
        // Added with issue 17 (fields are only ever added within v1):
        "advice",
        "netns",
        "nics",
        "conntrack",
        "destinations",
        "top_fds",
    ];
    documented.sort_unstable();
    assert_eq!(keys, documented);
    let cpu = v["rates"]["cpus"][0].as_object().expect("cpu object");
    for k in [
        "cpu",
        "net_rx_per_s",
        "net_tx_per_s",
        "si_pct",
        "irq_pct",
        "busy_pct",
        "softnet_dropped_per_s",
        "softnet_squeezed_per_s",
    ] {
        assert!(cpu.contains_key(k), "rates.cpus[] lacks {k}");
    }
}

#[test]
fn hostile_proc_files_are_notes_not_panics() {
    let files = [
        "proc/softirqs",
        "proc/stat",
        "proc/net/softnet_stat",
        "proc/net/netstat",
        "proc/net/snmp",
        "proc/net/sockstat",
        "proc/net/tcp",
        "proc/sys/fs/file-nr",
        "proc/sys/net/core/somaxconn",
        "proc/sys/net/ipv4/tcp_mem",
        "proc/4242/limits",
        "proc/4242/status",
        "proc/4242/comm",
        "proc/4242/cgroup",
        "corestream-fixtures/listeners",
        // Issue 17's probes.
        "proc/interrupts",
        "proc/net/dev",
        "proc/net/stat/nf_conntrack",
        "proc/sys/net/netfilter/nf_conntrack_count",
        "proc/sys/net/netfilter/nf_conntrack_max",
        "proc/sys/net/ipv4/ip_local_port_range",
        "proc/self/ns/net",
        "proc/irq/38/smp_affinity_list",
        "sys/class/net/eth0/queues/rx-0/rps_cpus",
        "sys/class/net/eth0/threaded",
        "etc/systemd/system/corestream.service",
    ];
    let garbage: [&[u8]; 8] = [
        b"9223372036854775807 9223372036854775807 9223372036854775807\n",
        b"-5 -5 -5\n",
        b"",
        b"\xff\xfe\x00binary\x00",
        b"CPU0 CPU1\nNET_RX: 99999999999999999999999 1\n",
        b"cpu0 1 2\ncpu 3\nTcpExt: a b c\nTcpExt: 1\nLISTEN 1 2 [::1:80 x\n",
        b"   \n\n\t\n",
        b"TCP: inuse\nMax open files x y\nCapEff: zz\n0 0 0 0 0 0 0 0 0 0 0 0 fffffffffffffff\n",
    ];
    for (n, g) in garbage.iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, g).expect("write");
        }
        std::fs::create_dir_all(dir.join("proc/4242/fd")).expect("mkdir fd");
        let r = dir.to_str().expect("utf8");
        for args in [
            vec!["--root", r, "diagnose", "--interval", "10ms"],
            vec![
                "--root",
                r,
                "diagnose",
                "--interval",
                "10ms",
                "--json",
                "--pid",
                "4242",
            ],
            vec!["--root", r, "watch", "--interval", "10ms", "--count", "1"],
            vec!["--root", r, "plan", "--rps"],
            vec!["--root", r, "check", "--json"],
            vec!["--root", r, "apply", "--dry-run", "--persist"],
        ] {
            let o = run(&args);
            assert!(
                matches!(o.status.code(), Some(0..=3)),
                "garbage #{n} {args:?}: status {:?}, stderr {}",
                o.status,
                stderr(&o)
            );
            assert!(
                !stderr(&o).contains("panicked"),
                "garbage #{n} {args:?}: {}",
                stderr(&o)
            );
        }
        let o = run(&["--root", r, "softirq", "--interval", "10ms"]);
        assert!(
            matches!(o.status.code(), Some(0) | Some(3)),
            "softirq on garbage #{n}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn blind_is_unknown_not_ok() {
    // Issue 17, defect 3: nothing readable used to be `status: OK (0 findings)`, exit 0.
    let o = run(&[
        "--root",
        "/nonexistent-root",
        "diagnose",
        "--interval",
        "10ms",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("status: UNKNOWN (0 findings; blind to "),
        "{}",
        stdout(&o)
    );
    // One file a rule needs missing from a healthy capture is enough.
    let dir = fakeroot::scratch_copy("linux-6.18");
    std::fs::remove_file(dir.join("proc/net/netstat")).expect("rm");
    let o = run(&[
        "--root",
        dir.to_str().expect("utf8"),
        "diagnose",
        "--interval",
        "10ms",
        "--json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["status"], "unknown");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["unknown"][0], "/proc/net/netstat");
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    for args in [
        vec!["diagnose", "--no-such-flag"],
        vec!["diagnose", "--interval", "soon"],
        vec!["diagnose", "--interval", "-1s"],
        vec!["diagnose", "--interval", "1e-2"],
        vec!["nofile", "--pid", "abc"],
        vec!["no-such-command"],
        vec![],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
    }
    let o = run(&["diagnose", "--interval", "-1s"]);
    assert!(
        stderr(&o).contains("\"-1s\" is not a duration"),
        "{}",
        stderr(&o)
    );
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    // 1h is inside the documented range (10ms to 1h) and is accepted.
    let o = run(&[
        "--root",
        "/nonexistent-root",
        "watch",
        "--interval",
        "1h",
        "--count",
        "0",
    ]);
    assert!(
        stderr(&o).contains("--count must be at least 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn procfs_internal_errors_do_not_leak_into_notes() {
    // Issue 17, defect 6: "Internal error: bug at .../procfs-core-0.18.0/src/net.rs:225 (please
    // report this procfs bug)" reached the SRE as a note.
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-procfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proc/net")).expect("mkdir");
    std::fs::write(dir.join("proc/stat"), "cpu0\n").expect("write");
    std::fs::write(
        dir.join("proc/net/tcp"),
        "sl local\n0: 7F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n",
    )
    .expect("write");
    let o = run(&[
        "--root",
        dir.to_str().expect("utf8"),
        "diagnose",
        "--interval",
        "10ms",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let out = stdout(&o);
    assert!(
        !out.contains("procfs bug") && !out.contains("Internal"),
        "{out}"
    );
    assert!(out.contains("a line is malformed"), "{out}");
}

#[test]
fn watch_says_when_a_watched_pid_is_gone() {
    // Issue 17, defect 6: an exited --pid used to vanish from the output silently.
    let dir = fakeroot::scratch_copy("linux-6.18");
    std::fs::remove_file(dir.join("proc/4242/limits")).expect("rm");
    let o = run(&[
        "--root",
        dir.to_str().expect("utf8"),
        "watch",
        "--interval",
        "10ms",
        "--count",
        "1",
        "--pid",
        "4242",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stdout(&o).contains("pid4242_fds=gone"), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn watch_keeps_going_when_its_stderr_reader_is_gone() {
    // `corestream-tune watch 2>&1 | head` closes the pipe; a line to stderr after that (here:
    // the watched process exits) must not end the watch with a panic.
    use std::process::Stdio;
    let dir = fakeroot::scratch_copy("linux-6.18");
    let mut child = bin()
        .args([
            "--root",
            dir.to_str().expect("utf8"),
            "watch",
            "--pid",
            "4242",
            "--interval",
            "100ms",
            "--count",
            "8",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corestream-tune watch");
    drop(child.stderr.take());
    std::thread::sleep(std::time::Duration::from_millis(250));
    std::fs::remove_dir_all(dir.join("proc/4242")).expect("the watched pid leaves");
    let status = child.wait().expect("wait");
    // 3: it ran to its count, and a watched process that is gone is UNKNOWN (101 was the panic).
    assert_eq!(status.code(), Some(3), "{status:?}");
}
