//! Backups taken by `apply` before it changes anything, read by `rollback`.
//!
//! One JSON file per apply, `backup-YYYYmmddTHHMMSS.mmmZ.json` under the state directory, so
//! names sort by time. A rolled-back backup is renamed `*.json.rolled-back`, which makes the
//! next `rollback` undo the apply before it (a stack, like TuneD's saved originals).

use anyhow::{bail, Context};
use corestream_common::date::Civil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedValue {
    /// Sysctl key (`net.core.somaxconn`) or RPS name (`eth0/rx-0 rps_cpus`).
    pub key: String,
    /// Path relative to the root that was written.
    pub path: String,
    pub scope: String,
    /// The value before apply, as the kernel printed it (whitespace-normalised).
    pub previous: String,
    /// What apply wrote; rollback refuses to touch a value someone changed since.
    pub applied: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedFile {
    /// Path relative to the root.
    pub path: String,
    /// Content before apply; `None` if the file did not exist (rollback removes it).
    pub previous: Option<String>,
    /// What apply wrote.
    pub written: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Backup {
    pub format: u32,
    /// UTC, RFC 3339.
    pub created: String,
    pub tool: String,
    /// The `--root` apply ran against; rollback must use the same.
    pub root: String,
    pub profile: String,
    pub values: Vec<SavedValue>,
    pub files: Vec<SavedFile>,
}

/// (RFC 3339 timestamp, file-name stamp) for a time.
pub fn stamps(t: SystemTime) -> (String, String) {
    let c = Civil::from_system_time(t);
    (c.rfc3339_millis(), c.compact())
}

/// The state directory: `--state-dir` as given, else the default beneath the root.
pub fn state_dir(root: &Path, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => crate::paths::under(root, crate::paths::STATE_DIR),
    }
}

/// Hold an exclusive lock on the state directory while changing anything, so two applies (or
/// an apply and a rollback, e.g. config management and the boot unit) cannot interleave their
/// backups and writes. Released when the returned file is dropped.
pub fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create state directory {} (use --state-dir to choose another)",
            dir.display()
        )
    })?;
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own and keep open for the call's duration.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!(
                "another corestream-tune apply or rollback is running (it holds {}); wait for it and re-run",
                path.display()
            );
        }
        return Err(e).with_context(|| format!("cannot lock {}", path.display()));
    }
    Ok(f)
}

/// Write `b` to a new file in `dir` (created if needed), fsynced, never overwriting another.
pub fn create(dir: &Path, b: &Backup) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create state directory {} for the backup (use --state-dir to choose another)",
            dir.display()
        )
    })?;
    for _ in 0..1000 {
        let (_, stamp) = stamps(SystemTime::now());
        let path = dir.join(format!("backup-{stamp}.json"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                drop(f);
                save(&path, b)?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create backup {}", path.display()))
            }
        }
    }
    bail!("cannot find a free backup file name in {}", dir.display())
}

/// (Re)write a backup in place, durably: a rollback depends on it surviving a crash.
pub fn save(path: &Path, b: &Backup) -> anyhow::Result<()> {
    use std::io::Write;
    let json = serde_json::to_string_pretty(b)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)
        .with_context(|| format!("cannot write backup {}", tmp.display()))?;
    f.write_all(json.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write backup {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write backup {}", path.display()))?;
    Ok(())
}

pub fn load(path: &Path) -> anyhow::Result<Backup> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read backup {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a corestream-tune backup (JSON written by `apply`)",
            path.display()
        )
    })
}

/// The newest backup not yet rolled back, if any.
pub fn newest(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names: Vec<String> = rd
        .filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("backup-") && n.ends_with(".json"))
        .collect();
    names.sort();
    Ok(names.pop().map(|n| dir.join(n)))
}

/// Mark a backup as used so the next rollback takes the one before it.
pub fn retire(path: &Path) -> anyhow::Result<PathBuf> {
    let mut done = path.as_os_str().to_owned();
    done.push(".rolled-back");
    let done = PathBuf::from(done);
    std::fs::rename(path, &done)
        .with_context(|| format!("cannot rename {} after rollback", path.display()))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_977_600_123);
        assert_eq!(stamps(t).0, "2026-11-29T18:40:00.123Z");
        assert_eq!(stamps(t).1, "20261129T184000.123Z");
        assert_eq!(stamps(UNIX_EPOCH).0, "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&stamps(leap).0[..10], "2000-02-29");
    }
}
