//! The ingest port (issue 16): packagers PUT and DELETE objects, viewers get them at once,
//! growing segments chunk by chunk. Real server processes, real sockets, real files.

mod common;

use common::{media_root, read_response, Response, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn ingest(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.ingest.expect("started without --ingest")).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Heads and bodies are separate writes: no Nagle delay between them.
    c.set_nodelay(true).unwrap();
    c
}

fn start(root: &Path, extra: &[&str]) -> Server {
    start_env(root, &[], extra)
}

fn start_env(root: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
    let mut args = vec!["--ingest", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start_env(root, env, &args)
}

/// One worker, and a debug-build fault hook that panics on a pushed chunk containing BOOM.
fn start_boom(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--workers", "1"];
    args.extend_from_slice(extra);
    start_env(root, &[("CORESTREAM_DEBUG_PANIC_PUSH", "BOOM")], &args)
}

/// PUT `body` with Content-Length on `c`; the answer.
fn put(c: &mut TcpStream, path: &str, body: &[u8], extra: &str) -> Response {
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: i\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .unwrap();
    c.write_all(body).unwrap();
    read_response(c, false).expect("answer to PUT")
}

/// PUT `chunks` with chunked encoding on `c`; the answer.
fn put_chunked(c: &mut TcpStream, path: &str, chunks: &[&[u8]]) -> Response {
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: i\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for ch in chunks {
        write!(c, "{:x}\r\n", ch.len()).unwrap();
        c.write_all(ch).unwrap();
        c.write_all(b"\r\n").unwrap();
    }
    c.write_all(b"0\r\n\r\n").unwrap();
    read_response(c, false).expect("answer to chunked PUT")
}

fn request(c: &mut TcpStream, raw: &str) -> Response {
    c.write_all(raw.as_bytes()).unwrap();
    read_response(c, raw.starts_with("HEAD")).expect("answer")
}

/// Files in `dir` and below, relative, sorted (dotfiles included: temporaries must not
/// linger).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn put_with_length_and_chunked_many_on_one_connection_then_delete() {
    let root = media_root("ingest-basic");
    let log = std::env::temp_dir().join(format!("corestream-ingest-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = start(&root, &["--access-log", log.to_str().unwrap()]);
    let mut c = ingest(&s);
    let mut seen = std::collections::HashSet::new();
    // Keep-alive: many objects on one connection, both framings, creations and replacements.
    for i in 0..40 {
        let body = format!("segment {i} ").repeat(100 + i);
        let path = format!("/live/r{}/seg{}.ts", i % 3, i % 7);
        let r = if i % 2 == 0 {
            put(&mut c, &path, body.as_bytes(), "")
        } else {
            let (a, b) = body.as_bytes().split_at(body.len() / 3);
            put_chunked(&mut c, &path, &[a, b])
        };
        let new = seen.insert(path.clone());
        assert_eq!(r.status, if new { 201 } else { 204 }, "{path}: {r:?}");
        let got = s.get(&format!("GET {path} HTTP/1.1\r\nHost: v\r\n\r\n"));
        assert_eq!(got.status, 200);
        assert_eq!(got.body, body.as_bytes(), "{path}");
        assert_eq!(got.header("content-type"), Some("video/mp2t"));
    }
    assert!(
        tree(&root).iter().all(|f| !f.contains("/.")),
        "{:?}",
        tree(&root)
    );
    // A pushed playlist replaces the one viewers get at once.
    let r = put(&mut c, "/live/a.m3u8", b"#EXTM3U\n#v1\n", "");
    assert_eq!(r.status, 201);
    let v1 = s.get("GET /live/a.m3u8 HTTP/1.1\r\nHost: v\r\n\r\n");
    assert_eq!(v1.body, b"#EXTM3U\n#v1\n");
    assert_eq!(
        put(&mut c, "/live/a.m3u8", b"#EXTM3U\n#v2\n", "").status,
        204
    );
    let v2 = s.get("GET /live/a.m3u8 HTTP/1.1\r\nHost: v\r\n\r\n");
    assert_eq!(v2.body, b"#EXTM3U\n#v2\n");

    // DELETE, as ffmpeg sends it (chunked, empty body), and a plain one.
    let r = request(
        &mut c,
        "DELETE /live/r0/seg0.ts HTTP/1.1\r\nHost: i\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert!(!root.join("live/r0/seg0.ts").exists());
    let r = request(
        &mut c,
        "DELETE /live/r0/seg0.ts HTTP/1.1\r\nHost: i\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        s.get("GET /live/r0/seg0.ts HTTP/1.1\r\nHost: v\r\n\r\n")
            .status,
        404
    );
    let r = request(&mut c, "DELETE /live/a.m3u8 HTTP/1.1\r\nHost: i\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(
        s.get("GET /live/a.m3u8 HTTP/1.1\r\nHost: v\r\n\r\n").status,
        404,
        "a deleted playlist is not served from the cache"
    );

    // OPTIONS says what the port takes; anything else is 405 with the same list.
    let r = request(&mut c, "OPTIONS /live/x.ts HTTP/1.1\r\nHost: i\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("PUT, DELETE, OPTIONS"));
    let r = request(&mut c, "GET /live/r1/seg1.ts HTTP/1.1\r\nHost: i\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PUT, DELETE, OPTIONS"));
    // Still the same connection.
    assert_eq!(put(&mut c, "/live/last.ts", b"x", "").status, 201);

    // Expect: 100-continue gets its interim answer before the body is sent.
    write!(
        c,
        "PUT /live/e.ts HTTP/1.1\r\nHost: i\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"abc").unwrap();
    assert_eq!(read_response(&mut c, false).unwrap().status, 201);

    // Metrics and the viewers' port refusing writes.
    let r = s.get("PUT /live/x.ts HTTP/1.1\r\nHost: v\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert!(s.metric("corestream_ingest_bytes_total") > 10_000.0);
    let (_, text) = s.admin_get("/metrics");
    assert!(
        text.contains("corestream_ingest_requests_total{method=\"PUT\",status=\"201\"}"),
        "{text}"
    );
    assert!(text.contains("corestream_ingest_upload_duration_seconds_count"));
    // Each upload is in the access log, with the bytes it carried.
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(
        lines.contains("\"PUT /live/e.ts HTTP/1.1\" 201 3 "),
        "{lines}"
    );
    assert!(
        lines.contains("\"DELETE /live/r0/seg0.ts HTTP/1.1\" 404 0 "),
        "{lines}"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn who_may_push() {
    let root = media_root("ingest-auth");
    let token = root.join("token");
    std::fs::write(&token, "t0k3n-abc\n").unwrap();
    let media = root.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let s = start(&media, &["--ingest-token-file", token.to_str().unwrap()]);
    let mut c = ingest(&s);
    let r = put(&mut c, "/a.ts", b"data", "");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"corestream ingest\"")
    );
    let mut c = ingest(&s);
    let r = put(&mut c, "/a.ts", b"data", "Authorization: Bearer wrong\r\n");
    assert_eq!(r.status, 403);
    let mut c = ingest(&s);
    let r = put(
        &mut c,
        "/a.ts",
        b"data",
        "Authorization: Bearer t0k3n-abc\r\n",
    );
    assert_eq!(r.status, 201);
    assert_eq!(tree(&media), ["a.ts"]);
    // Rotating the token takes effect without a restart.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&token, "rotated\n").unwrap();
    let r = put(
        &mut c,
        "/b.ts",
        b"data",
        "Authorization: Bearer t0k3n-abc\r\n",
    );
    assert_eq!(r.status, 403);
    let mut c = ingest(&s);
    let r = put(
        &mut c,
        "/b.ts",
        b"data",
        "Authorization: Bearer rotated\r\n",
    );
    assert_eq!(r.status, 201);
    drop(s);

    // An allow list that leaves loopback out refuses it, even with no token configured.
    let s = start(&media, &["--ingest-allow", "10.0.0.0/8,192.0.2.1"]);
    let mut c = ingest(&s);
    let r = put(&mut c, "/c.ts", b"data", "");
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("--ingest-allow"));
    drop(s);
    let s = start(&media, &["--ingest-allow", "127.0.0.0/8"]);
    let mut c = ingest(&s);
    assert_eq!(put(&mut c, "/c.ts", b"data", "").status, 201);
    assert_eq!(tree(&media), ["a.ts", "b.ts", "c.ts"]);

    // Bad options are refused at start with the fix.
    for (args, says) in [
        (vec!["--ingest-allow", "10.0.0.0/33"], "--ingest-allow"),
        (
            vec!["--ingest-token-file", "/nonexistent/token"],
            "--ingest-token-file",
        ),
    ] {
        let mut full = vec![
            "--root",
            media.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--ingest",
            "127.0.0.1:0",
        ];
        full.extend(args);
        let out = Command::new(env!("CARGO_BIN_EXE_corestream"))
            .args(&full)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn hostile_paths_and_framing_store_nothing() {
    let base = media_root("ingest-hostile");
    let media = base.join("media");
    let outside = base.join("outside");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("escape")).unwrap();
    std::fs::write(media.join("afile"), b"x").unwrap();
    let s = start(&media, &[]);
    for (path, want) in [
        ("/../outside/x.ts", 400),
        ("/%2e%2e/outside/x.ts", 400),
        ("/a/../../outside/x.ts", 400),
        ("/.hidden.ts", 400),
        ("/live/.x/y.ts", 400),
        ("/a%00b.ts", 400),
        ("/a%zzb.ts", 400),
        ("/", 400),
        ("/dir/", 400),
        ("/seg.ts.tmp", 400),
        ("/escape/x.ts", 403),
        ("/escape/deeper/x.ts", 403),
        ("/afile/x.ts", 409),
    ] {
        let mut c = ingest(&s);
        let r = put(&mut c, path, b"payload", "");
        assert_eq!(
            r.status,
            want,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert!(tree(&outside).is_empty(), "{:?}", tree(&outside));
    assert_eq!(tree(&media), ["afile"]);

    // Framing that cannot be trusted is refused before anything is written.
    for (head, want) in [
        (
            "PUT /x.ts HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "PUT /x.ts HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        ("PUT /x.ts HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        ("PUT /x.ts HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            "PUT /x.ts HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        ("PUT /x.ts HTTP/1.1\r\nHost: i\r\n\r\n", 411),
        (
            "PUT /x.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            "PUT /x.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
            400,
        ),
    ] {
        let mut c = ingest(&s);
        let r = request(&mut c, head);
        assert_eq!(r.status, want, "{head:?}");
    }
    assert_eq!(tree(&media), ["afile"]);

    // Bare-LF heads are requests too; garbage and oversized heads get an answer and a close.
    let mut c = ingest(&s);
    let r = request(&mut c, "PUT /lf.ts HTTP/1.1\nContent-Length: 2\n\nok");
    assert_eq!(r.status, 201);
    let mut c = ingest(&s);
    assert_eq!(
        request(&mut c, "\x16\x03\x01\x02\x00\x01\r\n\r\n").status,
        400
    );
    let mut c = ingest(&s);
    let huge = format!(
        "PUT /x.ts HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(request(&mut c, &huge).status, 431);
    // Random bytes on many connections (a seeded generator): the port keeps answering.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut junk = Vec::new();
        for _ in 0..(x % 300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(
                b"PUT /a.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n0123456789abcdef;:\xff"
                    [(x % 60) as usize],
            );
        }
        let mut c = ingest(&s);
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = c.write_all(&junk);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    let mut c = ingest(&s);
    assert_eq!(put(&mut c, "/after.ts", b"still here", "").status, 201);
    assert!(tree(&outside).is_empty());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn aborted_and_oversized_uploads_leave_the_previous_version() {
    let root = media_root("ingest-abort");
    let s = start(&root, &["--ingest-max-bytes", "100000"]);
    let mut c = ingest(&s);
    assert_eq!(put(&mut c, "/live/seg.ts", b"version one", "").status, 201);

    // Content-Length announced, half sent, client gone.
    let mut c = ingest(&s);
    write!(
        c,
        "PUT /live/seg.ts HTTP/1.1\r\nContent-Length: 50000\r\n\r\n"
    )
    .unwrap();
    c.write_all(&[b'x'; 20000]).unwrap();
    drop(c);
    // Chunked, client gone mid-chunk.
    let mut c = ingest(&s);
    write!(
        c,
        "PUT /live/new.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    write!(c, "4000\r\n").unwrap();
    c.write_all(&[b'y'; 1000]).unwrap();
    drop(c);
    common::wait_for(
        "the aborted uploads to end",
        Duration::from_secs(10),
        || {
            s.admin_get("/metrics")
                .1
                .contains("corestream_ingest_requests_total{method=\"PUT\",status=\"400\"} 2\n")
        },
    );
    // Over the limit: announced (refused before the body) and chunked (cut when crossed).
    let mut c = ingest(&s);
    write!(
        c,
        "PUT /live/seg.ts HTTP/1.1\r\nContent-Length: 100001\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut c, false).unwrap().status, 413);
    let mut c = ingest(&s);
    let big = vec![b'z'; 60000];
    let r = put_chunked(&mut c, "/live/seg.ts", &[&big, &big]);
    assert_eq!(r.status, 413);

    let r = s.get("GET /live/seg.ts HTTP/1.1\r\nHost: v\r\n\r\n");
    assert_eq!(r.body, b"version one");
    assert_eq!(
        s.get("GET /live/new.ts HTTP/1.1\r\nHost: v\r\n\r\n").status,
        404
    );
    assert_eq!(tree(&root), ["live/seg.ts"]);
    let _ = std::fs::remove_dir_all(&root);
}

/// Read one chunk of a chunked body: its data, or None at the last chunk.
fn read_chunk(v: &mut impl Read) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        v.read_exact(&mut b).expect("chunk size line");
        line.push(b[0]);
    }
    let n = usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
        .expect("hex size");
    let mut data = vec![0u8; n + 2];
    v.read_exact(&mut data).expect("chunk data");
    assert_eq!(&data[n..], b"\r\n");
    data.truncate(n);
    (n > 0).then_some(data)
}

/// Read a response head; returns it as text.
fn read_head(v: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        v.read_exact(&mut b).expect("head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A chunked PUT of `path` whose first chunk is "hello", and a viewer that has its head and
/// that chunk (following the upload, which goes on).
fn upload_followed(s: &Server, path: &str) -> (TcpStream, TcpStream) {
    let mut up = ingest(s);
    write!(
        up,
        "PUT {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    .unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.connect();
    write!(v, "GET {path} HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
    let head = read_head(&mut v);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert_eq!(read_chunk(&mut v).unwrap(), b"hello");
    (up, v)
}

#[test]
fn viewers_get_each_chunk_before_the_next_is_sent() {
    let root = media_root("ingest-growing");
    let log = std::env::temp_dir().join(format!("corestream-growing-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = start(&root, &["--access-log", log.to_str().unwrap()]);
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /live/part7.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let first = vec![b'a'; 3000];
    write!(up, "{:x}\r\n", first.len()).unwrap();
    up.write_all(&first).unwrap();
    up.write_all(b"\r\n").unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    // Two viewers on different connections (and likely different workers).
    let mut viewers: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut v = s.connect();
            write!(v, "GET /live/part7.m4s HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
            let head = read_head(&mut v);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
            assert!(
                head.contains("Content-Type: video/iso.segment\r\n"),
                "{head}"
            );
            assert!(!head.contains("\r\nContent-Length:"), "{head}");
            v
        })
        .collect();
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); viewers.len()];
    for (v, g) in viewers.iter_mut().zip(&mut got) {
        while g.len() < first.len() {
            g.extend(read_chunk(v).expect("data"));
        }
    }
    // Each chunk reaches both viewers before the uploader sends the next one.
    let mut delays = Vec::new();
    for i in 0..20u8 {
        let chunk = vec![b'b' + i; 1000 + usize::from(i) * 300];
        let sent = Instant::now();
        write!(up, "{:x}\r\n", chunk.len()).unwrap();
        up.write_all(&chunk).unwrap();
        up.write_all(b"\r\n").unwrap();
        for (v, g) in viewers.iter_mut().zip(&mut got) {
            let want = g.len() + chunk.len();
            while g.len() < want {
                g.extend(read_chunk(v).expect("data before the upload ends"));
            }
            assert!(g.ends_with(&chunk), "chunk {i} arrived whole and in order");
        }
        delays.push(sent.elapsed());
    }
    up.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);
    for (v, g) in viewers.iter_mut().zip(&mut got) {
        assert!(read_chunk(v).is_none(), "the last chunk ends the body");
        let disk = std::fs::read(root.join("live/part7.m4s")).unwrap();
        assert_eq!(*g, disk);
    }
    delays.sort();
    eprintln!(
        "upload write -> both viewers read: median {:?}, max {:?} over {} chunks",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
    // Their access-log lines carry the bytes sent, known only once the object was complete
    // (the response had no Content-Length).
    let size = got[0].len();
    let line = format!("\"GET /live/part7.m4s HTTP/1.1\" 200 {size} ");
    common::wait_for("both viewers' log lines", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches(&line).count() == 2
    });
    // The viewer connection is still usable (keep-alive) and now gets the file.
    let v = &mut viewers[0];
    write!(v, "GET /live/part7.m4s HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
    let r = read_response(v, false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some());
    assert_eq!(r.body, got[0]);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn announced_length_is_passed_on_and_an_abort_closes_viewers() {
    let root = media_root("ingest-growing-cl");
    let log = std::env::temp_dir().join(format!("corestream-abort-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = start(&root, &["--access-log", log.to_str().unwrap()]);
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /v/seg.m4s HTTP/1.1\r\nContent-Length: 10000\r\n\r\n"
    )
    .unwrap();
    up.write_all(&[b'q'; 4000]).unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.connect();
    write!(v, "GET /v/seg.m4s HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
    let head = read_head(&mut v);
    assert!(head.contains("Content-Length: 10000\r\n"), "{head}");
    let mut body = vec![0u8; 4000];
    v.read_exact(&mut body).unwrap();
    common::wait_for("the viewer to be counted", Duration::from_secs(5), || {
        s.metric("corestream_growing_viewers") >= 1.0
    });
    up.write_all(&[b'q'; 6000]).unwrap();
    let mut rest = vec![0u8; 6000];
    v.read_exact(&mut rest).unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);

    // A chunked upload that aborts: the viewer's response never ends cleanly, and the name
    // goes back to the previous version.
    let (up, mut v) = upload_followed(&s, "/v/seg.m4s");
    drop(up);
    let mut tail = Vec::new();
    let _ = v.read_to_end(&mut tail);
    assert!(
        !tail.windows(5).any(|w| w == b"0\r\n\r\n"),
        "an aborted object must not end like a complete one: {tail:?}"
    );
    // Its log line says what it got: the 5 bytes sent before the abort.
    common::wait_for("the cut viewer's log line", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("\"GET /v/seg.m4s HTTP/1.1\" 200 5 ")
    });
    let r = s.get("GET /v/seg.m4s HTTP/1.1\r\nHost: v\r\n\r\n");
    assert_eq!(r.body, vec![b'q'; 10000]);

    // HTTP/1.0 viewers of an object of unknown length get it delimited by the close.
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /v/old.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    .unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.connect();
    write!(v, "GET /v/old.ts HTTP/1.0\r\n\r\n").unwrap();
    let head = read_head(&mut v);
    assert!(head.contains("Connection: close"), "{head}");
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    up.write_all(b"3\r\ndef\r\n0\r\n\r\n").unwrap();
    let mut body = Vec::new();
    v.read_to_end(&mut body).unwrap();
    assert_eq!(body, b"abcdef");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn hinted_parts_wait_for_their_upload_and_pushed_playlists_wake_blocking_reloads() {
    let root = media_root("ingest-ll");
    let s = start(&root, &[]);
    let mut c = ingest(&s);
    // Parts of segment 11 exist up to part 1; the playlist hints part 2.
    let pl = common::ll_playlist(5, 10, 2, 2, false);
    assert_eq!(put(&mut c, "/ll/media.m3u8", pl.as_bytes(), "").status, 201);
    let hinted = "s11.2.ts";
    assert!(pl.contains(&format!("PRELOAD-HINT:TYPE=PART,URI=\"{hinted}\"")));
    // The hinted part is asked for before its upload starts: held, not 404.
    let mut v = s.connect();
    write!(v, "GET /ll/{hinted} HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A blocking reload for the next part is held as well.
    let mut b = s.connect();
    write!(
        b,
        "GET /ll/media.m3u8?_HLS_msn=11&_HLS_part=2 HTTP/1.1\r\nHost: v\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /ll/{hinted} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n"
    )
    .unwrap();
    let head = read_head(&mut v);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(read_chunk(&mut v).unwrap(), b"part");
    up.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);
    assert!(read_chunk(&mut v).is_none());
    // The packager pushes the playlist that lists part 2: the held reload is answered with it.
    let next = common::ll_playlist(5, 10, 3, 2, false);
    let pushed = Instant::now();
    assert_eq!(
        put(&mut c, "/ll/media.m3u8", next.as_bytes(), "").status,
        204
    );
    let r = read_response(&mut b, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, next.as_bytes());
    eprintln!("held reload answered {:?} after the push", pushed.elapsed());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn growing_objects_over_https() {
    let root = media_root("ingest-tls");
    let s = Server::start_mode(
        common::Mode::Tls,
        &root,
        &["--ingest", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
    );
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /s.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let big = vec![b'k'; 200_000];
    write!(up, "{:x}\r\n", big.len()).unwrap();
    up.write_all(&big).unwrap();
    up.write_all(b"\r\n").unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.client();
    write!(v, "GET /s.m4s HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let head = read_head(&mut v);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let mut got = Vec::new();
    while got.len() < big.len() {
        got.extend(read_chunk(&mut v).unwrap());
    }
    up.write_all(b"3\r\nend\r\n0\r\n\r\n").unwrap();
    while let Some(c) = read_chunk(&mut v) {
        got.extend(c);
    }
    assert_eq!(got.len(), big.len() + 3);
    assert!(got.ends_with(b"end"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Run the server inside its own mount namespace on a 1 MiB tmpfs: the disk really fills.
#[test]
fn a_full_disk_is_507_and_keeps_the_previous_version() {
    let base = media_root("ingest-full");
    let media: PathBuf = base.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {m} && exec {bin} --root {m} --listen 127.0.0.1:0 --workers 2 --ingest 127.0.0.1:0 --admin 127.0.0.1:0",
        m = media.display(),
        bin = env!("CARGO_BIN_EXE_corestream"),
    );
    let s = Server::spawn(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    let mut c = ingest(&s);
    let v1 = vec![b'1'; 400_000];
    assert_eq!(put(&mut c, "/live/seg.ts", &v1, "").status, 201);
    let mut c = ingest(&s);
    let v2 = vec![b'2'; 900_000];
    let r = put(&mut c, "/live/seg.ts", &v2, "");
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    let mut c = ingest(&s);
    let r = put_chunked(&mut c, "/live/other.ts", &[&v2]);
    assert_eq!(r.status, 507);
    assert_eq!(
        s.get("GET /live/seg.ts HTTP/1.1\r\nHost: v\r\n\r\n").body,
        v1,
        "the previous version is still served"
    );
    assert_eq!(
        s.get("GET /live/other.ts HTTP/1.1\r\nHost: v\r\n\r\n")
            .status,
        404
    );
    // The space of the failed uploads came back: a small object still fits.
    let mut c = ingest(&s);
    assert_eq!(
        put(&mut c, "/live/small.ts", &[b's'; 100_000], "").status,
        201
    );
    // The host's directory (outside the namespace) never saw any of it.
    assert!(tree(&media).is_empty());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_push_that_panics_closes_its_viewers_and_frees_its_slot() {
    // A bug a packager's bytes reach (here a debug-build fault hook on a chunk containing
    // BOOM) used to end the push's thread with its slot, its in-flight count and the growing
    // object still taken: viewers following it waited, and with one slot the packager's
    // next connection got 503 for good.
    let root = media_root("ingest-panic");
    let s = start_boom(&root, &["--ingest-max-connections", "1"]);
    let (mut up, mut v) = upload_followed(&s, "/v/seg.m4s");
    up.write_all(b"4\r\nBOOM\r\n").unwrap();
    let mut tail = Vec::new();
    // The viewer's response ends, in a reset (it waited out its read timeout before).
    match v.read_to_end(&mut tail) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !tail.windows(5).any(|w| w == b"0\r\n\r\n"),
        "a cut object must not end like a complete one: {tail:?}"
    );
    common::wait_for(
        "the upload and its slot to be let go",
        Duration::from_secs(5),
        || {
            s.metric("corestream_ingest_uploads_in_flight") == 0.0
                && s.metric("corestream_ingest_connections") == 0.0
        },
    );
    let mut again = ingest(&s);
    assert_eq!(put(&mut again, "/v/seg.m4s", b"whole", "").status, 201);
    assert_eq!(
        s.get("GET /v/seg.m4s HTTP/1.1\r\nHost: v\r\n\r\n").body,
        b"whole"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_push_that_panics_leaves_another_push_of_the_same_path_alone() {
    // B starts pushing /v/seg.m4s, then A pushes the same path (new viewers get A's), then B
    // reaches a bug (fault hook on a chunk with BOOM). Only B's own object may be aborted:
    // the handler used to abort whatever the path named at that moment, which was A's.
    let root = media_root("ingest-panic-two");
    let s = start_boom(&root, &[]);
    let mut b = ingest(&s);
    write!(
        b,
        "PUT /v/seg.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n"
    )
    .unwrap();
    common::wait_for("B to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let (mut a, mut v) = {
        let mut a = ingest(&s);
        write!(
            a,
            "PUT /v/seg.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        .unwrap();
        common::wait_for("A to begin", Duration::from_secs(5), || {
            s.metric("corestream_ingest_uploads_in_flight") == 2.0
        });
        let mut v = s.connect();
        write!(v, "GET /v/seg.m4s HTTP/1.1\r\nHost: v\r\n\r\n").unwrap();
        let head = read_head(&mut v);
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert_eq!(read_chunk(&mut v).unwrap(), b"hello");
        (a, v)
    };
    b.write_all(b"4\r\nBOOM\r\n").unwrap();
    common::wait_for("B to be let go", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    a.write_all(b"5\r\nworld\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut a, false).unwrap().status, 201);
    assert_eq!(
        read_chunk(&mut v).expect("A's viewer goes on"),
        b"world",
        "A's viewer was cut by B's panic"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn request_heads_sent_a_byte_at_a_time_do_not_hold_the_ingest_slots() {
    // An exposed ingest port (token checked once the head is in): clients that send their
    // head a byte every 300 ms kept their connection slots for as long as they liked,
    // `--ingest-timeout` being a limit per read; with every slot held, the packager got 503
    // and the stream stopped. A head must now arrive whole within the timeout.
    let root = media_root("ingest-dribble");
    let s = start(
        &root,
        &["--ingest-timeout", "2s", "--ingest-max-connections", "2"],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribblers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = ingest(&s);
            c.write_all(b"PUT /live/x.ts HTTP/1.1\r\nX-Slow: ").unwrap();
            trickle(c, b"a", Duration::from_millis(300), stop.clone())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(3500));
    let mut c = ingest(&s);
    let r = put(&mut c, "/live/seg.ts", b"the packager's segment", "");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for d in dribblers {
        let held = d.join().unwrap();
        assert!(held < Duration::from_secs(6), "held {held:?}");
    }
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let _ = std::fs::remove_dir_all(&root);
}

/// On its own thread, send `piece` on `c` every `every` until `stop` or until the server
/// cuts it off (the writes fail, or the read sees the end); how long that took.
fn trickle(
    mut c: TcpStream,
    piece: &'static [u8],
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let t = Instant::now();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if c.write_all(piece).is_err() {
                break;
            }
            std::thread::sleep(every);
        }
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        t.elapsed()
    })
}

/// Send one chunk of a chunked upload.
fn push_chunk(up: &mut TcpStream, data: &[u8]) {
    write!(up, "{:x}\r\n", data.len()).unwrap();
    up.write_all(data).unwrap();
    up.write_all(b"\r\n").unwrap();
}

#[test]
fn ranges_of_an_object_still_arriving_are_answered_as_its_bytes_land() {
    // LL-HLS byte-range parts: a player asks for `bytes=first-last` of a segment still being
    // pushed. It used to get 200 and the whole segment from byte 0, which it would append
    // as the part.
    let root = media_root("ingest-range");
    let log = std::env::temp_dir().join(format!("corestream-range-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = start(&root, &["--access-log", log.to_str().unwrap()]);
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let range_get = |v: &mut TcpStream, path: &str, range: &str| {
        write!(
            v,
            "GET {path} HTTP/1.1\r\nHost: v\r\nRange: bytes={range}\r\n\r\n"
        )
        .unwrap();
    };

    // Length unknown (chunked upload), 1000 bytes in.
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /live/seg9.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    push_chunk(&mut up, &data[..1000]);
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    // A part already written: 206 with its bytes.
    let mut v = s.connect();
    range_get(&mut v, "/live/seg9.m4s", "100-199");
    let r = read_response(&mut v, false).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/*"));
    assert_eq!(r.body, &data[100..200]);
    // A part not all written yet, on the same connection: the head at once, the bytes as
    // they land.
    range_get(&mut v, "/live/seg9.m4s", "900-1499");
    let head = read_head(&mut v);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 900-1499/*\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 600\r\n"), "{head}");
    let mut got = vec![0u8; 100];
    v.read_exact(&mut got).unwrap();
    assert_eq!(got, &data[900..1000]);
    push_chunk(&mut up, &data[1000..2000]);
    let mut got = vec![0u8; 500];
    v.read_exact(&mut got).unwrap();
    assert_eq!(got, &data[1000..1500]);
    // Open-ended while the length is unknown: the whole body, as before.
    let mut whole = s.connect();
    range_get(&mut whole, "/live/seg9.m4s", "2000-");
    let head = read_head(&mut whole);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A range past the end the object turns out to have: its bytes, then the connection
    // ends short of the announced length.
    let mut short = s.connect();
    range_get(&mut short, "/live/seg9.m4s", "2500-3999");
    let head = read_head(&mut short);
    assert!(head.contains("Content-Length: 1500\r\n"), "{head}");
    push_chunk(&mut up, &data[2000..]);
    up.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);
    let mut rest = Vec::new();
    let _ = short.read_to_end(&mut rest);
    assert_eq!(
        rest,
        &data[2500..],
        "what exists, then the end of the connection"
    );

    // Length announced: any form of range, with the size, 416 past it.
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /live/seg10.m4s HTTP/1.1\r\nContent-Length: 3000\r\n\r\n"
    )
    .unwrap();
    up.write_all(&data[..1000]).unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut past = s.connect();
    range_get(&mut past, "/live/seg10.m4s", "5000-");
    let r = read_response(&mut past, false).unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */3000"));
    let mut tail = s.connect();
    range_get(&mut tail, "/live/seg10.m4s", "-500");
    let head = read_head(&mut tail);
    assert!(
        head.contains("Content-Range: bytes 2500-2999/3000\r\n"),
        "{head}"
    );
    up.write_all(&data[1000..]).unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);
    let mut got = vec![0u8; 500];
    tail.read_exact(&mut got).unwrap();
    assert_eq!(got, &data[2500..]);
    // Logged with the bytes of the range, not the offset reached in the object.
    common::wait_for("the ranges' log lines", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"GET /live/seg9.m4s HTTP/1.1\" 206 100 ")
            && text.contains("\"GET /live/seg9.m4s HTTP/1.1\" 206 600 ")
            && text.contains("\"GET /live/seg10.m4s HTTP/1.1\" 206 500 ")
    });
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn refused_clients_trickling_a_body_do_not_hold_the_ingest_slots() {
    // Answers that come before (or without) the token check read on a little, each read
    // with its own timeout: a client without a token sending a byte every 0.9 s after its
    // 401 (or after a 405, an OPTIONS) kept its slot for good, and with every slot held the
    // packager's PUT got 503.
    let root = media_root("ingest-trickle");
    let token = root.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let media = root.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let s = start(
        &media,
        &[
            "--ingest-token-file",
            token.to_str().unwrap(),
            "--ingest-timeout",
            "2s",
            "--ingest-max-connections",
            "3",
        ],
    );
    let heads = [
        "PUT /live/x.ts HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
        "POST /live/x.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "OPTIONS /live/x.ts HTTP/1.1\r\nContent-Length: 50000\r\n\r\n",
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tricklers: Vec<_> = heads
        .iter()
        .map(|head| {
            let mut c = ingest(&s);
            c.write_all(head.as_bytes()).unwrap();
            let piece: &'static [u8] = if head.contains("chunked") {
                b"1\r\na\r\n"
            } else {
                b"a"
            };
            trickle(c, piece, Duration::from_millis(900), stop.clone())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(4000));
    let mut c = ingest(&s);
    let r = put(
        &mut c,
        "/live/seg.ts",
        b"the packager's segment",
        "Authorization: Bearer s3cret\r\n",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tricklers {
        let held = t.join().unwrap();
        assert!(held < Duration::from_secs(8), "held {held:?}");
    }
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_http10_viewer_of_an_aborted_upload_sees_a_reset_not_a_complete_object() {
    // Its body is delimited by the close: ended with a FIN when the upload broke off, the
    // first bytes looked like the whole object, to the viewer and to a cache in front
    // (nginx proxies with HTTP/1.0 by default).
    let root = media_root("ingest-abort10");
    let s = start(&root, &[]);
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /v/cut.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    .unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.connect();
    write!(v, "GET /v/cut.ts HTTP/1.0\r\n\r\n").unwrap();
    let head = read_head(&mut v);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut got = [0u8; 3];
    v.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    drop(up);
    let mut rest = Vec::new();
    let end = v.read_to_end(&mut rest);
    assert!(
        matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the cut must not look like the end of the object: {end:?}, then {rest:?}"
    );
    // A HEAD with a Range of an object still arriving: the whole object's head (RFC 9110
    // 14.2: Range is for GET).
    let mut up = ingest(&s);
    write!(
        up,
        "PUT /v/h.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    .unwrap();
    common::wait_for("the upload to begin", Duration::from_secs(5), || {
        s.metric("corestream_ingest_uploads_in_flight") == 1.0
    });
    let mut v = s.connect();
    write!(
        v,
        "HEAD /v/h.ts HTTP/1.1\r\nHost: v\r\nRange: bytes=0-1\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut v);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("\r\nContent-Range:"), "{head}");
    // If-Match on an object that has no validator yet cannot hold.
    write!(
        v,
        "GET /v/h.ts HTTP/1.1\r\nHost: v\r\nIf-Match: \"x\"\r\n\r\n"
    )
    .unwrap();
    let r = read_response(&mut v, false).unwrap();
    assert_eq!(r.status, 412);
    up.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut up, false).unwrap().status, 201);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_client_waiting_for_100_continue_gets_its_answer_when_the_body_is_not_wanted() {
    // RFC 9110 10.1.1: answer the final status at once or send 100 Continue. A DELETE (or an
    // OPTIONS) announcing a body and waiting for 100 got neither: the server waited for the
    // body until --ingest-timeout, and so did the client.
    let root = media_root("ingest-expect");
    let s = start(&root, &["--ingest-timeout", "20s"]);
    let mut c = ingest(&s);
    assert_eq!(put(&mut c, "/e/gone.ts", b"x", "").status, 201);
    for head in [
        "DELETE /e/gone.ts HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        "OPTIONS /e/x.ts HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    ] {
        let mut c = ingest(&s);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        let r = read_response(&mut c, false).expect("an answer without sending the body");
        assert_eq!(r.status, 204, "{head}");
        assert_eq!(r.header("connection"), Some("close"), "{head}");
    }
    assert!(!root.join("e/gone.ts").exists());
    let _ = std::fs::remove_dir_all(&root);
}
