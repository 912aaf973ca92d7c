//! `publish`: a live HLS stream for the swarm and the servers to chew on, without spending
//! the box's CPU on an encoder. Every segment duration it writes one new segment per
//! rendition (random bytes of the rendition's size) and rewrites each media playlist with
//! write-then-rename, like a live packager; segments that left the window are deleted.

use std::fs;
use std::path::PathBuf;
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

pub fn run(o: Opts) -> Result<(), String> {
    if o.renditions.is_empty() || o.renditions.contains(&0) {
        return Err("--renditions needs at least one bitrate in kbit/s above 0".into());
    }
    if !(0.1..=60.0).contains(&o.segment_seconds) {
        return Err("--segment-seconds must be between 0.1 and 60".into());
    }
    let window = o.window.max(1);
    let e = |p: &std::path::Path, err: std::io::Error| format!("{}: {err}", p.display());
    fs::create_dir_all(&o.dir).map_err(|err| e(&o.dir, err))?;
    let bodies: Vec<Vec<u8>> = o
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
        fs::create_dir_all(&d).map_err(|err| e(&d, err))?;
    }
    let mp = o.dir.join("master.m3u8");
    write_atomic(&mp, master(&o.renditions).as_bytes()).map_err(|err| e(&mp, err))?;
    media::make_world_readable(&o.dir).map_err(|err| e(&o.dir, err))?;
    let period = Duration::from_secs_f64(o.segment_seconds);
    let start = Instant::now();
    let mut seq: u64 = 0;
    // Start with a full window so players can join at once.
    let prefill = window;
    eprintln!(
        "publish: live HLS in {} ({} renditions, {} s segments, window {window}); master.m3u8",
        o.dir.display(),
        o.renditions.len(),
        o.segment_seconds
    );
    loop {
        let burst = if seq == 0 { prefill } else { 1 };
        for _ in 0..burst {
            for (k, body) in o.renditions.iter().zip(&bodies) {
                let d = o.dir.join(format!("r{k}"));
                let p = d.join(format!("seg{seq}.ts"));
                write_atomic(&p, body).map_err(|err| e(&p, err))?;
                let first = (seq + 1).saturating_sub(window);
                let pl = d.join("index.m3u8");
                write_atomic(&pl, playlist(first, seq, o.segment_seconds).as_bytes())
                    .map_err(|err| e(&pl, err))?;
                // Keep a few old segments: players that just read the previous playlist
                // may still ask for them.
                if let Some(old) = seq.checked_sub(window + 3) {
                    let _ = fs::remove_file(d.join(format!("seg{old}.ts")));
                }
            }
            seq += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= o.duration {
            return Ok(());
        }
        // Constant clock: the next segment is due at start + (seq - prefill + 1) * period.
        let due = period.mul_f64((seq + 1 - prefill) as f64);
        std::thread::sleep(due.saturating_sub(elapsed).min(o.duration - elapsed));
        if start.elapsed() >= o.duration {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls;

    #[test]
    fn publishes_a_sliding_live_window() {
        let dir = std::env::temp_dir().join(format!("csbench-pub-{}", std::process::id()));
        run(Opts {
            dir: dir.clone(),
            segment_seconds: 0.2,
            renditions: vec![64, 128],
            window: 3,
            duration: Duration::from_millis(700),
        })
        .unwrap();
        let m = hls::parse(&fs::read_to_string(dir.join("master.m3u8")).unwrap()).unwrap();
        assert_eq!(m.variants.len(), 2);
        let p = hls::parse(&fs::read_to_string(dir.join("r64/index.m3u8")).unwrap()).unwrap();
        assert_eq!(p.segments.len(), 3);
        // Prefilled 3, then about one every 0.2 s for 0.7 s.
        let last = p.segments.last().unwrap().seq;
        assert!((4..=7).contains(&last), "{last}");
        assert_eq!(p.media_sequence, last - 2);
        for s in &p.segments {
            let len = fs::metadata(dir.join("r64").join(&s.uri)).unwrap().len();
            assert_eq!(len, (64.0 * 1000.0 * 0.2 / 8.0 * 1.1) as u64);
        }
        assert!(!dir.join("r64/seg0.ts").exists() || last < 6);
        assert!(run(Opts {
            dir: dir.clone(),
            segment_seconds: 2.0,
            renditions: vec![],
            window: 3,
            duration: Duration::from_millis(1),
        })
        .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
