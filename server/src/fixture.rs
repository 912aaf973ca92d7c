//! The media root that the request-path fuzz target (`fuzz/`), the corpus replay
//! (`tests/hostile_corpus.rs`) and the property tests run requests against, and
//! [`peer_inputs`], the harness of the `inputs` fuzz target and its replay. It is laid out
//! like a live HLS/DASH origin. A file outside the root ([`OUTSIDE_LEN`] bytes, a size no
//! inside file has) can be reached only through two symlinks that must never be followed.
//! It is not part of the server. It is public only so that the separate fuzz crate can share
//! it.

use crate::config::{Cli, Config};
use crate::http::body::{self, Framing};
use crate::http::range;
use crate::live::hints::Hints;
use crate::live::playlist;
use crate::qoe::catalog::Catalog;
use crate::qoe::cmcd::{self, Cmcd};
use crate::shared::Shared;
use crate::tier::fresh;
use clap::Parser;
use std::io;
use std::io::Cursor;
use std::path::Path;

/// Size of `secret.ts`, outside the root: an answer of this length is a traversal.
pub const OUTSIDE_LEN: usize = 7777;

/// Build the origin under `dir` (`dir/root` is the media root) and the worker state that
/// serves it with one worker and default options.
pub fn origin(dir: &Path) -> io::Result<Shared> {
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
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, data)?;
    }
    std::fs::write(dir.join("secret.ts"), vec![b's'; OUTSIDE_LEN])?;
    for (target, link) in [
        (dir.join("secret.ts"), root.join("live/out.ts")),
        (
            Path::new("../../secret.ts").to_path_buf(),
            root.join("live/rel.ts"),
        ),
    ] {
        match std::os::unix::fs::symlink(&target, &link) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    let root_str = root
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "root path is not UTF-8"))?;
    let cli = Cli::parse_from(["corestream", "--root", root_str, "--workers", "1"]);
    let cfg = Config::from_cli(&cli)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(Shared::new(cfg, crate::net::fsys::open_root(&root)?))
}

/// What peers other than viewers' request heads send, each through the code that reads it:
/// a body in its framing (a packager's PUT on the ingest port, an origin's response to the
/// edge tier, head and body), a playlist's text (what a packager pushed or an origin served: the LL-HLS
/// scan, the delta update, blocking directives, URI resolution, the QoE catalog, the hints),
/// a CMCD payload, a Range value, an origin's caching fields, a packager's request head on
/// the ingest port. The first byte picks which.
/// Beyond "never panics": a body read hands the sink exactly the length it reports, and a
/// delta update is never longer than the playlist it abbreviates plus its EXT-X-SKIP line.
pub fn peer_inputs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => bodies(rest),
        1 => playlists(rest),
        _ => fields(rest),
    }
}

/// A source that hands out at most `step` bytes per read, so framing split across reads is
/// covered too.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn bodies(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let framing = match sel % 3 {
        0 => Framing::Chunked,
        1 => Framing::Length(u64::from(sel) * 7),
        _ => Framing::UntilClose,
    };
    let split = usize::from(sel) % (rest.len() + 1);
    let (buffered, src) = rest.split_at(split);
    let mut buf = buffered.to_vec();
    let mut src = Trickle {
        data: src,
        step: 1 + usize::from(sel % 17),
    };
    let mut got = 0u64;
    let limit = u64::from(sel) * 3;
    let r = body::read(&mut src, &mut buf, framing, |d: &[u8]| {
        got += d.len() as u64;
        if sel % 5 == 0 && got > limit {
            return Err("sink full");
        }
        Ok(())
    });
    if let Ok(n) = r {
        assert_eq!(n, got, "the length read is what the sink was given");
    }
    let _ = body::read(
        &mut Cursor::new(rest),
        &mut Vec::new(),
        framing,
        |_: &[u8]| Ok::<(), ()>(()),
    );
    // An origin's whole response: its head (interim 1xx skipped, framing checked), then
    // the body in the framing the head gave.
    let mut src = Trickle {
        data: rest,
        step: 1 + usize::from(sel % 29),
    };
    let mut buf = Vec::new();
    if let Ok(head) = crate::tier::fetch::read_head(&mut src, &mut buf, sel % 7 == 0) {
        let _ = body::read(
            &mut src,
            &mut buf,
            head.framing,
            |_: &[u8]| Ok::<(), ()>(()),
        );
    }
}

fn playlists(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let info = playlist::scan(&text);
    let _ = info.last_msn();
    let _ = info.advance_part_limit();
    let mut out = Vec::new();
    if playlist::delta_update(&text, &info, &mut out) {
        assert!(
            out.len() <= text.len() + 256,
            "a delta update is not longer than the playlist it skips in"
        );
    }
    let path: &[u8] = b"live/r1/index.m3u8";
    Hints::default().update(path, &info);
    Catalog::default().learn(path, &text);
    for line in text.lines().take(64) {
        let _ = playlist::resolve(path, line);
        if let Ok(d) = playlist::directives(line.as_bytes()) {
            let _ = playlist::blocking(&info, &d);
            let _ = info.satisfies(d.msn.unwrap_or(0), d.part);
        }
    }
}

fn fields(data: &[u8]) {
    let mut c = Cmcd::default();
    c.add(data);
    let _ = Cmcd::from_request(data, [data]);
    let _ = cmcd::query_value(data);
    for size in [0, 1, 1000, u64::MAX] {
        let _ = range::evaluate(data, size);
    }
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &[u8])> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n, v.as_bytes()))
        .collect();
    let _ = fresh::policy(pairs.iter().copied());
    // A packager's request head on the ingest port.
    let _ = crate::ingest::parse_head(data);
}
