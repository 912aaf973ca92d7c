//! `idle-holder`: a child process that holds N idle TCP connections to a server until its
//! stdin closes, so the client ends do not count against the measuring process's fd table.
//! Used by `compare` (idle keep-alive memory of a server) and `idle-scaling` (idle
//! descriptors in a poll/epoll set).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::child;

/// The `idle-holder` child: connect `count` TCP connections to `addr` (from `bind` if set),
/// optionally send one GET for `request` on each and read the whole response (so the server
/// sees a used keep-alive connection), print "ready N", then hold them until stdin closes.
pub fn holder(addr: SocketAddr, count: usize, request: Option<&str>) -> Result<(), String> {
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let s = TcpStream::connect(addr).map_err(|e| {
            format!(
                "connection {i} of {count} to {addr} failed: {e} (fd limit or ephemeral ports?)"
            )
        })?;
        conns.push(s);
    }
    if let Some(path) = request {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        for s in &mut conns {
            s.write_all(req.as_bytes())
                .map_err(|e| format!("sending the request: {e}"))?;
        }
        for s in &mut conns {
            read_response(s)?;
        }
    }
    println!("ready {}", conns.len());
    io::stdout().flush().map_err(|e| e.to_string())?;
    // Hold until the parent closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// Read one HTTP response with a Content-Length body from a blocking stream.
fn read_response(s: &mut TcpStream) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        read_more(
            s,
            &mut buf,
            "the server closed the connection before answering",
        )?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = resp.parse(&buf) {
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .ok_or("response without Content-Length")?;
            if resp.code != Some(200) {
                return Err(format!("server answered {:?}", resp.code));
            }
            while buf.len() < head + len {
                read_more(s, &mut buf, "the server closed mid-body")?;
            }
            return Ok(());
        }
    }
}

/// Append what one read returns to `buf`; end of stream is the error `eof`.
fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, eof: &str) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    let n = s
        .read(&mut chunk)
        .map_err(|e| format!("reading the response: {e}"))?;
    if n == 0 {
        return Err(eof.to_string());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// A running idle-holder child; dropping it closes its stdin and reaps it.
pub struct Holder {
    child: Option<Child>,
}

impl Holder {
    pub fn spawn(addr: SocketAddr, count: usize, request: Option<&str>) -> Result<Holder, String> {
        let mut cmd = child::own("idle-holder")?;
        cmd.arg("--connect")
            .arg(addr.to_string())
            .arg("--count")
            .arg(count.to_string());
        if let Some(r) = request {
            cmd.arg("--request").arg(r);
        }
        let child = child::spawn_reporting(&mut cmd, Stdio::piped(), "idle-holder")?;
        Ok(Holder { child: Some(child) })
    }

    /// Block until the child reports all connections made.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let child = self.child.as_mut().ok_or("holder already stopped")?;
        let out = child.stdout.take().ok_or("holder has no stdout")?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("idle-holder: {e}"))?;
        if line.starts_with("ready") {
            Ok(())
        } else {
            let st = child.wait().map_err(|e| e.to_string())?;
            Err(format!("idle-holder failed ({st})"))
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
