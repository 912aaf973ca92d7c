//! Peers' inputs other than request heads (bodies in their framing, playlists, CMCD, Range,
//! an origin's caching fields) through the code that reads them: see
//! `corestream::fixture::peer_inputs`, which `server/tests/hostile_corpus.rs` also replays
//! fuzz/seeds/inputs/ and fuzz/regressions/inputs/ through on every `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| corestream::fixture::peer_inputs(data));
