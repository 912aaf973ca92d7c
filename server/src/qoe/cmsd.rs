//! Common Media Server Data (CTA-5006), opt-in with `--cmsd`: what this server tells the
//! player about the object and about the path to it.
//!
//! - `CMSD-Static` (an RFC 8941 dictionary): `ot` object type, `sf` streaming format, `d`
//!   duration in ms when a playlist lists the object, `ht` ms a blocking LL-HLS request was
//!   held, `n` this server's name.
//! - `CMSD-Dynamic` (an RFC 8941 list): one item naming this server, with `etp` (estimated
//!   throughput to this viewer, kbit/s, from the kernel's `tcpi_delivery_rate`) and `rtt`
//!   (smoothed round trip, ms). dash.js reads `etp` into its throughput estimate.

use super::catalog::Entry;

/// The per-response values; the server name is configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cmsd {
    pub ot: &'static str,
    /// `h` (HLS) or `d` (DASH), when known.
    pub sf: Option<&'static str>,
    pub d_ms: Option<u32>,
    pub ht_ms: Option<u64>,
    pub etp_kbps: Option<u64>,
    pub rtt_ms: Option<u64>,
}

/// The object type (CTA-5004 `ot` tokens) of a path, preferring what the player said.
pub fn object_type(path: &[u8], player_says: Option<&str>) -> &'static str {
    const TOKENS: [&str; 10] = ["m", "a", "v", "av", "i", "c", "tt", "k", "o", "s"];
    if let Some(t) = player_says.and_then(|p| TOKENS.iter().find(|t| **t == p)) {
        return t;
    }
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let ext = name.rsplit(|&b| b == b'.').next().unwrap_or(b"");
    let ext = ext.to_ascii_lowercase();
    match ext.as_slice() {
        b"m3u8" | b"mpd" => "m",
        _ if name.windows(4).any(|w| w.eq_ignore_ascii_case(b"init")) => "i",
        b"ts" => "av",
        b"aac" | b"m4a" | b"mp3" | b"ac3" | b"ec3" => "a",
        b"m4s" | b"mp4" | b"m4v" | b"cmfv" => "v",
        b"vtt" | b"webvtt" | b"ttml" => "tt",
        b"key" => "k",
        _ => "o",
    }
}

/// Streaming format from the playlist that lists the object (or the object itself).
pub fn format(path: &[u8], entry: Option<&Entry>) -> Option<&'static str> {
    let list = entry.and_then(|e| e.media.as_deref()).unwrap_or(path);
    if list.ends_with(b".m3u8") {
        Some("h")
    } else if list.ends_with(b".mpd") {
        Some("d")
    } else {
        None
    }
}

/// `name` as an RFC 8941 string (`"..."`, `\` and `"` escaped), or an error naming the
/// first character a header cannot carry.
pub fn sf_string(name: &str) -> Result<Vec<u8>, String> {
    let mut out = vec![b'"'];
    for c in name.chars() {
        if !(' '..='~').contains(&c) {
            return Err(format!(
                "--cmsd-name {name:?}: {c:?} is not printable ASCII; use letters, digits and punctuation"
            ));
        }
        if c == '"' || c == '\\' {
            out.push(b'\\');
        }
        out.push(c as u8);
    }
    out.push(b'"');
    Ok(out)
}

/// Append the two header lines.
pub fn encode(c: &Cmsd, name: &[u8], out: &mut Vec<u8>) {
    use crate::http::head::push_u64;
    out.extend_from_slice(b"CMSD-Static: ot=");
    out.extend_from_slice(c.ot.as_bytes());
    if let Some(sf) = c.sf {
        out.extend_from_slice(b", sf=");
        out.extend_from_slice(sf.as_bytes());
    }
    if let Some(d) = c.d_ms.filter(|d| *d > 0) {
        out.extend_from_slice(b", d=");
        push_u64(out, u64::from(d));
    }
    if let Some(ht) = c.ht_ms {
        out.extend_from_slice(b", ht=");
        push_u64(out, ht);
    }
    out.extend_from_slice(b", n=");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\nCMSD-Dynamic: ");
    out.extend_from_slice(name);
    if let Some(etp) = c.etp_kbps {
        out.extend_from_slice(b";etp=");
        push_u64(out, etp);
    }
    if let Some(rtt) = c.rtt_ms {
        out.extend_from_slice(b";rtt=");
        push_u64(out, rtt);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types() {
        assert_eq!(object_type(b"live/720p/index.m3u8", None), "m");
        assert_eq!(object_type(b"a/manifest.mpd", None), "m");
        assert_eq!(object_type(b"720p/seg12.ts", None), "av");
        assert_eq!(object_type(b"720p/init.mp4", None), "i");
        assert_eq!(object_type(b"v/seg-3.m4s", None), "v");
        assert_eq!(object_type(b"v/seg-3.m4s", Some("a")), "a");
        assert_eq!(object_type(b"v/seg-3.m4s", Some("bogus")), "v");
        assert_eq!(object_type(b"subs/en.vtt", None), "tt");
        assert_eq!(object_type(b"x.bin", None), "o");
    }

    #[test]
    fn headers() {
        let name = sf_string("edge \"1\"").unwrap();
        assert_eq!(name, br#""edge \"1\"""#);
        assert!(sf_string("caf\u{e9}").is_err());
        let mut out = Vec::new();
        let c = Cmsd {
            ot: "v",
            sf: Some("h"),
            d_ms: Some(2000),
            ht_ms: Some(480),
            etp_kbps: Some(52000),
            rtt_ms: Some(3),
        };
        encode(&c, b"\"e1\"", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CMSD-Static: ot=v, sf=h, d=2000, ht=480, n=\"e1\"\r\nCMSD-Dynamic: \"e1\";etp=52000;rtt=3\r\n"
        );
        let mut out = Vec::new();
        encode(
            &Cmsd {
                ot: "m",
                ..Cmsd::default()
            },
            b"\"e1\"",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CMSD-Static: ot=m, n=\"e1\"\r\nCMSD-Dynamic: \"e1\"\r\n"
        );
    }
}
