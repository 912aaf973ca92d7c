//! Command line and the configuration every worker reads.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "corestream",
    version,
    about = "Corestream edge server: serves live HLS/DASH playlists and segments to many viewers",
    long_about = None
)]
pub struct Cli {
    /// Directory of media to serve (playlists, segments). Nothing outside it is ever served.
    /// Required unless --demo/--demo-ll, which publish into it (or into a fresh temporary
    /// directory when it is not given).
    #[arg(long, env = "CORESTREAM_ROOT", value_name = "DIR", required_unless_present_any = ["demo", "demo_ll", "origin"])]
    pub root: Option<PathBuf>,

    /// Publish a built-in live HLS stream (three renditions, 2 s segments, sliding window of
    /// 6) and serve it: the quickest way to try a player against a moving live stream.
    #[arg(long, env = "CORESTREAM_DEMO")]
    pub demo: bool,

    /// Like --demo, but Low-Latency HLS: 0.5 s parts, preload hints, blocking reloads and
    /// delta updates, with a window of 10 segments (longer than CAN-SKIP-UNTIL, so delta
    /// updates skip something).
    #[arg(long, env = "CORESTREAM_DEMO_LL", conflicts_with = "demo")]
    pub demo_ll: bool,

    /// Address and port for viewers over plain HTTP [default: 0.0.0.0:8080, unless only
    /// --tls-listen is given]. Several corestream processes may listen on the same one
    /// (SO_REUSEPORT).
    #[arg(long, env = "CORESTREAM_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Address and port for viewers over HTTPS (TLS 1.3 and 1.2). Needs --tls-cert and
    /// --tls-key, or --tls-cert-dir. With only this one given, no plain listener is opened.
    #[arg(long, env = "CORESTREAM_TLS_LISTEN", value_name = "ADDR:PORT")]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain (leaf first) of the default certificate: the one for clients
    /// that send no server name, or one no other certificate has. Reloaded when the file
    /// changes (certbot renew) and on SIGHUP.
    #[arg(
        long,
        env = "CORESTREAM_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(
        long,
        env = "CORESTREAM_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Directory of NAME.crt + NAME.key pairs, one per site: a handshake gets the
    /// certificate whose subjectAltName (or file name) matches the server name it asks for
    /// (SNI), wildcards included. Without --tls-cert, the first pair by name is the default.
    #[arg(long, env = "CORESTREAM_TLS_CERT_DIR", value_name = "DIR")]
    pub tls_cert_dir: Option<PathBuf>,

    /// TLS sessions kept for resumption (by session id; TLS 1.3 clients mostly use
    /// tickets, which cost no server memory).
    #[arg(
        long,
        env = "CORESTREAM_TLS_SESSION_CACHE",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub tls_session_cache: usize,

    /// Strict-Transport-Security value sent on HTTPS responses, e.g. `max-age=31536000`.
    /// Off unless given: once a browser has seen it, plain HTTP is refused for that long.
    #[arg(long, env = "CORESTREAM_HSTS", value_name = "VALUE")]
    pub hsts: Option<String>,

    /// Worker threads, each with its own event loop and listening socket [default: online CPUs].
    #[arg(long, env = "CORESTREAM_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Give worker i the new connections whose packets the kernel handles on the i-th CPU
    /// this process may use (SO_INCOMING_CPU on its listening sockets), so a connection is
    /// served next to where its packets arrive: no cross-CPU wakeups, larger batches per
    /// wakeup. Connections arriving on a CPU without a worker are spread as without it. For
    /// NICs with an RX queue (or RPS) per CPU; with a single-queue NIC every connection
    /// would go to the worker of the CPU taking its interrupts, so it is off by default.
    #[arg(long, env = "CORESTREAM_INCOMING_CPU")]
    pub incoming_cpu: bool,

    /// Listen backlog asked of the kernel (it is capped by net.core.somaxconn).
    #[arg(
        long,
        env = "CORESTREAM_BACKLOG",
        default_value_t = 65535,
        value_name = "N"
    )]
    pub backlog: i32,

    /// Origins allowed by CORS, comma-separated; `*` allows any. A listed Origin is echoed
    /// back with `Vary: Origin`.
    #[arg(
        long,
        env = "CORESTREAM_CORS_ORIGINS",
        default_value = "*",
        value_name = "LIST"
    )]
    pub cors_origins: String,

    /// Cache-Control for playlists and manifests (.m3u8, .mpd). Objects pulled from an
    /// --origin carry the origin's own Cache-Control and Expires; this only when it sends none.
    #[arg(
        long,
        env = "CORESTREAM_CACHE_PLAYLIST",
        default_value = "max-age=1",
        value_name = "VALUE"
    )]
    pub cache_playlist: String,

    /// Cache-Control for media segments, init segments, keys and subtitles (pulled ones: only
    /// when the origin sends none of its own).
    #[arg(
        long,
        env = "CORESTREAM_CACHE_SEGMENT",
        default_value = "max-age=1209600",
        value_name = "VALUE"
    )]
    pub cache_segment: String,

    /// Cache-Control for other files (pages, scripts, JSON; pulled ones: only when the origin
    /// sends none of its own).
    #[arg(
        long,
        env = "CORESTREAM_CACHE_OTHER",
        default_value = "max-age=60",
        value_name = "VALUE"
    )]
    pub cache_other: String,

    /// Cache-Control for 404 answers: a segment about to appear must not be cached as missing.
    #[arg(
        long,
        env = "CORESTREAM_CACHE_MISSING",
        default_value = "no-cache",
        value_name = "VALUE"
    )]
    pub cache_missing: String,

    /// Largest request head accepted (request line and headers); larger gets 431.
    #[arg(
        long,
        env = "CORESTREAM_MAX_HEADER_BYTES",
        default_value_t = 8192,
        value_name = "BYTES"
    )]
    pub max_header_bytes: usize,

    /// Longest request target accepted; longer gets 414.
    #[arg(
        long,
        env = "CORESTREAM_MAX_URI_BYTES",
        default_value_t = 4096,
        value_name = "BYTES"
    )]
    pub max_uri_bytes: usize,

    /// Time allowed to send a complete request head, from accept or from its first byte
    /// (slowloris clients are closed). Units: ms, s, m.
    #[arg(long, env = "CORESTREAM_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,

    /// How long an idle keep-alive connection is kept open.
    #[arg(long, env = "CORESTREAM_KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub keepalive_timeout: Duration,

    /// A response that makes no write progress for this long is abandoned (a viewer that
    /// stopped reading must not pin a file and memory forever); after 2 s (or this, if
    /// shorter) once the viewer has closed its side.
    #[arg(long, env = "CORESTREAM_SEND_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub send_timeout: Duration,

    /// On SIGTERM/SIGINT: time allowed for responses in flight before exiting anyway.
    #[arg(long, env = "CORESTREAM_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,

    /// Most viewer connections this process holds (split across workers; 0 = no cap). Above
    /// it a worker stops accepting and the kernel queue holds the rest; it resumes at 90%.
    #[arg(
        long,
        env = "CORESTREAM_MAX_CONNECTIONS",
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Admin listener for /metrics (Prometheus) and /healthz: `PORT` (on 127.0.0.1) or
    /// `ADDR:PORT`. Never on the viewers' port. Off unless given.
    #[arg(long, env = "CORESTREAM_ADMIN", value_parser = parse_admin, value_name = "[ADDR:]PORT")]
    pub admin: Option<SocketAddr>,

    /// Origins to pull from, comma-separated `http[s]://host:port[/prefix]`: a request for a
    /// file that is not under --root (or with no --root) is fetched from one of them, cached
    /// in --cache-dir and streamed to every viewer waiting for it while it arrives (one
    /// upstream request per object). Several origins (shields): each path goes to one, by
    /// rendezvous hashing; the next one on a connect error or a 5xx.
    #[arg(long, env = "CORESTREAM_ORIGIN", value_name = "URL,...")]
    pub origin: Option<String>,

    /// Where objects pulled from --origin are kept [default: $CACHE_DIRECTORY (systemd's
    /// CacheDirectory=), else /var/cache/corestream]. Processes sharing it (several on one
    /// port) fetch each object once between them.
    #[arg(
        long,
        env = "CORESTREAM_CACHE_DIR",
        value_name = "DIR",
        requires = "origin"
    )]
    pub cache_dir: Option<PathBuf>,

    /// Bytes of objects kept in --cache-dir; the least recently used go first (an object
    /// being sent stays readable by its viewers until they are done).
    #[arg(long, env = "CORESTREAM_CACHE_MAX_BYTES", default_value = "1GiB", value_parser = corestream_common::size::parse, value_name = "BYTES")]
    pub cache_max_bytes: u64,

    /// Connections to each origin at once, idle keep-alive ones included (and so upstream
    /// requests in flight to it). A fetch waits up to --origin-timeout for one to be free,
    /// then tries the next origin (504 if none is left).
    #[arg(
        long,
        env = "CORESTREAM_ORIGIN_MAX_CONNECTIONS",
        default_value_t = 32,
        value_name = "N"
    )]
    pub origin_max_connections: usize,

    /// How long an origin may take to accept a connection, and then to send its answer's
    /// whole head (504 beyond it). Blocking LL-HLS playlist requests get 30 s more.
    #[arg(long, env = "CORESTREAM_ORIGIN_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub origin_timeout: Duration,

    /// How long an origin may send nothing in the middle of a body before the fetch is
    /// abandoned (the viewers on it are closed, nothing is cached).
    #[arg(long, env = "CORESTREAM_ORIGIN_STALL_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub origin_stall_timeout: Duration,

    /// CA certificates (PEM bundle) that https origins are verified against.
    #[arg(
        long,
        env = "CORESTREAM_ORIGIN_CA",
        default_value = "/etc/ssl/certs/ca-certificates.crt",
        value_name = "PATH"
    )]
    pub origin_ca: PathBuf,

    /// How long a 404 (or a failed fetch) from the origin is remembered, so a storm of
    /// requests for a missing object does not reach the origin. Never longer than half the
    /// part target (LL-HLS) or target duration of a live playlist pulled from the same
    /// directory: the name may be published by then.
    #[arg(long, env = "CORESTREAM_NEGATIVE_TTL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub negative_ttl: Duration,

    /// Ingest listener: packagers PUT playlists and segments here (whole, or chunk by chunk
    /// with Transfer-Encoding: chunked, served to viewers as the chunks land) and DELETE
    /// them; written beneath --root. `PORT` (on 127.0.0.1) or `ADDR:PORT`. Off unless given.
    /// Without --ingest-token-file or --ingest-allow, only loopback clients may push.
    #[arg(long, env = "CORESTREAM_INGEST", value_parser = parse_admin, value_name = "[ADDR:]PORT")]
    pub ingest: Option<SocketAddr>,

    /// File holding the ingest bearer token (first line): pushes must send
    /// `Authorization: Bearer <token>`. Re-read when the file changes.
    #[arg(
        long,
        env = "CORESTREAM_INGEST_TOKEN_FILE",
        value_name = "PATH",
        requires = "ingest"
    )]
    pub ingest_token_file: Option<PathBuf>,

    /// Client networks allowed to push, comma-separated (`10.0.0.0/8,2001:db8::/32`,
    /// single addresses too). With a token file as well, both must pass.
    #[arg(
        long,
        env = "CORESTREAM_INGEST_ALLOW",
        value_name = "CIDR,...",
        requires = "ingest"
    )]
    pub ingest_allow: Option<String>,

    /// Largest object one PUT may store (413 beyond it), e.g. `1GiB`, `200MB`.
    #[arg(long, env = "CORESTREAM_INGEST_MAX_BYTES", default_value = "1GiB", value_parser = corestream_common::size::parse, value_name = "BYTES")]
    pub ingest_max_bytes: u64,

    /// How long an ingest connection may send nothing mid-body, and how long a request head
    /// may take, waiting for it between pushes included, before it is closed; an upload cut
    /// this way leaves nothing behind.
    #[arg(long, env = "CORESTREAM_INGEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub ingest_timeout: Duration,

    /// Ingest connections served at once (each is a thread; more are answered 503).
    #[arg(
        long,
        env = "CORESTREAM_INGEST_MAX_CONNECTIONS",
        default_value_t = 256,
        value_name = "N"
    )]
    pub ingest_max_connections: usize,

    /// Append an access log in combined log format to this file (buffered; reopened on
    /// SIGHUP for log rotation). Off unless given.
    #[arg(long, env = "CORESTREAM_ACCESS_LOG", value_name = "PATH")]
    pub access_log: Option<PathBuf>,

    /// Access log format: `combined` (nginx's), `combined-cmcd` (the same, then the players'
    /// CMCD keys sid cid br bl mtp bs su ot rtp as key=value fields, `-` when not sent) or
    /// `json` (one JSON object per line, with every CMCD key the player sent).
    #[arg(
        long,
        env = "CORESTREAM_ACCESS_LOG_FORMAT",
        value_enum,
        default_value = "combined",
        value_name = "FORMAT"
    )]
    pub access_log_format: LogFormat,

    /// Send Common Media Server Data (CTA-5006) with viewer responses: CMSD-Static (object
    /// type, duration, LL-HLS hold time, server name) and CMSD-Dynamic (estimated throughput
    /// and RTT to this viewer, from the kernel's TCP_INFO: one getsockopt per response).
    #[arg(long, env = "CORESTREAM_CMSD")]
    pub cmsd: bool,

    /// This server's name in CMSD (`n` and the CMSD-Dynamic item). Default: the host name.
    #[arg(long, env = "CORESTREAM_CMSD_NAME", value_name = "NAME")]
    pub cmsd_name: Option<String>,

    /// How long a player's CMCD session counts as watching after its last request
    /// (`corestream_viewers`, `/streams`). Viewers without CMCD count for two target durations
    /// after their last playlist reload (this long for a manifest without one; 600 s at most).
    #[arg(long, env = "CORESTREAM_QOE_WINDOW", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub qoe_window: Duration,

    /// Most CMCD sessions tracked at once for the viewer counts (memory stays bounded
    /// whatever clients send; what does not fit is counted as dropped). Connections without
    /// CMCD are counted without a table entry.
    #[arg(
        long,
        env = "CORESTREAM_QOE_MAX_SESSIONS",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub qoe_max_sessions: usize,

    /// Most streams tracked at once (each a label value in /metrics).
    #[arg(
        long,
        env = "CORESTREAM_QOE_MAX_STREAMS",
        default_value_t = 500,
        value_name = "N"
    )]
    pub qoe_max_streams: usize,

    /// Memory for playlists and manifests kept in memory, for the whole process (split
    /// across workers), least recently used evicted first. Larger playlists, and what does
    /// not fit, are served from the file. Units: B, KiB, MiB, GiB.
    #[arg(long, env = "CORESTREAM_PLAYLIST_CACHE_BYTES", default_value = "64MiB", value_parser = corestream_common::size::parse, value_name = "BYTES")]
    pub playlist_cache_bytes: u64,

    /// File-name suffixes of files still being written (a packager's temporary names),
    /// comma-separated: never served, 404 until renamed into place.
    #[arg(
        long,
        env = "CORESTREAM_HIDDEN_SUFFIXES",
        default_value = ".tmp",
        value_name = "LIST"
    )]
    pub hidden_suffixes: String,
}

/// A timeout: a duration (`10s`, `500ms`, `2m`, plain seconds) above zero, at most a week.
/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Combined,
    CombinedCmcd,
    Json,
}

/// The host name, for CMSD's server name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "corestream".to_string())
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    corestream_common::duration::parse_within(
        s,
        Duration::from_millis(1),
        Duration::from_secs(7 * 86_400),
    )
}

fn parse_admin(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not PORT or ADDR:PORT (e.g. 9180 or 127.0.0.1:9180)"))
}

/// CORS policy.
#[derive(Debug, Clone)]
pub enum Cors {
    Any,
    List(Vec<Vec<u8>>),
}

/// Validated configuration shared read-only by all workers.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    /// Plain HTTP listener (None: HTTPS only).
    pub listen: Option<SocketAddr>,
    /// HTTPS listener and its certificates.
    pub tls_listen: Option<SocketAddr>,
    pub tls: Option<crate::tls::Options>,
    pub hsts: Option<Vec<u8>>,
    pub workers: usize,
    /// `--incoming-cpu`.
    pub incoming_cpu: bool,
    pub backlog: i32,
    pub cors: Cors,
    pub cache_playlist: Vec<u8>,
    pub cache_segment: Vec<u8>,
    pub cache_other: Vec<u8>,
    pub cache_missing: Vec<u8>,
    pub limits: crate::http::Limits,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub send_timeout: Duration,
    pub drain_timeout: Duration,
    /// Per-worker connection cap (0 = none).
    pub worker_max_connections: usize,
    pub admin: Option<SocketAddr>,
    /// The ingest port and its rules (None without --ingest).
    pub ingest: Option<crate::ingest::Options>,
    /// The origins to pull from and the cache (None without --origin).
    pub tier: Option<crate::tier::Options>,
    pub access_log: Option<PathBuf>,
    pub access_log_format: LogFormat,
    /// This server's name as an RFC 8941 string, when `--cmsd` is on.
    pub cmsd_name: Option<Vec<u8>>,
    pub qoe: crate::qoe::Limits,
    pub hidden_suffixes: Vec<Vec<u8>>,
    /// Playlist cache bytes for each worker.
    pub worker_playlist_cache_bytes: usize,
    /// URL path printed at start (the demo's master playlist).
    pub announce: Option<String>,
}

fn header_value(name: &str, v: &str) -> Result<Vec<u8>, String> {
    if v.is_empty() || v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(format!(
            "--{name} must be a non-empty header value without control characters"
        ));
    }
    Ok(v.as_bytes().to_vec())
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Config, String> {
        let workers = match cli.workers {
            Some(0) => return Err("--workers must be at least 1".into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let listen = match (cli.listen, cli.tls_listen) {
            (Some(l), _) => Some(l),
            (None, Some(_)) => None,
            (None, None) => Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        };
        let viewer_ports: Vec<u16> = listen
            .iter()
            .chain(cli.tls_listen.iter())
            .map(SocketAddr::port)
            .filter(|&p| p != 0)
            .collect();
        if let Some(a) = cli.admin {
            if a.port() != 0 && viewer_ports.contains(&a.port()) {
                return Err(
                    "--admin must not share a viewers' port (--listen, --tls-listen)".into(),
                );
            }
        }
        if let Some(a) = cli.ingest {
            if a.port() != 0
                && (viewer_ports.contains(&a.port())
                    || cli.admin.is_some_and(|b| b.port() == a.port()))
            {
                return Err(
                    "--ingest must have its own port (not --listen, --tls-listen or --admin)"
                        .into(),
                );
            }
        }
        let tier = match &cli.origin {
            Some(list) => Some(crate::tier::Options {
                origins: crate::tier::origin::parse_list(list)?,
                cache_dir: cli.cache_dir.clone().unwrap_or_else(|| {
                    std::env::var_os("CACHE_DIRECTORY")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/var/cache/corestream"))
                }),
                max_bytes: cli.cache_max_bytes,
                max_connections: cli.origin_max_connections.max(1),
                timeout: cli.origin_timeout,
                stall_timeout: cli.origin_stall_timeout,
                negative_ttl: cli.negative_ttl,
                ca: cli.origin_ca.clone(),
            }),
            None => None,
        };
        let ingest = match cli.ingest {
            Some(addr) => {
                if let Some(p) = &cli.ingest_token_file {
                    crate::ingest::auth::read_token(p)?;
                }
                if cli.ingest_max_connections == 0 {
                    return Err("--ingest-max-connections must be at least 1".into());
                }
                Some(crate::ingest::Options {
                    addr,
                    token_file: cli.ingest_token_file.clone(),
                    allow: match &cli.ingest_allow {
                        Some(l) => crate::ingest::auth::parse_allow(l)?,
                        None => Vec::new(),
                    },
                    max_bytes: cli.ingest_max_bytes,
                    timeout: cli.ingest_timeout,
                    max_connections: cli.ingest_max_connections,
                })
            }
            None => None,
        };
        if let (Some(l), Some(t)) = (listen, cli.tls_listen) {
            if l.port() != 0 && l == t {
                return Err("--listen and --tls-listen must be different addresses".into());
            }
        }
        let tls = match cli.tls_listen {
            Some(_) => {
                if cli.tls_cert.is_none() && cli.tls_cert_dir.is_none() {
                    return Err("--tls-listen needs a certificate: --tls-cert PATH --tls-key PATH, or --tls-cert-dir DIR".into());
                }
                Some(crate::tls::Options {
                    sources: crate::tls::certs::Sources {
                        pair: cli.tls_cert.clone().zip(cli.tls_key.clone()),
                        dir: cli.tls_cert_dir.clone(),
                    },
                    session_cache: cli.tls_session_cache,
                })
            }
            None => {
                if cli.tls_cert.is_some() || cli.tls_cert_dir.is_some() {
                    return Err("--tls-cert/--tls-cert-dir given without --tls-listen: say where to serve HTTPS (e.g. --tls-listen 0.0.0.0:8443)".into());
                }
                None
            }
        };
        let hsts = match &cli.hsts {
            Some(v) => Some(header_value("hsts", v)?),
            None => None,
        };
        if cli.backlog < 1 {
            return Err("--backlog must be at least 1".into());
        }
        if cli.max_header_bytes < 256 {
            return Err("--max-header-bytes must be at least 256".into());
        }
        if cli.max_uri_bytes < 16 || cli.max_uri_bytes > cli.max_header_bytes {
            return Err("--max-uri-bytes must be between 16 and --max-header-bytes".into());
        }
        let origins: Vec<&str> = cli
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let cors = if origins.is_empty() || origins.contains(&"*") {
            Cors::Any
        } else {
            for o in &origins {
                header_value("cors-origins", o)?;
            }
            Cors::List(origins.iter().map(|o| o.as_bytes().to_vec()).collect())
        };
        Ok(Config {
            root: match (&cli.root, &tier) {
                (Some(r), _) => r.clone(),
                // Pulling only: an empty local root beside the cache.
                (None, Some(t)) if !cli.demo && !cli.demo_ll => t.cache_dir.join("local"),
                (None, _) => {
                    std::env::temp_dir().join(format!("corestream-demo-{}", std::process::id()))
                }
            },
            listen,
            tls_listen: cli.tls_listen,
            tls,
            hsts,
            workers,
            incoming_cpu: cli.incoming_cpu,
            backlog: cli.backlog,
            cors,
            cache_playlist: header_value("cache-playlist", &cli.cache_playlist)?,
            cache_segment: header_value("cache-segment", &cli.cache_segment)?,
            cache_other: header_value("cache-other", &cli.cache_other)?,
            cache_missing: header_value("cache-missing", &cli.cache_missing)?,
            limits: crate::http::Limits {
                max_header_bytes: cli.max_header_bytes,
                max_uri_bytes: cli.max_uri_bytes,
            },
            header_timeout: cli.header_timeout,
            keepalive_timeout: cli.keepalive_timeout,
            send_timeout: cli.send_timeout,
            drain_timeout: cli.drain_timeout,
            worker_max_connections: cli.max_connections.div_ceil(workers),
            worker_playlist_cache_bytes: usize::try_from(cli.playlist_cache_bytes / workers as u64)
                .unwrap_or(usize::MAX),
            admin: cli.admin,
            ingest,
            tier,
            access_log: cli.access_log.clone(),
            access_log_format: cli.access_log_format,
            cmsd_name: if cli.cmsd {
                Some(crate::qoe::cmsd::sf_string(
                    cli.cmsd_name.clone().unwrap_or_else(host_name).as_str(),
                )?)
            } else {
                None
            },
            qoe: crate::qoe::Limits {
                window_secs: cli.qoe_window.as_secs().max(1),
                max_sessions: cli.qoe_max_sessions.div_ceil(workers).max(1),
                max_streams: cli.qoe_max_streams.max(1),
            },
            announce: None,
            hidden_suffixes: cli
                .hidden_suffixes
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| x.as_bytes().to_vec())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_admin("9180"), Ok("127.0.0.1:9180".parse().unwrap()));
        assert!(parse_admin("localhost").is_err());
    }
}
