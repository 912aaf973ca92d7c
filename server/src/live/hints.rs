//! Parts that live playlists announce (preload hints and recent EXT-X-PART URIs), shared by
//! all workers: a player often fetches the playlist on one connection and the hinted part on
//! another, which may land on another worker. Touched only when a playlist is re-read and
//! when a request would otherwise be a 404.

use super::playlist::{resolve, PlaylistInfo};
use corestream_common::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;

/// Part paths a playlist announces, and how long to wait for one (seconds).
type Announced = (Vec<Vec<u8>>, f64);

#[derive(Default)]
pub struct Hints {
    /// playlist path -> (announced part paths, how long to wait for one, in seconds)
    by_playlist: Mutex<HashMap<Vec<u8>, Announced>>,
}

impl Hints {
    /// Record what a freshly read playlist announces (replacing its previous version's).
    pub fn update(&self, playlist: &[u8], info: &PlaylistInfo) {
        let done = info.endlist || (info.preload_hint.is_none() && info.part_uris.is_empty());
        // What the playlist's text decides is worked out before the lock: a bug it reached
        // (crate::fault) must not poison the map every worker reads.
        let paths: Vec<Vec<u8>> = if done {
            Vec::new()
        } else {
            info.preload_hint
                .iter()
                .chain(info.part_uris.iter().rev().take(8))
                .filter_map(|u| resolve(playlist, u))
                .collect()
        };
        let part = info.part_target.unwrap_or(info.target_duration.max(1.0));
        let mut m = lock(&self.by_playlist);
        if done {
            m.remove(playlist);
        } else {
            m.insert(playlist.to_vec(), (paths, (3.0 * part).max(1.0)));
        }
    }

    /// How long to hold a request for `path` if a live playlist announces it.
    pub fn wait_for(&self, path: &[u8]) -> Option<f64> {
        let m = lock(&self.by_playlist);
        m.values()
            .find(|(paths, _)| paths.iter().any(|p| p == path))
            .map(|(_, secs)| *secs)
    }
}
