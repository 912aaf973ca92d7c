//! `corestream-tune apply`: write the plan (raise-only unless told otherwise), a backup first,
//! each value read back; with `--persist` also the sysctl.d, limits.d and systemd files.

use crate::backup::{self, Backup, SavedFile, SavedValue};
use crate::cmd::plan::PlanReport;
use crate::paths;
use crate::plan::{self, Plan, ProfileArgs};
use crate::profile;
use crate::report::{self, Report};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
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
    /// Print the report as JSON (needs --yes or --dry-run: JSON cannot ask).
    #[arg(long)]
    pub json: bool,
}

/// A file `--persist` would write: where, and whether it replaces one.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// Relative to the root.
    pub path: String,
    pub previous: Option<String>,
    pub content: String,
}

/// What happened to one value or file.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub item: String,
    pub ok: bool,
    /// `ok      key [scope]: a -> b (read back)` or the reason it failed.
    pub line: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    NothingToChange {
        unavailable: usize,
    },
    DryRun {
        writes: Vec<(String, String)>,
        files: Vec<String>,
    },
    NotConfirmed,
    Applied {
        backup: String,
        /// The backup was removed because nothing took effect.
        backup_removed: bool,
        done: Vec<Done>,
        changed: usize,
        failed: usize,
        unavailable: usize,
        notes: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub plan: PlanReport,
    /// Writes refused outright (e.g. `--persist` outside the host's network namespace).
    pub refused: Vec<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ApplyReport {
    /// What follows the plan table (printed after the question on a terminal).
    pub fn outcome_text(&self) -> String {
        let mut o = String::new();
        match &self.outcome {
            Outcome::NothingToChange { unavailable } => {
                let _ = writeln!(
                    o,
                    "Nothing to change: the running system already meets the profile{}.",
                    if *unavailable > 0 {
                        " (except the keys that cannot be read, above)"
                    } else {
                        ""
                    }
                );
            }
            Outcome::DryRun { writes, files } => {
                for (k, v) in writes {
                    let _ = writeln!(o, "dry run: would write {k} = {v}");
                }
                for f in files {
                    let _ = writeln!(o, "dry run: would {f}");
                }
                let _ = writeln!(o, "dry run: nothing was changed and no backup was written.");
            }
            Outcome::NotConfirmed => {
                let _ = writeln!(o, "Not applied.");
            }
            Outcome::Applied {
                backup,
                backup_removed,
                done,
                changed,
                failed,
                unavailable,
                notes,
            } => {
                let _ = writeln!(o, "Backup of previous values: {backup}");
                for d in done {
                    let _ = writeln!(o, "  {}", d.line);
                }
                if *backup_removed {
                    let _ = writeln!(o, "Nothing was changed; backup removed.");
                    return o;
                }
                for n in notes {
                    let _ = writeln!(o, "{n}");
                }
                let _ = writeln!(
                    o,
                    "{changed} changed, {failed} failed, {unavailable} unavailable. Undo with: corestream-tune rollback --backup {backup}"
                );
            }
        }
        o
    }
}

impl Report for ApplyReport {
    fn text(&self) -> String {
        format!(
            "{}{}\n{}",
            self.plan.table_text(),
            self.refused_text(),
            self.outcome_text()
        )
    }
    fn exit_code(&self) -> u8 {
        if !self.refused.is_empty() && !matches!(self.outcome, Outcome::NotConfirmed) {
            return self.exit_code_of_outcome().max(1);
        }
        self.exit_code_of_outcome()
    }
}

impl ApplyReport {
    fn refused_text(&self) -> String {
        self.refused
            .iter()
            .map(|r| format!("  refused: {r}\n"))
            .collect()
    }

    fn exit_code_of_outcome(&self) -> u8 {
        match &self.outcome {
            Outcome::NothingToChange { unavailable } => u8::from(*unavailable > 0),
            Outcome::DryRun { .. } => 0,
            Outcome::NotConfirmed => 1,
            Outcome::Applied {
                backup_removed,
                failed,
                unavailable,
                ..
            } => u8::from(*backup_removed || failed + unavailable > 0),
        }
    }
}

/// The files `--persist` would change (those whose content differs from what is there).
fn file_changes(root: &Path, plan: &Plan) -> Vec<FileChange> {
    plan::persist_files(&plan.profile, &plan.rows, plan.nofile.as_ref())
        .into_iter()
        .filter_map(|(rel, content)| {
            let previous = std::fs::read_to_string(paths::under(root, &rel)).ok();
            (previous.as_deref() != Some(content.as_str())).then_some(FileChange {
                path: rel,
                previous,
                content,
            })
        })
        .collect()
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    let plan = Plan::load(root, &a.p, a.allow_lower)?;
    let table = PlanReport::new(root, &plan, false);
    let mut refused = Vec::new();
    let mut files = Vec::new();
    if a.persist.unwrap_or(false) {
        match plan.netns.refusal(
            "--persist (writing /etc/sysctl.d, /etc/security/limits.d and the systemd drop-in)",
            "corestream-tune apply --persist",
        ) {
            Some(why) => refused.push(why),
            None => files = file_changes(root, &plan),
        }
    }
    let writes: Vec<&plan::Row> = plan.writes().collect();
    let report = |outcome| ApplyReport {
        plan: table.clone(),
        refused: refused.clone(),
        outcome,
    };
    if writes.is_empty() && files.is_empty() {
        let r = report(Outcome::NothingToChange {
            unavailable: plan.unavailable(),
        });
        return report::emit(&r, a.json);
    }
    if a.dry_run {
        let r = report(Outcome::DryRun {
            writes: writes
                .iter()
                .map(|r| {
                    let v = profile::format_value(r.shape, r.write.as_deref().unwrap_or(&[]));
                    (r.key.clone(), v)
                })
                .collect(),
            files: files
                .iter()
                .map(|f| {
                    let verb = if f.previous.is_some() {
                        "replace"
                    } else {
                        "create"
                    };
                    format!("{verb} {}", paths::under(root, &f.path).display())
                })
                .collect(),
        });
        return report::emit(&r, a.json);
    }
    if !a.yes {
        if a.json {
            return report::usage("--json cannot ask for confirmation: add --yes (or --dry-run)");
        }
        let head = report(Outcome::NotConfirmed);
        report::print_text(&format!("{}{}\n", table.table_text(), head.refused_text()))?;
        let q = format!(
            "Apply {} value(s) and {} file(s) beneath {}?",
            writes.len(),
            files.len(),
            root.display()
        );
        let r = if report::confirm(&q, "change kernel settings")? {
            report(execute(root, &a, &plan, &writes, &files)?)
        } else {
            report(Outcome::NotConfirmed)
        };
        report::print_text(&r.outcome_text())?;
        return Ok(r.exit_code());
    }
    let r = report(execute(root, &a, &plan, &writes, &files)?);
    report::emit(&r, a.json)
}

/// Back up, then write every value and file; the backup records only what took effect.
fn execute(
    root: &Path,
    a: &Args,
    plan: &Plan,
    writes: &[&plan::Row],
    files: &[FileChange],
) -> anyhow::Result<Outcome> {
    // Backup first: if anything below fails half-way, rollback still knows every previous value.
    let mut b = Backup {
        format: 1,
        created: backup::stamps(std::time::SystemTime::now()).0,
        tool: format!("corestream-tune {}", env!("CARGO_PKG_VERSION")),
        root: root.display().to_string(),
        profile: plan.profile.name.clone(),
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
        files: files
            .iter()
            .map(|f| SavedFile {
                path: f.path.clone(),
                previous: f.previous.clone(),
                written: f.content.clone(),
            })
            .collect(),
    };
    let dir = backup::state_dir(root, a.state_dir.as_deref());
    let _lock = backup::lock(&dir)?;
    let bpath = backup::create(&dir, &b)?;
    let mut done = Vec::new();
    let (mut changed, mut failed) = (0, 0);
    for (i, r) in writes.iter().enumerate() {
        let text = profile::format_value(r.shape, r.write.as_deref().unwrap_or(&[]));
        match plan::write_and_verify(root, &r.key, r.scope, r.shape, &r.rel_path, &text) {
            Ok(now) => {
                changed += 1;
                done.push(Done {
                    item: r.key.clone(),
                    ok: true,
                    line: format!(
                        "ok      {} [{}]: {} -> {now} (read back)",
                        r.key,
                        r.scope.label(),
                        r.current_label()
                    ),
                });
                b.values[i].applied = Some(now);
            }
            Err(why) => {
                failed += 1;
                done.push(Done {
                    item: r.key.clone(),
                    ok: false,
                    line: format!("FAILED  {} [{}]: {why}", r.key, r.scope.label()),
                });
            }
        }
    }
    // Values that failed were not changed; keep them out of the backup's "applied" record so
    // rollback restores only what apply actually touched.
    b.values.retain(|v| v.applied.is_some());
    for f in files {
        let path = paths::under(root, &f.path);
        let res = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&path, &f.content));
        let line = match res {
            Ok(()) => format!("wrote   {}", path.display()),
            Err(e) => {
                failed += 1;
                b.files.retain(|s| s.path != f.path);
                format!("FAILED  {}: {e}", path.display())
            }
        };
        done.push(Done {
            item: f.path.clone(),
            ok: line.starts_with("wrote"),
            line,
        });
    }
    let backup = bpath.display().to_string();
    if b.values.is_empty() && b.files.is_empty() {
        // Nothing took effect: a backup of nothing would only confuse the next rollback.
        let _ = std::fs::remove_file(&bpath);
        return Ok(Outcome::Applied {
            backup,
            backup_removed: true,
            done,
            changed,
            failed,
            unavailable: plan.unavailable(),
            notes: Vec::new(),
        });
    }
    backup::save(&bpath, &b)?;
    let mut notes = Vec::new();
    if files.iter().any(|f| f.path == paths::dropin(paths::UNIT)) {
        notes.push(
            "LimitNOFILE takes effect for corestream.service after `systemctl daemon-reload && systemctl restart corestream` \
             (systemd ignores limits.d; a running process can be raised now with `corestream-tune nofile --pid PID`)."
                .to_string(),
        );
    }
    if a.persist.unwrap_or(false)
        && plan
            .rows
            .iter()
            .any(|r| !r.persistable && r.write.is_some())
    {
        notes.push("RPS queue settings live in sysfs, not sysctl.d: corestream-tune.service with --rps re-applies them at boot.".to_string());
    }
    Ok(Outcome::Applied {
        backup,
        backup_removed: false,
        done,
        changed,
        failed,
        unavailable: plan.unavailable(),
        notes,
    })
}
