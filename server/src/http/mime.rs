//! Content types by file extension. A fixed match instead of a mime database crate: players
//! need exactly these HLS/DASH types, and several (mpd, m4s, vtt, aac) are missing from the
//! common tables (nginx's mime.types lacks them too).

/// What kind of resource a path is, for Cache-Control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Playlists and manifests: change every segment, must never be cached long.
    Playlist,
    /// Media segments, init segments, keys, subtitles: immutable once renamed into place.
    Segment,
    /// Anything else (player pages, scripts, JSON).
    Other,
}

/// Content-Type and kind for a file name.
pub fn lookup(name: &[u8]) -> (&'static str, Kind) {
    let ext = match name.iter().rposition(|&b| b == b'.' || b == b'/') {
        Some(i) if name[i] == b'.' => &name[i + 1..],
        _ => return ("application/octet-stream", Kind::Other),
    };
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return ("application/octet-stream", Kind::Other);
    }
    for (d, s) in lower.iter_mut().zip(ext) {
        *d = s.to_ascii_lowercase();
    }
    match &lower[..ext.len()] {
        b"m3u8" | b"m3u" => ("application/vnd.apple.mpegurl", Kind::Playlist),
        b"mpd" => ("application/dash+xml", Kind::Playlist),
        b"ts" => ("video/mp2t", Kind::Segment),
        b"m4s" => ("video/iso.segment", Kind::Segment),
        b"mp4" | b"m4v" => ("video/mp4", Kind::Segment),
        b"m4a" => ("audio/mp4", Kind::Segment),
        b"aac" => ("audio/aac", Kind::Segment),
        // HLS packed audio (RFC 8216 3.4) and CMAF's own extensions (ISO/IEC 23000-19:
        // header, video, audio, text and metadata tracks; RFC 4337 types).
        b"mp3" => ("audio/mpeg", Kind::Segment),
        b"ac3" => ("audio/ac3", Kind::Segment),
        b"ec3" => ("audio/eac3", Kind::Segment),
        b"cmfi" | b"cmfv" => ("video/mp4", Kind::Segment),
        b"cmfa" => ("audio/mp4", Kind::Segment),
        b"cmft" | b"cmfm" => ("application/mp4", Kind::Segment),
        b"webm" => ("video/webm", Kind::Segment),
        b"ttml" | b"dfxp" => ("application/ttml+xml", Kind::Segment),
        b"vtt" | b"webvtt" => ("text/vtt", Kind::Segment),
        b"key" => ("application/octet-stream", Kind::Segment),
        b"html" | b"htm" => ("text/html; charset=utf-8", Kind::Other),
        b"js" | b"mjs" => ("text/javascript; charset=utf-8", Kind::Other),
        b"css" => ("text/css; charset=utf-8", Kind::Other),
        b"json" => ("application/json", Kind::Other),
        b"txt" => ("text/plain; charset=utf-8", Kind::Other),
        b"png" => ("image/png", Kind::Other),
        b"jpg" | b"jpeg" => ("image/jpeg", Kind::Other),
        b"svg" => ("image/svg+xml", Kind::Other),
        b"ico" => ("image/x-icon", Kind::Other),
        _ => ("application/octet-stream", Kind::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_dash_types() {
        assert_eq!(lookup(b"a/index.m3u8").0, "application/vnd.apple.mpegurl");
        assert_eq!(lookup(b"seg1.TS"), ("video/mp2t", Kind::Segment));
        assert_eq!(lookup(b"x.m4s").0, "video/iso.segment");
        assert_eq!(lookup(b"x.mpd"), ("application/dash+xml", Kind::Playlist));
        assert_eq!(lookup(b"x.vtt").0, "text/vtt");
        assert_eq!(lookup(b"x.aac").0, "audio/aac");
        assert_eq!(lookup(b"x.m4a").0, "audio/mp4");
        assert_eq!(lookup(b"x.m4v").0, "video/mp4");
        assert_eq!(lookup(b"a/audio7.mp3"), ("audio/mpeg", Kind::Segment));
        assert_eq!(lookup(b"x.ec3").0, "audio/eac3");
        assert_eq!(lookup(b"v/3.cmfv"), ("video/mp4", Kind::Segment));
        assert_eq!(lookup(b"a/3.CMFA").0, "audio/mp4");
        assert_eq!(lookup(b"t/3.cmft").0, "application/mp4");
        assert_eq!(lookup(b"sub/en.ttml").0, "application/ttml+xml");
        assert_eq!(lookup(b"dir.v1/file").0, "application/octet-stream");
        assert_eq!(lookup(b"noext").0, "application/octet-stream");
        assert_eq!(lookup(b"x.verylongextension").0, "application/octet-stream");
    }
}
