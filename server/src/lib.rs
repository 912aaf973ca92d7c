//! Corestream edge server library. Where things live:
//!
//! - `serve`: process start (listeners, workers, admin, watcher, signals); `config`: the
//!   command line; `shared`: process-wide state.
//! - `net/`: the event loop (`worker`), a connection's state machine (`conn`) over its
//!   `transport`, timeouts (`timer`), buffers (`pool`), listeners (`listen`) and every raw
//!   syscall (`fsys`).
//! - `http/`: request parsing, routing to a `Response` value (`respond`), the one head
//!   encoder (`head`), paths, MIME types, conditionals and ranges.
//! - `live/`: LL-HLS playlist model, playlist cache, preload hints, inotify watcher.
//! - `ingest/`: the ingest port (packagers PUT and DELETE objects, served while they
//!   arrive through `live::growing`).
//! - `tier/`: the edge tier (objects not under the root pulled from an origin, one upstream
//!   request per object, cached in --cache-dir, streamed while they arrive).
//! - `admin/`: `/metrics`, `/streams` and `/healthz`, metrics, access log.
//! - `qoe/`: CMCD from players, CMSD to them, viewers per stream and rendition.
//! - `demo/`: the built-in live stream publisher.
//! - `fault`: a panic costs the connection, fetch or push it hits, not the thread.

// `say!` (corestream_common): stderr lines that never panic, in every module.
#[macro_use]
extern crate corestream_common;

pub mod admin;
pub mod config;
pub mod demo;
pub mod fault;
pub mod fixture;
pub mod http;
pub mod ingest;
pub mod live;
pub mod net;
#[cfg(test)]
mod proptests;
pub mod qoe;
pub mod serve;
pub mod shared;
pub mod tier;
pub mod tls;

pub use serve::serve;
pub use shared::Shared;
