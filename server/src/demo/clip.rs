//! The embedded demo clip: per rendition, 8 MPEG-TS chunks of 0.5 s (4 s in all) made once by
//! `server/assets/demo/generate.sh`. At start the chunks are indexed (durations, codecs, which
//! chunks begin with an IDR frame) so the publisher never has to look inside them again.

use super::ts::{self, TsError, CLOCK_HZ, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264};

/// The chunks of each rendition, in play order.
macro_rules! chunks {
    ($dir:literal) => {
        [
            include_bytes!(concat!("../../assets/demo/", $dir, "/c0.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c1.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c2.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c3.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c4.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c5.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c6.ts")).as_slice(),
            include_bytes!(concat!("../../assets/demo/", $dir, "/c7.ts")).as_slice(),
        ]
    };
}

/// A rendition as the generator made it. Width and height are not parsed from the SPS: the
/// generator fixes them, and the integration tests compare them with what ffprobe reports.
pub struct Source {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub chunks: [&'static [u8]; 8],
}

/// Master playlist order. The first variant is the one most players start with (RFC 8216
/// 6.3.1 lets clients pick, hls.js and Safari take the first), so the middle rung goes first.
pub fn sources() -> [Source; 3] {
    [
        Source {
            name: "720p",
            width: 1280,
            height: 720,
            chunks: chunks!("720p"),
        },
        Source {
            name: "1080p",
            width: 1920,
            height: 1080,
            chunks: chunks!("1080p"),
        },
        Source {
            name: "480p",
            width: 854,
            height: 480,
            chunks: chunks!("480p"),
        },
    ]
}

/// What the publisher needs to know about one chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub data: &'static [u8],
    /// Duration in 90 kHz ticks (first video PTS of the next chunk, looping, minus this one's).
    pub duration: u64,
    /// The first video access unit is an IDR picture, so the chunk decodes on its own.
    pub independent: bool,
}

/// An indexed rendition.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub chunks: Vec<Chunk>,
    /// Length of one loop in 90 kHz ticks; every clock is shifted by this much per loop.
    pub loop_duration: u64,
    /// Video frame rate as frames per 1000 s, for FRAME-RATE.
    pub frame_rate_milli: u64,
    /// RFC 6381 codec string, e.g. `avc1.4d401f,mp4a.40.2`.
    pub codecs: String,
}

impl Clip {
    /// Indexes one rendition; any surprise in the embedded files is an `InvalidData` error.
    pub fn index(src: &Source) -> Result<Clip, TsError> {
        let first = src.chunks.first().ok_or(TsError::Psi("no chunks"))?;
        let streams = ts::program_streams(first)?;
        let video = streams
            .iter()
            .find(|s| s.stream_type == STREAM_TYPE_H264)
            .ok_or(TsError::Psi("no H.264 stream in the PMT"))?
            .pid;
        let audio = streams
            .iter()
            .find(|s| s.stream_type == STREAM_TYPE_AAC_ADTS)
            .map(|s| s.pid);

        // Video PTS of every frame, per chunk.
        let mut chunk_pts: Vec<Vec<u64>> = Vec::new();
        for data in src.chunks {
            // Every chunk must be readable on its own, so it must carry its own PAT/PMT.
            if ts::program_streams(data)? != streams {
                return Err(TsError::Psi("chunks disagree on the program map"));
            }
            let mut pts = Vec::new();
            for (i, pkt) in ts::packets(data)?.enumerate() {
                if ts::parse_header(pkt, i)?.pid == video {
                    if let Some(p) = ts::pes_pts(pkt, i)? {
                        pts.push(p);
                    }
                }
            }
            if pts.is_empty() {
                return Err(TsError::Psi("a chunk without video"));
            }
            chunk_pts.push(pts);
        }
        let all: Vec<u64> = chunk_pts.iter().flatten().copied().collect();
        let frame = all
            .windows(2)
            .map(|w| w[1].wrapping_sub(w[0]))
            .min()
            .filter(|&d| d > 0 && d < CLOCK_HZ)
            .ok_or(TsError::Psi("video timestamps do not increase"))?;
        let (&start, &last) = (all.first().unwrap_or(&0), all.last().unwrap_or(&0));
        let loop_duration = last - start + frame;

        let mut chunks = Vec::new();
        for (n, data) in src.chunks.iter().enumerate() {
            let begin = chunk_pts[n][0];
            let end = chunk_pts.get(n + 1).map_or(start + loop_duration, |p| p[0]);
            let es = ts::first_pes_payload(data, video)?;
            // The first picture decides: IDR slices are NAL type 5, other slices 1.
            let independent = ts::annexb_nal_units(&es)
                .iter()
                .find(|(t, _)| matches!(t, 1 | 5))
                .is_some_and(|(t, _)| *t == 5);
            chunks.push(Chunk {
                data,
                duration: end
                    .checked_sub(begin)
                    .ok_or(TsError::Psi("chunks out of order"))?,
                independent,
            });
        }

        let es = ts::first_pes_payload(first, video)?;
        let sps = ts::annexb_nal_units(&es)
            .into_iter()
            .find(|(t, _)| *t == 7)
            .map(|(_, nal)| nal)
            .filter(|nal| nal.len() >= 4)
            .ok_or(TsError::Psi("first chunk has no SPS"))?;
        let mut codecs = format!("avc1.{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]);
        if let Some(pid) = audio {
            let adts = ts::first_pes_payload(first, pid)?;
            if adts.len() < 7 || adts[0] != 0xff || adts[1] & 0xf0 != 0xf0 {
                return Err(TsError::Psi("audio is not ADTS"));
            }
            // ADTS profile is the MPEG-4 audio object type minus one.
            codecs.push_str(&format!(",mp4a.40.{}", (adts[2] >> 6) + 1));
        }

        Ok(Clip {
            name: src.name,
            width: src.width,
            height: src.height,
            chunks,
            loop_duration,
            frame_rate_milli: CLOCK_HZ * 1000 / frame,
            codecs,
        })
    }

    /// Peak bit rate over every run of `len` consecutive chunks (looping), and the average over
    /// the loop, in bits per second: BANDWIDTH and AVERAGE-BANDWIDTH for a segment of `len`
    /// chunks (RFC 8216 4.3.4.2).
    pub fn bitrates(&self, len: usize) -> (u64, u64) {
        let n = self.chunks.len();
        let mut peak = 0;
        for first in 0..n {
            let (bytes, ticks) = (0..len.max(1))
                .map(|k| &self.chunks[(first + k) % n])
                .fold((0u64, 0u64), |(b, t), c| {
                    (b + c.data.len() as u64, t + c.duration)
                });
            peak = peak.max(bytes * 8 * CLOCK_HZ / ticks.max(1));
        }
        let bytes: u64 = self.chunks.iter().map(|c| c.data.len() as u64).sum();
        (peak, bytes * 8 * CLOCK_HZ / self.loop_duration.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clips() -> Vec<Clip> {
        sources()
            .iter()
            .map(|s| Clip::index(s).expect("embedded clip indexes"))
            .collect()
    }

    #[test]
    fn embedded_clips_are_four_seconds_of_half_second_independent_chunks() {
        for clip in clips() {
            assert_eq!(clip.loop_duration, 4 * CLOCK_HZ, "{}", clip.name);
            assert_eq!(clip.frame_rate_milli, 30_000);
            assert_eq!(clip.chunks.len(), 8);
            for c in &clip.chunks {
                assert_eq!(c.duration, CLOCK_HZ / 2, "{}", clip.name);
                assert!(
                    c.independent,
                    "{}: every chunk starts with an IDR",
                    clip.name
                );
                // The program tables come before any media, so a part demuxes on its own.
                let pids: Vec<u16> = c.data[..3 * 188]
                    .chunks(188)
                    .map(|p| ts::parse_header(p, 0).unwrap().pid)
                    .collect();
                assert_eq!(pids, [0x11, 0, 0x1000], "SDT, PAT, PMT");
            }
            assert!(
                clip.codecs.starts_with("avc1.4d"),
                "Main profile: {}",
                clip.codecs
            );
            assert!(
                clip.codecs.ends_with(",mp4a.40.2"),
                "AAC-LC: {}",
                clip.codecs
            );
            let (peak, avg) = clip.bitrates(4);
            assert!(
                peak >= avg && avg > 100_000 && peak < 1_000_000,
                "{peak} {avg}"
            );
        }
    }

    /// The loop only sounds and decodes seamlessly if the audio, like the video, is exactly one
    /// loop long: the last AAC frame must end where the first one of the next loop starts.
    #[test]
    fn audio_frames_tile_the_loop_exactly() {
        for clip in clips() {
            let streams = ts::program_streams(clip.chunks[0].data).unwrap();
            let audio = streams
                .iter()
                .find(|s| s.stream_type == STREAM_TYPE_AAC_ADTS)
                .unwrap()
                .pid;
            let mut first = None;
            let mut end = 0;
            for c in &clip.chunks {
                let mut es = Vec::new();
                let mut pes_start = None;
                let mut flush = |es: &mut Vec<u8>, pts: Option<u64>| {
                    if let Some(pts) = pts {
                        // Count ADTS frames (1024 samples at 32 kHz = 2880 ticks each).
                        let (mut at, mut frames) = (0, 0u64);
                        while at + 7 <= es.len() {
                            assert_eq!(es[at], 0xff);
                            let len = (usize::from(es[at + 3] & 3) << 11)
                                | (usize::from(es[at + 4]) << 3)
                                | usize::from(es[at + 5] >> 5);
                            at += len;
                            frames += 1;
                        }
                        assert_eq!(at, es.len(), "whole ADTS frames per PES");
                        first.get_or_insert(pts);
                        end = pts + frames * 2880;
                    }
                    es.clear();
                };
                for (i, pkt) in c.data.chunks(188).enumerate() {
                    let h = ts::parse_header(pkt, i).unwrap();
                    if h.pid != audio || !h.has_payload {
                        continue;
                    }
                    let p = &pkt[h.payload_offset..];
                    if h.unit_start {
                        flush(&mut es, pes_start);
                        pes_start = ts::pes_pts(pkt, i).unwrap();
                        es.extend_from_slice(&p[9 + usize::from(p[8])..]);
                    } else {
                        es.extend_from_slice(p);
                    }
                }
                flush(&mut es, pes_start);
            }
            assert_eq!(end - first.unwrap(), clip.loop_duration, "{}", clip.name);
        }
    }
}
