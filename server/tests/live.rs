//! Live playlists against the real server with a publisher driven by the test: freshness of
//! cached playlists, temporary files, and the Low-Latency HLS server rules.

mod common;
use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn live_root(name: &str) -> PathBuf {
    let r = media_root(name);
    std::fs::create_dir_all(r.join("live")).unwrap();
    publish(
        &r.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 1, 2, false),
    );
    r
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Send a request on its own connection and return (response, time it took).
fn timed(s: &Server, path: &str) -> (Response, Duration) {
    let mut c = s.connect();
    let t = Instant::now();
    c.write_all(get(path).as_bytes()).unwrap();
    let r = read_response(&mut c, false).expect("response");
    (r, t.elapsed())
}

#[test]
fn cached_playlist_is_never_older_than_the_renamed_file() {
    let root = media_root("fresh");
    publish(&root, "p.m3u8", "#EXTM3U\n#V 0\n");
    let s = Server::start(&root, &[]);
    // A publisher renames a new version as fast as it can; each reader request must return
    // a version at least as new as the last rename completed before the request was sent.
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (published, stop, root) = (published.clone(), stop.clone(), root.clone());
        std::thread::spawn(move || {
            let mut v = 0u64;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                publish(&root, "p.m3u8", &format!("#EXTM3U\n#V {v}\n"));
                published.store(v, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut c = s.connect();
    let mut stale = 0;
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(2) {
        let floor = published.load(Ordering::SeqCst);
        c.write_all(get("/p.m3u8").as_bytes()).unwrap();
        let r = read_response(&mut c, false).unwrap();
        let body = String::from_utf8(r.body.clone()).unwrap();
        let v: u64 = body.trim().rsplit(' ').next().unwrap().parse().unwrap();
        if v < floor {
            stale += 1;
        }
        n += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(n > 200, "too few requests to mean anything ({n})");
    assert_eq!(
        stale, 0,
        "{stale} of {n} responses were older than the file on disk"
    );
}

#[test]
fn temporary_files_are_never_served() {
    let root = media_root("tmpfiles");
    std::fs::write(root.join("seg1.ts.tmp"), "half").unwrap();
    std::fs::write(root.join("seg2.partial"), "half").unwrap();
    let s = Server::start(&root, &["--hidden-suffixes", ".tmp,.partial"]);
    assert_eq!(s.get(&get("/seg1.ts.tmp")).status, 404);
    assert_eq!(s.get(&get("/seg2.partial")).status, 404);
    std::fs::rename(root.join("seg1.ts.tmp"), root.join("seg1.ts")).unwrap();
    assert_eq!(s.get(&get("/seg1.ts")).body, b"half");
}

#[test]
fn blocking_reload_waits_for_the_segment_then_sends_the_whole_playlist() {
    let root = live_root("block");
    let s = Server::start(&root, &[]);
    let dir = root.join("live");
    // Segment 5 exists: no wait.
    let (r, t) = timed(&s, "/live/index.m3u8?_HLS_msn=5");
    assert_eq!(r.status, 200);
    assert!(t < Duration::from_millis(300), "{t:?}");
    // Segment 6 is in progress: held until published.
    let pub_dir = dir.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        // Taken before the rename: the answer cannot come earlier than this.
        let before = Instant::now();
        publish(&pub_dir, "index.m3u8", &ll_playlist(0, 6, 0, 2, false));
        before
    });
    let mut c = s.connect();
    c.write_all(get("/live/index.m3u8?_HLS_msn=6").as_bytes())
        .unwrap();
    let r = read_response(&mut c, false).unwrap();
    let answered = Instant::now();
    let published = publisher.join().unwrap();
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert!(body.contains("s6.ts\n"), "{body}");
    assert!(body.starts_with("#EXTM3U"), "the whole playlist is sent");
    assert!(
        answered >= published,
        "answered before the segment was published"
    );
    assert!(
        answered - published < Duration::from_millis(500),
        "woken late: {:?}",
        answered - published
    );
    assert_eq!(r.header("cache-control"), Some("max-age=1"));
    // The held connection is kept alive and serves the next request.
    c.write_all(get("/live/index.m3u8").as_bytes()).unwrap();
    assert_eq!(read_response(&mut c, false).unwrap().status, 200);
}

#[test]
fn blocking_on_a_part() {
    let root = live_root("part");
    let s = Server::start(&root, &[]);
    let dir = root.join("live");
    // Part 0 of segment 6 exists.
    assert!(timed(&s, "/live/index.m3u8?_HLS_msn=6&_HLS_part=0").1 < Duration::from_millis(300));
    let pub_dir = dir.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        publish(&pub_dir, "index.m3u8", &ll_playlist(0, 5, 2, 2, false));
    });
    let (r, t) = timed(&s, "/live/index.m3u8?_HLS_msn=6&_HLS_part=1");
    publisher.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8(r.body).unwrap().contains("s6.1.ts"));
    assert!(
        t >= Duration::from_millis(350),
        "answered before part 1 existed ({t:?})"
    );
    // Past the last part of a complete segment means part 0 of the next one (exists).
    assert_eq!(
        timed(&s, "/live/index.m3u8?_HLS_msn=5&_HLS_part=4")
            .0
            .status,
        200
    );
}

#[test]
fn invalid_directives_get_400() {
    let root = live_root("bad");
    let s = Server::start(&root, &[]);
    for q in [
        "_HLS_part=1",            // part without msn
        "_HLS_msn=8",             // more than two beyond the last segment (5)
        "_HLS_msn=6&_HLS_part=7", // beyond the Advance Part Limit (3 / 0.5 s = 6)
        "_HLS_msn=abc",           // not a number
        "_HLS_msn=99999999999999999999999",
        "_HLS_skip=maybe",
    ] {
        let r = s.get(&get(&format!("/live/index.m3u8?{q}")));
        assert_eq!(r.status, 400, "{q}");
    }
    // Two beyond the last segment is allowed (it waits): check with a short-target playlist.
}

#[test]
fn blocking_gives_up_with_503_after_three_target_durations() {
    let root = media_root("timeout503");
    std::fs::create_dir_all(root.join("live")).unwrap();
    publish(
        &root.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 1, 1, false),
    );
    let s = Server::start(&root, &["--admin", "0"]);
    let (r, t) = timed(&s, "/live/index.m3u8?_HLS_msn=7");
    assert_eq!(r.status, 503);
    assert!(
        t >= Duration::from_millis(2900) && t < Duration::from_millis(4500),
        "{t:?}"
    );
    assert_eq!(s.metric("corestream_requests_total{code=\"503\"}"), 1.0);
}

#[test]
fn directives_ignored_after_endlist_and_without_can_block_reload() {
    let root = media_root("endlist");
    std::fs::create_dir_all(root.join("live")).unwrap();
    publish(
        &root.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 0, 2, true),
    );
    publish(
        &root.join("live"),
        "vod.m3u8",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n",
    );
    let s = Server::start(&root, &[]);
    let (r, t) = timed(&s, "/live/index.m3u8?_HLS_msn=7");
    assert_eq!(r.status, 200);
    assert!(t < Duration::from_millis(300));
    let (r, t) = timed(&s, "/live/vod.m3u8?_HLS_msn=3");
    assert_eq!(r.status, 200);
    assert!(t < Duration::from_millis(300));
}

#[test]
fn delta_update_with_skip() {
    let root = live_root("skip");
    publish(
        &root.join("live"),
        "index.m3u8",
        &ll_playlist(0, 9, 1, 2, false),
    );
    let s = Server::start(&root, &[]);
    let r = s.get(&get("/live/index.m3u8?_HLS_skip=YES"));
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body.clone()).unwrap();
    // 10 segments of 2 s, CAN-SKIP-UNTIL=6: the first 7 start more than 6 s before the end.
    assert!(body.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"), "{body}");
    assert!(!body.contains("s6.ts\n") && body.contains("s7.ts\n"));
    assert!(body.contains("#EXT-X-PRELOAD-HINT"));
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        body.len()
    );
    assert_eq!(
        r.header("etag"),
        None,
        "a delta is not the full playlist's representation"
    );
    let full = s.get(&get("/live/index.m3u8"));
    assert!(!String::from_utf8(full.body).unwrap().contains("EXT-X-SKIP"));
}

#[test]
fn delta_update_when_the_packager_says_skip_everything() {
    // CAN-SKIP-UNTIL shorter than a segment (packagers get it wrong: the spec asks for six
    // target durations): every segment starts before the boundary. The delta keeps the
    // last one; before, the skip ran past the end of the list and the worker panicked.
    let root = live_root("skip-all");
    for until in ["1.0", "0", "-5"] {
        let text = ll_playlist(0, 4, 0, 2, false)
            .replace("CAN-SKIP-UNTIL=6.0", &format!("CAN-SKIP-UNTIL={until}"));
        publish(&root.join("live"), "index.m3u8", &text);
        let s = Server::start(&root, &[]);
        let r = s.get(&get("/live/index.m3u8?_HLS_skip=YES"));
        assert_eq!(r.status, 200, "CAN-SKIP-UNTIL={until}");
        let body = String::from_utf8(r.body).unwrap();
        assert!(
            body.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n") && body.contains("s4.ts\n"),
            "CAN-SKIP-UNTIL={until}: {body}"
        );
        // The same worker answers the next request (it used to be gone).
        assert_eq!(s.get(&get("/live/index.m3u8")).status, 200);
    }
}

#[test]
fn preload_hinted_part_blocks_until_complete() {
    let root = live_root("hint");
    let dir = root.join("live");
    let s = Server::start(&root, &[]);
    // The playlist must have been seen for the hint to be known (players always load it first).
    assert_eq!(s.get(&get("/live/index.m3u8")).status, 200);
    let pub_dir = dir.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        // Part written under a temporary name, then renamed: only then may it be served.
        std::fs::write(pub_dir.join(".s6.1.ts.tmp"), vec![7u8; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        std::fs::rename(pub_dir.join(".s6.1.ts.tmp"), pub_dir.join("s6.1.ts")).unwrap();
    });
    let (r, t) = timed(&s, "/live/s6.1.ts");
    publisher.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, vec![7u8; 1000]);
    assert!(
        t >= Duration::from_millis(650),
        "served before the rename ({t:?})"
    );
    // A name no playlist mentions is a plain 404 at once.
    let (r, t) = timed(&s, "/live/s99.0.ts");
    assert_eq!(r.status, 404);
    assert!(t < Duration::from_millis(300));
}

#[test]
fn a_parked_client_that_leaves_is_freed() {
    let root = live_root("leave");
    let s = Server::start(&root, &["--admin", "0"]);
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut c = s.connect();
        c.write_all(get("/live/index.m3u8?_HLS_msn=7").as_bytes())
            .unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.metric("corestream_connections_active"), 50.0);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.metric("corestream_connections_active"), 0.0);
}

#[test]
fn many_parked_requests_all_answered_on_one_publish() {
    let root = live_root("fanout");
    let s = Server::start(&root, &[]);
    let mut held = Vec::new();
    for _ in 0..500 {
        let mut c = s.connect();
        c.write_all(get("/live/index.m3u8?_HLS_msn=6&_HLS_part=1").as_bytes())
            .unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    publish(
        &root.join("live"),
        "index.m3u8",
        &ll_playlist(0, 5, 2, 2, false),
    );
    for c in held.iter_mut() {
        let r = read_response(c, false).unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "fan-out took {:?}",
        t.elapsed()
    );
}

/// Ask for `path` on the kept-alive connection `c` and return the body.
fn body_on(c: &mut (impl std::io::Read + Write), path: &str) -> String {
    c.write_all(get(path).as_bytes()).unwrap();
    let r = read_response(c, false).expect("response");
    assert_eq!(r.status, 200, "{path}");
    String::from_utf8(r.body).unwrap()
}

#[test]
fn a_playlist_path_that_comes_to_name_another_file_is_served_new_at_once() {
    path_comes_to_name_another_file(Mode::Plain);
}

#[test]
fn a_playlist_path_that_comes_to_name_another_file_is_served_new_at_once_over_https() {
    path_comes_to_name_another_file(Mode::Tls);
}

fn path_comes_to_name_another_file(mode: Mode) {
    // A hit on a kept-alive connection may be answered without a stat of the file when
    // inotify watches stand for it; every way the path can come to name other bytes must
    // still be seen by the very next request.
    let root = media_root(&format!("renamed-dirs-{mode:?}"));
    let mk = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        publish(
            p.parent().unwrap(),
            p.file_name().unwrap().to_str().unwrap(),
            text,
        );
    };
    mk("a/s/p.m3u8", "#EXTM3U\n#A1\n");
    mk("b/x/y/p.m3u8", "#EXTM3U\n#B1\n");
    mk("c/p.m3u8", "#EXTM3U\n#C1\n");
    mk("d/v1/p.m3u8", "#EXTM3U\n#D1\n");
    mk("d/v2/p.m3u8", "#EXTM3U\n#D2\n");
    std::os::unix::fs::symlink("v1", root.join("d/cur")).unwrap();
    mk("e/p.m3u8", "#EXTM3U\n#E1\n");
    std::fs::create_dir_all(root.join("elsewhere")).unwrap();
    std::fs::hard_link(root.join("e/p.m3u8"), root.join("elsewhere/q.m3u8")).unwrap();
    let s = Server::start_mode(mode, &root, &[]);
    let mut c = s.client();
    let paths = [
        "/a/s/p.m3u8",
        "/b/x/y/p.m3u8",
        "/c/p.m3u8",
        "/d/cur/p.m3u8",
        "/e/p.m3u8",
    ];
    // Twice: the first fills the cache, the second is a hit on a connection the server
    // read before its inotify drain.
    for _ in 0..2 {
        let seen: Vec<String> = paths.iter().map(|p| body_on(&mut c, p)).collect();
        assert_eq!(
            seen,
            [
                "#EXTM3U\n#A1\n",
                "#EXTM3U\n#B1\n",
                "#EXTM3U\n#C1\n",
                "#EXTM3U\n#D1\n",
                "#EXTM3U\n#E1\n"
            ]
        );
    }

    // The stream's directory swapped for a new one.
    std::fs::rename(root.join("a/s"), root.join("a/s.old")).unwrap();
    mk("a/s.new/p.m3u8", "#EXTM3U\n#A2\n");
    std::fs::rename(root.join("a/s.new"), root.join("a/s")).unwrap();
    assert_eq!(body_on(&mut c, "/a/s/p.m3u8"), "#EXTM3U\n#A2\n");

    // A directory two levels up moved away and the tree made again.
    std::fs::rename(root.join("b"), root.join("b.old")).unwrap();
    mk("b/x/y/p.m3u8", "#EXTM3U\n#B2\n");
    assert_eq!(body_on(&mut c, "/b/x/y/p.m3u8"), "#EXTM3U\n#B2\n");

    // Rewritten in place, asked for while the writer still holds it open, then after close.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(root.join("c/p.m3u8"))
            .unwrap();
        f.write_all(b"#EXTM3U\n#C2\n").unwrap();
        assert_eq!(body_on(&mut c, "/c/p.m3u8"), "#EXTM3U\n#C2\n");
        f.write_all(b"#C3\n").unwrap();
    }
    assert_eq!(body_on(&mut c, "/c/p.m3u8"), "#EXTM3U\n#C2\n#C3\n");

    // A symlinked directory pointed elsewhere (the new link renamed over the old).
    std::os::unix::fs::symlink("v2", root.join("d/cur.new")).unwrap();
    std::fs::rename(root.join("d/cur.new"), root.join("d/cur")).unwrap();
    assert_eq!(body_on(&mut c, "/d/cur/p.m3u8"), "#EXTM3U\n#D2\n");

    // Rewritten in place through another link in a directory nobody asked for.
    std::fs::write(root.join("elsewhere/q.m3u8"), "#EXTM3U\n#E2 longer\n").unwrap();
    assert_eq!(body_on(&mut c, "/e/p.m3u8"), "#EXTM3U\n#E2 longer\n");
}
