//! Just enough of an HLS playlist parser (RFC 8216) for the swarm: master playlists
//! (variant streams) and media playlists (target duration, media sequence, segments with
//! their durations, end list, LL-HLS blocking-reload support).

use corestream_common::hls::attr;

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub bandwidth: u64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub seq: u64,
    pub duration: f64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Playlist {
    /// Non-empty for a master playlist.
    pub variants: Vec<Variant>,
    pub target_duration: f64,
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    pub endlist: bool,
    /// `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`
    pub can_block_reload: bool,
}

impl Playlist {
    pub fn is_master(&self) -> bool {
        !self.variants.is_empty()
    }
}

/// Parse a playlist. Errors say what is wrong so a swarm run against a bad URL explains itself.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(l) if l.trim_start_matches('\u{feff}') == "#EXTM3U" => {}
        _ => return Err("not an HLS playlist (first line is not #EXTM3U)".into()),
    }
    let mut p = Playlist::default();
    let mut pending_bw: Option<u64> = None;
    let mut pending_dur: Option<f64> = None;
    let mut seq_next: Option<u64> = None;
    for l in lines {
        if let Some(v) = l.strip_prefix("#EXT-X-STREAM-INF:") {
            let bw = attr(v, "BANDWIDTH")
                .and_then(|b| b.parse().ok())
                .ok_or_else(|| format!("#EXT-X-STREAM-INF without a numeric BANDWIDTH: {l}"))?;
            pending_bw = Some(bw);
        } else if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v
                .parse()
                .map_err(|_| format!("bad #EXT-X-TARGETDURATION: {l}"))?;
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v
                .parse()
                .map_err(|_| format!("bad #EXT-X-MEDIA-SEQUENCE: {l}"))?;
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or("");
            pending_dur = Some(d.parse().map_err(|_| format!("bad #EXTINF: {l}"))?);
        } else if l == "#EXT-X-ENDLIST" {
            p.endlist = true;
        } else if let Some(v) = l.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            p.can_block_reload = attr(v, "CAN-BLOCK-RELOAD") == Some("YES");
        } else if l.starts_with('#') {
            continue;
        } else if let Some(bw) = pending_bw.take() {
            p.variants.push(Variant {
                bandwidth: bw,
                uri: l.to_string(),
            });
        } else if let Some(d) = pending_dur.take() {
            let seq = seq_next.unwrap_or(p.media_sequence);
            seq_next = Some(seq + 1);
            p.segments.push(Segment {
                seq,
                duration: d,
                uri: l.to_string(),
            });
        } else {
            return Err(format!(
                "URI line without #EXTINF or #EXT-X-STREAM-INF: {l}"
            ));
        }
    }
    if !p.is_master() {
        if p.target_duration <= 0.0 {
            return Err("media playlist without #EXT-X-TARGETDURATION".into());
        }
        if p.segments.is_empty() && p.endlist {
            return Err("media playlist has no segments".into());
        }
    }
    Ok(p)
}

/// Resolve a playlist-relative URI against the path of the playlist that named it.
/// Absolute http URLs keep only their path (the swarm talks to one origin).
pub fn resolve(base_path: &str, uri: &str) -> String {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest.find('/').map_or("/".into(), |i| rest[i..].to_string());
    }
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let base = base_path.split('?').next().unwrap_or(base_path);
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let mut parts: Vec<&str> = Vec::new();
    let joined = format!("{dir}{uri}");
    for seg in joined.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master() {
        let t = "#EXTM3U\n#EXT-X-VERSION:3\n\
                 #EXT-X-STREAM-INF:BANDWIDTH=5500000,RESOLUTION=1920x1080,CODECS=\"avc1.64001f,mp4a.40.2\"\nr5000/index.m3u8\n\
                 #EXT-X-STREAM-INF:CODECS=\"avc1,mp4a\",BANDWIDTH=1100000\nr1000/index.m3u8\n";
        let p = parse(t).unwrap();
        assert!(p.is_master());
        assert_eq!(p.variants.len(), 2);
        assert_eq!(p.variants[0].bandwidth, 5_500_000);
        assert_eq!(p.variants[1].bandwidth, 1_100_000);
        assert_eq!(p.variants[1].uri, "r1000/index.m3u8");
    }

    #[test]
    fn live_media_from_ffmpeg() {
        // As written by `ffmpeg -f hls -hls_time 2 -hls_list_size 3` (ffmpeg 5.1).
        let t = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:17\n\
                 #EXTINF:2.000000,\nindex17.ts\n#EXTINF:2.000000,\nindex18.ts\n#EXTINF:1.966667,\nindex19.ts\n";
        let p = parse(t).unwrap();
        assert!(!p.is_master() && !p.endlist && !p.can_block_reload);
        assert_eq!(p.target_duration, 2.0);
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.segments[0].seq, 17);
        assert_eq!(p.segments[2].seq, 19);
        assert!((p.segments[2].duration - 1.966667).abs() < 1e-9);
    }

    #[test]
    fn ll_hls_and_endlist() {
        let t = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n\
                 #EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n";
        let p = parse(t).unwrap();
        assert!(p.can_block_reload && p.endlist);
        assert_eq!(p.segments[0].seq, 0);
    }

    #[test]
    fn errors_explain() {
        for (text, says) in [
            ("<html>", "#EXTM3U"),
            ("#EXTM3U\n#EXTINF:x,\na.ts\n", "#EXTINF"),
            ("#EXTM3U\n#EXTINF:2,\na.ts\n", "TARGETDURATION"),
            ("#EXTM3U\n#EXT-X-TARGETDURATION:2\nstray.ts\n", "without"),
            (
                "#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\nv.m3u8\n",
                "BANDWIDTH",
            ),
            ("", "#EXTM3U"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn resolving() {
        for (base, uri, want) in [
            ("/live/master.m3u8", "r1/index.m3u8", "/live/r1/index.m3u8"),
            ("/live/r1/index.m3u8?x=1", "../r2/a.ts", "/live/r2/a.ts"),
            ("/a/b.m3u8", "/abs/c.ts", "/abs/c.ts"),
            ("/a/b.m3u8", "http://h:1/x/y.ts", "/x/y.ts"),
            ("/index.m3u8", "seg1.ts", "/seg1.ts"),
        ] {
            assert_eq!(resolve(base, uri), want, "{base} + {uri}");
        }
    }
}
