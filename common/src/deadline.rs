//! Reads that must end by a deadline, not merely make some progress per read. A socket's read
//! timeout restarts with every read, so a peer sending a byte now and then never trips it:
//! that held the admin port, the tuner's exporter, the ingest port's slots and the tier's
//! origin fetches for as long as the peer liked. Before each read of something that must
//! arrive whole (a request head, a response head), the timeout is cut to what is left.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

/// Make the next read on `s` wait no later than `deadline`; `TimedOut` once it has passed.
pub fn arm(s: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    s.set_read_timeout(Some(left))
}

/// A stream read over a TCP socket (plain, or TLS on top of one).
pub trait OnSocket: Read {
    fn socket(&self) -> &TcpStream;
}

impl OnSocket for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

/// `s` read through a reader (a head parser, a body decoder) that must be done by
/// `deadline` in all, whatever pace the peer keeps.
pub struct By<'a, S: OnSocket> {
    pub s: &'a mut S,
    pub deadline: Instant,
}

impl<S: OnSocket> Read for By<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        arm(self.s.socket(), self.deadline)?;
        self.s.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_peer_sending_a_byte_at_a_time_is_cut_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut peer = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut s, _) = l.accept().expect("accept");
        let feeding = std::thread::spawn(move || {
            for _ in 0..20 {
                if peer.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let deadline = start + Duration::from_millis(500);
        let mut got = 0;
        let end = loop {
            if let Err(e) = arm(&s, deadline) {
                break e;
            }
            let mut b = [0u8; 16];
            match s.read(&mut b) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        let took = start.elapsed();
        let _ = feeding.join();
        assert!(got >= 2, "bytes arrived meanwhile: {got}");
        assert!(
            matches!(
                end.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{end}"
        );
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }
}
