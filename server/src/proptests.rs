//! Property tests for the pure pieces of the request path: Range evaluation and the
//! Content-Range the server writes from it, target decoding (never escapes the root),
//! conditional decisions, HTTP-date formatting, and the fields the edge tier passes on from
//! an origin (never able to split a response head). Each property states an invariant
//! against an independent oracle (arithmetic, a civil-calendar conversion, or the
//! filesystem), not the implementation restated.

use crate::http::cond::{decide, Decision, ETag};
use crate::http::date::{push_http_date, DateCache, LAST_HTTP_DATE};
use crate::http::path::{self, PathError};
use crate::http::range::{self, RangeResult};
use crate::http::{process_bytes, Method, Request};
use crate::net::fsys::FileMeta;
use crate::shared::Shared;
use corestream_common::date::Civil;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- Range

proptest! {
    #![proptest_config(cfg())]

    /// Whatever the header says, a partial answer lies inside the file.
    #[test]
    fn range_any_bytes_stay_inside(value in proptest::collection::vec(any::<u8>(), 0..40), size in 0u64..10_000) {
        match range::evaluate(&value, size) {
            RangeResult::Partial { start, end } => {
                prop_assert!(start <= end, "{start}-{end}");
                prop_assert!(end < size, "end {end} size {size}");
            }
            RangeResult::Full | RangeResult::Unsatisfiable => {}
        }
    }

    /// `bytes=a-b` is exactly [a, min(b, size-1)] when a < size, 416 when a >= size, and
    /// ignored when b < a.
    #[test]
    fn range_first_last(a in 0u64..5000, b in 0u64..5000, size in 0u64..5000) {
        let v = format!("bytes={a}-{b}");
        let got = range::evaluate(v.as_bytes(), size);
        let want = if b < a {
            RangeResult::Full
        } else if a >= size {
            RangeResult::Unsatisfiable
        } else {
            RangeResult::Partial { start: a, end: b.min(size - 1) }
        };
        prop_assert_eq!(got, want);
    }

    /// `bytes=a-`: from a to the end.
    #[test]
    fn range_open_ended(a in 0u64..5000, size in 0u64..5000) {
        let v = format!("bytes={a}-");
        let want = if a >= size {
            RangeResult::Unsatisfiable
        } else {
            RangeResult::Partial { start: a, end: size - 1 }
        };
        prop_assert_eq!(range::evaluate(v.as_bytes(), size), want);
    }

    /// `bytes=-n`: the last min(n, size) bytes; zero of them is unsatisfiable; of an empty
    /// representation, the whole (RFC 9110 14.1.1: satisfiable, and no 206 can say it).
    #[test]
    fn range_suffix(n in 0u64..5000, size in 0u64..5000) {
        let v = format!("bytes=-{n}");
        let want = if n == 0 {
            RangeResult::Unsatisfiable
        } else if size == 0 {
            RangeResult::Full
        } else {
            RangeResult::Partial { start: size - n.min(size), end: size - 1 }
        };
        prop_assert_eq!(range::evaluate(v.as_bytes(), size), want);
    }

    /// Numbers of any length saturate instead of overflowing or wrapping.
    #[test]
    fn range_huge_numbers(digits in "[0-9]{19,60}", size in 1u64..1_000_000) {
        let open = format!("bytes={digits}-");
        let big: u128 = digits.chars().take(38).collect::<String>().parse().unwrap_or(u128::MAX);
        let want = if big >= u128::from(size) { RangeResult::Unsatisfiable } else {
            RangeResult::Partial { start: big as u64, end: size - 1 }
        };
        prop_assert_eq!(range::evaluate(open.as_bytes(), size), want);
        let suffix = format!("bytes=-{digits}");
        if big == 0 {
            prop_assert_eq!(range::evaluate(suffix.as_bytes(), size), RangeResult::Unsatisfiable);
        } else {
            prop_assert_eq!(range::evaluate(suffix.as_bytes(), size), RangeResult::Partial { start: 0, end: size - 1 });
        }
        let last = format!("bytes=0-{digits}");
        prop_assert_eq!(range::evaluate(last.as_bytes(), size), RangeResult::Partial { start: 0, end: size - 1 });
    }

    /// Optional whitespace around the unit, the numbers and the dash changes nothing.
    #[test]
    fn range_whitespace_is_insignificant(
        a in 0u64..3000, b in 0u64..3000, size in 0u64..3000,
        ws in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")], 5),
    ) {
        let plain = format!("bytes={a}-{b}");
        let spaced = format!("{}bytes={}{a}{}-{}{b}{}", ws[0], ws[1], ws[2], ws[3], ws[4]);
        prop_assert_eq!(range::evaluate(spaced.as_bytes(), size), range::evaluate(plain.as_bytes(), size));
    }

    /// Several ranges get the whole file (documented choice), never a wrong single part.
    #[test]
    fn range_many_ranges_get_full(parts in proptest::collection::vec((0u64..1000, 0u64..1000), 2..50), size in 1u64..2000) {
        let spec: Vec<String> = parts.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let v = format!("bytes={}", spec.join(","));
        prop_assert_eq!(range::evaluate(v.as_bytes(), size), RangeResult::Full);
    }
}

// ------------------------------------------- the server's head for a Range

/// The shared origin (`crate::fixture`) plus `f<N>.ts` files of N bytes, built once per test
/// binary.
fn fixture() -> &'static (PathBuf, Shared) {
    static F: OnceLock<(PathBuf, Shared)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corestream-proptest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/live")).expect("create fixture root");
        for n in [0usize, 1, 2, 7, 100, 4096, 65_537] {
            let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            std::fs::write(dir.join(format!("root/live/f{n}.ts")), bytes).expect("write");
        }
        // The shared origin adds its files and `secret.ts` outside the root, reachable only
        // through the `out.ts` and `rel.ts` symlinks.
        let shared = crate::fixture::origin(&dir).expect("fixture origin");
        (dir, shared)
    })
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Split process_bytes output into response heads (bodies of error answers skipped by
/// their Content-Length).
fn heads(mut out: &[u8], head_request: bool) -> Vec<Head> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("complete head");
        let text = std::str::from_utf8(&out[..end]).expect("ASCII head");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().expect("status line");
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status: u16 = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, val) = l.split_once(": ").expect("header");
                (n.to_string(), val.to_string())
            })
            .collect();
        let h = Head { status, headers };
        out = &out[end + 4..];
        // Files go out by sendfile (not in `out`); error bodies are inline.
        if status >= 400 && !head_request {
            let len: usize = h
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            out = &out[len..];
        }
        v.push(h);
    }
    v
}

proptest! {
    #![proptest_config(cfg())]

    /// For any `bytes=` header on any file, the head is self-consistent: 206 has
    /// Content-Range `s-e/size` with Content-Length e-s+1 and e < size; 416 has `*/size`;
    /// 200 has the whole size.
    #[test]
    fn content_range_arithmetic(
        n in prop::sample::select(vec![0usize, 1, 2, 7, 100, 4096, 65_537]),
        spec in prop_oneof![
            (0u64..70_000, 0u64..70_000).prop_map(|(a, b)| format!("{a}-{b}")),
            (0u64..70_000).prop_map(|a| format!("{a}-")),
            (0u64..70_000).prop_map(|a| format!("-{a}")),
            "[0-9 ,-]{0,20}",
        ],
    ) {
        let (_, shared) = fixture();
        let req = format!("GET /live/f{n}.ts HTTP/1.1\r\nHost: t\r\nRange: bytes={spec}\r\n\r\n");
        let out = process_bytes(shared, req.as_bytes());
        let hs = heads(&out, false);
        prop_assert_eq!(hs.len(), 1);
        let h = &hs[0];
        let size = n as u64;
        let len: u64 = h.get("content-length").expect("length").parse().expect("number");
        match h.status {
            200 => {
                prop_assert_eq!(len, size);
                prop_assert!(h.get("content-range").is_none());
            }
            206 => {
                let cr = h.get("content-range").expect("Content-Range on 206");
                let rest = cr.strip_prefix("bytes ").expect("bytes unit");
                let (span, total) = rest.split_once('/').expect("slash");
                let (s, e) = span.split_once('-').expect("dash");
                let (s, e, total): (u64, u64, u64) =
                    (s.parse().expect("s"), e.parse().expect("e"), total.parse().expect("total"));
                prop_assert_eq!(total, size);
                prop_assert!(s <= e && e < size, "{cr}");
                prop_assert_eq!(len, e - s + 1);
                prop_assert_eq!(
                    range::evaluate(format!("bytes={spec}").as_bytes(), size),
                    RangeResult::Partial { start: s, end: e }
                );
            }
            416 => {
                let want = format!("bytes */{size}");
                prop_assert_eq!(h.get("content-range"), Some(want.as_str()));
            }
            other => prop_assert!(false, "unexpected status {other}"),
        }
    }
}

// ------------------------------------------------------------------ paths

/// Pieces that attackers combine to climb out of a root.
fn hostile_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "//",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%00",
        "%",
        "%zz",
        "%c0%ae",
        "%c0%af",
        "%252e",
        "live",
        "f100.ts",
        "out.ts",
        "rel.ts",
        "secret.ts",
        "root",
        "?",
        "#",
        ";",
        "%3f",
        "etc",
        "passwd",
        "~",
        "%ff",
        "\u{e9}",
    ])
}

proptest! {
    #![proptest_config(cfg())]

    /// A decoded path is relative, has no empty, `.` or `..` segment and no NUL: nothing
    /// the kernel could resolve to a parent. (The kernel's RESOLVE_BENEATH is the second
    /// wall; this is the first.)
    #[test]
    fn decoded_paths_are_relative_and_dotless(target in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        if path::decode(&target, &mut out).is_ok() {
            prop_assert!(!out.is_empty());
            prop_assert!(out[0] != b'/');
            prop_assert!(!out.contains(&0));
            for seg in out.split(|&b| b == b'/') {
                prop_assert!(!seg.is_empty(), "empty segment in {out:?}");
                prop_assert!(seg[0] != b'.', "dot segment in {out:?}");
            }
        }
    }

    /// Same, for targets assembled from traversal pieces.
    #[test]
    fn hostile_targets_decode_safely(pieces in proptest::collection::vec(hostile_piece(), 1..12)) {
        let target = format!("/{}", pieces.concat());
        let mut out = Vec::new();
        if path::decode(target.as_bytes(), &mut out).is_ok() {
            for seg in out.split(|&b| b == b'/') {
                prop_assert!(!seg.is_empty() && seg[0] != b'.' && !seg.contains(&0), "{target} -> {out:?}");
            }
        }
    }

    /// Percent-encoding any byte of a safe path decodes to the same path.
    #[test]
    fn percent_encoding_round_trips(
        segs in proptest::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9_.~ -]{0,10}", 1..5),
        mask in proptest::collection::vec(any::<bool>(), 64),
        upper in any::<bool>(),
    ) {
        let plain = segs.join("/");
        let mut target = String::from("/");
        for (i, b) in plain.bytes().enumerate() {
            if mask[i % mask.len()] {
                if upper { target.push_str(&format!("%{b:02X}")) } else { target.push_str(&format!("%{b:02x}")) }
            } else {
                target.push(b as char);
            }
        }
        let mut out = Vec::new();
        prop_assert_eq!(path::decode(target.as_bytes(), &mut out), Ok(()));
        prop_assert_eq!(out, plain.into_bytes());
    }

    /// Against the real filesystem: no target, however encoded, yields the file outside
    /// the root (`fixture::OUTSIDE_LEN` bytes), directly or through the symlinks that point at it.
    #[test]
    fn no_target_reaches_outside_the_root(pieces in proptest::collection::vec(hostile_piece(), 1..12)) {
        let (_, shared) = fixture();
        let target = format!("/{}", pieces.concat());
        if target.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            // httparse refuses these in the request line; decode() is covered above.
            return Ok(());
        }
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        let out = process_bytes(shared, req.as_bytes());
        for h in heads(&out, false) {
            prop_assert!(h.status != 200 || h.get("content-length") != Some(&crate::fixture::OUTSIDE_LEN.to_string()), "{target} served the outside file");
            prop_assert!(matches!(h.status, 200 | 400 | 404), "{target}: {}", h.status);
        }
        let mut decoded = Vec::new();
        match path::decode(target.as_bytes(), &mut decoded) {
            Err(PathError::Bad) => prop_assert_eq!(heads(&out, false)[0].status, 400),
            Err(PathError::Hidden) => prop_assert_eq!(heads(&out, false)[0].status, 404),
            Ok(()) => {}
        }
    }
}

// ------------------------------------------------------------ conditionals

fn meta_strategy() -> impl Strategy<Value = FileMeta> {
    (
        0u64..1 << 40,
        0u64..1 << 32,
        0i64..4_000_000_000,
        0i64..1_000_000_000,
    )
        .prop_map(|(size, ino, mtime_sec, mtime_nsec)| FileMeta {
            size,
            ino,
            mtime_sec,
            mtime_nsec,
        })
}

fn etag(m: &FileMeta) -> Vec<u8> {
    ETag::of(m).as_bytes().to_vec()
}

fn date(secs: u64) -> Vec<u8> {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)).into_bytes()
}

fn base(method: Method) -> Request<'static> {
    Request {
        method: Some(method),
        method_str: if method == Method::Head {
            "HEAD"
        } else {
            "GET"
        },
        target: b"/x.ts",
        minor: 1,
        keep_alive: true,
        host_count: 1,
        ..Request::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// Our own ETag in If-None-Match (alone, weak, or in a list) is always 304; a tag of
    /// another file version never is.
    #[test]
    fn if_none_match(m in meta_strategy(), other in meta_strategy(), weak in any::<bool>(), head in any::<bool>()) {
        let tag = etag(&m);
        let mut list = etag(&other);
        list.extend_from_slice(b", ");
        if weak { list.extend_from_slice(b"W/"); }
        list.extend_from_slice(&tag);
        let mut r = base(if head { Method::Head } else { Method::Get });
        r.if_none_match = Some(&list);
        prop_assert_eq!(decide(&r, &m, u64::MAX), Decision::NotModified);
        let other_tag = etag(&other);
        r.if_none_match = Some(&other_tag);
        // If-Modified-Since is ignored when If-None-Match is present (RFC 9110 13.2.2).
        let later = date(m.mtime_sec as u64 + 10);
        r.if_modified_since = Some(&later);
        let want = if other_tag == tag { Decision::NotModified } else { Decision::Full };
        prop_assert_eq!(decide(&r, &m, u64::MAX), want);
    }

    /// If-Modified-Since: 304 exactly when the file's mtime (whole seconds) is after neither
    /// the date given nor the answer's own Date (a file dated in the future was sent with
    /// Last-Modified clamped to a Date, which cannot vouch for it).
    #[test]
    fn if_modified_since(m in meta_strategy(), t in 0u64..4_000_000_000, now in 0u64..4_000_000_000) {
        let d = date(t);
        let mut r = base(Method::Get);
        r.if_modified_since = Some(&d);
        let mtime = m.mtime_sec as u64;
        let want = if mtime <= t && mtime <= now { Decision::NotModified } else { Decision::Full };
        prop_assert_eq!(decide(&r, &m, now), want);
    }

    /// If-Match with any other tag fails the precondition before anything else is looked at.
    #[test]
    fn if_match(m in meta_strategy(), other in meta_strategy()) {
        let tag = etag(&m);
        let other_tag = etag(&other);
        let inm = tag.clone();
        let mut r = base(Method::Get);
        r.if_match = Some(&other_tag);
        r.if_none_match = Some(&inm);
        let want = if other_tag == tag { Decision::NotModified } else { Decision::PreconditionFailed };
        prop_assert_eq!(decide(&r, &m, u64::MAX), want);
        // A weak tag never passes If-Match (strong comparison).
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(&tag);
        let mut r = base(Method::Get);
        r.if_match = Some(&weak);
        prop_assert_eq!(decide(&r, &m, u64::MAX), Decision::PreconditionFailed);
    }

    /// If-Range with a stale validator turns a Range into the whole file, never a part of
    /// a different version; with the current ETag the Range applies.
    #[test]
    fn if_range(m in meta_strategy(), other in meta_strategy(), a in 0u64..1000, b in 0u64..1000) {
        prop_assume!(m.size > 0);
        let spec = format!("bytes={}-{}", a.min(b), a.max(b));
        let tag = etag(&m);
        let other_tag = etag(&other);
        let mut r = base(Method::Get);
        r.range = Some(spec.as_bytes());
        r.if_range = Some(&tag);
        let expect = match range::evaluate(spec.as_bytes(), m.size) {
            RangeResult::Full => Decision::Full,
            RangeResult::Partial { start, end } => Decision::Partial { start, end },
            RangeResult::Unsatisfiable => Decision::Unsatisfiable,
        };
        prop_assert_eq!(decide(&r, &m, u64::MAX), expect);
        if other_tag != tag {
            r.if_range = Some(&other_tag);
            prop_assert_eq!(decide(&r, &m, u64::MAX), Decision::Full);
        }
        // HEAD ignores Range.
        let mut h = base(Method::Head);
        h.range = Some(spec.as_bytes());
        prop_assert_eq!(decide(&h, &m, u64::MAX), Decision::Full);
    }

    /// Arbitrary header bytes never panic and never yield a range outside the file.
    #[test]
    fn decide_total_on_garbage(
        m in meta_strategy(),
        vals in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), 6),
    ) {
        let mut r = base(Method::Get);
        r.if_none_match = vals[0].as_deref();
        r.if_modified_since = vals[1].as_deref();
        r.if_match = vals[2].as_deref();
        r.if_unmodified_since = vals[3].as_deref();
        r.if_range = vals[4].as_deref();
        r.range = vals[5].as_deref();
        if let Decision::Partial { start, end } = decide(&r, &m, u64::MAX) {
            prop_assert!(start <= end && end < m.size);
        }
    }
}

// ------------------------------------------------------------------ dates

fn oracle(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // The calendar from the shared civil-date code, which shares nothing with httpdate.
    let days = (secs / 86_400) as i64;
    let c = Civil::from_unix_secs(secs);
    let (y, m, d) = (c.year, c.month, c.day);
    let s = secs % 86_400;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

proptest! {
    #![proptest_config(cfg())]

    /// IMF-fixdate, 29 bytes, equal to the independent calendar computation, for every
    /// second from 1970 to 9999; parses back to the same second.
    #[test]
    fn http_date_matches_calendar(secs in 0u64..=LAST_HTTP_DATE, nanos in 0u32..1_000_000_000) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        let mut v = Vec::new();
        push_http_date(&mut v, t);
        let s = String::from_utf8(v).expect("ASCII");
        prop_assert_eq!(s.len(), 29);
        prop_assert_eq!(&s, &oracle(secs));
        let back = httpdate::parse_http_date(&s).expect("parses back");
        prop_assert_eq!(back, UNIX_EPOCH + Duration::from_secs(secs));
        let mut cache = DateCache::default();
        cache.update(t);
        prop_assert_eq!(cache.get(), s.as_bytes());
        prop_assert_eq!(cache.unix_secs(), secs);
    }

    /// Times a file can carry but HTTP cannot (before 1970, after 9999) are clamped, not
    /// a panic: mtimes are input (tmpfs accepts year 10000+).
    #[test]
    fn http_date_clamps_out_of_range(secs in LAST_HTTP_DATE..u64::MAX / 4, before in 1u64..1 << 40) {
        let mut v = Vec::new();
        push_http_date(&mut v, UNIX_EPOCH + Duration::from_secs(secs));
        prop_assert_eq!(v.as_slice(), b"Fri, 31 Dec 9999 23:59:59 GMT".as_slice());
        let mut v = Vec::new();
        if let Some(t) = UNIX_EPOCH.checked_sub(Duration::from_secs(before)) {
            push_http_date(&mut v, t);
            prop_assert_eq!(v.as_slice(), b"Thu, 01 Jan 1970 00:00:00 GMT".as_slice());
        }
        let meta = FileMeta { size: 1, ino: 1, mtime_sec: secs as i64, mtime_nsec: 0 };
        let mut v = Vec::new();
        push_http_date(&mut v, meta.mtime());
        prop_assert_eq!(v.len(), 29);
    }
}

/// The date cache formats at most once per second: a later instant inside the same
/// second leaves the text untouched.
#[test]
fn date_cache_changes_only_on_new_second() {
    let mut c = DateCache::default();
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 1);
    c.update(t);
    let first = c.get().to_vec();
    c.update(t + Duration::from_millis(998));
    assert_eq!(c.get(), first.as_slice());
    c.update(t + Duration::from_secs(1));
    assert_ne!(c.get(), first.as_slice());
    assert_eq!(c.get(), oracle(1_700_000_001).as_bytes());
}

// ---------------------------------------------------------------- origin fields for viewers

fn origin_lines(block: &[u8]) -> Vec<&[u8]> {
    block.split_inclusive(|&b| b == b'\n').collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(cfg())]

    /// Whatever an origin puts in Location, the edge panics not, and what it gives viewers
    /// cannot end the head or start a field of its own.
    #[test]
    fn a_location_never_splits_the_head(loc in proptest::collection::vec(any::<u8>(), 0..120),
                                         prefix in "(/[a-z]{1,5}){0,2}") {
        let origins = crate::tier::origin::parse_list(&format!("http://o.example:8080{prefix}"))
            .map_err(TestCaseError::fail)?;
        if let Some(v) = crate::tier::origin::edge_location(&origins, &origins[0], Some(&loc)) {
            prop_assert!(!v.is_empty());
            prop_assert!(v.iter().all(|&b| b > b' ' && b != 0x7f), "{:?}", String::from_utf8_lossy(&v));
            let block = crate::tier::fetch::encode_fields([("Location", &v[..])]);
            let block = block.ok_or_else(|| TestCaseError::fail("a usable Location was not encoded"))?;
            prop_assert_eq!(origin_lines(&block).len(), 1);
        }
    }

    /// Cache-Control and Expires values of any bytes: the block holds one well-formed line
    /// per value kept, or nothing; a 304's block updates it line by line.
    #[test]
    fn passed_fields_are_whole_lines(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 1..4),
                                     newer in proptest::collection::vec(any::<u8>(), 1..30)) {
        let named = |v: &[Vec<u8>]| -> Vec<(&'static str, Vec<u8>)> {
            v.iter().enumerate().map(|(i, v)| (if i % 2 == 0 { "Cache-Control" } else { "Expires" }, v.clone())).collect()
        };
        let fields = named(&values);
        let block = crate::tier::fetch::encode_fields(fields.iter().map(|(n, v)| (*n, &v[..])));
        if let Some(block) = &block {
            for line in origin_lines(block) {
                prop_assert!(line.ends_with(b"\r\n"));
                prop_assert!(line.starts_with(b"Cache-Control: ") || line.starts_with(b"Expires: "));
                let inner = &line[..line.len() - 2];
                prop_assert!(!inner.iter().any(|&b| b == b'\r' || b == b'\n'));
            }
            if let Some(new) = crate::tier::fetch::encode_fields([("Cache-Control", &newer[..])]) {
                let merged = crate::tier::fetch::update_fields(block, &new);
                let lines = origin_lines(&merged);
                prop_assert!(lines.iter().filter(|l| l.starts_with(b"Cache-Control: ")).count() == 1);
                prop_assert_eq!(lines.last().copied(), Some(&new[..]));
                let expires_before = origin_lines(block).iter().filter(|l| l.starts_with(b"Expires: ")).count();
                let expires_after = lines.iter().filter(|l| l.starts_with(b"Expires: ")).count();
                prop_assert_eq!(expires_before, expires_after);
            }
        }
    }
}
