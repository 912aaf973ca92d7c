//! What a simulated viewer asks for and when, and what it would see on screen.
//!
//! Classic HLS: reload the media playlist every target duration on a constant clock, fetch
//! each new segment once (three at join). LL-HLS (`--ll`, playlists with EXT-X-PART-INF):
//! start PART-HOLD-BACK from the live edge, then ask for the next part with a blocking
//! reload (`_HLS_msn`/`_HLS_part`) as soon as the previous answer arrives, and fetch the
//! part named by EXT-X-PRELOAD-HINT at once. A server that does not block answers those
//! reloads at once with what it has: the viewer then polls, every PART-TARGET, or half of
//! it after an answer with nothing new (RFC 8216 6.3.4's wait of half the target duration
//! after an unchanged reload, scaled to parts); a hinted part answered 404 is not asked for
//! again but fetched once a playlist lists it.
//!
//! Either way, a viewer whose next media left the playlist window does not ask for expired
//! files: it jumps to the live edge and rebuffers, counted as a stall and a live jump.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::engine::{ms_to_us, Engine, Kind, Media, Req, Timer};
use super::pick_variant;
use crate::hls::{self, Playlist};

/// Segments fetched at join to build the start-up buffer (what common players do).
const JOIN_SEGMENTS: usize = 3;
/// Recently asked-for part URIs remembered per viewer (a hinted part is listed later).
const REMEMBERED: usize = 16;

impl Engine {
    pub(super) fn on_playlist(&mut self, v: usize, req: &Req, body: &[u8], now: Instant) {
        let parsed = std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(hls::parse);
        let pl = match parsed {
            Ok(p) => p,
            Err(_) => {
                self.c.err_parse += 1;
                if self.viewers[v].is_ll() {
                    self.arm_poll(v, now, Duration::from_millis(500));
                }
                return;
            }
        };
        if pl.is_master() {
            // Variants from high to low bandwidth, so the mix weights read top-down.
            let mut vars = pl.variants.clone();
            vars.sort_by_key(|x| Reverse(x.bandwidth));
            let pick = pick_variant(v + self.o.id_offset, vars.len(), &self.o.mix);
            let path = hls::resolve(&req.path, &vars[pick].uri);
            self.viewers[v].media_path = Some(path.clone());
            self.enqueue(v, Req::new(Kind::Playlist, path, now), now);
            return;
        }
        let vw = &mut self.viewers[v];
        if vw.media_path.is_none() {
            vw.media_path = Some(req.path.clone());
        }
        vw.target = pl.target_duration;
        if pl.endlist {
            vw.ended = true;
        }
        match pl.part_target {
            Some(pt) if self.o.ll && pt > 0.0 => {
                self.viewers[v].part_target = pt;
                self.on_ll_playlist(v, req, &pl, now);
            }
            _ => self.on_classic_playlist(v, req, &pl, now),
        }
    }

    /// The classic reload clock fired.
    pub(super) fn on_reload_clock(&mut self, v: usize, _at: Instant, now: Instant) {
        let vw = &mut self.viewers[v];
        if vw.ended {
            return;
        }
        let (Some(at), Some(path)) = (vw.next_reload, vw.media_path.clone()) else {
            return;
        };
        // Like a player, never queue a second reload behind one not yet answered: the
        // waiting one keeps its intended time, so its latency still shows how late the
        // server is.
        let waiting = vw.lanes[0].has(Kind::Playlist);
        let next = at + Duration::from_secs_f64(vw.target.max(0.1));
        vw.next_reload = Some(next);
        self.timers.push(Reverse((next, v, Timer::Reload)));
        if waiting {
            self.c.reloads_skipped += 1;
        } else {
            self.enqueue(v, Req::new(Kind::Playlist, path, at), now);
        }
    }

    fn on_classic_playlist(&mut self, v: usize, req: &Req, pl: &Playlist, now: Instant) {
        let media_path = self.viewers[v].media_path.clone().unwrap_or_default();
        let media_lane = self.viewers[v].lane_for(Kind::Segment);
        if let Some(last) = self.viewers[v].last_seq {
            let expired = self.viewers[v].lanes[media_lane]
                .queue
                .iter()
                .any(|r| r.media.as_ref().is_some_and(|m| m.msn < pl.media_sequence));
            if pl.media_sequence > last + 1 || expired {
                self.jump_to_live_edge(v);
            }
        }
        let vw = &mut self.viewers[v];
        let new: Vec<&hls::Segment> = match vw.last_seq {
            None => {
                let n = pl.segments.len();
                let join = &pl.segments[n.saturating_sub(JOIN_SEGMENTS)..];
                vw.join_left = join.len();
                join.iter().collect()
            }
            Some(last) => pl.segments.iter().filter(|s| s.seq > last).collect(),
        };
        for s in new {
            let media = Media {
                msn: s.seq,
                part: None,
                duration: s.duration,
                published_ms: s.start_ms.map(|t| t + (s.duration * 1000.0).round() as i64),
                hinted: false,
                joining: false,
                uri: s.uri.clone(),
                epoch: vw.epoch,
            };
            vw.lanes[media_lane].queue.push_back(Req {
                media: Some(media),
                ..Req::new(Kind::Segment, hls::resolve(&media_path, &s.uri), now)
            });
        }
        if let Some(last) = pl.segments.last() {
            vw.last_seq = Some(vw.last_seq.map_or(last.seq, |l| l.max(last.seq)));
        }
        if vw.next_reload.is_none() && !pl.endlist {
            // Constant clock from the intended time of the first media playlist request.
            let at = req.intended + Duration::from_secs_f64(vw.target.max(0.1));
            vw.next_reload = Some(at);
            self.timers.push(Reverse((at, v, Timer::Reload)));
        }
        self.issue(v, media_lane, now);
    }

    /// The viewer's next media left the playlist window: drop what it still meant to fetch
    /// and start again at the live edge, as a player seeks there, with a stall.
    fn jump_to_live_edge(&mut self, v: usize) {
        self.c.live_jumps += 1;
        self.c.stalls += 1;
        let vw = &mut self.viewers[v];
        vw.stalls += 1;
        vw.epoch += 1;
        let media_lane = vw.lane_for(Kind::Segment);
        vw.lanes[media_lane].queue.retain(|r| r.media.is_none());
        vw.last_seq = None;
        vw.next_part = None;
        vw.buffer_end = None;
        vw.buffered_at_join = 0.0;
        vw.media_end_ms = None;
    }

    fn on_ll_playlist(&mut self, v: usize, req: &Req, pl: &Playlist, now: Instant) {
        let Some(last) = pl.last_part() else {
            // Low-Latency, but no part listed yet: look again shortly.
            let pt = self.viewers[v].part_target;
            self.arm_poll(v, now, Duration::from_secs_f64(pt));
            return;
        };
        // When the part a blocking reload asked for appears in a playlist the viewer holds.
        if let Some(w) = req.wants.filter(|&w| pl.lists(w)) {
            let file = pl.parts_of(w.0).and_then(|ps| ps.get(w.1)).map(|p| {
                let media_path = self.viewers[v].media_path.as_deref().unwrap_or("/");
                hls::resolve(media_path, &p.uri)
            });
            let published = file
                .and_then(|f| self.file_published_ms(&f))
                .or_else(|| pl.part_published_ms(w));
            if let Some(p) = published {
                let late = self.unix_ms(now) - p;
                self.hist
                    .playlist_published()
                    .saturating_record(ms_to_us(late));
            }
        }
        let news = self.viewers[v].last_seen != Some(last);
        self.viewers[v].last_seen = Some(last);

        // Where the viewer is: a part of a segment that completed is the next segment's
        // first part when the index ran past its parts.
        let mut pos = self.viewers[v].next_part.map(|np| match pl.parts_of(np.0) {
            Some(parts) if np.0 < pl.next_msn() && np.1 >= parts.len() => (np.0 + 1, 0),
            _ => np,
        });
        if let Some(np) = pos {
            let gone =
                np.0 < pl.media_sequence || (np.0 < pl.next_msn() && pl.parts_of(np.0).is_none());
            if gone {
                self.jump_to_live_edge(v);
                pos = None;
            }
        }
        let start = pos.unwrap_or_else(|| join_position(pl, self.viewers[v].part_target));
        let joining = pos.is_none();
        let media_path = self.viewers[v].media_path.clone().unwrap_or_default();
        let mut p = start;
        let mut queued = 0;
        while let Some(part) = pl.parts_of(p.0).and_then(|parts| parts.get(p.1)) {
            if self.remember(v, &part.uri) {
                let media = Media {
                    msn: p.0,
                    part: Some(p.1),
                    duration: part.duration,
                    published_ms: pl.part_published_ms(p),
                    hinted: false,
                    joining,
                    uri: part.uri.clone(),
                    epoch: self.viewers[v].epoch,
                };
                self.queue_media(v, &media_path, media, now);
                queued += 1;
            }
            p = pl.part_after(p);
        }
        if joining {
            let vw = &mut self.viewers[v];
            vw.join_left = queued;
            vw.buffered_at_join = 0.0;
        }
        // The preload hint names the part after the last listed one: ask for it now.
        let refused = self.viewers[v].refused_hint.as_ref();
        if let Some(hint) = pl.preload_hint.as_ref().filter(|h| Some(*h) != refused) {
            if p == pl.part_after(last) && self.remember(v, hint) {
                let pt = self.viewers[v].part_target;
                self.c.hint_requests += 1;
                let media = Media {
                    msn: p.0,
                    part: Some(p.1),
                    duration: pt,
                    published_ms: pl
                        .part_published_ms(last)
                        .map(|t| t + (pt * 1000.0).round() as i64),
                    hinted: true,
                    joining: false,
                    uri: hint.clone(),
                    epoch: self.viewers[v].epoch,
                };
                self.queue_media(v, &media_path, media, now);
                p = (p.0, p.1 + 1);
            }
        }
        self.viewers[v].next_part = Some(p);
        let media_lane = self.viewers[v].lane_for(Kind::Part);
        self.issue(v, media_lane, now);

        // Next reload: at once for a server that answered what was asked (it blocks), else
        // poll.
        let wants = pl.part_after(last);
        self.viewers[v].wants = Some(wants);
        let answered = req.wants.map_or(true, |w| pl.lists(w));
        if answered {
            self.ll_reload(v, now, now);
        } else {
            if !news {
                self.c.polls_unchanged += 1;
            }
            let pt = self.viewers[v].part_target;
            let wait = if news { pt } else { pt / 2.0 };
            self.arm_poll(v, now, Duration::from_secs_f64(wait));
        }
    }

    /// LL: send the blocking reload for the part the viewer waits for.
    pub(super) fn ll_reload(&mut self, v: usize, at: Instant, now: Instant) {
        let vw = &self.viewers[v];
        if vw.ended || vw.lanes[0].has(Kind::Playlist) {
            return;
        }
        let Some(path) = vw.media_path.clone() else {
            return;
        };
        let (path, wants) = match vw.wants {
            Some((m, i)) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                self.c.blocking_reloads += 1;
                (
                    format!("{path}{sep}_HLS_msn={m}&_HLS_part={i}"),
                    Some((m, i)),
                )
            }
            None => (path, None),
        };
        self.enqueue(
            v,
            Req {
                wants,
                ..Req::new(Kind::Playlist, path, at)
            },
            now,
        );
    }

    fn queue_media(&mut self, v: usize, media_path: &str, media: Media, now: Instant) {
        let path = hls::resolve(media_path, &media.uri);
        let lane = self.viewers[v].lane_for(Kind::Part);
        self.viewers[v].lanes[lane].queue.push_back(Req {
            media: Some(media),
            ..Req::new(Kind::Part, path, now)
        });
    }

    /// Note that `uri` is asked for; false when it already was (recently).
    fn remember(&mut self, v: usize, uri: &str) -> bool {
        let r = &mut self.viewers[v].requested;
        if r.iter().any(|u| u == uri) {
            return false;
        }
        if r.len() >= REMEMBERED {
            r.pop_front();
        }
        r.push_back(uri.to_string());
        true
    }

    /// A hinted part was not delivered: forget it, and step back so it is fetched once a
    /// playlist lists it.
    pub(super) fn forget_requested(&mut self, v: usize, m: &Media) {
        let vw = &mut self.viewers[v];
        vw.requested.retain(|u| *u != m.uri);
        if let (Some(i), Some(np)) = (m.part, vw.next_part) {
            if m.epoch == vw.epoch && (m.msn, i) < np {
                vw.next_part = Some((m.msn, i));
            }
        }
    }

    /// A segment or part arrived: the playback model, and for parts the delivery latency
    /// from publication and the distance from the live edge the viewer plays at.
    pub(super) fn on_media(&mut self, v: usize, req: &Req, now: Instant) {
        let Some(m) = &req.media else { return };
        let dur = m.duration.max(0.001);
        let now_ms = self.unix_ms(now);
        if req.kind == Kind::Segment {
            let took = now.saturating_duration_since(req.intended).as_secs_f64();
            self.hist
                .seg_ratio
                .saturating_record(((took / dur) * 1000.0).round().max(1.0) as u64);
        } else if !m.joining {
            if let Some(p) = self.file_published_ms(&req.path).or(m.published_ms) {
                self.hist
                    .part_published()
                    .saturating_record(ms_to_us(now_ms - p));
            }
        }
        let vw = &mut self.viewers[v];
        if m.epoch != vw.epoch {
            // Asked for before a jump to the live edge: no longer what the viewer plays.
            return;
        }
        let d = Duration::from_secs_f64(dur);
        match vw.buffer_end {
            None => {
                vw.buffered_at_join += dur;
                vw.join_left = vw.join_left.saturating_sub(1);
                if vw.join_left == 0 {
                    vw.buffer_end = Some(now + Duration::from_secs_f64(vw.buffered_at_join));
                }
            }
            Some(be) if now > be => {
                vw.stalls += 1;
                self.c.stalls += 1;
                vw.buffer_end = Some(now + d);
            }
            Some(be) => vw.buffer_end = Some(be + d),
        }
        if let Some(p) = m.published_ms {
            vw.media_end_ms = Some(vw.media_end_ms.map_or(p, |e| e.max(p)));
        }
        // The playhead is the buffered media's end minus what is left to play; the viewer
        // plays `now - playhead` behind the wall clock the stream is dated in.
        if let (Some(be), Some(end)) = (vw.buffer_end, vw.media_end_ms) {
            let left = i64::try_from(be.saturating_duration_since(now).as_millis()).unwrap_or(0);
            let edge = now_ms - (end - left);
            vw.last_edge_ms = Some(edge);
            if req.kind == Kind::Part {
                self.hist.edge().saturating_record(ms_to_us(edge));
            }
        }
    }
}

impl Engine {
    /// With --published-from DIR: when the file behind URL `path` was written (its mtime;
    /// the packager renames it into place right after), else None.
    fn file_published_ms(&mut self, path: &str) -> Option<i64> {
        let root = self.o.published_from.as_ref()?;
        if let Some(&t) = self.mtimes.get(path) {
            return Some(t);
        }
        let file = root.join(path.split('?').next()?.trim_start_matches('/'));
        let mtime = std::fs::metadata(file).ok()?.modified().ok()?;
        let ms = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis();
        let ms = i64::try_from(ms).ok()?;
        if self.mtimes.len() >= 512 {
            self.mtimes.clear();
        }
        self.mtimes.insert(path.to_string(), ms);
        Some(ms)
    }
}

/// Where an LL viewer starts: the first part from which at least PART-HOLD-BACK (default
/// three part targets) remains to the end of the playlist.
fn join_position(pl: &Playlist, part_target: f64) -> (u64, usize) {
    let hold = pl.part_hold_back.unwrap_or(3.0 * part_target);
    let mut listed: Vec<((u64, usize), f64)> = Vec::new();
    for s in &pl.segments {
        for (i, p) in s.parts.iter().enumerate() {
            listed.push(((s.seq, i), p.duration));
        }
    }
    for (i, p) in pl.pending_parts.iter().enumerate() {
        listed.push(((pl.next_msn(), i), p.duration));
    }
    let mut left = 0.0;
    for (pos, d) in listed.iter().rev() {
        left += d;
        if left >= hold - 1e-9 {
            return *pos;
        }
    }
    listed.first().map_or((pl.next_msn(), 0), |x| x.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_part_hold_back_from_the_live_edge() {
        let t = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n\
                 #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:7\n\
                 #EXT-X-PART:DURATION=0.5,URI=\"a.0\"\n#EXT-X-PART:DURATION=0.5,URI=\"a.1\"\n\
                 #EXT-X-PART:DURATION=0.5,URI=\"a.2\"\n#EXT-X-PART:DURATION=0.5,URI=\"a.3\"\n#EXTINF:2,\na.ts\n\
                 #EXT-X-PART:DURATION=0.5,URI=\"b.0\"\n";
        let pl = hls::parse(t).unwrap();
        // 1.5 s back from the end of b.0: a.2, a.3, b.0.
        assert_eq!(join_position(&pl, 0.5), (7, 2));
        let no_hold = hls::parse(&t.replace(",PART-HOLD-BACK=1.5", "")).unwrap();
        assert_eq!(join_position(&no_hold, 0.5), (7, 2));
        assert_eq!(join_position(&pl, 0.1), (7, 2));
    }
}
