//! SIGHUP re-applies the listen backlog: a net.core.somaxconn raised after start (by an SRE
//! or `corestream-tune auto`) reaches the listening sockets without a restart. Runs in a
//! fresh network namespace (`unshare -n`; somaxconn is per namespace), never on the host.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// The backlog `ss` reports for the listener on `port` (Send-Q of a LISTEN socket).
fn backlog(port: u16) -> Option<u32> {
    let out = Command::new("ss").args(["-ltnH"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[3].ends_with(&format!(":{port}"))).then(|| f[2].parse().ok())?
    })
}

fn somaxconn(v: u32) {
    std::fs::write("/proc/sys/net/core/somaxconn", v.to_string()).unwrap();
}

#[test]
fn sighup_applies_a_raised_somaxconn() {
    if std::env::var_os("CORESTREAM_IN_NETNS").is_none() {
        let probe = Command::new("unshare").args(["-n", "true"]).status();
        if !matches!(probe, Ok(s) if s.success()) {
            eprintln!("SKIP sighup_applies_a_raised_somaxconn: `unshare -n` is not permitted here");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "ip link set lo up && CORESTREAM_IN_NETNS=1 {} --exact sighup_applies_a_raised_somaxconn --nocapture",
            exe.display()
        );
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "netns run failed:\n{text}");
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    somaxconn(16);
    let root = media_root("relisten");
    std::fs::write(root.join("index.m3u8"), "#EXTM3U\n").unwrap();
    let s = Server::start(&root, &["--workers", "2", "--backlog", "65535"]);
    let port = s.addr.port();
    assert_eq!(backlog(port), Some(16), "capped by somaxconn at start");
    somaxconn(4096);
    assert_eq!(
        backlog(port),
        Some(16),
        "a listener keeps its backlog until listen() again"
    );
    s.signal(libc::SIGHUP);
    let t = Instant::now();
    while backlog(port) != Some(4096) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "backlog still {:?} after SIGHUP",
            backlog(port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still serving, nothing dropped.
    assert_eq!(
        s.get("GET /index.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
}
