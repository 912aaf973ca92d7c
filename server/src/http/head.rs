//! The one serialiser of response heads: every answer (files, playlists, errors, OPTIONS, the
//! admin plane) is a `Response` value turned into bytes here, appended to a reused buffer
//! with no per-request String or `format!` (this is the hot path).

use super::date::{push_http_date, DateCache};
use super::mime::Kind;
use super::response::{CacheControl, ContentRange, Response};
use super::Status;
use crate::config::{Config, Cors as CorsPolicy};
use std::time::{Duration, UNIX_EPOCH};

/// What every head needs besides the response: the Date of this second (text, and Unix
/// seconds) and the configured header values.
pub struct Env<'a> {
    pub date: &'a [u8],
    pub now: u64,
    pub cfg: &'a Config,
}

impl<'a> Env<'a> {
    pub fn new(date: &'a DateCache, cfg: &'a Config) -> Env<'a> {
        Env {
            date: date.get(),
            now: date.unix_secs(),
            cfg,
        }
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn number_field(out: &mut Vec<u8>, name: &[u8], v: u64) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    push_u64(out, v);
    out.extend_from_slice(b"\r\n");
}

/// Append the head of `r` (status line through the blank line) to `out`.
pub fn encode(r: &Response<'_>, env: &Env<'_>, out: &mut Vec<u8>) {
    let f = &r.fields;
    let cfg = env.cfg;
    out.extend_from_slice(r.status.line());
    out.extend_from_slice(b"Server: corestream\r\nDate: ");
    out.extend_from_slice(env.date);
    out.extend_from_slice(b"\r\n");
    if let Some(t) = f.content_type {
        field(out, b"Content-Type", t.as_bytes());
    }
    if let Some(n) = f.content_length {
        number_field(out, b"Content-Length", n);
    } else if f.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if let Some(v) = &f.validators {
        // Never later than Date (RFC 9110 8.8.2.1): a packager with a wrong clock must not
        // make caches revalidate a live playlist against a date in the future.
        out.extend_from_slice(b"Last-Modified: ");
        let now = UNIX_EPOCH + Duration::from_secs(env.now);
        push_http_date(out, v.meta.mtime().min(now));
        out.extend_from_slice(b"\r\n");
        if let Some(tag) = v.etag() {
            field(out, b"ETag", tag.as_bytes());
        }
    }
    if f.accept_ranges {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    }
    if let Some(cc) = f.cache_control {
        let v: &[u8] = match cc {
            CacheControl::Kind(Kind::Playlist) => &cfg.cache_playlist,
            CacheControl::Kind(Kind::Segment) => &cfg.cache_segment,
            CacheControl::Kind(Kind::Other) => &cfg.cache_other,
            CacheControl::Missing => &cfg.cache_missing,
            CacheControl::NoStore => b"no-store",
        };
        field(out, b"Cache-Control", v);
    }
    match f.content_range {
        Some(ContentRange::Bytes { first, last, size }) => {
            out.extend_from_slice(b"Content-Range: bytes ");
            push_u64(out, first);
            out.push(b'-');
            push_u64(out, last);
            out.push(b'/');
            push_u64(out, size);
            out.extend_from_slice(b"\r\n");
        }
        Some(ContentRange::Unsatisfied { size }) => {
            out.extend_from_slice(b"Content-Range: bytes */");
            push_u64(out, size);
            out.extend_from_slice(b"\r\n");
        }
        Some(ContentRange::OfUnknown { first, last }) => {
            out.extend_from_slice(b"Content-Range: bytes ");
            push_u64(out, first);
            out.push(b'-');
            push_u64(out, last);
            out.extend_from_slice(b"/*\r\n");
        }
        None => {}
    }
    if let Some(block) = &f.upstream {
        out.extend_from_slice(block);
    }
    if let Some(methods) = f.allow {
        field(out, b"Allow", methods.list().as_bytes());
    }
    if f.www_authenticate {
        field(
            out,
            b"WWW-Authenticate",
            super::response::INGEST_CHALLENGE.as_bytes(),
        );
    }
    if r.status == Status::ServiceUnavailable {
        // Busy: the next try should come soon, not never.
        out.extend_from_slice(b"Retry-After: 1\r\n");
    }
    if let Some(cors) = &f.cors {
        match &cfg.cors {
            CorsPolicy::Any => out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n"),
            CorsPolicy::List(list) => {
                if let Some(o) = cors.origin {
                    if list.iter().any(|a| a.as_slice() == o) {
                        field(out, b"Access-Control-Allow-Origin", o);
                    }
                }
                out.extend_from_slice(b"Vary: Origin\r\n");
            }
        }
        out.extend_from_slice(if cfg.cmsd_name.is_some() {
            b"Access-Control-Expose-Headers: Content-Length, Content-Range, CMSD-Static, CMSD-Dynamic\r\n"
        } else {
            b"Access-Control-Expose-Headers: Content-Length, Content-Range\r\n"
        });
        if cors.preflight {
            // Players send CMCD as headers when configured to (hls.js `useHeaders`).
            out.extend_from_slice(
                b"Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n\
                  Access-Control-Allow-Headers: Range, If-Range, If-None-Match, If-Modified-Since, \
                  CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status\r\n\
                  Access-Control-Max-Age: 86400\r\n",
            );
        }
    }
    if let (Some(c), Some(name)) = (&f.cmsd, &cfg.cmsd_name) {
        crate::qoe::cmsd::encode(c, name, out);
    }
    if f.hsts {
        if let Some(v) = &cfg.hsts {
            field(out, b"Strict-Transport-Security", v);
        }
    }
    match f.tier {
        Some(super::response::TierStatus::Hit(age)) => {
            number_field(out, b"Age", u64::from(age));
            out.extend_from_slice(b"Via: 1.1 corestream\r\nCache-Status: corestream; hit\r\n");
        }
        Some(super::response::TierStatus::Miss { collapsed, age }) => {
            // Forwarded, but not new: an origin's stored copy (a shield's) says how old.
            if age > 0 {
                number_field(out, b"Age", u64::from(age));
            }
            out.extend_from_slice(b"Via: 1.1 corestream\r\nCache-Status: corestream; fwd=miss");
            if collapsed {
                out.extend_from_slice(b"; collapsed");
            }
            out.extend_from_slice(b"\r\n");
        }
        None => {}
    }
    if f.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if f.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Decimal digits of `v`.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use crate::http::cond::ETag;
    use crate::http::response::{Body, Cors, Fields, Validators};
    use crate::http::Status;
    use crate::net::fsys::FileMeta;
    use clap::Parser;

    fn cfg(extra: &[&str]) -> Config {
        let mut args = vec!["corestream", "--root", "/nonexistent"];
        args.extend_from_slice(extra);
        Config::from_cli(&Cli::parse_from(args)).unwrap()
    }

    fn encode_str(r: &Response<'_>, cfg: &Config) -> String {
        let mut out = Vec::new();
        let env = Env {
            date: b"Thu, 01 Jan 2026 00:00:00 GMT",
            now: 1_767_225_600,
            cfg,
        };
        encode(r, &env, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Header lines of a head, checking the framing on the way.
    fn lines(head: &str) -> Vec<&str> {
        assert!(head.ends_with("\r\n\r\n"), "{head:?}");
        let body = &head[..head.len() - 4];
        assert!(!body.contains("\r\n\r\n"));
        body.split("\r\n").collect()
    }

    #[test]
    fn every_status_has_its_line_and_the_fixed_fields() {
        let c = cfg(&[]);
        for status in Status::ALL {
            let r = Response::error(status, Fields::default(), true);
            let head = encode_str(&r, &c);
            let l = lines(&head);
            assert_eq!(l[0].as_bytes(), &status.line()[..status.line().len() - 2]);
            assert_eq!(l[1], "Server: corestream");
            assert_eq!(l[2], "Date: Thu, 01 Jan 2026 00:00:00 GMT");
            if status.is_error() {
                assert!(
                    l.contains(&"Content-Type: text/plain; charset=utf-8"),
                    "{head}"
                );
                let len = format!("Content-Length: {}", status.error_body().len());
                assert!(l.contains(&len.as_str()), "{head}");
            }
            let allow = l.contains(&"Allow: GET, HEAD, OPTIONS");
            assert_eq!(allow, status == Status::MethodNotAllowed, "{head}");
            let retry = l.contains(&"Retry-After: 1");
            assert_eq!(retry, status == Status::ServiceUnavailable, "{head}");
            let cc = if status == Status::NotFound {
                "Cache-Control: no-cache"
            } else {
                "Cache-Control: no-store"
            };
            assert!(l.contains(&cc), "{head}");
        }
    }

    #[test]
    fn a_bare_response_has_only_the_fixed_fields() {
        let r = Response {
            status: Status::NoContent,
            fields: Fields {
                minor: 1,
                ..Fields::default()
            },
            body: Body::Empty,
        };
        assert_eq!(
            encode_str(&r, &cfg(&[])),
            "HTTP/1.1 204 No Content\r\nServer: corestream\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn every_optional_field() {
        let meta = FileMeta {
            size: 1000,
            ino: 0x2a,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 7,
        };
        let r = Response {
            status: Status::PartialContent,
            fields: Fields {
                content_type: Some("video/mp2t"),
                content_length: Some(100),
                validators: Some(Validators { meta, etag: true }),
                accept_ranges: true,
                cache_control: Some(CacheControl::Kind(Kind::Segment)),
                content_range: Some(ContentRange::Bytes {
                    first: 0,
                    last: 99,
                    size: 1000,
                }),
                upstream: Some(Box::new(bytes::Bytes::from_static(
                    b"Location: /moved.ts\r\n",
                ))),
                allow: Some(crate::http::response::Methods::Viewer),
                cors: Some(Cors {
                    origin: Some(b"https://a.example"),
                    preflight: true,
                }),
                cmsd: Some(Box::new(crate::qoe::cmsd::Cmsd {
                    ot: "av",
                    sf: Some("h"),
                    d_ms: Some(2000),
                    ht_ms: None,
                    etp_kbps: Some(9000),
                    rtt_ms: Some(1),
                })),
                hsts: true,
                www_authenticate: true,
                tier: Some(crate::http::response::TierStatus::Hit(42)),
                // Ignored: a length is known.
                chunked: true,
                close: true,
                minor: 1,
            },
            body: Body::Empty,
        };
        let head = encode_str(
            &r,
            &cfg(&["--hsts", "max-age=31536000", "--cmsd", "--cmsd-name", "e1"]),
        );
        let l = lines(&head);
        let tag = format!(
            "ETag: {}",
            String::from_utf8_lossy(ETag::of(&meta).as_bytes())
        );
        for want in [
            "HTTP/1.1 206 Partial Content",
            "Content-Type: video/mp2t",
            "Content-Length: 100",
            "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT",
            tag.as_str(),
            "Accept-Ranges: bytes",
            "Cache-Control: max-age=1209600",
            "Content-Range: bytes 0-99/1000",
            "Location: /moved.ts",
            "Allow: GET, HEAD, OPTIONS",
            "Access-Control-Allow-Origin: *",
            "Access-Control-Expose-Headers: Content-Length, Content-Range, CMSD-Static, CMSD-Dynamic",
            "CMSD-Static: ot=av, sf=h, d=2000, n=\"e1\"",
            "CMSD-Dynamic: \"e1\";etp=9000;rtt=1",
            "Access-Control-Allow-Methods: GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers: Range, If-Range, If-None-Match, If-Modified-Since, CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status",
            "Access-Control-Max-Age: 86400",
            "Strict-Transport-Security: max-age=31536000",
            "WWW-Authenticate: Bearer realm=\"corestream ingest\"",
            "Age: 42",
            "Via: 1.1 corestream",
            "Cache-Status: corestream; hit",
            "Connection: close",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{head}");
        }
        assert_eq!(l.len(), 25, "{head}");
        let growing = Response {
            status: Status::Ok,
            fields: Fields {
                chunked: true,
                ..Fields::default()
            },
            body: Body::Empty,
        };
        let head = encode_str(&growing, &cfg(&[]));
        assert!(
            lines(&head).contains(&"Transfer-Encoding: chunked"),
            "{head}"
        );
        assert!(!head.contains("Content-Length"), "{head}");
    }

    #[test]
    fn variants_of_each_field() {
        let c = cfg(&[
            "--cors-origins",
            "https://a.example,https://b.example",
            "--cache-playlist",
            "max-age=2",
            "--cache-other",
            "max-age=5",
        ]);
        let meta = FileMeta {
            size: 5,
            ino: 1,
            mtime_sec: 0,
            mtime_nsec: 0,
        };
        let with = |f: Fields<'static>| {
            encode_str(
                &Response {
                    status: Status::Ok,
                    fields: f,
                    body: Body::Empty,
                },
                &c,
            )
        };
        let listed = with(Fields {
            cors: Some(Cors {
                origin: Some(b"https://b.example"),
                preflight: false,
            }),
            minor: 1,
            ..Fields::default()
        });
        assert!(listed.contains("Access-Control-Allow-Origin: https://b.example\r\n"));
        assert!(listed.contains("Vary: Origin\r\n"));
        assert!(!listed.contains("Access-Control-Allow-Methods"));
        let unlisted = with(Fields {
            cors: Some(Cors {
                origin: Some(b"https://evil.example"),
                preflight: false,
            }),
            minor: 1,
            ..Fields::default()
        });
        assert!(!unlisted.contains("Access-Control-Allow-Origin"));
        assert!(unlisted.contains("Vary: Origin\r\n"));
        let admin = with(Fields {
            minor: 1,
            ..Fields::default()
        });
        assert!(!admin.contains("Access-Control"), "no CORS unless asked");
        let http10 = with(Fields::default());
        assert!(http10.contains("Connection: keep-alive\r\n"));
        let no_etag = with(Fields {
            validators: Some(Validators { meta, etag: false }),
            minor: 1,
            ..Fields::default()
        });
        assert!(no_etag.contains("Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
        assert!(!no_etag.contains("ETag"));
        for (cc, want) in [
            (CacheControl::Kind(Kind::Playlist), "max-age=2"),
            (CacheControl::Kind(Kind::Other), "max-age=5"),
            (CacheControl::Missing, "no-cache"),
            (CacheControl::NoStore, "no-store"),
        ] {
            let h = with(Fields {
                cache_control: Some(cc),
                minor: 1,
                ..Fields::default()
            });
            assert!(h.contains(&format!("Cache-Control: {want}\r\n")), "{h}");
        }
        let unsat = with(Fields {
            content_range: Some(ContentRange::Unsatisfied { size: 42 }),
            minor: 1,
            ..Fields::default()
        });
        assert!(unsat.contains("Content-Range: bytes */42\r\n"));
    }

    #[test]
    fn last_modified_is_never_after_date() {
        let future = FileMeta {
            size: 1,
            ino: 1,
            mtime_sec: 4_102_444_800, // 2100
            mtime_nsec: 0,
        };
        let r = Response {
            status: Status::Ok,
            fields: Fields {
                validators: Some(Validators {
                    meta: future,
                    etag: true,
                }),
                minor: 1,
                ..Fields::default()
            },
            body: Body::Empty,
        };
        let head = encode_str(&r, &cfg(&[]));
        assert!(
            head.contains("Last-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n"),
            "{head}"
        );
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
    }
}
