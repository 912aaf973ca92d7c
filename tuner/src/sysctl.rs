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
