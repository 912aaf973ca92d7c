//! Reading sysctls beneath a root directory: `net.core.somaxconn` is
//! `<root>/proc/sys/net/core/somaxconn`.

use std::io;
use std::path::{Path, PathBuf};

/// Path of a dotted sysctl key beneath `root`.
pub fn path(root: &Path, key: &str) -> PathBuf {
    let mut p = root.join("proc/sys");
    for part in key.split('.') {
        p.push(part);
    }
    p
}

/// Current value of a sysctl, whitespace-normalised (tabs in `tcp_mem` become single spaces).
pub fn read(root: &Path, key: &str) -> io::Result<String> {
    let text = std::fs::read_to_string(path(root, key))?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Write a sysctl (or any single-value kernel file) beneath `root` in one `write(2)`, the way
/// `sysctl -w` does. The file must already exist: a missing key is an error, never a new file.
pub fn write_file(file: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)?;
    f.write_all(format!("{value}\n").as_bytes())
}

/// Write a dotted sysctl key beneath `root`.
pub fn write(root: &Path, key: &str, value: &str) -> io::Result<()> {
    write_file(&path(root, key), value)
}
