//! `herd`: a thundering herd on an edge (issue 15). N viewers, connected beforehand, ask for
//! the same new segment within a few milliseconds; the segment comes from an origin that
//! produces it in real time (its head after --origin-delay, its bytes over
//! --origin-duration, like a packager's live output). Measured per round: the time until
//! every viewer has the whole segment (and the median), the requests the origin got, and
//! then the hit throughput of the same viewers asking again. corestream (`--origin`) and
//! nginx (`proxy_cache` with `proxy_cache_lock on`) take turns, same origin, same run.

use crate::child;
use corestream_common::sync::lock;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Options {
    pub viewers: usize,
    pub rounds: usize,
    pub segment_bytes: usize,
    pub origin_delay: Duration,
    pub origin_duration: Duration,
    pub corestream_bin: PathBuf,
    pub out: Option<PathBuf>,
    /// Client threads reading the viewers' sockets.
    pub client_threads: usize,
}

/// What the origin saw and did, by path: requests, and when it first sent body bytes.
#[derive(Default)]
struct Seen {
    requests: HashMap<String, u32>,
    first_sent: HashMap<String, Instant>,
}

/// The origin: counts requests per path; answers every path with `size` bytes, produced over
/// `duration` in 20 slices after `delay`.
fn origin(size: usize, delay: Duration, duration: Duration) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = l.local_addr().expect("origin address");
    let counts: Arc<Mutex<Seen>> = Arc::default();
    let c2 = counts.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let counts = c2.clone();
            std::thread::spawn(move || serve_origin(s, &counts, size, delay, duration));
        }
    });
    (addr, counts)
}

fn serve_origin(
    mut s: std::net::TcpStream,
    counts: &Mutex<Seen>,
    size: usize,
    delay: Duration,
    duration: Duration,
) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        *lock(counts).requests.entry(path.clone()).or_default() += 1;
        std::thread::sleep(delay);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {size}\r\nCache-Control: max-age=60\r\n\r\n"
        );
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let slices = 20;
        let body = vec![b'x'; size];
        for i in 0..slices {
            let part = &body[i * size / slices..(i + 1) * size / slices];
            if s.write_all(part).is_err() {
                return;
            }
            if i == 0 {
                lock(counts)
                    .first_sent
                    .entry(path.clone())
                    .or_insert_with(Instant::now);
            }
            std::thread::sleep(duration / slices as u32);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18999)
}

fn wait_listening(port: u16) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on port {port}"))
}

fn start_corestream(bin: &Path, origin: SocketAddr, dir: &Path) -> Result<(Child, u16), String> {
    let port = free_port();
    let mut cmd = Command::new(bin);
    child::die_with_parent(&mut cmd);
    let c = cmd
        .args(["--origin", &format!("http://{origin}")])
        .args(["--cache-dir", &dir.join("cs-cache").display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_listening(port)?;
    Ok((c, port))
}

fn start_nginx(origin: SocketAddr, dir: &Path) -> Result<(Child, u16), String> {
    let port = free_port();
    let conf = dir.join("nginx-herd.conf");
    let cache = dir.join("nginx-cache");
    let _ = std::fs::create_dir_all(&cache);
    let text = format!(
        "daemon off; worker_processes 2; worker_rlimit_nofile 20000; pid {d}/nginx-herd.pid;\n\
         error_log {d}/nginx-herd.err;\n\
         events {{ worker_connections 19000; multi_accept on; }}\n\
         http {{ access_log off; sendfile on; tcp_nopush on;\n\
           proxy_cache_path {c} levels=1:2 keys_zone=edge:10m max_size=2g inactive=10m;\n\
           upstream origin {{ server {origin}; keepalive 32; }}\n\
           server {{ listen 127.0.0.1:{port} reuseport; keepalive_requests 100000;\n\
             location / {{ proxy_pass http://origin; proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\"; proxy_cache edge; proxy_cache_lock on;\n\
               proxy_cache_lock_timeout 30s; proxy_cache_lock_age 30s;\n\
               proxy_cache_valid 200 60s; }} }} }}\n",
        d = dir.display(),
        c = cache.display(),
    );
    std::fs::write(&conf, text).map_err(|e| format!("nginx config: {e}"))?;
    let mut cmd = Command::new("nginx");
    child::die_with_parent(&mut cmd);
    let c = cmd
        .args([
            "-c",
            &conf.display().to_string(),
            "-p",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx (apt-get install nginx-light): {e}"))?;
    wait_listening(port)?;
    Ok((c, port))
}

/// Viewers read by one client thread: their sockets and the poll they are registered with.
struct Group {
    poll: Poll,
    conns: Vec<Conn>,
}

/// What one herd measured: the time until all have it and the median completion, both from
/// the start; and when each viewer got its first body byte.
struct Outcome {
    all: Duration,
    median: Duration,
    first_bytes: Vec<Instant>,
}

/// One herd: every connection asks for `path` at once (each client thread sends its share,
/// then reads).
/// Several client threads, so that the harness reading 5000 responses is not what is
/// measured (one thread alone is busier than the edge during a herd).
fn herd(groups: &mut [Group], path: &str, size: usize) -> Result<Outcome, String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n");
    let t0 = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter_mut()
            .map(|g| s.spawn(|| herd_group(g, t0, req.as_bytes(), size)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let mut done = Vec::new();
    for r in results {
        done.extend(r?);
    }
    if done.is_empty() {
        return Err("no viewers".into());
    }
    done.sort();
    let first_bytes = groups
        .iter()
        .flat_map(|g| g.conns.iter().filter_map(|c| c.first_body))
        .collect();
    Ok(Outcome {
        all: done[done.len() - 1],
        median: done[done.len() / 2],
        first_bytes,
    })
}

/// One client thread's share of a herd: completion times from `t0`.
fn herd_group(
    g: &mut Group,
    t0: Instant,
    req: &[u8],
    size: usize,
) -> Result<Vec<Duration>, String> {
    let conns = &mut g.conns;
    for c in conns.iter_mut() {
        c.reset();
        c.sock.write_all(req).map_err(|e| format!("send: {e}"))?;
    }
    let sent = t0.elapsed();
    let mut done: Vec<Duration> = Vec::with_capacity(conns.len());
    let mut events = Events::with_capacity(4096);
    let mut buf = vec![0u8; 256 * 1024];
    // Edge-triggered: read each ready socket until it would block.
    let mut ready: Vec<usize> = (0..conns.len()).collect();
    while done.len() < conns.len() {
        for &k in &ready {
            let c = &mut conns[k];
            while !c.complete {
                match c.sock.read(&mut buf) {
                    Ok(0) => return Err("an edge closed a viewer connection mid-response".into()),
                    Ok(n) => {
                        if c.feed(&buf[..n], size)? {
                            done.push(t0.elapsed());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "only {} of {} viewers complete after 60 s",
                done.len(),
                conns.len()
            ));
        }
        g.poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| format!("poll: {e}"))?;
        ready = events.iter().map(|e| e.token().0).collect();
    }
    if sent > Duration::from_millis(50) {
        corestream_common::say!("herd: note: sending {} requests took {sent:?}", conns.len());
    }
    Ok(done)
}

struct Conn {
    sock: TcpStream,
    head: Vec<u8>,
    body_left: Option<usize>,
    complete: bool,
    /// When the first byte of the body arrived.
    first_body: Option<Instant>,
}

impl Conn {
    fn reset(&mut self) {
        self.head.clear();
        self.body_left = None;
        self.complete = false;
        self.first_body = None;
    }

    /// Take response bytes; true when the response just completed.
    fn feed(&mut self, d: &[u8], size: usize) -> Result<bool, String> {
        match self.body_left.as_mut() {
            Some(left) => *left = left.saturating_sub(d.len()),
            None => {
                self.head.extend_from_slice(d);
                let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return Ok(false);
                };
                let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(format!(
                        "edge answered: {}",
                        head.lines().next().unwrap_or("")
                    ));
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("the edge's answer has no Content-Length")?;
                if len != size {
                    return Err(format!("edge sent {len} bytes, the segment has {size}"));
                }
                let got = self.head.len() - end - 4;
                self.body_left = Some(len.saturating_sub(got));
            }
        }
        if self.first_body.is_none() && self.body_left.is_some_and(|left| left < size) {
            self.first_body = Some(Instant::now());
        }
        if self.body_left == Some(0) && !self.complete {
            self.complete = true;
            return Ok(true);
        }
        Ok(false)
    }
}

fn connect_all(port: u16, n: usize, threads: usize) -> Result<Vec<Group>, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let threads = threads.clamp(1, n.max(1));
    let mut groups = Vec::with_capacity(threads);
    for _ in 0..threads {
        groups.push(Group {
            poll: Poll::new().map_err(|e| e.to_string())?,
            conns: Vec::with_capacity(n / threads + 1),
        });
    }
    for i in 0..n {
        let std = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
        std.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = std.set_nodelay(true);
        let mut sock = TcpStream::from_std(std);
        let g = &mut groups[i % threads];
        g.poll
            .registry()
            .register(&mut sock, Token(g.conns.len()), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        g.conns.push(Conn {
            sock,
            head: Vec::new(),
            body_left: None,
            complete: false,
            first_body: None,
        });
    }
    Ok(groups)
}

pub fn run(o: &Options) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("corestream-herd-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (oaddr, counts) = origin(o.segment_bytes, o.origin_delay, o.origin_duration);
    let mut lines = vec![
        format!(
            "{} viewers ({} client threads), segment {} B produced by the origin in {:?} after {:?}; {} rounds, servers alternated",
            o.viewers, o.client_threads, o.segment_bytes, o.origin_duration, o.origin_delay, o.rounds
        ),
        format!(
            "{:<11} {:>5} {:>14} {:>14} {:>16} {:>22} {:>14}",
            "server",
            "round",
            "all have it",
            "median",
            "origin requests",
            "1st byte p50/max (ms)",
            "hits MB/s"
        ),
    ];
    println!("{}\n{}", lines[0], lines[1]);
    let mut seq = 0;
    for round in 0..o.rounds {
        for server in ["corestream", "nginx"] {
            let (mut proc_, port) = if server == "corestream" {
                start_corestream(&o.corestream_bin, oaddr, &dir)?
            } else {
                start_nginx(oaddr, &dir)?
            };
            let mut groups = connect_all(port, o.viewers, o.client_threads)?;
            std::thread::sleep(Duration::from_millis(300));
            seq += 1;
            let path = format!("/live/seg{seq}.ts");
            let result = herd(&mut groups, &path, o.segment_bytes);
            let hits = result.as_ref().ok().map(|_| {
                let t = Instant::now();
                herd(&mut groups, &path, o.segment_bytes)
                    .map(|_| (o.viewers * o.segment_bytes) as f64 / t.elapsed().as_secs_f64() / 1e6)
            });
            drop(groups);
            child::terminate(proc_.id());
            let _ = proc_.wait();
            let outcome = result?;
            let mbs = hits.transpose()?.unwrap_or(0.0);
            let (upstream, sent) = {
                let c = lock(&counts);
                (
                    c.requests.get(&path).copied().unwrap_or(0),
                    c.first_sent.get(&path).copied(),
                )
            };
            // Read-while-write: from the origin's first body bytes to each viewer's.
            let mut firsts: Vec<f64> = outcome
                .first_bytes
                .iter()
                .map(|t| sent.map_or(0.0, |s| t.saturating_duration_since(s).as_secs_f64() * 1e3))
                .collect();
            firsts.sort_by(f64::total_cmp);
            let first = match (firsts.get(firsts.len() / 2), firsts.last()) {
                (Some(p50), Some(max)) => format!("{p50:.1} / {max:.1}"),
                _ => "-".into(),
            };
            let line = format!(
                "{:<11} {:>5} {:>12.0}ms {:>12.0}ms {:>16} {:>22} {:>14.0}",
                server,
                round + 1,
                outcome.all.as_secs_f64() * 1e3,
                outcome.median.as_secs_f64() * 1e3,
                upstream,
                first,
                mbs
            );
            println!("{line}");
            lines.push(line);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(out) = &o.out {
        std::fs::write(out, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}
