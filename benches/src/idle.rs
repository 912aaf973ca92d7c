//! `idle-scaling`: why an event loop needs epoll. For N idle connections plus a fixed set of
//! active ones, time one loop iteration (wait for readiness, find the ready descriptors,
//! read them) with poll(2) and with edge-triggered epoll_wait(2).
//!
//! The idle connections are real loopback TCP connections whose client ends live in a child
//! process (`idle-holder`, see `holder.rs`), so this process spends one descriptor per idle
//! connection and 19k fit under the 20000-fd ceiling. The active ones are socketpairs, both
//! ends here. The syscalls are called raw on purpose: their cost is what is measured.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use crate::holder::Holder;
use crate::machine;
use crate::plot;
use crate::stats::median;

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

/// Time `iters` iterations (after `iters / 10` warm-up ones): each pokes every active
/// connection, then calls `wait` (one readiness wait plus handling what it reported,
/// returning how many it handled) until all active ones were handled.
fn time_iterations(
    writers: &mut [UnixStream],
    active: usize,
    iters: usize,
    mut wait: impl FnMut() -> Result<usize, String>,
) -> Result<Timing, String> {
    let mut times = Vec::with_capacity(iters);
    for it in 0..iters + iters / 10 {
        poke(writers)?;
        let t0 = Instant::now();
        let mut handled = 0;
        while handled < active {
            handled += wait()?;
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
    time_iterations(writers, active.len(), iters, || {
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if n < 0 {
            return Err(format!("poll: {}", io::Error::last_os_error()));
        }
        if n == 0 {
            return Err("poll timed out with active connections pending".into());
        }
        // A poll loop must scan the whole array to find the ready entries.
        let mut handled = 0;
        for p in fds.iter_mut() {
            if p.revents != 0 {
                p.revents = 0;
                drain(p.fd);
                handled += 1;
            }
        }
        Ok(handled)
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
        time_iterations(writers, active.len(), iters, || {
            // SAFETY: events has room for events.len() entries.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 1000) };
            if n < 0 {
                return Err(format!("epoll_wait: {}", io::Error::last_os_error()));
            }
            if n == 0 {
                return Err("epoll_wait timed out with active connections pending".into());
            }
            for ev in &events[..n as usize] {
                // Edge-triggered: read until EAGAIN or the edge is lost.
                drain(ev.u64 as RawFd);
            }
            Ok(n as usize)
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
    let soft = machine::raise_nofile();
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
        corestream_common::say!(
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
        machine::today()
    );
    let _ = writeln!(md, "Command: `{}`\n", opts.command_line);
    let _ = writeln!(md, "Each iteration: {} active connections (socketpairs) each get one byte, then the loop waits for readiness, finds the ready descriptors and reads them. The N idle connections are real loopback TCP connections (client ends held by a child process) registered in the same set. poll: one poll() over all N+{} descriptors plus the scan of the array; epoll: all registered once with EPOLLIN|EPOLLET, then epoll_wait() returns only the ready ones. {} timed iterations per cell after {} warm-up ones; kernel {}, {} CPUs (shared; other jobs may be running).\n",
        opts.active, opts.active, opts.iterations, opts.iterations / 10,
        machine::kernel(),
        machine::cpus());
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
    let host = machine::host();
    let stem = opts
        .out_dir
        .join(format!("{}-{}-idle-scaling", machine::today(), host));
    let png = format!("{}-{}-idle-scaling.png", machine::today(), host);
    let datn = format!("{}-{}-idle-scaling.dat", machine::today(), host);
    let script = format!(
        "set terminal pngcairo size 900,500 noenhanced\nset output '{png}'\nset title 'Cost of one event-loop iteration, {} active connections'\nset xlabel 'idle connections'\nset ylabel 'microseconds per iteration (median)'\nset grid\nset key top left\nplot '{datn}' u 1:2 w lp lw 2 title 'poll(2)', '{datn}' u 1:4 w lp lw 2 title 'epoll_wait(2), edge-triggered'\n",
        opts.active
    );
    let note = match plot::gnuplot(&stem, &dat, &script) {
        Ok(()) => format!("Plot: {png}"),
        Err(e) => {
            corestream_common::say!("warning: {e}");
            format!("Plot not made: {e}")
        }
    };
    let mdp = stem.with_extension("md");
    fs::write(&mdp, format!("{md}\n{note}\n")).map_err(|e| format!("{}: {e}", mdp.display()))?;
    corestream_common::say!("wrote {}", mdp.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

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
