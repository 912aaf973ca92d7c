//! Listening sockets: one per worker (and per process) on the same address with
//! SO_REUSEPORT, so the kernel spreads new connections across them.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Bind one SO_REUSEPORT listener. Every worker (and every other corestream process of the
/// same user) binds its own.
pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into()).map_err(|e| {
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            io::Error::new(
                e.kind(),
                format!("{addr} is in use by a process that did not set SO_REUSEPORT or runs as another user ({e})"),
            )
        } else {
            io::Error::new(e.kind(), format!("bind {addr}: {e}"))
        }
    })?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// net.core.somaxconn, which silently caps every listen backlog.
pub fn somaxconn() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}
