//! `Range: bytes=...` for a single range (RFC 9110 section 14). Multi-range requests get the
//! whole file with 200, which the RFC allows and every player copes with.

use super::trim;

/// Outcome of evaluating a Range header against a file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeResult {
    /// No usable range (absent, not `bytes`, malformed, or several ranges): send 200 whole.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// Syntactically valid but outside the file: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Parse a decimal number, saturating at u64::MAX so absurd values are judged, not rejected.
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(v)
}

/// Evaluate `value` (the Range header's value) for a representation of `size` bytes.
pub fn evaluate(value: &[u8], size: u64) -> RangeResult {
    let value = trim(value);
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bytes=") {
        return RangeResult::Full;
    }
    let spec = trim(&value[6..]);
    if spec.contains(&b',') {
        return RangeResult::Full;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeResult::Full;
    };
    let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = number(last) else {
            return RangeResult::Full;
        };
        if n == 0 {
            return RangeResult::Unsatisfiable;
        }
        if size == 0 {
            // Satisfiable (RFC 9110 14.1.1: the one form that is, for an empty
            // representation), but no Content-Range can say it: the whole, empty, with 200.
            return RangeResult::Full;
        }
        let n = n.min(size);
        return RangeResult::Partial {
            start: size - n,
            end: size - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeResult::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(e) if e >= start => e,
            // "5-1" is invalid syntax, which the RFC says to ignore.
            _ => return RangeResult::Full,
        }
    };
    if start >= size {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Evaluate `value` for a representation whose length is not known yet (an object still
/// arriving): only a closed `first-last` range can be answered (`Content-Range: bytes
/// first-last/*`); an open-ended or suffix range needs the end, so it is `Full` (ignored, as
/// RFC 9110 14.2 allows).
pub fn evaluate_unknown_length(value: &[u8]) -> RangeResult {
    // Against a size no object reaches, a closed range keeps its end; the open-ended and
    // suffix forms end at the last byte of that size, which no request names.
    match evaluate(value, u64::MAX) {
        RangeResult::Partial { start, end } if end < u64::MAX - 1 => {
            RangeResult::Partial { start, end }
        }
        _ => RangeResult::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeResult::*;
    use super::*;

    #[test]
    fn unknown_length_takes_closed_ranges_only() {
        assert_eq!(
            evaluate_unknown_length(b"bytes=100-199"),
            Partial {
                start: 100,
                end: 199
            }
        );
        assert_eq!(evaluate_unknown_length(b"bytes=100-"), Full);
        assert_eq!(evaluate_unknown_length(b"bytes=-100"), Full);
        assert_eq!(evaluate_unknown_length(b"bytes=5-1"), Full);
        assert_eq!(evaluate_unknown_length(b"bytes=0-1,5-9"), Full);
        assert_eq!(evaluate_unknown_length(b"items=0-1"), Full);
    }

    #[test]
    fn forms() {
        assert_eq!(evaluate(b"bytes=0-99", 1000), Partial { start: 0, end: 99 });
        assert_eq!(evaluate(b"bytes=0-0", 1000), Partial { start: 0, end: 0 });
        assert_eq!(
            evaluate(b"bytes=900-", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            evaluate(b"bytes=-100", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            evaluate(b"bytes=-5000", 1000),
            Partial { start: 0, end: 999 }
        );
        assert_eq!(
            evaluate(b"bytes=500-99999", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(evaluate(b"Bytes = 1 - 2 ", 1000), Full);
        assert_eq!(
            evaluate(b" bytes= 1 - 2 ", 1000),
            Partial { start: 1, end: 2 }
        );
        assert_eq!(evaluate(b"bytes=1-2,5-6", 1000), Full);
        assert_eq!(evaluate(b"bytes=5-1", 1000), Full);
        assert_eq!(evaluate(b"bytes=abc", 1000), Full);
        assert_eq!(evaluate(b"items=0-1", 1000), Full);
        assert_eq!(evaluate(b"bytes=-0", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-500", 0), Full);
        assert_eq!(evaluate(b"bytes=-0", 0), Unsatisfiable);
        assert_eq!(
            evaluate(b"bytes=99999999999999999999999-", 1000),
            Unsatisfiable
        );
        assert_eq!(
            evaluate(b"bytes=0-99999999999999999999999", 1000),
            Partial { start: 0, end: 999 }
        );
    }
}
