//! Hostile clients against the real binary: garbage, smuggling shapes, oversized and endless
//! heads, pipelining floods, Range and percent-encoding edge cases, foreign protocols,
//! half-close, resets mid-sendfile, clients that never read, and 10,000 connections opened
//! and dropped at once. Every case asserts the exact answer (status and whether the
//! connection stays usable or is closed). All cases run against one server, which must end
//! with its fd count back at the start and its RSS flat across a second round.

mod common;
use common::*;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const A: &[u8] = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#a\n";
const B: &[u8] = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#bb\n";
const BIG: usize = 24 << 20;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn fixture() -> PathBuf {
    let root = media_root("hostile");
    assert_eq!(root, fixture_dir());
    std::fs::create_dir_all(root.join("live")).unwrap();
    std::fs::write(root.join("x.ts"), pattern(1000)).unwrap();
    std::fs::write(root.join("live/seg.ts"), pattern(300)).unwrap();
    std::fs::write(root.join("a.m3u8"), A).unwrap();
    std::fs::write(root.join("b.m3u8"), B).unwrap();
    std::fs::write(root.join("caf\u{e9}.ts"), b"utf8 name").unwrap();
    std::fs::write(root.join("%2e%2e.ts"), b"literal percent name").unwrap();
    std::fs::write(root.join("big.ts"), pattern(BIG)).unwrap();
    std::fs::write(root.join("empty.ts"), b"").unwrap();
    root
}

/// Where `fixture` puts the media root (`common::media_root`'s naming).
fn fixture_dir() -> PathBuf {
    std::env::temp_dir().join(format!("corestream-test-hostile-{}", std::process::id()))
}

fn start(root: &std::path::Path) -> Server {
    Server::start(
        root,
        &[
            "--admin",
            "0",
            "--header-timeout",
            "3s",
            "--send-timeout",
            "2s",
        ],
    )
}

fn conn(s: &Server) -> TcpStream {
    let c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Then {
    /// The server closes the connection after this answer.
    Close,
    /// The connection stays usable: a following request is answered.
    KeepAlive,
}

/// EOF (or reset) within the read timeout, with no further bytes: nothing sent after
/// the answer, in particular no second response to smuggled bytes.
fn closed_cleanly(c: &mut TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    match c.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "{n} unexpected bytes after the answer: {:?}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(format!("no close: {e}")),
    }
}

/// Mismatches of the current round, reported together so one run shows every deviation.
static FAILURES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn fail(msg: String) {
    eprintln!("hostile: FAIL {msg}");
    FAILURES.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
}

/// Send `raw`, expect one answer with `status`, then `then`.
fn expect(s: &Server, case: &str, raw: &[u8], status: u16, then: Then) -> Response {
    let mut c = conn(s);
    // The server may close before reading everything: a failed write is fine, the
    // answer must still arrive.
    let _ = c.write_all(raw);
    let Some(r) = read_response(&mut c, raw.starts_with(b"HEAD")) else {
        fail(format!("{case}: no response"));
        return Response {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        };
    };
    if r.status != status {
        fail(format!("{case}: status {} (want {status})", r.status));
        return r;
    }
    match then {
        Then::Close => {
            if r.header("connection") != Some("close") {
                fail(format!("{case}: no Connection: close"));
            }
            if let Err(e) = closed_cleanly(&mut c) {
                fail(format!("{case}: {e}"));
            }
        }
        Then::KeepAlive => {
            if r.header("connection").is_some() {
                fail(format!("{case}: Connection: {:?}", r.header("connection")));
            }
            let _ = c.write_all(get("/a.m3u8").as_bytes());
            match read_response(&mut c, false) {
                Some(again) if again.body == A => {}
                other => fail(format!("{case}: connection not reusable: {other:?}")),
            }
        }
    }
    r
}

// ------------------------------------------------------------------ cases

fn garbage(s: &Server) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for seed in 0..40 {
        let len = 1 + seed * 97 % 3000;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.truncate(len);
        // Random bytes almost never form a method token followed by a space; make sure
        // the first byte is not one so the expected answer is exact.
        bytes[0] = 0x01;
        expect(
            s,
            &format!("random bytes #{seed}"),
            &bytes,
            400,
            Then::Close,
        );
    }
    let cases: &[(&str, &[u8], u16, Then)] = &[
        ("empty line then garbage", b"\r\n\x00\x01\x02\r\n\r\n", 400, Then::Close),
        ("non-ASCII method", "G\u{cb}T /x.ts HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes(), 400, Then::Close),
        ("non-ASCII header name", "GET /x.ts HTTP/1.1\r\nHost: t\r\nX-\u{dc}: v\r\n\r\n".as_bytes(), 400, Then::Close),
        ("NUL in header value", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400, Then::Close),
        ("CR without LF", b"GET /x.ts HTTP/1.1\rHost: t\r\n\r\n", 400, Then::Close),
        ("obs-fold", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400, Then::Close),
        ("space in header name", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nX Y: z\r\n\r\n", 400, Then::Close),
        ("space before colon", b"GET /x.ts HTTP/1.1\r\nHost : t\r\n\r\n", 400, Then::Close),
        ("header without colon", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nnocolon\r\n\r\n", 400, Then::Close),
        ("double space in request line", b"GET  /x.ts HTTP/1.1\r\nHost: t\r\n\r\n", 400, Then::Close),
        ("tab in request line", b"GET\t/x.ts HTTP/1.1\r\nHost: t\r\n\r\n", 400, Then::Close),
        ("differing duplicate Content-Length", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, Then::Close),
        ("Content-Length list", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\na", 400, Then::Close),
        ("negative Content-Length", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400, Then::Close),
        ("Transfer-Encoding on GET", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, Then::Close),
        ("TE and CL together", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, Then::Close),
        ("two Host headers", b"GET /x.ts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, Then::Close),
        ("HTTP/1.1 without Host", b"GET /x.ts HTTP/1.1\r\n\r\n", 400, Then::Close),
        // RFC 9112 3: an invalid request line is 400, not 505.
        ("raw space in the target", b"GET /a b.ts HTTP/1.1\r\nHost: t\r\n\r\n", 400, Then::Close),
        ("four tokens in the request line", b"GET /x.ts HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400, Then::Close),
        ("misspelt protocol", b"GET /x.ts HTPT/1.1\r\nHost: t\r\n\r\n", 400, Then::Close),
        // RFC 9112 3.2: an invalid Host is 400.
        ("Host with a path", b"GET /x.ts HTTP/1.1\r\nHost: media.example/evil\r\n\r\n", 400, Then::Close),
        ("Host with a space", b"GET /x.ts HTTP/1.1\r\nHost: media example\r\n\r\n", 400, Then::Close),
        ("Host with userinfo", b"GET /x.ts HTTP/1.1\r\nHost: user@media.example\r\n\r\n", 400, Then::Close),
        ("Host with a bad port", b"GET /x.ts HTTP/1.1\r\nHost: media.example:http\r\n\r\n", 400, Then::Close),
        ("HTTP/1.0 with an invalid Host", b"GET /x.ts HTTP/1.0\r\nHost: a b\r\n\r\n", 400, Then::Close),
        ("HTTP/3.0", b"GET /x.ts HTTP/3.0\r\nHost: t\r\n\r\n", 505, Then::Close),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, Then::Close),
        ("HTTP/2 preface and SETTINGS", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00", 505, Then::Close),
        ("TLS ClientHello on the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xde\xad\xbe\xef", 400, Then::Close),
        ("HTTP/0.9 simple request", b"GET /x.ts\r\n", 400, Then::Close),
        ("HTTP/0.9 with blank line", b"GET /x.ts\r\n\r\n", 400, Then::Close),
        // Well-formed but unusual: answered, and the connection stays in sync.
        ("bare LF line endings", b"GET /x.ts HTTP/1.1\nHost: t\n\n", 200, Then::KeepAlive),
        // RFC 9110 2.5: a higher HTTP/1 minor version is handled as HTTP/1.1.
        ("HTTP/1.2", b"GET /x.ts HTTP/1.2\r\nHost: t\r\n\r\n", 200, Then::KeepAlive),
        ("HTTP/1.9", b"GET /x.ts HTTP/1.9\r\nHost: t\r\n\r\n", 200, Then::KeepAlive),
        ("Host as IPv6 literal with port", b"GET /x.ts HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200, Then::KeepAlive),
        ("empty Host", b"GET /x.ts HTTP/1.1\r\nHost: \r\n\r\n", 200, Then::KeepAlive),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, Then::KeepAlive),
        ("lower-case method", b"get /x.ts HTTP/1.1\r\nHost: t\r\n\r\n", 405, Then::KeepAlive),
        ("TRACE", b"TRACE /x.ts HTTP/1.1\r\nHost: t\r\n\r\n", 405, Then::KeepAlive),
        ("asterisk-form GET", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, Then::KeepAlive),
        ("asterisk-form OPTIONS", b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 204, Then::KeepAlive),
        ("absolute-form", b"GET http://other.example:8080/x.ts?q=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200, Then::KeepAlive),
        ("absolute-form with no path", b"GET http://other.example HTTP/1.1\r\nHost: t\r\n\r\n", 404, Then::KeepAlive),
        ("authority-form on GET", b"GET example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n", 400, Then::KeepAlive),
        ("non-ASCII header value (obs-text)", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nUser-Agent: caf\xe9\xff\r\n\r\n", 200, Then::KeepAlive),
        ("identical duplicate Content-Length", b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 200, Then::Close),
    ];
    for (case, raw, status, then) in cases {
        expect(s, case, raw, *status, *then);
    }
    // A body on a GET: answered, then closed, and the body is never taken for a request
    // (a smuggled request inside it gets no response).
    let smuggle = b"GET /x.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n\r\nGET /a.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n";
    let r = expect(s, "body on GET", smuggle, 200, Then::Close);
    assert_eq!(r.body, pattern(1000));
    // Raw UTF-8 in the target is served as the UTF-8 file name.
    let r = expect(
        s,
        "raw UTF-8 target",
        "GET /caf\u{e9}.ts HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes(),
        200,
        Then::KeepAlive,
    );
    assert_eq!(r.body, b"utf8 name");
}

fn oversized(s: &Server) {
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    expect(s, "5000-byte URI", long_uri.as_bytes(), 414, Then::Close);
    // A request line that never ends is cut at the URI limit, not buffered forever.
    let endless_line = format!("GET /{}", "a".repeat(64 * 1024));
    expect(
        s,
        "endless request line",
        endless_line.as_bytes(),
        414,
        Then::Close,
    );
    let long_method = format!("{} /x.ts HTTP/1.1\r\nHost: t\r\n\r\n", "G".repeat(6000));
    expect(
        s,
        "6000-byte method",
        long_method.as_bytes(),
        405,
        Then::KeepAlive,
    );
    let big_header = format!(
        "GET /x.ts HTTP/1.1\r\nHost: t\r\nCookie: {}\r\n\r\n",
        "c".repeat(9000)
    );
    expect(
        s,
        "9000-byte header",
        big_header.as_bytes(),
        431,
        Then::Close,
    );
    // 101 tiny headers fit in 8 KiB but exceed the header count.
    let mut many = String::from("GET /x.ts HTTP/1.1\r\nHost: t\r\n");
    for i in 0..101 {
        many.push_str(&format!("X{i}: v\r\n"));
    }
    many.push_str("\r\n");
    expect(s, "101 headers", many.as_bytes(), 431, Then::Close);
    let mut huge = String::from("GET /x.ts HTTP/1.1\r\nHost: t\r\n");
    for i in 0..10_000 {
        huge.push_str(&format!("X-{i}: v\r\n"));
    }
    huge.push_str("\r\n");
    expect(s, "10,000 headers", huge.as_bytes(), 431, Then::Close);

    // A header that never ends, streamed as fast as the server takes it: answered 431
    // once the head passes 8 KiB, and the server stops reading (our writes then fail or
    // block) instead of buffering without bound.
    let mut c = conn(s);
    c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(b"GET /x.ts HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        .unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = [b'e'; 16 * 1024];
            let mut sent = 0usize;
            while sent < 64 << 20 {
                match w.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        })
    };
    let r = read_response(&mut c, false).expect("answer to the endless header");
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));
    let sent = writer.join().unwrap();
    assert!(
        sent < 64 << 20,
        "server swallowed {sent} bytes of an endless header"
    );
}

fn pipelining(s: &Server) {
    // Thousands of requests written without reading: every one is answered, in order.
    const N: usize = 5000;
    let c = conn(s);
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..N {
            batch.extend_from_slice(get(if i % 2 == 0 { "/a.m3u8" } else { "/b.m3u8" }).as_bytes());
        }
        w.write_all(&batch).unwrap();
    });
    let mut r = BufReader::with_capacity(64 * 1024, &c);
    for i in 0..N {
        let resp = read_response(&mut r, false).unwrap_or_else(|| panic!("response {i} missing"));
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.body,
            if i % 2 == 0 { A } else { B },
            "response {i} out of order"
        );
    }
    writer.join().unwrap();

    // Pipelined with the bad one in the middle: the good ones before it are answered, then
    // the 400, then the close; nothing after the bad one is answered.
    let mut c = conn(s);
    let mut raw = Vec::new();
    raw.extend_from_slice(get("/a.m3u8").as_bytes());
    raw.extend_from_slice(get("/b.m3u8").as_bytes());
    raw.extend_from_slice(b"GET /x.ts HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n");
    raw.extend_from_slice(get("/a.m3u8").as_bytes());
    c.write_all(&raw).unwrap();
    let mut br = BufReader::new(&c);
    assert_eq!(read_response(&mut br, false).unwrap().body, A);
    assert_eq!(read_response(&mut br, false).unwrap().body, B);
    assert_eq!(read_response(&mut br, false).unwrap().status, 400);
    let mut rest = Vec::new();
    let _ = br.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "answered after a malformed request: {rest:?}"
    );
    let _ = c.shutdown(Shutdown::Both);

    // A pipelining client that never reads: the server stops reading from it when its own
    // sends block, and the send-stall timeout (2 s here) frees the connection.
    let stalls = s.metric("corestream_timeouts_total{kind=\"send_stall\"}");
    let mut c = conn(s);
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let batch = get("/big.ts").repeat(2000);
    let mut written = 0usize;
    while written < 64 << 20 {
        match c.write(batch.as_bytes()) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    assert!(
        written < 64 << 20,
        "server kept reading requests it could not answer"
    );
    wait_until(
        "send-stall close of a never-reading client",
        Duration::from_secs(8),
        || s.metric("corestream_timeouts_total{kind=\"send_stall\"}") > stalls,
    );
    let (got, _) = read_until_closed(&mut c);
    assert!(got < 2 * BIG, "got {got} bytes from a stalled pipeline");
}

/// (Range value, status, Content-Range, expected body as a slice of the file)
type RangeCase = (
    String,
    u16,
    Option<&'static str>,
    Option<std::ops::Range<usize>>,
);

fn ranges(s: &Server) {
    let range = |spec: &str| format!("GET /x.ts HTTP/1.1\r\nHost: t\r\nRange: {spec}\r\n\r\n");
    let full = pattern(1000);
    // (Range value, status, Content-Range, body slice)
    let cases: Vec<RangeCase> = vec![
        ("bytes=-0".into(), 416, Some("bytes */1000"), None),
        ("bytes=0-0".into(), 206, Some("bytes 0-0/1000"), Some(0..1)),
        (
            "bytes=999-999".into(),
            206,
            Some("bytes 999-999/1000"),
            Some(999..1000),
        ),
        ("bytes=1000-".into(), 416, Some("bytes */1000"), None),
        (
            "bytes=-1".into(),
            206,
            Some("bytes 999-999/1000"),
            Some(999..1000),
        ),
        (
            "bytes=-99999999999999999999999999".into(),
            206,
            Some("bytes 0-999/1000"),
            Some(0..1000),
        ),
        (
            "bytes=99999999999999999999999999-".into(),
            416,
            Some("bytes */1000"),
            None,
        ),
        (
            "bytes=0-99999999999999999999999999".into(),
            206,
            Some("bytes 0-999/1000"),
            Some(0..1000),
        ),
        (
            "bytes=18446744073709551615-18446744073709551615".into(),
            416,
            Some("bytes */1000"),
            None,
        ),
        (
            "bytes=18446744073709551616-".into(),
            416,
            Some("bytes */1000"),
            None,
        ),
        ("bytes=5-1".into(), 200, None, Some(0..1000)),
        ("bytes=--1".into(), 200, None, Some(0..1000)),
        ("bytes=1-2-3".into(), 200, None, Some(0..1000)),
        ("bytes=-".into(), 200, None, Some(0..1000)),
        ("bytes=".into(), 200, None, Some(0..1000)),
        ("bytes=+1-2".into(), 200, None, Some(0..1000)),
        ("bytes=0x10-".into(), 200, None, Some(0..1000)),
        ("bytes=0-1,".into(), 200, None, Some(0..1000)),
        ("bytes=0-1,5-6".into(), 200, None, Some(0..1000)),
        ("items=0-1".into(), 200, None, Some(0..1000)),
        (
            "bytes= 10 - 19 ".into(),
            206,
            Some("bytes 10-19/1000"),
            Some(10..20),
        ),
        (
            "bytes=\t10-19".into(),
            206,
            Some("bytes 10-19/1000"),
            Some(10..20),
        ),
        (
            "BYTES=10-19".into(),
            206,
            Some("bytes 10-19/1000"),
            Some(10..20),
        ),
        ("bytes =10-19".into(), 200, None, Some(0..1000)),
        (
            format!(
                "bytes={}",
                (0..600)
                    .map(|i| format!("{i}-{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            200,
            None,
            Some(0..1000),
        ),
    ];
    for (spec, status, cr, body) in cases {
        let case = format!("Range: {spec:?}");
        let r = expect(s, &case, range(&spec).as_bytes(), status, Then::KeepAlive);
        assert_eq!(r.header("content-range"), cr, "{case}");
        if let Some(b) = body {
            assert_eq!(r.body, &full[b], "{case}");
        }
    }
    // Two Range headers: the request is ambiguous; the last one wins or the file is sent
    // whole, but never a mix.
    let r = expect(
        s,
        "two Range headers",
        b"GET /x.ts HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n",
        206,
        Then::KeepAlive,
    );
    assert_eq!(r.header("content-range"), Some("bytes 2-3/1000"));
    // Range on HEAD is ignored; Range on a 0-byte file is 416.
    let r = expect(
        s,
        "Range on empty file",
        range("bytes=0-").replace("/x.ts", "/empty.ts").as_bytes(),
        416,
        Then::KeepAlive,
    );
    assert_eq!(r.header("content-range"), Some("bytes */0"));
}

fn percent(s: &Server) {
    let cases: &[(&str, u16, Then, Option<&[u8]>)] = &[
        ("/x.ts%", 400, Then::KeepAlive, None),
        ("/x.ts%2", 400, Then::KeepAlive, None),
        ("/x%zz.ts", 400, Then::KeepAlive, None),
        ("/%", 400, Then::KeepAlive, None),
        ("/x.ts%00", 400, Then::KeepAlive, None),
        ("/%00/../x.ts", 400, Then::KeepAlive, None),
        ("/live%2fseg.ts", 200, Then::KeepAlive, Some(&[0u8, 1, 2])),
        ("/live%2Fseg.ts", 200, Then::KeepAlive, Some(&[0u8, 1, 2])),
        (
            "/%6c%69%76%65/%73%65%67.ts",
            200,
            Then::KeepAlive,
            Some(&[0u8, 1, 2]),
        ),
        ("/%2e%2e/x.ts", 404, Then::KeepAlive, None),
        ("/live/%2e%2e/x.ts", 404, Then::KeepAlive, None),
        ("/live/%2E%2E%2Fx.ts", 404, Then::KeepAlive, None),
        ("/live%2f%2e%2e%2fx.ts", 404, Then::KeepAlive, None),
        ("/live/..%2fx.ts", 404, Then::KeepAlive, None),
        // Overlong UTF-8 for '.' and '/': bytes, not dots; no such file.
        ("/live/%c0%ae%c0%ae/x.ts", 404, Then::KeepAlive, None),
        ("/%c0%ae%c0%ae%c0%afx.ts", 404, Then::KeepAlive, None),
        ("/%e0%80%ae%e0%80%ae/x.ts", 404, Then::KeepAlive, None),
        // Double encoding decodes once: %252e%252e is the literal name "%2e%2e".
        ("/%252e%252e.ts", 200, Then::KeepAlive, Some(b"lit")),
        ("/%252e%252e/x.ts", 404, Then::KeepAlive, None),
        ("/caf%C3%A9.ts", 200, Then::KeepAlive, Some(b"utf")),
        ("/caf%e9.ts", 404, Then::KeepAlive, None),
        ("/x.ts%3fq=1", 404, Then::KeepAlive, None),
        ("/x.ts?%zz", 200, Then::KeepAlive, Some(&[0u8, 1, 2])),
        ("/x.ts#frag", 200, Then::KeepAlive, Some(&[0u8, 1, 2])),
        ("/x.ts%23frag", 404, Then::KeepAlive, None),
        ("/%5c..%5cx.ts", 404, Then::KeepAlive, None),
        ("/%2fetc%2fpasswd", 404, Then::KeepAlive, None),
        ("/%2e", 404, Then::KeepAlive, None),
        ("/%2e%2f", 404, Then::KeepAlive, None),
    ];
    for (target, status, then, body_start) in cases {
        let r = expect(s, target, get(target).as_bytes(), *status, *then);
        if let Some(b) = body_start {
            assert!(
                r.body.starts_with(b),
                "{target}: {:?}",
                &r.body[..r.body.len().min(16)]
            );
        }
    }
}

fn half_close(s: &Server) {
    // Three pipelined requests, then our write side shut: all three answers arrive in
    // order, including a 24 MB body, then the server closes.
    let mut c = conn(s);
    let mut raw = Vec::new();
    raw.extend_from_slice(get("/a.m3u8").as_bytes());
    raw.extend_from_slice(get("/big.ts").as_bytes());
    raw.extend_from_slice(get("/b.m3u8").as_bytes());
    c.write_all(&raw).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut br = BufReader::with_capacity(1 << 16, &c);
    assert_eq!(read_response(&mut br, false).unwrap().body, A);
    let big = read_response(&mut br, false).unwrap();
    assert_eq!(big.body.len(), BIG);
    assert!(big.body == pattern(BIG), "big body corrupted");
    assert_eq!(read_response(&mut br, false).unwrap().body, B);
    let mut rest = Vec::new();
    br.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Half-close before the head is complete: nothing to answer, just a clean close.
    let mut c = conn(s);
    c.write_all(b"GET /a.m3u8 HTTP/1.1\r\nHost:").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    closed_cleanly(&mut c).unwrap();
}

fn set_linger_zero(c: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

fn resets(s: &Server) {
    // Reset mid-sendfile: read a little of a 24 MB body, then RST. The server notices on
    // its next send, frees the connection and the file, and keeps serving.
    for _ in 0..20 {
        let mut c = conn(s);
        c.write_all(get("/big.ts").as_bytes()).unwrap();
        let mut buf = [0u8; 32 * 1024];
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        set_linger_zero(&c);
        drop(c);
    }
    // Reset with a request half sent, and reset right after a complete request.
    for raw in [
        &b"GET /big.ts HTTP/1.1\r\nHo"[..],
        get("/big.ts").as_bytes(),
    ] {
        let mut c = conn(s);
        c.write_all(raw).unwrap();
        set_linger_zero(&c);
        drop(c);
    }
    let r = s.get(&get("/x.ts"));
    assert_eq!(r.body, pattern(1000));
}

/// Raise our own soft fd limit to the hard one: the test holds 10,000 client sockets.
fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit out/in pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur
}

fn ten_thousand(s: &Server) {
    const N: usize = 10_000;
    let limit = raise_nofile();
    assert!(
        limit as usize > N + 500,
        "this test needs {N}+ fds; the hard limit is {limit}"
    );
    let t = Instant::now();
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        // A quarter say nothing, a quarter send half a head, a quarter a whole request
        // whose answer they never read, a quarter reset.
        match i % 4 {
            1 => {
                let _ = c.write_all(b"GET /a.m3u8 HTTP/1.1\r\nHo");
            }
            2 => {
                let _ = c.write_all(get("/x.ts").as_bytes());
            }
            3 => set_linger_zero(&c),
            _ => {}
        }
        conns.push(c);
    }
    let opened = t.elapsed();
    wait_until(
        "10,000 connections accepted",
        Duration::from_secs(20),
        || s.metric("corestream_connections_active") >= N as f64,
    );
    // The server still answers others while holding them.
    assert_eq!(s.get(&get("/a.m3u8")).body, A);
    drop(conns);
    wait_until("10,000 connections closed", Duration::from_secs(20), || {
        s.metric("corestream_connections_active") == 0.0
    });
    eprintln!(
        "10,000 connections opened in {opened:?}, all closed {:?} after start",
        t.elapsed()
    );
    assert_eq!(s.get(&get("/b.m3u8")).body, B);
}

/// Bytes read until the server closes, and whether it ended with a reset (else end of
/// stream); a read that times out instead (conn's 5 s) means it never closed.
fn read_until_closed(c: &mut TcpStream) -> (usize, bool) {
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Step = fn(&Server);

/// A file whose mtime is ahead of the clock (a packager with a wrong clock, a restored
/// backup): Last-Modified is never later than Date (RFC 9110 8.8.2.1), and a cache that
/// revalidates with the date it was given gets the new version once the file is replaced.
fn clocks(s: &Server) {
    let path = fixture_dir().join("future.m3u8");
    let write = |text: &[u8], mtime: std::time::SystemTime| {
        let tmp = fixture_dir().join(".future.tmp");
        std::fs::write(&tmp, text).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(mtime).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    let year_2100 = std::time::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
    write(b"#EXTM3U\n#v1\n", year_2100);
    let r = expect(
        s,
        "future mtime",
        get("/future.m3u8").as_bytes(),
        200,
        Then::KeepAlive,
    );
    let date = r.header("date").map(str::to_string).unwrap_or_default();
    let lm = r
        .header("last-modified")
        .map(str::to_string)
        .unwrap_or_default();
    let parse = |v: &str| httpdate::parse_http_date(v).ok();
    match (parse(&date), parse(&lm)) {
        (Some(d), Some(l)) if l <= d => {}
        _ => fail(format!(
            "future mtime: Last-Modified {lm:?} is after Date {date:?}"
        )),
    }
    // Replaced a second or more later: HTTP-dates have whole seconds, so a version written
    // within the same second as an answer can only be told apart by its ETag.
    if let Some(d) = parse(&date) {
        while std::time::SystemTime::now() < d + Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    write(b"#EXTM3U\n#v2\n", std::time::SystemTime::now());
    let ims = format!("GET /future.m3u8 HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\n\r\n");
    let r = expect(
        s,
        "revalidate after replacing a future-dated file",
        ims.as_bytes(),
        200,
        Then::KeepAlive,
    );
    if r.body != b"#EXTM3U\n#v2\n" {
        fail(format!(
            "revalidation served {:?}",
            String::from_utf8_lossy(&r.body)
        ));
    }
}

fn round(s: &Server) {
    let steps: &[(&str, Step)] = &[
        ("clocks ahead of ours", clocks),
        ("garbage and smuggling shapes", garbage),
        ("oversized and endless heads", oversized),
        ("pipelining floods", pipelining),
        ("Range edge cases", ranges),
        ("percent-encoding edge cases", percent),
        ("half-close", half_close),
        ("resets mid-sendfile", resets),
        ("10,000 connections opened and dropped", ten_thousand),
    ];
    for (name, step) in steps {
        let t = Instant::now();
        step(s);
        eprintln!("hostile: {name}: done in {:?}", t.elapsed());
    }
    let failures = std::mem::take(&mut *FAILURES.lock().unwrap_or_else(|e| e.into_inner()));
    assert!(
        failures.is_empty(),
        "{} hostile cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every hostile case against one server, twice. After each round the server's fds are
/// back to where they started; RSS after the second round is within a small margin of
/// the first (the first round grows the connection slab and buffer pool to their
/// working size; a leak would grow again).
#[test]
fn hostile_suite_leaves_no_trace() {
    let root = fixture();
    let s = start(&root);
    assert_eq!(s.get(&get("/a.m3u8")).body, A);
    wait_until("a quiet start", Duration::from_secs(5), || {
        s.metric("corestream_connections_active") == 0.0
    });
    // The admin thread may still hold the scrape's connection for a moment.
    std::thread::sleep(Duration::from_millis(200));
    let fds0 = s.open_fds();
    let rss0 = s.rss_kib();
    let settle = |s: &Server| {
        wait_until("connections to drain", Duration::from_secs(15), || {
            s.metric("corestream_connections_active") == 0.0
        });
        wait_until("fds back to the start", Duration::from_secs(10), || {
            s.open_fds() == fds0
        });
    };
    round(&s);
    settle(&s);
    let rss1 = s.rss_kib();
    round(&s);
    settle(&s);
    let rss2 = s.rss_kib();
    eprintln!(
        "hostile: fds {fds0} -> {}; RSS {rss0} KiB -> {rss1} KiB (round 1) -> {rss2} KiB (round 2)",
        s.open_fds()
    );
    assert!(
        rss2 <= rss1 + 2048,
        "RSS grew by {} KiB in a second identical round: a leak",
        rss2.saturating_sub(rss1)
    );
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "RSS {rss1} KiB after 10,000 connections, from {rss0} KiB"
    );
    // The server is alive and well: no panicked worker (both still answer).
    for _ in 0..8 {
        assert_eq!(s.get(&get("/x.ts")).body, pattern(1000));
    }
    // The last of those closes as the scrape runs: the worker may not have read its FIN yet.
    wait_until(
        "the last connection to close",
        Duration::from_secs(5),
        || s.metric("corestream_connections_active") == 0.0,
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_response_blocked_on_a_peer_that_closed_its_side_ends_in_seconds() {
    // 100k viewers downloading segments, then their load generator exiting: 25k of
    // corestream's sockets sat in CLOSE-WAIT for up to a minute after (the peers' FINs came
    // while their windows were shut, so only the kernel's zero-window probes reached them),
    // each holding an fd and its unsent bytes; nginx had closed every one. A response
    // blocked on a peer that has closed its side now ends once the socket's unsent queue
    // has not moved for 2 s, not --send-timeout (30 s by default). A peer that still reads
    // after its FIN keeps getting bytes (the half-close case above: 24 MB after the FIN).
    let root = media_root("peer-gone");
    std::fs::write(root.join("big.ts"), pattern(32 << 20)).unwrap();
    let s = Server::start(&root, &["--workers", "1", "--admin", "0"]);
    let gone = || {
        s.metric_opt("corestream_connections_closed_total{reason=\"peer_gone\"}")
            .unwrap_or(0.0)
    };
    let mut c = conn(&s);
    c.write_all(get("/big.ts").as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // Not reading: 32 MB fills both ends' buffers and the server's sends block.
    wait_until(
        "the blocked response to a closed peer to end",
        Duration::from_secs(12),
        || gone() >= 1.0,
    );
    let (got, reset) = read_until_closed(&mut c);
    assert!(got < 32 << 20, "the whole body came: {got} bytes");
    // Closed with a reset: the megabytes still queued for this peer were dropped, not left
    // to an orphaned socket to send after the descriptor is gone.
    assert!(reset, "ended with a FIN after {got} bytes");
    assert_eq!(
        s.metric("corestream_timeouts_total{kind=\"send_stall\"}"),
        0.0
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_panic_in_one_request_costs_only_that_connection() {
    // A bug some request reaches (here a debug-build fault hook; on 12-07 it was the LL-HLS
    // delta of an odd playlist) must not take the worker: with one worker, every other
    // connection and every later one went with it.
    let root = media_root("panic");
    std::fs::write(root.join("a.m3u8"), "#EXTM3U\n").unwrap();
    let s = Server::start_env(
        &root,
        &[("CORESTREAM_DEBUG_PANIC_ON", "/boom")],
        &["--workers", "1", "--admin", "0"],
    );
    let ask = |c: &mut TcpStream, path: &str| {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        read_response(c, false)
    };
    let mut kept = s.connect();
    assert_eq!(ask(&mut kept, "/a.m3u8").map(|r| r.status), Some(200));
    let mut bad = s.connect();
    assert!(
        ask(&mut bad, "/boom").is_none(),
        "no answer, the connection ends"
    );
    assert_eq!(
        ask(&mut kept, "/a.m3u8").map(|r| r.status),
        Some(200),
        "the same worker's other connection is still served"
    );
    assert_eq!(s.get("GET /a.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    let (status, metrics) = s.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("corestream_connections_closed_total{")
                && l.contains("reason=\"panic\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[test]
fn a_panic_in_one_admin_request_leaves_metrics_served() {
    // The admin port is one thread; a bug one scrape reached (a debug-build fault hook here)
    // used to end it, and /metrics with it.
    let root = media_root("panic-admin");
    let s = Server::start_env(
        &root,
        &[("CORESTREAM_DEBUG_PANIC_ADMIN", "/boom")],
        &["--workers", "1", "--admin", "0"],
    );
    let mut c = TcpStream::connect(s.admin.expect("admin")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "no answer: {}",
        String::from_utf8_lossy(&got)
    );
    let (status, metrics) = s.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("corestream_connections_active"),
        "{metrics}"
    );
}

#[test]
fn clients_that_hold_the_admin_port_do_not_delay_health_checks() {
    // Kubernetes' probes give /healthz 1 s by default, then restart the pod: an idle
    // connection (a port scanner, a balancer's TCP check) and one sending its request a
    // byte at a time must not hold the admin port meanwhile, nor for good.
    let root = media_root("admin-held");
    let s = Server::start(&root, &["--workers", "1", "--admin", "0"]);
    let addr = s.admin.expect("admin");
    let _idle = TcpStream::connect(addr).unwrap();
    let mut dribbler = TcpStream::connect(addr).unwrap();
    dribbler.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeding = {
        let stop = stop.clone();
        let mut d = dribbler.try_clone().unwrap();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if d.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = Instant::now();
        let (status, body) = s.admin_get("/healthz");
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    // The dribbler is cut off within the admin's time for a whole request.
    dribbler
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = dribbler.read_to_end(&mut rest);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = feeding.join();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}
