//! Certificates: PEM chains and keys loaded from files (PKCS#8, PKCS#1 RSA or SEC1 EC keys),
//! chosen per handshake by the name the client asks for (SNI), and replaced without a
//! restart when the files change or on SIGHUP. New handshakes get the new chain; connections
//! already open keep theirs. A file that cannot be used (unreadable, wrong key, expired)
//! leaves the certificates in use untouched, and the reason is logged.

use corestream_common::sync::{lock, read, write};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use x509_cert::der::Decode;

/// Where certificates come from: an explicit pair (the default certificate) and/or a
/// directory of `NAME.crt` + `NAME.key` pairs.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub pair: Option<(PathBuf, PathBuf)>,
    pub dir: Option<PathBuf>,
}

/// One usable certificate.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// DNS names it answers for (subjectAltName, lower case; `*.x` wildcards kept as such).
    pub names: Vec<String>,
    /// The certificate file, for logs and the metric label.
    pub label: String,
    pub not_after: u64,
}

/// The certificates in use: a default and an index by name.
pub struct Set {
    default: Arc<Loaded>,
    by_name: HashMap<String, Arc<Loaded>>,
    all: Vec<Arc<Loaded>>,
}

impl Set {
    fn pick(&self, sni: Option<&str>) -> &Arc<Loaded> {
        let Some(name) = sni else {
            return &self.default;
        };
        let name = name.to_ascii_lowercase();
        if let Some(c) = self.by_name.get(&name) {
            return c;
        }
        // A wildcard covers exactly one label (RFC 6125 6.4.3).
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = self.by_name.get(&format!("*.{parent}")) {
                return c;
            }
        }
        &self.default
    }
}

/// File identity used to notice a renewal (certbot replaces the symlinked files).
type Stamp = (PathBuf, Option<(u64, u64, i64, i64)>);

/// The certificate store the TLS configuration resolves from.
pub struct Certs {
    sources: Sources,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Set>>,
    stamps: Mutex<Vec<Stamp>>,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("sources", &self.sources)
            .finish()
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = read(&self.current).clone();
        Some(set.pick(hello.server_name()).key.clone())
    }
}

fn unix(t: x509_cert::time::Time) -> u64 {
    t.to_unix_duration().as_secs()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn date(secs: u64) -> String {
    corestream_common::date::Civil::from_unix_secs(secs).rfc3339_millis()
}

/// Load and check one chain and key.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, String> {
    let label = cert.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{label}: cannot read: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{label}: not a PEM certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "{label}: no certificate in the file (expected -----BEGIN CERTIFICATE-----)"
        ));
    };
    let parsed = x509_cert::Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("{label}: the first certificate does not parse: {e}"))?;
    let validity = &parsed.tbs_certificate.validity;
    let (not_before, not_after) = (unix(validity.not_before), unix(validity.not_after));
    let t = now();
    if not_after < t {
        return Err(format!("{label}: expired on {}", date(not_after)));
    }
    if not_before > t + 300 {
        return Err(format!(
            "{label}: not valid before {} (check this machine's clock)",
            date(not_before)
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "{}: no usable private key (PKCS#8, PKCS#1 RSA or SEC1 EC in PEM): {e}",
            key.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        format!(
            "{label} with {}: the key does not fit the certificate or cannot sign: {e}",
            key.display()
        )
    })?;
    let mut names = Vec::new();
    if let Ok(Some((_, san))) = parsed
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectAltName>()
    {
        for n in san.0 {
            if let x509_cert::ext::pkix::name::GeneralName::DnsName(d) = n {
                names.push(d.as_str().to_ascii_lowercase());
            }
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        label,
        not_after,
    })
}

/// The `NAME.crt` + `NAME.key` pairs of a directory, sorted by name.
fn dir_pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("--tls-cert-dir {}: cannot read: {e}", dir.display()))?;
    let mut pairs = Vec::new();
    for entry in rd.flatten() {
        let p = entry.path();
        if p.extension().and_then(|e| e.to_str()) != Some("crt") {
            continue;
        }
        let key = p.with_extension("key");
        if !key.exists() {
            return Err(format!(
                "{}: no matching key {} (each NAME.crt needs a NAME.key)",
                p.display(),
                key.display()
            ));
        }
        pairs.push((p, key));
    }
    pairs.sort();
    if pairs.is_empty() {
        return Err(format!(
            "--tls-cert-dir {}: no NAME.crt + NAME.key pair in it",
            dir.display()
        ));
    }
    Ok(pairs)
}

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let id = std::fs::metadata(p)
        .ok()
        .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
    (p.to_path_buf(), id)
}

impl Sources {
    fn pairs(&self) -> Result<Vec<(PathBuf, PathBuf)>, String> {
        let mut pairs = Vec::new();
        if let Some(p) = &self.pair {
            pairs.push(p.clone());
        }
        if let Some(d) = &self.dir {
            pairs.extend(dir_pairs(d)?);
        }
        Ok(pairs)
    }

    /// Every certificate, and the stamps of the files it came from.
    fn build(&self, provider: &CryptoProvider) -> Result<(Set, Vec<Stamp>), String> {
        let pairs = self.pairs()?;
        let mut stamps = Vec::new();
        let mut all = Vec::new();
        for (c, k) in &pairs {
            // Stamps first: a file changed while we read it is read again next time.
            stamps.push(stamp(c));
            stamps.push(stamp(k));
            all.push(Arc::new(load_pair(c, k, provider)?));
        }
        if let Some(d) = &self.dir {
            stamps.push(stamp(d));
        }
        let default = all.first().cloned().ok_or_else(|| {
            "no certificate given: use --tls-cert and --tls-key, or --tls-cert-dir".to_string()
        })?;
        let mut by_name = HashMap::new();
        // The explicit pair first, then the directory in name order: the first claim of a
        // name wins.
        for c in &all {
            for n in &c.names {
                by_name.entry(n.clone()).or_insert_with(|| c.clone());
            }
            // Also by file name (`media.example.crt`), for certificates without DNS names.
            if let Some(stem) = Path::new(&c.label).file_stem().and_then(|s| s.to_str()) {
                by_name
                    .entry(stem.to_ascii_lowercase())
                    .or_insert_with(|| c.clone());
            }
        }
        Ok((
            Set {
                default,
                by_name,
                all,
            },
            stamps,
        ))
    }
}

impl Certs {
    /// Load every certificate; an error says which file and what is wrong with it.
    pub fn load(sources: Sources, provider: Arc<CryptoProvider>) -> Result<Certs, String> {
        let (set, stamps) = sources.build(&provider)?;
        Ok(Certs {
            sources,
            provider,
            current: RwLock::new(Arc::new(set)),
            stamps: Mutex::new(stamps),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// Whether any certificate or key file changed since it was loaded.
    pub fn changed_on_disk(&self) -> bool {
        let stamps = lock(&self.stamps);
        stamps.iter().any(|(p, id)| stamp(p).1 != *id)
            || self
                .sources
                .dir
                .as_ref()
                .and_then(|d| dir_pairs(d).ok())
                .is_some_and(|pairs| {
                    pairs
                        .iter()
                        .any(|(c, _)| !stamps.iter().any(|(p, _)| p == c))
                })
    }

    /// Load everything again and switch to it, or keep what is in use and say why.
    pub fn reload(&self) -> Result<(), String> {
        match self.sources.build(&self.provider) {
            Ok((set, stamps)) => {
                let names: Vec<String> = set.all.iter().map(|c| c.label.clone()).collect();
                *write(&self.current) = Arc::new(set);
                *lock(&self.stamps) = stamps;
                self.reloads.fetch_add(1, Ordering::Relaxed);
                say!(
                    "corestream: TLS certificates reloaded ({}); new handshakes use them",
                    names.join(", ")
                );
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                // Remember the bad files' stamps so the same error is not logged every poll.
                if let Ok(pairs) = self.sources.pairs() {
                    let mut s = lock(&self.stamps);
                    s.clear();
                    for (c, k) in &pairs {
                        s.push(stamp(c));
                        s.push(stamp(k));
                    }
                    if let Some(d) = &self.sources.dir {
                        s.push(stamp(d));
                    }
                }
                say!(
                    "corestream: TLS certificate reload failed, still using the previous certificates: {e}"
                );
                Err(e)
            }
        }
    }

    /// (certificate file, names, not-after in Unix seconds) of every certificate in use.
    pub fn in_use(&self) -> Vec<(String, Vec<String>, u64)> {
        read(&self.current)
            .all
            .iter()
            .map(|c| (c.label.clone(), c.names.clone(), c.not_after))
            .collect()
    }
}
