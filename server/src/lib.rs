//! Corestream edge server library: the event loop, HTTP path and live-stream helpers.
//!
//! Map: `config` (CLI), `worker` (event loop and response path), `http` (parsing,
//! conditionals, head writing), `range`, `path` (target to root-relative path), `mime`,
//! `fsys` (openat2, sendfile), `demo` (built-in live publisher).

pub mod accesslog;
pub mod admin;
pub mod cache;
pub mod config;
pub mod demo;
pub mod fixture;
pub mod fsys;
pub mod http;
pub mod live;
pub mod metrics;
pub mod mime;
pub mod path;
#[cfg(test)]
mod proptests;
pub mod range;
pub mod worker;

use config::Config;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Current (soft, hard) RLIMIT_NOFILE.
pub fn nofile_limit() -> (u64, u64) {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((0, 0))
}

/// Raise the soft fd limit to the hard one: every viewer costs a descriptor.
pub fn raise_nofile() -> (u64, u64) {
    use nix::sys::resource::{setrlimit, Resource};
    let (soft, hard) = nofile_limit();
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!("corestream: cannot raise the nofile soft limit {soft} to {hard}: {e}");
        }
    }
    nofile_limit()
}

/// Bind one SO_REUSEPORT listener. Every worker (and every other corestream process of the
/// same user) binds its own; the kernel spreads new connections across them.
pub fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into()).map_err(|e| {
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            io::Error::new(
                e.kind(),
                format!("{addr} is in use by a process that did not set SO_REUSEPORT or runs as another user ({e})"),
            )
        } else {
            io::Error::new(e.kind(), format!("bind {addr}: {e}"))
        }
    })?;
    s.listen(backlog)?;
    Ok(s.into())
}

fn somaxconn() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Start the workers and block until one fails.
pub fn serve(cfg: Config) -> Result<(), String> {
    let (soft, hard) = raise_nofile();
    let root = fsys::open_root(&cfg.root)
        .map_err(|e| format!("cannot open --root {}: {e}", cfg.root.display()))?;
    if !fsys::openat2_available(root.as_raw_fd()) {
        return Err("this kernel lacks openat2(2) (Linux 5.6+), which corestream needs to keep requests inside --root".into());
    }
    if let Some(max) = somaxconn() {
        if max < i64::from(cfg.backlog) {
            eprintln!(
                "corestream: warning: listen backlog {} is capped by net.core.somaxconn={max}; \
                 raise it with `sysctl -w net.core.somaxconn={}` (or `corestream-tune apply`)",
                cfg.backlog, cfg.backlog
            );
        }
    }
    let first = bind_listener(cfg.listen, cfg.backlog).map_err(|e| e.to_string())?;
    let addr = first.local_addr().map_err(|e| e.to_string())?;
    let mut listeners = vec![first];
    for _ in 1..cfg.workers {
        // Port 0 picks a port once; the other workers join that one.
        listeners.push(bind_listener(addr, cfg.backlog).map_err(|e| e.to_string())?);
    }
    let workers = cfg.workers;
    let backlog = cfg.backlog;
    let drain_timeout = cfg.drain_timeout;
    let admin_addr = cfg.admin;
    let announce = cfg.announce.clone();
    let root_display = cfg.root.display().to_string();
    let mut shared = worker::Shared::new(cfg, root);
    match live::Watcher::new(shared.root.clone()) {
        Ok(w) => {
            let w2 = w.clone();
            std::thread::Builder::new()
                .name("corestream-inotify".into())
                .spawn(move || w2.run())
                .map_err(|e| format!("cannot start inotify thread: {e}"))?;
            shared.watcher = Some(w);
        }
        Err(e) => eprintln!(
            "corestream: inotify unavailable ({e}): playlist changes are checked once a second instead"
        ),
    }
    let shared = Arc::new(shared);
    let mut handles = Vec::new();
    let mut wakers = Vec::new();
    for (id, l) in listeners.into_iter().enumerate() {
        let (w, waker) =
            worker::Worker::new(id, shared.clone(), mio::net::TcpListener::from_std(l))
                .map_err(|e| format!("worker {id}: {e}"))?;
        wakers.push(waker);
        let h = std::thread::Builder::new()
            .name(format!("corestream-w{id}"))
            .spawn(move || w.run().map_err(|e| format!("worker {id}: {e}")))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(h);
    }
    let admin = match admin_addr {
        Some(a) => Some(admin::start(a, shared.clone()).map_err(|e| e.to_string())?),
        None => None,
    };
    spawn_signal_thread(shared.clone(), wakers, drain_timeout)?;
    eprintln!(
        "corestream: serving {root_display} with {workers} workers, backlog {backlog}, nofile soft {soft} hard {hard}"
    );
    let mut stdout = io::stdout();
    if let Some(a) = admin {
        let _ = writeln!(stdout, "corestream: admin on http://{a}/metrics");
    }
    let _ = writeln!(stdout, "corestream: listening on http://{addr}/");
    if let Some(path) = &announce {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        let _ = writeln!(
            stdout,
            "corestream: live demo stream at http://{host}:{}/{path}",
            addr.port()
        );
    }
    let _ = stdout.flush();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    eprintln!("corestream: drained, exiting");
    Ok(())
}

/// SIGTERM/SIGINT: first one drains (workers stop accepting, finish what is in flight,
/// exit), a second one exits at once. SIGHUP reopens the access log.
fn spawn_signal_thread(
    shared: Arc<worker::Shared>,
    wakers: Vec<Arc<mio::Waker>>,
    drain_timeout: std::time::Duration,
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("corestream-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    shared.log_generation.fetch_add(1, Ordering::Relaxed);
                    for w in &wakers {
                        let _ = w.wake();
                    }
                    continue;
                }
                if shared.draining.swap(true, Ordering::Relaxed) {
                    eprintln!("corestream: second signal, exiting now");
                    std::process::exit(1);
                }
                eprintln!(
                    "corestream: draining: no new connections, finishing responses in flight (up to {} s)",
                    drain_timeout.as_secs_f64()
                );
                for w in &wakers {
                    let _ = w.wake();
                }
                std::thread::spawn(move || {
                    std::thread::sleep(drain_timeout);
                    eprintln!("corestream: drain timeout reached, exiting with connections still open");
                    std::process::exit(0);
                });
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    Ok(())
}
