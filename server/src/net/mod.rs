//! The event loop and what it drives: `worker` (one thread, one poll, accept and drain),
//! `conn` (a connection's state machine), `transport` (the byte stream under it), `timer`
//! (the phase table and the wheel), `pool` (reused buffers), `listen` (SO_REUSEPORT
//! sockets), `notify` (how other threads wake a worker) and `fsys` (every raw syscall).

pub mod conn;
pub mod fsys;
pub mod listen;
#[cfg(feature = "loop-stats")]
pub mod loopstats;
pub mod notify;
pub mod pool;
pub mod timer;
pub mod transport;
pub mod worker;
