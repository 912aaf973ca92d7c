//! Bytes in as one connection would send them -> parsing, routing, range and conditional
//! handling -> response heads out (`corestream::worker::process_bytes`). Beyond "never
//! panics", every answer must be a well-formed HTTP/1.1 head with a known status, and a
//! file outside the root (7777 bytes) must never be answered.
#![no_main]

use clap::Parser;
use corestream::config::{Cli, Config};
use corestream::worker::{process_bytes, Shared};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A media root laid out like a live HLS/DASH origin, built once per fuzzing process.
fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corestream-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let files: &[(&str, &[u8])] = &[
            ("live/index.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2500000\n720p/index.m3u8\n"),
            ("live/720p/index.m3u8", b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2.0,\nseg10.ts\n#EXTINF:2.0,\nseg11.ts\n"),
            ("live/720p/seg10.ts", &[0x47; 188 * 20]),
            ("live/720p/seg11.ts", &[0x47; 188 * 3]),
            ("live/manifest.mpd", b"<?xml version=\"1.0\"?><MPD/>"),
            ("live/init.m4s", b"\0\0\0\x18ftypiso6"),
            ("live/chunk-1.m4s", &[1; 4096]),
            ("live/sub.vtt", b"WEBVTT\n"),
            ("live/.hidden.ts", b"hidden"),
            ("empty.ts", b""),
        ];
        for (name, data) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("fuzz root");
            std::fs::write(&p, data).expect("fuzz root file");
        }
        std::fs::write(dir.join("secret.ts"), vec![b's'; 7777]).expect("outside file");
        let _ = std::os::unix::fs::symlink(dir.join("secret.ts"), root.join("live/out.ts"));
        let _ = std::os::unix::fs::symlink("../../secret.ts", root.join("live/rel.ts"));
        let cli = Cli::parse_from([
            "corestream",
            "--root",
            root.to_str().expect("utf8 temp dir"),
            "--workers",
            "1",
        ]);
        let cfg = Config::from_cli(&cli).expect("config");
        let fd = corestream::fsys::open_root(&root).expect("open root");
        Shared::new(cfg, fd)
    })
}

fn check(out: &[u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"HTTP/1.1 "),
            "not a status line: {:?}",
            &rest[..rest.len().min(40)]
        );
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head ends with CRLF CRLF");
        let head = std::str::from_utf8(&rest[..end]).expect("head is UTF-8");
        let code: u16 = head[9..12].parse().expect("numeric status");
        assert!(
            matches!(
                code,
                200 | 204 | 206 | 304 | 400 | 404 | 405 | 412 | 414 | 416 | 431 | 500 | 503 | 505
            ),
            "unexpected status {code}"
        );
        let mut len = None;
        for line in head.split("\r\n").skip(1) {
            let (name, value) = line.split_once(": ").expect("header line");
            assert!(!name.is_empty() && !value.contains('\r') && !value.contains('\n'));
            if name.eq_ignore_ascii_case("content-length") {
                len = Some(value.parse::<usize>().expect("numeric length"));
            }
        }
        let len = len.unwrap_or(0);
        assert!(
            !(code == 200 && len == 7777),
            "served the file outside the root"
        );
        rest = &rest[end + 4..];
        // Inline bodies (errors, 416, playlists from the cache) follow the head; file
        // bodies are not part of process_bytes output.
        if rest.len() >= len && !rest.starts_with(b"HTTP/1.1 ") {
            rest = &rest[len..];
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let out = process_bytes(shared(), data);
    check(&out);
});
