//! The repository's sysctl.d/limits.d files are the built-in profile written out, and the
//! systemd unit passes `systemd-analyze verify`.

mod fakeroot;
use fakeroot::BIN;
use std::path::Path;
use std::process::Command;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn tool(args: &[&str]) -> String {
    let o = fakeroot::run(Command::new(BIN).args(args));
    assert_eq!(o.code, 0, "{o:?}");
    o.stdout
}

#[test]
fn committed_sysctl_d_is_the_builtin_profile() {
    let committed = repo("sysctl.d/60-corestream.conf");
    assert_eq!(
        committed,
        tool(&["profile"]),
        "sysctl.d/60-corestream.conf differs from the built-in profile: regenerate it with \
         `corestream-tune profile > sysctl.d/60-corestream.conf`"
    );
    // And independently of the renderer: every key line parses back to the built-in values.
    let builtin = corestream_tune::profile::edge();
    let lines: Vec<(String, String)> = committed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key = value");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    assert_eq!(lines.len(), builtin.sysctls.len());
    for e in &builtin.sysctls {
        let v = lines
            .iter()
            .find(|(k, _)| k == &e.key)
            .map(|(_, v)| v.clone());
        assert_eq!(v, Some(e.value_text()), "{}", e.key);
    }
    // Usable as a --profile file as is.
    let p = corestream_tune::profile::parse(
        &committed,
        "60-corestream.conf",
        corestream_tune::profile::edge(),
    )
    .unwrap();
    assert_eq!(
        p.sysctls
            .iter()
            .map(|e| (&e.key, &e.value))
            .collect::<Vec<_>>(),
        builtin
            .sysctls
            .iter()
            .map(|e| (&e.key, &e.value))
            .collect::<Vec<_>>()
    );
}

#[test]
fn committed_limits_d_is_the_builtin_nofile() {
    let committed = repo("limits.d/90-corestream.conf");
    assert_eq!(committed, tool(&["profile", "--format", "limits-d"]));
    let (n, _) = corestream_tune::profile::edge().nofile.unwrap();
    assert_eq!(
        corestream_tune::profile::parse_limits_d(&committed),
        Some((n, n))
    );
    assert!(
        n <= 1048576,
        "nofile must stay within the kernel's default fs.nr_open"
    );
    let dropin = tool(&["profile", "--format", "dropin"]);
    assert_eq!(
        corestream_tune::probe::unit::parse_limit_nofile(&dropin),
        vec![Some(n)]
    );
}

#[test]
fn systemd_unit_verifies() {
    let unit = repo("systemd/corestream-tune.service");
    assert!(unit.contains("After=systemd-sysctl.service"));
    assert!(unit.contains("Before=corestream.service"));
    assert!(unit.contains("ExecStart=/usr/local/bin/corestream-tune apply --yes"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is not installed (apt-get install systemd): the unit cannot be verified");
    }
    // verify checks that ExecStart's binary exists; give it one in a private root.
    let root = std::env::temp_dir().join(format!("cstune-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::fs::copy(BIN, root.join("usr/local/bin/corestream-tune")).unwrap();
    std::fs::write(
        root.join("etc/systemd/system/corestream-tune.service"),
        &unit,
    )
    .unwrap();
    let verify = |r: &Path| {
        fakeroot::run(
            Command::new("systemd-analyze")
                .arg("verify")
                .arg(format!("--root={}", r.display()))
                .arg("corestream-tune.service"),
        )
    };
    let o = verify(&root);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.all().trim().is_empty(), "{o:?}");
    // Without the binary verify fails: so the check above is not vacuous.
    std::fs::remove_file(root.join("usr/local/bin/corestream-tune")).unwrap();
    let o = verify(&root);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("/usr/local/bin/corestream-tune is not executable"),
        "{o:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
