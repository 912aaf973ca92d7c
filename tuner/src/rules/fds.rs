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

/// How to give `p` more file descriptors: the profile's one value, in the one file that
/// governs this process (its own unit's drop-in, or limits.d outside any service), and what can
/// be done live, judged from this tool's own capabilities.
fn nofile_remedies(
    p: &ProcessFds,
    prof: &Profile,
    nr_open: u64,
    caller_can_raise: Option<bool>,
) -> Vec<Remedy> {
    let mut out = Vec::new();
    let Some((want, _)) = prof.nofile.as_ref().map(|(n, r)| (*n, r)) else {
        out.push(Remedy::command(
            "set `nofile = N` in the --profile file: it sets no open-file limit to apply".into(),
        ));
        return out;
    };
    if p.soft_limit.is_some_and(|s| want <= s) {
        out.push(Remedy::command(format!(
            "the profile's nofile ({want}) is not above this process's limit ({}): raise `nofile` in a --profile file (within fs.nr_open) and re-run `corestream-tune apply --persist`",
            limit_text(p.soft_limit)
        )));
        return out;
    }
    // fs.nr_open caps every RLIMIT_NOFILE: when it leaves no room, it has to go up first.
    if want > nr_open {
        out.push(Remedy::sysctl(
            "fs.nr_open",
            profile_nr_open(prof).max(want),
        ));
    }
    match &p.unit {
        Some(unit) => {
            out.push(Remedy::unit(unit, format!("LimitNOFILE={want}")));
            out.push(Remedy::command(format!(
                "systemctl daemon-reload && systemctl restart {unit}   (a unit's limit applies when it starts)"
            )));
        }
        None => {
            out.push(Remedy::limits_d(format!(
                "{} soft nofile {want}   (pid {} runs in no systemd service: pam_limits gives it to the user's next login sessions; or `ulimit -n {want}` in the shell that starts it)",
                crate::profile::SERVICE_USER,
                p.pid
            )));
        }
    }
    match (p.soft_limit, p.hard_limit) {
        (Some(s), h) if h.is_none_or(|h| s < h) => {
            let to = h.map_or(want, |h| h.min(want));
            out.push(Remedy::command(format!(
                "corestream-tune nofile --pid {} --to {to}   (raise the soft limit up to the hard limit {} now; no privilege needed)",
                p.pid,
                limit_text(h)
            )));
        }
        _ if caller_can_raise == Some(true) => out.push(Remedy::command(format!(
            "corestream-tune nofile --pid {} --to {want}   (this tool has CAP_SYS_RESOURCE and may raise the hard limit live)",
            p.pid
        ))),
        _ => out.push(Remedy::command(format!(
            "restart it after setting the limit: pid {} is at its hard limit and this tool lacks CAP_SYS_RESOURCE, so it cannot be raised live (as root on the host it could: corestream-tune nofile --pid {} --to {want})",
            p.pid, p.pid
        ))),
    }
    out
}

pub(super) fn process_fds(b: &Sample, prof: &Profile, f: &mut Vec<Finding>) {
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
                    remedy: nofile_remedies(p, prof, nr_open, b.caller_can_raise_hard),
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
                    remedy: nofile_remedies(p, prof, nr_open, b.caller_can_raise_hard),
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
