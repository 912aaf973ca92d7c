//! Whole responses kept per worker for the request players make most: a plain GET of a live
//! playlist held in memory. The head comes from the one encoder (`head::encode`) the first
//! time; later identical requests get the same bytes with the Date value rewritten in place
//! when the second changes, so a hit is one copy and one send.
//!
//! A kept response is used only when every input of the full path is known to be the same:
//! - the request is a bare GET (`plain`): HTTP/1.1, keep-alive, no query, no conditionals,
//!   no Range, no Origin, no CMCD, no body; its target is the key;
//! - the worker is not draining and writes no access log and no CMSD (both per request);
//! - the transport is of the same kind (HTTPS adds Strict-Transport-Security);
//! - the playlist entry the response was made from is still the one the cache would answer
//!   with, without a stat, for a request read before the last inotify drain (the caller
//!   checks with `PlaylistCache::watched`);
//! - its Last-Modified was not clamped to the Date (a file dated in the future is never
//!   kept).

use super::date::DateCache;
use super::parse::{Method, Request};
use crate::live::cache::Cached;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of kept responses per worker; past it the map starts again empty.
const BUDGET: usize = 1 << 20;
/// What precedes the Date value in every head `head::encode` writes.
const DATE_FIELD: &[u8] = b"\r\nDate: ";
/// IMF-fixdate length.
const DATE_LEN: usize = 29;

pub struct Kept {
    /// The playlist entry the response was made from.
    pub cached: Arc<Cached>,
    /// Decoded root-relative path (for the cache check and QoE).
    pub path: Box<[u8]>,
    tls: bool,
    date_secs: u64,
    date_at: usize,
    bytes: Vec<u8>,
}

impl Kept {
    /// Head and body, with the Date brought up to `date`.
    pub fn bytes(&mut self, date: &DateCache) -> &[u8] {
        if self.date_secs != date.unix_secs() {
            if let Some(d) = self.bytes.get_mut(self.date_at..self.date_at + DATE_LEN) {
                if date.get().len() == DATE_LEN {
                    d.copy_from_slice(date.get());
                }
            }
            self.date_secs = date.unix_secs();
        }
        &self.bytes
    }

    pub fn body_len(&self) -> u64 {
        self.cached.body.len() as u64
    }
}

#[derive(Default)]
pub struct Encoded {
    map: HashMap<Box<[u8]>, Kept>,
    bytes: usize,
}

/// A bare GET whose response depends on nothing but its target (see the module doc).
pub fn plain(req: &Request<'_>) -> bool {
    req.method == Some(Method::Get)
        && req.minor == 1
        && req.keep_alive
        && !req.has_body
        && !req.preflight
        && req.if_none_match.is_none()
        && req.if_modified_since.is_none()
        && req.if_match.is_none()
        && req.if_unmodified_since.is_none()
        && req.if_range.is_none()
        && req.range.is_none()
        && req.origin.is_none()
        && req.cmcd.is_none()
        && !req.target.contains(&b'?')
}

impl Encoded {
    /// The kept response for `target` on this kind of transport.
    pub fn get(&mut self, target: &[u8], tls: bool) -> Option<&mut Kept> {
        self.map.get_mut(target).filter(|k| k.tls == tls)
    }

    /// Keep `head_and_body` (just encoded at `date`) as the answer to `target`, made from
    /// `cached` at `path`.
    pub fn put(
        &mut self,
        target: &[u8],
        tls: bool,
        (cached, path): (Arc<Cached>, &[u8]),
        head_and_body: &[u8],
        date: &DateCache,
    ) {
        if cached.meta.mtime_sec < 0 || cached.meta.mtime_sec as u64 > date.unix_secs() {
            return;
        }
        let Some(at) = head_and_body
            .windows(DATE_FIELD.len())
            .position(|w| w == DATE_FIELD)
            .map(|i| i + DATE_FIELD.len())
        else {
            return;
        };
        if head_and_body.len() < at + DATE_LEN {
            return;
        }
        let cost = head_and_body.len() + target.len() + path.len();
        if self.bytes + cost > BUDGET {
            self.map.clear();
            self.bytes = 0;
        }
        let kept = Kept {
            cached,
            path: path.into(),
            tls,
            date_secs: date.unix_secs(),
            date_at: at,
            bytes: head_and_body.to_vec(),
        };
        if let Some(old) = self.map.insert(target.into(), kept) {
            self.bytes -= old.bytes.len() + target.len() + old.path.len();
        }
        self.bytes += cost;
    }
}
