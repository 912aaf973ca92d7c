//! Every file the tuner reads or writes, relative to `--root` (so tests point the whole tool at a
//! fake tree), in one place: a finding's evidence, a remedy and `apply` name the same file.

use std::path::{Path, PathBuf};

// Kernel counters and state.
pub const SOFTIRQS: &str = "proc/softirqs";
pub const STAT: &str = "proc/stat";
pub const SOFTNET_STAT: &str = "proc/net/softnet_stat";
pub const NETSTAT: &str = "proc/net/netstat";
pub const SNMP: &str = "proc/net/snmp";
pub const SOCKSTAT: &str = "proc/net/sockstat";
pub const NET_TCP: &str = "proc/net/tcp";
pub const NET_TCP6: &str = "proc/net/tcp6";
pub const NET_DEV: &str = "proc/net/dev";
pub const INTERRUPTS: &str = "proc/interrupts";
pub const MEMINFO: &str = "proc/meminfo";
pub const FILESYSTEMS: &str = "proc/filesystems";
pub const FILE_NR: &str = "proc/sys/fs/file-nr";
/// Every sysctl lives beneath it: `net.core.somaxconn` is `proc/sys/net/core/somaxconn`.
pub const PROC_SYS: &str = "proc/sys";
pub const PROC: &str = "proc";
pub const SELF_STATUS: &str = "proc/self/status";
pub const SELF_NETNS: &str = "proc/self/ns/net";
pub const SELF_PIDNS: &str = "proc/self/ns/pid";
/// init's network namespace: the initial one when this is the initial PID namespace.
pub const INIT_NETNS: &str = "proc/1/ns/net";
pub const CONNTRACK_STAT: &str = "proc/net/stat/nf_conntrack";
/// Present when systemd is the running init (sd_booted(3)).
pub const SYSTEMD_RUNNING: &str = "run/systemd/system";
/// Where `softirq` mounts tracefs in its private mount namespace.
pub const TRACEFS: &str = "sys/kernel/tracing";
pub const CPU_ONLINE: &str = "sys/devices/system/cpu/online";
pub const CLASS_NET: &str = "sys/class/net";
pub const PROC_IRQ: &str = "proc/irq";
/// Where the softirq tracepoints are, newest mount point first.
pub const TRACEFS_DIRS: &[&str] = &[TRACEFS, "sys/kernel/debug/tracing"];
/// `ss -Hlnt` output captured elsewhere, read instead of the live sockets (tests, offline trees).
pub const LISTENERS_FIXTURE: &str = "corestream-fixtures/listeners";

// Files `apply --persist` writes; remedies name the same ones.
pub const SYSCTL_D: &str = "etc/sysctl.d/60-corestream.conf";
pub const LIMITS_D: &str = "etc/security/limits.d/90-corestream.conf";
/// The systemd unit the server runs as, and where its drop-ins live.
pub const UNIT: &str = "corestream.service";
pub const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];
/// The drop-in `apply --persist` writes for `unit` (`corestream.service`, `corestream@9181.service`).
pub fn dropin(unit: &str) -> String {
    format!("etc/systemd/system/{unit}.d/nofile.conf")
}

/// Backups and the apply lock, beneath the root unless `--state-dir` says otherwise.
pub const STATE_DIR: &str = "var/lib/corestream-tune";

/// `rel` beneath `root`.
pub fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

/// `rel` as an SRE would type it on the live system: `/proc/net/netstat`.
pub fn shown(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

/// A process's directory (`proc/PID`) or a file in it (`proc/PID/limits`).
pub fn pid(pid: u32, file: &str) -> String {
    if file.is_empty() {
        format!("proc/{pid}")
    } else {
        format!("proc/{pid}/{file}")
    }
}

/// Path of a dotted sysctl key relative to the root: `net.core.somaxconn` is
/// `proc/sys/net/core/somaxconn`.
pub fn sysctl(key: &str) -> PathBuf {
    let mut p = PathBuf::from(PROC_SYS);
    for part in key.split('.') {
        p.push(part);
    }
    p
}
