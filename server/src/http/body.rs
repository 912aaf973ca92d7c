//! Message bodies read from a peer (a packager's PUT on the ingest port, an origin's response
//! to the edge tier), delivered as they arrive: `Content-Length` bodies, `Transfer-Encoding:
//! chunked` ones (RFC 9112 7.1; chunk sizes by httparse, extensions and trailers read and
//! dropped), and responses delimited by the close. Each read from the socket goes to the sink
//! at once, so a viewer following the object gets the bytes of a chunk before the next one is
//! sent.

use std::io::{ErrorKind, Read};

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Longest chunk-size line (with extensions) and trailer section accepted.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// A response with neither: the body ends when the peer closes (RFC 9112 6.3).
    UntilClose,
}

#[derive(Debug)]
pub enum BodyError<E> {
    /// The peer closed the connection mid-body.
    Gone,
    /// The connection failed (reset) mid-body.
    Reset,
    /// Nothing arrived for the read timeout.
    Timeout,
    /// Broken chunked framing.
    Malformed(&'static str),
    /// The sink refused the bytes (too large, disk full).
    Sink(E),
}

/// Read more bytes from `src` into `buf`.
fn fill<R: Read, E>(src: &mut R, buf: &mut Vec<u8>) -> Result<(), BodyError<E>> {
    let old = buf.len();
    buf.resize(old + READ_CHUNK, 0);
    loop {
        match src.read(&mut buf[old..]) {
            Ok(0) => {
                buf.truncate(old);
                return Err(BodyError::Gone);
            }
            Ok(n) => {
                buf.truncate(old + n);
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(old);
                return Err(
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                        BodyError::Timeout
                    } else {
                        BodyError::Reset
                    },
                );
            }
        }
    }
}

/// Pass up to `left` body bytes from `buf` (then from `src`) to `sink`.
fn data<R: Read, E>(
    src: &mut R,
    buf: &mut Vec<u8>,
    mut left: u64,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), BodyError<E>> {
    while left > 0 {
        if buf.is_empty() {
            fill(src, buf)?;
        }
        let n = (buf.len() as u64).min(left) as usize;
        sink(&buf[..n]).map_err(BodyError::Sink)?;
        buf.drain(..n);
        left -= n as u64;
    }
    Ok(())
}

/// Read one body framed by `framing` from `buf` (bytes already read after the head) and
/// `src`, giving its bytes to `sink` as they come. What follows the body (a pipelined
/// request) stays in `buf`. Returns the body's length.
pub fn read<R: Read, E>(
    src: &mut R,
    buf: &mut Vec<u8>,
    framing: Framing,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, BodyError<E>> {
    match framing {
        Framing::UntilClose => {
            let mut total = 0u64;
            loop {
                if buf.is_empty() {
                    match fill(src, buf) {
                        Err(BodyError::Gone) => return Ok(total),
                        other => other?,
                    }
                }
                sink(buf).map_err(BodyError::Sink)?;
                total += buf.len() as u64;
                buf.clear();
            }
        }
        Framing::Length(n) => {
            data(src, buf, n, &mut sink)?;
            Ok(n)
        }
        Framing::Chunked => {
            let mut total = 0u64;
            loop {
                let size = loop {
                    // chunk-size is 1*HEXDIG (RFC 9112 7.1); httparse reads an empty size
                    // line as 0, which would end the body where the sender ended nothing.
                    if matches!(buf.first(), Some(b'\r' | b'\n' | b';')) {
                        return Err(BodyError::Malformed("bad chunk size line"));
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.drain(..used);
                            break size;
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_LINE => fill(src, buf)?,
                        _ => return Err(BodyError::Malformed("bad chunk size line")),
                    }
                };
                if size == 0 {
                    break;
                }
                data(src, buf, size, &mut sink)?;
                total = total.saturating_add(size);
                while buf.len() < 2 {
                    fill(src, buf)?;
                }
                if &buf[..2] != b"\r\n" {
                    return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                }
                buf.drain(..2);
            }
            // Trailer fields, dropped, up to the empty line.
            let mut seen = 0usize;
            loop {
                match buf.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        buf.drain(..2);
                        return Ok(total);
                    }
                    Some(i) => {
                        seen += i + 2;
                        buf.drain(..i + 2);
                    }
                    // What is buffered is one unfinished line: it counts; bytes after the
                    // trailer section (a pipelined request) never did.
                    None if seen + buf.len() > MAX_TRAILERS => {
                        return Err(BodyError::Malformed("trailer section too large"))
                    }
                    None => fill(src, buf)?,
                }
                if seen > MAX_TRAILERS {
                    return Err(BodyError::Malformed("trailer section too large"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its input a few bytes at a time.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn run(input: &[u8], framing: Framing, step: usize) -> (Result<u64, String>, Vec<u8>, Vec<u8>) {
        let mut src = Trickle(input, step);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let r = read::<_, ()>(&mut src, &mut buf, framing, |d| {
            got.extend_from_slice(d);
            Ok(())
        })
        .map_err(|e| format!("{e:?}"));
        (r, got, buf)
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (r, got, rest) = run(input, Framing::Chunked, step);
            assert_eq!(r, Ok(11), "step {step}");
            assert_eq!(got, b"hello world");
            // What follows the body is left for the next request (read a bit at a time).
            assert!(b"NEXT".starts_with(&rest), "{rest:?}");
        }
    }

    #[test]
    fn a_large_request_after_a_trailer_is_not_part_of_it() {
        let mut input = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n".to_vec();
        input.extend_from_slice(&[b'N'; 40_000]);
        let (r, got, rest) = run(&input, Framing::Chunked, 64 * 1024);
        assert_eq!((r, got.as_slice()), (Ok(3), &b"abc"[..]));
        assert_eq!(rest.len(), 40_000);
        // An endless trailer line is still refused.
        let mut endless = b"0\r\nX-T: ".to_vec();
        endless.extend_from_slice(&[b'a'; 40_000]);
        let (r, _, _) = run(&endless, Framing::Chunked, 1000);
        assert!(r.is_err());
    }

    #[test]
    fn length_bodies_and_broken_input() {
        let (r, got, rest) = run(b"abcdefXY", Framing::Length(6), 4);
        assert_eq!((r, got.as_slice()), (Ok(6), &b"abcdef"[..]));
        assert!(rest.len() <= 2);
        let (r, _, _) = run(b"abc", Framing::Length(6), 4);
        assert_eq!(r, Err("Gone".into()));
        // An empty size line is not a last chunk (chunk-size is 1*HEXDIG).
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhel",
            b"\r\n\r\n",
            b";ext\r\n\r\n",
            b"5\r\nhello\r\n\r\n\r\n",
        ] {
            let (r, _, _) = run(bad, Framing::Chunked, 3);
            assert!(r.is_err(), "{bad:?}");
        }
        let huge = [b'1'; 5000];
        let (r, _, _) = run(&huge, Framing::Chunked, 1000);
        assert!(r.is_err());
    }
}
