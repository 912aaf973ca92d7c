//! Bytes in as one connection would send them -> parsing, routing, range and conditional
//! handling -> response heads out (`corestream::http::process_bytes`). Beyond "never
//! panics", every answer must be a well-formed HTTP/1.1 head with a known status, and a
//! file outside the root (`fixture::OUTSIDE_LEN` bytes) must never be answered.
#![no_main]

use corestream::fixture::{self, OUTSIDE_LEN};
use corestream::http::process_bytes;
use corestream::Shared;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The shared origin fixture (`corestream::fixture`), built once per fuzzing process.
fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corestream-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fixture::origin(&dir).expect("fuzz origin")
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
            !(code == 200 && len == OUTSIDE_LEN),
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
