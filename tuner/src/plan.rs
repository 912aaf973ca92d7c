//! The plan: every key of the profile (and RPS targets) read beneath `--root`, compared with its
//! target, and what `apply` would do with it. Deciding only: nothing here prints or writes
//! except [`write_and_verify`], which `apply` calls once the plan is confirmed.

use crate::probe::netns::{self, Netns};
use crate::probe::unit::UnitNofile;
use crate::profile::{self, Profile, Scope, Shape, Value};
use crate::{paths, rps, sysctl};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The profile to compare with; shared by plan, apply, check and profile.
#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Profile file layered over the built-in `edge` profile (sysctl.d syntax plus `nofile = N`,
    /// `base = none`, `key = skip`; see docs/sre-apply.md).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Also spread receive processing with RPS/RFS on NICs with fewer RX queues than CPUs.
    #[arg(long)]
    pub rps: bool,
}

/// What apply does with one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Current equals the target.
    Fine,
    /// Below the target: write it.
    Raise,
    /// A word (qdisc, congestion control) other than the profile's: write it.
    Change,
    /// Some fields below, some above: write each field's higher value.
    RaiseKeep,
    /// Above the target and lowering not allowed: skipped.
    WouldLower,
    /// Above the target, `--allow-lower`: write the target.
    Lower,
    /// Cannot be read: why, in SRE words.
    Unavailable(String),
}

impl Action {
    pub fn label(&self) -> String {
        match self {
            Action::Fine => "already fine".into(),
            Action::Raise => "raise".into(),
            Action::Change => "change".into(),
            Action::RaiseKeep => "raise (higher fields kept)".into(),
            Action::WouldLower => "would lower: skipped (--allow-lower)".into(),
            Action::Lower => "lower (--allow-lower)".into(),
            Action::Unavailable(_) => "cannot: see below".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub key: String,
    /// Relative to the root.
    pub rel_path: PathBuf,
    pub scope: Scope,
    pub shape: Shape,
    /// Raw current text (whitespace-normalised), if readable.
    pub current_text: Option<String>,
    pub current: Option<Value>,
    pub target: Value,
    pub reason: String,
    pub action: Action,
    /// What apply writes, if anything.
    pub write: Option<Value>,
    /// Part of sysctl.d persistence (RPS queue files are not sysctls).
    pub persistable: bool,
}

impl Row {
    pub fn current_label(&self) -> String {
        match &self.current {
            Some(v) => profile::format_value(self.shape, v),
            None => "?".into(),
        }
    }
    pub fn target_label(&self) -> String {
        profile::format_value(self.shape, &self.target)
    }
}

/// Explain an I/O error on a kernel setting in words an SRE can act on.
pub fn explain(root: &Path, key: &str, scope: Scope, file: &Path, e: &std::io::Error) -> String {
    let where_ = file.display();
    match e.raw_os_error() {
        Some(libc::EROFS) => match scope {
            Scope::PerNetns => format!(
                "{where_} is on a read-only filesystem: /proc/sys is mounted read-only, as in most containers. \
                 {key} is per network namespace: set it for the pod (Kubernetes securityContext.sysctls, \
                 `docker run --sysctl {key}=...`) or on the host for the host's namespace"
            ),
            _ => format!(
                "{where_} is on a read-only filesystem: /proc/sys (or /sys) is mounted read-only, as in most containers. \
                 {key} is global to the machine: set it on the host (sysctl -w, or the host's /etc/sysctl.d); \
                 a pod cannot set it"
            ),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "permission denied on {where_}: writing kernel settings needs root with CAP_SYS_ADMIN (global keys) \
             or CAP_NET_ADMIN over the network namespace (per-netns keys). Run with sudo on the host; in a \
             container these are usually dropped, so set {key} from the host or the pod spec"
        ),
        Some(libc::ENOENT) => {
            if scope == Scope::Global
                && key.starts_with("net.")
                && matches!(netns::detect(root), Netns::Child(_))
            {
                format!(
                    "{key} is global and only exists in the host's (initial) network namespace; this process runs \
                     in another one (a container or `unshare -n`). Set it on the host, or drop it with \
                     `{key} = skip` in a --profile file"
                )
            } else {
                format!(
                    "{where_} does not exist: this kernel does not have {key} (too old, or the feature is not \
                     built in/loaded). Drop it with `{key} = skip` in a --profile file"
                )
            }
        }
        Some(libc::EINVAL) => {
            let hint = match key {
                "net.ipv4.ip_local_port_range" => {
                    "; the low end must be at least net.ipv4.ip_unprivileged_port_start (1024 by default) and below the high end"
                }
                "net.ipv4.tcp_fin_timeout" => "; it is seconds, converted to jiffies, so huge values overflow",
                _ => "",
            };
            format!(
                "the kernel rejected the value for {key} (EINVAL: outside what this kernel accepts{hint}); \
                 fix it in the --profile file"
            )
        }
        Some(libc::EISDIR) => format!("{where_} is a directory, not a kernel setting"),
        _ => format!("{where_}: {e}"),
    }
}

pub fn read_current(
    root: &Path,
    key: &str,
    scope: Scope,
    shape: Shape,
    rel: &Path,
) -> Result<(String, Value), String> {
    let file = root.join(rel);
    let norm = sysctl::read_file(&file).map_err(|e| explain(root, key, scope, &file, &e))?;
    let v = profile::parse_value(shape, &norm).map_err(|e| {
        format!(
            "{} holds {norm:?}, which is not a value for {key}: {e}",
            file.display()
        )
    })?;
    Ok((norm, v))
}

pub fn decide(
    shape: Shape,
    current: &[u64],
    target: &[u64],
    allow_lower: bool,
) -> (Action, Option<Value>) {
    let c = profile::compare(shape, current, target);
    if let (Shape::Choice(_), true) = (shape, c.below) {
        return (Action::Change, Some(target.to_vec()));
    }
    match (c.below, c.above) {
        (false, false) => (Action::Fine, None),
        (true, false) => (Action::Raise, Some(target.to_vec())),
        (true, true) if allow_lower => (Action::Raise, Some(target.to_vec())),
        (true, true) => (Action::RaiseKeep, Some(c.merged)),
        (false, true) if allow_lower => (Action::Lower, Some(target.to_vec())),
        (false, true) => (Action::WouldLower, None),
    }
}

/// One key to compare: what the profile (or `--rps`) wants and where the kernel keeps it.
struct Want<'a> {
    key: &'a str,
    rel: PathBuf,
    scope: Scope,
    shape: Shape,
    target: Value,
    reason: &'a str,
    persistable: bool,
}

fn make_row(root: &Path, w: Want, allow_lower: bool) -> Row {
    let (current_text, current, action, write) =
        match read_current(root, w.key, w.scope, w.shape, &w.rel) {
            Ok((t, v)) => {
                let (a, wr) = decide(w.shape, &v, &w.target, allow_lower);
                (Some(t), Some(v), a, wr)
            }
            Err(why) => (None, None, Action::Unavailable(why), None),
        };
    Row {
        key: w.key.to_string(),
        rel_path: w.rel,
        scope: w.scope,
        shape: w.shape,
        current_text,
        current,
        target: w.target,
        reason: w.reason.to_string(),
        action,
        write,
        persistable: w.persistable,
    }
}

/// Compare every key of the profile (and RPS targets) with what runs beneath `root`.
pub fn build_rows(
    root: &Path,
    prof: &Profile,
    rps_plan: Option<&rps::RpsPlan>,
    allow_lower: bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for e in &prof.sysctls {
        let info = e.info();
        if let Some(attr) = e.key.strip_prefix(profile::NIC_PREFIX) {
            // One row per hardware NIC: sysfs, not sysctl.d (re-applied at boot by the unit).
            for n in crate::probe::nic::read(root, None)
                .nics
                .iter()
                .filter(|n| n.physical)
            {
                let key = format!("{} {attr}", n.name);
                let want = Want {
                    key: &key,
                    rel: std::path::PathBuf::from(paths::CLASS_NET)
                        .join(&n.name)
                        .join(attr),
                    scope: info.scope,
                    shape: info.shape,
                    target: e.value.clone(),
                    reason: &e.reason,
                    persistable: false,
                };
                rows.push(make_row(root, want, allow_lower));
            }
            continue;
        }
        let want = Want {
            key: &e.key,
            rel: paths::sysctl(&e.key),
            scope: info.scope,
            shape: info.shape,
            target: e.value.clone(),
            reason: &e.reason,
            persistable: true,
        };
        rows.push(make_row(root, want, allow_lower));
    }
    if let Some(rp) = rps_plan {
        for t in &rp.targets {
            if rows.iter().any(|r| r.key == t.key) {
                continue;
            }
            let want = Want {
                key: &t.key,
                rel: t.rel_path.clone(),
                scope: rps::scope_of(t),
                shape: t.shape,
                target: t.value.clone(),
                reason: &t.reason,
                persistable: false,
            };
            rows.push(make_row(root, want, allow_lower));
        }
    }
    // Inside a child network namespace (a container, `unshare -n`) the global keys that are
    // still visible (fs.*) are the host's: writing them from here would change the whole machine
    // behind the host admin's back, so apply leaves them to the host.
    let ns = netns::detect(root);
    for r in rows.iter_mut() {
        if r.write.is_none() || r.scope == Scope::PerNetns {
            continue;
        }
        if let (Netns::Child(_), Scope::Global) = (&ns, r.scope) {
            {
                r.write = None;
                r.action = Action::Unavailable(format!(
                    "{} is global (one value for the whole machine) and this process runs in a child network \
                     namespace (a container or `unshare -n`): apply leaves it to the host. Run apply on the host, \
                     or drop it with `{} = skip` in a --profile file",
                    r.key, r.key
                ));
            }
        } else if let Some(why) = ns.refusal(
            &format!("writing {} ({})", r.key, r.scope.label()),
            if r.key.contains(" rps_") || r.key.starts_with("net.core.rps") {
                "corestream-tune apply --rps"
            } else {
                "corestream-tune apply"
            },
        ) {
            r.write = None;
            r.action = Action::Unavailable(why);
        }
    }
    guard_tcp_mem(root, &mut rows);
    rows
}

/// A fixed tcp_mem suits boxes of 8 GiB and up; on a small box its ceiling would let TCP
/// buffers take a large share of RAM. Refuse to raise it past a quarter of MemTotal (the
/// kernel's own default ceiling is 3/32).
fn guard_tcp_mem(root: &Path, rows: &mut [Row]) {
    let Some(row) = rows.iter_mut().find(|r| r.key == "net.ipv4.tcp_mem") else {
        return;
    };
    let (Some(w), Some(cur)) = (&row.write, &row.current) else {
        return;
    };
    let Some(mem_kib) = std::fs::read_to_string(paths::under(root, paths::MEMINFO))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    else {
        return;
    };
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    let high = w.get(2).copied().unwrap_or(0);
    let raising = cur.get(2).is_some_and(|&c| high > c);
    let quarter_pages = mem_kib.saturating_mul(1024) / 4 / page;
    if raising && high > quarter_pages {
        let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        row.action = Action::Unavailable(format!(
            "tcp_mem's ceiling {high} pages ({:.1} GiB) would exceed a quarter of this box's {:.1} GiB RAM: \
             TCP buffers could starve everything else. Size it for this box in a --profile file (e.g. \
             `net.ipv4.tcp_mem = {} {} {}`) or leave the kernel default with `net.ipv4.tcp_mem = skip`",
            gib(high * page),
            gib(mem_kib * 1024),
            quarter_pages / 2,
            quarter_pages * 2 / 3,
            quarter_pages
        ));
        row.write = None;
    }
}

/// The profile, the RPS plan when asked for, and every row.
pub struct Plan {
    pub netns: Netns,
    /// The server's open-file limit, when the profile sets one.
    pub nofile: Option<NofilePlan>,
    pub profile: Profile,
    pub rps: Option<rps::RpsPlan>,
    pub rows: Vec<Row>,
}

impl Plan {
    pub fn load(root: &Path, p: &ProfileArgs, allow_lower: bool) -> anyhow::Result<Plan> {
        let profile = profile::load_for_cli(p.profile.as_deref())?;
        let rps = if p.rps { Some(rps::plan(root)?) } else { None };
        let rows = build_rows(root, &profile, rps.as_ref(), allow_lower);
        let unit = crate::probe::unit::read(root, paths::UNIT);
        Ok(Plan {
            netns: netns::detect(root),
            nofile: nofile_plan(root, &profile, &unit),
            profile,
            rps,
            rows,
        })
    }

    pub fn writes(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.write.is_some())
    }

    pub fn unavailable(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.action, Action::Unavailable(_)))
            .count()
    }

    pub fn rps_notes(&self) -> &[String] {
        self.rps.as_ref().map(|r| r.notes.as_slice()).unwrap_or(&[])
    }
}

/// What `--persist` does about the server's open-file limit: decided from the limit the unit
/// really gets (the unit file and every drop-in, as systemd reads them), never lowering it.
#[derive(Debug, Clone, Serialize)]
pub struct NofilePlan {
    pub unit: String,
    pub target: u64,
    pub reason: String,
    /// Soft limit the service starts with today; `None` is systemd's default (1024 soft).
    pub effective: Option<u64>,
    /// Where that comes from: the last file that set it, or systemd.
    pub from: String,
    pub write_dropin: bool,
    pub write_limits_d: bool,
    /// Later drop-ins that set a lower limit and so would override ours.
    pub overridden_by: Vec<String>,
}

pub fn nofile_plan(root: &Path, prof: &Profile, unit: &UnitNofile) -> Option<NofilePlan> {
    let (target, reason) = prof.nofile.as_ref()?;
    let effective = unit.effective();
    let from = match (unit.systemctl, unit.assignments.last()) {
        (Some(_), _) => "systemctl show".to_string(),
        (None, Some(a)) => paths::shown(&a.file),
        (None, None) if unit.unit_file.is_some() => "systemd's default".to_string(),
        (None, None) => "not installed".to_string(),
    };
    let ours = paths::dropin(paths::UNIT);
    let ours_name = Path::new(&ours)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let overridden_by = unit
        .later_than(&ours_name)
        .filter(|a| a.soft.is_some_and(|s| s < *target))
        .map(|a| paths::shown(&a.file))
        .collect();
    let limits_d = std::fs::read_to_string(paths::under(root, paths::LIMITS_D))
        .ok()
        .and_then(|t| profile::parse_limits_d(&t));
    Some(NofilePlan {
        unit: unit.unit.clone(),
        target: *target,
        reason: reason.clone(),
        effective,
        from,
        write_dropin: effective.is_none_or(|e| e < *target),
        write_limits_d: limits_d.is_none_or(|(s, h)| s < *target || h < *target),
        overridden_by,
    })
}

/// The three persistence files for the rows as decided (relative path, content).
pub fn persist_files(
    prof: &Profile,
    rows: &[Row],
    nofile: Option<&NofilePlan>,
) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for r in rows.iter().filter(|r| r.persistable) {
        let value = match (&r.write, &r.action) {
            (Some(w), _) => w.clone(),
            (None, Action::Fine) => r.target.clone(),
            (None, Action::WouldLower) => {
                notes.push(format!(
                    "{}: the running value {} is above the profile's {}; not pinned here.",
                    r.key,
                    r.current_label(),
                    r.target_label()
                ));
                continue;
            }
            _ => {
                notes.push(format!(
                    "{}: could not be read when this file was written; not pinned here.",
                    r.key
                ));
                continue;
            }
        };
        entries.push(profile::Entry {
            key: r.key.clone(),
            value,
            reason: r.reason.clone(),
        });
    }
    let mut files = vec![(
        paths::SYSCTL_D.to_string(),
        profile::render_sysctl_d(&prof.name, &entries, &notes),
    )];
    if let Some(np) = nofile {
        if np.write_limits_d {
            files.push((
                paths::LIMITS_D.to_string(),
                profile::render_limits_d(np.target, &np.reason),
            ));
        }
        if np.write_dropin {
            files.push((
                paths::dropin(paths::UNIT),
                profile::render_systemd_dropin(np.target),
            ));
        }
    }
    files
}

/// Write one value and read it back the way `plan` reads it: the kernel may clamp or ignore.
pub fn write_and_verify(
    root: &Path,
    key: &str,
    scope: Scope,
    shape: Shape,
    rel: &Path,
    value_text: &str,
) -> Result<String, String> {
    let file = root.join(rel);
    sysctl::write_file(&file, value_text).map_err(|e| explain(root, key, scope, &file, &e))?;
    let (text, got) = read_current(root, key, scope, shape, rel)?;
    let want = profile::parse_value(shape, value_text).map_err(|e| e.to_string())?;
    if profile::compare(shape, &got, &want) != profile::compare(shape, &want, &want) {
        return Err(format!(
            "wrote {value_text} but the kernel reads back {text}: it clamped or ignored the value"
        ));
    }
    Ok(text)
}
