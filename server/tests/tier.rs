//! The edge tier (issue 15): corestream pulling from an origin. A test origin on loopback
//! counts every request it gets and answers as each test scripts it (delays, stalls,
//! failures mid-body, chunked or sized bodies, validators); corestream and nginx serve as
//! real origins too.

mod common;

use common::{media_root, read_response, Server};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the test origin answers a path.
#[derive(Clone)]
struct Script {
    status: u16,
    body: Vec<u8>,
    /// Wait before the head.
    delay: Duration,
    chunked: bool,
    /// Send this many body bytes, then pause `pause`, then the rest.
    split: Option<(usize, Duration)>,
    /// Close after this many body bytes (a failure mid-body).
    cut: Option<usize>,
    fields: Vec<(String, String)>,
    /// Answer 304 to If-None-Match with this tag.
    etag: Option<String>,
    /// The 304 carries no fields of its own (`fields` go only with the 200).
    bare_304: bool,
}

impl Script {
    fn ok(body: &[u8]) -> Script {
        Script {
            status: 200,
            body: body.to_vec(),
            delay: Duration::ZERO,
            chunked: false,
            split: None,
            cut: None,
            fields: Vec::new(),
            etag: None,
            bare_304: false,
        }
    }
}

/// What the origin saw: one (path, If-None-Match) per request.
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Origin {
    addr: SocketAddr,
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    log: Log,
    /// Set while a split response is paused (the test checks viewers meanwhile).
    paused: Arc<Mutex<bool>>,
    /// Most connections it had open at once.
    peak: Arc<AtomicUsize>,
}

impl Origin {
    fn start() -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let scripts: Arc<Mutex<HashMap<String, Script>>> = Arc::default();
        let log: Log = Arc::default();
        let paused: Arc<Mutex<bool>> = Arc::default();
        let peak: Arc<AtomicUsize> = Arc::default();
        let open: Arc<AtomicUsize> = Arc::default();
        let (s2, l2, p2, pk) = (scripts.clone(), log.clone(), paused.clone(), peak.clone());
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (s3, l3, p3) = (s2.clone(), l2.clone(), p2.clone());
                pk.fetch_max(open.fetch_add(1, SeqCst) + 1, SeqCst);
                let open = open.clone();
                thread::spawn(move || {
                    serve(c, &s3, &l3, &p3);
                    open.fetch_sub(1, SeqCst);
                });
            }
        });
        Origin {
            addr,
            scripts,
            log,
            paused,
            peak,
        }
    }

    fn set(&self, path: &str, s: Script) {
        self.scripts.lock().unwrap().insert(path.to_string(), s);
    }

    fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve(c: TcpStream, scripts: &Mutex<HashMap<String, Script>>, log: &Log, paused: &Mutex<bool>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut inm = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.strip_prefix("If-None-Match: ") {
                inm = Some(v.trim().to_string());
            }
        }
        log.lock().unwrap().push((path.clone(), inm.clone()));
        let script = scripts.lock().unwrap().get(&path).cloned();
        let Some(s) = script else {
            let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnone");
            continue;
        };
        thread::sleep(s.delay);
        if let (Some(tag), Some(got)) = (&s.etag, &inm) {
            if tag == got {
                let mut head = "HTTP/1.1 304 Not Modified\r\n".to_string();
                for (k, v) in s.fields.iter().filter(|_| !s.bare_304) {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = w.write_all(head.as_bytes());
                continue;
            }
        }
        let mut head = format!("HTTP/1.1 {} X\r\n", s.status);
        if s.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n", s.body.len()));
        }
        if let Some(t) = &s.etag {
            head.push_str(&format!("ETag: {t}\r\n"));
        }
        for (k, v) in &s.fields {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let send = |w: &mut TcpStream, d: &[u8]| -> bool {
            if d.is_empty() {
                return true;
            }
            if s.chunked {
                w.write_all(format!("{:x}\r\n", d.len()).as_bytes()).is_ok()
                    && w.write_all(d).is_ok()
                    && w.write_all(b"\r\n").is_ok()
            } else {
                w.write_all(d).is_ok()
            }
        };
        let body = &s.body;
        if let Some(n) = s.cut {
            let _ = send(&mut w, &body[..n]);
            let _ = w.flush();
            return; // the connection drops mid-body
        }
        let (first, rest) = match s.split {
            Some((n, pause)) => {
                if !send(&mut w, &body[..n]) {
                    return;
                }
                *paused.lock().unwrap() = true;
                thread::sleep(pause);
                *paused.lock().unwrap() = false;
                (&body[..0], &body[n..])
            }
            None => (&body[..], &body[..0]),
        };
        if !send(&mut w, first) || !send(&mut w, rest) {
            return;
        }
        if s.chunked && w.write_all(b"0\r\n\r\n").is_err() {
            return;
        }
    }
}

fn edge(origin: &str, cache: &Path, extra: &[&str]) -> Server {
    Server::spawn(&mut edge_command(origin, cache, extra))
}

/// The command `edge` runs: 2 workers, an admin port, pulling from `origin` into `cache`.
fn edge_command(origin: &str, cache: &Path, extra: &[&str]) -> Command {
    let mut args: Vec<String> = vec![
        "--origin".into(),
        origin.into(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        "2".into(),
        "--admin".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut c = Command::new(env!("CARGO_BIN_EXE_corestream"));
    c.args(&args);
    c
}

/// `n` viewers ask for `path` at once, each on its own connection: their responses.
fn at_once(addr: SocketAddr, n: usize, path: &str) -> Vec<common::Response> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: e\r\n\r\n");
    let viewers: Vec<_> = (0..n)
        .map(|_| {
            let req = req.clone();
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(req.as_bytes()).unwrap();
                read_response(&mut c, false).unwrap()
            })
        })
        .collect();
    viewers.into_iter().map(|v| v.join().unwrap()).collect()
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn a_thousand_viewers_of_a_new_segment_make_one_upstream_request() {
    let o = Origin::start();
    let seg = body(200_000, 7);
    let mut s = Script::ok(&seg);
    s.delay = Duration::from_millis(300);
    o.set("/live/new.ts", s);
    let cache = media_root("tier-herd");
    let e = edge(&o.url(), &cache, &[]);
    // 1000 connections ask at once (the requests are all out before the origin answers).
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let c = e.connect();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c
        })
        .collect();
    for c in &mut conns {
        c.write_all(b"GET /live/new.ts HTTP/1.1\r\nHost: e\r\n\r\n")
            .unwrap();
    }
    let mut statuses = HashMap::new();
    for c in &mut conns {
        let r = read_response(c, false).expect("response");
        assert_eq!(r.body, seg, "byte-exact");
        *statuses
            .entry(r.header("cache-status").unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        o.count("/live/new.ts"),
        1,
        "one upstream request: {statuses:?}"
    );
    // Afterwards: hits, still one upstream request.
    let r = e.get("GET /live/new.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.header("cache-status"), Some("corestream; hit"));
    assert_eq!(r.header("via"), Some("1.1 corestream"));
    assert!(r.header("age").is_some());
    assert_eq!(o.count("/live/new.ts"), 1);
    // RFC 9211: the viewers that joined the forward another one started say so.
    let collapsed = statuses
        .get("corestream; fwd=miss; collapsed")
        .copied()
        .unwrap_or(0);
    assert!(collapsed >= 900, "{statuses:?}");
    let (_, m) = e.admin_get("/metrics");
    assert!(
        m.contains("corestream_tier_requests_total{result=\"miss\"} 1\n"),
        "{m}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn viewers_get_bytes_while_the_origin_is_still_sending() {
    let o = Origin::start();
    for (path, chunked) in [("/a/sized.m4s", false), ("/a/chunked.m4s", true)] {
        let mut s = Script::ok(&body(100_000, 3));
        s.chunked = chunked;
        s.split = Some((20_000, Duration::from_millis(1500)));
        o.set(path, s);
    }
    let cache = media_root("tier-rww");
    let e = edge(&o.url(), &cache, &[]);
    for (path, chunked) in [("/a/sized.m4s", false), ("/a/chunked.m4s", true)] {
        let mut viewers: Vec<TcpStream> = (0..3).map(|_| e.connect()).collect();
        let asked = Instant::now();
        for v in &mut viewers {
            write!(v, "GET {path} HTTP/1.1\r\nHost: e\r\n\r\n").unwrap();
        }
        for v in &mut viewers {
            // Head and the first 20,000 bytes arrive while the origin pauses.
            let mut got = Vec::new();
            let mut b = [0u8; 65536];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() < 20_000 {
                let n = v.read(&mut b).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            assert!(
                *o.paused.lock().unwrap(),
                "read while the origin was still sending"
            );
            let head = String::from_utf8_lossy(
                &got[..got.windows(4).position(|w| w == b"\r\n\r\n").unwrap()],
            )
            .to_string();
            if chunked {
                assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
            } else {
                assert!(head.contains("Content-Length: 100000"), "{head}");
            }
            assert!(
                head.contains("Cache-Status: corestream; fwd=miss"),
                "{head}"
            );
        }
        eprintln!(
            "{path}: first 20,000 bytes at every viewer {:?} after asking",
            asked.elapsed()
        );
        assert_eq!(o.count(path), 1);
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_failure_mid_body_closes_every_viewer_and_the_next_request_fetches_again() {
    let o = Origin::start();
    let full = body(100_000, 9);
    let mut s = Script::ok(&full);
    s.cut = Some(30_000);
    s.delay = Duration::from_millis(200);
    o.set("/x/seg.ts", s);
    let cache = media_root("tier-cut");
    let e = edge(&o.url(), &cache, &[]);
    let mut viewers: Vec<TcpStream> = (0..5).map(|_| e.connect()).collect();
    for v in &mut viewers {
        v.write_all(b"GET /x/seg.ts HTTP/1.1\r\nHost: e\r\n\r\n")
            .unwrap();
    }
    for v in &mut viewers {
        let mut all = Vec::new();
        let _ = v.read_to_end(&mut all);
        let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            all.len() - at < full.len(),
            "a truncated object is never complete"
        );
    }
    assert!(common::closed(&mut viewers[0]));
    let failed = o.count("/x/seg.ts");
    eprintln!("upstream requests while the origin kept failing: {failed}");
    // The origin recovers: the next request fetches again and gets it whole.
    o.set("/x/seg.ts", Script::ok(&full));
    let r = e.get("GET /x/seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full);
    assert_eq!(
        o.count("/x/seg.ts"),
        failed + 1,
        "nothing of the failed fetch was kept"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn stale_copies_are_revalidated_and_a_304_refreshes_them() {
    let o = Origin::start();
    let mut s = Script::ok(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
    s.etag = Some("\"v1\"".into());
    s.fields = vec![("Cache-Control".into(), "max-age=1".into())];
    o.set("/l/p.m3u8", s);
    let cache = media_root("tier-304");
    let e = edge(&o.url(), &cache, &[]);
    let r = e.get("GET /l/p.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = e.get("GET /l/p.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.header("cache-status"), Some("corestream; hit"));
    assert_eq!(o.count("/l/p.m3u8"), 1);
    thread::sleep(Duration::from_millis(1200));
    let r = e.get("GET /l/p.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
    let log = o.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[1].1.as_deref(),
        Some("\"v1\""),
        "revalidated with If-None-Match"
    );
    // Fresh again after the 304.
    let r = e.get("GET /l/p.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.header("cache-status"), Some("corestream; hit"));
    assert_eq!(o.count("/l/p.m3u8"), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn the_cache_stays_within_its_bytes() {
    let o = Origin::start();
    for i in 0..4 {
        o.set(&format!("/s/{i}.ts"), Script::ok(&body(100_000, i)));
    }
    let cache = media_root("tier-evict");
    let e = edge(&o.url(), &cache, &["--cache-max-bytes", "250000"]);
    for i in 0..4u8 {
        let r = e.get(&format!("GET /s/{i}.ts HTTP/1.1\r\nHost: e\r\n\r\n"));
        assert_eq!(r.body, body(100_000, i));
    }
    assert!(e.metric("corestream_tier_cache_bytes") <= 250_000.0);
    assert!(e.metric("corestream_tier_cache_evictions_total") >= 2.0);
    // The oldest was evicted: asked again, it is fetched again.
    let r = e.get("GET /s/0.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.body, body(100_000, 0));
    assert_eq!(o.count("/s/0.ts"), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn unreachable_slow_and_failing_origins_and_remembered_404s() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cache = media_root("tier-errors");
    let e = edge(
        &format!("http://{dead}"),
        &cache,
        &["--origin-timeout", "300ms"],
    );
    let r = e.get("GET /a.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("origin"));
    drop(e);

    let o = Origin::start();
    let mut slow = Script::ok(b"late");
    slow.delay = Duration::from_millis(1500);
    o.set("/slow.ts", slow);
    let mut broken = Script::ok(b"oops");
    broken.status = 500;
    o.set("/broken.ts", broken);
    let e = edge(&o.url(), &cache, &["--origin-timeout", "300ms"]);
    let r = e.get("GET /slow.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 504);
    let r = e.get("GET /broken.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 502);
    // A missing segment asked for by a storm of viewers reaches the origin once a second.
    for _ in 0..30 {
        let r = e.get("GET /missing.ts HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(r.status, 404);
    }
    assert_eq!(o.count("/missing.ts"), 1);
    drop(e);

    // Two origins: a 5xx from the first in a path's order moves to the next.
    let good = Origin::start();
    good.set("/broken.ts", Script::ok(b"fine"));
    let both = format!("{},{}", o.url(), good.url());
    let e = edge(&both, &cache, &[]);
    let r = e.get("GET /broken.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"fine"[..]));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_missing_name_is_remembered_no_longer_than_the_playlist_says_it_could_appear() {
    let o = Origin::start();
    // Live LL-HLS: parts every 0.5 s, segments every 2 s.
    o.set(
        "/ll/media.m3u8",
        Script::ok(common::ll_playlist(5, 10, 2, 2, false).as_bytes()),
    );
    o.set(
        "/vod/media.m3u8",
        Script::ok(common::ll_playlist(1, 3, 0, 2, true).as_bytes()),
    );
    let cache = media_root("tier-negative");
    let e = edge(&o.url(), &cache, &["--negative-ttl", "10s"]);
    let get = |target: &str| e.get(&format!("GET {target} HTTP/1.1\r\nHost: e\r\n\r\n"));
    assert_eq!(get("/ll/media.m3u8").status, 200);
    assert_eq!(get("/vod/media.m3u8").status, 200);
    // The next part is asked for before the packager has it: 404. It exists a part later;
    // the edge must not keep saying 404 for --negative-ttl (10 s) but at most half a part
    // target (0.25 s).
    let first = get("/ll/s11.3.ts");
    assert_eq!(first.status, 404);
    assert_eq!(first.header("cache-status"), Some("corestream; fwd=miss"));
    let again = get("/ll/s11.3.ts");
    assert_eq!(again.status, 404, "remembered meanwhile");
    // RFC 9211: answered from the negative cache, without asking the origin.
    assert_eq!(again.header("cache-status"), Some("corestream; hit"));
    assert_eq!(again.header("age"), Some("0"));
    o.set("/ll/s11.3.ts", Script::ok(b"part three"));
    thread::sleep(Duration::from_millis(400));
    let r = get("/ll/s11.3.ts");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"part three"[..]));
    assert_eq!(o.count("/ll/s11.3.ts"), 2);
    // Beside a finished playlist (EXT-X-ENDLIST) nothing new appears: --negative-ttl holds.
    assert_eq!(get("/vod/s9.ts").status, 404);
    o.set("/vod/s9.ts", Script::ok(b"late"));
    thread::sleep(Duration::from_millis(400));
    assert_eq!(get("/vod/s9.ts").status, 404);
    assert_eq!(o.count("/vod/s9.ts"), 1);
    drop(e);

    // A 404 to a blocking playlist request is kept 4 target durations (8 s here), not the
    // default --negative-ttl of 1 s.
    let cache2 = media_root("tier-negative-2");
    let e = edge(&o.url(), &cache2, &[]);
    let get = |target: &str| e.get(&format!("GET {target} HTTP/1.1\r\nHost: e\r\n\r\n"));
    assert_eq!(get("/ll/media.m3u8").status, 200);
    let blocking = "/ll/media.m3u8?_HLS_msn=99&_HLS_part=0";
    assert_eq!(get(blocking).status, 404);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(blocking).status, 404);
    assert_eq!(o.count(blocking), 1, "the blocking 404 was remembered");
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(&cache2);
}

#[test]
fn connections_to_an_origin_stay_within_origin_max_connections() {
    let o = Origin::start();
    for i in 0..8u8 {
        let mut s = Script::ok(&body(5_000, i));
        s.delay = Duration::from_millis(300);
        o.set(&format!("/b/{i}.ts"), s);
    }
    // A second origin that refuses: the fetches that try it first all fail over to the
    // live one, more at once than the bound allows.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cache = media_root("tier-bound");
    let origins = format!("http://{dead},{}", o.url());
    let e = edge(&origins, &cache, &["--origin-max-connections", "2"]);
    let mut viewers: Vec<TcpStream> = (0..8).map(|_| e.connect()).collect();
    for (i, v) in viewers.iter_mut().enumerate() {
        write!(v, "GET /b/{i}.ts HTTP/1.1\r\nHost: e\r\n\r\n").unwrap();
    }
    for (i, v) in viewers.iter_mut().enumerate() {
        let r = read_response(v, false).unwrap();
        assert_eq!((r.status, &r.body), (200, &body(5_000, i as u8)));
    }
    let peak = o.peak.load(SeqCst);
    assert!(peak <= 2, "{peak} connections to the origin at once");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn pulled_playlists_are_served_from_memory_and_name_their_segments() {
    let o = Origin::start();
    let v1 = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
              #EXTINF:2.0,\nseg7.ts\n#EXTINF:2.0,\nseg8.ts\n";
    let mut p = Script::ok(v1.as_bytes());
    p.fields.push(("Cache-Control".into(), "max-age=1".into()));
    o.set("/tv/index.m3u8", p);
    o.set("/tv/seg8.ts", Script::ok(&body(30_000, 8)));
    let cache = media_root("tier-playlists");
    let e = edge(&o.url(), &cache, &["--cmsd"]);
    let get = |target: &str, extra: &str| {
        e.get(&format!("GET {target} HTTP/1.1\r\nHost: e\r\n{extra}\r\n"))
    };
    assert_eq!(get("/tv/index.m3u8", "").body, v1.as_bytes());
    let hit = get("/tv/index.m3u8", "");
    assert_eq!(hit.header("cache-status"), Some("corestream; hit"));
    assert_eq!(hit.body, v1.as_bytes());
    // Conditionals and Range on the copy in memory.
    let tag = hit.header("etag").expect("ETag").to_string();
    let r = get("/tv/index.m3u8", &format!("If-None-Match: {tag}\r\n"));
    assert_eq!(r.status, 304);
    let r = get("/tv/index.m3u8", "Range: bytes=0-6\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &b"#EXTM3U"[..]));
    // Held in the workers' playlist cache (not read from the cache directory per request).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, m) = e.admin_get("/metrics");
        let bytes: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("corestream_playlist_cache_bytes "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if bytes > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pulled playlist in memory: {m}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // What the playlist says about its segments reaches the viewers (CMSD duration).
    let seg = get("/tv/seg8.ts", "");
    assert_eq!(seg.body, body(30_000, 8));
    let st = seg.header("cmsd-static").unwrap_or("").to_string();
    assert!(st.split(',').any(|i| i.trim() == "d=2000"), "{st}");
    // A new version once the copy is stale: the memory copy follows the stored file.
    let v2 = v1.replace("MEDIA-SEQUENCE:7", "MEDIA-SEQUENCE:8");
    let mut p = Script::ok(v2.as_bytes());
    p.fields.push(("Cache-Control".into(), "max-age=1".into()));
    o.set("/tv/index.m3u8", p);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(get("/tv/index.m3u8", "").body, v2.as_bytes());
    assert_eq!(get("/tv/index.m3u8", "").body, v2.as_bytes());
    let _ = std::fs::remove_dir_all(&cache);
}

/// An origin that answers each path with canned bytes and closes the connection.
fn raw_origin(answers: Vec<(&'static str, Vec<u8>)>) -> (SocketAddr, Log) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let log: Log = Arc::default();
    let l2 = log.clone();
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            l2.lock().unwrap().push((path.clone(), None));
            let mut w = c;
            if let Some((_, bytes)) = answers.iter().find(|(p, _)| *p == path) {
                let _ = w.write_all(bytes);
            }
        }
    });
    (addr, log)
}

#[test]
fn an_origin_answer_with_untrustworthy_framing_is_refused_and_never_stored() {
    let hello = |head: &str| format!("{head}\r\n\r\nhello").into_bytes();
    let (addr, log) =
        raw_origin(vec![
        ("/cl-letters.ts", hello("HTTP/1.1 200 OK\r\nContent-Length: 5x")),
        ("/cl-negative.ts", hello("HTTP/1.1 200 OK\r\nContent-Length: -5")),
        (
            "/cl-conflict.ts",
            hello("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7"),
        ),
        ("/cl-list.ts", hello("HTTP/1.1 200 OK\r\nContent-Length: 5, 9")),
        (
            "/gzip.ts",
            hello("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked"),
        ),
        ("/garbage.ts", b"SPDY/9 banana\r\n\r\n".to_vec()),
        // Interim responses without end (a real origin sends one or two): a fetch thread
        // would follow them for as long as the origin kept sending.
        (
            "/endless-interim.ts",
            hello(&format!(
                "{}HTTP/1.1 200 OK\r\nContent-Length: 5",
                "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000)
            )),
        ),
        (
            "/huge-head.ts",
            format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n", "a".repeat(70_000)).into_bytes(),
        ),
        // Acceptable: repeated identical lengths, and interim responses before the answer.
        (
            "/cl-same.ts",
            hello("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5"),
        ),
        (
            "/early-hints.ts",
            hello(
                "HTTP/1.1 103 Early Hints\r\nLink: </x.ts>; rel=preload\r\n\r\n\
                 HTTP/1.1 200 OK\r\nContent-Length: 5",
            ),
        ),
        // A chunk size that is no number, after the first chunk went out to the viewer.
        (
            "/bad-chunk.ts",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n"
                .to_vec(),
        ),
    ]);
    let cache = media_root("tier-framing");
    let e = edge(
        &format!("http://{addr}"),
        &cache,
        &["--negative-ttl", "1ms"],
    );
    let get = |p: &str| e.get(&format!("GET {p} HTTP/1.1\r\nHost: e\r\n\r\n"));
    for p in [
        "/cl-letters.ts",
        "/cl-negative.ts",
        "/cl-conflict.ts",
        "/cl-list.ts",
        "/gzip.ts",
        "/garbage.ts",
        "/huge-head.ts",
        "/endless-interim.ts",
    ] {
        let r = get(p);
        assert_eq!(r.status, 502, "{p}: {}", String::from_utf8_lossy(&r.body));
        // Nothing stored: the next request (past the 1 ms negative TTL) asks again.
        thread::sleep(Duration::from_millis(20));
        assert_eq!(get(p).status, 502, "{p}");
        let asked = log.lock().unwrap().iter().filter(|(x, _)| x == p).count();
        assert_eq!(asked, 2, "{p}: one upstream request per viewer request");
    }
    for p in ["/cl-same.ts", "/early-hints.ts"] {
        let r = get(p);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]), "{p}");
    }
    // Twice: the viewer got the first chunk, then its connection closed without the end of
    // the body; nothing was stored, so the second viewer's request went upstream again.
    for _ in 0..2 {
        let mut v = e.connect();
        v.write_all(b"GET /bad-chunk.ts HTTP/1.1\r\nHost: e\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        let _ = v.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        // Answered while the body was arriving (200, cut short), or woken only after it had
        // broken off (502): never a complete 200.
        assert!(
            text.starts_with("HTTP/1.1 502") || text.starts_with("HTTP/1.1 200"),
            "{text}"
        );
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a broken body is never ended as complete: {text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let asked = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(x, _)| x == "/bad-chunk.ts")
        .count();
    assert_eq!(asked, 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn corestream_as_origin_with_blocking_playlist_requests_collapsed() {
    let root = media_root("tier-origin-root");
    std::fs::create_dir_all(root.join("ll")).unwrap();
    common::publish(
        &root.join("ll"),
        "media.m3u8",
        &common::ll_playlist(5, 10, 2, 2, false),
    );
    std::fs::write(root.join("ll/s10.ts"), body(50_000, 1)).unwrap();
    let origin = Server::start(&root, &["--admin", "127.0.0.1:0"]);
    let cache = media_root("tier-origin-cache");
    let e = edge(&format!("http://{}", origin.addr), &cache, &[]);
    let r = e.get("GET /ll/s10.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.body, body(50_000, 1));
    // Twenty viewers block for the next part through the edge: one request reaches the
    // origin, held there until the packager publishes it.
    let requests = |s: &Server| -> f64 {
        s.admin_get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("corestream_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = requests(&origin);
    let mut viewers: Vec<TcpStream> = (0..20).map(|_| e.connect()).collect();
    for (i, v) in viewers.iter_mut().enumerate() {
        write!(
            v,
            "GET /ll/media.m3u8?_HLS_msn=11&_HLS_part=2&CMCD=sid%3D%22{i}%22 HTTP/1.1\r\nHost: e\r\n\r\n"
        )
        .unwrap();
    }
    thread::sleep(Duration::from_millis(500));
    let next = common::ll_playlist(5, 10, 3, 2, false);
    common::publish(&root.join("ll"), "media.m3u8", &next);
    for v in &mut viewers {
        let r = read_response(v, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, next.as_bytes());
    }
    let upstream = requests(&origin) - before;
    assert_eq!(upstream, 1.0, "one blocking request reached the origin");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn nginx_as_origin() {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    }
    let base = media_root("tier-nginx");
    let docs = base.join("docs");
    std::fs::create_dir_all(docs.join("live")).unwrap();
    std::fs::write(docs.join("live/seg.ts"), body(300_000, 5)).unwrap();
    for i in 0..40u8 {
        std::fs::write(docs.join(format!("live/s{i}.ts")), body(300_000, i)).unwrap();
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = base.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 1; pid {b}/nginx.pid; error_log {b}/error.log;\n\
             events {{}}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}; }} }}\n",
            b = base.display(),
            d = docs.display()
        ),
    )
    .unwrap();
    let nginx = Nginx(
        Command::new("nginx")
            .args(["-c", conf.to_str().unwrap(), "-p", base.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    common::wait_for("nginx to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let cache = base.join("cache");
    let e = edge(&format!("http://127.0.0.1:{port}"), &cache, &[]);
    for want in ["corestream; fwd=miss", "corestream; hit"] {
        let r = e.get("GET /live/seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body(300_000, 5));
        assert_eq!(r.header("cache-status"), Some(want));
    }
    // A viewer that has every byte of a miss and asks again at once gets the stored copy:
    // the last bytes go out only once the object is stored.
    for i in 0..40u8 {
        for want in ["corestream; fwd=miss", "corestream; hit"] {
            let r = e.get(&format!("GET /live/s{i}.ts HTTP/1.1\r\nHost: e\r\n\r\n"));
            assert_eq!(r.status, 200);
            assert_eq!(r.body, body(300_000, i));
            assert_eq!(r.header("cache-status"), Some(want), "s{i}.ts");
        }
    }
    let r = e.get("GET /live/none.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 404);
    drop(nginx);
    let _ = std::fs::remove_dir_all(&base);
}

/// An nginx master stopped when the test ends, failed or not.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (a SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn https_origins_are_verified() {
    let root = media_root("tier-https-origin");
    std::fs::write(root.join("seg.ts"), body(120_000, 4)).unwrap();
    let origin = Server::start_mode(common::Mode::Tls, &root, &[]);
    let url = format!("https://localhost:{}", origin.tls_addr.unwrap().port());
    let (pki, _, _) = common::tls::pki();
    let cache = media_root("tier-https-cache");
    let e = edge(&url, &cache, &["--origin-ca", pki.ca_pem.to_str().unwrap()]);
    let r = e.get("GET /seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body(120_000, 4));
    drop(e);
    // An origin whose certificate the CA bundle does not vouch for is not used.
    let other = media_root("tier-https-wrong-ca");
    let bad_ca = other.join("ca.pem");
    std::fs::write(&bad_ca, rcgen_free_ca()).unwrap();
    let e = edge(&url, &cache, &["--origin-ca", bad_ca.to_str().unwrap()]);
    let r = e.get("GET /seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 502);
    drop(e);
    // A bundle with no certificate is refused at start.
    std::fs::write(other.join("empty.pem"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_corestream"))
        .args(["--origin", &url, "--cache-dir", cache.to_str().unwrap()])
        .args(["--origin-ca", other.join("empty.pem").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--origin-ca"));
    for d in [&root, &cache, &other] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A CA certificate that signed nothing the test servers use.
fn rcgen_free_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.self_signed(&key).unwrap().pem()
}

#[test]
fn two_processes_on_one_port_and_cache_dir_make_one_upstream_request() {
    let o = Origin::start();
    let seg = body(300_000, 11);
    let mut s = Script::ok(&seg);
    s.delay = Duration::from_millis(300);
    s.split = Some((50_000, Duration::from_millis(300)));
    s.fields = vec![
        ("Cache-Control".into(), "public, max-age=600".into()),
        ("Age".into(), "30".into()),
    ];
    o.set("/live/shared.ts", s);
    let cache = media_root("tier-two-processes");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
            "--origin",
            &o.url(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--listen",
            &listen,
            "--workers",
            "1",
            "--admin",
            "127.0.0.1:0",
        ]))
    };
    let (a, b) = (start(), start());
    // The kernel spreads new connections over both processes (SO_REUSEPORT).
    let mut conns: Vec<TcpStream> = (0..200).map(|_| a.connect()).collect();
    for c in &mut conns {
        c.write_all(b"GET /live/shared.ts HTTP/1.1\r\nHost: e\r\n\r\n")
            .unwrap();
    }
    for c in &mut conns {
        let (head, got) = read_whole(c);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // The follower's viewers too, while the object arrives, and the Age it came with.
        assert!(
            head.contains("Cache-Control: public, max-age=600\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nAge: 30\r\n") || head.contains("\r\nAge: 31\r\n"),
            "{head}"
        );
        assert_eq!(got, seg);
    }
    let served = |s: &Server| s.metric("corestream_tier_requests_total{result=\"miss\"}");
    eprintln!("misses: process a {}, process b {}", served(&a), served(&b));
    assert_eq!(
        o.count("/live/shared.ts"),
        1,
        "one upstream request for the box"
    );
    // Both processes now hold it, with the origin's Cache-Control (the one that followed
    // took it from the leader's metadata; the kernel picks the process for each connection).
    for _ in 0..10 {
        let r = a.get("GET /live/shared.ts HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(r.body, seg);
        assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    }
    assert_eq!(o.count("/live/shared.ts"), 1);
    let _ = std::fs::remove_dir_all(&cache);
}

/// One response: its head read a byte at a time, then its body, sized (the connection stays
/// usable) or chunked.
fn read_whole(c: &mut impl Read) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut got = Vec::new();
    if head.contains("Transfer-Encoding: chunked") {
        let mut r = BufReader::new(c);
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut d = vec![0u8; n + 2];
            r.read_exact(&mut d).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&d[..n]);
        }
    } else {
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        got.resize(len, 0);
        c.read_exact(&mut got).unwrap();
    }
    (head, got)
}

#[test]
fn two_processes_give_an_object_not_to_be_stored_to_everyone_who_waited() {
    // The fetching process withdrew the shared file of a response it may not store
    // (`no-store`, `private`, over --cache-max-bytes) as if the fetch had failed: the other
    // process's viewers were cut mid-body, and its held playlist requests fetched again.
    let o = Origin::start();
    let seg = body(200_000, 13);
    let text = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nx.ts\n".to_vec();
    let no_store = vec![("Cache-Control".to_string(), "private, no-store".to_string())];
    let mut s = Script::ok(&seg);
    s.split = Some((50_000, Duration::from_millis(500)));
    s.fields = no_store.clone();
    o.set("/p/seg.ts", s);
    let mut s = Script::ok(&text);
    s.delay = Duration::from_millis(500);
    s.fields = no_store;
    o.set("/p/index.m3u8", s);
    let cache = media_root("tier-two-no-store");
    // Two processes on their own ports, sharing the cache directory: b follows a's fetch.
    let a = edge(&o.url(), &cache, &[]);
    let b = edge(&o.url(), &cache, &[]);
    let (mut va, mut vb, first) = follow_across(&o, &a, &b, "/p/seg.ts");
    let (_, whole) = read_whole(&mut va);
    assert_eq!(whole, seg);
    let (_, data) = read_whole(&mut first.as_slice().chain(&mut vb));
    assert_eq!(data, seg, "b's viewer got all of it");
    assert_eq!(o.count("/p/seg.ts"), 1);
    // A playlist (not followed as it arrives): b's held request gets a's answer.
    let req = "GET /p/index.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n";
    let mut pa = a.connect();
    pa.write_all(req.as_bytes()).unwrap();
    common::wait_for("a to fetch", Duration::from_secs(5), || {
        o.count("/p/index.m3u8") == 1
    });
    let mut pb = b.connect();
    pb.write_all(req.as_bytes()).unwrap();
    for c in [&mut pa, &mut pb] {
        let r = read_response(c, false).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, text);
    }
    assert_eq!(o.count("/p/index.m3u8"), 1, "one upstream request");
    // Not kept: the next request asks the origin again.
    let r = b.get("GET /p/seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.body, seg);
    assert_eq!(o.count("/p/seg.ts"), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

/// A viewer of `a` starts a's fetch of `path` (the origin's script pauses mid-body), then a
/// viewer of `b` (same --cache-dir) follows it: b's first 1000 bytes arrive through a's
/// shared file. Both connections, and b's first bytes.
fn follow_across(
    o: &Origin,
    a: &Server,
    b: &Server,
    path: &str,
) -> (TcpStream, TcpStream, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: e\r\n\r\n");
    let mut va = a.connect();
    va.write_all(req.as_bytes()).unwrap();
    common::wait_for("a to fetch", Duration::from_secs(5), || {
        *o.paused.lock().unwrap()
    });
    let mut vb = b.connect();
    vb.write_all(req.as_bytes()).unwrap();
    let mut first = vec![0u8; 1000];
    vb.read_exact(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    (va, vb, first)
}

#[test]
fn a_lone_request_for_a_slow_origin_is_a_miss_not_collapsed() {
    // Held requests are run again once a second; one run again while the fetch it started
    // was still waiting for the origin's head found that fetch in flight and called itself
    // `collapsed` (RFC 9211: "collapsed with another request"), as nginx_as_origin saw for
    // s39.ts once under CI's load. A 1.5 s origin makes every first request such a case.
    let o = Origin::start();
    let mut s = Script::ok(b"slow");
    s.delay = Duration::from_millis(1500);
    o.set("/slow.ts", s);
    let cache = media_root("tier-lone");
    let e = edge(&o.url(), &cache, &[]);
    let r = e.get("GET /slow.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slow"[..]));
    assert_eq!(r.header("cache-status"), Some("corestream; fwd=miss"));
    // Two at once: the second did join the first one's fetch.
    let mut a = e.connect();
    let mut b = e.connect();
    o.set("/slow2.ts", {
        let mut s = Script::ok(b"slow2");
        s.delay = Duration::from_millis(1500);
        s
    });
    a.write_all(b"GET /slow2.ts HTTP/1.1\r\nHost: e\r\n\r\n")
        .unwrap();
    common::wait_for("a's fetch to start", Duration::from_secs(5), || {
        o.count("/slow2.ts") == 1
    });
    b.write_all(b"GET /slow2.ts HTTP/1.1\r\nHost: e\r\n\r\n")
        .unwrap();
    let ra = read_response(&mut a, false).expect("a's answer");
    let rb = read_response(&mut b, false).expect("b's answer");
    assert_eq!(ra.header("cache-status"), Some("corestream; fwd=miss"));
    assert_eq!(
        rb.header("cache-status"),
        Some("corestream; fwd=miss; collapsed")
    );
    assert_eq!(o.count("/slow2.ts"), 1);
    drop(e);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_process_that_dies_mid_fetch_does_not_leave_the_others_waiting() {
    let o = Origin::start();
    let seg = body(200_000, 13);
    let mut s = Script::ok(&seg);
    s.split = Some((50_000, Duration::from_secs(3)));
    o.set("/live/orphan.ts", s);
    let cache = media_root("tier-orphan");
    // Two processes on their own ports, sharing the cache directory.
    let mut a = edge(&o.url(), &cache, &[]);
    let b = edge(&o.url(), &cache, &[]);
    let (_va, mut vb, first) = follow_across(&o, &a, &b, "/live/orphan.ts");
    assert_eq!(o.count("/live/orphan.ts"), 1);
    // a dies while the origin pauses: b gives up on it within a second or two.
    let _ = a.child.kill();
    let _ = a.child.wait();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = vb.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "b noticed: {:?}",
        t.elapsed()
    );
    assert!(
        first.len() + rest.len() < seg.len() + 200,
        "never presented as complete"
    );
    // The next request fetches again, and gets it whole.
    let r = b.get("GET /live/orphan.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.body, seg);
    assert_eq!(o.count("/live/orphan.ts"), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_fetch_that_panics_while_leading_for_the_box_withdraws_its_shared_file() {
    // One --cache-dir, two processes: a fetches, b follows a's shared file. A panic in a's
    // fetch (a debug-build fault hook on the body's bytes) used to leave that file behind,
    // unlocked: b's viewer waited for the once-a-second orphan check, and the file stayed
    // until the next fetch of the object cleared it.
    let o = Origin::start();
    let mut seg = body(200_000, 17);
    seg[50_000..50_008].copy_from_slice(b"BOOM-BOX");
    let mut s = Script::ok(&seg);
    s.split = Some((50_000, Duration::from_secs(2)));
    o.set("/live/lead.ts", s);
    o.set("/live/after.ts", Script::ok(b"after"));
    let cache = media_root("tier-lead-panic");
    let a = Server::spawn(
        edge_command(&o.url(), &cache, &[]).env("CORESTREAM_DEBUG_PANIC_PULLED", "BOOM-BOX"),
    );
    let b = edge(&o.url(), &cache, &[]);
    let (mut va, mut vb, _) = follow_across(&o, &a, &b, "/live/lead.ts");
    // The rest arrives, a's fetch panics on it: both viewers are cut short.
    for v in [&mut va, &mut vb] {
        let mut rest = Vec::new();
        let _ = v.read_to_end(&mut rest);
        assert!(rest.len() < seg.len(), "never presented as complete");
    }
    let parts: Vec<_> = std::fs::read_dir(cache.join("shared"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "left behind: {parts:?}");
    // a goes on fetching; b fetches the object again and gets it whole.
    let r = a.get("GET /live/after.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"after"[..]));
    let r = b.get("GET /live/lead.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.body, seg);
    assert_eq!(o.count("/live/lead.ts"), 2);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_fetch_that_panics_answers_502_and_the_fetch_threads_go_on() {
    // A bug an origin's answer reaches (here a debug-build fault hook on the fetch) used to
    // end its fetch thread: with --origin-max-connections 1 there are two, so after two such
    // objects every later miss waited forever.
    let o = Origin::start();
    for i in 0..4 {
        o.set(&format!("/boom{i}.ts"), Script::ok(b"never stored"));
    }
    o.set("/fine.ts", Script::ok(b"fine"));
    let cache = media_root("tier-panic");
    let e = Server::spawn(
        edge_command(&o.url(), &cache, &["--origin-max-connections", "1"])
            .env("CORESTREAM_DEBUG_PANIC_FETCH", "boom"),
    );
    for i in 0..4 {
        let r = e.get(&format!("GET /boom{i}.ts HTTP/1.1\r\nHost: e\r\n\r\n"));
        assert_eq!(r.status, 502, "boom{i}");
    }
    let r = e.get("GET /fine.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"fine"[..]));
    drop(e);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn an_origin_sending_its_head_a_byte_at_a_time_gets_origin_timeout_for_all_of_it() {
    // --origin-timeout bounded each read of the head: an origin sending a header byte every
    // 200 ms held the fetch, and the viewer, for as long as it went on (10 s here).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 && !line.ends_with("\r\n\r\n") {}
                let mut w = c;
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ");
                for _ in 0..50 {
                    if w.write_all(b"a").is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                let _ = w.write_all(b"\r\nContent-Length: 2\r\n\r\nok");
            });
        }
    });
    let cache = media_root("tier-dribble");
    let e = edge(
        &format!("http://{addr}"),
        &cache,
        &["--origin-timeout", "1s"],
    );
    let t = Instant::now();
    let r = e.get("GET /a.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_range_of_an_object_still_being_pulled_is_answered_as_its_bytes_arrive() {
    // A player's Range request for a segment the edge is still pulling got 200 and the
    // whole object; it gets 206 with the bytes asked for, those that exist at once.
    let o = Origin::start();
    let full = body(100_000, 5);
    let mut s = Script::ok(&full);
    s.split = Some((20_000, Duration::from_millis(1500)));
    o.set("/a/seg.m4s", s);
    let cache = media_root("tier-range");
    let e = edge(&o.url(), &cache, &[]);
    let mut first = e.connect();
    write!(first, "GET /a/seg.m4s HTTP/1.1\r\nHost: e\r\n\r\n").unwrap();
    common::wait_for("the origin to pause", Duration::from_secs(5), || {
        *o.paused.lock().unwrap()
    });
    let mut v = e.connect();
    write!(
        v,
        "GET /a/seg.m4s HTTP/1.1\r\nHost: e\r\nRange: bytes=10000-29999\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 65536];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = v.read(&mut b).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
    }
    let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..at]).to_string();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 10000-29999/100000\r\n"),
        "{head}"
    );
    let mut data = got[at..].to_vec();
    while data.len() < 10_000 {
        let n = v.read(&mut b).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&b[..n]);
    }
    assert!(*o.paused.lock().unwrap(), "read while the origin paused");
    let mut rest = vec![0u8; 20_000 - data.len()];
    v.read_exact(&mut rest).unwrap();
    data.extend_from_slice(&rest);
    assert_eq!(data, &full[10_000..30_000]);
    assert_eq!(o.count("/a/seg.m4s"), 1);
    drop(first);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn viewers_waiting_for_a_playlist_the_origin_marks_no_cache_or_no_store_get_it() {
    // nginx-rtmp's HLS origins send `Cache-Control: no-cache` with every playlist; a shield
    // may send one already past its max-age. The viewers held for the fetch were judged by
    // freshness alone: each rerun fetched again, until their wait ended in a 504 (20 s).
    let o = Origin::start();
    let text = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns1.ts\n".to_vec();
    for (path, cc, age) in [
        ("/nc/index.m3u8", "no-cache", None),
        ("/ns/index.m3u8", "no-store", None),
        ("/old/index.m3u8", "max-age=1", Some("3")),
    ] {
        let mut s = Script::ok(&text);
        s.etag = Some("\"p1\"".into());
        s.delay = Duration::from_millis(200);
        s.fields = vec![("Cache-Control".into(), cc.into())];
        if let Some(a) = age {
            s.fields.push(("Age".into(), a.into()));
        }
        o.set(path, s);
    }
    let cache = media_root("tier-no-cache");
    let e = edge(&o.url(), &cache, &[]);
    for path in ["/nc/index.m3u8", "/ns/index.m3u8", "/old/index.m3u8"] {
        let mut viewers: Vec<TcpStream> = (0..5).map(|_| e.connect()).collect();
        let asked = Instant::now();
        for v in &mut viewers {
            v.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            write!(v, "GET {path} HTTP/1.1\r\nHost: e\r\n\r\n").unwrap();
        }
        for v in &mut viewers {
            let r = read_response(v, false).expect("response");
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.body, text, "{path}");
        }
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{path}: {:?}",
            asked.elapsed()
        );
        assert_eq!(
            o.count(path),
            1,
            "{path}: one upstream request for all five"
        );
        // A new request must go to the origin again (validating where it can).
        let r = e.get(&format!("GET {path} HTTP/1.1\r\nHost: e\r\n\r\n"));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, text, "{path}");
        assert_eq!(o.count(path), 2, "{path}: asked again");
    }
    let log = o.log.lock().unwrap().clone();
    let nc: Vec<_> = log.iter().filter(|(p, _)| p == "/nc/index.m3u8").collect();
    assert_eq!(nc[1].1.as_deref(), Some("\"p1\""), "revalidated: {nc:?}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_304_without_cache_control_keeps_the_lifetime_the_200_gave() {
    // RFC 9111 4.3.4: fields the 304 leaves out stay as stored. A no-cache key revalidated
    // by a 304 carrying only its ETag was then served for 60 s without asking.
    let o = Origin::start();
    let mut s = Script::ok(b"0123456789abcdef");
    s.etag = Some("\"k1\"".into());
    s.fields = vec![("Cache-Control".into(), "no-cache".into())];
    s.bare_304 = true;
    o.set("/k/key.key", s);
    let cache = media_root("tier-304-bare");
    let e = edge(&o.url(), &cache, &[]);
    for n in 1..=3 {
        let r = e.get("GET /k/key.key HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"0123456789abcdef");
        assert_eq!(o.count("/k/key.key"), n, "every request validated");
    }
    let log = o.log.lock().unwrap().clone();
    assert_eq!(log[2].1.as_deref(), Some("\"k1\""), "{log:?}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_range_or_a_precondition_on_a_cold_edge_is_honoured() {
    // The first request for an object waits for the fetch; run again, it had lost its Range
    // and its validators: 200 with the whole object, and If-Match not evaluated.
    let o = Origin::start();
    let full = body(100_000, 9);
    let mut s = Script::ok(&full);
    s.delay = Duration::from_millis(300);
    o.set("/v/a.mp4", s.clone());
    o.set("/v/b.mp4", s.clone());
    o.set("/v/c.mp4", s);
    let cache = media_root("tier-cold-range");
    let e = edge(&o.url(), &cache, &[]);
    let r = e.get("GET /v/a.mp4 HTTP/1.1\r\nHost: e\r\nRange: bytes=1000-1999\r\n\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(r.body, &full[1000..2000]);
    // Warm: the same.
    let r = e.get("GET /v/a.mp4 HTTP/1.1\r\nHost: e\r\nRange: bytes=1000-1999\r\n\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &full[1000..2000]);
    let r = e.get("GET /v/b.mp4 HTTP/1.1\r\nHost: e\r\nRange: bytes=-10\r\n\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &full[99_990..]);
    let r = e.get("GET /v/c.mp4 HTTP/1.1\r\nHost: e\r\nIf-Match: \"nope\"\r\n\r\n");
    assert_eq!(r.status, 412);
    assert_eq!(
        o.count("/v/a.mp4") + o.count("/v/b.mp4") + o.count("/v/c.mp4"),
        3
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn an_origin_redirect_reaches_viewers_with_a_location_on_the_edge() {
    // Origin 3xx were answered 502: a packager or origin moving a stream (301 to a new
    // name, 302 to a session's playlist) broke every viewer behind the edge.
    let o = Origin::start();
    let redirect = |status: u16, location: Option<String>, fields: &[(&str, &str)]| {
        let mut s = Script::ok(b"moved");
        s.status = status;
        s.fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(location.map(|l| ("Location".to_string(), l)))
            .collect();
        s
    };
    let here = o.addr;
    let mut slow = redirect(302, Some(format!("http://{here}/live/new.m3u8")), &[]);
    slow.delay = Duration::from_millis(300);
    o.set("/live/old.m3u8", slow);
    o.set("/live/new.m3u8", Script::ok(b"#EXTM3U\n"));
    o.set(
        "/live/perm.ts",
        redirect(301, Some("/live/moved.ts".into()), &[]),
    );
    o.set("/live/moved.ts", Script::ok(&body(50_000, 3)));
    o.set(
        "/live/out.ts",
        redirect(307, Some("/other/x.ts".into()), &[]),
    );
    o.set(
        "/live/keep.m3u8",
        redirect(
            308,
            Some("https://cdn.example/a.m3u8".into()),
            &[("Cache-Control", "max-age=0")],
        ),
    );
    o.set(
        "/live/month.ts",
        redirect(
            301,
            Some("/live/m.ts".into()),
            &[("Cache-Control", "max-age=2592000")],
        ),
    );
    o.set("/live/none.ts", redirect(302, None, &[]));
    o.set(
        "/live/split.ts",
        redirect(302, Some("/a\u{1}b".into()), &[]),
    );
    let cache = media_root("tier-redirect");
    let e = edge(&format!("http://{here}/live"), &cache, &[]);

    // Viewers held for the fetch all get the temporary redirect, from one upstream request;
    // a later request asks the origin again (a 302 without freshness is not kept).
    for r in at_once(e.addr, 5, "/old.m3u8") {
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/new.m3u8"));
        assert_eq!(r.header("content-length"), Some("0"));
        assert!(r.body.is_empty());
    }
    assert_eq!(o.count("/live/old.m3u8"), 1);
    let r = e.get("HEAD /old.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!((r.status, r.header("location")), (302, Some("/new.m3u8")));
    assert_eq!(o.count("/live/old.m3u8"), 2);

    // A permanent one is kept; an absolute path into the prefix becomes the edge's path.
    for _ in 0..2 {
        let r = e.get("GET /perm.ts HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!((r.status, r.header("location")), (301, Some("/moved.ts")));
    }
    assert_eq!(o.count("/live/perm.ts"), 1);
    // Outside the prefix the edge has no name for it: the origin's own URL.
    let r = e.get("GET /out.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(&*format!("http://{here}/other/x.ts"))
    );
    // Another site passes unchanged; max-age=0 keeps it for nobody.
    for n in 1..=2 {
        let r = e.get("GET /keep.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(r.status, 308);
        assert_eq!(r.header("location"), Some("https://cdn.example/a.m3u8"));
        assert_eq!(o.count("/live/keep.m3u8"), n);
    }
    // The origin's freshness reaches viewers with it; without any they are told not to keep it.
    let r = e.get("GET /month.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.header("location"), Some("/m.ts"));
    assert_eq!(r.header("cache-control"), Some("max-age=2592000"));
    let r = e.get("GET /perm.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Without a usable Location there is nothing to pass on.
    assert_eq!(
        e.get("GET /none.ts HTTP/1.1\r\nHost: e\r\n\r\n").status,
        502
    );
    let r = e.get("GET /split.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(r.status, 502);
    assert!(r.header("location").is_none());

    // A real client follows it and stays on the edge.
    for (path, want) in [
        ("/old.m3u8", b"#EXTM3U\n".to_vec()),
        ("/perm.ts", body(50_000, 3)),
    ] {
        let out = Command::new("curl")
            .args(["-sS", "-L", "-w", "\n%{url_effective}"])
            .arg(format!("http://{}{path}", e.addr))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (got, url) = out.stdout.split_at(want.len().min(out.stdout.len()));
        assert_eq!(got, &want[..]);
        let moved = if path == "/old.m3u8" {
            "/new.m3u8"
        } else {
            "/moved.ts"
        };
        assert_eq!(
            String::from_utf8_lossy(url),
            format!("\nhttp://{}{moved}", e.addr)
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn viewers_get_the_origins_cache_control_not_the_edges() {
    // The edge answered every pulled object with its own --cache-* policy: a key the origin
    // marks `private, no-store` was to be kept two weeks by browsers and CDNs, a segment the
    // origin gives 5 s as well, a `no-cache` playlist for a second.
    let o = Origin::start();
    let with = |body: &[u8], fields: &[(&str, &str)]| {
        let mut s = Script::ok(body);
        s.fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    };
    let mut slow = with(
        &body(30_000, 1),
        &[("Cache-Control", "max-age=5, must-revalidate")],
    );
    slow.delay = Duration::from_millis(300);
    o.set("/c/seg.ts", slow);
    o.set(
        "/c/k.key",
        with(
            b"0123456789abcdef",
            &[("Cache-Control", "private, no-store")],
        ),
    );
    o.set(
        "/c/p.m3u8",
        with(b"#EXTM3U\n", &[("Cache-Control", "no-cache")]),
    );
    let expires = "Thu, 01 Jan 2099 00:00:00 GMT";
    o.set("/c/exp.ts", with(b"e", &[("Expires", expires)]));
    o.set("/c/none.ts", with(b"n", &[]));
    // A shield's stored copy, 40 s old: followed as it arrives, and whole at once.
    let shield_copy = [("Cache-Control", "max-age=100"), ("Age", "40")];
    let mut aged = with(&body(50_000, 2), &shield_copy);
    aged.delay = Duration::from_millis(200);
    aged.split = Some((10_000, Duration::from_millis(300)));
    o.set("/c/aged.ts", aged);
    let mut aged_small = with(b"a", &shield_copy);
    aged_small.delay = Duration::from_millis(300);
    o.set("/c/aged-small.ts", aged_small);
    let long = format!("private, no-store, x=\"{}\"", "a".repeat(5000));
    o.set("/c/long.ts", with(b"l", &[("Cache-Control", &long)]));
    let mut r0 = with(
        b"r",
        &[("Cache-Control", "max-age=0"), ("Expires", expires)],
    );
    r0.etag = Some("\"r1\"".into());
    o.set("/c/r.ts", r0.clone());
    let cache = media_root("tier-cache-control");
    let e = edge(&o.url(), &cache, &[]);
    let get = |path: &str| e.get(&format!("GET {path} HTTP/1.1\r\nHost: e\r\n\r\n"));

    // Held for the fetch (the origin's bytes as they arrive), then a stored copy, a HEAD and
    // a 304: all say what the origin said, the hit with its Age.
    for r in at_once(e.addr, 3, "/c/seg.ts") {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=5, must-revalidate")
        );
    }
    let r = get("/c/seg.ts");
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=5, must-revalidate")
    );
    assert!(r.header("age").is_some());
    assert_eq!(r.header("cache-status"), Some("corestream; hit"));
    let head = e.get("HEAD /c/seg.ts HTTP/1.1\r\nHost: e\r\n\r\n");
    assert_eq!(
        head.header("cache-control"),
        Some("max-age=5, must-revalidate")
    );
    let tag = r.header("etag").unwrap().to_string();
    let r = e.get(&format!(
        "GET /c/seg.ts HTTP/1.1\r\nHost: e\r\nIf-None-Match: {tag}\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=5, must-revalidate")
    );
    assert_eq!(o.count("/c/seg.ts"), 1);

    // The viewers that wait for a shield's stored copy are told how old it is, as later
    // hits are (RFC 9111 5.1), once each.
    let ages = |r: &common::Response| {
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("age"))
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .collect::<Vec<_>>()
    };
    for path in ["/c/aged.ts", "/c/aged-small.ts"] {
        for r in at_once(e.addr, 2, path) {
            assert_eq!(r.header("cache-control"), Some("max-age=100"));
            assert!(matches!(ages(&r)[..], [40 | 41]), "{path}: {:?}", r.headers);
        }
        let r = get(path);
        assert_eq!(r.header("cache-status"), Some("corestream; hit"));
        assert!(matches!(ages(&r)[..], [40..=42]), "{path}: {:?}", r.headers);
    }

    for _ in 0..2 {
        let r = get("/c/k.key");
        assert_eq!(r.body, b"0123456789abcdef");
        assert_eq!(r.header("cache-control"), Some("private, no-store"));
        let r = get("/c/p.m3u8");
        assert_eq!(r.body, b"#EXTM3U\n");
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        let r = get("/c/exp.ts");
        assert_eq!(r.header("expires"), Some(expires));
        assert_eq!(r.header("cache-control"), None);
        // Too long to pass on: not the edge's two weeks, but nothing kept.
        assert_eq!(get("/c/long.ts").header("cache-control"), Some("no-store"));
        // Nothing from the origin: the edge's own policy for the kind.
        assert_eq!(
            get("/c/none.ts").header("cache-control"),
            Some("max-age=1209600")
        );
    }

    // A 304 that says something new replaces what was stored, field by field (RFC 9111
    // 4.3.4): its Cache-Control, and the Expires it does not repeat stays.
    assert_eq!(get("/c/r.ts").header("cache-control"), Some("max-age=0"));
    let mut r30 = r0;
    r30.fields = vec![("Cache-Control".into(), "max-age=30".into())];
    o.set("/c/r.ts", r30);
    let r = get("/c/r.ts");
    assert_eq!(r.body, b"r");
    assert_eq!(r.header("cache-control"), Some("max-age=30"));
    assert_eq!(r.header("expires"), Some(expires));
    let log = o.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|(p, inm)| p == "/c/r.ts" && inm.is_some()),
        "{log:?}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
