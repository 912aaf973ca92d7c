//! Starting and stopping the servers under test: N corestream processes sharing one port
//! (SO_REUSEPORT), one nginx master with its workers (from `nginx.conf.in`), one h2o process
//! with a thread per CPU (from `h2o.conf.in`), and N `floor` processes (see `floor.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{self, die_with_parent, terminate};
use crate::procstat;

pub const NGINX_TEMPLATE: &str = include_str!("../nginx.conf.in");
pub const H2O_TEMPLATE: &str = include_str!("../h2o.conf.in");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Corestream,
    Nginx,
    H2o,
    Floor,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Corestream, Kind::Nginx, Kind::H2o, Kind::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Corestream => "corestream",
            Kind::Nginx => "nginx",
            Kind::H2o => "h2o",
            Kind::Floor => "floor",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown server '{s}'; use corestream, nginx, h2o or floor"))
    }
}

/// h2o 2.2.5 cannot share a port between processes, so it runs as one process whose
/// descriptors must hold every connection plus an open file for each download.
pub const H2O_MAX_CONNECTIONS: usize = 9_000;

/// How a server is laid out for one connection level.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// corestream processes on the port (nginx always has one master).
    pub processes: usize,
    /// Workers per corestream process; nginx gets processes * workers worker processes.
    pub workers: usize,
    /// nginx worker_connections.
    pub worker_connections: usize,
}

impl Layout {
    pub fn total_workers(&self) -> usize {
        self.processes * self.workers
    }
}

/// Stays below the 20000 per-process fd ceiling with room for listeners, logs and files.
pub const FDS_PER_PROCESS: usize = 18_000;

/// Connections one server process is given: FDS_PER_PROCESS / (2 x 1.125), see `layout_for`.
pub const CONNS_PER_PROCESS: usize = FDS_PER_PROCESS * 4 / 9;

/// Server layout for `conns` connections on `cpus` CPUs. A connection that is downloading a
/// file costs two descriptors (socket + open file, for corestream's sendfile and nginx's
/// alike), and the kernel's reuseport hashing is not perfectly even, so each process is given
/// at most FDS_PER_PROCESS / (2 x 1.125) connections: one corestream process with a worker
/// per CPU while that fits, otherwise that many single-worker processes on the port; nginx
/// gets the same total worker count.
/// `per_process` (normally CONNS_PER_PROCESS) is lowered only to try the multi-process
/// layout with few connections.
pub fn layout_for(conns: usize, cpus: usize, per_process: usize) -> Layout {
    let need = conns.div_ceil(per_process.max(1)).max(1);
    if need == 1 {
        Layout {
            processes: 1,
            workers: cpus.max(1),
            worker_connections: 19_000,
        }
    } else {
        Layout {
            processes: need.max(cpus),
            workers: 1,
            worker_connections: 19_000,
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    children: Vec<Child>,
    pub describe: String,
    /// corestream's admin ports, one per process (`--admin 127.0.0.1:0`): its own account
    /// of each run.
    admins: Vec<SocketAddr>,
}

fn wait_http(port: u16, path: &str, deadline: Instant) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req =
                format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                // The status line is enough (the floor ignores Connection: close).
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200" {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "nothing answered 200 for {path} on 127.0.0.1:{port}"
    ))
}

impl Server {
    /// Start `layout.processes` corestream processes on 0.0.0.0:port and wait until each
    /// prints its "listening" line.
    pub fn corestream(
        bin: &Path,
        root: &Path,
        port: u16,
        layout: Layout,
        logdir: &Path,
        incoming_cpu: bool,
    ) -> Result<Server, String> {
        Server::processes(Kind::Corestream, port, layout, logdir, || {
            let mut c = Command::new(bin);
            die_with_parent(&mut c)
                .args(["--root".as_ref(), root.as_os_str()])
                .args(["--listen", &format!("0.0.0.0:{port}")])
                .args(["--workers", &layout.workers.to_string()])
                .args(["--admin", "127.0.0.1:0"]);
            if incoming_cpu {
                c.arg("--incoming-cpu");
            }
            Ok(c)
        })
    }

    /// Start `layout.processes` floor processes answering with `response_file` (the body
    /// after the floor's own head; with `verbatim`, the whole response).
    pub fn floor(
        response_file: &Path,
        verbatim: bool,
        port: u16,
        layout: Layout,
        logdir: &Path,
        incoming_cpu: bool,
    ) -> Result<Server, String> {
        Server::processes(Kind::Floor, port, layout, logdir, || {
            let mut c = child::own("floor")?;
            c.args(["--listen", &format!("0.0.0.0:{port}")])
                .args(["--threads", &layout.workers.to_string()])
                .arg("--body")
                .arg(response_file);
            if verbatim {
                c.arg("--verbatim");
            }
            if incoming_cpu {
                c.arg("--incoming-cpu");
            }
            Ok(c)
        })
    }

    /// Start `layout.processes` processes made by `command`, all on `port`, and wait until
    /// each prints its "listening on" line and the port answers.
    fn processes(
        kind: Kind,
        port: u16,
        layout: Layout,
        logdir: &Path,
        command: impl Fn() -> Result<Command, String>,
    ) -> Result<Server, String> {
        let name = kind.name();
        let mut s = Server {
            kind,
            port,
            children: Vec::new(),
            admins: Vec::new(),
            describe: format!(
                "{name}: {} process(es) x {} worker(s) on 0.0.0.0:{port} (SO_REUSEPORT)",
                layout.processes, layout.workers
            ),
        };
        let mut outs = Vec::new();
        for i in 0..layout.processes {
            let mut cmd = command()?;
            let out = logdir.join(format!("{name}-{port}-{i}.out"));
            let err = logdir.join(format!("{name}-{port}-{i}.err"));
            let child = cmd
                .stdin(Stdio::null())
                .stdout(fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?)
                .stderr(fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?)
                .spawn()
                .map_err(|e| format!("cannot start {name}: {e}"))?;
            s.children.push(child);
            outs.push((out, err));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (i, (out, err)) in outs.iter().enumerate() {
            loop {
                if let Ok(t) = fs::read_to_string(out) {
                    if t.contains("listening on") {
                        s.admins.extend(admin_address(&t));
                        break;
                    }
                }
                if let Ok(Some(st)) = s.children[i].try_wait() {
                    let e = fs::read_to_string(err).unwrap_or_default();
                    return Err(format!("{name} exited ({st}): {e}"));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{name} process {i} did not report listening in 15 s"
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        wait_http(port, "/master.m3u8", deadline)?;
        Ok(s)
    }

    /// Start h2o (one process, `threads` threads, `file.dir` on `root`) from the template.
    pub fn h2o(
        root: &Path,
        port: u16,
        threads: usize,
        max_connections: usize,
        prefix: &Path,
    ) -> Result<Server, String> {
        fs::create_dir_all(prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let conf = render(
            H2O_TEMPLATE,
            &[
                ("@THREADS@", threads.to_string()),
                ("@CONNS@", max_connections.to_string()),
                ("@PORT@", port.to_string()),
            ],
            prefix,
            root,
        );
        let conf_path = prefix.join("h2o.conf");
        fs::write(&conf_path, conf).map_err(|e| format!("{}: {e}", conf_path.display()))?;
        let err = prefix.join("stderr.log");
        let child = die_with_parent(&mut Command::new("h2o"))
            .arg("-m")
            .arg("worker")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?)
            .spawn()
            .map_err(|e| format!("cannot start h2o ({e}); install it: apt-get install -y h2o"))?;
        let mut s = Server {
            kind: Kind::H2o,
            port,
            children: vec![child],
            admins: Vec::new(),
            describe: format!(
                "h2o: 1 process x {threads} thread(s) on 0.0.0.0:{port} (file.dir, max-connections {max_connections})"
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        if let Err(e) = wait_http(port, "/master.m3u8", deadline) {
            let se = fs::read_to_string(&err).unwrap_or_default();
            let log = fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            s.stop();
            return Err(format!("h2o did not start: {e}\n{se}{log}"));
        }
        Ok(s)
    }

    /// Start nginx (one master, `total_workers` workers) from the template.
    pub fn nginx(root: &Path, port: u16, layout: Layout, prefix: &Path) -> Result<Server, String> {
        fs::create_dir_all(prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let conf = render_nginx(
            layout.total_workers(),
            layout.worker_connections,
            prefix,
            root,
            &format!("0.0.0.0:{port}"),
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).map_err(|e| format!("{}: {e}", conf_path.display()))?;
        let err = prefix.join("stderr.log");
        let child = die_with_parent(&mut Command::new("nginx"))
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?)
            .spawn()
            .map_err(|e| {
                format!("cannot start nginx ({e}); install it: apt-get install -y nginx")
            })?;
        let mut s = Server {
            kind: Kind::Nginx,
            port,
            children: vec![child],
            admins: Vec::new(),
            describe: format!(
                "nginx: 1 master + {} worker(s) on 0.0.0.0:{port} (reuseport, worker_rlimit_nofile 19999, worker_connections {})",
                layout.total_workers(),
                layout.worker_connections
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        if let Err(e) = wait_http(port, "/master.m3u8", deadline) {
            let log = fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            let se = fs::read_to_string(&err).unwrap_or_default();
            s.stop();
            return Err(format!("nginx did not start: {e}\n{se}{log}"));
        }
        while s.pids().len() < 1 + layout.total_workers() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    /// Every process of this server (nginx: master and workers).
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.children.iter().map(|c| c.id() as i32).collect();
        if self.kind == Kind::Nginx {
            let kids: Vec<i32> = v.iter().flat_map(|&p| procstat::children(p)).collect();
            v.extend(kids);
        }
        v
    }

    pub fn alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn stop(&mut self) {
        for c in &mut self.children {
            terminate(c.id());
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
    }
}

/// The address in corestream's "corestream: admin on http://ADDR/metrics" line.
fn admin_address(stdout: &str) -> Option<SocketAddr> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("corestream: admin on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
}

/// Sum of every `name{LABEL="value"} N` sample in a Prometheus text, by label value.
pub fn samples_by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{name}{{{label}=\"");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((value, sample)) = rest.split_once("\"}") else {
            continue;
        };
        if let Ok(n) = sample.trim().parse::<f64>() {
            *out.entry(value.to_string()).or_default() += n as u64;
        }
    }
    out
}

impl Server {
    /// Connections corestream has closed so far, by reason, summed over its processes
    /// (`corestream_connections_closed_total`); empty for the other servers, or when a scrape
    /// fails.
    pub fn closes(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for &a in &self.admins {
            let Ok(text) = scrape(a) else {
                return BTreeMap::new();
            };
            for (k, v) in samples_by_label(&text, "corestream_connections_closed_total", "reason") {
                *total.entry(k).or_default() += v;
            }
        }
        total
    }
}

fn scrape(a: SocketAddr) -> std::io::Result<String> {
    let mut c = TcpStream::connect_timeout(&a, Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn render_nginx(
    workers: usize,
    worker_connections: usize,
    prefix: &Path,
    root: &Path,
    listen: &str,
) -> String {
    render(
        NGINX_TEMPLATE,
        &[
            ("@WORKERS@", workers.to_string()),
            ("@NOFILE@", "19999".to_string()),
            ("@CONNS@", worker_connections.to_string()),
            ("@LISTEN@", listen.to_string()),
        ],
        prefix,
        root,
    )
}

/// Fill a server config template: `vars`, then @PREFIX@, @ROOT@ and @USER@ (the workers run
/// as the invoking user so they can read the bench files and the fd limit holds).
fn render(template: &str, vars: &[(&str, String)], prefix: &Path, root: &Path) -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let mut t = template
        .replace("@PREFIX@", &prefix.display().to_string())
        .replace("@USER@", &user)
        .replace("@ROOT@", &root.display().to_string());
    for (k, v) in vars {
        t = t.replace(k, v);
    }
    t
}

/// The corestream binary next to this one, built first with cargo when `build` is set.
pub fn corestream_binary(build: bool) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or("own executable has no directory")?
        .to_path_buf();
    if build {
        let target = dir
            .parent()
            .ok_or("own executable is not in a cargo target dir")?;
        let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace dir")?;
        corestream_common::say!("== cargo build --release -p corestream");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-q", "-p", "corestream"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(ws)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !st.success() {
            return Err("cargo build --release -p corestream failed".into());
        }
    }
    let bin = dir.join("corestream");
    if !bin.exists() {
        return Err(format!(
            "{} not found; build it (cargo build --release -p corestream) or pass --corestream-bin",
            bin.display()
        ));
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_read_from_a_real_scrape_text_by_reason() {
        let text = "# HELP corestream_connections_closed_total Connections closed, by reason.\n\
            # TYPE corestream_connections_closed_total counter\n\
            corestream_connections_closed_total{reason=\"peer\"} 7\n\
            corestream_connections_closed_total{reason=\"peer_gone\"} 2\n\
            corestream_connections_closed_total{reason=\"timeout_idle\"} 0\n\
            corestream_connections_closed_total_x{reason=\"peer\"} 9\n\
            corestream_timeouts_total{reason=\"peer\"} 5\n";
        let got = samples_by_label(text, "corestream_connections_closed_total", "reason");
        let want: BTreeMap<String, u64> = [("peer", 7), ("peer_gone", 2), ("timeout_idle", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            admin_address(
                "corestream: serving\ncorestream: admin on http://127.0.0.1:4242/metrics\n"
            ),
            Some(SocketAddr::from(([127, 0, 0, 1], 4242)))
        );
        assert_eq!(
            admin_address("corestream: listening on http://0.0.0.0:80/\n"),
            None
        );
    }

    #[test]
    fn layouts_respect_fd_ceiling() {
        let l = layout_for(100, 2, CONNS_PER_PROCESS);
        assert_eq!((l.processes, l.workers), (1, 2));
        let l = layout_for(1_000, 2, CONNS_PER_PROCESS);
        assert_eq!((l.processes, l.workers), (1, 2));
        // Socket + open file per downloading connection must fit each process's fd table.
        for conns in [10_000, 50_000, 100_000] {
            let l = layout_for(conns, 2, CONNS_PER_PROCESS);
            assert_eq!(l.workers, 1);
            assert!(
                2 * conns.div_ceil(l.processes) * 9 / 8 <= FDS_PER_PROCESS,
                "{conns} {l:?}"
            );
        }
        assert_eq!(layout_for(50_000, 2, CONNS_PER_PROCESS).processes, 7);
        assert_eq!(layout_for(100_000, 2, CONNS_PER_PROCESS).processes, 13);
        // Lowered only to try the multi-process layout with few connections.
        assert_eq!(layout_for(1_000, 2, 300).processes, 4);
    }

    #[test]
    fn template_fully_rendered() {
        let c = render_nginx(
            4,
            19000,
            Path::new("/tmp/p"),
            Path::new("/tmp/r"),
            "0.0.0.0:1",
        );
        assert!(!c.contains('@'), "{c}");
        assert!(c.contains("worker_processes 4;"));
        assert!(c.contains("listen 0.0.0.0:1 reuseport"));
        for must in [
            "sendfile on;",
            "tcp_nopush on;",
            "keepalive_requests 1000000;",
            "access_log off;",
            "open_file_cache off;",
        ] {
            assert!(c.contains(must), "{must}");
        }
        let h = render(
            H2O_TEMPLATE,
            &[
                ("@THREADS@", "2".into()),
                ("@CONNS@", "9000".into()),
                ("@PORT@", "1".into()),
            ],
            Path::new("/tmp/p"),
            Path::new("/tmp/r"),
        );
        assert!(!h.contains('@'), "{h}");
        for must in [
            "num-threads: 2",
            "max-connections: 9000",
            "file.dir: /tmp/r",
            "port: 1",
        ] {
            assert!(h.contains(must), "{must}");
        }
    }
}
