//! hls.js in headless Chromium plays the demo stream (plain and Low-Latency) from the real
//! `corestream --demo` / `--demo-ll` server, without an error.
//!
//! Over plain HTTP the page and hls.js come from a minimal HTTP server inside the test, on
//! another port, so the stream is fetched cross-origin: this also checks Corestream's CORS
//! headers, and in low-latency mode its blocking playlist reloads and preload-hint waits.
//! Over HTTPS, corestream serves the page, hls.js and the stream itself on its TLS listener
//! (a browser refuses http:// media on an https:// page); Chromium trusts the test
//! certificate only (`--ignore-certificate-errors-spki-list` with its key hash) and the page
//! reports through the console.
//!
//! Needs a browser and hls.js (`.ci/run` installs both):
//!   apt-get install -y chromium && npm install --prefix /opt/hlsjs hls.js@1
//!   CORESTREAM_HLSJS=/opt/hlsjs/node_modules/hls.js/dist/hls.min.js cargo test -p corestream --test demo_hlsjs
//! Without them the tests print SKIPPED and pass.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

const PAGE: &str = r#"<!doctype html><html><body><video id=v muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
const ll = location.search.includes('ll=1');
const report = (kind, data) => fetch('/report?' + kind + '=' + encodeURIComponent(JSON.stringify(data)));
const v = document.getElementById('v');
let errors = 0;
const hls = new Hls({lowLatencyMode: ll});
hls.on(Hls.Events.ERROR, (e, d) => { errors++; report('error', {details: d.details, fatal: d.fatal, url: d.frag && d.frag.url}); });
hls.loadSource(new URLSearchParams(location.search).get('src'));
hls.attachMedia(v);
setInterval(() => {
  const q = v.getVideoPlaybackQuality();
  report('tick', {t: v.currentTime, ranges: v.buffered.length, frames: q.totalVideoFrames, errors, latency: hls.latency});
}, 1000);
</script></body></html>"#;

fn browser() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Headless Chromium that plays media without a gesture, with its own profile directory.
fn headless(browser: &str, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Start `serve` on an ephemeral port; returns the port.
fn page_server(page: &'static str, hlsjs: PathBuf, reports: &Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reports = reports.clone();
    thread::spawn(move || serve(listener, page, hlsjs, reports));
    port
}

/// Serves `/` (the page), `/hls.js` and `/report?...` (recorded): another origin than the
/// stream's, as a player page on a site usually is.
fn serve(
    listener: TcpListener,
    page: &'static str,
    hlsjs: PathBuf,
    reports: Arc<Mutex<Vec<String>>>,
) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let (hlsjs, reports) = (hlsjs.clone(), reports.clone());
        thread::spawn(move || {
            let _ = answer(conn, page, &hlsjs, &reports);
        });
    }
}

fn answer(
    mut conn: TcpStream,
    page: &str,
    hlsjs: &Path,
    reports: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut line = String::new();
    let mut reader = BufReader::new(conn.try_clone()?);
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
    }
    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, kind, body) = if path == "/" {
        ("200 OK", "text/html", page.as_bytes().to_vec())
    } else if path == "/hls.js" {
        ("200 OK", "text/javascript", fs::read(hlsjs)?)
    } else if path == "/report" {
        if let Ok(mut r) = reports.lock() {
            r.push(query.to_string());
        }
        ("204 No Content", "text/plain", Vec::new())
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)
}

/// Decodes the `%XX` escapes of encodeURIComponent.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A number field of the JSON a report carries (the page writes flat objects).
fn field(json: &str, name: &str) -> Option<f64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    json[at..].split([',', '}']).next()?.parse().ok()
}

/// The SPKI hash Chromium's --ignore-certificate-errors-spki-list wants, via openssl.
fn spki_hash(cert: &Path) -> Option<String> {
    let pipeline = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh").args(["-c", &pipeline]).output().ok()?;
    let h = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !h.is_empty()).then_some(h)
}

/// Where the player gets the stream from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The demo, from the server that publishes it.
    Demo,
    /// A stream ffmpeg pushes to the ingest port.
    Pushed,
    /// The demo on an origin, through a shield and an edge (`--origin`).
    Tier,
}

/// Play `source` in hls.js for 16 s and check that it played smoothly.
fn play(low_latency: bool, tls: bool, source: Source) {
    let pushed = source == Source::Pushed;
    let Some(browser) = browser() else {
        eprintln!("SKIPPED: no chromium (apt-get install -y chromium)");
        return;
    };
    let Some(hlsjs) = std::env::var_os("CORESTREAM_HLSJS").map(PathBuf::from) else {
        eprintln!("SKIPPED: set CORESTREAM_HLSJS to hls.js or hls.min.js (npm install hls.js@1)");
        return;
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("corestream-hlsjs-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let mode = if low_latency { "--demo-ll" } else { "--demo" };
    let reports = Arc::new(Mutex::new(Vec::new()));
    let mut packager: Option<std::process::Child> = None;
    // Servers behind the one the player talks to (the tier's origin and shield).
    let mut chain: Vec<common::Server> = Vec::new();
    let (server, page, spki) = if tls {
        let (_, crt, key) = common::tls::pki();
        let Some(spki) = spki_hash(crt) else {
            eprintln!("SKIPPED: openssl is needed to hash the test certificate's key");
            return;
        };
        let root = base.join("root");
        fs::create_dir_all(&root).unwrap();
        let server = common::Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
            mode,
            "--root",
            root.to_str().unwrap(),
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--workers",
            "2",
        ]));
        // Same origin: corestream serves the page and hls.js next to the stream.
        let page_html = PAGE.replace(
            "fetch('/report?' + kind + '=' + encodeURIComponent(JSON.stringify(data)))",
            "console.log('REPORT ' + kind + '=' + encodeURIComponent(JSON.stringify(data)))",
        );
        fs::write(root.join("player.html"), page_html).unwrap();
        fs::copy(&hlsjs, root.join("hls.js")).unwrap();
        let port = server.tls_addr.unwrap().port();
        let page = format!(
            "https://localhost:{port}/player.html?ll={}&src=https://localhost:{port}/master.m3u8",
            u8::from(low_latency)
        );
        (server, page, Some(spki))
    } else if pushed {
        let root = base.join("root");
        fs::create_dir_all(&root).unwrap();
        let server = common::Server::start(&root, &["--ingest", "127.0.0.1:0"]);
        let url = format!("http://{}/live/stream.m3u8", server.ingest.unwrap());
        packager = Some(
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-re"])
                .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args(["-t", "60", "-c:v", "libx264", "-preset", "ultrafast"])
                .args(["-g", "25", "-sc_threshold", "0", "-c:a", "aac"])
                .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
                .args(["-hls_flags", "delete_segments", "-method", "PUT"])
                .args(["-http_persistent", "1", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("ffmpeg pushes the stream (apt-get install ffmpeg)"),
        );
        let dir = root.join("live");
        common::wait_for("ffmpeg's first segments", Duration::from_secs(20), || {
            fs::read_dir(&dir).map_or(0, |d| d.count()) >= 4
        });
        let src = format!("http://{}/live/stream.m3u8", server.addr);
        let port = page_server(PAGE, hlsjs, &reports);
        (
            server,
            format!("http://127.0.0.1:{port}/?ll=0&src={src}"),
            None,
        )
    } else if source == Source::Tier {
        let origin = common::Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
            mode,
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ]));
        let pull = |from: std::net::SocketAddr, cache: &str| {
            common::Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
                "--origin",
                &format!("http://{from}"),
                "--cache-dir",
                base.join(cache).to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
            ]))
        };
        let shield = pull(origin.addr, "shield");
        let edge = pull(shield.addr, "edge");
        let src = format!("http://{}/master.m3u8", edge.addr);
        let port = page_server(PAGE, hlsjs, &reports);
        let page = format!(
            "http://127.0.0.1:{port}/?ll={}&src={src}",
            u8::from(low_latency)
        );
        chain = vec![origin, shield];
        (edge, page, None)
    } else {
        let server = common::Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
            mode,
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ]));
        let src = format!("http://{}/master.m3u8", server.addr);
        let port = page_server(PAGE, hlsjs, &reports);
        let page = format!(
            "http://127.0.0.1:{port}/?ll={}&src={src}",
            u8::from(low_latency)
        );
        (server, page, None)
    };
    let mut cmd = headless(browser, &base.join("profile"));
    if let Some(spki) = &spki {
        cmd.args([
            "--enable-logging=stderr",
            "--v=0",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ])
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"));
    }
    let mut child = cmd
        .arg(&page)
        .stdout(Stdio::null())
        .stderr(if tls { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .unwrap();
    if let Some(stderr) = child.stderr.take() {
        // Console lines: `... "REPORT tick=..." ...`.
        let reports = reports.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("\"REPORT ") {
                    let rest = &line[at + 8..];
                    let report = rest.split('"').next().unwrap_or("");
                    if let Ok(mut r) = reports.lock() {
                        r.push(report.to_string());
                    }
                }
            }
        });
    }
    let played = Duration::from_secs(16);
    let start = Instant::now();
    while start.elapsed() < played {
        sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(mut p) = packager {
        let _ = p.kill();
        let _ = p.wait();
    }
    drop(server);
    drop(chain);
    let _ = fs::remove_dir_all(&base);

    let reports = reports.lock().unwrap().clone();
    let errors: Vec<String> = reports
        .iter()
        .filter(|r| r.starts_with("error="))
        .map(|r| unescape(r))
        .collect();
    assert!(errors.is_empty(), "hls.js errors: {errors:?}");
    let ticks: Vec<String> = reports
        .iter()
        .filter_map(|r| r.strip_prefix("tick="))
        .map(unescape)
        .collect();
    let times: Vec<f64> = ticks.iter().filter_map(|t| field(t, "t")).collect();
    let (first, last) = (times.first().copied(), times.last().copied());
    let (Some(first), Some(last)) = (first, last) else {
        panic!("the page never reported: {reports:?}");
    };
    // Playing means the clock moved about as much as the wall clock over the last reports.
    let moving: Vec<&f64> = times.iter().filter(|t| **t > 0.0).collect();
    assert!(
        moving.len() >= 8,
        "playback started late or stalled: {ticks:?}"
    );
    let span = (moving.len() - 1) as f64;
    let advanced = last - **moving.first().unwrap();
    assert!(
        advanced >= span - 1.5,
        "stalled: {advanced:.2}s in {span}s: {ticks:?}"
    );
    assert!(last > first);
    let final_tick = ticks.last().unwrap();
    assert_eq!(
        field(final_tick, "ranges"),
        Some(1.0),
        "one buffered range: {final_tick}"
    );
    assert!(
        field(final_tick, "frames").unwrap_or(0.0) > 100.0,
        "{final_tick}"
    );
    if low_latency {
        let latency = field(final_tick, "latency").unwrap_or(f64::MAX);
        eprintln!("live edge distance at the end: {latency:.2} s");
        assert!(latency < 4.0, "LL-HLS latency {latency}: {final_tick}");
    }
}

#[test]
fn hlsjs_plays_a_stream_ffmpeg_pushes_to_the_ingest_port() {
    play(false, false, Source::Pushed);
}

#[test]
fn hlsjs_plays_the_low_latency_demo_through_a_shield_and_an_edge() {
    play(true, false, Source::Tier);
}

#[test]
fn hlsjs_plays_the_demo() {
    play(false, false, Source::Demo);
}

#[test]
fn hlsjs_plays_the_low_latency_demo() {
    play(true, false, Source::Demo);
}

#[test]
fn hlsjs_plays_the_demo_over_https() {
    play(false, true, Source::Demo);
}

#[test]
fn hlsjs_plays_the_low_latency_demo_over_https() {
    play(true, true, Source::Demo);
}

/// hls.js with CMCD on (query mode, as it sends it by default) plays the demo from a page of
/// another origin; the page also fetches a segment itself and reads the CMSD headers through
/// CORS.
const CMCD_PAGE: &str = r#"<!doctype html><html><body><video id=v muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
const report = (kind, data) => fetch('/report?' + kind + '=' + encodeURIComponent(JSON.stringify(data)));
const src = new URLSearchParams(location.search).get('src');
const v = document.getElementById('v');
const hls = new Hls({cmcd: {sessionId: 'chromium-session-1', contentId: 'demo-show'}});
hls.on(Hls.Events.ERROR, (e, d) => report('error', {details: d.details, fatal: d.fatal}));
hls.on(Hls.Events.FRAG_LOADED, async (e, d) => {
  if (window.checked) return;
  window.checked = true;
  const r = await fetch(d.frag.url);
  report('cmsd', {status: r.status, static: r.headers.get('CMSD-Static'), dynamic: r.headers.get('CMSD-Dynamic')});
});
hls.loadSource(src);
hls.attachMedia(v);
setInterval(() => report('tick', {t: v.currentTime}), 1000);
</script></body></html>"#;

#[test]
fn hlsjs_sends_cmcd_counted_per_stream_and_reads_cmsd() {
    let Some(browser) = browser() else {
        eprintln!("SKIPPED: no chromium (apt-get install -y chromium)");
        return;
    };
    let Some(hlsjs) = std::env::var_os("CORESTREAM_HLSJS").map(PathBuf::from) else {
        eprintln!("SKIPPED: set CORESTREAM_HLSJS to hls.js or hls.min.js (npm install hls.js@1)");
        return;
    };
    let base = std::env::temp_dir().join(format!("corestream-hlsjs-cmcd-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    let log = base.join("access.json");
    let server = common::Server::spawn(Command::new(env!("CARGO_BIN_EXE_corestream")).args([
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--admin",
        "0",
        "--cmsd",
        "--cmsd-name",
        "edge-test",
        "--qoe-window",
        "4s",
        "--access-log-format",
        "json",
        "--access-log",
        log.to_str().unwrap(),
    ]));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let port = page_server(CMCD_PAGE, hlsjs, &reports);
    let page = format!(
        "http://127.0.0.1:{port}/?src=http://{}/master.m3u8",
        server.addr
    );
    let mut child = headless(browser, &base.join("profile"))
        .arg(&page)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // One viewer, counted under the content id hls.js sends, while it plays.
    let viewers = "corestream_viewers{stream=\"demo-show\"}";
    let count = |s: &common::Server| {
        let (_, body) = s.admin_get("/metrics");
        body.lines()
            .find_map(|l| {
                l.strip_prefix(viewers)
                    .and_then(|r| r.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    let start = Instant::now();
    let mut seen = 0.0;
    while start.elapsed() < Duration::from_secs(14) {
        sleep(Duration::from_millis(500));
        seen = count(&server);
        if seen == 1.0 && start.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, 1.0, "viewers of demo-show while hls.js plays");
    // It left: within the window (4 s) the count drops.
    let left = Instant::now();
    while count(&server) != 0.0 {
        assert!(
            left.elapsed() < Duration::from_secs(8),
            "the viewer never left"
        );
        sleep(Duration::from_millis(250));
    }
    let reports = reports.lock().unwrap().clone();
    let errors: Vec<String> = reports
        .iter()
        .filter(|r| r.starts_with("error="))
        .map(|r| unescape(r))
        .collect();
    assert!(
        errors.iter().all(|e| !e.contains("\"fatal\":true")),
        "hls.js errors: {errors:?}"
    );
    let cmsd = reports
        .iter()
        .find_map(|r| r.strip_prefix("cmsd="))
        .map(unescape)
        .expect("the page reported the CMSD headers it read");
    assert!(cmsd.contains(r#""status":200"#), "{cmsd}");
    assert!(
        cmsd.contains(r#"n=\"edge-test\""#),
        "CMSD-Static not readable by the page: {cmsd}"
    );
    assert!(
        cmsd.contains(r#""dynamic":"\"edge-test\""#),
        "CMSD-Dynamic not readable: {cmsd}"
    );
    // Every CMCD hls.js sent parsed whole, and the log has it.
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        metrics.contains("\ncorestream_cmcd_ignored_members_total 0\n"),
        "hls.js sent CMCD members the parser rejected"
    );
    drop(server);
    let text = fs::read_to_string(&log).unwrap();
    let with_cmcd: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("chromium-session-1"))
        .collect();
    assert!(
        with_cmcd.len() > 5,
        "{} lines with the session id",
        with_cmcd.len()
    );
    for l in &with_cmcd {
        assert!(l.contains(r#""cid":"demo-show""#), "{l}");
    }
    if let Ok(dir) = std::env::var("CORESTREAM_CAPTURE_CMCD") {
        // How tests/fixtures/hlsjs-cmcd.txt was made: the CMCD query values hls.js sent.
        let lines: Vec<String> = text
            .lines()
            .filter_map(|l| l.split("CMCD=").nth(1))
            .map(|q| q.split(['"', '&']).next().unwrap_or("").to_string())
            .collect();
        fs::write(
            Path::new(&dir).join("hlsjs-cmcd.txt"),
            lines.join("\n") + "\n",
        )
        .unwrap();
    }
    let _ = fs::remove_dir_all(&base);
}
