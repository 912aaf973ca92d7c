//! Cost from /proc: CPU time (utime+stime in /proc/PID/stat) and resident memory (VmRSS in
//! /proc/PID/status) of server and client processes, a process's children (to find nginx's
//! workers under its master), and the kernel's slab memory (/proc/meminfo).

use std::fs;
use std::path::Path;

/// utime + stime in clock ticks from the text of /proc/PID/stat.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and ')'
/// ("nginx: worker process"), so fields are counted after the LAST ')'.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) -> indexes 11 and 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Parent pid (field 4) from the text of /proc/PID/stat.
pub fn parse_stat_ppid(text: &str) -> Option<i32> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// VmRSS in bytes from the text of /proc/PID/status. Kernel threads and zombies have no
/// VmRSS line: that is 0, not an error.
pub fn parse_status_rss(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let v = l.strip_prefix("VmRSS:")?;
            let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds used so far by `pid` (0 when it is gone).
pub fn cpu_seconds(pid: i32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat_ticks(&t))
        .map_or(0.0, |t| t as f64 / clk_tck())
}

/// Resident set size of `pid` in bytes (0 when it is gone).
pub fn rss_bytes(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|t| parse_status_rss(&t))
        .unwrap_or(0)
}

/// Direct children of `pid`, found by scanning /proc/*/stat.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(Path::new("/proc")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|t| parse_stat_ppid(&t))
                == Some(pid)
        })
        .collect()
}

/// Slab memory in bytes from the text of /proc/meminfo (`Slab:` in kB; 0 when absent).
pub fn parse_meminfo_slab(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let kb: u64 = l
                .strip_prefix("Slab:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// The kernel's slab memory now (sockets, inodes, files, epoll items live there).
pub fn slab_bytes() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .map(|t| parse_meminfo_slab(&t))
        .unwrap_or(0)
}

/// Summed CPU seconds and RSS of a set of processes.
pub fn totals(pids: &[i32]) -> (f64, u64) {
    pids.iter().fold((0.0, 0), |(c, r), &p| {
        (c + cpu_seconds(p), r + rss_bytes(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fixture_current_kernel() {
        // Captured on Linux 6.18 (52 fields).
        let t = include_str!("../tests/fixtures/proc-pid-stat-6.18.txt");
        assert_eq!(parse_stat_ticks(t), Some(0));
        assert_eq!(parse_stat_ppid(t), Some(21164));
    }

    #[test]
    fn stat_fixture_nginx_worker_name_with_spaces() {
        // Captured from an nginx worker (comm "nginx") right after load on Linux 6.18.
        let t = include_str!("../tests/fixtures/proc-pid-stat-nginx-worker-6.18.txt");
        let ticks = parse_stat_ticks(t).unwrap();
        assert!(ticks > 0);
        assert!(parse_stat_ppid(t).unwrap() > 1);
    }

    #[test]
    fn stat_old_kernel_column_set() {
        // Linux 2.6.32 stops after field 44 (no start_data.. fields); utime/stime are at the
        // same place, which is all we read. Name with a ')' inside.
        let t = "4242 (a) b) S 1 4242 4242 0 -1 4202816 500 0 0 0 1234 567 0 0 20 0 1 0 100 \
                 10000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(parse_stat_ticks(t), Some(1801));
        assert_eq!(parse_stat_ppid(t), Some(1));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn status_fixtures() {
        let t = include_str!("../tests/fixtures/proc-pid-status-6.18.txt");
        assert!(parse_status_rss(t) > 100 * 1024);
        // Kernel threads have no VmRSS line.
        assert_eq!(
            parse_status_rss("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            0
        );
        assert_eq!(parse_status_rss("VmRSS:\t    2048 kB\n"), 2048 * 1024);
    }

    #[test]
    fn meminfo_slab() {
        let t = "MemTotal:       24567890 kB\nSlab:             345678 kB\nSReclaimable:     200000 kB\n";
        assert_eq!(parse_meminfo_slab(t), 345_678 * 1024);
        assert_eq!(parse_meminfo_slab("MemTotal: 1 kB\n"), 0);
        assert!(slab_bytes() > 0);
    }

    #[test]
    fn live_self() {
        let me = std::process::id() as i32;
        assert!(rss_bytes(me) > 0);
        assert!(cpu_seconds(me) >= 0.0);
        assert_eq!(rss_bytes(-5), 0);
    }
}
