//! `publish`: a live HLS stream for the swarm and the servers to chew on, without spending
//! the box's CPU on an encoder. Every segment duration it writes one new segment per
//! rendition (random bytes of the rendition's size) and rewrites each media playlist with
//! write-then-rename, like a live packager; segments that left the window are deleted.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::media::{self, filler, write_atomic};

pub struct Opts {
    pub dir: PathBuf,
    pub segment_seconds: f64,
    pub renditions: Vec<u64>,
    pub window: u64,
    pub duration: Duration,
}

fn playlist(first: u64, last: u64, dur: f64) -> String {
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
        dur.ceil() as u64
    );
    for n in first..=last {
        s.push_str(&format!("#EXTINF:{dur:.3},\nseg{n}.ts\n"));
    }
    s
}

fn master(renditions: &[u64]) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for k in renditions {
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}\nr{k}/index.m3u8\n",
            k * 1100,
            k * 1000
        ));
    }
    s
}

/// The stream being published: one new segment per rendition per `publish_next`.
struct Stream {
    dir: PathBuf,
    renditions: Vec<u64>,
    bodies: Vec<Vec<u8>>,
    window: u64,
    segment_seconds: f64,
    /// The next segment number.
    seq: u64,
}

impl Stream {
    /// Check the options, create the directories and write the master playlist.
    fn new(o: &Opts) -> Result<Stream, String> {
        if o.renditions.is_empty() || o.renditions.contains(&0) {
            return Err("--renditions needs at least one bitrate in kbit/s above 0".into());
        }
        if !(0.1..=60.0).contains(&o.segment_seconds) {
            return Err("--segment-seconds must be between 0.1 and 60".into());
        }
        fs::create_dir_all(&o.dir).map_err(|err| at(&o.dir, err))?;
        let bodies = o
            .renditions
            .iter()
            .map(|k| {
                filler(
                    (*k as f64 * 1000.0 * o.segment_seconds / 8.0 * 1.1) as u64,
                    *k,
                )
            })
            .collect();
        for k in &o.renditions {
            let d = o.dir.join(format!("r{k}"));
            fs::create_dir_all(&d).map_err(|err| at(&d, err))?;
        }
        let mp = o.dir.join("master.m3u8");
        write_atomic(&mp, master(&o.renditions).as_bytes()).map_err(|err| at(&mp, err))?;
        media::make_world_readable(&o.dir).map_err(|err| at(&o.dir, err))?;
        Ok(Stream {
            dir: o.dir.clone(),
            renditions: o.renditions.clone(),
            bodies,
            window: o.window.max(1),
            segment_seconds: o.segment_seconds,
            seq: 0,
        })
    }

    /// Publish segment `seq` of every rendition (segment, then playlist) and delete the one
    /// that has been out of the window long enough.
    fn publish_next(&mut self) -> Result<(), String> {
        let seq = self.seq;
        for (k, body) in self.renditions.iter().zip(&self.bodies) {
            let d = self.dir.join(format!("r{k}"));
            let p = d.join(format!("seg{seq}.ts"));
            write_atomic(&p, body).map_err(|err| at(&p, err))?;
            let first = (seq + 1).saturating_sub(self.window);
            let pl = d.join("index.m3u8");
            write_atomic(&pl, playlist(first, seq, self.segment_seconds).as_bytes())
                .map_err(|err| at(&pl, err))?;
            // Keep a few old segments: players that just read the previous playlist may
            // still ask for them.
            if let Some(old) = seq.checked_sub(self.window + 3) {
                let _ = fs::remove_file(d.join(format!("seg{old}.ts")));
            }
        }
        self.seq += 1;
        Ok(())
    }
}

fn at(p: &Path, err: std::io::Error) -> String {
    format!("{}: {err}", p.display())
}

pub fn run(o: Opts) -> Result<(), String> {
    run_until(o, &AtomicBool::new(false))
}

/// Publish for `o.duration` or until `stop` is set, whichever comes first.
pub fn run_until(o: Opts, stop: &AtomicBool) -> Result<(), String> {
    let mut stream = Stream::new(&o)?;
    let period = Duration::from_secs_f64(o.segment_seconds);
    let start = Instant::now();
    // Start with a full window so players can join at once.
    let prefill = stream.window;
    corestream_common::say!(
        "publish: live HLS in {} ({} renditions, {} s segments, window {prefill}); master.m3u8",
        o.dir.display(),
        o.renditions.len(),
        o.segment_seconds
    );
    for _ in 0..prefill {
        stream.publish_next()?;
    }
    loop {
        // Constant clock: segment seq is due at start + (seq - prefill + 1) * period.
        let due = period.mul_f64((stream.seq + 1 - prefill) as f64);
        loop {
            let elapsed = start.elapsed();
            if elapsed >= o.duration || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if elapsed >= due {
                break;
            }
            // Short naps so a stop request is seen promptly.
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
        stream.publish_next()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls;

    fn opts(dir: &Path, duration: Duration) -> Opts {
        Opts {
            dir: dir.to_path_buf(),
            segment_seconds: 0.2,
            renditions: vec![64, 128],
            window: 3,
            duration,
        }
    }

    fn media(dir: &Path) -> hls::Playlist {
        hls::parse(&fs::read_to_string(dir.join("r64/index.m3u8")).unwrap()).unwrap()
    }

    /// The window slides one segment per step and old segments go, without any clock.
    #[test]
    fn publishes_a_sliding_live_window() {
        let dir = std::env::temp_dir().join(format!("csbench-pub-{}", std::process::id()));
        let mut s = Stream::new(&opts(&dir, Duration::ZERO)).unwrap();
        let m = hls::parse(&fs::read_to_string(dir.join("master.m3u8")).unwrap()).unwrap();
        assert_eq!(m.variants.len(), 2);
        for _ in 0..7 {
            s.publish_next().unwrap();
        }
        let p = media(&dir);
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.segments.last().unwrap().seq, 6);
        assert_eq!(p.media_sequence, 4);
        for seg in &p.segments {
            let len = fs::metadata(dir.join("r64").join(&seg.uri)).unwrap().len();
            assert_eq!(len, (64.0 * 1000.0 * 0.2 / 8.0 * 1.1) as u64);
        }
        // Segment 0 left the window 4 segments ago (window + 3 kept), segment 1 stays.
        assert!(!dir.join("r64/seg0.ts").exists());
        assert!(dir.join("r64/seg1.ts").exists());
        assert!(Stream::new(&Opts {
            renditions: vec![],
            ..opts(&dir, Duration::ZERO)
        })
        .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The clock publishes new segments after the prefilled window until stopped. Waits
    /// for the segments it needs (bounded by a generous deadline), not for a fixed time.
    #[test]
    fn clock_publishes_until_stopped() {
        let dir = std::env::temp_dir().join(format!("csbench-pubclk-{}", std::process::id()));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (d, st) = (dir.clone(), stop.clone());
        let t = std::thread::spawn(move || run_until(opts(&d, Duration::from_secs(120)), &st));
        let deadline = Instant::now() + Duration::from_secs(60);
        let newest = || {
            fs::read_to_string(dir.join("r64/index.m3u8"))
                .ok()
                .and_then(|t| hls::parse(&t).ok())
                .and_then(|p| p.segments.last().map(|s| s.seq))
        };
        while newest().map_or(true, |n| n < 4) {
            assert!(
                Instant::now() < deadline,
                "no new segment published in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap().unwrap();
        assert_eq!(media(&dir).segments.len(), 3);
        // A short run returns by itself, after publishing at least the prefilled window.
        run(opts(&dir, Duration::from_millis(1))).unwrap();
        assert!(media(&dir).segments.len() == 3);
        fs::remove_dir_all(&dir).unwrap();
    }
}
