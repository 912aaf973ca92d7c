//! Replays the fuzzing seed corpus (real player requests: hls.js, Safari/AVPlayer, ffmpeg,
//! VLC, curl, dash.js, Shaka) and every input the fuzzer ever crashed on
//! (fuzz/regressions/request/) through the request path on each `cargo test`, so CI keeps
//! them fixed without running the fuzzer.

use corestream::fixture::{self, OUTSIDE_LEN};
use corestream::http::process_bytes;
use std::path::{Path, PathBuf};

/// (status, Content-Length) of each response head in `out`.
fn heads(mut rest: &[u8]) -> Vec<(u16, usize)> {
    let mut v = Vec::new();
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(rest)
        );
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head");
        let head = std::str::from_utf8(&rest[..end]).expect("ASCII head");
        let code: u16 = head[9..12].parse().unwrap();
        let len = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        rest = &rest[end + 4..];
        if rest.len() >= len && !rest.starts_with(b"HTTP/1.1 ") {
            rest = &rest[len..];
        }
        v.push((code, len));
    }
    v
}

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn seed_corpus_and_fuzz_regressions_replay_cleanly() {
    let tmp = std::env::temp_dir().join(format!("corestream-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let s = fixture::origin(&tmp).unwrap();
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let seeds = inputs(&fuzz.join("seeds/request"));
    assert!(seeds.len() >= 30, "seed corpus missing: {}", seeds.len());
    let regressions = inputs(&fuzz.join("regressions/request"));
    for (path, data) in seeds.iter().chain(&regressions) {
        let out = process_bytes(&s, data);
        let hs = heads(&out);
        assert!(!hs.is_empty(), "{}: no answer", path.display());
        assert!(
            !hs.iter().any(|&(c, l)| c == 200 && l == OUTSIDE_LEN),
            "{}: served the file outside the root",
            path.display()
        );
    }
    // The real player requests are all served (no 4xx/5xx) except the deliberately
    // hostile seeds.
    for (path, data) in &seeds {
        let name = path.file_name().unwrap().to_string_lossy();
        let hs = heads(&process_bytes(&s, data));
        let hostile = [
            "traversal",
            "symlink-out",
            "h2-preface",
            "http09",
            "space-in-target",
            "host-with-path",
            "host-userinfo",
        ];
        if hostile.contains(&name.as_ref()) {
            assert!(hs.iter().all(|&(c, _)| c >= 400), "{name}: {hs:?}");
        } else {
            assert!(hs.iter().all(|&(c, _)| c < 400), "{name}: {hs:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn peer_input_seeds_and_fuzz_regressions_replay_cleanly() {
    // Bodies, playlists, CMCD, Range and caching fields from packagers and origins
    // (fuzz target `inputs`); each file once crashed or is a real example.
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let seeds = inputs(&fuzz.join("seeds/inputs"));
    assert!(seeds.len() >= 8, "seed corpus missing: {}", seeds.len());
    let regressions = inputs(&fuzz.join("regressions/inputs"));
    assert!(!regressions.is_empty(), "regressions missing");
    for (_, data) in seeds.iter().chain(&regressions) {
        fixture::peer_inputs(data);
    }
}
