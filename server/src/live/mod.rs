//! Live streams: the LL-HLS playlist model (`playlist`), the per-worker playlist cache
//! (`cache`), the preload hints every worker shares (`hints`), the inotify watcher that
//! tells workers when a playlist or a part was renamed into place (`watcher`), and objects
//! whose bytes are still arriving, served while they arrive (`growing`).

pub mod cache;
pub mod growing;
pub mod hints;
pub mod playlist;
pub mod watcher;
