//! Faults under the server: files deleted, truncated or replaced mid-send, rendition
//! directories and the media root vanishing and coming back, SIGKILL of one of several
//! processes on a port under load, fd exhaustion while requests need files, a tight
//! address-space limit, and file metadata HTTP cannot express. Each asserts what clients
//! see and that everyone else keeps being served.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIG: usize = 32 << 20;

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i % 251) as u8 ^ salt.wrapping_mul((i >> 12) as u8))
        .collect()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a big download and return the connection after the head and some body bytes
/// have arrived (the server is mid-sendfile, blocked on our full receive buffer).
fn start_download(s: &Server, path: &str) -> (TcpStream, Vec<u8>) {
    let mut c = s.connect();
    // Generous: CI runs these beside other load tests on 2 cores. A real hang (a lost
    // writable edge) never ends; the send-stall timeout (30 s) is well beyond this.
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(get(path).as_bytes()).unwrap();
    let mut got = vec![0u8; 64 * 1024];
    let n = c.read(&mut got).unwrap();
    got.truncate(n);
    (c, got)
}

/// Read the rest of the response: until the body is complete (per Content-Length), or
/// EOF/reset cut it short. Returns (bytes, cut short). A read timeout is a hang: panic.
fn finish(c: &mut TcpStream, mut got: Vec<u8>, what: &str) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() - p - 4 >= content_length(&got) {
                return (got, false);
            }
        }
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!(
                "{what}: server hung mid-body: {e} after {} bytes",
                got.len()
            ),
        }
    }
}

fn body_of(raw: &[u8]) -> &[u8] {
    let p = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    &raw[p + 4..]
}

fn content_length(raw: &[u8]) -> usize {
    let head = String::from_utf8_lossy(&raw[..raw.len().min(4096)]).to_ascii_lowercase();
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length")
}

// ------------------------------------------------------ files under the send

/// Deleted mid-send: the open file still holds every byte, so the client gets the whole
/// original body. Replaced by rename mid-send: the client gets the old version whole and
/// the next request the new one with a new ETag. Truncated mid-send: the body is cut and
/// the connection closed, never padded. Meanwhile another client is served throughout.
#[test]
fn files_deleted_replaced_truncated_mid_send() {
    let root = media_root("faults-files");
    let old = pattern(BIG, 1);
    let new = pattern(BIG / 2, 7);
    for name in ["del.ts", "rep.ts", "trunc.ts"] {
        std::fs::write(root.join(name), &old).unwrap();
    }
    std::fs::write(root.join("index.m3u8"), "#EXTM3U\n").unwrap();
    let s = Server::start(&root, &["--admin", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = {
        let (addr, stop) = (s.addr, stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            while !stop.load(Ordering::Relaxed) {
                c.write_all(get("/index.m3u8").as_bytes()).unwrap();
                let resp = read_response(&mut r, false).expect("bystander answered");
                assert_eq!(resp.status, 200);
                n += 1;
            }
            n
        })
    };

    let etag_before = s.get(&get("/rep.ts")).header("etag").unwrap().to_string();
    let (mut del, dgot) = start_download(&s, "/del.ts");
    let (mut rep, rgot) = start_download(&s, "/rep.ts");
    let (mut tr, tgot) = start_download(&s, "/trunc.ts");
    std::fs::remove_file(root.join("del.ts")).unwrap();
    let tmp = root.join("rep.ts.tmp");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, root.join("rep.ts")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("trunc.ts"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();

    let (d, cut) = finish(&mut del, dgot, "deleted");
    assert!(!cut, "deleted file: transfer cut");
    assert_eq!(content_length(&d), BIG);
    assert!(body_of(&d) == old.as_slice(), "deleted file body differs");
    let (r, cut) = finish(&mut rep, rgot, "replaced");
    assert!(!cut, "replaced file: transfer cut");
    assert!(
        body_of(&r) == old.as_slice(),
        "replaced file: old version not intact"
    );
    let (t, cut) = finish(&mut tr, tgot, "truncated");
    assert!(cut, "truncated file: connection not closed");
    let tb = body_of(&t);
    assert_eq!(content_length(&t), BIG);
    assert!(
        tb.len() < BIG,
        "truncated file: the full length was claimed and sent"
    );
    // Up to the new size the body is the file. Beyond it, bytes that sendfile had already
    // queued by page reference may read as zeros (the kernel dropped the pages under the
    // socket): the connection is cut before Content-Length, so every HTTP client and cache
    // discards the response. Packagers must write-then-rename, never truncate in place.
    let keep = tb.len().min(1 << 20);
    assert!(
        tb[..keep] == old[..keep],
        "body differs from the file below the new size"
    );
    let beyond_ok = tb[keep..]
        .iter()
        .zip(&old[keep..])
        .all(|(a, b)| a == b || *a == 0);
    assert!(
        beyond_ok,
        "bytes past the new size are neither the old content nor zeros"
    );
    // After the fault: the deleted file is 404, the replaced one is new with a new ETag,
    // the truncated one is served at its new size.
    assert_eq!(s.get(&get("/del.ts")).status, 404);
    let now = s.get(&get("/rep.ts"));
    assert!(now.body == new, "replaced file serves the new version");
    assert_ne!(now.header("etag"), Some(etag_before.as_str()));
    assert_eq!(s.get(&get("/trunc.ts")).body.len(), 1 << 20);
    drop((del, rep, tr));

    stop.store(true, Ordering::Relaxed);
    let served = bystander.join().expect("bystander saw no error");
    assert!(served > 10, "bystander was starved: {served}");
    wait_until("connections closed", Duration::from_secs(10), || {
        s.metric("corestream_connections_active") == 0.0
    });
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------- directories coming and going

fn poll_status(s: &Server, path: &str) -> u16 {
    s.get(&get(path)).status
}

/// A rendition directory removed (rm -rf) answers 404 with `no-cache` (never 500, never
/// cached as missing), and serves again the moment it is back, also when swapped in by
/// rename. Requests in flight during the swap finish.
#[test]
fn rendition_directory_vanishes_and_returns() {
    let root = media_root("faults-rendition");
    let dir = root.join("live/720p");
    let fill = |d: &Path, salt: u8| {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("index.m3u8"), format!("#EXTM3U\n#v{salt}\n")).unwrap();
        std::fs::write(d.join("seg1.ts"), pattern(BIG / 4, salt)).unwrap();
    };
    fill(&dir, 1);
    let s = Server::start(&root, &[]);
    assert_eq!(poll_status(&s, "/live/720p/index.m3u8"), 200);
    let (mut inflight, got) = start_download(&s, "/live/720p/seg1.ts");

    std::fs::remove_dir_all(&dir).unwrap();
    let gone = s.get(&get("/live/720p/index.m3u8"));
    assert_eq!(gone.status, 404);
    assert_eq!(gone.header("cache-control"), Some("no-cache"));
    assert_eq!(poll_status(&s, "/live/720p/seg1.ts"), 404);
    // The download that had the file open completes from the unlinked inode.
    let (all, cut) = finish(&mut inflight, got, "in flight");
    assert!(!cut);
    assert!(body_of(&all) == pattern(BIG / 4, 1).as_slice());

    fill(&dir, 2);
    let back = s.get(&get("/live/720p/index.m3u8"));
    assert_eq!(back.status, 200);
    assert_eq!(back.body, b"#EXTM3U\n#v2\n");

    // Atomic swap by rename: never a 404 or 500 for a poller, old or new content only.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(HashMap::<u16, usize>::new()));
    let poller = {
        let (addr, stop, seen) = (s.addr, stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            while !stop.load(Ordering::Relaxed) {
                c.write_all(get("/live/720p/index.m3u8").as_bytes())
                    .unwrap();
                let r = read_response(&mut c, false).expect("answer");
                *seen.lock().unwrap().entry(r.status).or_default() += 1;
            }
        })
    };
    for i in 3..23u8 {
        let staged = root.join(format!("live/720p.new{i}"));
        fill(&staged, i);
        let old = root.join(format!("live/720p.old{i}"));
        // rename(2) cannot replace a non-empty directory: two renames, with a short gap
        // in which the rendition is missing (the packager's usual dance).
        std::fs::rename(&dir, &old).unwrap();
        std::fs::rename(&staged, &dir).unwrap();
        std::fs::remove_dir_all(&old).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.get(&200).copied().unwrap_or(0) > 0, "{seen:?}");
    assert!(
        seen.keys().all(|k| *k == 200 || *k == 404),
        "only 200 or 404 while a directory is swapped: {seen:?}"
    );
    assert_eq!(
        s.get(&get("/live/720p/index.m3u8")).body,
        b"#EXTM3U\n#v22\n"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The media root's contents wiped and refilled (the directory itself kept): served
/// again at once.
#[test]
fn media_root_emptied_and_refilled() {
    let root = media_root("faults-root-contents");
    std::fs::create_dir_all(root.join("live")).unwrap();
    std::fs::write(root.join("live/index.m3u8"), "#EXTM3U\n").unwrap();
    let s = Server::start(&root, &[]);
    assert_eq!(poll_status(&s, "/live/index.m3u8"), 200);
    std::fs::remove_dir_all(root.join("live")).unwrap();
    assert_eq!(poll_status(&s, "/live/index.m3u8"), 404);
    std::fs::create_dir_all(root.join("live")).unwrap();
    std::fs::write(root.join("live/index.m3u8"), "#EXTM3U\n#2\n").unwrap();
    assert_eq!(s.get(&get("/live/index.m3u8")).body, b"#EXTM3U\n#2\n");
    let _ = std::fs::remove_dir_all(&root);
}

/// The media root directory itself deleted and recreated at the same path (e.g. a
/// packager that runs `rm -rf $ROOT && mkdir $ROOT`). The server holds the root as an
/// O_PATH fd opened once at start, which keeps pointing at the deleted directory; it must
/// notice and reopen the path, or it serves 404 forever.
#[test]
fn media_root_deleted_and_recreated() {
    let root = media_root("faults-root");
    std::fs::write(root.join("index.m3u8"), "#EXTM3U\n").unwrap();
    let s = Server::start(&root, &[]);
    assert_eq!(poll_status(&s, "/index.m3u8"), 200);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(poll_status(&s, "/index.m3u8"), 404);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.m3u8"), "#EXTM3U\n#new\n").unwrap();
    let t = Instant::now();
    loop {
        let r = s.get(&get("/index.m3u8"));
        if r.status == 200 {
            assert_eq!(r.body, b"#EXTM3U\n#new\n");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a recreated media root is still 404 after {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------------- SIGKILL under load

/// Socket inode of each established connection whose local port is `port`, by peer port
/// (from /proc/net/tcp: the server side of our loopback connections).
fn server_side_inodes(port: u16) -> HashMap<u16, u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut m = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "01" {
            continue;
        }
        let lport = f[1]
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        let rport = f[2]
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        if let (Some(l), Some(r), Ok(inode)) = (lport, rport, f[9].parse::<u64>()) {
            if l == port {
                m.insert(r, inode);
            }
        }
    }
    m
}

fn socket_inodes_of(pid: i32) -> std::collections::HashSet<u64> {
    let mut set = std::collections::HashSet::new();
    if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in d.flatten() {
            if let Ok(l) = std::fs::read_link(e.path()) {
                let l = l.to_string_lossy().into_owned();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(i) = i.parse() {
                        set.insert(i);
                    }
                }
            }
        }
    }
    set
}

/// What one load client saw.
#[derive(Default)]
struct ClientLog {
    first_port: u16,
    ok_after_kill: usize,
    /// Failed requests, with ms since the kill (None: before it).
    failures: Vec<Option<u128>>,
}

/// Two processes share a port; clients hammer both over keep-alive connections; one
/// process is SIGKILLed. Its clients see a reset or EOF (and reconnect to the survivor,
/// possibly after one more reset while the dying process's listener is torn down); the
/// survivor's clients see no error at all.
#[test]
fn sigkill_one_of_two_processes_under_load() {
    let root = media_root("faults-kill");
    std::fs::write(root.join("index.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(root.join("seg.ts"), pattern(200_000, 3)).unwrap();
    let survivor = Server::start(&root, &[]);
    let listen = survivor.addr.to_string();
    let mut victim = Server::start(&root, &["--listen", &listen]);
    assert_eq!(victim.addr, survivor.addr);

    const CLIENTS: usize = 24;
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let logs: Arc<Vec<Mutex<ClientLog>>> =
        Arc::new((0..CLIENTS).map(|_| Mutex::default()).collect());
    let mut hs = Vec::new();
    for i in 0..CLIENTS {
        let (addr, stop, killed_at, logs) =
            (survivor.addr, stop.clone(), killed_at.clone(), logs.clone());
        hs.push(std::thread::spawn(move || {
            let connect = || {
                let c = TcpStream::connect(addr).expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c
            };
            let mut c = connect();
            logs[i].lock().unwrap().first_port = c.local_addr().unwrap().port();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let path = if (n + i).is_multiple_of(3) {
                    "/seg.ts"
                } else {
                    "/index.m3u8"
                };
                let result = c
                    .write_all(get(path).as_bytes())
                    .ok()
                    .and_then(|()| read_response(&mut c, false));
                let since_kill = killed_at.lock().unwrap().map(|t| t.elapsed().as_millis());
                let mut log = logs[i].lock().unwrap();
                match result {
                    Some(r) if r.status == 200 => {
                        if since_kill.is_some() {
                            log.ok_after_kill += 1;
                        }
                    }
                    _ => {
                        log.failures.push(since_kill);
                        drop(log);
                        c = connect();
                    }
                }
            }
        }));
    }
    wait_until("clients connected", Duration::from_secs(5), || {
        logs.iter().all(|l| l.lock().unwrap().first_port != 0)
    });
    std::thread::sleep(Duration::from_millis(300));
    // Who owns each client connection: the process holding the server side's inode.
    let inodes = server_side_inodes(survivor.addr.port());
    let (s_set, v_set) = (
        socket_inodes_of(survivor.pid()),
        socket_inodes_of(victim.pid()),
    );
    let on_victim: Vec<bool> = logs
        .iter()
        .map(|l| {
            let ino = inodes.get(&l.lock().unwrap().first_port).copied();
            let ino = ino.expect("server side of a client connection");
            assert!(s_set.contains(&ino) != v_set.contains(&ino));
            v_set.contains(&ino)
        })
        .collect();
    let victims = on_victim.iter().filter(|v| **v).count();
    assert!(
        victims > 0 && victims < CLIENTS,
        "the kernel put {victims} of {CLIENTS} on the victim; need both sides"
    );
    *killed_at.lock().unwrap() = Some(Instant::now());
    victim.signal(libc::SIGKILL);
    victim
        .wait_exit(Duration::from_secs(5))
        .expect("victim died");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    let mut survivor_errors = Vec::new();
    let mut late = Vec::new();
    for (i, l) in logs.iter().enumerate() {
        let l = l.lock().unwrap();
        if on_victim[i] {
            assert!(
                !l.failures.is_empty(),
                "client {i} of the dead process saw nothing"
            );
            // Every failure is the death itself or the teardown right after it.
            late.extend(
                l.failures
                    .iter()
                    .filter(|f| f.is_none_or(|ms| ms > 1000))
                    .map(|f| (i, *f)),
            );
        } else if !l.failures.is_empty() {
            survivor_errors.push((i, l.failures.clone()));
        }
        assert!(l.ok_after_kill > 5, "client {i} not served after the kill");
    }
    let victim_failures: usize = logs
        .iter()
        .zip(&on_victim)
        .filter(|(_, v)| **v)
        .map(|(l, _)| l.lock().unwrap().failures.len())
        .sum();
    eprintln!(
        "sigkill: {victims} of {CLIENTS} clients on the killed process saw {victim_failures} failed requests; \
         survivor's clients: {survivor_errors:?} errors"
    );
    assert!(
        survivor_errors.is_empty(),
        "clients of the survivor saw errors: {survivor_errors:?}"
    );
    assert!(
        late.is_empty(),
        "failures not explained by the kill: {late:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------- descriptors and memory

/// With every descriptor in use by connections, a request whose file cannot be opened
/// (EMFILE) gets 503 with Retry-After and the connection stays usable; accept pauses
/// rather than spins; when clients leave, everything is served again.
#[test]
fn emfile_on_file_open_answers_503_then_recovers() {
    let root = media_root("faults-emfile");
    std::fs::write(root.join("x.ts"), pattern(1000, 2)).unwrap();
    let s = Server::spawn(
        Command::new("prlimit")
            .arg("--nofile=64")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_corestream"))
            .args(["--root", root.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--admin", "0"]),
    );
    let t0 = Instant::now();
    // One connection known to be accepted (answered) before the flood.
    let mut first = s.connect();
    first.write_all(get("/x.ts").as_bytes()).unwrap();
    assert_eq!(read_response(&mut first, false).unwrap().status, 200);
    // Fill the table: connections beyond the limit wait in the kernel's queue.
    let mut held: Vec<TcpStream> = (0..120).map(|_| s.connect()).collect();
    // No scrape while saturated: the admin plane has one spare fd, which a worker may
    // take the moment it is released.
    std::thread::sleep(Duration::from_millis(700));
    let mut c = first;
    let mut status = 0;
    // Give the pause-and-retry loop a moment to refill any fd freed meanwhile.
    for _ in 0..20 {
        c.write_all(get("/x.ts").as_bytes()).unwrap();
        let r = read_response(&mut c, false).expect("an answer, not a hang");
        status = r.status;
        if status == 503 {
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.header("connection"), None, "503 keeps the connection");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 503, "a file open at EMFILE must answer 503");
    eprintln!("emfile: first 503 after {:?}", t0.elapsed());
    let ticks0 = s.cpu_ticks();
    std::thread::sleep(Duration::from_millis(1000));
    let spent = s.cpu_ticks() - ticks0;
    assert!(spent < 30, "server spun at EMFILE: {spent} ticks in 1 s");
    held.truncate(10);
    // Freed descriptors first go to the connections still queued: 503 until they settle.
    let ask = |c: &mut TcpStream, who: &str| {
        let t = Instant::now();
        let _ = c.write_all(get("/x.ts").as_bytes());
        let r = read_response(c, false);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{who}: answer took {:?}",
            t.elapsed()
        );
        match r {
            Some(r) if r.status == 503 => false,
            Some(r) if r.status == 200 => true,
            other => panic!("{who}: {other:?} at {:?}", t0.elapsed()),
        }
    };
    wait_until("recovery", Duration::from_secs(5), || ask(&mut c, "first"));
    for (i, h) in held.iter_mut().enumerate() {
        wait_until("held connections served", Duration::from_secs(5), || {
            ask(h, &format!("held {i}"))
        });
    }
    assert!(s.metric("corestream_listener_pauses_total") >= 1.0);
    assert!(s.metric("corestream_accept_errors_total{errno=\"EMFILE\"}") >= 1.0);
    assert!(s.metric("corestream_requests_total{code=\"503\"}") >= 1.0);
    let _ = std::fs::remove_dir_all(&root);
}

/// Build the LD_PRELOAD shim in `tests/shim/enfile.c` (needs a C compiler: `apt-get
/// install gcc`).
fn build_enfile_shim(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim/enfile.c");
    let out = dir.join("enfile.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {cc} to build the ENFILE shim (apt-get install gcc): {e}")
        });
    assert!(st.success(), "{cc} failed on {}", src.display());
    out
}

/// ENFILE (the system-wide file table is full) while clients keep coming: an LD_PRELOAD
/// shim makes accept4 and openat2 fail with ENFILE while a flag file exists, which is what
/// the process sees when fs.file-max is reached (a global setting tests never touch).
/// Requests on open connections get 503 + Retry-After and keep their connection; new
/// connections wait in the kernel queue while accept pauses (no spinning, also not in
/// the admin thread); once the storm ends, everyone is served.
#[test]
fn enfile_storm_refuses_new_work_then_recovers() {
    let root = media_root("faults-enfile");
    std::fs::write(root.join("x.ts"), pattern(5000, 6)).unwrap();
    let shim = build_enfile_shim(&root);
    let flag = root.join("storm.flag");
    let s = Server::spawn(
        Command::new(env!("CARGO_BIN_EXE_corestream"))
            .env("LD_PRELOAD", &shim)
            .env("CORESTREAM_FAULT_ENFILE", &flag)
            .args(["--root", root.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .args(["--admin", "127.0.0.1:0"]),
    );
    let mut before: Vec<TcpStream> = (0..8).map(|_| s.connect()).collect();
    for c in before.iter_mut() {
        c.write_all(get("/x.ts").as_bytes()).unwrap();
        assert_eq!(read_response(c, false).unwrap().body, pattern(5000, 6));
    }
    std::fs::write(&flag, b"").unwrap();
    // Open connections: the file cannot be opened, the answer says come back in a second.
    for c in before.iter_mut() {
        c.write_all(get("/x.ts").as_bytes()).unwrap();
        let r = read_response(c, false).expect("an answer during ENFILE, not a hang");
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("connection"), None, "503 keeps the connection");
    }
    // New connections complete the handshake in the kernel but are not accepted.
    let mut queued: Vec<TcpStream> = (0..50).map(|_| s.connect()).collect();
    for c in queued.iter_mut() {
        c.write_all(get("/x.ts").as_bytes()).unwrap();
    }
    // An admin scrape queues as well; its thread must back off, not spin on accept.
    let mut scrape = TcpStream::connect(s.admin.unwrap()).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ticks0 = s.cpu_ticks();
    std::thread::sleep(Duration::from_millis(2000));
    let spent = s.cpu_ticks() - ticks0;
    assert!(
        spent < 40,
        "server spun during ENFILE: {spent} ticks in 2 s"
    );
    queued[0]
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(queued[0].read(&mut b), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a connection was accepted during the storm"
    );
    queued[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::fs::remove_file(&flag).unwrap();
    let t = Instant::now();
    for (i, c) in queued.iter_mut().enumerate() {
        let r = read_response(c, false).unwrap_or_else(|| panic!("queued {i}: no answer"));
        assert_eq!(r.body, pattern(5000, 6), "queued {i}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the queue drained in {:?}",
        t.elapsed()
    );
    for c in before.iter_mut() {
        c.write_all(get("/x.ts").as_bytes()).unwrap();
        assert_eq!(read_response(c, false).unwrap().status, 200);
    }
    let mut m = String::new();
    scrape
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    scrape.read_to_string(&mut m).unwrap();
    assert!(
        m.starts_with("HTTP/1.1 200"),
        "the queued scrape is answered: {m:.40}"
    );
    assert!(s.metric("corestream_accept_errors_total{errno=\"ENFILE\"}") >= 1.0);
    assert!(s.metric("corestream_listener_pauses_total") >= 1.0);
    assert!(s.metric("corestream_requests_total{code=\"503\"}") >= 8.0);
    let _ = std::fs::remove_dir_all(&root);
}

/// 3000 connections against `--max-connections 2000`, a third of them asking for `/x.ts`:
/// waits until the cap has stopped accepting and checks it held. Returns the connections.
fn storm_past_the_cap(s: &Server) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for _ in 0..3000 {
        match TcpStream::connect(s.addr) {
            Ok(c) => conns.push(c),
            Err(_) => break,
        }
    }
    for c in conns.iter_mut().step_by(3) {
        let _ = c.write_all(get("/x.ts").as_bytes());
    }
    wait_until("the cap to bite", Duration::from_secs(10), || {
        s.metric("corestream_max_connections_pauses_total") > 0.0
    });
    assert!(s.metric("corestream_connections_active") <= 2000.0);
    conns
}

fn vm_size_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Under a tight RLIMIT_AS (address space barely above what the idle server maps) and a
/// connection cap, a storm of connections is refused by not accepting (the kernel queue
/// holds them), not by the process dying, and everyone is served once it eases.
#[test]
fn tight_address_space_degrades_by_refusing_not_crashing() {
    let root = media_root("faults-as");
    std::fs::write(root.join("x.ts"), pattern(1000, 4)).unwrap();
    // Measure the idle footprint of an unconstrained server first.
    let probe = Server::start(&root, &[]);
    let idle = vm_size_kib(probe.pid());
    drop(probe);
    let limit_kib = idle + 48 * 1024;
    let mut s = Server::spawn(
        Command::new("prlimit")
            .arg(format!("--as={}", limit_kib * 1024))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_corestream"))
            .args(["--root", root.to_str().unwrap()])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--admin",
                "0",
                "--max-connections",
                "2000",
            ]),
    );
    let conns = storm_past_the_cap(&s);
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "server died under RLIMIT_AS"
    );
    drop(conns);
    wait_until("connections drained", Duration::from_secs(15), || {
        s.metric("corestream_connections_active") == 0.0
    });
    for _ in 0..10 {
        assert_eq!(s.get(&get("/x.ts")).body, pattern(1000, 4));
    }
    assert!(
        vm_size_kib(s.pid()) <= limit_kib,
        "VmSize is within the limit"
    );
    assert!(s.wait_exit(Duration::from_millis(10)).is_none());
    let _ = std::fs::remove_dir_all(&root);
}

/// A memory cgroup this test may create a child in: the test process's own cgroup, v1
/// (`memory.limit_in_bytes`) or v2 with the memory controller delegated to children.
fn memory_cgroup_parent() -> Result<(PathBuf, bool), String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctrl.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(rel);
            if dir.join("memory.limit_in_bytes").exists() {
                return Ok((dir, false));
            }
        }
        if ctrl.is_empty() {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = Path::new(base).join(rel);
                let sub =
                    std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
                if sub.split_whitespace().any(|c| c == "memory") {
                    return Ok((dir, true));
                }
            }
        }
    }
    Err("no memory cgroup controller this process can create children in".into())
}

/// A child memory cgroup with a hard limit, removed on drop (after its processes exit).
struct MemCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemCgroup {
    fn create(parent: &Path, v2: bool, limit: u64) -> Result<MemCgroup, String> {
        let dir = parent.join(format!("corestream-test-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = MemCgroup { dir, v2 };
        let knob = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(cg.dir.join(knob), limit.to_string())
            .map_err(|e| format!("write {knob}: {e}"))?;
        if !v2 {
            // Without swap accounting the limit is on RAM; with it, RAM + swap equal the
            // same limit so the test never swaps instead of reclaiming.
            let _ = std::fs::write(
                cg.dir.join("memory.memsw.limit_in_bytes"),
                limit.to_string(),
            );
        }
        Ok(cg)
    }
    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
    /// How many times the limit was hit, the peak usage in bytes, and how many processes
    /// the OOM killer took.
    fn pressure(&self) -> (u64, u64, u64) {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let peak = read(if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        })
        .trim()
        .parse()
        .unwrap_or(0);
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        if self.v2 {
            let ev = read("memory.events");
            (field(&ev, "max "), peak, field(&ev, "oom_kill "))
        } else {
            let hits = read("memory.failcnt").trim().parse().unwrap_or(0);
            (hits, peak, field(&read("memory.oom_control"), "oom_kill "))
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove test cgroup {}", self.dir.display());
    }
}

/// Under a container memory limit (cgroup memory.max / memory.limit_in_bytes) smaller than
/// the media it serves: the page cache of a file larger than the limit is reclaimed rather
/// than fatal, a storm of connections beyond --max-connections waits in the kernel queue,
/// the OOM killer takes nothing, every download is byte-exact, and everyone is served once
/// it eases. Skipped (with the reason) where no memory cgroup can be created.
#[test]
fn memory_cgroup_limit_degrades_by_refusing_not_crashing() {
    let (parent, v2) = match memory_cgroup_parent() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED memory cgroup fault: {why}");
            return;
        }
    };
    let root = media_root("faults-cgroup");
    const LIMIT: u64 = 40 << 20;
    let big = pattern(48 << 20, 7);
    std::fs::write(root.join("big.ts"), &big).unwrap();
    std::fs::write(root.join("x.ts"), pattern(1000, 8)).unwrap();
    // Drop the file from the page cache (it was charged to this test's cgroup when
    // written) so the server's reads bring it back charged to the limited one.
    let f = std::fs::File::open(root.join("big.ts")).unwrap();
    f.sync_all().unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: advisory call on a descriptor we own; no memory is passed.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    drop(f);
    let cg = match MemCgroup::create(&parent, v2, LIMIT) {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!("SKIPPED memory cgroup fault: {why}");
            let _ = std::fs::remove_dir_all(&root);
            return;
        }
    };
    // Join the cgroup before exec, so every allocation from the first is charged.
    let mut s = Server::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(cg.procs())
            .arg(env!("CARGO_BIN_EXE_corestream"))
            .args(["--root", root.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--admin", "0"])
            .args(["--max-connections", "2000"]),
    );
    let procs = std::fs::read_to_string(cg.procs()).unwrap_or_default();
    assert!(
        procs.lines().any(|l| l.trim() == s.pid().to_string()),
        "server is in the test cgroup"
    );
    // Eight viewers download a file larger than the whole limit, while 3000 more connect.
    let downloads: Vec<_> = (0..8)
        .map(|_| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                c.write_all(get("/big.ts").as_bytes()).unwrap();
                read_response(&mut c, false).map(|r| (r.status, r.body))
            })
        })
        .collect();
    let conns = storm_past_the_cap(&s);
    for d in downloads {
        let (status, body) = d.join().unwrap().expect("the download completes");
        assert_eq!(status, 200);
        assert!(body == big, "download is byte-exact");
    }
    let (hits, peak, oom_kills) = cg.pressure();
    eprintln!(
        "memory cgroup: limit {LIMIT} B, peak {peak} B, limit hit {hits} times, {oom_kills} OOM kills"
    );
    // The kernel reclaims before it fails a charge, so the count of failures can stay 0
    // while usage sits at the limit.
    assert!(
        hits > 0 || peak >= LIMIT - LIMIT / 20,
        "the test must actually reach the limit (peak {peak} of {LIMIT})"
    );
    assert_eq!(oom_kills, 0, "nothing was OOM-killed");
    assert!(s.child.try_wait().unwrap().is_none(), "server alive");
    drop(conns);
    wait_until("connections drained", Duration::from_secs(15), || {
        s.metric("corestream_connections_active") == 0.0
    });
    for _ in 0..10 {
        assert_eq!(s.get(&get("/x.ts")).body, pattern(1000, 8));
    }
    assert!(s.wait_exit(Duration::from_millis(10)).is_none());
    drop(s);
    drop(cg);
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------------ metadata HTTP cannot carry

/// A file whose mtime lies past year 9999 (tmpfs and XFS allow it; HTTP-dates end at
/// 9999) is served instead of panicking the worker, with Last-Modified no later than Date
/// (RFC 9110 8.8.2.1).
#[test]
fn mtime_beyond_year_9999_is_clamped_not_a_panic() {
    let shm = Path::new("/dev/shm");
    let root: PathBuf = shm.join(format!("corestream-y10k-{}", std::process::id()));
    if std::fs::create_dir_all(&root).is_err() {
        eprintln!("skipped: /dev/shm is not writable");
        return;
    }
    let f = root.join("future.ts");
    std::fs::write(&f, b"from the future").unwrap();
    let ok = Command::new("touch")
        .args(["-d", "@300000000000"])
        .arg(&f)
        .status()
        .is_ok_and(|s| s.success());
    let mtime = std::fs::metadata(&f)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    if !ok || mtime < 253_402_300_800 {
        eprintln!("skipped: this filesystem cannot hold a year-10000 mtime");
        let _ = std::fs::remove_dir_all(&root);
        return;
    }
    std::fs::write(root.join("now.ts"), b"present").unwrap();
    let s = Server::start(&root, &["--workers", "1"]);
    let r = s.get(&get("/future.ts"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"from the future");
    assert_eq!(
        r.header("last-modified"),
        r.header("date"),
        "a modification time in the future is replaced by the Date"
    );
    // The only worker is still alive.
    assert_eq!(s.get(&get("/now.ts")).body, b"present");
    let _ = std::fs::remove_dir_all(&root);
}
