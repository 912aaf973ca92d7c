//! The server under pressure: timeouts, fd exhaustion, connection caps, graceful drain,
//! several processes on one port, metrics and the access log.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn root(name: &str) -> PathBuf {
    let r = media_root(name);
    std::fs::write(r.join("index.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(r.join("big.ts"), vec![1u8; 64 << 20]).unwrap();
    r
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Seconds until the server closes `s` (EOF or reset), reading and discarding meanwhile.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while t.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(t.elapsed()),
            Err(_) => {}
        }
    }
    None
}

#[test]
fn slowloris_idle_and_stalled_clients_are_closed() {
    let s = Server::start(
        &root("timeouts"),
        &[
            "--header-timeout",
            "1s",
            "--keepalive-timeout",
            "2s",
            "--send-timeout",
            "1s",
            "--admin",
            "0",
        ],
    );
    // Slowloris: a request head that trickles in and never completes.
    let mut slow = s.connect();
    slow.write_all(b"GET /index.m3u8 HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    // Idle keep-alive after one request.
    let mut idle = s.connect();
    idle.write_all(get("/index.m3u8").as_bytes()).unwrap();
    read_response(&mut idle, false).unwrap();
    let idle_since = Instant::now();
    // Never-reading viewer of a 64 MB file: fills the socket buffers, then stalls.
    let mut stalled = s.connect();
    stalled.write_all(get("/big.ts").as_bytes()).unwrap();

    let t_slow = time_to_close(&mut slow, Duration::from_secs(6)).expect("slowloris closed");
    assert!(
        t_slow < Duration::from_millis(2500),
        "header timeout took {t_slow:?}"
    );
    time_to_close(&mut idle, Duration::from_secs(6)).expect("idle closed");
    let t_idle = idle_since.elapsed();
    assert!(
        t_idle >= Duration::from_millis(1900) && t_idle < Duration::from_millis(3500),
        "keep-alive timeout of 2 s closed after {t_idle:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.metric("corestream_timeouts_total{kind=\"header\"}"), 1.0);
    assert_eq!(
        s.metric("corestream_timeouts_total{kind=\"keepalive\"}"),
        1.0
    );
    assert_eq!(
        s.metric("corestream_timeouts_total{kind=\"send_stall\"}"),
        1.0
    );
    assert_eq!(s.metric("corestream_connections_active"), 0.0);
    // The stalled one was cut: reading now ends well short of 64 MB.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = [0u8; 65536];
    while let Ok(n) = stalled.read(&mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(
        got < 64 << 20,
        "stalled client got everything ({got} bytes)"
    );
    // Progress keeps a slow-but-moving reader alive past the send timeout.
    let mut mover = s.connect();
    mover.write_all(get("/big.ts").as_bytes()).unwrap();
    let t = Instant::now();
    let mut total = 0usize;
    while t.elapsed() < Duration::from_secs(3) {
        let n = mover.read(&mut buf).unwrap();
        assert!(n > 0, "slow reader was cut although it made progress");
        total += n;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(total > 0);
}

#[test]
fn fd_exhaustion_pauses_accept_without_spinning_then_recovers() {
    let r = root("emfile");
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_corestream"))
        .arg("--root")
        .arg(&r)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--admin",
            "0",
            "--keepalive-timeout",
            "60s",
        ]);
    let s = Server::spawn(&mut cmd);
    // 300 clients hold keep-alive connections after one request: far more than 64 fds.
    let mut clients = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(s.addr).expect("connect (the kernel queue accepts)");
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let _ = c.write_all(get("/index.m3u8").as_bytes());
        clients.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let cpu_before = s.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let cpu_used = s.cpu_ticks() - cpu_before;
    // Spinning on a readable listener would burn ~300 ticks (100 Hz) in 3 s.
    assert!(
        cpu_used < 30,
        "server used {cpu_used} ticks of CPU in 3 s while out of fds"
    );
    let pauses = s.metric("corestream_listener_pauses_total");
    assert!(pauses >= 1.0, "no listener pause counted");
    assert!(s.metric("corestream_accept_errors_total{errno=\"EMFILE\"}") >= 1.0);
    // Clients go away; the queued ones get served and new ones work normally.
    drop(clients);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let r = s.get(&get("/index.m3u8"));
        assert_eq!(r.status, 200);
    }
}

#[test]
fn max_connections_caps_and_resumes() {
    let s = Server::start(
        &root("maxconn"),
        &["--workers", "1", "--max-connections", "10", "--admin", "0"],
    );
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut c = s.connect();
        c.write_all(get("/index.m3u8").as_bytes()).unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.metric("corestream_connections_active"), 10.0);
    assert_eq!(s.metric("corestream_max_connections"), 10.0);
    assert!(s.metric("corestream_max_connections_pauses_total") >= 1.0);
    // Everyone is answered as others leave: no connection is lost in the queue.
    let mut answered = 0;
    for mut c in held {
        if read_response(&mut c, false).map(|r| r.status) == Some(200) {
            answered += 1;
        }
        drop(c);
    }
    assert_eq!(answered, 30);
}

#[test]
fn sigterm_finishes_in_flight_response_and_exits_zero() {
    let mut s = Server::start(&root("drain"), &["--admin", "0", "--drain-timeout", "20s"]);
    let mut idle = s.connect();
    idle.write_all(get("/index.m3u8").as_bytes()).unwrap();
    read_response(&mut idle, false).unwrap();
    let mut busy = s.connect();
    busy.write_all(get("/big.ts").as_bytes()).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let first = busy.read(&mut buf).unwrap();
    assert!(first > 0);
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.admin_get("/healthz").0, 503, "healthz reports draining");
    // The idle keep-alive connection is closed...
    assert!(time_to_close(&mut idle, Duration::from_secs(3)).is_some());
    // ...new connections are refused (the listener is closed)...
    assert!(TcpStream::connect(s.addr).is_err());
    // ...and the in-flight 64 MB response completes, read slowly.
    let mut got = Vec::from(&buf[..first]);
    loop {
        let n = busy.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let p = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&got[..p]).to_string();
    assert!(head.contains("Content-Length: 67108864"), "{head}");
    assert_eq!(got.len() - p - 4, 64 << 20, "in-flight response was cut");
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("exits after draining");
    assert!(st.success(), "exit status {st:?}");
}

#[test]
fn second_signal_exits_at_once() {
    let mut s = Server::start(&root("drain2"), &["--drain-timeout", "60s"]);
    let mut busy = s.connect();
    busy.write_all(get("/big.ts").as_bytes()).unwrap();
    let mut buf = [0u8; 1024];
    busy.read_exact(&mut buf).unwrap();
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        s.wait_exit(Duration::from_millis(300)).is_none(),
        "first signal drains, not exits"
    );
    s.signal(libc::SIGINT);
    assert!(
        s.wait_exit(Duration::from_secs(2)).is_some(),
        "second signal exits at once"
    );
}

#[test]
fn metrics_exposition() {
    let root_dir = root("metrics");
    let s = Server::start(&root_dir, &["--admin", "0"]);
    for _ in 0..3 {
        s.get(&get("/index.m3u8"));
    }
    std::fs::write(root_dir.join("seg.ts"), vec![0u8; 24]).unwrap();
    s.get(&get("/seg.ts"));
    s.get(&get("/missing.ts"));
    let (code, body) = s.admin_get("/metrics");
    assert_eq!(code, 200);
    for needle in [
        "# HELP corestream_connections_active ",
        "# TYPE corestream_connections_active gauge",
        "# TYPE corestream_requests_total counter",
        "corestream_requests_total{code=\"200\"} 4",
        "corestream_requests_total{code=\"404\"} 1",
        "corestream_worker_connections_active{worker=\"1\"}",
        "corestream_connections_closed_total{reason=\"peer\"}",
        "corestream_accept_errors_total{errno=\"EMFILE\"} 0",
        "corestream_nofile_limit{kind=\"soft\"}",
        "corestream_open_fds ",
        "corestream_sendfile_bytes_total 24",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }
    assert_eq!(s.admin_get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(s.admin_get("/nope").0, 404);
    // The admin plane is not on the viewers' port.
    assert_eq!(s.get(&get("/metrics")).status, 404);
}

#[test]
fn access_log_combined_format_and_reopen_on_sighup() {
    let r = root("accesslog");
    let log = r.with_extension("access.log");
    let _ = std::fs::remove_file(&log);
    let s = Server::start(
        &r,
        &["--access-log", log.to_str().unwrap(), "--workers", "1"],
    );
    s.get("GET /index.m3u8?x=\"1\" HTTP/1.1\r\nHost: t\r\nUser-Agent: hls.js/1.5\r\nReferer: https://p.example/\r\n\r\n");
    std::thread::sleep(Duration::from_millis(1500));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().next().expect("a log line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /index.m3u8?x=\\x221\\x22 HTTP/1.1\" 200 8 \"https://p.example/\" \"hls.js/1.5\""),
        "{line}"
    );
    // logrotate: rename, then SIGHUP; new lines go to a new file at the old path.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    s.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    s.get(&get("/missing.ts"));
    std::thread::sleep(Duration::from_millis(1500));
    let fresh = std::fs::read_to_string(&log).expect("reopened log file");
    assert!(
        fresh.contains("\"GET /missing.ts HTTP/1.1\" 404 "),
        "{fresh}"
    );
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
}

/// 120 different 1 MB playlists, each asked for once on one connection (a crawler walking a
/// VOD catalogue): the playlist cache stays within --playlist-cache-bytes, evicting the
/// least recently used, and every answer is still byte-exact.
#[test]
fn playlist_cache_is_bounded_in_bytes() {
    let dir = root("playlists");
    let body = |i: usize| {
        let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{i}\n");
        while t.len() < 1_000_000 {
            t.push_str(&format!("#EXTINF:2.0,\nsegment-{i}-{}.ts\n", t.len()));
        }
        t.into_bytes()
    };
    for i in 0..120 {
        std::fs::write(dir.join(format!("p{i}.m3u8")), body(i)).unwrap();
    }
    let s = Server::start(
        &dir,
        &[
            "--admin",
            "0",
            "--workers",
            "1",
            "--playlist-cache-bytes",
            "16MiB",
        ],
    );
    let mut c = s.connect();
    c.write_all(get("/index.m3u8").as_bytes()).unwrap();
    read_response(&mut c, false).unwrap();
    let before = s.rss_kib();
    for i in 0..120 {
        c.write_all(get(&format!("/p{i}.m3u8")).as_bytes()).unwrap();
        let r = read_response(&mut c, false).expect("answer");
        assert_eq!(r.status, 200);
        assert!(r.body == body(i), "p{i}.m3u8 differs");
    }
    let grown_mib = s.rss_kib().saturating_sub(before) / 1024;
    let held = s.metric("corestream_playlist_cache_bytes");
    let evicted = s.metric("corestream_playlist_cache_evictions_total");
    assert!(held <= (16 << 20) as f64, "cache holds {held} bytes");
    assert!(evicted >= 100.0, "only {evicted} evictions");
    // 16 MiB of cache plus buffers and allocator slack; without the bound it is ~120 MiB.
    assert!(grown_mib < 48, "RSS grew by {grown_mib} MiB");
    // Still answered from memory: the most recent one is a hit and unchanged.
    c.write_all(get("/p119.m3u8").as_bytes()).unwrap();
    assert!(read_response(&mut c, false).unwrap().body == body(119));
}
