//! Viewer QoE (issue 20): viewers per stream and rendition from playlist reloads and from
//! CMCD sessions, hostile CMCD, CMSD headers checked against RFC 8941, CMCD and hold time of
//! held LL-HLS requests, the access log formats.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A live stream in `live/`: a master with two renditions, target duration 1 s.
fn stream_root(name: &str) -> PathBuf {
    let root = media_root(name);
    let live = root.join("live");
    for r in ["720p", "480p"] {
        std::fs::create_dir_all(live.join(r)).unwrap();
        let mut p = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:10\n",
        );
        for i in 10..14 {
            p.push_str(&format!("#EXTINF:1.000,\nseg{i}.ts\n"));
            std::fs::write(
                live.join(r).join(format!("seg{i}.ts")),
                vec![0x47u8; 188 * 50],
            )
            .unwrap();
        }
        publish(&live.join(r), "index.m3u8", &p);
    }
    publish(
        &live,
        "master.m3u8",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2800000\n720p/index.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=1400000\n480p/index.m3u8\n",
    );
    root
}

fn ask(c: &mut TcpStream, path: &str, headers: &str) -> Response {
    ask_bytes(c, path, headers.as_bytes())
}

fn ask_bytes(c: &mut TcpStream, path: &str, headers: &[u8]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    req.extend_from_slice(headers);
    req.extend_from_slice(b"\r\n");
    c.write_all(&req).unwrap();
    read_response(c, false).expect("response")
}

/// A sample of /metrics, 0 when the series is absent.
fn gauge(s: &Server, series: &str) -> f64 {
    s.metric_opt(series).unwrap_or(0.0)
}

#[test]
fn viewers_follow_playlist_reloads_and_leave() {
    let root = stream_root("qoe-reloads");
    let s = Server::start(&root, &["--admin", "0"]);
    // Four players without CMCD, each on its own connection: three on 720p, one on 480p.
    let mut players: Vec<(TcpStream, &str)> = ["720p", "720p", "720p", "480p"]
        .into_iter()
        .map(|r| (s.connect(), r))
        .collect();
    for (c, _) in players.iter_mut() {
        assert_eq!(ask(c, "/live/master.m3u8", "").status, 200);
    }
    for _ in 0..3 {
        for (c, r) in players.iter_mut() {
            assert_eq!(ask(c, &format!("/live/{r}/index.m3u8"), "").status, 200);
            assert_eq!(ask(c, &format!("/live/{r}/seg12.ts"), "").status, 200);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let stream = "corestream_viewers{stream=\"/live/master.m3u8\"}";
    assert_eq!(gauge(&s, stream), 4.0);
    assert_eq!(
        gauge(&s, "corestream_rendition_viewers{stream=\"/live/master.m3u8\",rendition=\"/live/720p/index.m3u8\"}"),
        3.0
    );
    assert_eq!(
        gauge(&s, "corestream_rendition_viewers{stream=\"/live/master.m3u8\",rendition=\"/live/480p/index.m3u8\"}"),
        1.0
    );
    let (_, doc) = s.admin_get("/streams");
    let v: serde_json::Value = serde_json::from_str(&doc).expect("/streams is JSON");
    assert_eq!(v["viewers"], 4);
    assert_eq!(v["streams"][0]["stream"], "/live/master.m3u8");
    assert_eq!(
        v["streams"][0]["renditions"][0]["rendition"],
        "/live/720p/index.m3u8"
    );
    assert!(v["streams"][0]["bytes_total"].as_u64().unwrap() > 4 * 9400);
    // They leave: gone within two target durations (2 s) of their last reload.
    drop(players);
    wait_for("viewers to leave", Duration::from_secs(5), || {
        gauge(&s, stream) == 0.0
    });
}

#[test]
fn cmcd_sessions_count_once_whatever_the_connection() {
    let root = stream_root("qoe-cmcd");
    let log = root.join("access.log");
    let log_arg = log.display().to_string();
    let s = Server::start(
        &root,
        &[
            "--admin",
            "0",
            "--access-log",
            &log_arg,
            "--access-log-format",
            "combined-cmcd",
            "--qoe-window",
            "3s",
        ],
    );
    // Five sessions, each on two connections (so, with two workers, often on both), one by
    // query argument (as hls.js sends it) and one by headers (dash.js's header mode).
    for i in 0..5 {
        let mut a = s.connect();
        let mut b = s.connect();
        let q = format!("CMCD=bl%3D{}%2Cbr%3D2800%2Ccid%3D%22show%22%2Cmtp%3D25400%2Cot%3Dv%2Csid%3D%22s{i}%22{}", 4000 + i, if i < 2 { "%2Cbs" } else { "" });
        assert_eq!(
            ask(&mut a, &format!("/live/720p/seg11.ts?{q}"), "").status,
            200
        );
        let h = format!("CMCD-Session: cid=\"show\",sid=\"s{i}\"\r\nCMCD-Request: bl=3000\r\nCMCD-Object: br=2800,ot=m\r\n");
        assert_eq!(ask(&mut b, "/live/720p/index.m3u8", &h).status, 200);
    }
    assert_eq!(gauge(&s, "corestream_viewers{stream=\"show\"}"), 5.0);
    assert_eq!(
        gauge(
            &s,
            "corestream_rendition_viewers{stream=\"show\",rendition=\"/live/720p/index.m3u8\"}"
        ),
        5.0
    );
    assert_eq!(
        gauge(&s, "corestream_buffer_starvation_total{stream=\"show\"}"),
        2.0
    );
    assert_eq!(gauge(&s, "corestream_cmcd_requests_total"), 10.0);
    assert_eq!(
        gauge(&s, "corestream_cmcd_buffer_length_seconds_count"),
        10.0
    );
    assert_eq!(
        gauge(&s, "corestream_cmcd_buffer_length_seconds_bucket{le=\"4\"}"),
        6.0
    );
    // The combined log carries the operator's keys, `-` where absent.
    s.signal(libc::SIGTERM);
    let mut s = s;
    s.wait_exit(Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("seg11.ts") && l.contains("s0"))
        .unwrap();
    assert!(
        line.ends_with(r#" sid="s0" cid="show" br=2800 bl=4000 mtp=25400 bs=1 su=- ot=v rtp=-"#),
        "{line}"
    );
    let by_headers = text.lines().find(|l| l.contains("index.m3u8")).unwrap();
    assert!(
        by_headers.contains(r#"sid="s"#) && by_headers.contains("bl=3000"),
        "{by_headers}"
    );
    let without = text
        .lines()
        .find(|l| !l.contains("CMCD") && !l.contains("index.m3u8"));
    if let Some(l) = without {
        assert!(
            l.ends_with("sid=- cid=- br=- bl=- mtp=- bs=- su=- ot=- rtp=-"),
            "{l}"
        );
    }
}

#[test]
fn hostile_cmcd_changes_nothing_and_stays_bounded() {
    let root = stream_root("qoe-hostile");
    let s = Server::start(
        &root,
        &[
            "--admin",
            "0",
            "--workers",
            "1",
            "--qoe-max-sessions",
            "10",
            "--max-header-bytes",
            "65536",
            "--max-uri-bytes",
            "32768",
        ],
    );
    let mut c = s.connect();
    let base = ask(&mut c, "/live/720p/seg10.ts", "");
    assert_eq!(base.status, 200);
    let keys: String = (0..10_000).map(|i| format!("k{i}={i},")).collect();
    // Every byte a header value may carry (visible ASCII, space, tab, obs-text 0x80-0xFF).
    let mut binary = b"CMCD-Session: sid=\"".to_vec();
    binary.extend((0x20..=0xffu8).filter(|b| *b != 0x7f).chain([b'\t']));
    binary.extend_from_slice(b"\",cid=\"\x80\xff\"\r\n");
    let huge_query = format!(
        "CMCD={}",
        "sid%3D%22".to_string() + &"x".repeat(20_000) + "%22"
    );
    let cases: Vec<(String, Vec<u8>)> = vec![
        (format!("/live/720p/seg10.ts?{huge_query}"), Vec::new()),
        (
            "/live/720p/seg10.ts".into(),
            format!("CMCD-Request: {}\r\n", &keys[..60_000.min(keys.len())]).into_bytes(),
        ),
        ("/live/720p/seg10.ts".into(), binary),
        (
            "/live/720p/seg10.ts?CMCD=%FF%00%2C%2C%3D%3D".into(),
            b"CMCD-Status: ===,,,\"\r\n".to_vec(),
        ),
    ];
    for (path, headers) in &cases {
        let mut c = s.connect();
        let r = ask_bytes(&mut c, path, headers);
        let shown = String::from_utf8_lossy(&headers[..headers.len().min(80)]);
        assert_eq!(r.status, 200, "{path} {shown}");
        assert_eq!(r.body, base.body);
    }
    // 200 sessions on a 10-session table: 10 tracked, the rest counted as dropped.
    for i in 0..200 {
        let mut c = s.connect();
        let r = ask(
            &mut c,
            &format!("/live/480p/seg13.ts?CMCD=sid%3D%22h{i}%22"),
            "",
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(gauge(&s, "corestream_viewer_sessions_tracked"), 10.0);
    assert!(
        gauge(
            &s,
            "corestream_viewer_tracking_dropped_total{what=\"session\"}"
        ) >= 190.0
    );
    assert!(gauge(&s, "corestream_cmcd_ignored_members_total") > 30.0);
    let mut c = s.connect();
    assert_eq!(ask(&mut c, "/live/720p/seg10.ts", "").body, base.body);
}

fn sf_dictionary(v: &str) -> std::collections::HashMap<String, sfv::BareItem> {
    let d = sfv::Parser::parse_dictionary(v.as_bytes())
        .unwrap_or_else(|e| panic!("{v:?} is no RFC 8941 dictionary: {e}"));
    d.into_iter()
        .map(|(k, e)| match e {
            sfv::ListEntry::Item(i) => (k, i.bare_item),
            sfv::ListEntry::InnerList(_) => panic!("{v:?}: inner list for {k}"),
        })
        .collect()
}

#[test]
fn cmsd_headers_follow_the_grammar_and_cors_lets_pages_read_them() {
    let root = stream_root("qoe-cmsd");
    let s = Server::start(&root, &["--cmsd", "--cmsd-name", "edge \"7\""]);
    let mut c = s.connect();
    assert_eq!(
        ask(
            &mut c,
            "/live/master.m3u8",
            "Origin: https://player.example\r\n"
        )
        .status,
        200
    );
    assert_eq!(ask(&mut c, "/live/720p/index.m3u8", "").status, 200);
    // Let the kernel measure a delivery rate on this connection.
    for _ in 0..3 {
        ask(&mut c, "/live/720p/seg10.ts", "");
    }
    let r = ask(
        &mut c,
        "/live/720p/seg11.ts",
        "Origin: https://player.example\r\n",
    );
    let st = r.header("cmsd-static").expect("CMSD-Static");
    let d = sf_dictionary(st);
    assert_eq!(d.get("ot").and_then(|i| i.as_token()), Some("av"), "{st}");
    assert_eq!(d.get("sf").and_then(|i| i.as_token()), Some("h"), "{st}");
    assert_eq!(d.get("d").and_then(|i| i.as_int()), Some(1000), "{st}");
    assert_eq!(
        d.get("n").and_then(|i| i.as_str()),
        Some("edge \"7\""),
        "{st}"
    );
    let dy = r.header("cmsd-dynamic").expect("CMSD-Dynamic");
    let list = sfv::Parser::parse_list(dy.as_bytes()).unwrap_or_else(|e| panic!("{dy:?}: {e}"));
    let sfv::ListEntry::Item(item) = &list[0] else {
        panic!("{dy}")
    };
    assert_eq!(item.bare_item.as_str(), Some("edge \"7\""));
    assert!(
        item.params.get("rtt").and_then(|v| v.as_int()).is_some(),
        "{dy}"
    );
    let etp = item.params.get("etp").and_then(|v| v.as_int());
    assert!(
        etp.is_some_and(|e| e > 0),
        "no etp after four responses: {dy}"
    );
    let expose = r.header("access-control-expose-headers").unwrap();
    assert!(
        expose.contains("CMSD-Static") && expose.contains("CMSD-Dynamic"),
        "{expose}"
    );
    let pl = ask(&mut c, "/live/720p/index.m3u8", "");
    let d = sf_dictionary(pl.header("cmsd-static").unwrap());
    assert_eq!(d.get("ot").and_then(|i| i.as_token()), Some("m"));
    assert!(!d.contains_key("d"), "a playlist has no duration");
    // A player sending CMCD as headers passes the CORS preflight.
    let mut p = s.connect();
    write!(p, "OPTIONS /live/720p/seg11.ts HTTP/1.1\r\nHost: t\r\nOrigin: https://player.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: cmcd-request,cmcd-session\r\n\r\n").unwrap();
    let pre = read_response(&mut p, false).unwrap();
    let allow = pre
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allow.contains("cmcd-request") && allow.contains("cmcd-session"),
        "{allow}"
    );
    // Off by default.
    let plain = Server::start(&root, &[]);
    let mut c = plain.connect();
    let r = ask(&mut c, "/live/720p/seg11.ts", "");
    assert!(r.header("cmsd-static").is_none());
    assert!(!r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("CMSD"));
}

fn write_ll(dir: &Path, last: u64) {
    publish(dir, "index.m3u8", &ll_playlist(1, last, 1, 2, false));
}

#[test]
fn held_request_keeps_its_cmcd_and_reports_hold_time() {
    let root = media_root("qoe-held");
    write_ll(&root, 5);
    let log = root.join("access.json");
    let log_arg = log.display().to_string();
    let s = Server::start(
        &root,
        &[
            "--cmsd",
            "--access-log",
            &log_arg,
            "--access-log-format",
            "json",
            "--admin",
            "0",
        ],
    );
    let mut c = s.connect();
    write!(c, "GET /index.m3u8?_HLS_msn=6 HTTP/1.1\r\nHost: t\r\nCMCD-Session: sid=\"held-1\",cid=\"ll\"\r\nCMCD-Request: bl=1500\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    write_ll(&root, 6);
    let r = read_response(&mut c, false).expect("answered once published");
    assert_eq!(r.status, 200);
    let d = sf_dictionary(r.header("cmsd-static").unwrap());
    let ht = d.get("ht").and_then(|i| i.as_int()).expect("ht");
    assert!((500..5000).contains(&ht), "held {ht} ms");
    assert_eq!(gauge(&s, "corestream_viewers{stream=\"ll\"}"), 1.0);
    let mut s = s;
    s.signal(libc::SIGTERM);
    s.wait_exit(Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("_HLS_msn=6"))
        .expect("logged");
    let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
    assert_eq!(v["cmcd"]["sid"], "held-1");
    assert_eq!(v["cmcd"]["bl"], 1500);
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn viewers_are_still_counted_after_a_panic_while_counting() {
    // A bug some request reaches while its worker's QoE tracker is locked (a debug-build
    // fault hook here) costs that connection (the worker goes on), and must not poison the
    // tracker: before, the worker never counted a viewer again.
    let root = stream_root("qoe-panic");
    std::fs::write(root.join("live/boom.ts"), b"x").unwrap();
    let s = Server::start_env(
        &root,
        &[("CORESTREAM_DEBUG_PANIC_QOE", "boom")],
        &["--workers", "1", "--admin", "0"],
    );
    let mut bad = s.connect();
    bad.write_all(b"GET /live/boom.ts HTTP/1.1\r\nHost: t\r\nCMCD-Session: sid=\"x\"\r\n\r\n")
        .unwrap();
    assert!(
        read_response(&mut bad, false).is_none(),
        "that connection ends"
    );
    let mut c = s.connect();
    let h = "CMCD-Session: cid=\"show\",sid=\"s1\"\r\n";
    assert_eq!(ask(&mut c, "/live/720p/index.m3u8", h).status, 200);
    assert_eq!(gauge(&s, "corestream_viewers{stream=\"show\"}"), 1.0);
}
