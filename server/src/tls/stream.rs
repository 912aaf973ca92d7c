//! One TLS session over a non-blocking socket, driven by our event loop with rustls's
//! unbuffered API: we own every buffer, so an idle keep-alive connection holds none (the
//! session state itself is the floor), and a busy one holds one ciphertext buffer while the
//! socket is full. Buffers come from a per-thread pool (one pool per worker).
//!
//! The connection above sees plaintext: `recv` returns request bytes, `send` takes response
//! bytes and returns once they are encrypted and handed to the socket (or queued behind
//! what the socket has not taken yet: nothing new is accepted while anything is queued, so
//! memory stays bounded by one write chunk).

use super::{TlsShared, TlsStats};
use crate::net::fsys;
use mio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use rustls::HandshakeKind;
use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Ciphertext read per recv(2): one whole TLS record (16 KiB of plaintext plus the largest
/// overhead TLS 1.2 allows) fits.
const RX_SIZE: usize = 16 * 1024 + 2048 + 5;
/// Plaintext encrypted per `send` call: four full records, then the socket gets them.
pub const WRITE_CHUNK: usize = 64 * 1024;
/// Ciphertext buffer: a write chunk plus the per-record overhead.
const TX_SIZE: usize = WRITE_CHUNK + 4 * 1024;
/// Buffers of each size kept per thread for reuse.
const POOL_KEEP: usize = 64;

/// Free buffers of one size, at their full (initialised) length.
type FreeList = Vec<Vec<u8>>;

thread_local! {
    // Per worker thread: (receive-size buffers, send-size buffers).
    static POOL: RefCell<(FreeList, FreeList)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn take(size: usize) -> Vec<u8> {
    let pooled = POOL.with(|p| {
        let mut p = p.borrow_mut();
        if size == RX_SIZE {
            p.0.pop()
        } else {
            p.1.pop()
        }
    });
    // Zeroed once at allocation and reused as is: rustls writes into initialised slices,
    // and clearing 64 KiB per write would cost a fifth of the encryption itself.
    pooled.unwrap_or_else(|| vec![0; size])
}

fn give(buf: Vec<u8>) {
    if buf.len() != RX_SIZE && buf.len() != TX_SIZE {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let list = if buf.len() == RX_SIZE {
            &mut p.0
        } else {
            &mut p.1
        };
        if list.len() < POOL_KEEP {
            list.push(buf);
        }
    });
}

/// Bytes `[start..end]` of a pooled buffer, or nothing (no allocation) when empty.
#[derive(Default)]
struct Window {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Window {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    /// Make room for `more` bytes after `end`, taking a pooled buffer of `size` if needed.
    fn reserve(&mut self, size: usize, more: usize) {
        if self.buf.is_empty() {
            self.buf = take(size);
            self.start = 0;
            self.end = 0;
        }
        if self.end + more > self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end + more > self.buf.len() {
                self.buf.resize(self.end + more, 0);
            }
        }
    }
    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.release();
        }
    }
    fn release(&mut self) {
        give(std::mem::take(&mut self.buf));
        self.start = 0;
        self.end = 0;
    }
    /// A connection waiting for the rest of a record keeps only the bytes it has, not a
    /// pooled buffer (thousands of clients holding half a record must stay cheap).
    fn shrink_if_idle(&mut self) {
        if !self.is_empty() && self.buf.len() >= RX_SIZE && self.len() < self.buf.len() / 4 {
            let part = self.data().to_vec();
            give(std::mem::replace(&mut self.buf, part));
            self.end -= self.start;
            self.start = 0;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Handshake,
    Open,
    /// The peer sent close_notify (or a fatal alert), or TCP closed under us.
    Ended,
    /// The first bytes were a plaintext HTTP request: answer it in clear text, then close.
    Cleartext,
}

/// What driving the session produced.
enum Drive {
    /// rustls needs more ciphertext.
    NeedInput,
    /// Plaintext was delivered.
    Plaintext,
    /// Application data may be written (returns how much of it was encrypted).
    Encrypted(usize),
    Ended,
}

pub struct TlsStream {
    sock: TcpStream,
    conn: UnbufferedServerConnection,
    shared: Arc<TlsShared>,
    mode: Mode,
    /// Ciphertext received and not processed yet (a partial record, or pipelined records).
    rx: Window,
    /// Ciphertext to send.
    tx: Window,
    /// Decrypted bytes the connection has not taken yet.
    plain: Vec<u8>,
    /// close_notify queued: shut the socket's write side once `tx` is out.
    closing: bool,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, e)
}

/// An error the caller maps to "plain HTTP on the TLS port".
pub fn is_cleartext_http(e: &io::Error) -> bool {
    e.kind() == ErrorKind::InvalidInput
}

impl TlsStream {
    pub fn new(sock: TcpStream, shared: Arc<TlsShared>) -> io::Result<TlsStream> {
        let conn = UnbufferedServerConnection::new(shared.config.clone())
            .map_err(|e| io::Error::other(format!("TLS session: {e}")))?;
        Ok(TlsStream {
            sock,
            conn,
            shared,
            mode: Mode::Handshake,
            rx: Window::default(),
            tx: Window::default(),
            plain: Vec::new(),
            closing: false,
        })
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub fn socket_ref(&self) -> &TcpStream {
        &self.sock
    }

    fn stats(&self) -> &TlsStats {
        &self.shared.stats
    }

    pub fn is_handshaking(&self) -> bool {
        self.mode == Mode::Handshake
    }

    /// Ciphertext queued for the socket.
    pub fn pending(&self) -> usize {
        self.tx.len()
    }

    /// Write queued ciphertext. Ok(true) when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        while !self.tx.is_empty() {
            match fsys::send(self.sock.as_raw_fd(), self.tx.data(), false) {
                Ok(n) => self.tx.consume(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.closing {
            self.closing = false;
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
        }
        Ok(true)
    }

    /// Run rustls on what we hold: decrypt records (into `out`, up to `max` bytes, the rest
    /// into `plain`), queue handshake messages, and when it may send application data,
    /// encrypt `data`.
    fn drive(&mut self, out: &mut Vec<u8>, max: usize, data: &[u8]) -> io::Result<Drive> {
        loop {
            let mut opened = false;
            let rx = &mut self.rx;
            let incoming: &mut [u8] = if rx.is_empty() {
                &mut []
            } else {
                &mut rx.buf[rx.start..rx.end]
            };
            let status = self.conn.process_tls_records(incoming);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(s) => s,
                Err(e) => {
                    self.rx.consume(discard);
                    self.fail(&e);
                    return Err(tls_error(e));
                }
            };
            let next = match state {
                ConnectionState::ReadTraffic(mut r) => {
                    let mut got = false;
                    while let Some(rec) = r.next_record() {
                        let rec = rec.map_err(tls_error)?;
                        discard += rec.discard;
                        let room = max.saturating_sub(out.len());
                        let (now, later) = rec.payload.split_at(room.min(rec.payload.len()));
                        out.extend_from_slice(now);
                        self.plain.extend_from_slice(later);
                        got = true;
                    }
                    got.then_some(Drive::Plaintext)
                }
                ConnectionState::ReadEarlyData(mut r) => {
                    // 0-RTT is off (max_early_data_size 0): nothing should arrive; drop it.
                    while let Some(rec) = r.next_record() {
                        discard += rec.map_err(tls_error)?.discard;
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let mut need = 4096;
                    loop {
                        self.tx.reserve(TX_SIZE, need);
                        let tx = &mut self.tx;
                        match e.encode(&mut tx.buf[tx.end..]) {
                            Ok(n) => {
                                tx.end += n;
                                break;
                            }
                            Err(EncodeError::InsufficientSize(s)) => need = s.required_size,
                            Err(EncodeError::AlreadyEncoded) => break,
                        }
                    }
                    None
                }
                ConnectionState::TransmitTlsData(t) => {
                    // Queued in order in `tx`; the socket gets it before anything later.
                    t.done();
                    None
                }
                ConnectionState::WriteTraffic(mut w) => {
                    if self.mode == Mode::Handshake {
                        self.mode = Mode::Open;
                        opened = true;
                    }
                    if data.is_empty() {
                        Some(Drive::NeedInput)
                    } else {
                        let mut need = data.len() + 1024;
                        loop {
                            self.tx.reserve(TX_SIZE, need);
                            let tx = &mut self.tx;
                            match w.encrypt(data, &mut tx.buf[tx.end..]) {
                                Ok(n) => {
                                    tx.end += n;
                                    break Some(Drive::Encrypted(data.len()));
                                }
                                Err(EncryptError::InsufficientSize(s)) => need = s.required_size,
                                Err(EncryptError::EncryptExhausted) => {
                                    break Some(Drive::Ended);
                                }
                            }
                        }
                    }
                }
                ConnectionState::BlockedHandshake => Some(Drive::NeedInput),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.mode = Mode::Ended;
                    Some(Drive::Ended)
                }
                _ => Some(Drive::NeedInput),
            };
            self.rx.consume(discard);
            if opened {
                self.count_handshake();
            }
            if let Some(d) = next {
                return Ok(d);
            }
        }
    }

    fn count_handshake(&self) {
        let st = self.stats();
        let v13 = self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let resumed = self.conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let i = usize::from(v13) * 2 + usize::from(resumed);
        st.handshakes[i].fetch_add(1, Relaxed);
    }

    /// A fatal error: count it by cause and queue the alert rustls prepared.
    fn fail(&mut self, e: &rustls::Error) {
        let st = self.stats();
        let i = match e {
            rustls::Error::AlertReceived(_) => super::FAIL_ALERT,
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                super::FAIL_GARBAGE
            }
            _ => super::FAIL_OTHER,
        };
        if self.mode == Mode::Handshake {
            st.failures[i].fetch_add(1, Relaxed);
        }
        self.mode = Mode::Ended;
        // One more pass hands over the alert (if any) for sending.
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut enc)) = status.state {
            self.tx.reserve(TX_SIZE, 256);
            let tx = &mut self.tx;
            if let Ok(n) = enc.encode(&mut tx.buf[tx.end..]) {
                tx.end += n;
            }
        }
        let _ = self.flush();
    }

    /// Read request bytes (plaintext) into the spare capacity of `out`, at most `max`.
    /// Ok(0): the peer closed. WouldBlock: nothing more now (queued handshake bytes are
    /// written first, as far as the socket takes them).
    pub fn recv(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let before = out.len();
        loop {
            if !self.plain.is_empty() {
                let n = self.plain.len().min(max.saturating_sub(out.len() - before));
                out.extend_from_slice(&self.plain[..n]);
                self.plain.drain(..n);
                if self.plain.capacity() > 4096 && self.plain.is_empty() {
                    self.plain = Vec::new();
                }
                if n > 0 {
                    return Ok(n);
                }
            }
            match self.mode {
                Mode::Ended => return Ok(0),
                Mode::Cleartext => return Err(ErrorKind::InvalidInput.into()),
                Mode::Handshake | Mode::Open => {}
            }
            if !self.rx.is_empty() {
                if self.mode == Mode::Handshake && self.rx.data()[0].is_ascii_alphabetic() {
                    // "GET / HTTP/1.1" on the TLS port: a TLS record starts with 0x14-0x18.
                    self.mode = Mode::Cleartext;
                    self.rx.release();
                    self.stats().failures[super::FAIL_PLAIN_HTTP].fetch_add(1, Relaxed);
                    return Err(ErrorKind::InvalidInput.into());
                }
                let limit = before + max;
                match self.drive(out, limit, &[])? {
                    Drive::Plaintext => {
                        let n = out.len() - before;
                        if n > 0 {
                            return Ok(n);
                        }
                        continue;
                    }
                    Drive::Ended => return Ok(0),
                    Drive::NeedInput | Drive::Encrypted(_) => {}
                }
            }
            // Handshake replies go out before we wait for the peer's next flight.
            self.flush()?;
            self.rx.reserve(RX_SIZE, 4096);
            let rx = &mut self.rx;
            let room = rx.buf.len() - rx.end;
            match fsys::recv(self.sock.as_raw_fd(), &mut rx.buf[rx.end..rx.end + room]) {
                Ok(0) => {
                    if self.rx.is_empty() {
                        self.rx.release();
                    }
                    if self.mode == Mode::Handshake {
                        self.stats().failures[super::FAIL_EOF].fetch_add(1, Relaxed);
                    }
                    self.mode = Mode::Ended;
                    return Ok(0);
                }
                Ok(n) => self.rx.end += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if self.rx.is_empty() {
                        self.rx.release();
                    } else {
                        self.rx.shrink_if_idle();
                    }
                    return Err(e);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypt and send `head` then `body` (as much as one chunk allows). Returns the
    /// plaintext bytes taken; WouldBlock while earlier ciphertext is still queued.
    pub fn send(&mut self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        if self.mode == Mode::Cleartext {
            // The one answer to a plaintext request on the TLS port goes out in clear.
            let n = fsys::send2(self.sock.as_raw_fd(), head, body, false)?;
            return Ok(n);
        }
        if !self.flush()? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        for part in [head, body] {
            let part = &part[..part.len().min(WRITE_CHUNK - taken)];
            if part.is_empty() {
                continue;
            }
            match self.drive(&mut Vec::new(), 0, part)? {
                Drive::Encrypted(n) => taken += n,
                Drive::Ended => return Err(ErrorKind::BrokenPipe.into()),
                Drive::NeedInput | Drive::Plaintext => break,
            }
        }
        if taken == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.flush()?;
        Ok(taken)
    }

    /// Send up to `len` bytes of `file` from `*pos`: read from the page cache into a pooled
    /// buffer, encrypt, send. Ok(0) when the file ended early (it shrank).
    pub fn send_file(&mut self, file: &OwnedFd, pos: &mut u64, len: usize) -> io::Result<usize> {
        if !self.flush()? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut chunk = take(TX_SIZE);
        let want = len.min(WRITE_CHUNK);
        let read = fsys::pread(file.as_raw_fd(), &mut chunk[..want], *pos);
        let result = match read {
            Ok(0) => Ok(0),
            Ok(n) => match self.drive(&mut Vec::new(), 0, &chunk[..n]) {
                Ok(Drive::Encrypted(m)) => {
                    *pos += m as u64;
                    self.flush().map(|_| m)
                }
                Ok(Drive::Ended) => Err(ErrorKind::BrokenPipe.into()),
                Ok(_) => Err(ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        give(chunk);
        result
    }

    /// Read and drop what a closing peer still sends (raw: no need to decrypt it), and keep
    /// flushing our close_notify.
    pub fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        let _ = self.flush();
        fsys::recv(self.sock.as_raw_fd(), scratch)
    }

    /// Send close_notify after the last response, then shut the write side.
    pub fn shutdown_write(&mut self) {
        if self.mode == Mode::Open {
            let status = self.conn.process_tls_records(&mut []);
            if let Ok(ConnectionState::WriteTraffic(mut w)) = status.state {
                self.tx.reserve(TX_SIZE, 256);
                let tx = &mut self.tx;
                if let Ok(n) = w.queue_close_notify(&mut tx.buf[tx.end..]) {
                    tx.end += n;
                }
            }
        }
        self.closing = true;
        let _ = self.flush();
    }

    /// Release the buffers of a connection that is going away.
    pub fn release(&mut self) {
        self.rx.release();
        self.tx.release();
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        self.release();
    }
}
