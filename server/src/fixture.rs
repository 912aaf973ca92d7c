//! The media root that the request-path fuzz target (`fuzz/`), the corpus replay
//! (`tests/hostile_corpus.rs`) and the property tests run requests against. It is laid out
//! like a live HLS/DASH origin. A file outside the root ([`OUTSIDE_LEN`] bytes, a size no
//! inside file has) can be reached only through two symlinks that must never be followed.
//! It is not part of the server. It is public only so that the separate fuzz crate can share
//! it.

use crate::config::{Cli, Config};
use crate::shared::Shared;
use clap::Parser;
use std::io;
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
