//! `watch --prometheus` and `watch --textfile`: a real scrape of the exporter over TCP, checked
//! by `promtool check metrics` when Prometheus's promtool is installed (CI installs it).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_corestream-tune");

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-6.18")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the exporter");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// `watch --prometheus 127.0.0.1:0` on the fixture tree, and the address it serves on.
fn start_exporter() -> (Killed, String) {
    let root = fixture_root();
    let mut child = Command::new(BIN)
        .args(["--root", root.to_str().expect("utf8")])
        .args(["watch", "--interval", "100ms", "--quiet", "--pid", "4242"])
        .args(["--prometheus", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stderr = child.stderr.take().expect("stderr");
    let child = Killed(child);
    // Wait for the event (the address line), not for a time.
    let mut addr = None;
    for line in BufReader::new(stderr).lines().take(50) {
        let line = line.expect("stderr line");
        if let Some(a) = line.split("http://").nth(1) {
            addr = Some(a.trim_end_matches("/metrics").to_string());
            break;
        }
    }
    (child, addr.expect("watch printed the metrics address"))
}

#[test]
fn prometheus_endpoint_serves_valid_metrics() {
    let (child, addr) = start_exporter();
    // Prometheus sends a scrape config's `params:` as a query string.
    let with_params = get(&addr, "/metrics?module=edge");
    assert!(with_params.starts_with("HTTP/1.1 200 OK"), "{with_params}");
    let resp = get(&addr, "/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    for want in [
        "# TYPE corestream_tune_status gauge\ncorestream_tune_status 0\n",
        "corestream_tune_rule_severity{rule=\"listen_overflows\"} 0\n",
        "corestream_tune_listener_accept_queue{address=\"0.0.0.0:2024\"} 0\n",
        "corestream_tune_process_open_fds{pid=\"4242\",comm=\"corestream\"} 12\n",
        "corestream_tune_conntrack_max 262144\n",
        "# TYPE corestream_tune_netstat_events_total counter\n",
        "corestream_tune_net_rx_softirqs_per_second{cpu=\"1\"} 0\n",
    ] {
        assert!(body.contains(want), "{want:?} not in\n{body}");
    }
    assert!(get(&addr, "/").starts_with("HTTP/1.1 404"));
    if Path::new("/usr/bin/promtool").exists() {
        let mut p = Command::new("/usr/bin/promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        p.stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("feed promtool");
        let o = p.wait_with_output().expect("promtool output");
        assert!(
            o.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        eprintln!(
            "SKIPPED promtool check: /usr/bin/promtool not installed (Debian package prometheus)"
        );
    }
    drop(child);
}

#[test]
fn textfile_for_node_exporter() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("textfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let root = fixture_root();
    let o = Command::new(BIN)
        .args(["--root", root.to_str().expect("utf8")])
        .args(["watch", "--interval", "10ms", "--count", "2", "--quiet"])
        .arg("--textfile")
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["corestream_tune.prom"], "no temp file left behind");
    let text = std::fs::read_to_string(dir.join("corestream_tune.prom")).expect("read");
    assert!(text.contains("corestream_tune_status 0\n"), "{text}");
    let o = Command::new(BIN)
        .args(["watch", "--count", "1", "--textfile", "/nonexistent-dir"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clients_that_hold_the_exporter_do_not_delay_scrapes() {
    // An idle connection (a port scanner, a balancer's TCP check) and one sending its request
    // a byte at a time: Prometheus's scrapes (10 s timeout by default) are answered meanwhile,
    // and the slow one is cut off.
    let (_child, addr) = start_exporter();
    let _idle = std::net::TcpStream::connect(&addr).expect("connect");
    let mut dribbler = std::net::TcpStream::connect(&addr).expect("connect");
    dribbler
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .expect("send");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeding = {
        let stop = stop.clone();
        let mut d = dribbler.try_clone().expect("clone");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if d.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let resp = get(&addr, "/metrics");
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
    }
    dribbler
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .expect("timeout");
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = dribbler.read_to_end(&mut rest);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = feeding.join();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        t.elapsed()
    );
}
