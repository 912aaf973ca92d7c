//! Capabilities from `CapEff` in `/proc/PID/status` (bit numbers from linux/capability.h).

use anyhow::Context;

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_PERFMON: u32 = 38;

/// The effective capability set in the text of a `/proc/PID/status`.
pub fn parse_eff(status_text: &str) -> anyhow::Result<u64> {
    let hex = status_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff line in status")?
        .trim();
    u64::from_str_radix(hex, 16).with_context(|| format!("CapEff {hex:?} is not hex"))
}

pub fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// This process's effective capabilities. Always the live `/proc/self`, never beneath
/// `--root`: what the kernel lets *this* process do does not depend on the tree it inspects.
pub fn own() -> Option<u64> {
    let live = crate::paths::under(std::path::Path::new("/"), crate::paths::SELF_STATUS);
    parse_eff(&std::fs::read_to_string(live).ok()?).ok()
}
