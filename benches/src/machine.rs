//! Facts about the box a report names (host, date, kernel, CPUs, tool versions) and the one
//! process limit every load generator here needs raised: RLIMIT_NOFILE.

use std::fs;
use std::process::Command;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raise the soft fd limit to the hard one (children inherit it); returns the soft limit.
pub fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// UTC date as `YYYY-MM-DD`, for report names.
pub fn today() -> String {
    let c = corestream_common::date::Civil::from_system_time(std::time::SystemTime::now());
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// First line a tool prints for `cmd arg` (stdout or stderr), e.g. `nginx -v`.
pub fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let t = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            t.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|_| format!("{cmd}: not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert_eq!(t.len(), 10, "{t}");
        assert_eq!(&t[4..5], "-");
        assert!(raise_nofile() >= 1);
    }
}
