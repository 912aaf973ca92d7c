//! HLS attribute lists (RFC 8216 section 4.2): `KEY=VALUE,KEY="quoted, value",...`.

/// The value of attribute `name` (ASCII case-insensitive) in `list`, unquoted and trimmed.
/// Lenient like players: an unterminated quote runs to the end of the line.
pub fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.trim_start().strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.trim());
        }
        rest = next.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::attr;

    #[test]
    fn quoted_and_plain() {
        let l =
            r#"BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",NAME="720p""#;
        assert_eq!(attr(l, "BANDWIDTH"), Some("2800000"));
        assert_eq!(attr(l, "codecs"), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(attr(l, "NAME"), Some("720p"));
        assert_eq!(attr(l, "RESOLUTION"), Some("1280x720"));
        assert_eq!(attr(l, "FRAME-RATE"), None);
        assert_eq!(attr(r#"URI="a.m4s"#, "URI"), Some("a.m4s"));
        assert_eq!(attr("garbage", "URI"), None);
        assert_eq!(attr("", "URI"), None);
        assert_eq!(attr("A=1, B=2", "B"), Some("2"));
    }
}
