//! The HTTP/1.1 surface as players see it, against the real binary over real sockets: every
//! test runs twice, against the plain listener (`plain::`) and over TLS (`tls::`), the
//! same code both times.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nseg0.ts\n";

fn fixture(name: &str) -> PathBuf {
    let root = media_root(name);
    std::fs::create_dir_all(root.join("live/720p")).unwrap();
    std::fs::write(root.join("live/720p/index.m3u8"), PLAYLIST).unwrap();
    let seg: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("live/720p/seg0.ts"), &seg).unwrap();
    std::fs::write(root.join("live/manifest.mpd"), "<MPD/>").unwrap();
    std::fs::write(root.join("live/init.m4s"), "init").unwrap();
    std::fs::write(root.join("live/sub.vtt"), "WEBVTT\n").unwrap();
    std::fs::write(root.join(".secret"), "no").unwrap();
    std::fs::write(root.join("empty.ts"), "").unwrap();
    root
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn playlist_headers(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("headers"), &[]);
    let r = s.get(&get("/live/720p/index.m3u8"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PLAYLIST.as_bytes());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        r.header("content-length"),
        Some(PLAYLIST.len().to_string().as_str())
    );
    assert_eq!(r.header("cache-control"), Some("max-age=1"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("server"), Some("corestream"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Content-Length, Content-Range")
    );
    assert!(httpdate::parse_http_date(r.header("date").unwrap()).is_ok());
    assert!(httpdate::parse_http_date(r.header("last-modified").unwrap()).is_ok());
    let etag = r.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 4,
        "{etag}"
    );
    assert_eq!(r.header("connection"), None);
}

fn mime_and_cache_by_kind(mode: Mode) {
    let s = Server::start_mode(
        mode,
        &fixture("mime"),
        &["--cache-segment", "public, max-age=600"],
    );
    let seg = s.get(&get("/live/720p/seg0.ts"));
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(seg.header("cache-control"), Some("public, max-age=600"));
    assert_eq!(seg.body.len(), 10_000);
    let mpd = s.get(&get("/live/manifest.mpd"));
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    assert_eq!(mpd.header("cache-control"), Some("max-age=1"));
    assert_eq!(
        s.get(&get("/live/init.m4s")).header("content-type"),
        Some("video/iso.segment")
    );
    assert_eq!(
        s.get(&get("/live/sub.vtt")).header("content-type"),
        Some("text/vtt")
    );
    let missing = s.get(&get("/live/720p/seg9.ts"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-cache"));
    assert!(!missing.body.is_empty());
}

fn head_has_length_no_body(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("head"), &[]);
    let mut c = s.client();
    c.write_all(b"HEAD /live/720p/seg0.ts HTTP/1.1\r\nHost: t\r\n\r\nGET /live/init.m4s HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let h = read_response(&mut c, true).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("10000"));
    // The next response starts right after the HEAD's head: no body bytes were sent.
    let g = read_response(&mut c, false).unwrap();
    assert_eq!(g.body, b"init");
}

fn keep_alive_reuse_and_pipelining(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("pipeline"), &[]);
    let mut c = s.client();
    for _ in 0..3 {
        c.write_all(get("/live/720p/index.m3u8").as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut c, false).unwrap().status, 200);
    }
    // Three pipelined requests in one write come back in order.
    let all = format!(
        "{}{}{}",
        get("/live/init.m4s"),
        get("/nope.ts"),
        get("/live/manifest.mpd")
    );
    c.write_all(all.as_bytes()).unwrap();
    let a = read_response(&mut c, false).unwrap();
    let b = read_response(&mut c, false).unwrap();
    let d = read_response(&mut c, false).unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"init"[..]));
    assert_eq!(b.status, 404);
    assert_eq!((d.status, d.body.as_slice()), (200, &b"<MPD/>"[..]));
    // Byte-at-a-time delivery of a request still parses.
    for b in get("/live/init.m4s").as_bytes() {
        c.write_all(&[*b]).unwrap();
        c.flush().unwrap();
    }
    assert_eq!(read_response(&mut c, false).unwrap().body, b"init");
}

fn connection_close_and_http10(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("close"), &[]);
    let mut c = s.client();
    c.write_all(b"GET /live/init.m4s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut c));

    let mut c = s.client();
    c.write_all(b"GET /live/init.m4s HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut c));

    let mut c = s.client();
    c.write_all(b"GET /live/init.m4s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.write_all(b"GET /live/init.m4s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).unwrap().status, 200);
}

fn half_close_still_gets_response(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("halfclose"), &[]);
    let mut c = s.client();
    c.write_all(get("/live/720p/seg0.ts").as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!(r.body.len(), 10_000);
    assert!(closed(&mut c));
}

fn seg_bytes() -> Vec<u8> {
    (0..10_000u32).map(|i| (i % 251) as u8).collect()
}

fn range_forms(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("range"), &[]);
    let data = seg_bytes();
    let range = |v: &str| {
        s.get(&format!(
            "GET /live/720p/seg0.ts HTTP/1.1\r\nHost: t\r\nRange: {v}\r\n\r\n"
        ))
    };
    let r = range("bytes=0-99");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/10000"));
    assert_eq!(r.body, &data[..100]);
    let r = range("bytes=9990-");
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body, &data[9990..]);
    let r = range("bytes=-10");
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body, &data[9990..]);
    let r = range("bytes=5000-999999");
    assert_eq!(r.header("content-range"), Some("bytes 5000-9999/10000"));
    assert_eq!(r.body.len(), 5000);
    let r = range("bytes=0-0");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..1]));
    for bad in ["bytes=10000-", "bytes=-0", "bytes=99999999999999999999999-"] {
        let r = range(bad);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"), "{bad}");
    }
    // Several ranges, or nonsense: the whole file with 200 (documented in README).
    for full in ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2"] {
        let r = range(full);
        assert_eq!((r.status, r.body.len()), (200, 10_000), "{full}");
    }
    // Empty file: nothing is satisfiable.
    let r = s.get("GET /empty.ts HTTP/1.1\r\nHost: t\r\nRange: bytes=0-\r\n\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */0"))
    );
    // HEAD ignores Range (RFC 9110 14.2).
    let r = s.get("HEAD /live/720p/seg0.ts HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n");
    assert_eq!((r.status, r.header("content-length")), (200, Some("10000")));
}

fn conditional_requests(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("cond"), &[]);
    let first = s.get(&get("/live/720p/seg0.ts"));
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let with = |h: &str| {
        s.get(&format!(
            "GET /live/720p/seg0.ts HTTP/1.1\r\nHost: t\r\n{h}\r\n\r\n"
        ))
    };
    let r = with(&format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("max-age=1209600"));
    assert_eq!(with("If-None-Match: \"other\"\r\n").status, 200);
    assert_eq!(
        with(&format!("If-None-Match: \"a\", {etag}\r\n")).status,
        304
    );
    assert_eq!(with("If-None-Match: *\r\n").status, 304);
    assert_eq!(with(&format!("If-Modified-Since: {lm}\r\n")).status, 304);
    assert_eq!(
        with("If-Modified-Since: Thu, 01 Jan 2015 00:00:00 GMT\r\n").status,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        with(&format!(
            "If-None-Match: \"x\"\r\nIf-Modified-Since: {lm}\r\n"
        ))
        .status,
        200
    );
    let r = with(&format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"));
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = with("Range: bytes=0-9\r\nIf-Range: \"stale\"\r\n");
    assert_eq!((r.status, r.body.len()), (200, 10_000));
    let r = with(&format!("Range: bytes=0-9\r\nIf-Range: {lm}\r\n"));
    assert_eq!(r.status, 206);
    assert_eq!(with("If-Match: \"stale\"\r\n").status, 412);
    assert_eq!(with(&format!("If-Match: {etag}\r\n")).status, 200);
    // Replacing the file changes the validator.
    let root = fixture("cond2");
    let s2 = Server::start_mode(mode, &root, &[]);
    let e1 = s2
        .get(&get("/live/init.m4s"))
        .header("etag")
        .unwrap()
        .to_string();
    std::fs::write(root.join("live/init.m4s.tmp"), "init2").unwrap();
    std::fs::rename(root.join("live/init.m4s.tmp"), root.join("live/init.m4s")).unwrap();
    let r = s2.get(&format!(
        "GET /live/init.m4s HTTP/1.1\r\nHost: t\r\nIf-None-Match: {e1}\r\n\r\n"
    ));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"init2"[..]));
}

fn cors(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("cors"), &[]);
    let r = s.get("OPTIONS /live/720p/seg0.ts HTTP/1.1\r\nHost: t\r\nOrigin: https://player.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: range\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "HEAD", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Range"));
    assert_eq!(
        r.header("content-length"),
        None,
        "204 carries no Content-Length"
    );

    let s = Server::start_mode(
        mode,
        &fixture("cors2"),
        &["--cors-origins", "https://a.example, https://b.example"],
    );
    let r = s.get("GET /live/init.m4s HTTP/1.1\r\nHost: t\r\nOrigin: https://b.example\r\n\r\n");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = s.get("GET /live/init.m4s HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(r.status, 200);
}

fn error_statuses(mode: Mode) {
    let s = Server::start_mode(mode, &fixture("errors"), &[]);
    let r = s.get("DELETE /live/init.m4s HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        s.get("GET /x HTTP/1.1\r\n\r\n").status,
        400,
        "HTTP/1.1 needs Host"
    );
    assert_eq!(s.get("GARBAGE\r\n\r\n").status, 400);
    assert_eq!(s.get("GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n").status, 400);
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    assert_eq!(s.get(&long).status, 414);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(s.get(&big).status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut c = s.client();
    let _ = c.write_all(many.as_bytes());
    assert_eq!(read_response(&mut c, false).unwrap().status, 431);
    assert_eq!(s.get("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").status, 505);
    // Malformed requests close the connection: the byte stream cannot be trusted.
    let mut c = s.client();
    c.write_all(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).unwrap().status, 400);
    assert!(closed(&mut c));
    // Directory and root: never listed.
    assert_eq!(s.get(&get("/live/")).status, 404);
    assert_eq!(s.get(&get("/live")).status, 404);
    assert_eq!(s.get(&get("/")).status, 404);
}

fn traversal_is_refused(mode: Mode) {
    let root = fixture("traversal");
    let outside = root.with_extension("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.ts"), "outside").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.ts"), root.join("link.ts")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.ts")).unwrap();
    std::os::unix::fs::symlink("live/init.m4s", root.join("inside.m4s")).unwrap();
    let s = Server::start_mode(mode, &root, &[]);
    for target in [
        "/../etc/passwd",
        "/live/../../etc/passwd",
        "/%2e%2e%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/link.ts",
        "/passwd.ts",
        "/.secret",
        "/live/%2esecret",
        "/proc/self/environ",
    ] {
        let r = s.get(&get(target));
        assert_eq!(r.status, 404, "{target}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(root.to_str().unwrap()),
            "path leaked for {target}"
        );
    }
    assert_eq!(s.get(&get("/live/init.m4s%00.ts")).status, 400);
    // A symlink that stays inside the root is fine.
    assert_eq!(s.get(&get("/inside.m4s")).body, b"init");
    // Absolute-form targets are accepted (RFC 9112 3.2.2).
    assert_eq!(
        s.get("GET http://t/live/init.m4s HTTP/1.1\r\nHost: t\r\n\r\n")
            .body,
        b"init"
    );
}

fn large_file_slow_reader_intact(mode: Mode) {
    let root = media_root("large");
    let mut data = Vec::with_capacity(50 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while data.len() < 50 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("big.mp4"), &data).unwrap();
    let s = Server::start_mode(mode, &root, &[]);
    let mut c = s.client();
    c.write_all(get("/big.mp4").as_bytes()).unwrap();
    // Read the head, then the body in small sips with pauses: the server must resume
    // sendfile on each writable event and deliver every byte.
    let mut got = Vec::with_capacity(data.len() + 1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sips = 0;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(p) = find(&got, b"\r\n\r\n") {
            if got.len() - p - 4 >= data.len() {
                break;
            }
        }
        sips += 1;
        if sips % 16 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let p = find(&got, b"\r\n\r\n").unwrap();
    let body = &got[p + 4..];
    assert_eq!(body.len(), data.len());
    assert!(body == data.as_slice(), "content differs");
    assert!(sips > 50, "the transfer should have needed many reads");
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn shrinking_file_closes_connection(mode: Mode) {
    let root = media_root("shrink");
    let data = vec![7u8; 32 << 20];
    std::fs::write(root.join("s.ts"), &data).unwrap();
    let s = Server::start_mode(mode, &root, &[]);
    let mut c = s.client();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(get("/s.ts").as_bytes()).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(n > 0);
    // Truncate in place while the server is mid-send.
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("s.ts"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut total = n;
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => total += k,
            // Over TLS the cut shows as TCP ending without close_notify: a truncation the
            // client can tell from a complete response.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                break
            }
            Err(e) => panic!("server hung instead of closing: {e}"),
        }
    }
    assert!(
        total < data.len(),
        "must not pretend the full body was sent"
    );
    // The server keeps serving others.
    std::fs::write(root.join("ok.ts"), "fine").unwrap();
    assert_eq!(s.get(&get("/ok.ts")).body, b"fine");
}

/// Headers of `r` but Date, in order.
fn heads_but_date(r: &Response) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
        .cloned()
        .collect()
}

fn repeated_playlist_gets_match_the_full_answer(mode: Mode) {
    // A worker keeps whole responses for bare GETs of playlists in memory and sends them
    // again to the same request on a kept-alive connection: every request that differs in
    // anything the answer depends on must still get its own answer.
    let root = fixture(&format!("kept-{mode:?}"));
    let s = Server::start_mode(mode, &root, &[]);
    let mut c = s.client();
    let mut ask = |raw: &str| {
        c.write_all(raw.as_bytes()).unwrap();
        read_response(&mut c, raw.starts_with("HEAD")).expect("response")
    };
    let p = "/live/720p/index.m3u8";
    let first = ask(&get(p));
    assert_eq!(first.status, 200);
    for _ in 0..3 {
        let again = ask(&get(p));
        assert_eq!(again.status, 200);
        assert_eq!(again.body, first.body);
        assert_eq!(heads_but_date(&again), heads_but_date(&first));
    }
    // The Date follows the clock, not the first answer.
    let d0 = httpdate::parse_http_date(first.header("date").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let later = ask(&get(p));
    let d1 = httpdate::parse_http_date(later.header("date").unwrap()).unwrap();
    assert!(d1 > d0, "Date did not move: {d0:?} then {d1:?}");
    assert_eq!(heads_but_date(&later), heads_but_date(&first));

    let etag = first.header("etag").unwrap().to_string();
    let with = |h: &str| format!("GET {p} HTTP/1.1\r\nHost: t\r\n{h}\r\n\r\n");
    assert_eq!(ask(&with(&format!("If-None-Match: {etag}"))).status, 304);
    let ranged = ask(&with("Range: bytes=0-3"));
    assert_eq!((ranged.status, ranged.body.as_slice()), (206, &b"#EXT"[..]));
    let head = ask(&format!("HEAD {p} HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_eq!((head.status, head.body.len()), (200, 0));
    let cors = ask(&with("Origin: https://player.example"));
    assert_eq!(
        cors.header("access-control-allow-origin"),
        Some("*"),
        "{:?}",
        cors.headers
    );
    let query = ask(&get(&format!("{p}?session=1")));
    assert_eq!((query.status, &query.body), (200, &first.body));
    assert_eq!(ask(&get(p)).body, first.body);

    // A new version is what the next bare GET gets, with its own validators.
    let v2 = PLAYLIST.replace("seg0.ts", "seg0.ts\n#EXTINF:2.0,\nseg1.ts");
    publish(&root.join("live/720p"), "index.m3u8", &v2);
    let next = ask(&get(p));
    assert_eq!(next.body, v2.as_bytes());
    assert_ne!(next.header("etag"), first.header("etag"));
    assert_eq!(ask(&get(p)).body, v2.as_bytes());

    // HTTP/1.0 and Connection: close are answered as such, then the connection ends.
    let old = ask(&format!(
        "GET {p} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    ));
    assert_eq!(old.header("connection"), Some("keep-alive"));
    let last = ask(&with("Connection: close"));
    assert_eq!(last.header("connection"), Some("close"));
    assert!(closed(&mut c));
}

/// Each test of the suite, once per listener.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(#[test] fn $name() { super::$name(super::Mode::Plain) })*
        }
        mod tls {
            $(#[test] fn $name() { super::$name(super::Mode::Tls) })*
        }
    };
}

suite!(
    playlist_headers,
    mime_and_cache_by_kind,
    head_has_length_no_body,
    keep_alive_reuse_and_pipelining,
    connection_close_and_http10,
    half_close_still_gets_response,
    range_forms,
    conditional_requests,
    cors,
    error_statuses,
    traversal_is_refused,
    large_file_slow_reader_intact,
    shrinking_file_closes_connection,
    repeated_playlist_gets_match_the_full_answer,
);
