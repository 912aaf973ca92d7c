//! Process start: open the root, bind a listener per worker, start the workers, the admin
//! plane, the ingest plane, the inotify watcher and the signal thread, then wait for the workers to finish.

use crate::admin;
use crate::config::Config;
use crate::live::watcher::Watcher;
use crate::net::worker::{Listener, Worker};
use crate::net::{fsys, listen};
use crate::shared::{self, Shared};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Start the workers and block until one fails.
pub fn serve(cfg: Config) -> Result<(), String> {
    let (soft, hard) = shared::raise_nofile();
    let cache = match &cfg.tier {
        Some(t) => {
            let fd = crate::tier::open_cache(&t.cache_dir)?;
            if cfg.root == t.cache_dir.join("local") {
                std::fs::create_dir_all(&cfg.root)
                    .map_err(|e| format!("cannot create {}: {e}", cfg.root.display()))?;
            }
            Some(fd)
        }
        None => None,
    };
    let root = fsys::open_root(&cfg.root)
        .map_err(|e| format!("cannot open --root {}: {e}", cfg.root.display()))?;
    if !fsys::openat2_available(root.as_raw_fd()) {
        return Err("this kernel lacks openat2(2) (Linux 5.6+), which corestream needs to keep requests inside --root".into());
    }
    if let Some(max) = listen::somaxconn() {
        if max < i64::from(cfg.backlog) {
            say!(
                "corestream: warning: listen backlog {} is capped by net.core.somaxconn={max}; \
                 raise it with `sysctl -w net.core.somaxconn={}` (or `corestream-tune apply`)",
                cfg.backlog,
                cfg.backlog
            );
        }
    }
    let tls = match &cfg.tls {
        Some(opts) => {
            let t = Arc::new(crate::tls::build(opts)?);
            say!("corestream: {}", crate::tls::ktls_status());
            Some(t)
        }
        None => None,
    };
    // One listener per worker and address; port 0 picks a port once and the other workers
    // join that one.
    let plain = bind_all(cfg.listen, cfg.workers, cfg.backlog)?;
    let secure = bind_all(cfg.tls_listen, cfg.workers, cfg.backlog)?;
    let plain_addr = plain.first().and_then(|l| l.local_addr().ok());
    let tls_addr = secure.first().and_then(|l| l.local_addr().ok());
    if cfg.incoming_cpu {
        steer_by_cpu(&plain, &secure, cfg.workers)?;
    }
    let mut per_worker: Vec<Vec<Listener>> = (0..cfg.workers).map(|_| Vec::new()).collect();
    for (i, l) in plain.into_iter().enumerate() {
        per_worker[i].push(Listener::new(mio::net::TcpListener::from_std(l), None));
    }
    for (i, l) in secure.into_iter().enumerate() {
        per_worker[i].push(Listener::new(
            mio::net::TcpListener::from_std(l),
            tls.clone(),
        ));
    }
    let workers = cfg.workers;
    let backlog = cfg.backlog;
    let drain_timeout = cfg.drain_timeout;
    let admin_addr = cfg.admin;
    let announce = cfg.announce.clone();
    let root_display = cfg.root.display().to_string();
    let mut shared = Shared::new(cfg, root);
    shared.tls = tls.clone();
    if let (Some(opts), Some(fd)) = (shared.cfg.tier.clone(), cache) {
        shared.tier = Some(Arc::new(crate::tier::Tier::new(opts, fd)?));
    }
    match Watcher::new(shared.root.clone(), shared.inboxes.clone()) {
        Ok(w) => {
            let w2 = w.clone();
            std::thread::Builder::new()
                .name("corestream-inotify".into())
                .spawn(move || w2.run())
                .map_err(|e| format!("cannot start inotify thread: {e}"))?;
            shared.watcher = Some(w);
        }
        Err(e) => say!(
            "corestream: inotify unavailable ({e}): playlist changes are checked once a second instead"
        ),
    }
    let shared = Arc::new(shared);
    let mut handles = Vec::new();
    let mut wakers = Vec::new();
    for (id, ls) in per_worker.into_iter().enumerate() {
        let (w, waker) =
            Worker::new(id, shared.clone(), ls).map_err(|e| format!("worker {id}: {e}"))?;
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
    if let Some(t) = &shared.tier {
        crate::tier::fetch::start(t.clone(), shared.clone())
            .map_err(|e| format!("cannot start origin fetchers: {e}"))?;
    }
    let ingest = match shared.cfg.ingest.clone() {
        Some(opts) => Some(crate::ingest::start(shared.clone(), opts).map_err(|e| e.to_string())?),
        None => None,
    };
    if let Some(t) = &tls {
        spawn_cert_watcher(t.clone())?;
    }
    spawn_signal_thread(shared.clone(), wakers, drain_timeout)?;
    say!(
        "corestream: serving {root_display} with {workers} workers, backlog {backlog}, nofile soft {soft} hard {hard}"
    );
    let mut stdout = io::stdout();
    if let Some(a) = admin {
        let _ = writeln!(stdout, "corestream: admin on http://{a}/metrics");
    }
    if let Some(t) = &shared.tier {
        let list: Vec<String> = t.origins().iter().map(|o| format!("{o:?}")).collect();
        let _ = writeln!(stdout, "corestream: pulling from {}", list.join(", "));
    }
    if let Some(a) = ingest {
        let _ = writeln!(stdout, "corestream: ingest on http://{a}/ (PUT, DELETE)");
    }
    if let Some(a) = tls_addr {
        let _ = writeln!(stdout, "corestream: listening on https://{a}/");
    }
    if let Some(a) = plain_addr {
        let _ = writeln!(stdout, "corestream: listening on http://{a}/");
    }
    let demo = plain_addr
        .map(|a| ("http", a))
        .or(tls_addr.map(|a| ("https", a)));
    if let (Some(path), Some((scheme, addr))) = (&announce, demo) {
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
            "corestream: live demo stream at {scheme}://{host}:{}/{path}",
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
    say!("corestream: drained, exiting");
    Ok(())
}

/// `--incoming-cpu`: worker i's listeners (the i-th of `plain` and of `secure`) take the
/// connections whose SYN the kernel handles on the i-th allowed CPU (Linux 6.1 and later
/// prefer such a listener within a SO_REUSEPORT group, and pick by hash when none matches).
/// The threads are not pinned: the scheduler's wake-affinity brings a worker to where its
/// connections' packets are handled.
fn steer_by_cpu(
    plain: &[std::net::TcpListener],
    secure: &[std::net::TcpListener],
    workers: usize,
) -> Result<(), String> {
    let cpus = corestream_common::cpus::allowed();
    if cpus.is_empty() {
        return Err("--incoming-cpu: cannot read this process's CPU affinity".into());
    }
    for set in [plain, secure] {
        for (i, l) in set.iter().enumerate() {
            let cpu = cpus[i % cpus.len()];
            socket2::SockRef::from(l)
                .set_cpu_affinity(cpu)
                .map_err(|e| {
                    format!("--incoming-cpu: SO_INCOMING_CPU {cpu} on worker {i}'s listener: {e}")
                })?;
        }
    }
    if workers < cpus.len() {
        say!(
            "corestream: --incoming-cpu: {workers} worker(s) for {} CPUs: connections arriving on the other CPUs are spread by hash",
            cpus.len()
        );
    }
    Ok(())
}

/// `workers` SO_REUSEPORT listeners on `addr` (none when there is no address).
fn bind_all(
    addr: Option<std::net::SocketAddr>,
    workers: usize,
    backlog: i32,
) -> Result<Vec<std::net::TcpListener>, String> {
    let Some(addr) = addr else {
        return Ok(Vec::new());
    };
    let first = listen::bind(addr, backlog).map_err(|e| e.to_string())?;
    let bound = first.local_addr().map_err(|e| e.to_string())?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(listen::bind(bound, backlog).map_err(|e| e.to_string())?);
    }
    Ok(all)
}

/// How often certificate files are checked for a renewal.
const CERT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reload certificates when their files change (certbot renew, a deploy), without waiting
/// for a SIGHUP.
fn spawn_cert_watcher(tls: Arc<crate::tls::TlsShared>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("corestream-certs".into())
        .spawn(move || loop {
            std::thread::sleep(CERT_POLL);
            if tls.certs.changed_on_disk() {
                let _ = tls.certs.reload();
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start certificate watcher: {e}"))
}

/// SIGTERM/SIGINT: the first one drains (workers stop accepting, finish what is in flight
/// within --drain-timeout, then return, and the process exits); a second one exits at once.
/// SIGHUP reopens the access log.
fn spawn_signal_thread(
    shared: Arc<Shared>,
    wakers: Vec<Arc<mio::Waker>>,
    drain_timeout: std::time::Duration,
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let wake_all = move || {
        for w in &wakers {
            let _ = w.wake();
        }
    };
    std::thread::Builder::new()
        .name("corestream-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    shared.log_generation.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = &shared.tls {
                        let _ = t.certs.reload();
                    }
                    wake_all();
                    continue;
                }
                if shared.draining.swap(true, Ordering::Relaxed) {
                    say!("corestream: second signal, exiting now");
                    shared::exit(1);
                }
                say!(
                    "corestream: draining: no new connections, finishing responses in flight (up to {} s)",
                    drain_timeout.as_secs_f64()
                );
                wake_all();
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    Ok(())
}
