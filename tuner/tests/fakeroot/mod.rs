//! A fake root tree (`<tmp>/proc/sys/...`, `<tmp>/sys/...`) with this machine's values, and a
//! runner for the real `corestream-tune` binary against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_corestream-tune");

/// Values as read from this machine's 6.18 kernel (captured with `cat /proc/sys/...`).
pub const HOST_VALUES: &[(&str, &str)] = &[
    ("net/core/somaxconn", "4096"),
    ("net/core/netdev_max_backlog", "1000"),
    ("net/core/netdev_budget", "300"),
    ("net/core/netdev_budget_usecs", "8000"),
    ("net/core/rps_sock_flow_entries", "0"),
    ("net/ipv4/tcp_max_syn_backlog", "2048"),
    ("net/ipv4/tcp_syncookies", "1"),
    ("net/ipv4/tcp_migrate_req", "0"),
    ("fs/file-max", "2466183"),
    ("fs/nr_open", "1048576"),
    ("net/ipv4/tcp_mem", "287901\t383869\t575802"),
    ("net/ipv4/tcp_rmem", "4096\t131072\t33554432"),
    ("net/ipv4/tcp_wmem", "4096\t16384\t4194304"),
    ("net/ipv4/ip_local_port_range", "32768\t60999"),
];

/// `readlink /proc/self/ns/net` in the initial network namespace (PROC_NET_INIT_INO).
pub const INIT_NETNS: &str = "net:[4026531833]";

pub struct FakeRoot {
    pub dir: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl FakeRoot {
    /// A tree with every key of [`HOST_VALUES`].
    pub fn new() -> FakeRoot {
        let dir = std::env::temp_dir().join(format!(
            "cstune-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let r = FakeRoot { dir };
        for (k, v) in HOST_VALUES {
            r.set(k, v);
        }
        // The host's network namespace, as `readlink /proc/self/ns/net` shows it on 6.18+.
        r.netns_link("proc/self/ns/net", INIT_NETNS);
        r
    }

    /// A namespace link (`proc/self/ns/net -> net:[N]`), replacing any there.
    pub fn netns_link(&self, rel: &str, target: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Set a sysctl file (`net/core/somaxconn`) as the kernel prints it.
    pub fn set(&self, key: &str, value: &str) {
        self.write(&format!("proc/sys/{key}"), &format!("{value}\n"));
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// A sysctl's value, whitespace-normalised like the tool prints it.
    pub fn get(&self, key: &str) -> String {
        let t = std::fs::read_to_string(self.path(&format!("proc/sys/{key}"))).unwrap();
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok()
    }

    /// Backups in the default state directory (not rolled back).
    pub fn backups(&self) -> Vec<PathBuf> {
        list(&self.path("var/lib/corestream-tune"), ".json")
    }

    pub fn run(&self, args: &[&str]) -> Out {
        let mut full = vec!["--root", self.dir.to_str().unwrap()];
        full.extend_from_slice(args);
        run(Command::new(BIN).args(&full))
    }

    /// Like `run` with a profile file holding `text`.
    pub fn profile(&self, text: &str) -> String {
        let p = self.dir.join(format!(
            "profile-{}.conf",
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn list(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|d| d.ok())
                .map(|d| d.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run with stdin from /dev/null (not a terminal), capturing output.
pub fn run(cmd: &mut Command) -> Out {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run corestream-tune");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A captured tree under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Copy a tree, keeping symlinks as links (`sys/class/net/eth0/device` names the NIC's device).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if let Ok(target) = std::fs::read_link(&src) {
            std::os::unix::fs::symlink(target, &dst).expect("copy fixture link");
        } else if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy fixture");
        }
    }
}

/// A fresh copy of fixture `name` to edit the way the kernel would move it.
pub fn scratch_copy(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&fixture(name), &dir);
    dir
}

/// Set IFF_UP on `lo` in the calling thread's network namespace (no dependency on iproute2).
pub fn bring_lo_up() -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::AsRawFd;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: valid socket fd and a properly initialised ifreq that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
