//! The byte stream under a connection: what `Conn` reads requests from and writes responses
//! to. Plain TCP (send, sendmsg, sendfile straight to the socket) or a TLS session that
//! encrypts what it is given (`tls::stream`); the connection's state machine is the same
//! for both. A kernel-TLS transport would be one more variant.

use super::fsys;
use crate::tls::stream::TlsStream;
use mio::net::TcpStream;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    /// The socket, for registration with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.socket(),
        }
    }

    fn sock(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.socket_ref(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Still in the TLS handshake (a timeout now is a handshake that never finished).
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Transport::Tls(t) if t.is_handshaking())
    }

    /// (delivery rate bytes/s, RTT us) the kernel measured for this connection.
    pub fn tcp_rate(&self) -> Option<(Option<u64>, u32)> {
        fsys::tcp_rate(self.sock().as_raw_fd())
    }

    pub fn peer_ip(&self) -> Option<IpAddr> {
        self.sock().peer_addr().ok().map(|a| a.ip())
    }

    /// Read request bytes into the spare capacity of `buf` (at most `max`). Returns the bytes
    /// read (0: the peer closed) and whether nothing more can be read until the next
    /// readiness event (a short read of a plain socket; TLS does not say).
    pub fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
        match self {
            Transport::Plain(s) => fsys::recv_into(s.as_raw_fd(), buf, max),
            Transport::Tls(t) => t.recv(buf, max).map(|n| (n, false)),
        }
    }

    /// Read and drop what a closing peer still sends.
    pub fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => fsys::recv(s.as_raw_fd(), scratch),
            Transport::Tls(t) => t.discard(scratch),
        }
    }

    /// Write `head` then `body` (either may be empty) in one call; `more` says a file body
    /// follows, so the kernel may hold a partial segment for it. Returns bytes taken.
    pub fn send(&mut self, head: &[u8], body: &[u8], more: bool) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => {
                let fd = s.as_raw_fd();
                if body.is_empty() {
                    fsys::send(fd, head, more)
                } else if head.is_empty() {
                    fsys::send(fd, body, more)
                } else {
                    fsys::send2(fd, head, body, more)
                }
            }
            Transport::Tls(t) => t.send(head, body),
        }
    }

    /// Send up to `len` bytes of `file` from `*pos`, advancing it. Ok(0): the file ended
    /// early (it shrank since it was opened).
    pub fn send_file(&mut self, file: &OwnedFd, pos: &mut u64, len: usize) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => fsys::sendfile(s.as_raw_fd(), file.as_raw_fd(), pos, len),
            Transport::Tls(t) => t.send_file(file, pos, len),
        }
    }

    /// Write what the transport still holds for the socket (TLS records already encrypted).
    /// Ok(true) when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(t) => t.flush(),
        }
    }

    /// Shut our sending side (after the last response of a closing connection).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// Make the coming close a reset: the bytes still queued for a peer that stopped taking
    /// them are dropped at once, instead of an orphaned socket holding them (and retrying
    /// them) for minutes after the descriptor is gone.
    pub fn discard_unsent_on_close(&self) {
        let _ = socket2::SockRef::from(self.sock()).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Bytes written but not yet taken by the peer, when it can be said: a falling number
    /// means a slow reader, not a stalled one.
    pub fn unsent(&self) -> Option<u32> {
        let queued = match self {
            Transport::Plain(_) => 0,
            Transport::Tls(t) => t.pending(),
        };
        fsys::unsent_bytes(self.sock().as_raw_fd())
            .map(|n| n.saturating_add(u32::try_from(queued).unwrap_or(u32::MAX)))
    }
}
