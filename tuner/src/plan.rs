//! `corestream-tune plan|apply|check|rollback|profile`: compare the running kernel with a
//! profile, change it (raise-only unless told otherwise) with a backup first, verify, undo.
//!
//! Everything happens beneath `--root`, so tests run against a fake tree; the real kernel is
//! only touched with `--root /`.

use crate::backup::{self, Backup, SavedFile, SavedValue};
use crate::profile::{self, Profile, Scope, Shape, Value};
use crate::{rps, sysctl};
use anyhow::{bail, Context};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Files `apply --persist` writes, relative to the root.
pub const SYSCTL_D: &str = "etc/sysctl.d/60-corestream.conf";
pub const LIMITS_D: &str = "etc/security/limits.d/90-corestream.conf";
pub const DROPIN: &str = "etc/systemd/system/corestream.service.d/nofile.conf";

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

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// Show lowering a value as something apply would do (it is skipped otherwise).
    #[arg(long)]
    pub allow_lower: bool,
    /// Print the one-line reason for every key under the table.
    #[arg(long)]
    pub why: bool,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// Show what would be written and stop; changes nothing and writes no backup.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write /etc/sysctl.d/60-corestream.conf, /etc/security/limits.d/90-corestream.conf and
    /// the corestream.service drop-in with LimitNOFILE= (beneath --root), so it survives reboots.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub persist: Option<bool>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also lower values that are above the profile (default: leave them, like bpftune does
    /// with values an admin set).
    #[arg(long)]
    pub allow_lower: bool,
    /// Where backups go [default: <root>/var/lib/corestream-tune].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// Print `{"ok", "profile", "root", "keys", "corestream_processes", "drifts": [{"key",
    /// "scope", "current", "target", "message"}]}` instead of text (same exit status).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// Backup to restore [default: the newest one not yet rolled back in the state directory].
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    /// Where backups are [default: <root>/var/lib/corestream-tune].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Restore values and files even if they were changed after apply.
    #[arg(long)]
    pub force: bool,
    /// Show what would be restored and stop.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// What to print.
    #[arg(long, value_enum, default_value = "sysctl-d")]
    pub format: ShowFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ShowFormat {
    /// The sysctl.d file (as sysctl.d/60-corestream.conf in the repository).
    SysctlD,
    /// The limits.d file (as limits.d/90-corestream.conf in the repository).
    LimitsD,
    /// The systemd drop-in with LimitNOFILE=.
    Dropin,
}

/// What apply does with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Current equals the target.
    Fine,
    /// Below the target: write it.
    Raise,
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
    fn label(&self) -> String {
        match self {
            Action::Fine => "already fine".into(),
            Action::Raise => "raise".into(),
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
    fn current_label(&self) -> String {
        match &self.current {
            Some(v) => profile::format_value(self.shape, v),
            None => "?".into(),
        }
    }
    fn target_label(&self) -> String {
        profile::format_value(self.shape, &self.target)
    }
}

/// True when this looks like a child network namespace: per-netns keys are visible but the
/// global net.core ones are not (Linux hides them outside the initial namespace).
pub fn in_child_netns(root: &Path) -> bool {
    sysctl::path(root, "net.core.somaxconn").exists()
        && !sysctl::path(root, "net.core.netdev_max_backlog").exists()
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
            if scope == Scope::Global && key.starts_with("net.") && in_child_netns(root) {
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

fn read_current(
    root: &Path,
    key: &str,
    scope: Scope,
    shape: Shape,
    rel: &Path,
) -> Result<(String, Value), String> {
    let file = root.join(rel);
    let text = std::fs::read_to_string(&file).map_err(|e| explain(root, key, scope, &file, &e))?;
    let norm = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let v = profile::parse_value(shape, &norm).map_err(|e| {
        format!(
            "{} holds {norm:?}, which is not a value for {key}: {e}",
            file.display()
        )
    })?;
    Ok((norm, v))
}

fn decide(
    shape: Shape,
    current: &[u64],
    target: &[u64],
    allow_lower: bool,
) -> (Action, Option<Value>) {
    let c = profile::compare(shape, current, target);
    match (c.below, c.above) {
        (false, false) => (Action::Fine, None),
        (true, false) => (Action::Raise, Some(target.to_vec())),
        (true, true) if allow_lower => (Action::Raise, Some(target.to_vec())),
        (true, true) => (Action::RaiseKeep, Some(c.merged)),
        (false, true) if allow_lower => (Action::Lower, Some(target.to_vec())),
        (false, true) => (Action::WouldLower, None),
    }
}

#[allow(clippy::too_many_arguments)]
fn make_row(
    root: &Path,
    key: &str,
    rel: PathBuf,
    scope: Scope,
    shape: Shape,
    target: Value,
    reason: &str,
    allow_lower: bool,
    persistable: bool,
) -> Row {
    let (current_text, current, action, write) = match read_current(root, key, scope, shape, &rel) {
        Ok((t, v)) => {
            let (a, w) = decide(shape, &v, &target, allow_lower);
            (Some(t), Some(v), a, w)
        }
        Err(why) => (None, None, Action::Unavailable(why), None),
    };
    Row {
        key: key.to_string(),
        rel_path: rel,
        scope,
        shape,
        current_text,
        current,
        target,
        reason: reason.to_string(),
        action,
        write,
        persistable,
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
        rows.push(make_row(
            root,
            &e.key,
            sysctl::path(Path::new(""), &e.key),
            info.scope,
            info.shape,
            e.value.clone(),
            &e.reason,
            allow_lower,
            true,
        ));
    }
    if let Some(rp) = rps_plan {
        for t in &rp.targets {
            if rows.iter().any(|r| r.key == t.key) {
                continue;
            }
            rows.push(make_row(
                root,
                &t.key,
                t.rel_path.clone(),
                rps::scope_of(t),
                t.shape,
                t.value.clone(),
                &t.reason,
                allow_lower,
                false,
            ));
        }
    }
    // Inside a child network namespace (a container, `unshare -n`) the global keys that are
    // still visible (fs.*) are the host's: writing them from here would change the whole machine
    // behind the host admin's back, so apply leaves them to the host.
    if in_child_netns(root) {
        for r in rows.iter_mut() {
            if r.scope == Scope::Global && r.write.is_some() {
                r.write = None;
                r.action = Action::Unavailable(format!(
                    "{} is global (one value for the whole machine) and this process runs in a child network \
                     namespace (a container or `unshare -n`): apply leaves it to the host. Run apply on the host, \
                     or drop it with `{} = skip` in a --profile file",
                    r.key, r.key
                ));
            }
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
    let Some(mem_kib) = std::fs::read_to_string(root.join("proc/meminfo"))
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

/// Running processes named `corestream`: (pid, soft, hard) RLIMIT_NOFILE from /proc/PID/limits.
pub fn service_nofile(root: &Path) -> Vec<(u32, Option<u64>, Option<u64>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.join("proc")) else {
        return out;
    };
    for d in rd.filter_map(|d| d.ok()) {
        let Ok(pid) = d.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(d.path().join("comm")).unwrap_or_default();
        if comm.trim() != "corestream" {
            continue;
        }
        let limits = std::fs::read_to_string(d.path().join("limits")).unwrap_or_default();
        let (soft, hard) = parse_limits_nofile(&limits);
        out.push((pid, soft, hard));
    }
    out.sort();
    out
}

/// Soft and hard "Max open files" from /proc/PID/limits text ("unlimited" is u64::MAX).
pub fn parse_limits_nofile(text: &str) -> (Option<u64>, Option<u64>) {
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("Max open files") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |s: Option<&&str>| {
                s.and_then(|s| {
                    if *s == "unlimited" {
                        Some(u64::MAX)
                    } else {
                        s.parse().ok()
                    }
                })
            };
            return (num(f.first()), num(f.get(1)));
        }
    }
    (None, None)
}

fn print_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn nofile_row(root: &Path, prof: &Profile) -> Option<Vec<String>> {
    let (n, _) = prof.nofile.as_ref()?;
    let current = std::fs::read_to_string(root.join(DROPIN))
        .ok()
        .and_then(|t| profile::parse_limit_nofile(&t));
    let (cur, action) = match current {
        Some(c) if c >= *n => (c.to_string(), "already fine".to_string()),
        Some(c) => (
            c.to_string(),
            "raise with --persist (then restart corestream)".into(),
        ),
        None => (
            "unset (1024 soft)".into(),
            "set with --persist (then restart corestream)".into(),
        ),
    };
    Some(vec![
        "LimitNOFILE (corestream.service)".into(),
        "service".into(),
        cur,
        n.to_string(),
        action,
    ])
}

fn render_plan(
    out: &mut impl Write,
    root: &Path,
    prof: &Profile,
    rows: &[Row],
    rps_plan: Option<&rps::RpsPlan>,
    why: bool,
) -> std::io::Result<()> {
    writeln!(out, "Profile: {}   root: {}", prof.name, root.display())?;
    let mut table = vec![vec![
        "KEY".to_string(),
        "SCOPE".into(),
        "CURRENT".into(),
        "TARGET".into(),
        "ACTION".into(),
    ]];
    for r in rows {
        table.push(vec![
            r.key.clone(),
            r.scope.label().into(),
            r.current_label(),
            r.target_label(),
            r.action.label(),
        ]);
    }
    if let Some(nr) = nofile_row(root, prof) {
        table.push(nr);
    }
    print_table(out, &table)?;
    for r in rows {
        if let Action::Unavailable(why) = &r.action {
            writeln!(out, "  {}: {why}", r.key)?;
        }
        if let (Action::RaiseKeep, Some(w)) = (&r.action, &r.write) {
            writeln!(
                out,
                "  {}: fields above the profile are kept; apply writes {} (--allow-lower writes the target)",
                r.key,
                profile::format_value(r.shape, w)
            )?;
        }
    }
    if let Some(rp) = rps_plan {
        for n in &rp.notes {
            writeln!(out, "  rps: {n}")?;
        }
    }
    if why {
        writeln!(out, "\nWhy:")?;
        for r in rows {
            writeln!(out, "  {}: {}", r.key, r.reason)?;
        }
        if let Some((_, reason)) = &prof.nofile {
            writeln!(out, "  LimitNOFILE: {reason}")?;
        }
    }
    Ok(())
}

fn load_all(
    root: &Path,
    p: &ProfileArgs,
    allow_lower: bool,
) -> anyhow::Result<(Profile, Option<rps::RpsPlan>, Vec<Row>)> {
    let prof = profile::load(p.profile.as_deref())?;
    let rps_plan = if p.rps { Some(rps::plan(root)?) } else { None };
    let rows = build_rows(root, &prof, rps_plan.as_ref(), allow_lower);
    Ok((prof, rps_plan, rows))
}

pub fn run_plan(root: &Path, a: PlanArgs) -> anyhow::Result<u8> {
    let (prof, rps_plan, rows) = load_all(root, &a.p, a.allow_lower)?;
    let mut out = std::io::stdout().lock();
    render_plan(&mut out, root, &prof, &rows, rps_plan.as_ref(), a.why)?;
    let n = rows.iter().filter(|r| r.write.is_some()).count();
    let bad = rows
        .iter()
        .filter(|r| matches!(r.action, Action::Unavailable(_)))
        .count();
    writeln!(
        out,
        "\n{n} to change, {} already fine, {} skipped (would lower), {bad} unavailable. Nothing was changed.",
        rows.iter().filter(|r| r.action == Action::Fine).count(),
        rows.iter().filter(|r| r.action == Action::WouldLower).count(),
    )?;
    Ok(0)
}

/// The three persistence files for the rows as decided (relative path, content).
pub fn persist_files(prof: &Profile, rows: &[Row]) -> Vec<(String, String)> {
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
        SYSCTL_D.to_string(),
        profile::render_sysctl_d(&prof.name, &entries, &notes),
    )];
    if let Some((n, reason)) = &prof.nofile {
        files.push((LIMITS_D.to_string(), profile::render_limits_d(*n, reason)));
        files.push((DROPIN.to_string(), profile::render_systemd_dropin(*n)));
    }
    files
}

/// Ask on the terminal, or refuse when nobody can answer.
fn confirm(question: &str, what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to {what} without confirmation: stdin is not a terminal. Re-run with --yes \
             (or --dry-run to only see what would change)"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn write_and_verify(
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

fn display_path(root: &Path, rel: &str) -> String {
    root.join(rel).display().to_string()
}

pub fn run_apply(root: &Path, a: ApplyArgs) -> anyhow::Result<u8> {
    let (prof, rps_plan, rows) = load_all(root, &a.p, a.allow_lower)?;
    let mut out = std::io::stdout().lock();
    render_plan(&mut out, root, &prof, &rows, rps_plan.as_ref(), false)?;
    let persist = a.persist.unwrap_or(false);

    let writes: Vec<&Row> = rows.iter().filter(|r| r.write.is_some()).collect();
    let mut file_changes: Vec<(String, Option<String>, String)> = Vec::new();
    if persist {
        for (rel, content) in persist_files(&prof, &rows) {
            let existing = std::fs::read_to_string(root.join(&rel)).ok();
            if existing.as_deref() != Some(content.as_str()) {
                file_changes.push((rel, existing, content));
            }
        }
    }
    let unavailable = rows
        .iter()
        .filter(|r| matches!(r.action, Action::Unavailable(_)))
        .count();
    writeln!(out)?;
    if writes.is_empty() && file_changes.is_empty() {
        writeln!(
            out,
            "Nothing to change: the running system already meets the profile{}.",
            if unavailable > 0 {
                " (except the keys that cannot be read, above)"
            } else {
                ""
            }
        )?;
        return Ok(if unavailable > 0 { 1 } else { 0 });
    }
    if a.dry_run {
        for r in &writes {
            writeln!(
                out,
                "dry run: would write {} = {}",
                r.key,
                profile::format_value(r.shape, r.write.as_deref().unwrap_or(&[]))
            )?;
        }
        for (rel, old, _) in &file_changes {
            writeln!(
                out,
                "dry run: would {} {}",
                if old.is_some() { "replace" } else { "create" },
                display_path(root, rel)
            )?;
        }
        writeln!(
            out,
            "dry run: nothing was changed and no backup was written."
        )?;
        return Ok(0);
    }
    if !a.yes {
        drop(out);
        let q = format!(
            "Apply {} value(s) and {} file(s) beneath {}?",
            writes.len(),
            file_changes.len(),
            root.display()
        );
        if !confirm(&q, "change kernel settings")? {
            println!("Not applied.");
            return Ok(1);
        }
        out = std::io::stdout().lock();
    }

    // Backup first: if anything below fails half-way, rollback still knows every previous value.
    let mut b = Backup {
        format: 1,
        created: backup::stamps(std::time::SystemTime::now()).0,
        tool: format!("corestream-tune {}", env!("CARGO_PKG_VERSION")),
        root: root.display().to_string(),
        profile: prof.name.clone(),
        values: writes
            .iter()
            .map(|r| SavedValue {
                key: r.key.clone(),
                path: r.rel_path.display().to_string(),
                scope: r.scope.label().into(),
                previous: r.current_text.clone().unwrap_or_default(),
                applied: None,
            })
            .collect(),
        files: file_changes
            .iter()
            .map(|(rel, old, new)| SavedFile {
                path: rel.clone(),
                previous: old.clone(),
                written: new.clone(),
            })
            .collect(),
    };
    let dir = backup::state_dir(root, a.state_dir.as_deref());
    let _lock = backup::lock(&dir)?;
    let bpath = backup::create(&dir, &b)?;
    writeln!(out, "Backup of previous values: {}", bpath.display())?;

    let mut failed = 0;
    let mut changed = 0;
    for (i, r) in writes.iter().enumerate() {
        let text = profile::format_value(r.shape, r.write.as_deref().unwrap_or(&[]));
        match write_and_verify(root, &r.key, r.scope, r.shape, &r.rel_path, &text) {
            Ok(now) => {
                changed += 1;
                writeln!(
                    out,
                    "  ok      {} [{}]: {} -> {} (read back)",
                    r.key,
                    r.scope.label(),
                    r.current_label(),
                    now
                )?;
                b.values[i].applied = Some(now);
            }
            Err(why) => {
                failed += 1;
                writeln!(out, "  FAILED  {} [{}]: {why}", r.key, r.scope.label())?;
            }
        }
    }
    // Values that failed were not changed; keep them out of the backup's "applied" record so
    // rollback restores only what apply actually touched.
    b.values.retain(|v| v.applied.is_some());
    for (rel, _, content) in &file_changes {
        let path = root.join(rel);
        let res = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&path, content));
        match res {
            Ok(()) => writeln!(out, "  wrote   {}", path.display())?,
            Err(e) => {
                failed += 1;
                b.files.retain(|f| &f.path != rel);
                writeln!(out, "  FAILED  {}: {e}", path.display())?;
            }
        }
    }
    if b.values.is_empty() && b.files.is_empty() {
        // Nothing took effect: a backup of nothing would only confuse the next rollback.
        let _ = std::fs::remove_file(&bpath);
        writeln!(out, "Nothing was changed; backup removed.")?;
        return Ok(1);
    }
    backup::save(&bpath, &b)?;
    if file_changes.iter().any(|(rel, _, _)| rel == DROPIN) {
        writeln!(
            out,
            "LimitNOFILE takes effect for corestream.service after `systemctl daemon-reload && systemctl restart corestream` \
             (systemd ignores limits.d; a running process can be raised now with `corestream-tune nofile --pid PID`)."
        )?;
    }
    if persist && rows.iter().any(|r| !r.persistable && r.write.is_some()) {
        writeln!(out, "RPS queue settings live in sysfs, not sysctl.d: corestream-tune.service with --rps re-applies them at boot.")?;
    }
    writeln!(
        out,
        "{changed} changed, {failed} failed, {} unavailable. Undo with: corestream-tune rollback --backup {}",
        unavailable,
        bpath.display()
    )?;
    Ok(if failed + unavailable > 0 { 1 } else { 0 })
}

/// One way the running system misses the profile (`check --json` prints these).
#[derive(Debug, serde::Serialize)]
pub struct Drift {
    /// Sysctl key, RPS queue name, or `corestream pid N`.
    pub key: String,
    /// per-netns, global, device, or process.
    pub scope: String,
    /// What runs now (`null` when unreadable).
    pub current: Option<String>,
    /// What the profile wants.
    pub target: String,
    /// The sentence `check` prints.
    pub message: String,
}

pub fn run_check(root: &Path, a: CheckArgs) -> anyhow::Result<u8> {
    let (prof, rps_plan, rows) = load_all(root, &a.p, false)?;
    let mut out = std::io::stdout().lock();
    let mut drifts = Vec::new();
    for r in &rows {
        let message = match &r.action {
            Action::Fine | Action::WouldLower | Action::Lower => continue,
            Action::Raise | Action::RaiseKeep => format!(
                "{} [{}]: running {}, profile wants {}",
                r.key,
                r.scope.label(),
                r.current_label(),
                match r.shape {
                    Shape::Range => format!("a range covering {}", r.target_label()),
                    Shape::Mask => format!("at least CPUs {}", r.target_label()),
                    Shape::Triple => format!("each field at least {}", r.target_label()),
                    Shape::Int { .. } => format!("at least {}", r.target_label()),
                }
            ),
            Action::Unavailable(why) => format!("{} [{}]: {why}", r.key, r.scope.label()),
        };
        drifts.push(Drift {
            key: r.key.clone(),
            scope: r.scope.label().into(),
            current: r.current.as_ref().map(|_| r.current_label()),
            target: r.target_label(),
            message,
        });
    }
    let key_drifts = drifts.len();
    let mut procs = 0;
    if let Some((n, _)) = &prof.nofile {
        for (pid, soft, _) in service_nofile(root) {
            procs += 1;
            let message = match soft {
                Some(s) if s >= *n => continue,
                Some(s) => format!(
                    "corestream pid {pid}: RLIMIT_NOFILE soft {s}, profile wants {n} (LimitNOFILE= in the unit, or corestream-tune nofile --pid {pid})"
                ),
                None => format!("corestream pid {pid}: cannot read its open-file limit"),
            };
            drifts.push(Drift {
                key: format!("corestream pid {pid}"),
                scope: "process".into(),
                current: soft.map(|s| s.to_string()),
                target: n.to_string(),
                message,
            });
        }
    }
    if a.json {
        let doc = serde_json::json!({
            "ok": drifts.is_empty(),
            "profile": prof.name,
            "root": root.display().to_string(),
            "keys": rows.len(),
            "corestream_processes": procs,
            "drifts": drifts,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(u8::from(!drifts.is_empty()));
    }
    if let Some(rp) = &rps_plan {
        for n in &rp.notes {
            writeln!(out, "rps: {n}")?;
        }
    }
    let procs_note = if procs > 0 {
        format!("; {procs} corestream process(es) checked for open files")
    } else {
        String::new()
    };
    if drifts.is_empty() {
        writeln!(
            out,
            "OK: {} keys meet profile {} beneath {}{procs_note}",
            rows.len(),
            prof.name,
            root.display(),
        )?;
        return Ok(0);
    }
    writeln!(
        out,
        "DRIFT: {key_drifts} of {} keys do not meet profile {} beneath {}{procs_note}:",
        rows.len(),
        prof.name,
        root.display()
    )?;
    for d in &drifts {
        writeln!(out, "  {}", d.message)?;
    }
    writeln!(
        out,
        "Fix with: corestream-tune apply{}",
        if a.p.profile.is_some() {
            " --profile ..."
        } else {
            ""
        }
    )?;
    Ok(1)
}

pub fn run_rollback(root: &Path, a: RollbackArgs) -> anyhow::Result<u8> {
    let dir = backup::state_dir(root, a.state_dir.as_deref());
    let bpath = match &a.backup {
        Some(p) => p.clone(),
        None => match backup::newest(&dir)? {
            Some(p) => p,
            None => bail!(
                "no backup in {}: nothing to roll back (apply writes one there before changing anything; \
                 pass --state-dir or --backup if it used another place)",
                dir.display()
            ),
        },
    };
    let b = backup::load(&bpath)?;
    if Path::new(&b.root) != root {
        bail!(
            "{} was taken with --root {}; run rollback with --root {} (this run uses {})",
            bpath.display(),
            b.root,
            b.root,
            root.display()
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Backup {} (apply of {} at {})",
        bpath.display(),
        b.profile,
        b.created
    )?;
    // Decide everything first so a conflict is visible before anything is touched.
    enum Step<'a> {
        Value(&'a SavedValue),
        File(&'a SavedFile),
    }
    let mut steps = Vec::new();
    let mut conflicts = 0;
    for v in b.values.iter().rev() {
        let file = root.join(&v.path);
        let cur = std::fs::read_to_string(&file)
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
        match cur {
            Ok(c) if c == v.previous => writeln!(out, "  same    {}: already {}", v.key, c)?,
            Ok(c) if v.applied.as_deref().is_some_and(|ap| ap != c) && !a.force => {
                conflicts += 1;
                writeln!(
                    out,
                    "  CHANGED {}: now {c}, but apply wrote {}: someone changed it since; left alone (--force restores {})",
                    v.key,
                    v.applied.as_deref().unwrap_or("?"),
                    v.previous
                )?;
            }
            Ok(c) => {
                writeln!(
                    out,
                    "  restore {} [{}]: {} -> {}",
                    v.key, v.scope, c, v.previous
                )?;
                steps.push(Step::Value(v));
            }
            Err(e) => {
                let scope = Scope::from_label(&v.scope);
                conflicts += 1;
                writeln!(
                    out,
                    "  FAILED  {}: {}",
                    v.key,
                    explain(root, &v.key, scope, &file, &e)
                )?;
            }
        }
    }
    for f in &b.files {
        let path = root.join(&f.path);
        let cur = std::fs::read_to_string(&path).ok();
        if cur == f.previous {
            writeln!(out, "  same    {}", path.display())?;
        } else if cur.as_deref() != Some(f.written.as_str()) && !a.force {
            conflicts += 1;
            writeln!(
                out,
                "  CHANGED {}: edited since apply wrote it; left alone (--force restores it)",
                path.display()
            )?;
        } else {
            let what = if f.previous.is_some() {
                "restore"
            } else {
                "remove "
            };
            writeln!(out, "  {what} {}", path.display())?;
            steps.push(Step::File(f));
        }
    }
    if steps.is_empty() {
        if conflicts == 0 {
            let done = backup::retire(&bpath)?;
            writeln!(
                out,
                "Nothing to restore: everything is as before apply. Backup marked used: {}",
                done.display()
            )?;
            return Ok(0);
        }
        writeln!(out, "Nothing restored; backup kept.")?;
        return Ok(1);
    }
    if a.dry_run {
        writeln!(out, "dry run: nothing was changed.")?;
        return Ok(0);
    }
    if !a.yes {
        drop(out);
        if !confirm(
            &format!(
                "Restore {} item(s) beneath {}?",
                steps.len(),
                root.display()
            ),
            "roll back kernel settings",
        )? {
            println!("Not rolled back.");
            return Ok(1);
        }
        out = std::io::stdout().lock();
    }
    // Lock where the backup lives: that is the state directory apply used.
    let _lock = backup::lock(bpath.parent().unwrap_or(&dir))?;
    let mut failed = 0;
    for s in &steps {
        match s {
            Step::Value(v) => {
                let file = root.join(&v.path);
                let scope = Scope::from_label(&v.scope);
                let res = sysctl::write_file(&file, &v.previous)
                    .map_err(|e| explain(root, &v.key, scope, &file, &e))
                    .and_then(|_| {
                        std::fs::read_to_string(&file)
                            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                            .map_err(|e| explain(root, &v.key, scope, &file, &e))
                    });
                match res {
                    Ok(now) if now == v.previous => writeln!(out, "  ok      {} = {now}", v.key)?,
                    Ok(now) => {
                        failed += 1;
                        writeln!(
                            out,
                            "  FAILED  {}: wrote {} but reads back {now}",
                            v.key, v.previous
                        )?;
                    }
                    Err(why) => {
                        failed += 1;
                        writeln!(out, "  FAILED  {}: {why}", v.key)?;
                    }
                }
            }
            Step::File(f) => {
                let path = root.join(&f.path);
                let res = match &f.previous {
                    Some(c) => std::fs::write(&path, c),
                    None => match std::fs::remove_file(&path) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        r => r,
                    },
                };
                match res {
                    Ok(()) => {
                        // Drop the drop-in directory apply created, if nothing else is in it.
                        if f.previous.is_none() && f.path.ends_with(".service.d/nofile.conf") {
                            if let Some(parent) = path.parent() {
                                let _ = std::fs::remove_dir(parent);
                            }
                        }
                        writeln!(out, "  ok      {}", path.display())?
                    }
                    Err(e) => {
                        failed += 1;
                        writeln!(out, "  FAILED  {}: {e}", path.display())?;
                    }
                }
            }
        }
    }
    if failed + conflicts == 0 {
        let done = backup::retire(&bpath).context("values restored, but")?;
        writeln!(out, "Rolled back. Backup marked used: {}", done.display())?;
        Ok(0)
    } else {
        writeln!(
            out,
            "{failed} failed, {conflicts} left alone; backup kept at {}",
            bpath.display()
        )?;
        Ok(1)
    }
}

/// `corestream-tune profile`: print the effective profile as a sysctl.d / limits.d / drop-in file.
pub fn run_show(_root: &Path, a: ShowArgs) -> anyhow::Result<u8> {
    let prof = profile::load(a.p.profile.as_deref())?;
    let text = match a.format {
        ShowFormat::SysctlD => profile::render_sysctl_d(&prof.name, &prof.sysctls, &[]),
        ShowFormat::LimitsD | ShowFormat::Dropin => {
            let Some((n, reason)) = &prof.nofile else {
                bail!("profile {} sets no nofile", prof.name);
            };
            if matches!(a.format, ShowFormat::LimitsD) {
                profile::render_limits_d(*n, reason)
            } else {
                profile::render_systemd_dropin(*n)
            }
        }
    };
    print!("{text}");
    Ok(0)
}
