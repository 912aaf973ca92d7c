//! Test harness: runs the real `corestream` binary on 127.0.0.1 with an ephemeral port and
//! speaks raw HTTP/1.1 to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod tls;
pub use tls::Stream;

/// Which listener a test talks to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Plain,
    /// HTTPS only (`--tls-listen`, no plain listener), with the test CA's `localhost`
    /// certificate.
    Tls,
}

pub struct Server {
    pub child: Child,
    /// The plain listener (the TLS one when the server has no plain listener).
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// The ingest listener (`--ingest`).
    pub ingest: Option<SocketAddr>,
    pub mode: Mode,
}

fn banner_addr(line: &str) -> SocketAddr {
    let tail = line.trim().rsplit("http://").next().unwrap_or("");
    let hostport = tail.split('/').next().unwrap_or("");
    hostport
        .parse()
        .unwrap_or_else(|_| panic!("no address in banner {line:?}"))
}

impl Server {
    /// `--listen 127.0.0.1:0 --workers 2` unless `extra` says otherwise.
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        Server::start_env(root, &[], extra)
    }

    /// `start` with these environment variables set for the server (the debug build's
    /// fault hooks, `CORESTREAM_DEBUG_PANIC_*`).
    pub fn start_env(root: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec!["--root".into(), root.display().to_string()];
        if !extra.contains(&"--listen") {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        if !extra.contains(&"--workers") {
            args.extend(["--workers".into(), "2".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut c = Command::new(env!("CARGO_BIN_EXE_corestream"));
        c.args(&args).envs(env.iter().copied());
        Server::spawn(&mut c)
    }

    /// Started for `mode`: for TLS with `--tls-listen 127.0.0.1:0` and the test CA's
    /// localhost certificate, and no plain listener unless `extra` asks for one.
    pub fn start_mode(mode: Mode, root: &Path, extra: &[&str]) -> Server {
        if mode == Mode::Plain {
            return Server::start(root, extra);
        }
        let (_, crt, key) = tls::pki();
        let mut args: Vec<String> = vec!["--root".into(), root.display().to_string()];
        if !extra.contains(&"--workers") {
            args.extend(["--workers".into(), "2".into()]);
        }
        args.extend([
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            crt.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut s = Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args(&args));
        s.mode = Mode::Tls;
        s
    }

    /// A client connection in the server's mode (TLS to `localhost` when it is HTTPS).
    pub fn client(&self) -> Stream {
        match self.mode {
            Mode::Plain => Stream::Plain(self.connect()),
            Mode::Tls => {
                self.tls_client(&tls::pki().0.client(rustls::DEFAULT_VERSIONS), "localhost")
            }
        }
    }

    /// A TLS client connection with this configuration and server name.
    pub fn tls_client(&self, config: &std::sync::Arc<rustls::ClientConfig>, sni: &str) -> Stream {
        let addr = self.tls_addr.expect("server started without --tls-listen");
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Stream::tls(s, config.clone(), sni)
    }

    /// Spawn a prepared command (e.g. wrapped in prlimit) and wait for its banner.
    // The child is owned by the returned Server, whose Drop kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(cmd: &mut Command) -> Server {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let https_only =
            args.iter().any(|a| a == "--tls-listen") && !args.iter().any(|a| a == "--listen");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corestream");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut admin = None;
        let mut ingest = None;
        let mut tls_addr = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let status = child.wait();
                panic!("corestream exited before listening: {status:?}");
            }
            if line.contains("admin on") {
                admin = Some(banner_addr(&line));
            } else if line.contains("ingest on") {
                ingest = Some(banner_addr(&line));
            } else if line.contains("listening on https://") {
                let a = banner_addr(&line.replace("https://", "http://"));
                tls_addr = Some(a);
                if https_only {
                    return Server {
                        child,
                        addr: a,
                        tls_addr,
                        admin,
                        ingest,
                        mode: Mode::Plain,
                    };
                }
            } else if line.contains("listening on") {
                let addr = banner_addr(&line);
                return Server {
                    child,
                    addr,
                    tls_addr,
                    admin,
                    ingest,
                    mode: Mode::Plain,
                };
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// GET an admin path; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let addr = self.admin.expect("server started without --admin");
        let mut s = TcpStream::connect(addr).expect("connect admin");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let r = read_response(&mut s, false).expect("admin response");
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    /// A metric's value from /metrics (name with labels exactly as exposed).
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_opt(name)
            .unwrap_or_else(|| panic!("metric {name} not found"))
    }

    /// The same, None when the series is absent.
    pub fn metric_opt(&self, name: &str) -> Option<f64> {
        let (_, body) = self.admin_get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Wait for exit; None if still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t = std::time::Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// utime + stime of the server process, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    }

    /// Resident memory of the server process.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// One request on a fresh connection (in the server's mode).
    pub fn get(&self, raw: &str) -> Response {
        let mut s = self.client();
        s.write_all(raw.as_bytes()).unwrap();
        read_response(&mut s, raw.starts_with("HEAD")).expect("response")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read exactly one response; body framed by Content-Length (none for HEAD, 204, 304).
pub fn read_response(s: &mut impl Read, head_request: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8(head).expect("utf8 head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status: u16 = status_line[9..12].parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header colon");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 {
        return Some(r);
    }
    let len: usize = r.header("content-length")?.parse().ok()?;
    r.body.resize(len, 0);
    s.read_exact(&mut r.body).ok()?;
    Some(r)
}

/// True when the peer closes the connection (EOF, reset, or TCP closed under a TLS session)
/// within the read timeout.
pub fn closed(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return true
            }
            Err(_) => return false,
        }
    }
}

/// Poll `ok` every 50 ms until it holds; fail the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary media root.
pub fn media_root(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("corestream-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `text` to `dir/name` the way packagers do: temporary name, then rename.
pub fn publish(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// An LL-HLS media playlist: complete segments `first..=last`, then `parts` parts of
/// segment last+1, a preload hint for the next part, and optionally ENDLIST.
pub fn ll_playlist(first: u64, last: u64, parts: u32, target: u32, endlist: bool) -> String {
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=6.0\n\
         #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for m in first..=last {
        for i in 0..4 {
            p.push_str(&format!("#EXT-X-PART:DURATION=0.5,URI=\"s{m}.{i}.ts\"\n"));
        }
        p.push_str(&format!("#EXTINF:2.0,\ns{m}.ts\n"));
    }
    if endlist {
        p.push_str("#EXT-X-ENDLIST\n");
        return p;
    }
    let next = last + 1;
    for i in 0..parts {
        p.push_str(&format!(
            "#EXT-X-PART:DURATION=0.5,URI=\"s{next}.{i}.ts\"\n"
        ));
    }
    p.push_str(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s{next}.{parts}.ts\"\n"
    ));
    p
}

/// Whether the media tool `tool` (ffmpeg, ffprobe) runs here; says SKIPPED when it does not,
/// for the tests that then pass without it.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: {tool} is not installed (apt-get install ffmpeg)");
    }
    ok
}
