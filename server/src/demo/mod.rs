//! Built-in live demo publisher (issue 5): a thread that writes a live HLS stream (three
//! renditions, sliding window, optional Low-Latency HLS parts) into a directory, as a real
//! packager would, so `corestream --demo` has something live to serve without ffmpeg.
//!
//! The media is a 4 s clip per rendition embedded in the binary (`server/assets/demo/`, made
//! once by its `generate.sh`), looped forever: every loop adds 4 s to each PCR/PTS/DTS and
//! continuity counters carry on across files ([`ts`]), so players see one unbroken stream with
//! no EXT-X-DISCONTINUITY.
//!
//! Files appear the way players and the server's inotify watcher expect from packagers: written
//! to a dot-prefixed `*.tmp` name and renamed into place, media before the playlist that lists
//! it. Segments leave the directory only after RFC 8216 6.2.2's grace period.
//!
//! The module depends on nothing else in the crate; `Demo::start` is all the server calls.

mod clip;
pub mod playlist;
pub mod ts;

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clip::Clip;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use playlist::{LowLatency, Part, Segment, Variant};
use ts::{ContinuityCounters, CLOCK_HZ};

/// Name of the master playlist inside [`DemoConfig::dir`].
pub const MASTER: &str = "master.m3u8";
/// Marks a directory as the demo's own, so a later run may clean it up and reuse it.
const MARKER: &str = ".corestream-demo";
/// Name of each rendition's media playlist inside its directory.
pub const MEDIA_PLAYLIST: &str = "index.m3u8";

/// Settings of the demo publisher.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Directory to publish into: new or empty (it is created if missing), or one an earlier
    /// demo run published into, whose files are then removed at start. A directory with other
    /// content is refused rather than overwritten.
    pub dir: PathBuf,
    /// Complete segments listed in each media playlist (at least 3).
    pub window: usize,
    /// Publish Low-Latency HLS: EXT-X-PART parts, preload hints, server control.
    pub low_latency: bool,
    /// Segment duration; a multiple of 0.5 s (the clip's chunk), at most 30 s.
    pub segment_duration: Duration,
    /// LL-HLS part duration; a multiple of 0.5 s dividing `segment_duration`.
    pub part_duration: Duration,
    /// Media seconds published per wall-clock second; 1.0 is real time. Tests raise it.
    pub time_scale: f64,
    /// Tag every segment with EXT-X-PROGRAM-DATE-TIME.
    pub program_date_time: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            dir: std::env::temp_dir().join("corestream-demo"),
            window: 6,
            low_latency: false,
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(500),
            time_scale: 1.0,
            program_date_time: true,
        }
    }
}

/// A running demo publisher. Dropping it (or [`Demo::stop`]) stops the thread and marks every
/// media playlist ended (EXT-X-ENDLIST); the files stay for the caller to remove.
pub struct Demo {
    dir: PathBuf,
    stop_tx: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Demo {
    /// Checks the configuration, indexes the embedded clip, publishes a full window of
    /// segments at once (so a player can start immediately) and starts the publishing thread.
    /// Errors: `InvalidInput` for a bad configuration, I/O errors from the directory.
    pub fn start(cfg: DemoConfig) -> io::Result<Demo> {
        let mut publisher = Publisher::new(&cfg)?;
        publisher.prepare_dir()?;
        publisher.write_master()?;
        for _ in 0..publisher.prefill_units {
            publisher.publish_next()?;
        }
        let (stop_tx, stop_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("corestream-demo".into())
            .spawn(move || publisher.run(stop_rx))?;
        Ok(Demo {
            dir: cfg.dir,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// URL path of the master playlist relative to the published directory.
    pub fn master_path(&self) -> &str {
        MASTER
    }

    /// The directory being published into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops publishing, writes the final (ended) playlists and waits for the thread.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Closing the channel wakes the thread at once, whatever it is waiting for.
        drop(self.stop_tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                say!("corestream demo: publisher thread panicked");
            }
        }
    }
}

/// The clip is cut in chunks of this many ticks; segment and part durations are multiples.
const CHUNK_TICKS: u64 = CLOCK_HZ / 2;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Converts a duration to a whole number of clip chunks, or says what is allowed.
fn chunks_of(what: &str, d: Duration, max_secs: u64) -> io::Result<u64> {
    let nanos = d.as_nanos();
    let chunk_nanos = u128::from(CHUNK_TICKS) * 1_000_000_000 / u128::from(CLOCK_HZ);
    if nanos == 0
        || !nanos.is_multiple_of(chunk_nanos)
        || nanos > u128::from(max_secs) * 1_000_000_000
    {
        return Err(invalid(format!(
            "demo {what} {d:?} is not supported: use a multiple of 0.5 s between 0.5 s and {max_secs} s"
        )));
    }
    Ok((nanos / chunk_nanos) as u64)
}

struct Rendition {
    clip: Clip,
    dir: PathBuf,
    cc: ContinuityCounters,
    /// Complete segments still on disk, oldest first; the last `window` are listed.
    segments: VecDeque<Segment>,
    /// Parts of the segment being built (LL only) and its bytes so far.
    pending_parts: Vec<Part>,
    pending_bytes: Vec<u8>,
}

struct Publisher {
    renditions: Vec<Rendition>,
    root: PathBuf,
    window: usize,
    low_latency: bool,
    /// Clip chunks per segment and per publishing unit (a part in LL mode, else a segment).
    seg_chunks: u64,
    unit_chunks: u64,
    target_duration: u64,
    /// Prefix making this run's file names unique, so a cache (browser, CDN) holding a
    /// segment from an earlier run under a long max-age never serves it in this one.
    run: String,
    /// Units published at start in one go (a full window), and the next unit to publish.
    prefill_units: u64,
    next_unit: u64,
    /// Wall-clock time of the first sample (ms since epoch), if PROGRAM-DATE-TIME is on.
    origin_ms: Option<i64>,
    /// The instant of `origin_ms`'s clock reading: the schedule runs from it, so the
    /// PROGRAM-DATE-TIME a part carries is when it is published (not when prefill ended).
    clock_start: Instant,
    time_scale: f64,
    unit_ticks: u64,
    /// Exclusive lock on the directory's marker file, held while publishing.
    lock: Option<Flock<fs::File>>,
}

impl Publisher {
    fn new(cfg: &DemoConfig) -> io::Result<Publisher> {
        let seg_chunks = chunks_of("segment duration", cfg.segment_duration, 30)?;
        let part_chunks = chunks_of("part duration", cfg.part_duration, 30)?;
        if cfg.low_latency && !seg_chunks.is_multiple_of(part_chunks) {
            return Err(invalid(format!(
                "demo part duration {:?} does not divide the segment duration {:?}: use one that does (0.5 s, 1 s, ...)",
                cfg.part_duration, cfg.segment_duration
            )));
        }
        // RFC 8216 6.2.2: a live playlist must stay at least three target durations long.
        let target = playlist::target_duration(seg_chunks * CHUNK_TICKS);
        let min_window = (3 * target * CLOCK_HZ)
            .div_ceil(seg_chunks * CHUNK_TICKS)
            .max(3);
        if !(min_window..=10_000).contains(&(cfg.window as u64)) {
            return Err(invalid(format!(
                "demo window {} is not supported with {:?} segments: use {min_window} to 10000 \
                 segments (the playlist must span three target durations)",
                cfg.window, cfg.segment_duration
            )));
        }
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0 && cfg.time_scale <= 1000.0) {
            return Err(invalid(format!(
                "demo time scale {} is not supported: use a number above 0 and at most 1000 (1 = real time)",
                cfg.time_scale
            )));
        }
        let mut renditions = Vec::new();
        for src in clip::sources() {
            let clip = Clip::index(&src)?;
            // Rewrite every chunk once up front: the publishing thread then cannot meet a
            // packet it fails to parse.
            let mut scratch = Vec::new();
            for c in &clip.chunks {
                ts::rewrite_into(c.data, 0, &mut ContinuityCounters::default(), &mut scratch)?;
                scratch.clear();
            }
            if clip.chunks.iter().any(|c| c.duration != CHUNK_TICKS) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "embedded demo clip {} is not cut in 0.5 s chunks",
                        clip.name
                    ),
                ));
            }
            renditions.push(Rendition {
                dir: cfg.dir.join(clip.name),
                clip,
                cc: ContinuityCounters::default(),
                segments: VecDeque::new(),
                pending_parts: Vec::new(),
                pending_bytes: Vec::new(),
            });
        }
        let unit_chunks = if cfg.low_latency {
            part_chunks
        } else {
            seg_chunks
        };
        let prefill_units = cfg.window as u64 * seg_chunks / unit_chunks;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(0);
        let prefill_ms = (prefill_units * unit_chunks * CHUNK_TICKS / 90) as i64;
        Ok(Publisher {
            renditions,
            root: cfg.dir.clone(),
            window: cfg.window,
            low_latency: cfg.low_latency,
            seg_chunks,
            unit_chunks,
            target_duration: target,
            run: format!("{:x}", now.as_millis()),
            prefill_units,
            next_unit: 0,
            origin_ms: cfg.program_date_time.then_some(now_ms - prefill_ms),
            clock_start: Instant::now(),
            time_scale: cfg.time_scale,
            unit_ticks: unit_chunks * CHUNK_TICKS,
            lock: None,
        })
    }

    /// Creates the directories and removes what an earlier run left there (only names this
    /// publisher writes: `seg-*.ts`, `.*.tmp`, the playlists). Refuses a directory that holds
    /// anything not written by a demo, since the demo overwrites `master.m3u8` and the
    /// renditions' `index.m3u8`: pointing it at real content must not destroy that content.
    fn prepare_dir(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| with_path(e, &self.root))?;
        let marker = self.root.join(MARKER);
        if !marker.exists() {
            let mut entries = fs::read_dir(&self.root).map_err(|e| with_path(e, &self.root))?;
            if entries.next().is_some() {
                return Err(invalid(format!(
                    "{} is not empty and was not made by the demo; publish the demo into a new or empty directory",
                    self.root.display()
                )));
            }
            fs::write(&marker, b"written by the corestream demo publisher\n")
                .map_err(|e| with_path(e, &marker))?;
        }
        // Two publishers in one directory (say, two server processes sharing a port, both
        // started with the demo) would overwrite each other's playlists: the first one holds
        // an exclusive lock on the marker for as long as it runs.
        let file = fs::File::open(&marker).map_err(|e| with_path(e, &marker))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == Errno::EWOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another demo publisher is already writing into {}; give each its own directory",
                        self.root.display()
                    ),
                )
            } else {
                with_path(errno.into(), &marker)
            }
        })?;
        self.lock = Some(lock);
        for r in &self.renditions {
            fs::create_dir_all(&r.dir).map_err(|e| with_path(e, &r.dir))?;
            for entry in fs::read_dir(&r.dir).map_err(|e| with_path(e, &r.dir))? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let ours = (name.starts_with("seg-") && name.ends_with(".ts"))
                    || (name.starts_with('.') && name.ends_with(".tmp"))
                    || name == MEDIA_PLAYLIST;
                if ours && entry.file_type()?.is_file() {
                    remove_if_present(&entry.path())?;
                }
            }
        }
        Ok(())
    }

    fn write_master(&self) -> io::Result<()> {
        let uris: Vec<String> = self
            .renditions
            .iter()
            .map(|r| format!("{}/{MEDIA_PLAYLIST}", r.clip.name))
            .collect();
        let variants: Vec<Variant<'_>> = self
            .renditions
            .iter()
            .zip(&uris)
            .map(|(r, uri)| {
                let (peak, average) = r.clip.bitrates(self.seg_chunks as usize);
                Variant {
                    uri,
                    bandwidth: peak,
                    average_bandwidth: average,
                    width: r.clip.width,
                    height: r.clip.height,
                    frame_rate_milli: r.clip.frame_rate_milli,
                    codecs: &r.clip.codecs,
                }
            })
            .collect();
        write_atomic(&self.root, MASTER, playlist::master(&variants).as_bytes())
    }

    fn segment_uri(&self, msn: u64) -> String {
        format!("seg-{}-{msn}.ts", self.run)
    }

    fn part_uri(&self, msn: u64, part: u64) -> String {
        format!("seg-{}-{msn}.{part}.ts", self.run)
    }

    /// (MSN, part index) of a publishing unit.
    fn unit_position(&self, unit: u64) -> (u64, u64) {
        let chunk = unit * self.unit_chunks;
        (
            chunk / self.seg_chunks,
            chunk % self.seg_chunks / self.unit_chunks,
        )
    }

    /// Publishes the next unit (a part, or a whole segment without LL) of every rendition:
    /// media files first, then all playlists, then deletions. Returns the first error after
    /// trying every rendition; the timeline moves on regardless, like a live encoder's would.
    fn publish_next(&mut self) -> io::Result<()> {
        let unit = self.next_unit;
        self.next_unit += 1;
        let (msn, part) = self.unit_position(unit);
        let completes_segment = (part + 1) * self.unit_chunks == self.seg_chunks;
        let mut first_err = None;
        let mut failed = vec![false; self.renditions.len()];
        let part_uri = self.part_uri(msn, part);
        let segment_uri = self.segment_uri(msn);
        let seg_start_chunk = msn * self.seg_chunks;

        for (i, r) in self.renditions.iter_mut().enumerate() {
            let result = (|| -> io::Result<()> {
                let mut bytes = Vec::new();
                let mut independent = None;
                for k in 0..self.unit_chunks {
                    let chunk = unit * self.unit_chunks + k;
                    let n = r.clip.chunks.len() as u64;
                    let c = &r.clip.chunks[(chunk % n) as usize];
                    independent.get_or_insert(c.independent);
                    // The PTS offset of loop L is L * loop length, wrapping at 2^33 like the
                    // timestamps themselves; u128 keeps the product exact for any runtime.
                    let offset = (u128::from(chunk / n) * u128::from(r.clip.loop_duration)
                        % u128::from(ts::TS_WRAP)) as u64;
                    ts::rewrite_into(c.data, offset, &mut r.cc, &mut bytes)?;
                }
                if self.low_latency {
                    r.pending_parts.push(Part {
                        uri: part_uri.clone(),
                        duration: self.unit_ticks,
                        independent: independent.unwrap_or(false),
                    });
                }
                r.pending_bytes.extend_from_slice(&bytes);
                let segment_data = completes_segment.then(|| {
                    r.segments.push_back(Segment {
                        msn,
                        uri: segment_uri.clone(),
                        duration: self.seg_chunks * CHUNK_TICKS,
                        parts: std::mem::take(&mut r.pending_parts),
                        program_date_ms: self
                            .origin_ms
                            .map(|o| o + (seg_start_chunk * CHUNK_TICKS / 90) as i64),
                    });
                    std::mem::take(&mut r.pending_bytes)
                });
                // Files after the bookkeeping: a failed write costs players that one file (a
                // 404), never the timing or the contents of the segments that follow.
                let mut written = Ok(());
                if self.low_latency {
                    written = write_atomic(&r.dir, &part_uri, &bytes);
                }
                if let Some(data) = segment_data {
                    written = written.and(write_atomic(&r.dir, &segment_uri, &data));
                }
                written
            })();
            if let Err(e) = result {
                failed[i] = true;
                first_err.get_or_insert(e);
            }
        }

        // Playlists only after every rendition's media is in place, so the rendition reports
        // in one playlist never point at a part another rendition has not published yet. A
        // rendition whose media failed keeps its previous playlist.
        let hint = self.low_latency.then(|| {
            let (m, p) = self.unit_position(unit + 1);
            self.part_uri(m, p)
        });
        for (i, r) in self.renditions.iter().enumerate() {
            if failed[i] {
                continue;
            }
            if let Err(e) = self.write_media_playlist(r, hint.as_deref(), false) {
                first_err.get_or_insert(e);
            }
        }

        if completes_segment {
            // RFC 8216 6.2.2: a segment removed from the playlist stays available for its own
            // duration plus the playlist's, i.e. window + 1 more segments: 2 * window + 1 on
            // disk in all.
            let keep = 2 * self.window + 1;
            for r in &mut self.renditions {
                while r.segments.len() > keep {
                    let Some(old) = r.segments.pop_front() else {
                        break;
                    };
                    let mut doomed = vec![old.uri];
                    if self.low_latency {
                        let parts = self.seg_chunks / self.unit_chunks;
                        doomed.extend(
                            (0..parts).map(|p| format!("seg-{}-{}.{p}.ts", self.run, old.msn)),
                        );
                    }
                    for name in doomed {
                        if let Err(e) = remove_if_present(&r.dir.join(name)) {
                            first_err.get_or_insert(e);
                        }
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn write_media_playlist(
        &self,
        r: &Rendition,
        hint: Option<&str>,
        ended: bool,
    ) -> io::Result<()> {
        let listed = r.segments.len().saturating_sub(self.window);
        let (front, back) = r.segments.as_slices();
        let window: Vec<Segment>;
        let segments: &[Segment] = if listed >= front.len() {
            &back[listed - front.len()..]
        } else {
            window = r.segments.iter().skip(listed).cloned().collect();
            &window
        };
        let text = if self.low_latency {
            let parts_per_seg = self.seg_chunks / self.unit_chunks;
            let last = match (r.pending_parts.len(), r.segments.back()) {
                (0, Some(seg)) => (seg.msn, parts_per_seg - 1),
                (n, _) => (
                    self.unit_position(self.next_unit.saturating_sub(1)).0,
                    (n as u64).saturating_sub(1),
                ),
            };
            let reports: Vec<(String, u64, u64)> = self
                .renditions
                .iter()
                .filter(|o| o.clip.name != r.clip.name)
                .map(|o| {
                    (
                        format!("../{}/{MEDIA_PLAYLIST}", o.clip.name),
                        last.0,
                        last.1,
                    )
                })
                .collect();
            let ll = LowLatency {
                part_target: self.unit_ticks,
                pending: &r.pending_parts,
                preload_hint: hint,
                reports: &reports,
            };
            playlist::media(segments, self.target_duration, Some(&ll), ended)
        } else {
            playlist::media(segments, self.target_duration, None, ended)
        };
        write_atomic(&r.dir, MEDIA_PLAYLIST, text.as_bytes())
    }

    /// When unit `unit` is due, against the start instant: deadlines are computed from the
    /// start, never from the previous wake-up, so sleeping late never accumulates drift.
    fn deadline(&self, start: Instant, unit: u64) -> Instant {
        let n = (unit + 1).saturating_sub(self.prefill_units);
        let secs = n as f64 * self.unit_ticks as f64 / CLOCK_HZ as f64 / self.time_scale;
        start + Duration::from_secs_f64(secs.min(1e12))
    }

    fn run(mut self, stop: mpsc::Receiver<()>) {
        let start = self.clock_start;
        let mut last_error: Option<(String, Instant)> = None;
        loop {
            // Checked on every unit too, so a long catch-up burst still stops promptly.
            if !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                break;
            }
            let due = self.deadline(start, self.next_unit);
            let now = Instant::now();
            if due > now {
                match stop.recv_timeout(due - now) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    // A message or a closed channel both mean stop.
                    _ => break,
                }
            }
            // Late (machine suspended, disk stall): publish the backlog without sleeping so
            // the stream catches up with the clock and timestamps stay continuous.
            match self.publish_next() {
                Ok(()) => {
                    if last_error.take().is_some() {
                        say!(
                            "corestream demo: publishing into {} works again",
                            self.root.display()
                        );
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let repeat = last_error
                        .as_ref()
                        .is_some_and(|(m, at)| *m == msg && at.elapsed() < Duration::from_secs(10));
                    if !repeat {
                        say!(
                            "corestream demo: cannot publish into {}: {msg}",
                            self.root.display()
                        );
                        last_error = Some((msg, Instant::now()));
                    }
                }
            }
        }
        for r in &self.renditions {
            if let Err(e) = self.write_media_playlist(r, None, true) {
                say!("corestream demo: cannot write the final playlist: {e}");
            }
        }
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(e, path)),
        _ => Ok(()),
    }
}

/// Writes `dir/.name.tmp` and renames it to `dir/name`: readers see the old file or the
/// whole new one, never a prefix, and the server ignores dotfiles and `*.tmp` meanwhile. No
/// fsync: atomicity towards readers does not need it, and the demo does not outlive a crash.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let result = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, &dst));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(with_path(e, &dst));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_say_what_is_allowed() {
        let base = DemoConfig {
            dir: std::env::temp_dir().join("corestream-demo-unit-never-created"),
            ..DemoConfig::default()
        };
        let cases = [
            DemoConfig {
                window: 2,
                ..base.clone()
            },
            DemoConfig {
                segment_duration: Duration::from_millis(500),
                window: 5,
                ..base.clone()
            },
            DemoConfig {
                segment_duration: Duration::from_millis(1700),
                ..base.clone()
            },
            DemoConfig {
                segment_duration: Duration::ZERO,
                ..base.clone()
            },
            DemoConfig {
                segment_duration: Duration::from_secs(31),
                ..base.clone()
            },
            DemoConfig {
                low_latency: true,
                segment_duration: Duration::from_secs(2),
                part_duration: Duration::from_millis(1500),
                ..base.clone()
            },
            DemoConfig {
                time_scale: 0.0,
                ..base.clone()
            },
            DemoConfig {
                time_scale: f64::NAN,
                ..base.clone()
            },
        ];
        for cfg in cases {
            let err = Demo::start(cfg.clone()).err().expect("rejected");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{cfg:?}");
            assert!(err.to_string().contains("use "), "{err}");
        }
        assert!(!base.dir.exists(), "nothing created for a bad config");
    }

    /// A scratch directory removed when the test ends, passed or failed.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch_dir(tag: &str) -> Scratch {
        let d =
            std::env::temp_dir().join(format!("corestream-demo-unit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        Scratch(d)
    }

    #[test]
    fn atomic_write_cleans_up_its_temporary_file_on_failure() {
        let scratch = scratch_dir("atomic");
        let d = &scratch.0;
        fs::create_dir_all(d.join("taken")).unwrap();
        // Renaming a file over a directory fails: the error names the target, no .tmp stays.
        let err = write_atomic(d, "taken", b"x").unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert!(!d.join(".taken.tmp").exists());
        write_atomic(d, "ok.m3u8", b"#EXTM3U\n").unwrap();
        assert_eq!(fs::read(d.join("ok.m3u8")).unwrap(), b"#EXTM3U\n");
        assert!(!d.join(".ok.m3u8.tmp").exists());
    }

    #[test]
    fn an_io_error_costs_one_file_not_the_timeline() {
        let scratch = scratch_dir("ioerr");
        let d = &scratch.0;
        let cfg = DemoConfig {
            dir: d.clone(),
            window: 3,
            ..DemoConfig::default()
        };
        let mut p = Publisher::new(&cfg).unwrap();
        p.prepare_dir().unwrap();
        for _ in 0..3 {
            p.publish_next().unwrap();
        }
        fs::remove_dir_all(d.join("480p")).unwrap();
        let err = p.publish_next().unwrap_err();
        assert!(err.to_string().contains("480p"), "{err}");
        // The other renditions went on; 480p resumes once its directory is back.
        assert!(fs::read_to_string(d.join("720p/index.m3u8"))
            .unwrap()
            .contains("-3.ts"));
        fs::create_dir_all(d.join("480p")).unwrap();
        p.publish_next().unwrap();
        let text = fs::read_to_string(d.join("480p/index.m3u8")).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{text}");
        assert!(text.contains("-3.ts") && text.contains("-4.ts"), "{text}");
        // Timestamps kept running through the failure: segment 4 starts 8 s after segment 0.
        let first_pts = |data: &[u8]| {
            ts::packets(data)
                .unwrap()
                .enumerate()
                .find_map(|(i, pkt)| ts::pes_pts(pkt, i).unwrap())
                .unwrap()
        };
        let seg4 = fs::read(d.join("480p").join(p.segment_uri(4))).unwrap();
        let clip_start = first_pts(p.renditions[2].clip.chunks[0].data);
        assert_eq!(first_pts(&seg4) - clip_start, 8 * CLOCK_HZ);
    }

    #[test]
    fn units_map_to_segments_and_parts() {
        let cfg = DemoConfig {
            low_latency: true,
            ..DemoConfig::default()
        };
        let p = Publisher::new(&cfg).unwrap();
        assert_eq!(p.prefill_units, 24);
        assert_eq!(p.unit_position(0), (0, 0));
        assert_eq!(p.unit_position(5), (1, 1));
        assert_eq!(p.unit_position(7), (1, 3));
        let start = Instant::now();
        assert_eq!(p.deadline(start, 24), start + Duration::from_millis(500));
        assert_eq!(p.deadline(start, 27), start + Duration::from_secs(2));
        let short = DemoConfig {
            segment_duration: Duration::from_millis(500),
            window: 6,
            ..DemoConfig::default()
        };
        assert_eq!(Publisher::new(&short).unwrap().target_duration, 1);
        let plain = Publisher::new(&DemoConfig::default()).unwrap();
        assert_eq!(plain.prefill_units, 6);
        assert_eq!(plain.unit_position(6), (6, 0));
        assert_eq!(plain.deadline(start, 6), start + Duration::from_secs(2));
    }
}
