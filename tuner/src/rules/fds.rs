use super::*;
use crate::finding::{ev, Remedy, Severity};
use crate::probe::fds::ProcessFds;
use crate::thresholds::Rule;

fn limit_text(l: Option<u64>) -> String {
    l.map(|v| v.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

/// The kernel's own fs.nr_open (1024 * 1024), when it cannot be read.
const KERNEL_NR_OPEN: u64 = 1 << 20;

/// fs.nr_open as the profile wants it (the ceiling a remedy may ask for).
fn profile_nr_open(prof: &Profile) -> u64 {
    profile_value(prof, "fs.nr_open")
        .and_then(|v| v.parse().ok())
        .unwrap_or(KERNEL_NR_OPEN)
}

fn nofile_remedies(p: &ProcessFds, want: u64, nr_open_target: u64) -> Vec<Remedy> {
    let mut out = Vec::new();
    let mut want = want;
    // fs.nr_open caps every RLIMIT_NOFILE: when it leaves no room, it has to go up first.
    if p.soft_limit.is_some_and(|s| want <= s) {
        want = p
            .soft_limit
            .unwrap_or(0)
            .saturating_mul(4)
            .max(nr_open_target);
        out.push(Remedy::sysctl("fs.nr_open", want));
    }
    out.push(Remedy::unit(paths::UNIT, format!("LimitNOFILE={want}")));
    if p.soft_limit < p.hard_limit || p.hard_limit.is_none() {
        out.push(Remedy::command(format!(
            "corestream-tune nofile --pid {}   (raise the running process's soft limit up to its hard limit {} now)",
            p.pid,
            limit_text(p.hard_limit)
        )));
    } else if p.cap_sys_resource == Some(false) {
        out.push(Remedy::command(format!(
            "restart the service after setting LimitNOFILE: pid {} is at its hard limit and lacks CAP_SYS_RESOURCE, so it cannot be raised live",
            p.pid
        )));
    }
    out
}

pub(super) fn process_fds(b: &Sample, prof: &Profile, f: &mut Vec<Finding>) {
    let nr_open_target = profile_nr_open(prof);
    let nr_open = b
        .sysctls
        .int("fs.nr_open")
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(KERNEL_NR_OPEN);
    for p in &b.processes {
        let subject = format!("pid {} ({})", p.pid, p.comm);
        let limits_src = src(&paths::pid(p.pid, "limits"));
        if let Some(soft) = p.soft_limit {
            let pct = 100.0 * p.open_fds as f64 / soft.max(1) as f64;
            if let Some(sev) = Rule::ProcessFds.grade(pct) {
                f.push(Finding {
                    rule: Rule::ProcessFds,
                    severity: sev,
                    subject: subject.clone(),
                    summary: format!("{} of {} file descriptors in use ({pct:.0}%)", p.open_fds, soft),
                    evidence: vec![
                        ev("open fds", p.open_fds as f64, "fds", src(&paths::pid(p.pid, "fd"))),
                        ev("soft RLIMIT_NOFILE", soft as f64, "fds", limits_src.as_str()),
                    ]
                    .into_iter()
                    .chain(p.hard_limit.map(|h| ev("hard RLIMIT_NOFILE", h as f64, "fds", limits_src.as_str())))
                    .collect(),
                    cause: "The process is close to its open-file limit; at the limit accept() fails with EMFILE and new viewers are refused.".into(),
                    remedy: nofile_remedies(p, soft.saturating_mul(4).max(65536).min(nr_open.max(soft)), nr_open_target),
                });
            }
            // A soft limit that low is a misconfiguration on an edge server before it is a crisis.
            if Rule::NofileSoftLow.grade(soft as f64).is_some() {
                f.push(Finding {
                    rule: Rule::NofileSoftLow,
                    severity: Severity::Warning,
                    subject,
                    summary: format!("soft RLIMIT_NOFILE is {soft}: at most ~{soft} concurrent viewers per process"),
                    evidence: vec![
                        ev("soft RLIMIT_NOFILE", soft as f64, "fds", limits_src.as_str()),
                        ev("open fds", p.open_fds as f64, "fds", src(&paths::pid(p.pid, "fd"))),
                    ],
                    cause: "systemd starts services with a soft limit of 1024 unless the unit sets LimitNOFILE=, far below what an edge server needs.".into(),
                    remedy: nofile_remedies(p, nr_open.min(nr_open_target), nr_open_target),
                });
            }
        }
    }
}

pub(super) fn system_fds(b: &Sample, prof: &Profile, f: &mut Vec<Finding>) {
    let Some(nr) = b.file_nr else { return };
    if nr.max == 0 {
        return;
    }
    let pct = 100.0 * nr.allocated as f64 / nr.max as f64;
    let Some(sev) = Rule::SystemFds.grade(pct) else {
        return;
    };
    f.push(Finding {
        rule: Rule::SystemFds,
        severity: sev,
        subject: "system".into(),
        summary: format!(
            "{} of {} file handles allocated system-wide ({pct:.0}%)",
            nr.allocated, nr.max
        ),
        evidence: vec![
            ev(
                "allocated file handles",
                nr.allocated as f64,
                "handles",
                format!("{} field 1", src(paths::FILE_NR)),
            ),
            ev(
                "fs.file-max",
                nr.max as f64,
                "handles",
                format!("{} field 3", src(paths::FILE_NR)),
            ),
        ],
        cause: "The whole system is close to fs.file-max; at the limit every process gets ENFILE."
            .into(),
        remedy: vec![Remedy::sysctl(
            "fs.file-max",
            nr.max.saturating_mul(2).max(
                profile_value(prof, "fs.file-max")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
        )],
    });
}
