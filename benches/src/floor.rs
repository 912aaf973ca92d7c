//! `floor`: the least an HTTP/1.1 server can do per request, to show how far the others are
//! from what the kernel allows on this box. Each thread owns a listener on the shared port
//! (SO_REUSEPORT) and a level-triggered epoll set; per request it makes one read(2) and one
//! write(2) of a response built once at start (head + the file given, e.g. the playlist the
//! other servers send). It does not parse: every read is taken to be one whole request,
//! which holds for wrk's one-request-at-a-time keep-alive connections and nothing else.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::{Domain, Protocol, Socket, Type};

/// The token of the listener in each epoll set (connections use their fd number).
const LISTENER: u64 = u64::MAX;

/// The fixed response: a head any HTTP/1.1 client accepts, then `body`.
pub fn response(body: &[u8], content_type: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A whole response given as it is (`floor --verbatim`): a status line, a head whose
/// Content-Length matches the bytes after it. CRLF line ends as `curl -si` keeps them.
pub fn verbatim(r: Vec<u8>) -> Result<Vec<u8>, String> {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("floor --verbatim: no end of head (CRLF CRLF); give `curl -si URL` output")?;
    let head = String::from_utf8_lossy(&r[..end]);
    if !head.starts_with("HTTP/1.1 ") {
        return Err("floor --verbatim: the response must start with HTTP/1.1".into());
    }
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or("floor --verbatim: the head has no Content-Length")?;
    if r.len() - end - 4 != len {
        return Err(format!(
            "floor --verbatim: Content-Length {len} but {} body bytes",
            r.len() - end - 4
        ));
    }
    Ok(r)
}

fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(65535)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Serve `response` on `addr` with `threads` threads until killed.
/// `incoming_cpu`: thread i's listener takes the connections arriving on the i-th CPU
/// (SO_INCOMING_CPU), as corestream's workers do with --incoming-cpu.
pub fn run(
    addr: SocketAddr,
    threads: usize,
    response: Vec<u8>,
    incoming_cpu: bool,
) -> Result<(), String> {
    crate::machine::raise_nofile();
    let listeners = (0..threads.max(1))
        .map(|_| listener(addr))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| format!("floor: cannot listen on {addr}: {e}"))?;
    if incoming_cpu {
        let cpus = corestream_common::cpus::allowed();
        for (i, l) in listeners.iter().enumerate() {
            if let Some(&cpu) = cpus.get(i % cpus.len().max(1)) {
                socket2::SockRef::from(l)
                    .set_cpu_affinity(cpu)
                    .map_err(|e| format!("floor: SO_INCOMING_CPU {cpu}: {e}"))?;
            }
        }
    }
    let response: &'static [u8] = Vec::leak(response);
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| std::thread::spawn(move || serve(&l, response)))
        .collect();
    println!("floor: listening on http://{addr}/");
    io::stdout().flush().map_err(|e| e.to_string())?;
    for h in handles {
        match h.join() {
            Ok(r) => r.map_err(|e| format!("floor: {e}"))?,
            Err(_) => return Err("floor: a thread panicked".into()),
        }
    }
    Ok(())
}

fn serve(listener: &TcpListener, response: &[u8]) -> io::Result<()> {
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    ep.add(
        listener.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, LISTENER),
    )?;
    // Connections by fd number: the kernel hands out the lowest free one, so this stays dense.
    let mut conns: Vec<Option<TcpStream>> = Vec::new();
    let mut events = vec![EpollEvent::empty(); 512];
    let mut buf = [0u8; 4096];
    loop {
        let n = match ep.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            if ev.data() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            let fd = s.as_raw_fd() as usize;
                            ep.add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, fd as u64))?;
                            if conns.len() <= fd {
                                conns.resize_with(fd + 1, || None);
                            }
                            conns[fd] = Some(s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // Out of descriptors or a connection reset in the queue: try later.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let fd = ev.data() as usize;
            let Some(Some(s)) = conns.get_mut(fd) else {
                continue;
            };
            let keep = match s.read(&mut buf) {
                Ok(0) => false,
                // One write; a response that does not fit the socket buffer at once ends
                // the connection (the client sees an error), as the floor keeps no state.
                Ok(_) => matches!(s.write(response), Ok(n) if n == response.len()),
                Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            };
            if !keep {
                // Closing the descriptor also removes it from the epoll set.
                conns[fd] = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_response_is_taken_as_it_is_and_a_broken_one_refused() {
        let ok = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
        assert_eq!(verbatim(ok.clone()), Ok(ok));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello".to_vec();
        assert!(verbatim(short)
            .unwrap_err()
            .contains("Content-Length 9 but 5"));
        assert!(verbatim(b"hello".to_vec()).is_err());
        assert!(verbatim(b"HTTP/1.1 200 OK\r\n\r\nhello".to_vec()).is_err());
        assert!(verbatim(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()).is_err());
    }

    #[test]
    fn answers_every_request_on_a_keep_alive_connection() {
        let l = listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let want = response(b"#EXTM3U\n", "text/plain");
        let served = Vec::leak(want.clone());
        std::thread::spawn(move || serve(&l, served));
        for _ in 0..3 {
            s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, want);
        }
    }
}
