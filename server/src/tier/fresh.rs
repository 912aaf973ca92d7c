//! How long an origin's response may be served without asking again (RFC 9111 4.2), from the
//! fields a shared cache reads: `Cache-Control` (`s-maxage` before `max-age`, `no-store`,
//! `no-cache`, `private`), `Expires` against `Date`, and `Age`.

use std::time::{Duration, SystemTime};

/// What the origin said about storing and reusing a response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Must not be stored (no-store, private: a shared cache keeps nothing).
    pub no_store: bool,
    /// Freshness lifetime the origin gave (None: it said nothing, use a heuristic).
    pub lifetime: Option<Duration>,
    /// Age the response already had when it reached us.
    pub age: Duration,
}

fn directive_secs(v: &str) -> Option<u64> {
    v.trim().trim_matches('"').parse().ok()
}

/// Read the policy from the response's fields (`name`, `value` pairs).
pub fn policy<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Policy {
    let mut p = Policy::default();
    let (mut max_age, mut s_maxage, mut no_cache) = (None, None, false);
    let (mut expires, mut date) = (None, None);
    for (name, value) in fields {
        let Ok(v) = std::str::from_utf8(value) else {
            continue;
        };
        if name.eq_ignore_ascii_case("cache-control") {
            for d in v.split(',').map(str::trim) {
                let (k, arg) = d.split_once('=').unwrap_or((d, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "no-store" | "private" => p.no_store = true,
                    "no-cache" => no_cache = true,
                    "max-age" => max_age = directive_secs(arg).or(Some(0)),
                    "s-maxage" => s_maxage = directive_secs(arg).or(Some(0)),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("expires") {
            // An invalid Expires means already expired (RFC 9111 5.3).
            expires = Some(httpdate::parse_http_date(v.trim()).ok());
        } else if name.eq_ignore_ascii_case("date") {
            date = httpdate::parse_http_date(v.trim()).ok();
        } else if name.eq_ignore_ascii_case("age") {
            if let Some(a) = directive_secs(v) {
                p.age = Duration::from_secs(a);
            }
        }
    }
    p.lifetime = if no_cache {
        Some(Duration::ZERO)
    } else if let Some(s) = s_maxage.or(max_age) {
        Some(Duration::from_secs(s))
    } else {
        expires.map(|e| match e {
            Some(e) => e
                .duration_since(date.unwrap_or_else(SystemTime::now))
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        })
    };
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(fields: &[(&str, &str)]) -> Policy {
        policy(fields.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn directives() {
        assert_eq!(
            of(&[("Cache-Control", "max-age=60")]).lifetime,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            of(&[("cache-control", "max-age=60, s-maxage=5")]).lifetime,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            of(&[("Cache-Control", "no-cache, max-age=60")]).lifetime,
            Some(Duration::ZERO)
        );
        assert!(of(&[("Cache-Control", "no-store")]).no_store);
        assert!(of(&[("Cache-Control", "private, max-age=9")]).no_store);
        assert_eq!(of(&[]).lifetime, None);
        assert_eq!(
            of(&[
                ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
                ("Expires", "Thu, 01 Jan 2026 00:00:30 GMT")
            ])
            .lifetime,
            Some(Duration::from_secs(30))
        );
        assert_eq!(of(&[("Expires", "0")]).lifetime, Some(Duration::ZERO));
        assert_eq!(of(&[("Age", "12")]).age, Duration::from_secs(12));
        assert_eq!(
            of(&[("Cache-Control", "max-age=banana")]).lifetime,
            Some(Duration::ZERO)
        );
    }
}
