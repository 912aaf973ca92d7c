//! `corestream-tune nofile` against real child processes: lowering, raising the soft limit up to
//! the hard one, and the refusals (hard limit without CAP_SYS_RESOURCE, fs.nr_open, another
//! user's process, no such process). CAP_SYS_RESOURCE is dropped from the bounding set when the
//! test runner has it, so the refusal path is the real kernel's on any machine.

mod fakeroot;
use fakeroot::BIN;
use std::process::{Child, Command, Stdio};

struct Sleeper(Child);
impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper(prefix: &[&str]) -> Sleeper {
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend(["sleep", "30"]);
    let child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    // setpriv execs sleep in place: same pid. Wait until it has become `sleep`.
    let comm = format!("/proc/{}/comm", child.id());
    for _ in 0..200 {
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Sleeper(child)
}

fn limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].parse().unwrap(), f[4].parse().unwrap())
}

fn have_cap_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap() & (1 << 24) != 0
}

/// Run the tool without CAP_SYS_RESOURCE.
fn nofile(args: &[&str]) -> fakeroot::Out {
    let mut cmd = if have_cap_sys_resource() {
        let mut c = Command::new("setpriv");
        c.args([
            "--bounding-set",
            "-sys_resource",
            "--inh-caps",
            "-sys_resource",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.arg("nofile").args(args);
    fakeroot::run(&mut cmd)
}

fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn lower_then_raise_soft_up_to_hard() {
    let s = sleeper(&[]);
    let pid = s.0.id();
    let (_, hard) = limits(pid);
    assert!(hard > 1000, "hard limit {hard} too small for this test");
    let p = pid.to_string();
    let o = nofile(&["--pid", &p, "--to", "1000", "--allow-lower", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains(&format!(
            "pid {pid}: RLIMIT_NOFILE now soft 1000 hard {hard}"
        )),
        "{o:?}"
    );
    assert!(o.stdout.contains("Lowered"), "{o:?}");
    assert_eq!(limits(pid), (1000, hard));

    let h = hard.to_string();
    let o = nofile(&["--pid", &p, "--to", &h, "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(limits(pid), (hard, hard));
    let o = nofile(&["--pid", &p, "--to", &h, "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("nothing to do"), "{o:?}");
}

#[test]
fn raising_the_hard_limit_without_cap_sys_resource_is_refused_and_explained() {
    let s = sleeper(&[]);
    let pid = s.0.id();
    // Lowering needs no privilege; it puts the hard limit below fs.nr_open on any machine
    // (containers often run with hard = nr_open = 1048576).
    let lowered = libc::rlimit {
        rlim_cur: 1000,
        rlim_max: 2000,
    };
    // SAFETY: valid rlimit pointer for the call; old limit not requested.
    let rc = unsafe {
        libc::prlimit(
            pid as i32,
            libc::RLIMIT_NOFILE,
            &lowered,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let before = limits(pid);
    assert_eq!(before, (1000, 2000));
    let cap = nr_open();
    let to = (before.1 + 1).to_string();
    let o = nofile(&["--pid", &pid.to_string(), "--to", &to, "--yes"]);
    assert_eq!(o.code, 3, "a refusal is a failure (3), not CRITICAL: {o:?}");
    assert!(
        o.stderr.contains(&format!(
            "raising the hard limit above {} needs CAP_SYS_RESOURCE, which this process does not have",
            before.1
        )) && o.stderr.contains(&format!("LimitNOFILE={to}"))
            && o.stderr.contains(&format!("--to {}", before.1)),
        "{o:?}"
    );
    assert_eq!(limits(pid), before);

    // Above fs.nr_open nobody may go, capability or not.
    let o = nofile(&[
        "--pid",
        &pid.to_string(),
        "--to",
        &(cap + 1).to_string(),
        "--yes",
    ]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr.contains(&format!("is above fs.nr_open = {cap}")),
        "{o:?}"
    );
    assert_eq!(limits(pid), before);
}

#[test]
fn another_users_process_and_missing_processes() {
    let s = sleeper(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]);
    let pid = s.0.id();
    let before = limits(pid);
    let o = nofile(&[
        "--pid",
        &pid.to_string(),
        "--to",
        "1000",
        "--allow-lower",
        "--yes",
    ]);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr
            .contains("belongs to another user and this process lacks CAP_SYS_RESOURCE"),
        "{o:?}"
    );
    assert_eq!(limits(pid), before);

    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let o = nofile(&["--pid", &gone_pid.to_string(), "--to", "1000", "--yes"]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(
        o.stderr.contains(&format!("no process {gone_pid}")),
        "{o:?}"
    );

    let o = nofile(&["--pid", "0"]);
    assert_eq!(o.code, 64);
    assert!(o.stderr.contains("--pid must be a process id"), "{o:?}");
    let o = nofile(&["--pid", "1", "--to", "0"]);
    assert!(
        o.stderr
            .contains("--to 0 would leave the process unable to open any file"),
        "{o:?}"
    );
    let o = nofile(&["--pid", "abc"]);
    assert_eq!(o.code, 64);
}

// Issue 17, defect 4: under a fake root it lowered a real process's soft limit to 100; it had
// no dry run, no confirmation, lowered without being asked to and accepted kernel threads.

#[test]
fn a_fake_root_never_touches_a_real_process() {
    let s = sleeper(&[]);
    let pid = s.0.id();
    let before = limits(pid);
    let r = fakeroot::FakeRoot::new();
    r.write(
        &format!("proc/{pid}/limits"),
        "Max open files            1024                 4096                 files     \n",
    );
    let o = fakeroot::run(Command::new(BIN).args([
        "--root",
        r.dir.to_str().unwrap(),
        "nofile",
        "--pid",
        &pid.to_string(),
        "--to",
        "100",
        "--allow-lower",
        "--yes",
    ]));
    assert_eq!(o.code, 64, "{o:?}");
    assert!(o.stderr.contains("is a tree, not this kernel"), "{o:?}");
    assert_eq!(limits(pid), before, "the live process was changed");
    // --dry-run shows it from the tree.
    let o = fakeroot::run(Command::new(BIN).args([
        "--root",
        r.dir.to_str().unwrap(),
        "nofile",
        "--pid",
        &pid.to_string(),
        "--to",
        "100",
        "--allow-lower",
        "--dry-run",
    ]));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("soft 1024 hard 4096 (from the tree's /proc"),
        "{o:?}"
    );
    assert_eq!(limits(pid), before);
}

#[test]
fn never_lowers_unasked_and_asks_or_needs_yes() {
    let s = sleeper(&[]);
    let pid = s.0.id().to_string();
    let before = limits(s.0.id());
    let o = nofile(&["--pid", &pid, "--to", "100", "--yes"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stdout.contains("pass --allow-lower"), "{o:?}");
    assert_eq!(limits(s.0.id()), before);
    let o = nofile(&["--pid", &pid, "--to", "100", "--allow-lower"]);
    assert_eq!(o.code, 64, "no terminal to ask, no --yes: {o:?}");
    assert!(o.stderr.contains("Re-run with --yes"), "{o:?}");
    assert_eq!(limits(s.0.id()), before);
    let o = nofile(&["--pid", &pid, "--to", "100", "--allow-lower", "--dry-run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("dry run: would set"), "{o:?}");
    assert_eq!(limits(s.0.id()), before);
}

#[test]
fn kernel_threads_are_refused() {
    let stat = std::fs::read_to_string("/proc/2/stat").unwrap_or_default();
    if !stat.contains("(kthreadd)") {
        eprintln!("SKIPPED: pid 2 is not kthreadd in this PID namespace");
        return;
    }
    let o = nofile(&["--pid", "2", "--to", "4096", "--dry-run"]);
    assert_eq!(o.code, 64, "{o:?}");
    assert!(o.stderr.contains("pid 2 is a kernel thread"), "{o:?}");
}
