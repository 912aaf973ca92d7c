//! Helpers every Corestream crate needs, kept in one place so the server, the tuner and the
//! load harness agree: how a duration is written on a command line, how a timestamp is
//! printed, how an HLS attribute list is read, which CPUs a process may use. No dependencies: each is a few lines that a
//! crate would not make shorter.

pub mod cpus;
pub mod date;
pub mod duration;
pub mod hls;
pub mod size;
