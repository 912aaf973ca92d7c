//! HTTPS specifics against the real binary (the HTTP behaviour itself is `http.rs`, which runs
//! over TLS too): protocol versions and ALPN, SNI, resumption, garbage and plaintext on the
//! TLS port, a client that stops mid-handshake, certificate reload (good and broken) while
//! connections stay up, HSTS, and the TLS metrics.

mod common;
use common::tls::{pki, Pki};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::HandshakeKind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn root(name: &str) -> PathBuf {
    let r = media_root(name);
    std::fs::write(r.join("index.m3u8"), "#EXTM3U\n").unwrap();
    r
}

/// One request over `c`, returning the response.
fn ask(c: &mut Stream, path: &str) -> Response {
    c.write_all(get(path).as_bytes()).unwrap();
    read_response(c, false).expect("a response")
}

/// The leaf certificate the server presented on `c`.
fn presented(c: &Stream) -> CertificateDer<'static> {
    c.session()
        .and_then(|s| s.peer_certificates())
        .and_then(|certs| certs.first())
        .expect("a peer certificate")
        .clone()
        .into_owned()
}

#[test]
fn versions_alpn_and_hsts() {
    let s = Server::start_mode(Mode::Tls, &root("tls-versions"), &["--hsts", "max-age=600"]);
    for (versions, want) in [
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ] {
        let mut c = s.tls_client(&pki().0.client(versions), "localhost");
        let r = ask(&mut c, "/index.m3u8");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("strict-transport-security"), Some("max-age=600"));
        let sess = c.session().unwrap();
        assert_eq!(sess.protocol_version(), Some(want));
        assert_eq!(sess.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    // A client offering only h2 is refused (nothing else is spoken here yet).
    let mut h2 = (*pki().0.client(rustls::DEFAULT_VERSIONS)).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let mut c = s.tls_client(&std::sync::Arc::new(h2), "localhost");
    assert!(
        c.write_all(get("/index.m3u8").as_bytes()).is_err()
            || read_response(&mut c, false).is_none()
    );
}

#[test]
fn hsts_is_off_by_default_and_never_on_plain_http() {
    let (_, crt, key) = pki();
    let s = Server::start(
        &root("tls-hsts"),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--hsts",
            "max-age=600",
        ],
    );
    let plain = s.get(&get("/index.m3u8"));
    assert_eq!(plain.header("strict-transport-security"), None);
    let mut c = s.tls_client(&pki().0.client(rustls::DEFAULT_VERSIONS), "localhost");
    assert_eq!(
        ask(&mut c, "/index.m3u8").header("strict-transport-security"),
        Some("max-age=600")
    );
    let off = Server::start_mode(Mode::Tls, &root("tls-nohsts"), &[]);
    let mut c = off.tls_client(&pki().0.client(rustls::DEFAULT_VERSIONS), "localhost");
    assert_eq!(
        ask(&mut c, "/index.m3u8").header("strict-transport-security"),
        None
    );
}

#[test]
fn sni_picks_the_certificate() {
    let dir = std::env::temp_dir().join(format!("corestream-sni-{}", std::process::id()));
    let pki = Pki::new(&dir.join("ca"));
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let mk = |name: &str, dns: &[&str]| {
        let (c, k) = pki.issue(name, dns, -1, 30);
        std::fs::rename(c, certs.join(format!("{name}.crt"))).unwrap();
        std::fs::rename(k, certs.join(format!("{name}.key"))).unwrap();
        std::fs::read(certs.join(format!("{name}.crt"))).unwrap()
    };
    mk("a.example", &["a.example"]);
    mk("b.example", &["b.example", "*.b.example"]);
    mk("0default", &["localhost"]);
    let s = Server::start(
        &root("tls-sni"),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert-dir",
            certs.to_str().unwrap(),
        ],
    );
    let mut no_resume = (*pki.client(rustls::DEFAULT_VERSIONS)).clone();
    no_resume.resumption = rustls::client::Resumption::disabled();
    let client = std::sync::Arc::new(no_resume);
    let names = |sni: &str| -> Vec<String> {
        let mut c = s.tls_client(&client, sni);
        assert_eq!(ask(&mut c, "/index.m3u8").status, 200, "{sni}");
        let der = presented(&c);
        let cert = x509_cn(&der);
        vec![cert]
    };
    assert_eq!(names("a.example"), vec!["a.example"]);
    assert_eq!(names("b.example"), vec!["b.example"]);
    assert_eq!(names("live.b.example"), vec!["b.example"], "wildcard");
    // No match: the default (the first pair by file name).
    assert_eq!(names("localhost"), vec!["0default"]);
}

/// The subject common name of a certificate (rcgen puts the pair's name there).
fn x509_cn(der: &[u8]) -> String {
    // Find the CN attribute OID (2.5.4.3) and read the string after it.
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der
        .windows(oid.len())
        .rposition(|w| w == oid)
        .expect("a CN");
    let len = der[at + oid.len() + 1] as usize;
    let start = at + oid.len() + 2;
    String::from_utf8_lossy(&der[start..start + len]).into_owned()
}

#[test]
fn sessions_resume_with_tickets_and_ids() {
    let s = Server::start_mode(Mode::Tls, &root("tls-resume"), &["--admin", "0"]);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        // One client configuration = one client-side session store, like a browser.
        let client = pki().0.client(versions);
        let mut first = s.tls_client(&client, "localhost");
        assert_eq!(ask(&mut first, "/index.m3u8").status, 200);
        assert_eq!(
            first.session().unwrap().handshake_kind(),
            Some(HandshakeKind::Full)
        );
        // TLS 1.3 tickets arrive after the handshake: read the answer fully first (done).
        let mut second = s.tls_client(&client, "localhost");
        assert_eq!(ask(&mut second, "/index.m3u8").status, 200);
        assert_eq!(
            second.session().unwrap().handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{versions:?}: the second connection resumes"
        );
    }
    let resumed: f64 = ["1.2", "1.3"]
        .iter()
        .map(|v| {
            s.metric(&format!(
                "corestream_tls_handshakes_total{{version=\"{v}\",resumed=\"true\"}}"
            ))
        })
        .sum();
    assert_eq!(resumed, 2.0);
}

#[test]
fn garbage_plaintext_and_stalled_handshakes_end_cleanly() {
    let s = Server::start_mode(
        Mode::Tls,
        &root("tls-garbage"),
        &["--admin", "0", "--header-timeout", "1s"],
    );
    let addr = s.tls_addr.unwrap();
    // Bytes that are not TLS: closed, with an alert or nothing, never a hang.
    let mut g = TcpStream::connect(addr).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    g.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    g.write_all(&[0u8; 70_000]).ok();
    assert!(closed(&mut g), "garbage ends the connection");
    // A plaintext HTTP request: a clear-text 400 that says why, then close.
    let mut p = TcpStream::connect(addr).unwrap();
    p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    p.write_all(get("/index.m3u8").as_bytes()).unwrap();
    let r = read_response(&mut p, false).expect("a clear-text answer");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("https://"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut p));
    // A client that starts a handshake and stops: closed by the header timeout.
    let mut h = TcpStream::connect(addr).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    h.write_all(&[0x16, 0x03, 0x01, 0x00, 0x50, 0x01]).unwrap();
    let t = Instant::now();
    assert!(closed(&mut h), "stalled handshake is closed");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // A client that sends nothing at all after connecting: the same.
    let mut n = TcpStream::connect(addr).unwrap();
    n.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(closed(&mut n));
    let m = |r: &str| {
        s.metric(&format!(
            "corestream_tls_handshake_failures_total{{reason=\"{r}\"}}"
        ))
    };
    wait_for("failures counted", Duration::from_secs(5), || {
        m("plain_http") >= 1.0
            && m("timeout") >= 2.0
            && m("not_tls") + m("alert") + m("other") >= 1.0
    });
    // And the listener still serves.
    assert_eq!(s.get(&get("/index.m3u8")).status, 200);
}

fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn certificates_reload_without_dropping_anyone() {
    let dir = std::env::temp_dir().join(format!("corestream-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = Pki::new(&dir.join("ca"));
    let (c1, k1) = pki.issue("first", &["localhost"], -1, 30);
    let (c2, k2) = pki.issue("second", &["localhost"], -1, 60);
    let (c3, _) = pki.issue("third", &["localhost"], -1, 60);
    let (c_old, k_old) = pki.issue("expired", &["localhost"], -30, -1);
    let live = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (crt, key) = (live.join("cert.pem"), live.join("key.pem"));
    replace(&c1, &crt);
    replace(&k1, &key);
    let r = root("tls-reload");
    let big: Vec<u8> = (0..40_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(r.join("big.ts"), &big).unwrap();
    let s = Server::start(
        &r,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--admin",
            "0",
        ],
    );
    // Without resumption: a resumed session shows the certificate of its first handshake.
    let mut no_resume = (*pki.client(rustls::DEFAULT_VERSIONS)).clone();
    no_resume.resumption = rustls::client::Resumption::disabled();
    let client = std::sync::Arc::new(no_resume);
    let cn = |c: &Stream| x509_cn(&presented(c));
    let mut keep = s.tls_client(&client, "localhost");
    assert_eq!(ask(&mut keep, "/index.m3u8").status, 200);
    assert_eq!(cn(&keep), "first");
    let expiry = s.metric(&format!(
        "corestream_tls_certificate_not_after_seconds{{file=\"{}\",name=\"localhost\"}}",
        crt.display()
    ));
    // A download in flight across the reload.
    let mut dl = s.tls_client(&client, "localhost");
    dl.write_all(get("/big.ts").as_bytes()).unwrap();
    let mut head = vec![0u8; 64 * 1024];
    dl.read_exact(&mut head).unwrap();

    // certbot renew: new files in place; no signal needed.
    replace(&c2, &crt);
    replace(&k2, &key);
    wait_for("the new certificate", Duration::from_secs(15), || {
        cn(&{
            let mut c = s.tls_client(&client, "localhost");
            ask(&mut c, "/index.m3u8");
            c
        }) == "second"
    });
    assert!(
        s.metric(&format!(
            "corestream_tls_certificate_not_after_seconds{{file=\"{}\",name=\"localhost\"}}",
            crt.display()
        )) > expiry,
        "the expiry gauge follows the new certificate"
    );
    // The old connection goes on, with its old session.
    assert_eq!(ask(&mut keep, "/index.m3u8").status, 200);

    // Broken renewals keep what works: a key that does not fit, then an expired pair,
    // then an unreadable key. Each is reported, and handshakes still get "second".
    for (bad_crt, bad_key, why) in [(&c3, &k2, "key does not fit"), (&c_old, &k_old, "expired")] {
        let failed = s.metric("corestream_tls_certificate_reloads_total{result=\"failed\"}");
        replace(bad_crt, &crt);
        replace(bad_key, &key);
        s.signal(libc::SIGHUP);
        wait_for(why, Duration::from_secs(15), || {
            s.metric("corestream_tls_certificate_reloads_total{result=\"failed\"}") > failed
        });
        let mut c = s.tls_client(&client, "localhost");
        assert_eq!(ask(&mut c, "/index.m3u8").status, 200, "{why}");
        assert_eq!(cn(&c), "second", "{why}: the old certificate stays");
    }
    std::fs::remove_file(&key).unwrap();
    s.signal(libc::SIGHUP);
    let mut c = s.tls_client(&client, "localhost");
    assert_eq!(ask(&mut c, "/index.m3u8").status, 200);
    assert_eq!(cn(&c), "second");

    // The download finishes byte-exact.
    let mut got = head;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = dl.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        if n == 0 || got.len() >= big.len() + 200 {
            break;
        }
        let p = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        if got.len() - p - 4 >= big.len() {
            break;
        }
    }
    let p = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        got[p + 4..] == big[..],
        "download across reloads is byte-exact"
    );
}

#[test]
fn https_only_opens_no_plain_listener_and_bad_files_refuse_to_start() {
    let (_, crt, key) = pki();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corestream"))
        .args([
            "--root",
            root("tls-bad").to_str().unwrap(),
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            key.to_str().unwrap(),
            "--tls-key",
            crt.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no certificate in the file") || err.contains("PEM"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corestream"))
        .args(["--root", "/tmp", "--tls-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));

    let s = Server::start_mode(Mode::Tls, &root("tls-only"), &[]);
    assert_eq!(s.addr, s.tls_addr.unwrap(), "only the HTTPS banner");
}

/// PEM keys in the three forms certificate tools write: PKCS#8 (`BEGIN PRIVATE KEY`),
/// PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`, `openssl genrsa -traditional`) and SEC1 EC
/// (`BEGIN EC PRIVATE KEY`, `openssl ecparam -genkey`), each serving a handshake.
#[test]
fn pkcs8_pkcs1_and_sec1_keys_all_load() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: openssl is needed to write keys in the legacy formats");
        return;
    }
    let dir = std::env::temp_dir().join(format!("corestream-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sh = |cmd: &str| {
        let st = std::process::Command::new("sh")
            .args(["-c", cmd])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    };
    sh("openssl genrsa -traditional -out rsa1.key 2048 2>/dev/null");
    sh("openssl ecparam -name prime256v1 -genkey -noout -out sec1.key");
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p8.key");
    for (key, marker) in [
        ("rsa1.key", "BEGIN RSA PRIVATE KEY"),
        ("sec1.key", "BEGIN EC PRIVATE KEY"),
        ("p8.key", "BEGIN PRIVATE KEY"),
    ] {
        let text = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(text.contains(marker), "{key} is not in the form under test");
        let crt = key.replace(".key", ".crt");
        sh(&format!(
            "openssl req -x509 -key {key} -out {crt} -days 2 -subj /CN=localhost \
             -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE 2>/dev/null"
        ));
        let s = Server::start(
            &root(&format!("tls-key-{key}")),
            &[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                dir.join(&crt).to_str().unwrap(),
                "--tls-key",
                dir.join(key).to_str().unwrap(),
            ],
        );
        // Trust exactly this self-signed certificate.
        let der = CertificateDer::pem_file_iter(dir.join(&crt))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        let mut c = s.tls_client(&client, "localhost");
        assert_eq!(ask(&mut c, "/index.m3u8").status, 200, "{key}");
    }
}
