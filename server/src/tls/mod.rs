//! HTTPS for viewers: the rustls configuration (TLS 1.3 and 1.2, rustls's safe suites, ALPN
//! `http/1.1`, tickets and a bounded session cache), the certificates (`certs`: SNI,
//! reload), and one session over a socket (`stream`, the `Transport::Tls` of a
//! connection). rustls is driven by our loop; nothing here blocks.

pub mod certs;
pub mod stream;

use rustls::crypto::aws_lc_rs;
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Handshake failure causes, as counted and labelled in /metrics.
pub const FAIL_ALERT: usize = 0;
pub const FAIL_GARBAGE: usize = 1;
pub const FAIL_PLAIN_HTTP: usize = 2;
pub const FAIL_EOF: usize = 3;
pub const FAIL_TIMEOUT: usize = 4;
pub const FAIL_OTHER: usize = 5;
pub const FAIL_LABELS: [&str; 6] = ["alert", "not_tls", "plain_http", "eof", "timeout", "other"];

/// Process-wide TLS counters (handshakes are rare next to requests: shared atomics are fine).
#[derive(Default)]
pub struct TlsStats {
    /// Completed handshakes: [TLS1.2 full, TLS1.2 resumed, TLS1.3 full, TLS1.3 resumed].
    pub handshakes: [AtomicU64; 4],
    pub failures: [AtomicU64; FAIL_LABELS.len()],
}

/// What every TLS connection of the process shares.
pub struct TlsShared {
    pub config: Arc<ServerConfig>,
    pub certs: Arc<certs::Certs>,
    pub stats: TlsStats,
}

/// What the command line says about TLS.
#[derive(Debug, Clone)]
pub struct Options {
    pub sources: certs::Sources,
    /// Resumption sessions kept in memory (TLS 1.2 session ids, and TLS 1.3 clients that
    /// do not take tickets).
    pub session_cache: usize,
}

/// Build the server configuration; errors name the file and the problem.
pub fn build(opts: &Options) -> Result<TlsShared, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let certs = Arc::new(certs::Certs::load(opts.sources.clone(), provider.clone())?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    // Room for h2 later: ALPN is negotiated, and a client offering only h2 is refused.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(opts.session_cache.max(1));
    config.ticketer =
        aws_lc_rs::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    // No 0-RTT: a replayed request is harmless for GET, but nothing needs it.
    config.max_early_data_size = 0;
    Ok(TlsShared {
        config: Arc::new(config),
        certs,
        stats: TlsStats::default(),
    })
}

/// Whether the kernel could encrypt for us (kTLS keeps sendfile zero-copy): the `tls` ULP
/// must be listed in /proc/sys/net/ipv4/tcp_available_ulp. Only reported: this build
/// encrypts in user space.
pub fn ktls_status() -> String {
    match std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp") {
        Ok(s) if s.split_whitespace().any(|u| u == "tls") => {
            "kTLS would be available (the kernel offers the tls ULP); this build encrypts in user space".into()
        }
        Ok(s) => format!(
            "kTLS is not available (tcp_available_ulp lists only: {}; `modprobe tls` adds it); bodies are read in 64 KiB chunks and encrypted in user space",
            s.trim()
        ),
        Err(e) => format!("kTLS status unknown (tcp_available_ulp: {e}); bodies are encrypted in user space"),
    }
}
