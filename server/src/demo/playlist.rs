//! Text of the demo's master and media playlists (RFC 8216, and draft-pantos-hls-rfc8216bis for
//! the Low-Latency tags). Pure functions of the publisher's state, so the rules are unit-tested
//! without clocks or files.

use std::fmt::Write;

use super::ts::CLOCK_HZ;

/// One variant in the master playlist.
pub struct Variant<'a> {
    pub uri: &'a str,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub frame_rate_milli: u64,
    pub codecs: &'a str,
}

pub fn master(variants: &[Variant<'_>]) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = writeln!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},FRAME-RATE={}.{:03},CODECS=\"{}\"\n{}",
            v.bandwidth,
            v.average_bandwidth,
            v.width,
            v.height,
            v.frame_rate_milli / 1000,
            v.frame_rate_milli % 1000,
            v.codecs,
            v.uri
        );
    }
    s
}

/// A Partial Segment (LL-HLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub uri: String,
    /// 90 kHz ticks.
    pub duration: u64,
    pub independent: bool,
}

/// A complete Media Segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub msn: u64,
    pub uri: String,
    /// 90 kHz ticks.
    pub duration: u64,
    /// Its parts, empty unless the stream is low-latency.
    pub parts: Vec<Part>,
    /// Wall-clock time of its first sample, milliseconds since the Unix epoch.
    pub program_date_ms: Option<i64>,
}

/// The Low-Latency additions to a media playlist.
pub struct LowLatency<'a> {
    /// PART-TARGET in 90 kHz ticks.
    pub part_target: u64,
    /// Parts already published of the segment that is not complete yet.
    pub pending: &'a [Part],
    /// URI of the part that will be published next (EXT-X-PRELOAD-HINT).
    pub preload_hint: Option<&'a str>,
    /// EXT-X-RENDITION-REPORT for the other renditions: (URI, LAST-MSN, LAST-PART).
    pub reports: &'a [(String, u64, u64)],
}

/// EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must not exceed it
/// (RFC 8216 4.3.3.1); rounding up is the safe side of that rule.
pub fn target_duration(max_segment_ticks: u64) -> u64 {
    max_segment_ticks.div_ceil(CLOCK_HZ).max(1)
}

/// Seconds with three decimals, trailing zeros trimmed: 0.5, 2, 1.5.
pub fn seconds(ticks: u64) -> String {
    let millis = (ticks * 1000).div_ceil(CLOCK_HZ);
    let mut s = format!("{}.{:03}", millis / 1000, millis % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// A media playlist. `segments` are the complete segments in the window, oldest first;
/// `ended` adds EXT-X-ENDLIST (and drops the Low-Latency live-edge tags).
pub fn media(
    segments: &[Segment],
    target_duration: u64,
    ll: Option<&LowLatency<'_>>,
    ended: bool,
) -> String {
    let mut s = String::with_capacity(1024);
    // Version 9 is what a delta update (EXT-X-SKIP) of this playlist requires; the full
    // playlist uses nothing newer than version 3.
    let version = if ll.is_some() { 9 } else { 3 };
    let _ = write!(
        s,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target_duration}\n"
    );
    if let Some(ll) = ll {
        // rfc8216bis 4.4.3.8: CAN-SKIP-UNTIL at least six target durations; PART-HOLD-BACK at
        // least twice and recommended three times PART-TARGET.
        let _ = write!(
            s,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={}\n\
             #EXT-X-PART-INF:PART-TARGET={}\n",
            seconds(6 * target_duration * CLOCK_HZ),
            seconds(3 * ll.part_target),
            seconds(ll.part_target)
        );
    }
    let first = segments.first().map_or(0, |seg| seg.msn);
    let _ = write!(
        s,
        "#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );

    // rfc8216bis 4.4.4.9: EXT-X-PART tags are removed once they are more than three target
    // durations from the end of the playlist. Keep or drop whole segments' parts so every
    // listed part's parent has all its parts listed.
    let pending = ll.filter(|_| !ended).map_or(&[][..], |ll| ll.pending);
    let total: u64 = segments.iter().map(|seg| seg.duration).sum::<u64>()
        + pending.iter().map(|p| p.duration).sum::<u64>();
    let mut start = 0;
    for seg in segments {
        if let Some(ms) = seg.program_date_ms {
            let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(ms));
        }
        if ll.is_some() && !ended && total - start <= 3 * target_duration * CLOCK_HZ {
            for p in &seg.parts {
                write_part(&mut s, p);
            }
        }
        let _ = write!(s, "#EXTINF:{},\n{}\n", seconds(seg.duration), seg.uri);
        start += seg.duration;
    }
    if let (Some(ll), false) = (ll, ended) {
        for p in pending {
            write_part(&mut s, p);
        }
        if let Some(hint) = ll.preload_hint {
            let _ = writeln!(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
        }
        for (uri, msn, part) in ll.reports {
            let _ = writeln!(
                s,
                "#EXT-X-RENDITION-REPORT:URI=\"{uri}\",LAST-MSN={msn},LAST-PART={part}"
            );
        }
    }
    if ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

fn write_part(s: &mut String, p: &Part) {
    let _ = writeln!(
        s,
        "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
        seconds(p.duration),
        p.uri,
        if p.independent {
            ",INDEPENDENT=YES"
        } else {
            ""
        }
    );
}

/// `2026-11-24T18:36:55.123Z` from milliseconds since the Unix epoch (UTC).
pub fn iso8601(ms: i64) -> String {
    corestream_common::date::Civil::from_unix_ms(ms).rfc3339_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, parts: usize) -> Segment {
        Segment {
            msn,
            uri: format!("s{msn}.ts"),
            duration: 2 * CLOCK_HZ,
            parts: (0..parts)
                .map(|i| Part {
                    uri: format!("s{msn}.{i}.ts"),
                    duration: CLOCK_HZ / 2,
                    independent: i == 0,
                })
                .collect(),
            program_date_ms: Some(1_795_000_000_000 + msn as i64 * 2000),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_795_545_415_123), "2026-11-24T18:36:55.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn seconds_and_target_duration() {
        assert_eq!(seconds(45_000), "0.5");
        assert_eq!(seconds(180_000), "2");
        assert_eq!(seconds(3000), "0.034", "rounds up, never under-states");
        assert_eq!(target_duration(180_000), 2);
        assert_eq!(target_duration(180_001), 3);
        assert_eq!(target_duration(1), 1);
    }

    #[test]
    fn master_lists_every_variant_with_attributes() {
        let m = master(&[Variant {
            uri: "720p/index.m3u8",
            bandwidth: 300_000,
            average_bandwidth: 250_000,
            width: 1280,
            height: 720,
            frame_rate_milli: 30_000,
            codecs: "avc1.4d401f,mp4a.40.2",
        }]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=250000,RESOLUTION=1280x720,\
             FRAME-RATE=30.000,CODECS=\"avc1.4d401f,mp4a.40.2\"\n720p/index.m3u8\n"
        );
    }

    #[test]
    fn plain_live_playlist() {
        let p = media(&[seg(7, 0), seg(8, 0)], 2, None, false);
        assert!(p.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"));
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:"));
        assert!(p.ends_with("#EXTINF:2,\ns7.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-11-18T11:06:56.000Z\n#EXTINF:2,\ns8.ts\n"));
        assert!(!p.contains("ENDLIST") && !p.contains("PART"));
        assert!(media(&[seg(7, 0)], 2, None, true).ends_with("s7.ts\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn low_latency_playlist_lists_recent_parts_hint_and_reports() {
        let segs: Vec<Segment> = (10..16).map(|m| seg(m, 4)).collect();
        let pending = seg(16, 2).parts;
        let reports = vec![("../1080p/index.m3u8".to_string(), 16, 1)];
        let ll = LowLatency {
            part_target: CLOCK_HZ / 2,
            pending: &pending,
            preload_hint: Some("s16.2.ts"),
            reports: &reports,
        };
        let p = media(&segs, 2, Some(&ll), false);
        assert!(p.contains("#EXT-X-VERSION:9\n"));
        assert!(p.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.5\n"
        ));
        assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.5\n"));
        // Playlist end is 13 s after seg 10's start; 3 target durations = 6 s: parts of the
        // segments starting 5 s (msn 14) and 3 s (msn 15) before the end, not msn 13 (7 s).
        assert!(!p.contains("s13.0.ts"));
        assert!(p.contains("#EXT-X-PART:DURATION=0.5,URI=\"s14.0.ts\",INDEPENDENT=YES\n"));
        assert!(p.contains("#EXT-X-PART:DURATION=0.5,URI=\"s14.3.ts\"\n"));
        assert!(p.ends_with(
            "#EXTINF:2,\ns15.ts\n\
             #EXT-X-PART:DURATION=0.5,URI=\"s16.0.ts\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.5,URI=\"s16.1.ts\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s16.2.ts\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../1080p/index.m3u8\",LAST-MSN=16,LAST-PART=1\n"
        ));
        let ended = media(&segs, 2, Some(&ll), true);
        assert!(ended.ends_with("s15.ts\n#EXT-X-ENDLIST\n"));
        assert!(!ended.contains("EXT-X-PART:") && !ended.contains("PRELOAD-HINT"));
    }
}
