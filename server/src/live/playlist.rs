//! The LL-HLS model of a media playlist (draft-pantos-hls-rfc8216bis): what the server must
//! know to answer blocking playlist reloads, delta updates and preload hints, read once per
//! version of the file. Pure functions of text; no I/O.
//!
//! The scan is hand-rolled: no HLS crate parses just the server-control facts we need
//! without allocating a full AST per reload, and this runs on every playlist change.

use corestream_common::hls::attr;

/// Facts about one media playlist, read once per version of the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlaylistInfo {
    pub target_duration: f64,
    pub media_sequence: u64,
    /// Complete segments in the playlist.
    pub segments: u64,
    /// Parts listed per segment, oldest first, for segments that have parts; the last entry
    /// may be the segment still in progress (msn = media_sequence + segments).
    pub parts: Vec<(u64, u32)>,
    pub part_target: Option<f64>,
    pub can_block_reload: bool,
    pub can_skip_until: Option<f64>,
    pub endlist: bool,
    /// URI of EXT-X-PRELOAD-HINT, as written (relative to the playlist).
    pub preload_hint: Option<String>,
    /// URIs of every EXT-X-PART, as written.
    pub part_uris: Vec<String>,
    /// True when this is a media playlist (has EXTINF or EXT-X-TARGETDURATION).
    pub is_media: bool,
}

impl PlaylistInfo {
    /// MSN of the last complete segment (None if there is none yet).
    pub fn last_msn(&self) -> Option<u64> {
        (self.segments > 0).then(|| self.media_sequence.saturating_add(self.segments - 1))
    }

    fn parts_of(&self, msn: u64) -> u32 {
        self.parts
            .iter()
            .find(|(m, _)| *m == msn)
            .map_or(0, |(_, n)| *n)
    }

    fn segment_complete(&self, msn: u64) -> bool {
        self.last_msn().is_some_and(|l| msn <= l)
    }

    /// Does the playlist already satisfy `_HLS_msn=msn[&_HLS_part=part]`?
    pub fn satisfies(&self, msn: u64, part: Option<u32>) -> bool {
        match part {
            None => self.segment_complete(msn),
            Some(p) => {
                if self.segment_complete(msn) {
                    let count = self.parts_of(msn);
                    // A part number past the last part of a finished segment means part 0
                    // of the next one (rfc8216bis 6.2.5.2).
                    if count == 0 || p < count {
                        return true;
                    }
                    let next = msn.saturating_add(1);
                    return self.segment_complete(next) || self.parts_of(next) > 0;
                }
                self.parts_of(msn) > p
            }
        }
    }

    /// Advance Part Limit: 3 / PART-TARGET parts when PART-TARGET < 1 s, else 3.
    pub fn advance_part_limit(&self) -> u32 {
        match self.part_target {
            Some(t) if t > 0.0 && t < 1.0 => (3.0 / t).ceil() as u32,
            _ => 3,
        }
    }
}

/// Scan a playlist's text. Unknown lines are ignored; numbers that do not parse are
/// treated as absent, so a malformed playlist never panics and never blocks anyone.
pub fn scan(text: &str) -> PlaylistInfo {
    let mut info = PlaylistInfo::default();
    let mut pending_parts = 0u32;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            info.target_duration = v.trim().parse().unwrap_or(0.0);
            info.is_media = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            info.media_sequence = v.trim().parse().unwrap_or(0);
        } else if line.starts_with("#EXTINF:") {
            info.is_media = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            info.part_target = attr(v, "PART-TARGET").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            info.can_block_reload = attr(v, "CAN-BLOCK-RELOAD").is_some_and(|x| x == "YES");
            info.can_skip_until = attr(v, "CAN-SKIP-UNTIL").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            pending_parts += 1;
            if let Some(u) = attr(v, "URI") {
                info.part_uris.push(u.to_string());
            }
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            info.preload_hint = attr(v, "URI").map(str::to_string);
        } else if line == "#EXT-X-ENDLIST" {
            info.endlist = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            // A segment URI closes the segment, with the parts listed before it.
            let msn = info.media_sequence.saturating_add(info.segments);
            if pending_parts > 0 {
                info.parts.push((msn, pending_parts));
            }
            pending_parts = 0;
            info.segments += 1;
        }
    }
    if pending_parts > 0 {
        info.parts.push((
            info.media_sequence.saturating_add(info.segments),
            pending_parts,
        ));
    }
    // Only the recent segments' parts matter; bound the vector.
    let len = info.parts.len();
    if len > 8 {
        info.parts.drain(..len - 8);
    }
    info
}

/// LL-HLS query directives of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
}

/// A directive whose value is malformed (answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadDirective;

/// Parse `_HLS_msn`, `_HLS_part`, `_HLS_skip` from a query string. Err for values that are
/// not numbers (400).
pub fn directives(query: &[u8]) -> Result<Directives, BadDirective> {
    let mut d = Directives::default();
    for pair in query.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let num = |v: &[u8]| -> Result<u64, BadDirective> {
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(BadDirective);
            }
            std::str::from_utf8(v)
                .map_err(|_| BadDirective)?
                .parse()
                .map_err(|_| BadDirective)
        };
        match k {
            b"_HLS_msn" => d.msn = Some(num(v)?),
            b"_HLS_part" => d.part = Some(u32::try_from(num(v)?).map_err(|_| BadDirective)?),
            b"_HLS_skip" => match v {
                b"YES" | b"v2" => d.skip = true,
                _ => return Err(BadDirective),
            },
            _ => {}
        }
    }
    Ok(d)
}

/// What to do with a blocking-reload request against the current playlist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Block {
    /// Answer now with the (whole) playlist.
    Now,
    /// Hold the request until the playlist changes, for at most this many seconds.
    Wait(f64),
    /// 400: the directives are invalid for this playlist.
    Bad,
}

pub fn blocking(info: &PlaylistInfo, d: &Directives) -> Block {
    if d.part.is_some() && d.msn.is_none() {
        return Block::Bad;
    }
    let Some(msn) = d.msn else { return Block::Now };
    if info.endlist || !info.can_block_reload || !info.is_media {
        return Block::Now;
    }
    let next = info
        .last_msn()
        .map_or(info.media_sequence, |l| l.saturating_add(1));
    // "More than two beyond the last segment": last + 2 is the furthest allowed.
    if msn > next.saturating_add(1) {
        return Block::Bad;
    }
    if let Some(p) = d.part {
        if info.part_target.is_none() || p > info.advance_part_limit() {
            return Block::Bad;
        }
    }
    if info.satisfies(msn, d.part) {
        Block::Now
    } else {
        Block::Wait(3.0 * info.target_duration.max(1.0))
    }
}

/// Write a Playlist Delta Update (EXT-X-SKIP) of `text` into `out`, or return false when
/// nothing can be skipped (then the full playlist is sent).
pub fn delta_update(text: &str, info: &PlaylistInfo, out: &mut Vec<u8>) -> bool {
    let Some(skip_until) = info.can_skip_until else {
        return false;
    };
    // Group lines: header (up to the first segment-level tag), then segments, each ending
    // at its URI line; trailing lines (parts in progress, hints) after the last URI.
    let lines: Vec<&str> = text.lines().collect();
    let is_segment_tag = |l: &str| {
        l.starts_with("#EXTINF:")
            || l.starts_with("#EXT-X-PART:")
            || l.starts_with("#EXT-X-PROGRAM-DATE-TIME:")
            || l.starts_with("#EXT-X-DISCONTINUITY")
                && !l.starts_with("#EXT-X-DISCONTINUITY-SEQUENCE")
            || l.starts_with("#EXT-X-BYTERANGE:")
            || l.starts_with("#EXT-X-GAP")
            || l.starts_with("#EXT-X-BITRATE:")
            || l.starts_with("#EXT-X-DATERANGE:")
    };
    let header_end = lines
        .iter()
        .position(|l| is_segment_tag(l.trim()) || (!l.trim().is_empty() && !l.starts_with('#')))
        .unwrap_or(lines.len());
    let mut segs: Vec<(usize, usize, f64)> = Vec::new(); // (start, end exclusive, duration)
    let mut start = header_end;
    let mut dur = 0.0;
    for (i, l) in lines.iter().enumerate().skip(header_end) {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = v
                .split(',')
                .next()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0.0);
        } else if !l.is_empty() && !l.starts_with('#') {
            segs.push((start, i + 1, dur));
            start = i + 1;
            dur = 0.0;
        }
    }
    let total: f64 = segs.iter().map(|s| s.2).sum();
    // Skip segments that start more than CAN-SKIP-UNTIL seconds before the playlist's end,
    // never the last one: a packager's CAN-SKIP-UNTIL shorter than its last segment (or
    // zero) would otherwise skip them all.
    let mut skipped = 0usize;
    let mut t = 0.0;
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if total - t > skip_until {
            skipped += 1;
            t += s.2;
        } else {
            break;
        }
    }
    if skipped == 0 {
        return false;
    }
    for l in &lines[..header_end] {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n").as_bytes());
    for l in &lines[segs[skipped].0..] {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    true
}

/// Resolve a playlist-relative URI against the playlist's own root-relative path.
/// Returns None for absolute URLs or anything that leaves the root.
pub fn resolve(playlist: &[u8], uri: &str) -> Option<Vec<u8>> {
    if uri.contains("://") || uri.starts_with('/') {
        return None;
    }
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let dir_end = playlist
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1);
    let mut target = format!("/{}{}", String::from_utf8_lossy(&playlist[..dir_end]), uri);
    if target.contains("/.") {
        return None;
    }
    let mut out = Vec::new();
    crate::http::path::decode(std::mem::take(&mut target).as_bytes(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0\n\
#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n\
#EXTINF:2.0,\ns10.ts\n#EXTINF:2.0,\ns11.ts\n\
#EXT-X-PART:DURATION=0.5,URI=\"s12.p0.ts\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"s12.p1.ts\"\n\
#EXT-X-PART:DURATION=0.5,URI=\"s12.p2.ts\"\n#EXT-X-PART:DURATION=0.5,URI=\"s12.p3.ts\"\n#EXTINF:2.0,\ns12.ts\n\
#EXT-X-PART:DURATION=0.5,URI=\"s13.p0.ts\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s13.p1.ts\"\n";

    #[test]
    fn scan_ll() {
        let i = scan(LL);
        assert_eq!(i.media_sequence, 10);
        assert_eq!(i.segments, 3);
        assert_eq!(i.last_msn(), Some(12));
        assert_eq!(i.parts, vec![(12, 4), (13, 1)]);
        assert_eq!(i.part_target, Some(0.5));
        assert!(i.can_block_reload);
        assert_eq!(i.can_skip_until, Some(12.0));
        assert_eq!(i.preload_hint.as_deref(), Some("s13.p1.ts"));
        assert_eq!(i.advance_part_limit(), 6);
        assert!(!i.endlist);
    }

    #[test]
    fn blocking_rules() {
        let i = scan(LL);
        let d = |msn: Option<u64>, part: Option<u32>| Directives {
            msn,
            part,
            skip: false,
        };
        assert_eq!(blocking(&i, &d(Some(12), None)), Block::Now);
        assert_eq!(blocking(&i, &d(Some(13), None)), Block::Wait(6.0));
        assert_eq!(blocking(&i, &d(Some(13), Some(0))), Block::Now);
        assert_eq!(blocking(&i, &d(Some(13), Some(1))), Block::Wait(6.0));
        // Past the last part of a finished segment: part 0 of the next, which exists.
        assert_eq!(blocking(&i, &d(Some(12), Some(4))), Block::Now);
        assert_eq!(blocking(&i, &d(Some(14), None)), Block::Wait(6.0));
        assert_eq!(blocking(&i, &d(Some(15), None)), Block::Bad);
        assert_eq!(blocking(&i, &d(None, Some(1))), Block::Bad);
        assert_eq!(blocking(&i, &d(Some(13), Some(7))), Block::Bad);
        let ended = scan(&format!("{LL}#EXT-X-ENDLIST\n"));
        assert_eq!(blocking(&ended, &d(Some(14), None)), Block::Now);
        let no_block = scan(&LL.replace("CAN-BLOCK-RELOAD=YES,", ""));
        assert_eq!(blocking(&no_block, &d(Some(14), None)), Block::Now);
    }

    #[test]
    fn query_directives() {
        assert_eq!(
            directives(b"_HLS_msn=5&_HLS_part=2"),
            Ok(Directives {
                msn: Some(5),
                part: Some(2),
                skip: false
            })
        );
        assert_eq!(directives(b"_HLS_skip=YES").map(|d| d.skip), Ok(true));
        assert_eq!(directives(b"_HLS_skip=v2").map(|d| d.skip), Ok(true));
        assert_eq!(directives(b"foo=bar&x"), Ok(Directives::default()));
        assert!(directives(b"_HLS_msn=abc").is_err());
        assert!(directives(b"_HLS_msn=99999999999999999999999").is_err());
        assert!(directives(b"_HLS_part=-1&_HLS_msn=1").is_err());
        assert!(directives(b"_HLS_skip=NO").is_err());
    }

    #[test]
    fn delta() {
        let mut text = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0\n#EXT-X-MEDIA-SEQUENCE:0\n");
        for i in 0..6 {
            text.push_str(&format!("#EXTINF:2.0,\ns{i}.ts\n"));
        }
        let info = scan(&text);
        let mut out = Vec::new();
        assert!(delta_update(&text, &info, &mut out));
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"), "{out}");
        assert!(!out.contains("s2.ts"));
        assert!(out.contains("#EXTINF:2.0,\ns3.ts\n"));
        assert!(out.starts_with("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"));
        let plain = scan("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n");
        assert!(!delta_update("#EXTM3U\n", &plain, &mut Vec::new()));
    }

    #[test]
    fn resolve_uris() {
        assert_eq!(
            resolve(b"live/720p/index.m3u8", "s1.ts"),
            Some(b"live/720p/s1.ts".to_vec())
        );
        assert_eq!(
            resolve(b"index.m3u8", "a/s1.ts?x=1"),
            Some(b"a/s1.ts".to_vec())
        );
        assert_eq!(resolve(b"live/index.m3u8", "../x.ts"), None);
        assert_eq!(resolve(b"live/index.m3u8", "http://e/x.ts"), None);
    }

    #[test]
    fn hostile_playlists_do_not_panic() {
        for t in [
            "",
            "#EXT-X-PART-INF:PART-TARGET=",
            "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=\"",
            "#EXT-X-PART:URI=\"",
            "#EXT-X-MEDIA-SEQUENCE:18446744073709551615\na.ts\nb.ts\n",
        ] {
            let i = scan(t);
            let _ = blocking(
                &i,
                &Directives {
                    msn: Some(u64::MAX),
                    part: Some(u32::MAX),
                    skip: true,
                },
            );
            let _ = delta_update(t, &i, &mut Vec::new());
        }
    }
}
