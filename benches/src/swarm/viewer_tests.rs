//! Behaviour of simulated viewers against small in-process servers: classic reloads, live
//! streams, falling behind the window, LL-HLS against a server that blocks and one that
//! cannot. Every test waits for what it needs (EngineOpts::until), bounded generously.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Minimal keep-alive HTTP server for the tests: one thread per connection, GET heads
/// only; `respond` gets the request path and returns the whole response.
fn serve(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let respond = std::sync::Arc::new(respond);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    if s.write_all(&respond(path)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// Static files from `root` (404 for anything missing).
fn serve_dir(root: std::path::PathBuf) -> SocketAddr {
    serve(
        move |path| match fs::read(root.join(path.trim_start_matches('/'))) {
            Ok(body) => ok(&body),
            Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        },
    )
}

fn engine(url: &str, viewers: usize, until: impl Fn(&Counters) -> bool + 'static) -> EngineOpts {
    EngineOpts {
        target: parse_url(url).unwrap(),
        viewers,
        id_offset: 0,
        // Upper bounds only: every test ends when `until` holds. Generous, so a busy
        // machine makes a test slower, never red.
        duration: Duration::from_secs(90),
        ramp: Duration::from_millis(200),
        mix: vec![],
        timeout: Duration::from_secs(30),
        bind: None,
        ll: false,
        published_from: None,
        until: Some(Box::new(until)),
    }
}

/// A live media playlist whose reloads after the first take 2.5 s (target duration 1 s):
/// the viewer keeps one reload outstanding, as players do, instead of queueing one per
/// second and then fetching a backlog of stale playlists.
#[test]
fn reloads_do_not_pile_up_behind_a_slow_answer() {
    let playlists = std::sync::atomic::AtomicUsize::new(0);
    let addr = serve(move |path| {
        if !path.ends_with(".m3u8") {
            return ok(b"0123456789");
        }
        if playlists.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        ok(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1.0,\nseg7.ts\n")
    });
    let t0 = Instant::now();
    let (c, _) = run_engine(engine(&format!("http://{addr}/live/index.m3u8"), 1, |c| {
        c.reloads_skipped >= 3 && c.requests[1] >= 2
    }))
    .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(c.reloads_skipped >= 3, "{c:?}");
    // One reload at a time: answers are bounded by the server's pace (first at once,
    // then one per 2.5 s), and at most one is outstanding at the end. A queue per tick
    // would leave several stale reloads waiting.
    assert!(
        c.requests[1] as f64 <= 2.0 + elapsed / 2.5,
        "{c:?} in {elapsed} s"
    );
    assert!(c.unfinished <= 1, "{c:?}");
    assert_eq!(c.err_status + c.err_timeout + c.err_read, 0, "{c:?}");
}

#[test]
fn viewers_follow_a_live_stream() {
    const VIEWERS: u64 = 20;
    let dir = std::env::temp_dir().join(format!("csbench-swarm-{}", std::process::id()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d2, st) = (dir.clone(), stop.clone());
    let publisher = std::thread::spawn(move || {
        crate::publish::run_until(
            crate::publish::Opts {
                dir: d2,
                segment_seconds: 0.5,
                renditions: vec![200, 100],
                window: 4,
                duration: Duration::from_secs(120),
            },
            &st,
        )
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("r100/index.m3u8").exists() {
        assert!(Instant::now() < deadline, "publisher did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = serve_dir(dir.clone());
    let t0 = Instant::now();
    // Until every viewer could have reloaded twice and fetched two new segments.
    let (c, h) = run_engine(EngineOpts {
        mix: vec![1.0, 1.0],
        ..engine(
            &format!("http://{addr}/master.m3u8"),
            VIEWERS as usize,
            |c| c.requests[1] >= VIEWERS * 3 && c.requests[2] >= VIEWERS * 5,
        )
    })
    .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap().unwrap();
    assert!(c.requests[2] >= VIEWERS * 5, "{c:?}");
    assert_eq!(c.requests[0], VIEWERS, "one master per viewer");
    // Reloads on the playlist's clock (#EXT-X-TARGETDURATION: 1 s), not faster.
    assert!(
        c.requests[1] as f64 <= VIEWERS as f64 * (2.0 + elapsed),
        "{c:?} in {elapsed} s"
    );
    assert_eq!(
        c.err_connect + c.err_read + c.err_timeout + c.err_status + c.err_parse,
        0,
        "{c:?}"
    );
    assert_eq!(c.playing_viewers, VIEWERS);
    assert_eq!(h.latency[0].len(), VIEWERS);
    assert!(h.seg_ratio.len() >= c.requests[2] - 1);

    // A server that is not there: connect errors, no panic, no playback.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (c, _) = run_engine(engine(&format!("http://{dead_addr}/master.m3u8"), 3, |c| {
        c.err_connect >= 3
    }))
    .unwrap();
    assert!(c.err_connect >= 3, "{c:?}");
    assert_eq!(c.playing_viewers, 0);
    fs::remove_dir_all(&dir).unwrap();
}

/// A viewer whose next segment left the window does not ask for it: it jumps to the live
/// edge (the newest three segments) and counts a stall.
#[test]
fn a_viewer_behind_the_window_jumps_to_the_live_edge() {
    let playlists = AtomicUsize::new(0);
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = asked.clone();
    let window = |first: u64| {
        let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for n in first..first + 3 {
            t.push_str(&format!("#EXTINF:1.0,\nseg{n}.ts\n"));
        }
        t
    };
    let addr = serve(move |path| {
        if path.ends_with(".m3u8") {
            // First the window 0..2, then (the viewer was away) 20..22.
            let first = if playlists.fetch_add(1, Ordering::Relaxed) == 0 {
                0
            } else {
                20
            };
            return ok(window(first).as_bytes());
        }
        seen.lock().unwrap().push(path.to_string());
        ok(b"0123456789")
    });
    let (c, _) = run_engine(engine(&format!("http://{addr}/live/index.m3u8"), 1, |c| {
        c.live_jumps >= 1 && c.requests[Kind::Segment.index()] >= 6 && c.requests[1] >= 3
    }))
    .unwrap();
    let asked = asked.lock().unwrap().clone();
    for n in 3..20 {
        assert!(
            !asked.contains(&format!("/live/seg{n}.ts")),
            "expired seg{n} asked: {asked:?}"
        );
    }
    for n in [0, 1, 2, 20, 21, 22] {
        assert!(
            asked.contains(&format!("/live/seg{n}.ts")),
            "seg{n} not asked: {asked:?}"
        );
    }
    assert_eq!(c.live_jumps, 1, "{c:?}");
    assert!(c.stalls >= 1, "{c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
}

/// An in-process LL-HLS origin: 0.1 s parts, 4 per segment, a part published every 0.1 s
/// on the wall clock the playlist is dated in. `blocking` holds playlist reloads with
/// `_HLS_msn`/`_HLS_part` and requests for unpublished parts until they are published, as
/// corestream does; without it, it answers at once like a plain file server (nginx).
struct LlOrigin {
    /// Where part files are written as they are published (for --published-from).
    dir: Option<std::path::PathBuf>,
    published: Mutex<u64>,
    cv: Condvar,
    blocking: bool,
    t0_ms: i64,
    /// Part GETs answered 200 per URI, parts held before being published, blocking reloads.
    served: Mutex<std::collections::HashMap<String, usize>>,
    held: AtomicUsize,
    blocked_reloads: AtomicUsize,
}

const PART_MS: u64 = 100;
const PARTS: u64 = 4;

impl LlOrigin {
    /// `date_shift_ms` moves the playlist's dates away from the real publication times.
    fn start(
        blocking: bool,
        stop: Arc<std::sync::atomic::AtomicBool>,
        dir: Option<std::path::PathBuf>,
        date_shift_ms: i64,
    ) -> Arc<LlOrigin> {
        let prefill = 2 * PARTS;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let o = Arc::new(LlOrigin {
            dir,
            published: Mutex::new(prefill),
            cv: Condvar::new(),
            blocking,
            t0_ms: now_ms - (prefill * PART_MS) as i64 + date_shift_ms,
            served: Mutex::new(Default::default()),
            held: AtomicUsize::new(0),
            blocked_reloads: AtomicUsize::new(0),
        });
        let p = o.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = prefill;
            while !stop.load(Ordering::Relaxed) {
                // Part u is due at t0 + (u + 1) parts, on the same clock as its date.
                let due = Duration::from_millis((n + 1 - prefill) * PART_MS);
                std::thread::sleep(due.saturating_sub(start.elapsed()));
                if let Some(d) = &p.dir {
                    let _ = fs::write(
                        d.join(format!("p{}.{}.ts", n / PARTS, n % PARTS)),
                        [7u8; 100],
                    );
                }
                n += 1;
                *p.published.lock().unwrap() = n;
                p.cv.notify_all();
            }
        });
        o
    }

    fn playlist(&self, published: u64) -> String {
        let complete = published / PARTS;
        let first = complete.saturating_sub(6);
        let mut t = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.3\n\
             #EXT-X-PART-INF:PART-TARGET=0.1\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for m in first..complete {
            let date = corestream_common::date::Civil::from_unix_ms(
                self.t0_ms + (m * PARTS * PART_MS) as i64,
            );
            t.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                date.rfc3339_millis()
            ));
            for i in 0..PARTS {
                t.push_str(&format!("#EXT-X-PART:DURATION=0.1,URI=\"p{m}.{i}.ts\"\n"));
            }
            t.push_str(&format!("#EXTINF:0.4,\ns{m}.ts\n"));
        }
        for i in 0..published % PARTS {
            t.push_str(&format!(
                "#EXT-X-PART:DURATION=0.1,URI=\"p{complete}.{i}.ts\"\n"
            ));
        }
        t.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p{}.{}.ts\"\n",
            published / PARTS,
            published % PARTS
        ));
        t
    }

    /// Wait (if blocking, up to 30 s) until part number `u` is published; whether it is.
    fn wait_for(&self, u: u64) -> bool {
        let mut n = self.published.lock().unwrap();
        if self.blocking {
            let deadline = Instant::now() + Duration::from_secs(30);
            while *n <= u && Instant::now() < deadline {
                n = self
                    .cv
                    .wait_timeout(n, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
        }
        *n > u
    }

    fn respond(&self, path: &str) -> Vec<u8> {
        let (file, query) = path.split_once('?').unwrap_or((path, ""));
        let arg = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
        };
        if file.ends_with(".m3u8") {
            if let (Some(m), Some(i)) = (arg("_HLS_msn"), arg("_HLS_part")) {
                if self.blocking {
                    self.blocked_reloads.fetch_add(1, Ordering::Relaxed);
                }
                self.wait_for(m * PARTS + i);
            }
            let n = *self.published.lock().unwrap();
            return ok(self.playlist(n).as_bytes());
        }
        let name = file.rsplit('/').next().unwrap_or("");
        if let Some((m, i)) = name
            .strip_prefix('p')
            .and_then(|r| r.strip_suffix(".ts"))
            .and_then(|r| r.split_once('.'))
            .and_then(|(m, i)| Some((m.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        {
            let u = m * PARTS + i;
            let before = *self.published.lock().unwrap() <= u;
            if !self.wait_for(u) {
                return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            if before {
                self.held.fetch_add(1, Ordering::Relaxed);
            }
            *self
                .served
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_default() += 1;
            return ok(&[7u8; 100]);
        }
        ok(&[7u8; 400])
    }
}

fn ll_run(
    blocking: bool,
    until: impl Fn(&Counters) -> bool + 'static,
) -> (Counters, Hists, Arc<LlOrigin>) {
    ll_run_with(blocking, None, 0, until)
}

fn ll_run_with(
    blocking: bool,
    dir: Option<std::path::PathBuf>,
    date_shift_ms: i64,
    until: impl Fn(&Counters) -> bool + 'static,
) -> (Counters, Hists, Arc<LlOrigin>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let origin = LlOrigin::start(blocking, stop.clone(), dir.clone(), date_shift_ms);
    let o = origin.clone();
    let addr = serve(move |path| o.respond(path));
    // The files live in DIR as the URL paths /live/NAME name them.
    let root = dir.and_then(|d| d.parent().map(|p| p.to_path_buf()));
    let (c, h) = run_engine(EngineOpts {
        ll: true,
        published_from: root,
        ..engine(&format!("http://{addr}/live/index.m3u8"), 5, until)
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    (c, h, origin)
}

/// Against a server that blocks, LL viewers wait in blocking reloads, ask for the hinted
/// part before it exists (and get it when it is published), fetch each part once, never
/// poll, and measure parts from their publication.
#[test]
fn ll_viewers_block_and_fetch_hinted_parts() {
    let part = Kind::Part.index();
    let (c, mut h, origin) = ll_run(true, move |c| c.requests[part] >= 5 * 15);
    assert!(c.requests[part] >= 5 * 15, "{c:?}");
    assert!(c.blocking_reloads > 0 && origin.blocked_reloads.load(Ordering::Relaxed) > 0);
    assert!(c.hint_requests > 0, "{c:?}");
    assert!(
        origin.held.load(Ordering::Relaxed) > 0,
        "no hinted part was asked for early"
    );
    assert_eq!(c.hints_not_held, 0, "{c:?}");
    assert_eq!(
        c.polls_unchanged, 0,
        "a blocking server needs no polling: {c:?}"
    );
    let served = origin.served.lock().unwrap();
    assert!(
        served.values().all(|&n| n <= 5),
        "a part fetched twice by a viewer: {served:?}"
    );
    assert_eq!(c.errors(), 0, "{c:?}");
    assert_eq!(c.playing_viewers, 5, "{c:?}");
    // All but the parts fetched at join (at most PART-HOLD-BACK / PART-TARGET + 1 each).
    assert!(
        h.part_published().len() >= c.requests[part] - 5 * 4,
        "{c:?}"
    );
    assert!(!h.playlist_published().is_empty());
    assert!(!h.edge().is_empty());
}

/// Against a server that cannot block (a plain file server), the viewers poll: answers
/// without the part asked for are counted, hinted parts come back 404 (not an error) and
/// are fetched once listed.
#[test]
fn ll_viewers_poll_a_server_that_cannot_block() {
    let part = Kind::Part.index();
    let (c, _, origin) = ll_run(false, move |c| {
        c.requests[part] >= 5 * 10 && c.hints_not_held >= 5 && c.polls_unchanged >= 5
    });
    assert!(c.polls_unchanged >= 5, "{c:?}");
    assert!(c.hints_not_held >= 5, "{c:?}");
    assert_eq!(c.err_status, 0, "a refused hint is not an error: {c:?}");
    assert_eq!(c.errors(), 0, "{c:?}");
    let served = origin.served.lock().unwrap();
    assert!(served.values().all(|&n| n <= 5), "{served:?}");
    assert!(served.len() >= 10, "{served:?}");
    assert_eq!(c.playing_viewers, 5, "{c:?}");
}

/// --published-from takes publication times from the part files' mtimes, not from the
/// playlist's dates: with dates five minutes in the past, only the files tell the truth.
#[test]
fn ll_publication_times_from_file_mtimes() {
    const SHIFT_MS: u64 = 300_000;
    let part = Kind::Part.index();
    let enough = move |c: &Counters| c.requests[part] >= 5 * 8;
    let (_, mut by_date, _) = ll_run_with(true, None, -(SHIFT_MS as i64), enough);
    // Half the shift either side: far from the histogram's rounding and from any delay.
    assert!(by_date.part_published().min() >= SHIFT_MS * 1000 / 2);
    let dir = std::env::temp_dir()
        .join(format!("csbench-mtime-{}", std::process::id()))
        .join("live");
    fs::create_dir_all(&dir).unwrap();
    let (c, mut by_file, _) = ll_run_with(true, Some(dir.clone()), -(SHIFT_MS as i64), enough);
    assert!(
        by_file.part_published().len() >= c.requests[part] - 5 * 4,
        "{c:?}"
    );
    let max = by_file.part_published().max();
    assert!(
        max < SHIFT_MS * 1000,
        "{max} us: the playlist's dates were used"
    );
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}
