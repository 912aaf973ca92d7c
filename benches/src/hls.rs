//! Just enough of an HLS playlist parser (RFC 8216) for the swarm: master playlists
//! (variant streams) and media playlists (target duration, media sequence, segments with
//! their durations and PROGRAM-DATE-TIME, end list), with the Low-Latency HLS additions of
//! draft-pantos-hls-rfc8216bis (server control, parts, preload hints).

use corestream_common::date::parse_rfc3339_ms;
use corestream_common::hls::attr;

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub bandwidth: u64,
    pub uri: String,
}

/// An LL-HLS Partial Segment (`EXT-X-PART`).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub duration: f64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub seq: u64,
    pub duration: f64,
    pub uri: String,
    /// Its parts, when the playlist still lists them.
    pub parts: Vec<Part>,
    /// Wall-clock time of its first sample (ms since the Unix epoch): its own
    /// EXT-X-PROGRAM-DATE-TIME or the previous segment's plus that one's duration.
    pub start_ms: Option<i64>,
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
    /// `#EXT-X-PART-INF:PART-TARGET` (seconds): the playlist is Low-Latency.
    pub part_target: Option<f64>,
    /// `#EXT-X-SERVER-CONTROL:PART-HOLD-BACK` (seconds from the live edge to start at).
    pub part_hold_back: Option<f64>,
    /// Parts of the segment after the last complete one (MSN `next_msn()`).
    pub pending_parts: Vec<Part>,
    /// `#EXT-X-PRELOAD-HINT:TYPE=PART` URI: the part that will be published next.
    pub preload_hint: Option<String>,
}

impl Playlist {
    pub fn is_master(&self) -> bool {
        !self.variants.is_empty()
    }

    /// MSN of the segment after the last complete one (the one `pending_parts` belong to).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    /// Parts listed for segment `msn` (complete or pending); None when not listed.
    pub fn parts_of(&self, msn: u64) -> Option<&[Part]> {
        if msn == self.next_msn() {
            return Some(&self.pending_parts);
        }
        let i = msn.checked_sub(self.media_sequence)?;
        let seg = self.segments.get(usize::try_from(i).ok()?)?;
        (!seg.parts.is_empty()).then_some(&seg.parts[..])
    }

    /// Wall-clock start (ms) of segment `msn`, listed or pending, when the playlist dates it.
    pub fn start_ms(&self, msn: u64) -> Option<i64> {
        if msn == self.next_msn() {
            let last = self.segments.last()?;
            return Some(last.start_ms? + (last.duration * 1000.0).round() as i64);
        }
        let i = usize::try_from(msn.checked_sub(self.media_sequence)?).ok()?;
        self.segments.get(i)?.start_ms
    }

    /// The newest part listed, as (MSN, index).
    pub fn last_part(&self) -> Option<(u64, usize)> {
        if !self.pending_parts.is_empty() {
            return Some((self.next_msn(), self.pending_parts.len() - 1));
        }
        let last = self.segments.last()?;
        (!last.parts.is_empty()).then(|| (last.seq, last.parts.len() - 1))
    }

    /// Whether part (msn, index) is published according to this playlist: listed, or in a
    /// segment that is complete.
    pub fn lists(&self, (msn, index): (u64, usize)) -> bool {
        msn < self.next_msn() || (msn == self.next_msn() && index < self.pending_parts.len())
    }

    /// When part (msn, index) was published (ms since the Unix epoch): a packager publishes a
    /// part once its last sample is in, at the segment's start plus the durations of its
    /// parts up to this one. None without PROGRAM-DATE-TIME or when the part is not listed.
    pub fn part_published_ms(&self, (msn, index): (u64, usize)) -> Option<i64> {
        let start = self.start_ms(msn)?;
        let parts = self.parts_of(msn)?;
        let upto = parts.get(..=index)?;
        Some(start + (upto.iter().map(|p| p.duration).sum::<f64>() * 1000.0).round() as i64)
    }

    /// The part after (msn, index): the next index, or part 0 of the next segment when
    /// (msn, index) is the last part of a complete segment.
    pub fn part_after(&self, (msn, index): (u64, usize)) -> (u64, usize) {
        let complete = msn < self.next_msn();
        match self.parts_of(msn) {
            Some(parts) if complete && index + 1 >= parts.len() => (msn + 1, 0),
            _ => (msn, index + 1),
        }
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
    let mut pending_date: Option<i64> = None;
    let mut parts: Vec<Part> = Vec::new();
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
            p.part_hold_back = attr(v, "PART-HOLD-BACK").and_then(|x| x.parse().ok());
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = Some(
                attr(v, "PART-TARGET")
                    .and_then(|x| x.parse().ok())
                    .ok_or_else(|| format!("#EXT-X-PART-INF without a numeric PART-TARGET: {l}"))?,
            );
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART:") {
            let (Some(d), Some(uri)) = (
                attr(v, "DURATION").and_then(|x| x.parse().ok()),
                attr(v, "URI"),
            ) else {
                return Err(format!("#EXT-X-PART without DURATION and URI: {l}"));
            };
            parts.push(Part {
                duration: d,
                uri: uri.to_string(),
            });
        } else if let Some(v) = l.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            if attr(v, "TYPE") == Some("PART") {
                p.preload_hint = attr(v, "URI").map(str::to_string);
            }
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pending_date = Some(
                parse_rfc3339_ms(v).ok_or_else(|| format!("bad #EXT-X-PROGRAM-DATE-TIME: {l}"))?,
            );
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
            let start_ms = pending_date.take().or_else(|| {
                let prev = p.segments.last()?;
                Some(prev.start_ms? + (prev.duration * 1000.0).round() as i64)
            });
            p.segments.push(Segment {
                seq,
                duration: d,
                uri: l.to_string(),
                parts: std::mem::take(&mut parts),
                start_ms,
            });
        } else {
            return Err(format!(
                "URI line without #EXTINF or #EXT-X-STREAM-INF: {l}"
            ));
        }
    }
    p.pending_parts = parts;
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

    /// As `corestream --demo-ll` writes it (parts for the last segments, a pending segment,
    /// a preload hint, rendition reports).
    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.5\n\
        #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-12-03T09:00:00.000Z\n#EXTINF:2,\ns-40.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-12-03T09:00:02.000Z\n\
        #EXT-X-PART:DURATION=0.5,URI=\"s-41.0.ts\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"s-41.1.ts\"\n\
        #EXT-X-PART:DURATION=0.5,URI=\"s-41.2.ts\"\n#EXT-X-PART:DURATION=0.5,URI=\"s-41.3.ts\"\n#EXTINF:2,\ns-41.ts\n\
        #EXT-X-PART:DURATION=0.5,URI=\"s-42.0.ts\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"s-42.1.ts\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-42.2.ts\"\n\
        #EXT-X-RENDITION-REPORT:URI=\"../1080p/index.m3u8\",LAST-MSN=42,LAST-PART=1\n";

    #[test]
    fn low_latency_parts_hints_and_dates() {
        let p = parse(LL).unwrap();
        assert!(p.can_block_reload);
        assert_eq!(p.part_target, Some(0.5));
        assert_eq!(p.part_hold_back, Some(1.5));
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[0].parts.is_empty());
        assert_eq!(p.segments[1].parts.len(), 4);
        assert_eq!(p.segments[1].parts[3].uri, "s-41.3.ts");
        assert_eq!(p.next_msn(), 42);
        assert_eq!(p.pending_parts.len(), 2);
        assert_eq!(p.preload_hint.as_deref(), Some("s-42.2.ts"));
        assert_eq!(p.last_part(), Some((42, 1)));
        let t0 = parse_rfc3339_ms("2026-12-03T09:00:00.000Z").unwrap();
        assert_eq!(p.start_ms(40), Some(t0));
        assert_eq!(p.start_ms(41), Some(t0 + 2000));
        // The pending segment starts where the last complete one ends.
        assert_eq!(p.start_ms(42), Some(t0 + 4000));
        assert_eq!(p.start_ms(39), None);
        assert_eq!(p.parts_of(40), None);
        assert_eq!(p.parts_of(41).map(<[Part]>::len), Some(4));
        assert_eq!(p.part_after((41, 3)), (42, 0));
        assert_eq!(p.part_after((42, 1)), (42, 2));
        assert!(p.lists((41, 3)) && p.lists((42, 1)) && p.lists((40, 9)));
        assert!(!p.lists((42, 2)) && !p.lists((43, 0)));
        assert_eq!(p.part_published_ms((41, 0)), Some(t0 + 2500));
        assert_eq!(p.part_published_ms((42, 1)), Some(t0 + 5000));
        assert_eq!(p.part_published_ms((42, 2)), None);
        // Dates carry over to segments without their own tag.
        let q = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:01Z\n#EXTINF:2,\na.ts\n#EXTINF:1.5,\nb.ts\n").unwrap();
        assert_eq!(q.start_ms(1), Some(3000));
        assert_eq!(q.last_part(), None);
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
