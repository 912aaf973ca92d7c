//! The `/metrics` endpoint of `watch --prometheus ADDR:PORT` and the `--textfile DIR` writer.
//!
//! A scrape gets the text of the last finished interval (a scrape never waits for the next
//! sample). A small blocking HTTP/1.1 responder, a thread per connection (up to
//! `MAX_CONNECTIONS`), is enough: Prometheus scrapes every 15-60 s. Not one thread for all:
//! a connection that sends nothing (a port scanner, a balancer's TCP check) would hold every
//! scrape behind it until its timeout, longer than Prometheus waits.

use corestream_common::sync::Slots;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections answered at once; past it a new one is closed at once.
const MAX_CONNECTIONS: usize = 16;
/// Time for a whole request head, however it is spread out (a client sending a byte now and
/// then is cut off like an idle one), and for writing the answer.
const REQUEST_TIME: Duration = Duration::from_secs(5);

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
                let slots = Slots::new(MAX_CONNECTIONS);
                for conn in listener.incoming().flatten() {
                    let Some(slot) = slots.take() else {
                        continue;
                    };
                    let shared = Arc::clone(&shared);
                    // One bad client must not stop the exporter: errors end that connection.
                    let _ = std::thread::Builder::new()
                        .name("metrics-conn".into())
                        .spawn(move || {
                            let _slot = slot;
                            let _ = answer(conn, &shared);
                        });
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

/// The request head: bytes up to the empty line that ends it (or 16 KiB, or the client's
/// end), read by `deadline` however the client spreads them out.
fn read_head(conn: &mut TcpStream, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let ended =
            head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n");
        if ended || head.len() > 16 * 1024 {
            return Ok(head);
        }
        corestream_common::deadline::arm(conn, deadline)?;
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

fn answer(mut conn: TcpStream, latest: &Mutex<String>) -> std::io::Result<()> {
    conn.set_write_timeout(Some(REQUEST_TIME))?;
    // Headers end at an empty line; their content does not matter here.
    let head = read_head(&mut conn, Instant::now() + REQUEST_TIME)?;
    let head = String::from_utf8_lossy(&head);
    let request = head.lines().next().unwrap_or("");
    // A scrape config's `params:` come as a query string: the path is what precedes it.
    let target = request.split_whitespace().nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
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
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
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
