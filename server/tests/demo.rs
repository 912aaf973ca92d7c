//! The built-in live demo publisher, observed the way a player and a server see it: real files
//! in a temporary directory, checked with real ffprobe/ffmpeg child processes.
//! Tests that need ffprobe or ffmpeg print why and pass when the tool is missing
//! (`apt-get install ffmpeg` provides both).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

mod common;

use corestream::demo::{ts, Demo, DemoConfig};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "corestream-demo-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cfg(dir: &Path, low_latency: bool, time_scale: f64) -> DemoConfig {
    DemoConfig {
        dir: dir.to_path_buf(),
        low_latency,
        time_scale,
        ..DemoConfig::default()
    }
}

/// An EXT-X-PART: (duration, URI, INDEPENDENT=YES).
type PartLine = (f64, String, bool);

/// A media playlist, parsed just enough to check the publisher's rules.
#[derive(Debug, Default)]
struct Media {
    text: String,
    version: u32,
    target_duration: u64,
    media_sequence: u64,
    /// (EXTINF seconds, URI, parts before it: (duration, URI, independent))
    segments: Vec<(f64, String, Vec<PartLine>)>,
    /// Parts after the last EXTINF (segment in progress).
    pending: Vec<PartLine>,
    preload_hint: Option<String>,
    server_control: Option<String>,
    part_target: Option<f64>,
    reports: Vec<String>,
    ended: bool,
}

/// An attribute of a tag line (`#EXT-X-PART:DURATION=...`).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let list = line.split_once(':').map_or(line, |(_, l)| l);
    corestream_common::hls::attr(list, name)
}

fn parse_media(text: &str) -> Media {
    let mut m = Media {
        text: text.to_string(),
        ..Media::default()
    };
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "{text}");
    let mut extinf = None;
    let mut parts = Vec::new();
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            m.version = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target_duration = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            m.media_sequence = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
        } else if line.starts_with("#EXT-X-PART:") {
            parts.push((
                attr(line, "DURATION").unwrap().parse().unwrap(),
                attr(line, "URI").unwrap().to_string(),
                attr(line, "INDEPENDENT") == Some("YES"),
            ));
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attr(line, "TYPE"), Some("PART"));
            m.preload_hint = Some(attr(line, "URI").unwrap().to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            m.server_control = Some(v.to_string());
        } else if line.starts_with("#EXT-X-PART-INF:") {
            m.part_target = Some(attr(line, "PART-TARGET").unwrap().parse().unwrap());
        } else if line.starts_with("#EXT-X-RENDITION-REPORT:") {
            m.reports.push(line.to_string());
        } else if line == "#EXT-X-ENDLIST" {
            m.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let d = extinf.take().expect("EXTINF before every URI");
            m.segments
                .push((d, line.to_string(), std::mem::take(&mut parts)));
        }
    }
    m.pending = parts;
    m
}

fn read_media(dir: &Path, rendition: &str) -> Media {
    parse_media(&fs::read_to_string(dir.join(rendition).join("index.m3u8")).unwrap())
}

/// MSN encoded in our segment names: `seg-<run>-<msn>.ts`.
fn msn_of(uri: &str) -> u64 {
    uri.trim_end_matches(".ts")
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// (name, RESOLUTION, STREAM-INF line) of every variant.
fn read_master(dir: &Path) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(dir.join("master.m3u8")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#EXTM3U");
    let mut out = Vec::new();
    for w in lines.windows(2) {
        if w[0].starts_with("#EXT-X-STREAM-INF:") {
            let name = w[1].strip_suffix("/index.m3u8").unwrap().to_string();
            out.push((
                name,
                attr(w[0], "RESOLUTION").unwrap().to_string(),
                w[0].to_string(),
            ));
        }
    }
    out
}

/// Runs ffprobe on a file: it must exit 0 and print nothing at `-v error`.
/// Returns (width x height of the video stream, packets: (stream, pts, duration, keyframe)).
fn probe(path: &Path) -> (String, Vec<(u32, u64, u64, bool)>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height:packet=stream_index,pts,duration,flags",
            "-of",
            "csv",
        ])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {}: {stderr}",
        path.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut size = String::new();
    let mut packets = Vec::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f[0] {
            "packet" => packets.push((
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].starts_with('K'),
            )),
            "stream" if f[1] == "video" => size = format!("{}x{}", f[2], f[3]),
            _ => {}
        }
    }
    (size, packets)
}

/// Per stream: (first PTS, PTS after the last packet), checking the packets in between are
/// gapless and in order (no B-frames in the clip, so PTS order is decode order).
fn span(packets: &[(u32, u64, u64, bool)], stream: u32) -> (u64, u64) {
    let mut it = packets.iter().filter(|p| p.0 == stream);
    let first = it.next().expect("stream present");
    let mut end = first.1 + first.2;
    for p in it {
        assert_eq!(p.1, end, "gap inside a file on stream {stream}");
        end = p.1 + p.2;
    }
    (first.1, end)
}

/// Files named like ours (`seg-*`) present in a rendition directory, and temporary files.
fn listing(dir: &Path) -> (BTreeSet<String>, Vec<String>) {
    let mut segs = BTreeSet::new();
    let mut temps = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            temps.push(name);
        } else if name.starts_with("seg-") {
            segs.insert(name);
        }
    }
    (segs, temps)
}

/// Continuity counters must continue across consecutive files of one stream.
fn assert_cc_continuous(files: &[Vec<u8>]) {
    let mut last: Vec<Option<u8>> = vec![None; 8192];
    for (n, data) in files.iter().enumerate() {
        for (i, pkt) in ts::packets(data).unwrap().enumerate() {
            let h = ts::parse_header(pkt, i).unwrap();
            let afc_payload = pkt[3] & 0x10 != 0;
            let slot = &mut last[usize::from(h.pid)];
            if let Some(prev) = *slot {
                let want = if afc_payload { (prev + 1) & 15 } else { prev };
                assert_eq!(
                    h.continuity_counter, want,
                    "file {n} packet {i} PID {}",
                    h.pid
                );
            }
            *slot = Some(h.continuity_counter);
        }
    }
}

#[test]
fn live_window_advances_on_the_clock_and_segments_are_gapless_media() {
    if !common::have("ffprobe") {
        return;
    }
    let tmp = TempDir::new();
    let scale = 8.0;
    let started = Instant::now();
    let demo = Demo::start(cfg(&tmp.0, false, scale)).unwrap();
    assert_eq!(demo.master_path(), "master.m3u8");

    // A full window is there at once, so players can start immediately.
    let master = read_master(&tmp.0);
    let names: Vec<&str> = master.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["720p", "1080p", "480p"]);
    for (_, _, inf) in &master {
        for a in [
            "BANDWIDTH",
            "AVERAGE-BANDWIDTH",
            "RESOLUTION",
            "FRAME-RATE",
            "CODECS",
        ] {
            assert!(attr(inf, a).is_some(), "{a} missing: {inf}");
        }
        assert!(attr(inf, "CODECS").unwrap().starts_with("avc1.4d"), "{inf}");
        assert!(
            attr(inf, "CODECS").unwrap().ends_with(",mp4a.40.2"),
            "{inf}"
        );
    }
    let first = read_media(&tmp.0, "720p");
    assert_eq!(first.media_sequence, 0);
    assert_eq!(first.segments.len(), 6);
    assert_eq!(first.version, 3);

    sleep(Duration::from_millis(2600));
    // Segments appear on a clock scheduled from the start, so the count matches the elapsed
    // time: never ahead of it, and behind by at most a little when this machine is loaded.
    let scratch = TempDir::new();
    for (name, resolution, inf) in &master {
        let before = started.elapsed().as_secs_f64();
        let m = read_media(&tmp.0, name);
        // Copy the listed segments at once: at this time scale they are deleted 3.25 s later.
        let files: Vec<Vec<u8>> = m
            .segments
            .iter()
            .map(|(_, uri, _)| fs::read(tmp.0.join(name).join(uri)).expect("listed segment exists"))
            .collect();
        let after = started.elapsed().as_secs_f64();
        let last = msn_of(&m.segments.last().unwrap().1);
        let newest = 5 + (after * scale / 2.0) as u64;
        let oldest = (5 + (before * scale / 2.0) as u64).saturating_sub(2);
        assert!(
            (oldest..=newest).contains(&last),
            "{name}: last MSN {last}, expected {oldest}..={newest} after {before:.2}-{after:.2}s"
        );
        assert_eq!(m.segments.len(), 6, "window size");
        assert_eq!(m.media_sequence, last - 5);
        assert_eq!(m.target_duration, 2);
        assert!(!m.ended && m.preload_hint.is_none() && m.server_control.is_none());
        assert_eq!(m.text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 6);
        let bandwidth: u64 = attr(inf, "BANDWIDTH").unwrap().parse().unwrap();

        let mut spans: Vec<[(u64, u64); 2]> = Vec::new();
        for (k, (d, uri, parts)) in m.segments.iter().enumerate() {
            assert!(parts.is_empty());
            assert_eq!(msn_of(uri), m.media_sequence + k as u64, "consecutive MSNs");
            assert!(d.round() as u64 <= m.target_duration, "EXTINF {d} > target");
            assert!(!uri.contains(".tmp") && !uri.starts_with('.'));
            let data = &files[k];
            assert!(
                (data.len() as f64 * 8.0 / d) <= bandwidth as f64,
                "{uri} exceeds BANDWIDTH {bandwidth}"
            );
            let path = scratch.0.join(uri);
            fs::write(&path, data).unwrap();
            let (size, packets) = probe(&path);
            assert_eq!(&size, resolution, "{name}: RESOLUTION matches the media");
            // Every segment starts with a keyframe.
            assert!(
                packets.iter().find(|p| p.0 == 0).unwrap().3,
                "{uri} starts with IDR"
            );
            let video = span(&packets, 0);
            assert!(
                ((video.1 - video.0) as f64 / 90_000.0 - d).abs() < 0.001,
                "EXTINF {d} matches media"
            );
            spans.push([video, span(&packets, 1)]);
        }
        // The window covers 12 s, i.e. three loops of the 4 s clip: timestamps must run on
        // without a gap or a step across every segment boundary and every loop point.
        for w in spans.windows(2) {
            for (s, (next, prev)) in w[1].iter().zip(&w[0]).enumerate() {
                assert_eq!(next.0, prev.1, "{name}: stream {s} jumps between segments");
            }
        }
        assert_cc_continuous(&files);
    }

    demo.stop();
    for (name, _, _) in &master {
        let m = read_media(&tmp.0, name);
        assert!(m.ended, "stop() ends the playlist");
        // RFC 8216 6.2.2 grace: 2 * window + 1 segments on disk, older ones deleted.
        let last = msn_of(&m.segments.last().unwrap().1);
        let (segs, _) = listing(&tmp.0.join(name));
        let on_disk: BTreeSet<u64> = segs.iter().map(|s| msn_of(s)).collect();
        assert_eq!(on_disk, (last - 12..=last).collect(), "{name}");
        assert!(!tmp.0.join(name).join(&first.segments[0].1).exists());
        let (_, temps) = listing(&tmp.0.join(name));
        assert!(temps.is_empty(), "temporary files left: {temps:?}");
    }
    let (_, temps) = listing(&tmp.0);
    assert!(temps.is_empty());
}

#[test]
fn low_latency_parts_are_real_media_and_follow_the_draft_rules() {
    if !common::have("ffprobe") {
        return;
    }
    let tmp = TempDir::new();
    let demo = Demo::start(cfg(&tmp.0, true, 4.0)).unwrap();
    sleep(Duration::from_millis(700));

    let m = read_media(&tmp.0, "720p");
    // Copy every listed file at once: the checks below may outlast them at 4x speed.
    let dir = tmp.0.join("720p");
    let copies: HashMap<String, Vec<u8>> = m
        .segments
        .iter()
        .flat_map(|(_, uri, parts)| std::iter::once(uri).chain(parts.iter().map(|p| &p.1)))
        .chain(m.pending.iter().map(|p| &p.1))
        .map(|u| {
            (
                u.clone(),
                fs::read(dir.join(u)).expect("listed file exists"),
            )
        })
        .collect();
    let scratch = TempDir::new();
    assert!(m.version >= 9, "EXT-X-SKIP delta updates need version 9");
    let part_target = m.part_target.expect("EXT-X-PART-INF");
    assert_eq!(part_target, 0.5);
    let sc = m.server_control.clone().expect("EXT-X-SERVER-CONTROL");
    assert!(sc.contains("CAN-BLOCK-RELOAD=YES"), "{sc}");
    let hold: f64 = attr(&sc, "PART-HOLD-BACK").unwrap().parse().unwrap();
    assert!(hold >= 3.0 * part_target, "{sc}");
    let skip: f64 = attr(&sc, "CAN-SKIP-UNTIL").unwrap().parse().unwrap();
    assert!(skip >= 6.0 * m.target_duration as f64, "{sc}");
    assert_eq!(m.reports.len(), 2, "a rendition report per other rendition");
    assert!(m
        .reports
        .iter()
        .any(|r| r.contains("URI=\"../1080p/index.m3u8\"")));

    // Parts are listed only for the last three target durations of the playlist.
    let total: f64 =
        m.segments.iter().map(|s| s.0).sum::<f64>() + m.pending.iter().map(|p| p.0).sum::<f64>();
    let mut start = 0.0;
    let mut with_parts = 0;
    for (d, uri, parts) in &m.segments {
        let recent = total - start <= 3.0 * m.target_duration as f64 + 1e-9;
        assert_eq!(
            !parts.is_empty(),
            recent,
            "{uri} at {start}/{total}\n{}",
            m.text
        );
        if recent {
            with_parts += 1;
            // A segment is exactly its parts, byte for byte, and its duration their sum.
            assert_eq!(parts.len(), 4);
            let sum: f64 = parts.iter().map(|p| p.0).sum();
            assert!((sum - d).abs() < 1e-6);
            let mut joined: Vec<u8> = Vec::new();
            let mut prev_end = None;
            for (pd, puri, independent) in parts {
                assert!(*pd <= part_target);
                joined.extend(&copies[puri]);
                let path = scratch.0.join(puri);
                fs::write(&path, &copies[puri]).unwrap();
                // Each part decodes on its own (PAT/PMT, SPS/PPS and an IDR up front), and
                // INDEPENDENT=YES is claimed exactly when it starts with a keyframe.
                let (_, packets) = probe(&path);
                let first_video = packets.iter().find(|p| p.0 == 0).unwrap();
                assert_eq!(*independent, first_video.3, "{puri}");
                let (s0, e0) = span(&packets, 0);
                if let Some(prev) = prev_end {
                    assert_eq!(s0, prev, "{puri}: parts are gapless");
                }
                assert!(((e0 - s0) as f64 / 90_000.0 - pd).abs() < 1e-3);
                prev_end = Some(e0);
            }
            assert_eq!(joined, copies[uri], "{uri} == its parts");
        }
        start += d;
    }
    assert!(with_parts >= 2, "{}", m.text);

    // The preload hint names the next part: not there yet, published within a part duration
    // (0.125 s at this time scale), and then listed.
    let m = read_media(&tmp.0, "720p");
    let hint = m.preload_hint.clone().expect("EXT-X-PRELOAD-HINT");
    let listed = |m: &Media| {
        m.segments
            .iter()
            .flat_map(|s| &s.2)
            .chain(&m.pending)
            .any(|p| p.1 == hint)
    };
    assert!(!listed(&m));
    // The playlist that lists it is written only once the part is in place.
    let deadline = Instant::now() + Duration::from_secs(2);
    let later = loop {
        let later = read_media(&tmp.0, "720p");
        if listed(&later) {
            break later;
        }
        assert!(Instant::now() < deadline, "hinted part {hint} never listed");
        sleep(Duration::from_millis(10));
    };
    assert!(tmp.0.join("720p").join(&hint).exists());
    assert_ne!(later.preload_hint, Some(hint));
    assert!(!later.text.contains(".tmp"));
    for p in later
        .segments
        .iter()
        .flat_map(|s| &s.2)
        .chain(&later.pending)
    {
        assert!(!p.1.starts_with('.'), "{}", p.1);
    }

    drop(demo);
    let end = read_media(&tmp.0, "720p");
    assert!(end.ended);
    assert!(end.preload_hint.is_none() && end.pending.is_empty());
    assert!(!end.text.contains("#EXT-X-PART:"), "{}", end.text);
    for (_, uri, _) in &end.segments {
        assert!(tmp.0.join("720p").join(uri).exists());
    }
}

#[test]
fn restart_in_the_same_directory_uses_new_names_and_clears_old_files() {
    let tmp = TempDir::new();
    let a = Demo::start(cfg(&tmp.0, true, 50.0)).unwrap();
    sleep(Duration::from_millis(300));
    a.stop();
    let old = listing(&tmp.0.join("480p")).0;
    assert!(!old.is_empty());
    sleep(Duration::from_millis(5));
    let b = Demo::start(cfg(&tmp.0, false, 1.0)).unwrap();
    let new = listing(&tmp.0.join("480p")).0;
    assert_eq!(new.len(), 6, "{new:?}");
    assert!(
        new.is_disjoint(&old),
        "a cache holding the old run's files cannot collide"
    );
    let m = read_media(&tmp.0, "480p");
    assert!(
        m.pending.is_empty() && m.part_target.is_none(),
        "plain HLS this time"
    );
    b.stop();
}

#[test]
fn a_directory_with_other_content_is_refused_and_left_alone() {
    let tmp = TempDir::new();
    fs::create_dir(tmp.0.join("720p")).unwrap();
    fs::write(tmp.0.join("720p/index.m3u8"), b"#EXTM3U\nmine\n").unwrap();
    let err = Demo::start(cfg(&tmp.0, false, 1.0)).err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        fs::read(tmp.0.join("720p/index.m3u8")).unwrap(),
        b"#EXTM3U\nmine\n"
    );
    assert!(!tmp.0.join("master.m3u8").exists());
}

#[test]
fn a_second_publisher_in_the_same_directory_is_refused() {
    let tmp = TempDir::new();
    let first = Demo::start(cfg(&tmp.0, false, 1.0)).unwrap();
    let before = fs::read(tmp.0.join("720p/index.m3u8")).unwrap();
    let err = Demo::start(cfg(&tmp.0, true, 1.0)).err().expect("refused");
    assert!(err.to_string().contains("already writing"), "{err}");
    assert_eq!(fs::read(tmp.0.join("720p/index.m3u8")).unwrap(), before);
    first.stop();
    // Once the first one stopped, the directory can be published into again.
    Demo::start(cfg(&tmp.0, true, 1.0)).unwrap().stop();
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error() {
    let tmp = TempDir::new();
    let file = tmp.0.join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = Demo::start(cfg(&file.join("sub"), false, 1.0))
        .err()
        .expect("error");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

/// What issue 5 asks of the stream: `ffmpeg -re -i <media playlist> -c copy -f null -` follows
/// it live for 20 s without a single warning (ffmpeg's hls demuxer reloads local playlists
/// like remote ones). Real time, so this test takes about 20 s.
#[test]
fn ffmpeg_follows_the_live_stream_for_20_seconds() {
    if !common::have("ffmpeg") {
        return;
    }
    let tmp = TempDir::new();
    let demo = Demo::start(cfg(&tmp.0, false, 1.0)).unwrap();
    let started = Instant::now();
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "warning", "-re", "-i"])
        .arg(tmp.0.join("720p/index.m3u8"))
        .args(["-t", "20", "-map", "0", "-c", "copy", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffmpeg did not finish in 45 s");
        }
        sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let took = started.elapsed();
    demo.stop();
    assert!(status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffmpeg complained: {stderr}");
    assert!(
        took >= Duration::from_secs(18),
        "read in real time, took {took:?}"
    );
}
