//! `auto` end to end in a private network namespace (this test thread's own, made with
//! unshare(CLONE_NEWNET); the host's namespace is never written): a real listener whose
//! effective backlog is 16 (somaxconn 16) overflows under a connection burst; auto raises the
//! per-namespace somaxconn and tcp_max_syn_backlog one step within the profile, logs the
//! evidence, records the change in a backup and sends SIGHUP to the listener's owner; the
//! listener calls listen() again (as corestream must on SIGHUP) and a second burst no longer
//! overflows; `rollback` restores the namespace's values. Every wait waits for an event with a
//! generous upper bound. The host's values are compared before and after.

mod fakeroot;
use socket2::{Domain, Socket, Type};
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_corestream-tune");
const HOST_KEYS: [&str; 3] = [
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/core/netdev_max_backlog",
];

static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

fn read_sys(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn burst(to: SocketAddr, n: usize) -> Vec<Socket> {
    (0..n)
        .filter_map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            match s.connect(&to.into()) {
                Ok(()) => Some(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Some(s),
                Err(_) => None,
            }
        })
        .collect()
}

fn counter(name: &str) -> i64 {
    // /proc/net follows the process (the main thread, still in the host namespace): this
    // thread's own namespace is under /proc/thread-self.
    let t = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("netstat");
    let lines: Vec<&str> = t.lines().collect();
    for pair in lines.chunks(2) {
        let (names, vals) = (pair[0], pair[1]);
        if let Some(i) = names.split_whitespace().position(|n| n == name) {
            return vals
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// Wait for `cond` (an event), up to `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn backlog_of(port: u16) -> Option<u32> {
    corestream_tune::probe::listeners::netlink_dump()
        .ok()?
        .into_iter()
        .find(|l| l.port() == port)
        .and_then(|l| l.backlog)
}

/// In the test thread's namespace: somaxconn 16 and a listener that asks for 65535, as
/// corestream does, and so gets 16.
fn capped_listener() -> (Socket, SocketAddr) {
    std::fs::write("/proc/sys/net/core/somaxconn", "16\n")
        .expect("somaxconn in the test namespace");
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener
        .bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    listener.listen(65535).expect("listen");
    let addr = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    (listener, addr)
}

#[test]
fn auto_raises_somaxconn_under_a_burst_the_listener_relistens_and_rollback_restores() {
    let host_before: Vec<String> = HOST_KEYS.iter().map(|k| read_sys(k)).collect();
    // To come back and read the host's values at the end (threads spawned later would inherit
    // the test namespace).
    let host_ns = std::fs::File::open("/proc/thread-self/ns/net").expect("host netns");
    // SAFETY: unshare has no memory-safety preconditions; it moves only this thread (and the
    // processes it spawns) into a new network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        eprintln!("SKIPPED: cannot create a network namespace ({e}); needs root or CAP_SYS_ADMIN");
        return;
    }
    fakeroot::bring_lo_up().expect("lo up");
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let old = unsafe { libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t) };
    assert_ne!(old, libc::SIG_ERR);
    let (listener, addr) = capped_listener();
    assert_eq!(backlog_of(addr.port()), Some(16));

    let dir = std::env::temp_dir().join(format!("cstune-auto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let profile = dir.join("p.conf");
    std::fs::write(
        &profile,
        "base = none\nnet.core.somaxconn = 65535\nnet.ipv4.tcp_max_syn_backlog = 65535\n",
    )
    .expect("profile");
    let comm = std::fs::read_to_string("/proc/self/comm")
        .expect("comm")
        .trim()
        .to_string();
    let state = dir.join("state");
    let mut auto = Command::new(BIN)
        .args([
            "--root",
            "/",
            "auto",
            "--yes",
            "--interval",
            "1s",
            "--count",
            "4",
            "--name",
            &comm,
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn auto");
    let mut lines = BufReader::new(auto.stdout.take().expect("stdout")).lines();
    let mut log = Vec::new();
    let mut next_line = |log: &mut Vec<String>| -> Option<String> {
        let l = lines.next()?.ok()?;
        log.push(l.clone());
        Some(l)
    };
    // Event: auto took its first sample.
    while let Some(l) = next_line(&mut log) {
        if l.contains("auto: watching") {
            break;
        }
    }
    let before = counter("ListenOverflows");
    let _first = burst(addr, 200);
    assert!(
        wait_for(Duration::from_secs(30), || counter("ListenOverflows")
            > before),
        "the burst did not overflow a backlog of 16"
    );
    // Event: auto logged the raise with its evidence, then the signal.
    let mut raised = None;
    let mut signalled = false;
    while let Some(l) = next_line(&mut log) {
        if l.contains("raised net.core.somaxconn 16 -> ") {
            raised = Some(l.clone());
        }
        if l.contains("sent SIGHUP to") {
            signalled = true;
            break;
        }
    }
    let raised = raised.unwrap_or_else(|| panic!("auto did not raise somaxconn: {log:#?}"));
    assert!(
        raised.contains("evidence: TcpExt:ListenOverflows +") && raised.contains("(bound 65535)"),
        "{raised}"
    );
    assert!(signalled, "{log:#?}");
    assert_eq!(
        read_sys("net/core/somaxconn"),
        "4096",
        "one step: 16 doubled, at least 4096"
    );
    // The listener re-listens on SIGHUP, as corestream must.
    assert!(
        wait_for(Duration::from_secs(30), || HUP.load(Ordering::SeqCst)),
        "no SIGHUP"
    );
    listener.listen(65535).expect("listen again");
    assert_eq!(backlog_of(addr.port()), Some(4096));
    // A second burst fits: no overflow once its handshakes are done.
    let before = counter("ListenOverflows");
    let second = burst(addr, 200);
    assert!(wait_for(Duration::from_secs(30), || {
        second.iter().all(|s| s.peer_addr().is_ok())
    }));
    assert_eq!(
        counter("ListenOverflows"),
        before,
        "still overflowing after re-listen"
    );
    // Auto ends on its own after --count intervals.
    while next_line(&mut log).is_some() {}
    for l in &log {
        eprintln!("{l}");
    }
    let status = auto.wait().expect("auto exits");
    assert!(status.success(), "{log:#?}");
    // Rollback undoes what auto did, from the same backup format apply writes.
    let o = Command::new(BIN)
        .args(["--root", "/", "rollback", "--yes"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .expect("rollback");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(read_sys("net/core/somaxconn"), "16");
    let _ = std::fs::remove_dir_all(&dir);
    // The host's namespace never saw any of it: go back to it and read.
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace fd this test owns; it moves only this thread.
    assert_eq!(
        unsafe { libc::setns(host_ns.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    let host_after: Vec<String> = HOST_KEYS.iter().map(|k| read_sys(k)).collect();
    assert_eq!(host_before, host_after);
}

#[test]
fn auto_backs_off_for_good_from_a_key_an_administrator_changed() {
    // SAFETY: as above: only this thread moves into a new network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!("SKIPPED: cannot create a network namespace; needs root or CAP_SYS_ADMIN");
        return;
    }
    fakeroot::bring_lo_up().expect("lo up");
    let (_listener, addr) = capped_listener();
    let dir = std::env::temp_dir().join(format!("cstune-backoff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let profile = dir.join("p.conf");
    std::fs::write(&profile, "base = none\nnet.core.somaxconn = 65535\n").expect("profile");
    let state = dir.join("state");
    let mut auto = Command::new(BIN)
        .args([
            "--root",
            "/",
            "auto",
            "--yes",
            "--interval",
            "1s",
            "--count",
            "5",
            "--no-signal",
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn auto");
    let mut lines = BufReader::new(auto.stdout.take().expect("stdout")).lines();
    let mut log = Vec::new();
    let mut until = |needle: &str, log: &mut Vec<String>| -> bool {
        for l in lines.by_ref().map_while(Result::ok) {
            log.push(l.clone());
            if l.contains(needle) {
                return true;
            }
        }
        false
    };
    assert!(until("auto: watching", &mut log));
    let _first = burst(addr, 200);
    assert!(
        until("raised net.core.somaxconn 16 -> 4096", &mut log),
        "{log:#?}"
    );
    // An administrator sets it by hand; the listener keeps overflowing (it never re-listens).
    std::fs::write("/proc/sys/net/core/somaxconn", "5000\n").expect("by hand");
    let _second = burst(addr, 200);
    assert!(
        until(
            "backing off net.core.somaxconn for good: it is now 5000",
            &mut log
        ),
        "{log:#?}"
    );
    while until("\u{0}", &mut log) {}
    assert!(auto.wait().expect("exit").success());
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("raised net.core.somaxconn"))
            .count(),
        1,
        "raised again after the back-off: {log:#?}"
    );
    assert_eq!(
        read_sys("net/core/somaxconn"),
        "5000",
        "auto left the admin's value"
    );
    let backoff = std::fs::read_to_string(state.join("auto-backoff.json")).expect("back-off list");
    assert!(backoff.contains("net.core.somaxconn"), "{backoff}");
    let _ = std::fs::remove_dir_all(&dir);
}
