//! Corestream edge server library: the event loop, HTTP path and live-stream helpers.

pub mod demo;
