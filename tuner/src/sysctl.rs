//! Reading and writing sysctls beneath a root directory: `net.core.somaxconn` is
//! `<root>/proc/sys/net/core/somaxconn`.

use std::io;
use std::path::{Path, PathBuf};

/// Path of a dotted sysctl key beneath `root`.
pub fn path(root: &Path, key: &str) -> PathBuf {
    root.join(crate::paths::sysctl(key))
}

/// A kernel value as one line with single spaces: the kernel separates `tcp_mem`'s fields with
/// tabs, and backups, comparisons and messages must not depend on that.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read any single-value kernel file, normalised.
pub fn read_file(file: &Path) -> io::Result<String> {
    std::fs::read_to_string(file).map(|t| normalize(&t))
}

/// Current value of a sysctl, normalised.
pub fn read(root: &Path, key: &str) -> io::Result<String> {
    read_file(&path(root, key))
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
