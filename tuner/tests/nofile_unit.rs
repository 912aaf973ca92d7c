//! Issue 17, defect 2: the server's open-file limit is read the way systemd reads it (the unit
//! and every drop-in, in order) and `apply --persist` never lowers it.

mod fakeroot;
use fakeroot::FakeRoot;

const DROPIN: &str = "etc/systemd/system/corestream.service.d/nofile.conf";

fn shipped_unit() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/corestream.service"),
    )
    .expect("systemd/corestream.service")
}

#[test]
fn the_shipped_unit_limit_is_read_and_never_lowered() {
    let r = FakeRoot::new();
    assert!(shipped_unit().contains("LimitNOFILE=1048576"));
    r.write("etc/systemd/system/corestream.service", &shipped_unit());
    let o = r.run(&["plan"]);
    let row = o
        .stdout
        .lines()
        .find(|l| l.starts_with("LimitNOFILE (corestream.service)"))
        .unwrap_or_else(|| panic!("{o:?}"));
    assert!(
        row.contains("1048576") && row.ends_with("already fine"),
        "{row}"
    );
    assert!(
        o.stdout
            .contains("LimitNOFILE: 1048576 comes from /etc/systemd/system/corestream.service"),
        "{o:?}"
    );
    let o = r.run(&["apply", "--persist", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        r.read(DROPIN).is_none(),
        "a drop-in with 262144 would lower the unit's 1048576: {o:?}"
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn every_drop_in_counts_in_lexical_order_across_directories() {
    let r = FakeRoot::new();
    r.write("usr/lib/systemd/system/corestream.service", &shipped_unit());
    // A vendor drop-in lowers it; an admin's drop-in of the same name in /etc hides it.
    r.write(
        "usr/lib/systemd/system/corestream.service.d/10-low.conf",
        "[Service]\nLimitNOFILE=2048\n",
    );
    let o = r.run(&["check"]);
    assert_eq!(o.code, 1, "{o:?}");
    let unit_drift = |o: &fakeroot::Out| o.stdout.contains("corestream.service: LimitNOFILE soft");
    assert!(
        o.stdout.contains("LimitNOFILE soft 2048 (from /usr/lib/systemd/system/corestream.service.d/10-low.conf), profile wants 262144"),
        "{o:?}"
    );
    r.write(
        "etc/systemd/system/corestream.service.d/10-low.conf",
        "[Service]\nLimitNOFILE=524288:1048576\n",
    );
    let o = r.run(&["plan"]);
    assert!(
        o.stdout.contains(
            "LimitNOFILE: 524288 comes from /etc/systemd/system/corestream.service.d/10-low.conf"
        ),
        "{o:?}"
    );
    assert!(!unit_drift(&r.run(&["check"])));

    // Below the profile: apply writes its drop-in, which sorts after 10-low.conf and wins.
    r.write(
        "etc/systemd/system/corestream.service.d/10-low.conf",
        "[Service]\nLimitNOFILE=4096\n",
    );
    let o = r.run(&["apply", "--persist", "--yes"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(r
        .read(DROPIN)
        .is_some_and(|t| t.contains("LimitNOFILE=262144")));
    assert!(!unit_drift(&r.run(&["check"])));

    // A later drop-in that lowers it again is named: ours cannot win over it.
    r.write(
        "etc/systemd/system/corestream.service.d/zz-admin.conf",
        "[Service]\nLimitNOFILE=8192\n",
    );
    let o = r.run(&["plan"]);
    assert!(
        o.stdout
            .contains("/etc/systemd/system/corestream.service.d/zz-admin.conf sorts after"),
        "{o:?}"
    );
    assert!(unit_drift(&r.run(&["check"])));
}
