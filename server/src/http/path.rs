//! Turning a request target into a path relative to the media root.
//!
//! This is the string-level filter only; the kernel does the real containment with
//! `openat2(RESOLVE_BENEATH)` (see `fsys`). Here we reject what must never reach the
//! filesystem at all: NUL bytes, dot segments (which also covers dotfiles and `..`), and
//! malformed escapes.

/// Why a target cannot be mapped to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Malformed: bad percent escape, NUL byte, not origin-form. Answer 400.
    Bad,
    /// Well-formed but never served (dot segment, dotfile, directory). Answer 404.
    Hidden,
}

/// Strip an absolute-form prefix (`http://host`), which HTTP/1.1 servers must accept.
fn origin_form(target: &[u8]) -> Result<&[u8], PathError> {
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    let lower_starts =
        |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    let rest = if lower_starts(b"http://") {
        &target[7..]
    } else if lower_starts(b"https://") {
        &target[8..]
    } else {
        return Err(PathError::Bad);
    };
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => Ok(&rest[i..]),
        Some(_) | None => Ok(b"/"),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `target` into `out` as a root-relative path without a leading slash, with empty
/// segments collapsed. `out` is cleared first. Returns the byte range of the path's last
/// segment within `out` (for the extension lookup it is simply all of `out`).
pub fn decode(target: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    let target = origin_form(target)?;
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let raw = &target[..end];
    let mut i = 0;
    let mut seg_start = 0usize;
    while i < raw.len() {
        let mut b = raw[i];
        i += 1;
        if b == b'%' {
            let (h, l) = match (raw.get(i), raw.get(i + 1)) {
                (Some(&h), Some(&l)) => (hex(h), hex(l)),
                _ => return Err(PathError::Bad),
            };
            match (h, l) {
                (Some(h), Some(l)) => b = h << 4 | l,
                _ => return Err(PathError::Bad),
            }
            i += 2;
        }
        match b {
            0 => return Err(PathError::Bad),
            b'/' => {
                if out.len() > seg_start {
                    check_segment(&out[seg_start..])?;
                    out.push(b'/');
                }
                seg_start = out.len();
            }
            _ => out.push(b),
        }
    }
    if out.len() > seg_start {
        check_segment(&out[seg_start..])?;
    } else {
        // Empty path or a trailing slash names a directory: never listed.
        return Err(PathError::Hidden);
    }
    Ok(())
}

fn check_segment(seg: &[u8]) -> Result<(), PathError> {
    if seg.first() == Some(&b'.') {
        return Err(PathError::Hidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(t: &str) -> Result<String, PathError> {
        let mut out = Vec::new();
        decode(t.as_bytes(), &mut out).map(|()| String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn plain_and_query() {
        assert_eq!(
            d("/live/720p/index.m3u8?_HLS_msn=3").unwrap(),
            "live/720p/index.m3u8"
        );
        assert_eq!(d("//a///b.ts").unwrap(), "a/b.ts");
        assert_eq!(d("/a%20b.ts").unwrap(), "a b.ts");
        assert_eq!(d("/a%2fb.ts").unwrap(), "a/b.ts");
        assert_eq!(d("http://example.com/x/y.ts").unwrap(), "x/y.ts");
        assert_eq!(d("HTTPS://example.com:8443/y.ts?q").unwrap(), "y.ts");
    }

    #[test]
    fn rejects() {
        assert_eq!(d("/../etc/passwd"), Err(PathError::Hidden));
        assert_eq!(d("/a/%2e%2e/%2e%2e/etc/passwd"), Err(PathError::Hidden));
        assert_eq!(d("/a/%2e%2e%2fb"), Err(PathError::Hidden));
        assert_eq!(d("/.git/config"), Err(PathError::Hidden));
        assert_eq!(d("/a/.hidden"), Err(PathError::Hidden));
        assert_eq!(d("/a/"), Err(PathError::Hidden));
        assert_eq!(d("/"), Err(PathError::Hidden));
        assert_eq!(d("http://host"), Err(PathError::Hidden));
        assert_eq!(d("/a%00.ts"), Err(PathError::Bad));
        assert_eq!(d("/a%zz"), Err(PathError::Bad));
        assert_eq!(d("/a%2"), Err(PathError::Bad));
        assert_eq!(d("/a%"), Err(PathError::Bad));
        assert_eq!(d("*"), Err(PathError::Bad));
        assert_eq!(d("a.ts"), Err(PathError::Bad));
        // Double encoding decodes once: %252e is a literal "%2e" file name, harmless.
        assert_eq!(d("/%252e%252e/x").unwrap(), "%2e%2e/x");
    }
}
