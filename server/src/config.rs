//! Command line and the configuration every worker reads.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "corestream",
    version,
    about = "Corestream edge server: serves live HLS/DASH playlists and segments to many viewers",
    long_about = None
)]
pub struct Cli {
    /// Directory of media to serve (playlists, segments). Nothing outside it is ever served.
    #[arg(long, env = "CORESTREAM_ROOT", value_name = "DIR")]
    pub root: PathBuf,

    /// Address and port for viewers. Several corestream processes may listen on the same one
    /// (SO_REUSEPORT).
    #[arg(
        long,
        env = "CORESTREAM_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,

    /// Worker threads, each with its own event loop and listening socket [default: online CPUs].
    #[arg(long, env = "CORESTREAM_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

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

    /// Cache-Control for playlists and manifests (.m3u8, .mpd).
    #[arg(
        long,
        env = "CORESTREAM_CACHE_PLAYLIST",
        default_value = "max-age=1",
        value_name = "VALUE"
    )]
    pub cache_playlist: String,

    /// Cache-Control for media segments, init segments, keys and subtitles.
    #[arg(
        long,
        env = "CORESTREAM_CACHE_SEGMENT",
        default_value = "max-age=1209600",
        value_name = "VALUE"
    )]
    pub cache_segment: String,

    /// Cache-Control for other files (pages, scripts, JSON).
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
    pub listen: SocketAddr,
    pub workers: usize,
    pub backlog: i32,
    pub cors: Cors,
    pub cache_playlist: Vec<u8>,
    pub cache_segment: Vec<u8>,
    pub cache_other: Vec<u8>,
    pub cache_missing: Vec<u8>,
    pub limits: crate::http::Limits,
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
            root: cli.root.clone(),
            listen: cli.listen,
            workers,
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
        })
    }
}
