//! Test media: a master playlist, three renditions of 2 s segments at 5, 2.5 and 1 Mbit/s,
//! and live-style media playlists. Segment bytes are random: a file server never looks
//! inside, only sizes and count matter, and random bytes cost no encoder CPU on the box
//! being measured. Sizes include ~10% MPEG-TS muxing overhead over the nominal bitrate.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

pub const SEGMENT_SECONDS: f64 = 2.0;
pub const SEGMENTS_PER_RENDITION: u64 = 6;
/// (directory, nominal kbit/s, resolution) from high to low.
pub const RENDITIONS: [(&str, u64, &str); 3] = [
    ("r5000", 5000, "1920x1080"),
    ("r2500", 2500, "1280x720"),
    ("r1000", 1000, "640x360"),
];

pub fn segment_bytes(kbps: u64) -> u64 {
    // bits/s * seconds / 8 * 1.1 muxing overhead
    (kbps as f64 * 1000.0 * SEGMENT_SECONDS / 8.0 * 1.1) as u64
}

/// Live media playlist text for segments `first..first+count` named `seg<N>.ts`.
pub fn media_playlist(first: u64, count: u64, target: f64) -> String {
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
        target.ceil() as u64
    );
    for n in first..first + count {
        // Live packagers tag each segment with its wall-clock time; it is most of the size.
        let secs = (n as f64 * target) as u64;
        s.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T{:02}:{:02}:{:02}.000Z\n#EXTINF:{target:.3},\nseg{n}.ts\n",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        ));
    }
    s
}

pub fn master_playlist() -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for (dir, kbps, res) in RENDITIONS {
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={res},CODECS=\"avc1.64001f,mp4a.40.2\"\n{dir}/index.m3u8\n",
            kbps * 1100,
            kbps * 1000
        ));
    }
    s
}

/// Fill `len` bytes of pseudo-random data (xorshift; no crate needed for filler).
pub fn filler(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len as usize);
    while (v.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len as usize);
    v
}

/// Write `data` to `path` atomically (temp file + rename), as live packagers do.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
    }
    fs::rename(&tmp, path)
}

/// Build the static test set under `root` (created if missing).
pub fn build(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    write_atomic(&root.join("master.m3u8"), master_playlist().as_bytes())?;
    for (i, (dir, kbps, _)) in RENDITIONS.iter().enumerate() {
        let d = root.join(dir);
        fs::create_dir_all(&d)?;
        for n in 0..SEGMENTS_PER_RENDITION {
            let data = filler(segment_bytes(*kbps), (i as u64 + 1) * 1000 + n);
            write_atomic(&d.join(format!("seg{n}.ts")), &data)?;
        }
        write_atomic(
            &d.join("index.m3u8"),
            media_playlist(0, SEGMENTS_PER_RENDITION, SEGMENT_SECONDS).as_bytes(),
        )?;
    }
    make_world_readable(root)
}

/// nginx workers may run as another user; let them read the tree.
pub fn make_world_readable(root: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::metadata(&p)?;
        if md.is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        } else {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls;

    #[test]
    fn sizes_match_the_issue() {
        assert_eq!(segment_bytes(2500), 687_500);
        assert_eq!(segment_bytes(5000), 1_375_000);
        assert_eq!(segment_bytes(1000), 275_000);
        let pl = media_playlist(0, 6, 2.0);
        assert!((300..600).contains(&pl.len()), "{}", pl.len());
    }

    #[test]
    fn built_tree_parses() {
        let dir = std::env::temp_dir().join(format!("csbench-media-{}", std::process::id()));
        build(&dir).unwrap();
        let master = fs::read_to_string(dir.join("master.m3u8")).unwrap();
        let m = hls::parse(&master).unwrap();
        assert_eq!(m.variants.len(), 3);
        let media = fs::read_to_string(dir.join("r2500/index.m3u8")).unwrap();
        let p = hls::parse(&media).unwrap();
        assert_eq!(p.segments.len(), 6);
        assert_eq!(
            fs::metadata(dir.join("r2500/seg0.ts")).unwrap().len(),
            687_500
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
