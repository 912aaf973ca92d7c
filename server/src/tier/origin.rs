//! Origins: their URLs, which one a path goes to (rendezvous hashing), and the keep-alive
//! connections to each, plain or TLS (rustls, verified against `--origin-ca`).

use corestream_common::sync::lock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A connection to an origin.
pub enum Upstream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Upstream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Upstream::Plain(s) => s,
            Upstream::Tls(t) => t.get_ref(),
        }
    }
}

impl corestream_common::deadline::OnSocket for Upstream {
    fn socket(&self) -> &TcpStream {
        self.tcp()
    }
}

impl Read for Upstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Upstream::Plain(s) => s.read(buf),
            Upstream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Upstream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Upstream::Plain(s) => s.write(buf),
            Upstream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Upstream::Plain(s) => s.flush(),
            Upstream::Tls(t) => t.flush(),
        }
    }
}

/// The TLS client configuration for https origins: the CA bundle `ca` (PEM), TLS 1.3 and 1.2,
/// ALPN http/1.1.
pub fn tls_client(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--origin-ca {}: {e}", ca.display()))?
        .filter_map(Result::ok)
        .collect();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "--origin-ca {}: no CA certificate in it (a PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt)",
            ca.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub struct Origin {
    /// https (TLS to the origin).
    pub tls: bool,
    /// `host:port`, for connecting, the Host field and metric labels.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Path prefix prepended to every request (no trailing slash), e.g. `/live`.
    pub prefix: String,
    /// Connections in use and idle ones: together at most --origin-max-connections.
    pool: Mutex<Pool>,
    freed: Condvar,
}

#[derive(Default)]
struct Pool {
    busy: usize,
    idle: Vec<Upstream>,
}

/// One of an origin's --origin-max-connections, held while a fetch talks to it. Dropping it
/// frees the slot; a connection handed to `keep` goes back to the idle ones then.
pub struct Slot<'o> {
    origin: &'o Origin,
    /// An idle keep-alive connection that came with the slot, if there was one.
    pub pooled: Option<Upstream>,
    keep: Option<Upstream>,
}

impl Slot<'_> {
    /// Keep this connection for the next fetch (its last response was read to its end).
    pub fn keep(&mut self, s: Upstream) {
        self.keep = Some(s);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        {
            let mut p = lock(&self.origin.pool);
            p.busy = p.busy.saturating_sub(1);
            // Idle + busy never exceeds the bound: this slot's connection takes its place.
            if let Some(s) = self.keep.take() {
                p.idle.push(s);
            }
        }
        self.origin.freed.notify_one();
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.prefix)
    }
}

impl Clone for Origin {
    fn clone(&self) -> Origin {
        Origin {
            tls: self.tls,
            authority: self.authority.clone(),
            host: self.host.clone(),
            port: self.port,
            prefix: self.prefix.clone(),
            pool: Mutex::default(),
            freed: Condvar::new(),
        }
    }
}

/// Parse `--origin`: `http://host[:port][/prefix]`, comma-separated.
pub fn parse_list(list: &str) -> Result<Vec<Origin>, String> {
    let origins: Vec<Origin> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect::<Result<_, _>>()?;
    if origins.is_empty() {
        return Err("--origin needs at least one URL (http://host:port)".into());
    }
    Ok(origins)
}

fn parse(url: &str) -> Result<Origin, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "--origin {url:?} is not an http:// or https:// URL"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) || authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "--origin {url:?}: give scheme, host, port and an optional path prefix only"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => match p.parse::<u16>() {
            Ok(p) if p > 0 => (h.to_string(), p),
            _ => return Err(format!("--origin {url:?}: bad port {p:?}")),
        },
        _ => (authority.to_string(), if tls { 443 } else { 80 }),
    };
    Ok(Origin {
        tls,
        authority: format!("{host}:{port}"),
        host,
        port,
        prefix: path.trim_end_matches('/').to_string(),
        pool: Mutex::default(),
        freed: Condvar::new(),
    })
}

/// A stable 64-bit hash (FNV-1a, then the splitmix64 finaliser): every edge of a fleet,
/// whatever its build, must send a path to the same shield.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Origin indexes in the order to try them for `path`: highest random weight first, so each
/// object goes to one shield and, when it is down, to the same next one from every edge.
pub fn order(origins: &[Origin], path: &[u8]) -> Vec<usize> {
    let mut v: Vec<(u64, usize)> = origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                stable_hash(&[o.authority.as_bytes(), o.prefix.as_bytes(), path]),
                i,
            )
        })
        .collect();
    v.sort_by_key(|&(h, _)| std::cmp::Reverse(h));
    v.into_iter().map(|(_, i)| i).collect()
}

/// Longest `Location` passed on to viewers (the default --max-uri-bytes).
const MAX_LOCATION: usize = 4096;

/// The `Location` viewers get for a redirect from `answered` (one of `origins`). A URL into
/// an origin's prefix becomes the edge's own path, so viewers stay on the edge (as nginx's
/// `proxy_redirect default` does); an absolute path outside the answering origin's prefix
/// becomes that origin's URL, since the edge has no name for it; relative references and
/// other sites pass unchanged (a relative one resolves against the edge's URL as it would
/// have against the origin's). None: no usable Location (missing, empty, too long, or with
/// spaces or control characters, which could split the head).
pub fn edge_location(origins: &[Origin], answered: &Origin, loc: Option<&[u8]>) -> Option<Vec<u8>> {
    let loc = loc?.trim_ascii();
    if loc.is_empty() || loc.len() > MAX_LOCATION || loc.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let scheme = |name: &[u8]| {
        (loc.len() >= name.len() && loc[..name.len()].eq_ignore_ascii_case(name))
            .then(|| &loc[name.len()..])
    };
    let (tls, rest) = if let Some(r) = scheme(b"http://") {
        (Some(false), r)
    } else if let Some(r) = scheme(b"https://") {
        (Some(true), r)
    } else if let Some(r) = loc.strip_prefix(b"//") {
        (None, r)
    } else if loc.starts_with(b"/") {
        return Some(answered.edge_path(loc).unwrap_or_else(|| {
            let scheme: &[u8] = if answered.tls {
                b"https://"
            } else {
                b"http://"
            };
            [scheme, answered.authority.as_bytes(), loc].concat()
        }));
    } else {
        return Some(loc.to_vec());
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    origins
        .iter()
        .filter(|o| tls.is_none_or(|t| t == o.tls) && o.is_named_by(authority))
        .find_map(|o| o.edge_path(path))
        .or_else(|| Some(loc.to_vec()))
}

impl Origin {
    /// The edge's path for `path` on this origin (`/`, `?` or `#` first, or nothing), when
    /// it lies under the prefix.
    fn edge_path(&self, path: &[u8]) -> Option<Vec<u8>> {
        let rest = path.strip_prefix(self.prefix.as_bytes())?;
        match rest.first() {
            Some(b'/') => Some(rest.to_vec()),
            None | Some(b'?' | b'#') => Some([b"/", rest].concat()),
            Some(_) => None,
        }
    }

    /// Whether a URL's authority (`host[:port]`, no user info) names this origin.
    fn is_named_by(&self, authority: &[u8]) -> bool {
        let Ok(a) = std::str::from_utf8(authority) else {
            return false;
        };
        let (host, port) = match a.rsplit_once(':') {
            Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, p.parse().ok()),
            _ => (a, Some(if self.tls { 443 } else { 80 })),
        };
        !a.contains('@') && host.eq_ignore_ascii_case(&self.host) && port == Some(self.port)
    }
}

impl Origin {
    /// A slot among `max` connections to this origin (with an idle connection if one is
    /// left), waiting up to `wait` for one to be freed; None if none was.
    pub fn slot(&self, max: usize, wait: Duration) -> Option<Slot<'_>> {
        let deadline = Instant::now() + wait;
        let mut p = lock(&self.pool);
        while p.busy >= max {
            let left = deadline.checked_duration_since(Instant::now())?;
            p = self
                .freed
                .wait_timeout(p, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        p.busy += 1;
        // Idle ones count against the bound too: take one if there is any, else the new
        // connection fits (busy + idle <= max holds on both paths).
        let pooled = p.idle.pop();
        Some(Slot {
            origin: self,
            pooled,
            keep: None,
        })
    }

    /// A new connection (TLS for https origins, verified with `tls`), within `timeout` per
    /// address.
    pub fn connect(
        &self,
        timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Upstream> {
        let tcp = self.connect_tcp(timeout)?;
        if !self.tls {
            return Ok(Upstream::Plain(tcp));
        }
        let config = tls.ok_or_else(|| io::Error::other("no TLS client configuration"))?;
        let name = ServerName::try_from(
            self.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // The handshake now, within the connect timeout, so a TLS failure is a connect error.
        let _ = s.sock.set_read_timeout(Some(timeout));
        let _ = s.sock.set_write_timeout(Some(timeout));
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        }
        Ok(Upstream::Tls(Box::new(s)))
    }

    fn connect_tcp(&self, timeout: Duration) -> io::Result<TcpStream> {
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} resolves to no address", self.host),
        );
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        for addr in (host, self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_into_an_origin_stay_on_the_edge() {
        let o = parse_list("http://Origin.example:8080/live, https://shield.example").unwrap();
        let loc = |l: &str| {
            edge_location(&o, &o[0], Some(l.as_bytes())).map(|v| String::from_utf8(v).unwrap())
        };
        let cases = [
            // Into an origin's prefix: the edge's own path.
            (
                "http://origin.example:8080/live/a/b.m3u8?x=1",
                "/a/b.m3u8?x=1",
            ),
            ("HTTP://ORIGIN.EXAMPLE:8080/live", "/"),
            ("//origin.example:8080/live/c.ts", "/c.ts"),
            ("https://shield.example/s/1.ts", "/s/1.ts"),
            ("https://shield.example:443?q", "/?q"),
            (" /live/a.m3u8 ", "/a.m3u8"),
            // Outside the prefix: the origin's URL, which the edge has no name for.
            (
                "/elsewhere/a.m3u8",
                "http://Origin.example:8080/elsewhere/a.m3u8",
            ),
            ("/lively/a.m3u8", "http://Origin.example:8080/lively/a.m3u8"),
            // Other sites, other ports, another scheme, user info, relative references.
            (
                "https://cdn.example/live/a.ts",
                "https://cdn.example/live/a.ts",
            ),
            (
                "http://origin.example:8081/live/a.ts",
                "http://origin.example:8081/live/a.ts",
            ),
            (
                "https://origin.example:8080/live/a.ts",
                "https://origin.example:8080/live/a.ts",
            ),
            ("http://shield.example/s.ts", "http://shield.example/s.ts"),
            (
                "http://u@origin.example:8080/live/a",
                "http://u@origin.example:8080/live/a",
            ),
            ("b/c.m3u8", "b/c.m3u8"),
            ("../x.m3u8?y", "../x.m3u8?y"),
        ];
        for (given, want) in cases {
            assert_eq!(loc(given).as_deref(), Some(want), "{given}");
        }
        for bad in [
            "",
            "  ",
            "/a b",
            "/a\rSet-Cookie: x",
            "/a\x7f",
            &"/a".repeat(3000),
        ] {
            assert_eq!(loc(bad), None, "{bad:?}");
        }
        assert_eq!(edge_location(&o, &o[0], None), None);
        let v6 = parse_list("http://[::1]:9000").unwrap();
        let got = edge_location(&v6, &v6[0], Some(b"http://[::1]:9000/a")).unwrap();
        assert_eq!(got, b"/a");
        let bare = parse_list("http://[::1]").unwrap();
        assert_eq!(
            edge_location(&bare, &bare[0], Some(b"http://[::1]/a")).unwrap(),
            b"/a"
        );
    }

    #[test]
    fn urls() {
        let o = parse_list("http://a.example:8080/live/, http://10.0.0.2").unwrap();
        assert_eq!(o[0].authority, "a.example:8080");
        assert_eq!(o[0].prefix, "/live");
        assert_eq!(o[1].authority, "10.0.0.2:80");
        assert_eq!(o[1].prefix, "");
        let v6 = parse_list("http://[::1]:9000").unwrap();
        assert_eq!((v6[0].host.as_str(), v6[0].port), ("[::1]", 9000));
        // The colons of an IPv6 address are not a port (was refused: bad port "1]").
        let bare = parse_list("https://[::1]/live").unwrap();
        assert_eq!(
            (bare[0].authority.as_str(), bare[0].prefix.as_str()),
            ("[::1]:443", "/live")
        );
        let tls = parse_list("https://cdn.example/live").unwrap();
        assert!(tls[0].tls);
        assert_eq!(tls[0].authority, "cdn.example:443");
        for bad in [
            "",
            "ftp://x",
            "http://x:0",
            "http://x:99999",
            "http://u@x",
            "http://x/?a",
        ] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendezvous_spreads_paths_and_moves_only_a_dead_origins_share() {
        let three = parse_list("http://s1:80,http://s2:80,http://s3:80").unwrap();
        let mut first = [0usize; 3];
        for i in 0..3000 {
            let p = format!("live/seg{i}.ts");
            let o = order(&three, p.as_bytes());
            assert_eq!(o.len(), 3);
            first[o[0]] += 1;
            // Without s2, a path keeps its shield unless s2 was it.
            let two = parse_list("http://s1:80,http://s3:80").unwrap();
            let o2 = order(&two, p.as_bytes());
            let name = |v: &[Origin], i: usize| v[i].authority.clone();
            if name(&three, o[0]) != "s2:80" {
                assert_eq!(name(&two, o2[0]), name(&three, o[0]));
            }
        }
        assert!(first.iter().all(|&n| n > 800), "{first:?}");
        // Stable across runs and builds.
        assert_eq!(stable_hash(&[b"a"]), stable_hash(&[b"a"]));
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }
}
