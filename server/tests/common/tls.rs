//! Test PKI (a CA made at test time with rcgen, and certificates it signs) and a client
//! stream that is plain TCP or TLS, so the same HTTP tests run against both listeners.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A CA and the directory its certificates are written to.
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    pub ca_der: CertificateDer<'static>,
    /// `ca.pem`, for curl/openssl/ffmpeg.
    pub ca_pem: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "corestream test CA");
        let key = KeyPair::generate().unwrap();
        let ca = p.self_signed(&key).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca_der: ca.der().clone(),
            ca,
            ca_key: key,
            ca_pem,
        }
    }

    /// Write `name.crt`/`name.key` for `dns` names (and 127.0.0.1), valid from `from_days`
    /// to `to_days` relative to now; returns (cert, key) paths.
    pub fn issue(
        &self,
        name: &str,
        dns: &[&str],
        from_days: i64,
        to_days: i64,
    ) -> (PathBuf, PathBuf) {
        let mut p =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, name);
        let now = time_now();
        p.not_before = now + time::Duration::days(from_days);
        p.not_after = now + time::Duration::days(to_days);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let crt = self.dir.join(format!("{name}.crt"));
        let keyf = self.dir.join(format!("{name}.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        (crt, keyf)
    }

    /// A client configuration trusting this CA (TLS 1.3 and 1.2 unless narrowed).
    pub fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The process's test PKI with a `localhost` certificate, made once.
pub fn pki() -> &'static (Pki, PathBuf, PathBuf) {
    static P: OnceLock<(Pki, PathBuf, PathBuf)> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corestream-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pki = Pki::new(&dir);
        let (c, k) = pki.issue("localhost", &["localhost"], -1, 30);
        (pki, c, k)
    })
}

/// A client connection: plain TCP, or TLS to `localhost` trusting the test CA.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tls(sock: TcpStream, config: Arc<ClientConfig>, sni: &str) -> Stream {
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        Stream::Tls(Box::new(StreamOwned::new(conn, sock)))
    }

    pub fn sock(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.get_ref(),
        }
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.sock().set_read_timeout(d)
    }

    /// Half-close: no more requests (TLS: without close_notify, like a client that just
    /// shuts its socket).
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let Stream::Tls(t) = self {
            t.flush()?;
        }
        self.sock().shutdown(how)
    }

    /// The TLS session (None for plain).
    pub fn session(&self) -> Option<&ClientConnection> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(&t.conn),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => {
                let n = t.write(buf)?;
                t.flush()?;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}
