//! Helpers every Corestream crate needs, kept in one place so the server, the tuner and the
//! load harness agree: how a duration is written on a command line, how a timestamp is
//! printed, how an HLS attribute list is read, which CPUs a process may use, how a lock is taken after
//! a panic, how a read is held to a deadline. No dependencies: each is a few lines that a
//! crate would not make shorter.

/// `eprintln!` that never panics. Rust ignores SIGPIPE, so writing to a stderr whose reader
/// has gone (`corestream 2>&1 | head`, a log pipe that died) fails, and `eprintln!` panics on
/// that: it took the server's signal thread down (SIGTERM then no longer stopped it) and ended
/// `corestream-tune watch` when a watched process exited. Messages nobody can read are dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod cpus;
pub mod date;
pub mod deadline;
pub mod duration;
pub mod hls;
pub mod size;
pub mod sync;
