//! Child processes that die with the harness: servers, wrk, idle holders and swarm workers
//! are started through here so that a killed harness leaves nothing running.

use std::process::{Child, Command, Stdio};

/// Make a load-test child die with the harness: if the harness is killed (not just
/// interrupted from a terminal, which signals the whole process group), its servers, wrk and
/// holder processes get SIGTERM instead of running on.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
    // getppid(2), both async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("harness exited"));
            }
            Ok(())
        })
    }
}

/// This executable re-run as `subcommand` (idle-holder, swarm-worker, floor), tied to us.
pub fn own(subcommand: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    die_with_parent(&mut cmd);
    cmd.arg(subcommand);
    Ok(cmd)
}

/// Start a child of ours that reports on its stdout (read by the caller); its stderr goes to
/// ours so its complaints are seen.
pub fn spawn_reporting(cmd: &mut Command, stdin: Stdio, what: &str) -> Result<Child, String> {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))
}

/// SIGTERM to a child we started and have not reaped (its pid cannot have been reused).
pub fn terminate(pid: u32) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}
