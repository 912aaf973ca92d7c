//! `swarm`: simulated HLS and LL-HLS viewers against any live HLS URL.
//!
//! Each viewer fetches the master playlist once (when the URL is one), picks a rendition by
//! the --rendition-mix weights and plays it (`swarm/player.rs`: classic reloads on the
//! target-duration clock, or with --ll blocking reloads and parts). Latency is measured from
//! the INTENDED send time, so a slow server cannot hide its queueing by delaying our
//! requests (no coordinated omission); LL parts are also measured from their publication
//! (EXT-X-PROGRAM-DATE-TIME plus the parts' durations). Playback is modelled per viewer:
//! it starts when the join media is in, and every later segment or part must be complete
//! before the buffer runs dry, or the viewer stalls.
//!
//! One process drives up to `--per-process` viewers with one mio event loop
//! (`swarm/engine.rs`); above that (fd ceiling 20000 per process) the command re-executes
//! itself as `swarm-worker` children, each bound to its own loopback source address when
//! the target is loopback (IP_BIND_ADDRESS_NO_PORT, so each gets a full ephemeral port
//! range), and merges their HdrHistograms (V2 format, hex over a pipe). No async runtime: a
//! single-threaded readiness loop per process is all this needs and keeps the client's own
//! overhead small on a 2-core box.

mod engine;
mod player;
#[cfg(test)]
mod viewer_tests;

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

pub use engine::run_engine;
use engine::Kind;

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host_header: String,
    pub path: String,
}

/// Parse `http://host[:port]/path`. HTTPS is not supported (the harness measures the file
/// path of the server, not TLS).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("URL must start with http:// (https is not supported): {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("URL has no host: {url}"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    Ok(Target {
        addr,
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub viewers: u64,
    /// Answered requests per kind: master, playlist, segment, part.
    pub requests: [u64; 4],
    pub bytes: u64,
    pub err_connect: u64,
    pub err_read: u64,
    pub err_timeout: u64,
    pub err_status: u64,
    pub err_parse: u64,
    pub stalls: u64,
    pub stalled_viewers: u64,
    pub playing_viewers: u64,
    pub reconnects: u64,
    /// Playlist reloads not queued because the previous one was still waiting: a player
    /// never has two reloads of one playlist outstanding.
    pub reloads_skipped: u64,
    /// Requests still queued or in flight when the run ended, and the oldest one's wait.
    pub unfinished: u64,
    pub unfinished_oldest_ms_max: u64,
    /// Viewers whose next media had left the playlist window: they jumped to the live edge.
    pub live_jumps: u64,
    /// LL: reloads with `_HLS_msn`/`_HLS_part`; answers that did not have the part asked
    /// for and nothing else new (the server did not block: the viewer polls); hinted parts
    /// asked for, and those answered 404 instead of held until published.
    pub blocking_reloads: u64,
    pub polls_unchanged: u64,
    pub hint_requests: u64,
    pub hints_not_held: u64,
}

impl Counters {
    /// Every counter by its name in the worker wire format: the one list of them.
    fn fields(&mut self) -> [(&'static str, &mut u64); 23] {
        let [m, p, s, pt] = &mut self.requests;
        [
            ("viewers", &mut self.viewers),
            ("req_master", m),
            ("req_playlist", p),
            ("req_segment", s),
            ("req_part", pt),
            ("bytes", &mut self.bytes),
            ("err_connect", &mut self.err_connect),
            ("err_read", &mut self.err_read),
            ("err_timeout", &mut self.err_timeout),
            ("err_status", &mut self.err_status),
            ("err_parse", &mut self.err_parse),
            ("stalls", &mut self.stalls),
            ("stalled_viewers", &mut self.stalled_viewers),
            ("playing_viewers", &mut self.playing_viewers),
            ("reconnects", &mut self.reconnects),
            ("reloads_skipped", &mut self.reloads_skipped),
            ("unfinished", &mut self.unfinished),
            (
                "unfinished_oldest_ms_max",
                &mut self.unfinished_oldest_ms_max,
            ),
            ("live_jumps", &mut self.live_jumps),
            ("blocking_reloads", &mut self.blocking_reloads),
            ("polls_unchanged", &mut self.polls_unchanged),
            ("hint_requests", &mut self.hint_requests),
            ("hints_not_held", &mut self.hints_not_held),
        ]
    }

    pub fn errors(&self) -> u64 {
        self.err_connect + self.err_read + self.err_timeout + self.err_status + self.err_parse
    }
}

/// Histogram names in the worker wire format, and what each records: latency from the
/// intended send time per request kind (us); segment download time / duration (per mille);
/// LL part delivery and a playlist listing a new part, from the part's publication (us);
/// the viewer's distance behind the live edge at each part, and at the end per viewer (us).
const HIST_NAMES: [&str; 9] = [
    "master",
    "playlist",
    "segment",
    "part",
    "seg_ratio",
    "part_published",
    "playlist_published",
    "edge",
    "edge_final",
];

pub struct Hists {
    pub latency: [Histogram<u64>; 4],
    pub seg_ratio: Histogram<u64>,
    /// part_published, playlist_published, edge, edge_final
    pub ll: [Histogram<u64>; 4],
}

fn new_hist(max: u64) -> Histogram<u64> {
    // Constant bounds (1 .. max, 3 significant digits) that hdrhistogram always accepts; no
    // input reaches this.
    Histogram::new_with_bounds(1, max, 3).expect("constant histogram bounds are valid")
}

impl Hists {
    fn new() -> Hists {
        let lat = || new_hist(600_000_000);
        Hists {
            latency: [lat(), lat(), lat(), lat()],
            seg_ratio: new_hist(1_000_000),
            ll: [lat(), lat(), lat(), lat()],
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Histogram<u64>> {
        self.latency
            .iter_mut()
            .chain(std::iter::once(&mut self.seg_ratio))
            .chain(self.ll.iter_mut())
    }

    pub fn part_published(&mut self) -> &mut Histogram<u64> {
        &mut self.ll[0]
    }
    pub fn playlist_published(&mut self) -> &mut Histogram<u64> {
        &mut self.ll[1]
    }
    pub fn edge(&mut self) -> &mut Histogram<u64> {
        &mut self.ll[2]
    }
    pub fn edge_final(&mut self) -> &mut Histogram<u64> {
        &mut self.ll[3]
    }
}

/// A condition on the counters that ends a run early.
pub type StopWhen = Box<dyn Fn(&Counters) -> bool>;

pub struct EngineOpts {
    pub target: Target,
    pub viewers: usize,
    pub id_offset: usize,
    pub duration: Duration,
    pub ramp: Duration,
    pub mix: Vec<f64>,
    pub timeout: Duration,
    pub bind: Option<IpAddr>,
    /// Play LL-HLS playlists the low-latency way (blocking reloads, parts, hints).
    pub ll: bool,
    /// Take a part's publication time from its file's mtime under this directory (the one
    /// the server serves) instead of the playlist's dates.
    pub published_from: Option<PathBuf>,
    /// End the run early once this holds (tests wait for events, bounded by `duration`).
    pub until: Option<StopWhen>,
}

/// Deterministic per-viewer choice in [0,1) (splitmix64), so runs are reproducible.
fn unit(id: usize, salt: u64) -> f64 {
    let mut z = (id as u64)
        .wrapping_add(salt)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Pick a variant index for viewer `id` by `mix` weights over variants sorted by bandwidth
/// from high to low. Missing weights are 0; no weights at all means equal shares.
pub fn pick_variant(id: usize, n: usize, mix: &[f64]) -> usize {
    let w: Vec<f64> = (0..n)
        .map(|i| mix.get(i).copied().unwrap_or(0.0).max(0.0))
        .collect();
    let total: f64 = w.iter().sum();
    if n == 0 {
        return 0;
    }
    if total <= 0.0 {
        return (unit(id, 1) * n as f64) as usize % n;
    }
    let mut x = unit(id, 1) * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    n - 1
}

/// A non-blocking connect to `addr`, from source address `bind` when given. The port choice
/// is deferred to connect() (IP_BIND_ADDRESS_NO_PORT), so every source address has the whole
/// ephemeral range per destination instead of one port per bind.
fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Worker wire format: `COUNTER name value` lines, then `HIST name hex(V2)` lines, then `END`.
pub fn write_results(c: &Counters, h: &mut Hists, out: &mut impl Write) -> Result<(), String> {
    let mut c = *c;
    for (k, v) in c.fields() {
        writeln!(out, "COUNTER {k} {v}").map_err(|e| e.to_string())?;
    }
    let mut ser = V2Serializer::new();
    for (name, hist) in HIST_NAMES.iter().zip(h.all()) {
        let mut v = Vec::new();
        ser.serialize(hist, &mut v)
            .map_err(|e| format!("serialize {name}: {e:?}"))?;
        writeln!(out, "HIST {name} {}", hex(&v)).map_err(|e| e.to_string())?;
    }
    writeln!(out, "END").map_err(|e| e.to_string())
}

/// Merge one worker's output into `c` and `h`.
pub fn read_results(text: &str, c: &mut Counters, h: &mut Hists) -> Result<(), String> {
    let mut de = Deserializer::new();
    let mut ended = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("COUNTER") => {
                let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
                else {
                    return Err(format!("bad worker line: {line}"));
                };
                for (name, slot) in c.fields() {
                    if name == k {
                        // `_max` counters merge as the maximum, the rest add up.
                        if name.ends_with("_max") {
                            *slot = (*slot).max(v);
                        } else {
                            *slot += v;
                        }
                    }
                }
            }
            Some("HIST") => {
                let (Some(k), Some(hx)) = (it.next(), it.next()) else {
                    return Err(format!("bad worker line: {}", &line[..line.len().min(40)]));
                };
                let bytes = unhex(hx).ok_or("worker histogram is not hex")?;
                let hist: Histogram<u64> = de
                    .deserialize(&mut &bytes[..])
                    .map_err(|e| format!("worker histogram {k}: {e:?}"))?;
                let dst = HIST_NAMES
                    .iter()
                    .zip(h.all())
                    .find_map(|(n, dst)| (*n == k).then_some(dst))
                    .ok_or_else(|| format!("unknown histogram {k}"))?;
                dst.add(&hist).map_err(|e| format!("merge {k}: {e:?}"))?;
            }
            Some("END") => ended = true,
            _ => {}
        }
    }
    if !ended {
        return Err("worker output ended early (no END line)".into());
    }
    Ok(())
}

pub struct Opts {
    pub url: String,
    pub viewers: usize,
    pub duration: Duration,
    pub ramp: Duration,
    pub mix: Vec<f64>,
    pub timeout: Duration,
    pub per_process: usize,
    pub processes: Option<usize>,
    pub report: Option<PathBuf>,
    pub label: Option<String>,
    pub ll: bool,
    pub published_from: Option<PathBuf>,
    pub command_line: String,
}

pub fn run(o: Opts) -> Result<(), String> {
    let soft = crate::machine::raise_nofile() as usize;
    let target = parse_url(&o.url)?;
    // An LL viewer holds two connections (playlists and media), a classic one one.
    let fds_per_viewer = if o.ll { 2 } else { 1 };
    let fit = soft.saturating_sub(100) / fds_per_viewer;
    let budget = fit.min(o.per_process).max(1);
    let procs = o
        .processes
        .unwrap_or(1)
        .max(o.viewers.div_ceil(budget))
        .max(1);
    if o.viewers.div_ceil(procs) > fit {
        return Err(format!(
            "{} viewers per process exceed the fd limit {soft}; raise --processes",
            o.viewers.div_ceil(procs)
        ));
    }
    let loopback = target.addr.ip().is_loopback() && target.addr.is_ipv4();
    let mut c = Counters::default();
    let mut h = Hists::new();
    let t0 = Instant::now();
    let mut layout = String::new();
    if procs == 1 {
        let (cc, hh) = run_engine(EngineOpts {
            target: target.clone(),
            viewers: o.viewers,
            id_offset: 0,
            duration: o.duration,
            ramp: o.ramp,
            mix: o.mix.clone(),
            timeout: o.timeout,
            bind: None,
            ll: o.ll,
            published_from: o.published_from.clone(),
            until: None,
        })?;
        c = cc;
        h = hh;
        layout.push_str("1 process");
    } else {
        let mut kids = Vec::new();
        let mut offset = 0;
        for k in 0..procs {
            let n = o.viewers / procs + usize::from(k < o.viewers % procs);
            let mut cmd = crate::child::own("swarm-worker")?;
            cmd.arg("--viewers")
                .arg(n.to_string())
                .arg("--id-offset")
                .arg(offset.to_string())
                .arg("--duration")
                .arg(o.duration.as_secs_f64().to_string())
                .arg("--ramp")
                .arg(o.ramp.as_secs_f64().to_string())
                .arg("--timeout")
                .arg(o.timeout.as_secs_f64().to_string())
                .arg("--rendition-mix")
                .arg(
                    o.mix
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            if loopback {
                cmd.arg("--bind").arg(format!("127.0.0.{}", k + 2));
            }
            if o.ll {
                cmd.arg("--ll");
            }
            if let Some(d) = &o.published_from {
                cmd.arg("--published-from").arg(d);
            }
            cmd.arg(&o.url);
            offset += n;
            kids.push(crate::child::spawn_reporting(
                &mut cmd,
                Stdio::null(),
                "swarm-worker",
            )?);
        }
        let _ = write!(
            layout,
            "{procs} processes x ~{} viewers{}",
            o.viewers / procs,
            if loopback {
                format!(", sources 127.0.0.2..127.0.0.{}", procs + 1)
            } else {
                String::new()
            }
        );
        let mut first_err = None;
        for mut k in kids {
            let mut text = String::new();
            if let Some(mut out) = k.stdout.take() {
                let _ = BufReader::new(&mut out).read_to_string(&mut text);
            }
            let st = k.wait().map_err(|e| e.to_string())?;
            if let Err(e) = read_results(&text, &mut c, &mut h) {
                first_err.get_or_insert(format!("swarm-worker ({st}): {e}"));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let md = render(&o, &c, &h, wall, &layout, &target);
    print!("{md}");
    if let Some(p) = &o.report {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
        corestream_common::say!("wrote {}", p.display());
    }
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.max() as f64 / 1000.0
    }
}

fn render(o: &Opts, c: &Counters, h: &Hists, wall: f64, layout: &str, t: &Target) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## swarm: {} viewers{} against {}\n",
        o.viewers,
        o.label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default(),
        o.url
    );
    let _ = writeln!(s, "Command: `{}`\n", o.command_line);
    let total: u64 = c.requests.iter().sum();
    let _ = writeln!(
        s,
        "{layout}; target {}; duration {:.0} s (joins spread over {:.0} s); wall {:.1} s; {} requests ({:.0}/s), {:.1} MB received ({:.1} MB/s); request timeout {:.0} s; rendition mix {:?} (variants high to low bandwidth).\n",
        t.addr,
        o.duration.as_secs_f64(),
        o.ramp.as_secs_f64(),
        wall,
        total,
        total as f64 / o.duration.as_secs_f64().max(0.001),
        c.bytes as f64 / 1e6,
        c.bytes as f64 / 1e6 / o.duration.as_secs_f64().max(0.001),
        o.timeout.as_secs_f64(),
        o.mix
    );
    let _ = writeln!(s, "Latency from the intended send time (ms):\n");
    let _ = writeln!(s, "| kind | requests | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for kind in Kind::ALL {
        let (i, name) = (kind.index(), kind.name());
        if c.requests[i] == 0 && kind == Kind::Part {
            continue;
        }
        let _ = writeln!(s, "{}", hist_row(name, c.requests[i], &h.latency[i]));
    }
    if c.requests[Kind::Segment.index()] > 0 {
        let r = &h.seg_ratio;
        let _ = writeln!(
            s,
            "\nSegment download time / segment duration: p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3} (above 1.0 a viewer cannot keep up).",
            ms(r, 0.5),
            ms(r, 0.9),
            ms(r, 0.99),
            max_ms(r)
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "Stalls: {} events; {} of {} viewers stalled at least once ({:.2}%); {} viewers reached playback.\n",
        c.stalls,
        c.stalled_viewers,
        c.viewers,
        100.0 * c.stalled_viewers as f64 / c.viewers.max(1) as f64,
        c.playing_viewers
    );
    let _ = writeln!(
        s,
        "Unfinished at the end (queued or in flight, not in the percentiles above): {} requests, the oldest waiting {:.0} ms.{}\n",
        c.unfinished,
        c.unfinished_oldest_ms_max as f64,
        if o.ll {
            " An LL viewer normally has a blocking reload and a hinted part waiting at any time."
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Errors: connect {}, read/reset {}, timeout {}, non-2xx {}, malformed response/playlist {} ({} in all). Requests resent once after the server closed an idle keep-alive connection: {}. Reloads skipped because the previous one was still unanswered (the viewer was behind): {}. Jumps to the live edge (the next media had left the playlist window; each also counts as a stall): {}.",
        c.err_connect, c.err_read, c.err_timeout, c.err_status, c.err_parse, c.errors(), c.reconnects, c.reloads_skipped, c.live_jumps
    );
    if o.ll {
        render_ll(&mut s, o, c, h);
    }
    s
}

/// One table row: count, then p50 / p90 / p99 / p99.9 / max in ms.
fn hist_row(name: &str, count: u64, h: &Histogram<u64>) -> String {
    format!(
        "| {name} | {count} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        ms(h, 0.5),
        ms(h, 0.9),
        ms(h, 0.99),
        ms(h, 0.999),
        max_ms(h)
    )
}

/// The LL-HLS part of the report: what a low-latency viewer sees and what it costs.
fn render_ll(s: &mut String, o: &Opts, c: &Counters, h: &Hists) {
    let secs = o.duration.as_secs_f64().max(0.001);
    let viewers = c.viewers.max(1) as f64;
    let [part_pub, pl_pub, edge, edge_final] = &h.ll;
    let _ = writeln!(s, "\n### LL-HLS\n");
    let source = match &o.published_from {
        Some(d) => format!("the mtime of its file under {}: when the packager wrote it", d.display()),
        None => "its segment's EXT-X-PROGRAM-DATE-TIME plus the durations of its parts up to it: when a packager on the playlist's clock has the part".to_string(),
    };
    let _ = writeln!(s, "Measured from each part's publication ({source}), in ms, leaving out the parts fetched at join; the distance behind the live edge is the wall-clock time minus the media time at the playhead (the buffered media's end, dated by the playlist, minus what is left to play), in ms:\n");
    let _ = writeln!(s, "| what | count | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, hh) in [
        ("part delivered, from its publication", part_pub),
        ("playlist listing a new part, from its publication", pl_pub),
        ("live-edge distance at each part", edge),
        ("live-edge distance per viewer at the end", edge_final),
    ] {
        let _ = writeln!(s, "{}", hist_row(name, hh.len(), hh));
    }
    let pl = c.requests[Kind::Playlist.index()] as f64;
    let _ = writeln!(
        s,
        "\nRequests per viewer per second: playlists {:.2} ({} blocking reloads sent; {} answers had neither the part asked for nor anything new, i.e. the server did not block and the viewer polled), parts {:.2}. Preload hints: {} asked for, {} answered 404 instead of being held until the part was published (then fetched once listed).",
        pl / viewers / secs,
        c.blocking_reloads,
        c.polls_unchanged,
        c.requests[Kind::Part.index()] as f64 / viewers / secs,
        c.hint_requests,
        c.hints_not_held
    );
}

/// `--rendition-mix 30,50,20` -> weights.
pub fn parse_mix(s: &str) -> Result<Vec<f64>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!("--rendition-mix: '{x}' is not a non-negative number (e.g. 30,50,20)")
                })
        })
        .collect()
}

/// `swarm-worker`: run the engine and print results in the wire format.
pub fn worker(o: EngineOpts) -> Result<(), String> {
    crate::machine::raise_nofile();
    let (c, mut h) = run_engine(o)?;
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    write_results(&c, &mut h, &mut lock)?;
    lock.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/live/master.m3u8").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/live/master.m3u8");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t = parse_url("http://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(parse_url("https://x/").unwrap_err().contains("https"));
        assert!(parse_url("http:///a").unwrap_err().contains("no host"));
    }

    #[test]
    fn mix_and_variant_choice() {
        assert_eq!(parse_mix("30,50,20").unwrap(), vec![30.0, 50.0, 20.0]);
        assert!(parse_mix("30,x").is_err());
        assert!(parse_mix("-1").is_err());
        let mut counts = [0usize; 3];
        for id in 0..10_000 {
            counts[pick_variant(id, 3, &[30.0, 50.0, 20.0])] += 1;
        }
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        assert!((4700..5300).contains(&counts[1]), "{counts:?}");
        assert!((1700..2300).contains(&counts[2]), "{counts:?}");
        // Zero weight is never picked; no weights -> equal shares.
        assert!((0..1000).all(|id| pick_variant(id, 2, &[0.0, 1.0]) == 1));
        let mut eq = [0usize; 2];
        for id in 0..1000 {
            eq[pick_variant(id, 2, &[])] += 1;
        }
        assert!(eq[0] > 400 && eq[1] > 400);
    }

    #[test]
    fn results_round_trip_and_merge() {
        let mut h = Hists::new();
        for v in [1000u64, 2000, 3000] {
            h.latency[1].record(v).unwrap();
        }
        h.seg_ratio.record(500).unwrap();
        let c = Counters {
            viewers: 10,
            requests: [1, 3, 2, 5],
            err_timeout: 4,
            unfinished_oldest_ms_max: 7,
            ..Counters::default()
        };
        let mut out = Vec::new();
        write_results(&c, &mut h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (mut c2, mut h2) = (Counters::default(), Hists::new());
        read_results(&text, &mut c2, &mut h2).unwrap();
        read_results(&text, &mut c2, &mut h2).unwrap();
        assert_eq!(c2.viewers, 20);
        assert_eq!(c2.requests, [2, 6, 4, 10]);
        assert_eq!(c2.err_timeout, 8);
        assert_eq!(
            c2.unfinished_oldest_ms_max, 7,
            "maxima merge as max, not sum"
        );
        assert_eq!(h2.latency[1].len(), 6);
        assert_eq!(h2.latency[1].max(), h.latency[1].max());
        assert!(read_results("COUNTER viewers 1\n", &mut c2, &mut h2).is_err());
        assert!(read_results("HIST segment zz\nEND\n", &mut c2, &mut h2).is_err());
    }
}
