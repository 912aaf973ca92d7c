//! The interactive confirmation on a real terminal (a pty from util-linux `script`): "n" changes
//! nothing, "y" applies; rollback asks the same way.

mod fakeroot;
use fakeroot::{FakeRoot, BIN};
use std::io::Write;
use std::process::{Command, Stdio};

/// Run the tool on a pseudo-terminal, answering `answer` to its question.
fn on_tty(r: &FakeRoot, args: &str, answer: &str) -> fakeroot::Out {
    let cmd = format!("{BIN} --root {} {args}", r.dir.display());
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` is needed for the terminal test");
    // Answer after the prompt is up; the pty buffers it either way.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    fakeroot::Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn asks_on_a_terminal_and_obeys_the_answer() {
    let r = FakeRoot::new();
    let p = r.profile("base = none\nnet.core.somaxconn = 8192\n");
    let o = on_tty(&r, &format!("apply --profile {p}"), "n");
    assert!(
        o.stdout.contains("Apply 1 value(s) and 0 file(s) beneath"),
        "{o:?}"
    );
    assert!(o.stdout.contains("Not applied."), "{o:?}");
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "4096");
    assert!(r.backups().is_empty());

    let o = on_tty(&r, &format!("apply --profile {p}"), "y");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "8192");

    let o = on_tty(&r, "rollback", "no");
    assert!(o.stdout.contains("Restore 1 item(s) beneath"), "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "8192");
    let o = on_tty(&r, "rollback", "yes");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(r.get("net/core/somaxconn"), "4096");
}
