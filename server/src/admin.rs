//! The admin plane: `/metrics` (Prometheus text format) and `/healthz` on their own
//! listener, loopback by default, never on the viewers' port. A plain blocking thread: it
//! serves a scraper every few seconds, not viewers, so it stays out of the event loops.

use crate::metrics::{self, ProcessFacts};
use crate::worker::Shared;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin listener {addr}: {e}")))?;
    let local = listener.local_addr()?;
    // A descriptor held in reserve: when the process is out of fds (exactly when an SRE
    // wants /metrics), give it up to accept the scrape, then take it back.
    let mut spare = std::fs::File::open("/dev/null").ok();
    std::thread::Builder::new()
        .name("corestream-admin".into())
        .spawn(move || loop {
            match listener.accept() {
                Ok((s, _)) => handle(s, &shared),
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                        && spare.is_some() =>
                {
                    spare = None;
                    match listener.accept() {
                        Ok((s, _)) => handle(s, &shared),
                        // Still no descriptor (ENFILE, or a worker took the one we freed):
                        // back off like any other error instead of spinning on a
                        // listener that stays readable.
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
                Err(e) => {
                    eprintln!("corestream: admin accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if spare.is_none() {
                spare = std::fs::File::open("/dev/null").ok();
            }
        })?;
    Ok(local)
}

fn handle(mut s: TcpStream, shared: &Shared) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let path = loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                if method != "GET" && method != "HEAD" {
                    reply(
                        &mut s,
                        "405 Method Not Allowed",
                        "text/plain",
                        "use GET\n",
                        false,
                    );
                    return;
                }
                break req
                    .path
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_string();
            }
            Ok(httparse::Status::Partial) if buf.len() < 8192 => continue,
            _ => {
                reply(
                    &mut s,
                    "400 Bad Request",
                    "text/plain",
                    "bad request\n",
                    false,
                );
                return;
            }
        }
    };
    let head_only = buf.starts_with(b"HEAD");
    let draining = shared.draining.load(Ordering::Relaxed);
    match path.as_str() {
        "/metrics" => {
            let mut facts = ProcessFacts::read();
            facts.draining = draining;
            let body = metrics::render(&shared.stats, &facts);
            reply(
                &mut s,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                head_only,
            );
        }
        "/healthz" if draining => reply(
            &mut s,
            "503 Service Unavailable",
            "text/plain",
            "draining\n",
            head_only,
        ),
        "/healthz" => reply(&mut s, "200 OK", "text/plain", "ok\n", head_only),
        _ => reply(
            &mut s,
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n",
            head_only,
        ),
    }
}

fn reply(s: &mut TcpStream, status: &str, ctype: &str, body: &str, head_only: bool) {
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: corestream\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    if !head_only {
        let _ = s.write_all(body.as_bytes());
    }
}
