//! The admin plane: `/metrics` (Prometheus text format) and `/healthz` on their own
//! listener, loopback by default, never on the viewers' port (`mod.rs`), what it reports
//! (`metrics`), and the access log (`accesslog`). Plain blocking threads, one per connection
//! up to `MAX_CONNECTIONS`: it serves a scraper and a health probe every few seconds, not
//! viewers, so it stays out of the event loops; and a connection that sends nothing must
//! not make a liveness probe (Kubernetes gives it 1 s by default) wait its turn.

pub mod accesslog;
pub mod metrics;

use crate::http::date::DateCache;
use crate::http::head;
use crate::http::response::{CacheControl, Fields};
use crate::http::{Body, Response, Status};
use crate::shared::Shared;
use corestream_common::sync::Slots;
use metrics::ProcessFacts;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Admin connections served at once; past it a new one is closed at once. Each holds a
/// thread for at most `REQUEST_TIME` reading and as long again writing.
const MAX_CONNECTIONS: usize = 32;
/// Time for a whole request head, however it is spread out: a client sending a byte now and
/// then is cut off like an idle one.
const REQUEST_TIME: Duration = Duration::from_secs(5);

pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin listener {addr}: {e}")))?;
    let local = listener.local_addr()?;
    // A descriptor held in reserve: when the process is out of fds (exactly when an SRE
    // wants /metrics), give it up to accept the scrape, then take it back.
    let mut spare = std::fs::File::open("/dev/null").ok();
    let slots = Slots::new(MAX_CONNECTIONS);
    std::thread::Builder::new()
        .name("corestream-admin".into())
        .spawn(move || loop {
            let serve = |s| dispatch(s, &shared, &slots);
            match listener.accept() {
                Ok((s, _)) => serve(s),
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                        && spare.is_some() =>
                {
                    spare = None;
                    match listener.accept() {
                        Ok((s, _)) => serve(s),
                        // Still no descriptor (ENFILE, or a worker took the one we freed):
                        // back off like any other error instead of spinning on a
                        // listener that stays readable.
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
                Err(e) => {
                    say!("corestream: admin accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if spare.is_none() {
                spare = std::fs::File::open("/dev/null").ok();
            }
        })?;
    Ok(local)
}

/// Serve `s` on a thread of its own, or close it when `MAX_CONNECTIONS` are being served
/// (or no thread can be made).
fn dispatch(s: TcpStream, shared: &Arc<Shared>, slots: &Slots) {
    let Some(slot) = slots.take() else {
        return;
    };
    let shared = Arc::clone(shared);
    let _ = std::thread::Builder::new()
        .name("corestream-admin-conn".into())
        .spawn(move || {
            let _slot = slot;
            serve_one(s, &shared);
        });
}

/// One admin connection. A panic in it (crate::fault) ends that connection, not the admin
/// plane: /metrics must outlive whatever bug one scrape reached.
fn serve_one(s: TcpStream, shared: &Shared) {
    let _ = crate::fault::contain(|| handle(s, shared));
}

fn handle(mut s: TcpStream, shared: &Shared) {
    let _ = s.set_write_timeout(Some(REQUEST_TIME));
    let deadline = Instant::now() + REQUEST_TIME;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let path = loop {
        if corestream_common::deadline::arm(&s, deadline).is_err() {
            return;
        }
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
                        shared,
                        Status::MethodNotAllowed,
                        TEXT,
                        Body::Static(b"use GET\n"),
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
                    shared,
                    Status::BadRequest,
                    TEXT,
                    Body::Static(b"bad request\n"),
                    false,
                );
                return;
            }
        }
    };
    crate::fault::injected("CORESTREAM_DEBUG_PANIC_ADMIN", path.as_bytes());
    let head_only = buf.starts_with(b"HEAD");
    let draining = shared.draining.load(Ordering::Relaxed);
    let (status, ctype, body) = match path.as_str() {
        "/metrics" => {
            let mut facts = ProcessFacts::read();
            facts.draining = draining;
            facts.max_connections = (shared.cfg.worker_max_connections * shared.cfg.workers) as u64;
            let qoe = shared.qoe.snapshot(unix_now());
            let ingest = shared.cfg.ingest.is_some().then_some(&shared.ingest);
            let mut text =
                metrics::render(&shared.stats, &facts, shared.tls.as_deref(), &qoe, ingest);
            if let Some(t) = &shared.tier {
                let mut o = metrics::Exposition::new();
                t.render(&mut o);
                text.push_str(&o.finish());
            }
            (Status::Ok, PROMETHEUS, Body::Bytes(text.into()))
        }
        "/streams" => {
            let qoe = shared.qoe.snapshot(unix_now());
            let doc = qoe.to_json(shared.cfg.qoe.window_secs);
            (Status::Ok, JSON, Body::Bytes(doc.into()))
        }
        "/healthz" if draining => (
            Status::ServiceUnavailable,
            TEXT,
            Body::Static(b"draining\n"),
        ),
        "/healthz" => (Status::Ok, TEXT, Body::Static(b"ok\n")),
        _ => (
            Status::NotFound,
            TEXT,
            Body::Static(b"try /metrics, /streams or /healthz\n"),
        ),
    };
    reply(&mut s, shared, status, ctype, body, head_only);
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// The clock the workers stamp viewers with (the Date header's).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answer through the same head encoder as viewers get (without CORS: not for browsers),
/// and close.
fn reply(
    s: &mut TcpStream,
    shared: &Shared,
    status: Status,
    ctype: &'static str,
    body: Body,
    head_only: bool,
) {
    let resp = Response {
        status,
        fields: Fields {
            content_type: Some(ctype),
            content_length: Some(body.len()),
            cache_control: Some(CacheControl::NoStore),
            close: true,
            minor: 1,
            ..Fields::default()
        },
        body,
    };
    let date = DateCache::default();
    let env = head::Env::new(&date, &shared.cfg);
    let mut out = Vec::with_capacity(256);
    head::encode(&resp, &env, &mut out);
    if !head_only {
        match &resp.body {
            Body::Static(b) => out.extend_from_slice(b),
            Body::Bytes(b) => out.extend_from_slice(b),
            Body::Empty | Body::File(_) | Body::Growing(_) => {}
        }
    }
    let _ = s.write_all(&out);
}
