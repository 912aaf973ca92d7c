//! `idle-scaling`: why an event loop needs epoll. For N idle connections plus a fixed set of
//! active ones, time one loop iteration (wait for readiness, find the ready descriptors,
//! read them) with poll(2) and with edge-triggered epoll_wait(2).
//!
//! The idle connections are real loopback TCP connections whose client ends live in a child
//! process (`idle-holder`), so this process spends one descriptor per idle connection and
//! 19k fit under the 20000-fd ceiling. The active ones are socketpairs, both ends here.
//!
//! `idle-holder` is also used by `compare` to hold idle keep-alive connections to a server
//! and measure its memory per connection.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::compare::today;
use crate::plot;
use crate::stats::median;

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
    let mut chunk = [0u8; 4096];
    loop {
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("reading the response: {e}"))?;
        if n == 0 {
            return Err("server closed the connection before answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
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
                let n = s
                    .read(&mut chunk)
                    .map_err(|e| format!("reading the body: {e}"))?;
                if n == 0 {
                    return Err("server closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(());
        }
    }
}

/// A running idle-holder child; dropping it closes its stdin and reaps it.
pub struct Holder {
    child: Option<Child>,
}

impl Holder {
    pub fn spawn(addr: SocketAddr, count: usize, request: Option<&str>) -> Result<Holder, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut cmd = Command::new(exe);
        crate::servers::die_with_parent(&mut cmd);
        cmd.arg("idle-holder")
            .arg("--connect")
            .arg(addr.to_string())
            .arg("--count")
            .arg(count.to_string());
        if let Some(r) = request {
            cmd.arg("--request").arg(r);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start idle-holder: {e}"))?;
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

/// Per-iteration times in microseconds.
struct Timing {
    median_us: f64,
    p99_us: f64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn poke(writers: &mut [UnixStream]) -> Result<(), String> {
    for w in writers.iter_mut() {
        w.write_all(b"x").map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

fn drain(fd: RawFd) -> usize {
    let mut b = [0u8; 64];
    let mut total = 0;
    loop {
        // SAFETY: reading into a stack buffer of the given length from an fd we own.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            return total;
        }
        total += n as usize;
    }
}

fn time_poll(
    idle: &[RawFd],
    active: &[RawFd],
    writers: &mut [UnixStream],
    iters: usize,
) -> Result<Timing, String> {
    let mut fds: Vec<libc::pollfd> = idle
        .iter()
        .chain(active)
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut times = Vec::with_capacity(iters);
    for it in 0..iters + iters / 10 {
        poke(writers)?;
        let t0 = Instant::now();
        let mut handled = 0;
        while handled < active.len() {
            // SAFETY: fds is a valid array of fds.len() pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
            if n < 0 {
                return Err(format!("poll: {}", io::Error::last_os_error()));
            }
            if n == 0 {
                return Err("poll timed out with active connections pending".into());
            }
            // A poll loop must scan the whole array to find the ready entries.
            for p in fds.iter_mut() {
                if p.revents != 0 {
                    p.revents = 0;
                    drain(p.fd);
                    handled += 1;
                }
            }
        }
        if it >= iters / 10 {
            times.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(Timing {
        median_us: median(&times).unwrap_or(f64::NAN),
        p99_us: pct(&mut times, 99.0),
    })
}

fn time_epoll(
    idle: &[RawFd],
    active: &[RawFd],
    writers: &mut [UnixStream],
    iters: usize,
) -> Result<Timing, String> {
    // SAFETY: plain syscall; the returned fd is closed below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
    }
    let res = (|| {
        for &fd in idle.iter().chain(active) {
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: fd as u64,
            };
            // SAFETY: ep and fd are open descriptors; ev is a valid event struct.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
            }
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut times = Vec::with_capacity(iters);
        for it in 0..iters + iters / 10 {
            poke(writers)?;
            let t0 = Instant::now();
            let mut handled = 0;
            while handled < active.len() {
                // SAFETY: events has room for events.len() entries.
                let n =
                    unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 1000) };
                if n < 0 {
                    return Err(format!("epoll_wait: {}", io::Error::last_os_error()));
                }
                if n == 0 {
                    return Err("epoll_wait timed out with active connections pending".into());
                }
                for ev in &events[..n as usize] {
                    // Edge-triggered: read until EAGAIN or the edge is lost.
                    drain(ev.u64 as RawFd);
                    handled += 1;
                }
            }
            if it >= iters / 10 {
                times.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok(Timing {
            median_us: median(&times).unwrap_or(f64::NAN),
            p99_us: pct(&mut times, 99.0),
        })
    })();
    // SAFETY: closing the epoll fd we created.
    unsafe { libc::close(ep) };
    res
}

pub struct Opts {
    pub idle: Vec<usize>,
    pub active: usize,
    pub iterations: usize,
    pub out_dir: PathBuf,
    pub command_line: String,
}

pub fn run(opts: Opts) -> Result<(), String> {
    let max_idle = opts.idle.iter().copied().max().unwrap_or(0);
    let soft = crate::compare::raise_nofile();
    let need = max_idle + 2 * opts.active + 64;
    if need as u64 > soft {
        return Err(format!(
            "{max_idle} idle + {} active connections need about {need} descriptors but RLIMIT_NOFILE is {soft}; lower --idle or raise the limit (ulimit -n)",
            opts.active
        ));
    }
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut holder = Holder::spawn(addr, max_idle, None)?;
    let mut idle = Vec::with_capacity(max_idle);
    while idle.len() < max_idle {
        let (s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        idle.push(s);
    }
    holder.wait_ready()?;
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..opts.active {
        let (a, b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        a.set_nonblocking(true).map_err(|e| e.to_string())?;
        readers.push(a);
        writers.push(b);
    }
    let active: Vec<RawFd> = readers.iter().map(|s| s.as_raw_fd()).collect();
    let idle_fds: Vec<RawFd> = idle.iter().map(|s| s.as_raw_fd()).collect();

    let mut rows = Vec::new();
    for &n in &opts.idle {
        let p = time_poll(&idle_fds[..n], &active, &mut writers, opts.iterations)?;
        let e = time_epoll(&idle_fds[..n], &active, &mut writers, opts.iterations)?;
        eprintln!(
            "idle {n:>6}: poll median {:>9.1} us p99 {:>9.1} us | epoll median {:>7.1} us p99 {:>7.1} us",
            p.median_us, p.p99_us, e.median_us, e.p99_us
        );
        rows.push((n, p, e));
    }
    drop(holder);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# poll(2) vs epoll_wait(2): cost of one event-loop iteration ({})\n",
        today()
    );
    let _ = writeln!(md, "Command: `{}`\n", opts.command_line);
    let _ = writeln!(md, "Each iteration: {} active connections (socketpairs) each get one byte, then the loop waits for readiness, finds the ready descriptors and reads them. The N idle connections are real loopback TCP connections (client ends held by a child process) registered in the same set. poll: one poll() over all N+{} descriptors plus the scan of the array; epoll: all registered once with EPOLLIN|EPOLLET, then epoll_wait() returns only the ready ones. {} timed iterations per cell after {} warm-up ones; kernel {}, {} CPUs (shared; other jobs may be running).\n",
        opts.active, opts.active, opts.iterations, opts.iterations / 10,
        fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        crate::compare::cpus());
    let _ = writeln!(md, "| idle connections | poll median us | poll p99 us | epoll median us | epoll p99 us | poll / epoll |");
    let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut dat = String::from("# idle poll_median_us poll_p99_us epoll_median_us epoll_p99_us\n");
    for (n, p, e) in &rows {
        let _ = writeln!(
            md,
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}x |",
            p.median_us,
            p.p99_us,
            e.median_us,
            e.p99_us,
            p.median_us / e.median_us
        );
        let _ = writeln!(
            dat,
            "{n} {:.3} {:.3} {:.3} {:.3}",
            p.median_us, p.p99_us, e.median_us, e.p99_us
        );
    }
    if rows.len() >= 2 {
        let (n0, p0, _) = &rows[0];
        let (n1, p1, _) = &rows[rows.len() - 1];
        if n1 > n0 {
            let _ = writeln!(
                md,
                "\npoll costs about {:.0} ns more per iteration for every idle connection (slope between {n0} and {n1}); epoll's cost does not depend on idle connections.",
                (p1.median_us - p0.median_us) * 1000.0 / (*n1 - *n0) as f64
            );
        }
    }
    print!("{md}");
    fs::create_dir_all(&opts.out_dir).map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    let stem = opts
        .out_dir
        .join(format!("{}-{}-idle-scaling", today(), host.trim()));
    let png = format!("{}-{}-idle-scaling.png", today(), host.trim());
    let datn = format!("{}-{}-idle-scaling.dat", today(), host.trim());
    let script = format!(
        "set terminal pngcairo size 900,500 noenhanced\nset output '{png}'\nset title 'Cost of one event-loop iteration, {} active connections'\nset xlabel 'idle connections'\nset ylabel 'microseconds per iteration (median)'\nset grid\nset key top left\nplot '{datn}' u 1:2 w lp lw 2 title 'poll(2)', '{datn}' u 1:4 w lp lw 2 title 'epoll_wait(2), edge-triggered'\n",
        opts.active
    );
    let note = match plot::gnuplot(&stem, &dat, &script) {
        Ok(()) => format!("Plot: {png}"),
        Err(e) => {
            eprintln!("warning: {e}");
            format!("Plot not made: {e}")
        }
    };
    let mdp = stem.with_extension("md");
    fs::write(&mdp, format!("{md}\n{note}\n")).map_err(|e| format!("{}: {e}", mdp.display()))?;
    eprintln!("wrote {}", mdp.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_and_epoll_see_every_active_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let _clients: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(a).unwrap()).collect();
        let idle: Vec<TcpStream> = (0..20).map(|_| l.accept().unwrap().0).collect();
        let idle_fds: Vec<RawFd> = idle.iter().map(|s| s.as_raw_fd()).collect();
        let (mut r, mut w) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (x, y) = UnixStream::pair().unwrap();
            x.set_nonblocking(true).unwrap();
            r.push(x);
            w.push(y);
        }
        let act: Vec<RawFd> = r.iter().map(|s| s.as_raw_fd()).collect();
        // Both loops terminate only if each active fd is reported every iteration.
        let p = time_poll(&idle_fds, &act, &mut w, 20).unwrap();
        let e = time_epoll(&idle_fds, &act, &mut w, 20).unwrap();
        assert!(p.median_us > 0.0 && e.median_us > 0.0);
        // Nothing left unread.
        for &fd in &act {
            assert_eq!(drain(fd), 0);
        }
    }
}
