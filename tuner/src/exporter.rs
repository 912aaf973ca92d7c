//! The `/metrics` endpoint of `watch --prometheus ADDR:PORT` and the `--textfile DIR` writer.
//!
//! A scrape gets the text of the last finished interval (a scrape never waits for the next
//! sample). One small blocking HTTP/1.1 responder on its own thread is enough: Prometheus
//! scrapes every 15-60 s, one connection at a time per target.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Prometheus text format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Exporter {
    latest: Arc<Mutex<String>>,
    pub addr: SocketAddr,
}

impl Exporter {
    /// Bind `addr` (port 0 picks one; [`Exporter::addr`] says which) and answer scrapes.
    pub fn serve(addr: SocketAddr) -> anyhow::Result<Exporter> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} for --prometheus: {e} (pick a free port, e.g. 127.0.0.1:9187)")
        })?;
        let addr = listener.local_addr()?;
        let latest = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&latest);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    // One bad client must not stop the exporter: errors end that connection.
                    let _ = answer(conn, &shared);
                }
            })?;
        Ok(Exporter { latest, addr })
    }

    pub fn publish(&self, text: String) {
        // A panicking scrape thread cannot leave the text half-written: take it anyway.
        let mut g = corestream_common::sync::lock(&self.latest);
        *g = text;
    }
}

fn answer(conn: TcpStream, latest: &Mutex<String>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Headers end at an empty line; their content does not matter here.
    let mut line = String::new();
    let mut read = request.len();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        read += n;
        if n == 0 || line == "\r\n" || line == "\n" || read > 16 * 1024 {
            break;
        }
    }
    let mut w = conn;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match (request.split_whitespace().next(), path) {
        (Some("GET"), "/metrics") => {
            let text = corestream_common::sync::lock(latest).clone();
            ("200 OK", CONTENT_TYPE, text)
        }
        (Some("GET"), _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "corestream-tune serves /metrics only\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_string(),
        ),
    };
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// Write `text` as `dir/corestream_tune.prom` atomically (a temp file renamed over it), so the
/// textfile collector never reads half a file.
pub fn write_textfile(dir: &Path, text: &str) -> anyhow::Result<()> {
    let path = dir.join(crate::metrics::TEXTFILE);
    let tmp = dir.join(format!(
        ".{}.{}",
        crate::metrics::TEXTFILE,
        std::process::id()
    ));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot write {} for --textfile: {e} (give node_exporter's --collector.textfile.directory, writable by this user)",
                path.display()
            )
        })
}
