//! The byte stream under a connection: what `Conn` reads requests from and writes responses
//! to. Plain TCP today (send, sendmsg, sendfile straight to the socket); a TLS session is
//! another variant here that encrypts what it is given, and the connection's state machine
//! does not change.

use super::fsys;
use mio::net::TcpStream;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

pub enum Transport {
    Plain(TcpStream),
}

impl Transport {
    /// The socket, for registration with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Transport::Plain(s) => s.as_raw_fd(),
        }
    }

    pub fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Transport::Plain(s) => s.peer_addr().ok().map(|a| a.ip()),
        }
    }

    /// Read request bytes into the spare capacity of `buf` (at most `max`). Ok(0): the peer
    /// closed.
    pub fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        fsys::recv_into(self.fd(), buf, max)
    }

    /// Read and drop what a closing peer still sends.
    pub fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        fsys::recv(self.fd(), scratch)
    }

    /// Write `head` then `body` (either may be empty) in one call; `more` says a file body
    /// follows, so the kernel may hold a partial segment for it. Returns bytes taken.
    pub fn send(&mut self, head: &[u8], body: &[u8], more: bool) -> io::Result<usize> {
        if body.is_empty() {
            fsys::send(self.fd(), head, more)
        } else if head.is_empty() {
            fsys::send(self.fd(), body, more)
        } else {
            fsys::send2(self.fd(), head, body, more)
        }
    }

    /// Send up to `len` bytes of `file` from `*pos`, advancing it. Ok(0): the file ended
    /// early (it shrank since it was opened).
    pub fn send_file(&mut self, file: &OwnedFd, pos: &mut u64, len: usize) -> io::Result<usize> {
        fsys::sendfile(self.fd(), file.as_raw_fd(), pos, len)
    }

    /// Shut our sending side (after the last response of a closing connection).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        }
    }

    /// Bytes written but not yet acknowledged by the peer, when the kernel can say: a
    /// falling number means a slow reader, not a stalled one.
    pub fn unsent(&self) -> Option<u32> {
        fsys::unsent_bytes(self.fd())
    }
}
