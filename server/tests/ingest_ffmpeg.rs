//! Real packagers against the ingest port (issue 16): ffmpeg's HLS muxer and its DASH muxer
//! (chunked CMAF, low-latency DASH) push over HTTP with `-method PUT` while another ffmpeg
//! reads the stream from the viewers' port. Passes with a note when ffmpeg is missing
//! (`apt-get install ffmpeg`).

mod common;

use common::{media_root, Server};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A packager: ffmpeg encoding a test pattern in real time and pushing it with `muxer` args.
fn push(muxer: &[&str], url: &str, secs: u32) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(muxer)
        .args(["-method", "PUT", "-http_persistent", "1", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn ffmpeg")
}

/// Files under `dir` whose names end with `suffix`.
fn count(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .count()
    })
}

/// Read `url` from the viewers' port for `secs` seconds of media with a second ffmpeg:
/// it must exit 0 and say nothing at `-v error`.
fn read(url: &str, secs: u32) {
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-nostdin", "-v", "error", "-i", url])
        .args(["-map", "0", "-t", &secs.to_string(), "-f", "null", "-"])
        .output()
        .expect("run the reading ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reader failed: {err}");
    assert!(err.trim().is_empty(), "reader reported errors: {err}");
}

/// A server with an ingest port, and a packager pushing `muxer` output to `path` on it.
fn serve_pushed(name: &str, muxer: &[&str], path: &str) -> (Server, Child, std::path::PathBuf) {
    let root = media_root(name);
    let s = Server::start(
        &root,
        &["--ingest", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
    );
    let url = format!("http://{}/{path}", s.ingest.unwrap());
    (s, push(muxer, &url, 28), root)
}

/// The packager deleted what left its window: the server answered its DELETEs.
fn assert_deleted(s: &Server) {
    let (_, metrics) = s.admin_get("/metrics");
    assert!(
        metrics.contains("corestream_ingest_requests_total{method=\"DELETE\",status=\"204\"}"),
        "{metrics}"
    );
}

/// The packager ended on its own (its -t), successfully.
fn finish(packager: Child) {
    let out = packager.wait_with_output().expect("wait for ffmpeg");
    assert!(
        out.status.success(),
        "the packager failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ffmpeg_pushes_live_hls_and_another_ffmpeg_reads_it() {
    if !common::have("ffmpeg") {
        return;
    }
    let (s, packager, root) = serve_pushed(
        "ingest-ffmpeg-hls",
        &[
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "5",
            "-hls_flags",
            "delete_segments",
        ],
        "live/hls/stream.m3u8",
    );
    let dir = root.join("live/hls");
    common::wait_for("three segments pushed", Duration::from_secs(20), || {
        count(&dir, ".ts") >= 3
    });
    let started = Instant::now();
    read(&format!("http://{}/live/hls/stream.m3u8", s.addr), 20);
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "the reader followed the live edge in real time, not a finished file"
    );
    finish(packager);
    assert_deleted(&s);
    let left = count(&dir, ".ts");
    assert!((3..=8).contains(&left), "{left} segments left on disk");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ffmpeg_pushes_low_latency_dash_and_a_reader_gets_growing_segments() {
    if !common::have("ffmpeg") {
        return;
    }
    let (s, packager, root) = serve_pushed(
        "ingest-ffmpeg-dash",
        &[
            "-f",
            "dash",
            "-streaming",
            "1",
            "-ldash",
            "1",
            "-seg_duration",
            "1",
            "-frag_type",
            "every_frame",
            "-window_size",
            "5",
            "-extra_window_size",
            "2",
            "-use_template",
            "1",
            "-use_timeline",
            "0",
            "-remove_at_exit",
            "0",
        ],
        "live/dash/manifest.mpd",
    );
    let dir = root.join("live/dash");
    common::wait_for("three segments pushed", Duration::from_secs(20), || {
        count(&dir, ".m4s") >= 4
    });
    read(&format!("http://{}/live/dash/manifest.mpd", s.addr), 15);
    // The reader asked for segments at the live edge, which were still arriving: they were
    // sent from the upload, chunk by chunk.
    assert!(
        s.metric("corestream_growing_responses_total") >= 5.0,
        "{}",
        s.admin_get("/metrics").1
    );
    finish(packager);
    assert_deleted(&s);
    // Video and audio segments beyond the window (5 + 2 extra) are gone.
    let left = count(&dir, ".m4s");
    assert!(left <= 2 * (5 + 2 + 2) + 2, "{left} segments left on disk");
    let _ = std::fs::remove_dir_all(&root);
}
