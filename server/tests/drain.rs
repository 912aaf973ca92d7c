//! Graceful stop (SIGTERM): every response in flight finishes, whatever its size and however
//! slowly it is read; held LL-HLS requests are answered; keep-alive connections that ask
//! again during the drain are answered with `Connection: close`; then the process is gone.

mod common;
use common::*;
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BIG: usize = 50 * 1000 * 1000;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn root_with_big(name: &str) -> PathBuf {
    let root = media_root(name);
    std::fs::write(root.join("big.ts"), pattern(BIG)).unwrap();
    std::fs::write(root.join("index.m3u8"), b"#EXTM3U\n").unwrap();
    root
}

/// A client whose receive buffer is small, so the response cannot sit in socket buffers.
fn slow_client(addr: std::net::SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(8 * 1024).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Read until EOF; the whole byte stream.
fn read_to_end(s: &mut TcpStream, mut got: Vec<u8>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read after {} bytes: {e}", got.len()),
        }
    }
}

fn body_of(stream: &[u8]) -> (&str, &[u8]) {
    let p = stream
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (std::str::from_utf8(&stream[..p]).unwrap(), &stream[p + 4..])
}

/// The process has exited (not only logged that it would) within `limit`.
fn gone(s: &mut Server, limit: Duration) {
    let st = s
        .wait_exit(limit)
        .unwrap_or_else(|| panic!("still running {limit:?} after the drain should have ended"));
    assert!(st.success(), "exit status {st:?}");
    assert!(
        !Path::new(&format!("/proc/{}", s.pid())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", s.pid()))
                .map_or(true, |st| st.contains(") Z")),
        "process still present"
    );
}

#[test]
fn drain_finishes_a_large_response_to_a_slow_reader() {
    let root = root_with_big("drain-big");
    let mut s = Server::start(&root, &["--drain-timeout", "60s", "--admin", "0"]);
    let mut c = slow_client(s.addr);
    c.write_all(get("/big.ts").as_bytes()).unwrap();
    let mut first = vec![0u8; 64 * 1024];
    c.read_exact(&mut first).unwrap();
    s.signal(libc::SIGTERM);
    // Let the worker notice the drain while the response is stuck on a full socket.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let got = read_to_end(&mut c, first);
    let (head, body) = body_of(&got);
    assert!(head.contains(&format!("Content-Length: {BIG}")), "{head}");
    assert_eq!(body.len(), BIG, "response cut at {} bytes", body.len());
    assert!(body == pattern(BIG).as_slice(), "bytes differ");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    gone(&mut s, Duration::from_secs(15));
}

/// The LL-HLS root of `live.rs`: segments 0..=5, one part of segment 6, a hint for the next.
fn ll_root(name: &str) -> PathBuf {
    let r = media_root(name);
    std::fs::create_dir_all(r.join("live")).unwrap();
    publish(
        &r.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 1, 2, false),
    );
    r
}

/// Send a blocking reload and check it is held (no answer yet).
fn parked(s: &Server, query: &str) -> TcpStream {
    let mut c = s.connect();
    c.write_all(get(&format!("/live/index.m3u8?{query}")).as_bytes())
        .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        c.read(&mut b).is_err(),
        "{query}: answered before the drain, not held"
    );
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

#[test]
fn drain_answers_held_requests_and_keep_alive_requests_with_connection_close() {
    let root = ll_root("drain-ll");
    // Target duration 2 s: a blocking reload may be held 6 s; the drain must not wait 30.
    let mut s = Server::start(&root, &["--drain-timeout", "8s"]);
    let mut soon = parked(&s, "_HLS_msn=6&_HLS_part=1");
    let mut never = parked(&s, "_HLS_msn=7");
    let mut idle = s.connect();
    idle.write_all(get("/live/index.m3u8").as_bytes()).unwrap();
    let r = read_response(&mut idle, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "keep-alive before the drain");

    let t = Instant::now();
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // A keep-alive connection that asks again during the drain is answered, and told to go.
    idle.write_all(get("/live/index.m3u8").as_bytes()).unwrap();
    let r = read_response(&mut idle, false).expect("answered during the drain");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut idle), "closed after the last answer");

    // The publisher moves on: the held request gets the new playlist, with Connection: close.
    publish(
        &root.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 2, 2, false),
    );
    let r = read_response(&mut soon, false).expect("held request answered at the drain");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(String::from_utf8_lossy(&r.body).contains("s6.1.ts"));

    // A request whose playlist does not move in time is answered with its timeout status
    // before the drain deadline, not cut when the process exits.
    let r = read_response(&mut never, false).expect("held request answered, not cut");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "took {:?}",
        t.elapsed()
    );
    gone(&mut s, Duration::from_secs(10));
}

#[test]
fn every_thread_ends_with_the_workers() {
    // The demo publisher, the inotify watcher, the admin listener and the signal thread all
    // run here; the process must be gone, not only have said so.
    for round in 0..3 {
        let mut s = Server::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_corestream")).args([
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "0",
                "--access-log",
                "/dev/null",
            ]),
        );
        let (status, _) = s.admin_get("/metrics");
        assert_eq!(status, 200);
        let r = s.get(&get("/master.m3u8"));
        assert_eq!(r.status, 200, "round {round}");
        s.signal(libc::SIGTERM);
        gone(&mut s, Duration::from_secs(10));
    }
}

#[test]
fn sigterm_stops_a_server_whose_stderr_reader_is_gone() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let root = media_root("drain-stderr-gone");
    std::fs::write(root.join("index.m3u8"), b"#EXTM3U\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corestream"))
        .arg("--root")
        .arg(&root)
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corestream");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
    }
    // `corestream 2>&1 | head`: the reader of its stderr exits; every later message fails.
    drop(child.stderr.take());
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "still running 10 s after SIGTERM, or failed: {status:?}"
    );
}
