//! What the playlists say about the files they list, shared by all workers: which master
//! playlist a media playlist belongs to, which media playlist lists a segment or part, and
//! how long each one plays. Filled when a worker reads a new version of a playlist (not per
//! request); read to name a request's stream and rendition and to send CMSD `d`.

use corestream_common::hls::attr;
use corestream_common::sync::{read, write};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Entries kept per generation; two generations are held, so at most twice this.
const GENERATION: usize = 32 * 1024;
/// Segments and parts remembered per media playlist version (the live edge is what is asked).
const RECENT: usize = 64;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// Master playlist that lists this media playlist.
    pub master: Option<Arc<[u8]>>,
    /// Media playlist that lists this segment or part (for a media playlist: itself).
    pub media: Option<Arc<[u8]>>,
    /// Play time in ms: EXTINF or PART DURATION; for a media playlist its target duration.
    pub duration_ms: u32,
}

/// A path and what to change in its entry.
type Change = (Vec<u8>, Box<dyn Fn(&mut Entry)>);

/// Bounded by generations: when the current map is full it becomes the old one and the
/// oldest generation is dropped, so a stream that stopped long ago ages out without an LRU
/// list on the read path.
#[derive(Default)]
pub struct Catalog {
    maps: RwLock<[HashMap<Box<[u8]>, Entry>; 2]>,
}

impl Catalog {
    pub fn get(&self, path: &[u8]) -> Option<Entry> {
        let maps = read(&self.maps);
        maps[0].get(path).or_else(|| maps[1].get(path)).cloned()
    }

    fn update(&self, changes: Vec<Change>) {
        let mut maps = write(&self.maps);
        for (path, change) in changes {
            let mut e = maps[0]
                .remove(path.as_slice())
                .or_else(|| maps[1].remove(path.as_slice()))
                .unwrap_or_default();
            change(&mut e);
            if maps[0].len() >= GENERATION {
                let full = std::mem::take(&mut maps[0]);
                maps[1] = full;
            }
            maps[0].insert(path.into_boxed_slice(), e);
        }
    }

    /// Learn from one version of the playlist at root-relative `path`.
    pub fn learn(&self, path: &[u8], text: &str) {
        let me: Arc<[u8]> = Arc::from(path);
        let mut target_ms = 0u32;
        let mut children: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        let mut extinf: Option<u32> = None;
        let mut next_is_variant = false;
        for raw in text.lines() {
            let line = raw.trim();
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target_ms = secs_to_ms(v);
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                extinf = Some(secs_to_ms(v.split(',').next().unwrap_or("")));
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                if let (Some(u), Some(d)) = (attr(v, "URI"), attr(v, "DURATION")) {
                    if let Some(p) = crate::live::playlist::resolve(path, u) {
                        children.push((p, secs_to_ms(d)));
                    }
                }
            } else if line.starts_with("#EXT-X-STREAM-INF:") {
                next_is_variant = true;
            } else if let Some(v) = line
                .strip_prefix("#EXT-X-MEDIA:")
                .or_else(|| line.strip_prefix("#EXT-X-I-FRAME-STREAM-INF:"))
            {
                if let Some(p) =
                    attr(v, "URI").and_then(|u| crate::live::playlist::resolve(path, u))
                {
                    variants.push(p);
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                let Some(p) = crate::live::playlist::resolve(path, line) else {
                    continue;
                };
                if std::mem::take(&mut next_is_variant) {
                    variants.push(p);
                } else if let Some(d) = extinf.take() {
                    children.push((p, d));
                }
            }
        }
        let skip = children.len().saturating_sub(RECENT);
        let mut changes: Vec<Change> = Vec::new();
        if target_ms > 0 {
            // A media playlist names itself, so a request for it finds its own shared path.
            let own = me.clone();
            changes.push((
                path.to_vec(),
                Box::new(move |e: &mut Entry| {
                    e.duration_ms = target_ms;
                    e.media = Some(own.clone());
                }),
            ));
        }
        for (p, d) in children.into_iter().skip(skip) {
            let media = me.clone();
            changes.push((
                p,
                Box::new(move |e: &mut Entry| {
                    e.media = Some(media.clone());
                    e.duration_ms = d;
                }),
            ));
        }
        for v in variants.into_iter().take(RECENT) {
            let master = me.clone();
            changes.push((
                v,
                Box::new(move |e: &mut Entry| e.master = Some(master.clone())),
            ));
        }
        if !changes.is_empty() {
            self.update(changes);
        }
    }
}

fn secs_to_ms(v: &str) -> u32 {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(0, |s| (s * 1000.0).round().min(f64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_media_and_segments() {
        let c = Catalog::default();
        c.learn(
            b"live/master.m3u8",
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n480p/index.m3u8\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n",
        );
        c.learn(
            b"live/480p/index.m3u8",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.960,\nseg1.ts\n\
             #EXT-X-PART:DURATION=0.5,URI=\"seg2.p0.ts\"\n",
        );
        let m = c.get(b"live/480p/index.m3u8").unwrap();
        assert_eq!(m.master.as_deref(), Some(&b"live/master.m3u8"[..]));
        assert_eq!(m.duration_ms, 2000);
        assert!(c.get(b"live/audio/en.m3u8").unwrap().master.is_some());
        let s = c.get(b"live/480p/seg1.ts").unwrap();
        assert_eq!(s.media.as_deref(), Some(&b"live/480p/index.m3u8"[..]));
        assert_eq!(s.duration_ms, 1960);
        assert_eq!(c.get(b"live/480p/seg2.p0.ts").unwrap().duration_ms, 500);
        assert!(c.get(b"live/480p/seg9.ts").is_none());
    }

    #[test]
    fn bounded() {
        let c = Catalog::default();
        for i in 0..(GENERATION * 3 / RECENT) {
            let text: String = (0..RECENT)
                .map(|j| format!("#EXTINF:2,\ns{i}-{j}.ts\n"))
                .collect();
            c.learn(format!("p{i}.m3u8").as_bytes(), &text);
        }
        let maps = c.maps.read().unwrap();
        assert!(maps[0].len() + maps[1].len() <= 2 * GENERATION + RECENT);
    }
}
