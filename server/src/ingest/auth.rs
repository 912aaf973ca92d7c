//! Who may push: a bearer token read from a file (compared in constant time; re-read when
//! the file changes, so rotating it needs no restart), and/or a list of client networks.
//! With neither configured, only loopback may push: an ingest port is never open to anyone
//! by default.

use corestream_common::sync::lock;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The answer to one request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No token presented (401 with a challenge).
    NoToken,
    /// A token was presented and it is wrong (403).
    WrongToken,
    /// The client's address is not allowed (403), with why.
    Address(&'static str),
    /// The token file cannot be read: refuse everyone and say so (503).
    TokenUnavailable,
}

pub struct Auth {
    token_file: Option<PathBuf>,
    /// The token as last read, with the file's mtime then.
    token: Mutex<Option<(SystemTime, Vec<u8>)>>,
    allow: Vec<IpNet>,
}

/// Parse `--ingest-allow`: comma-separated networks (`10.0.0.0/8`) or single addresses.
pub fn parse_allow(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("--ingest-allow: {s:?} is not an address or network (e.g. 10.0.0.0/8, 192.0.2.7, ::1)")
                })
        })
        .collect()
}

/// Read a token file: the first line, trimmed. Empty is an error.
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("cannot read --ingest-token-file {}: {e}", path.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let token = crate::http::trim(line).to_vec();
    if token.is_empty() {
        return Err(format!(
            "--ingest-token-file {} is empty: put the token on its first line (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(token)
}

impl Auth {
    pub fn new(token_file: Option<PathBuf>, allow: Vec<IpNet>) -> Auth {
        Auth {
            token_file,
            token: Mutex::new(None),
            allow,
        }
    }

    /// Whether a token is required (so a 401 should carry a challenge).
    pub fn wants_token(&self) -> bool {
        self.token_file.is_some()
    }

    /// The current token (re-read when the file's mtime changes).
    fn current_token(&self) -> Option<Vec<u8>> {
        let path = self.token_file.as_ref()?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let mut cached = lock(&self.token);
        if let Some((t, tok)) = cached.as_ref() {
            if *t == mtime {
                return Some(tok.clone());
            }
        }
        let tok = read_token(path).ok()?;
        *cached = Some((mtime, tok.clone()));
        Some(tok)
    }

    /// Check a request from `peer` carrying the `Authorization` value `authorization`.
    pub fn check(&self, peer: IpAddr, authorization: Option<&[u8]>) -> Verdict {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&peer)) {
            return Verdict::Address("this address is not in --ingest-allow");
        }
        if self.token_file.is_none() {
            if self.allow.is_empty() && !peer.is_loopback() {
                return Verdict::Address(
                    "ingest is open to loopback only: set --ingest-token-file or --ingest-allow",
                );
            }
            return Verdict::Allowed;
        }
        let Some(expected) = self.current_token() else {
            return Verdict::TokenUnavailable;
        };
        let Some(given) = authorization.and_then(bearer) else {
            return Verdict::NoToken;
        };
        if bool::from(given.ct_eq(expected.as_slice())) {
            Verdict::Allowed
        } else {
            Verdict::WrongToken
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 2.1).
fn bearer(v: &[u8]) -> Option<&[u8]> {
    let v = crate::http::trim(v);
    if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
        Some(crate::http::trim(&v[7..]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_loopback_only() {
        let a = Auth::new(None, Vec::new());
        assert_eq!(
            a.check("127.0.0.1".parse().unwrap(), None),
            Verdict::Allowed
        );
        assert_eq!(a.check("::1".parse().unwrap(), None), Verdict::Allowed);
        assert!(matches!(
            a.check("192.0.2.1".parse().unwrap(), None),
            Verdict::Address(_)
        ));
    }

    #[test]
    fn allow_list_and_mapped_addresses() {
        let a = Auth::new(None, parse_allow("10.0.0.0/8, 192.0.2.7").unwrap());
        assert_eq!(a.check("10.1.2.3".parse().unwrap(), None), Verdict::Allowed);
        assert_eq!(
            a.check("::ffff:192.0.2.7".parse().unwrap(), None),
            Verdict::Allowed
        );
        assert!(matches!(
            a.check("127.0.0.1".parse().unwrap(), None),
            Verdict::Address(_)
        ));
        assert!(parse_allow("10.0.0.0/33").is_err());
        assert!(parse_allow("example.com").is_err());
    }

    #[test]
    fn tokens() {
        let p = std::env::temp_dir().join(format!("cs-token-{}", std::process::id()));
        std::fs::write(&p, "s3cret\n").unwrap();
        let a = Auth::new(Some(p.clone()), Vec::new());
        let peer = "192.0.2.1".parse().unwrap();
        assert_eq!(a.check(peer, None), Verdict::NoToken);
        assert_eq!(a.check(peer, Some(b"Basic czNjcmV0")), Verdict::NoToken);
        assert_eq!(a.check(peer, Some(b"Bearer nope")), Verdict::WrongToken);
        assert_eq!(a.check(peer, Some(b"Bearer s3cre")), Verdict::WrongToken);
        assert_eq!(a.check(peer, Some(b"bearer  s3cret ")), Verdict::Allowed);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            a.check(peer, Some(b"Bearer s3cret")),
            Verdict::TokenUnavailable
        );
        assert!(read_token(&p).is_err());
    }
}
