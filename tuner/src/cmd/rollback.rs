//! `corestream-tune rollback`: restore what `apply` (or `auto`) recorded in a backup, refusing
//! to overwrite a value or file someone changed since, unless forced.

use crate::backup::{self, SavedFile, SavedValue};
use crate::paths;
use crate::plan::explain;
use crate::profile::Scope;
use crate::report::{self, Report};
use crate::sysctl;
use anyhow::{bail, Context};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
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
    /// Print the report as JSON (needs --yes or --dry-run: JSON cannot ask).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything is as before apply; the backup was marked used.
    NothingToRestore {
        retired: String,
    },
    /// Only conflicts: nothing restored, backup kept.
    NothingRestored,
    DryRun,
    NotConfirmed,
    Done {
        results: Vec<String>,
        failed: usize,
        conflicts: usize,
        /// Where the backup went once everything was restored.
        retired: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub backup: String,
    pub profile: String,
    pub created: String,
    /// One line per value and file: same, restore, remove, CHANGED or FAILED.
    pub decisions: Vec<String>,
    pub conflicts: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl RollbackReport {
    fn head_text(&self) -> String {
        let mut o = format!(
            "Backup {} (apply of {} at {})\n",
            self.backup, self.profile, self.created
        );
        for d in &self.decisions {
            let _ = writeln!(o, "  {d}");
        }
        o
    }

    fn outcome_text(&self) -> String {
        let mut o = String::new();
        match &self.outcome {
            Outcome::NothingToRestore { retired } => {
                let _ = writeln!(
                    o,
                    "Nothing to restore: everything is as before apply. Backup marked used: {retired}"
                );
            }
            Outcome::NothingRestored => {
                let _ = writeln!(o, "Nothing restored; backup kept.");
            }
            Outcome::DryRun => {
                let _ = writeln!(o, "dry run: nothing was changed.");
            }
            Outcome::NotConfirmed => {
                let _ = writeln!(o, "Not rolled back.");
            }
            Outcome::Done {
                results,
                failed,
                conflicts,
                retired,
            } => {
                for r in results {
                    let _ = writeln!(o, "  {r}");
                }
                match retired {
                    Some(done) => {
                        let _ = writeln!(o, "Rolled back. Backup marked used: {done}");
                    }
                    None => {
                        let _ = writeln!(
                            o,
                            "{failed} failed, {conflicts} left alone; backup kept at {}",
                            self.backup
                        );
                    }
                }
            }
        }
        o
    }
}

impl Report for RollbackReport {
    fn text(&self) -> String {
        format!("{}{}", self.head_text(), self.outcome_text())
    }
    fn exit_code(&self) -> u8 {
        match &self.outcome {
            Outcome::NothingToRestore { .. } => 0,
            // A dry run answers as the real run would: a conflict it would refuse is not OK.
            Outcome::DryRun => u8::from(self.conflicts > 0),
            Outcome::NothingRestored | Outcome::NotConfirmed => 1,
            Outcome::Done { retired, .. } => u8::from(retired.is_none()),
        }
    }
}

enum Step<'a> {
    Value(&'a SavedValue),
    File(&'a SavedFile),
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
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
        return report::usage(format!(
            "{} was taken with --root {}; run rollback with --root {} (this run uses {})",
            bpath.display(),
            b.root,
            b.root,
            root.display()
        ));
    }
    // Decide everything first so a conflict is visible before anything is touched.
    let mut steps = Vec::new();
    let mut decisions = Vec::new();
    let mut conflicts = 0;
    for v in b.values.iter().rev() {
        let file = paths::under(root, &v.path);
        match sysctl::read_file(&file) {
            Ok(c) if c == v.previous => decisions.push(format!("same    {}: already {}", v.key, c)),
            Ok(c) if v.applied.as_deref().is_some_and(|ap| ap != c) && !a.force => {
                conflicts += 1;
                decisions.push(format!(
                    "CHANGED {}: now {c}, but apply wrote {}: someone changed it since; left alone (--force restores {})",
                    v.key,
                    v.applied.as_deref().unwrap_or("?"),
                    v.previous
                ));
            }
            Ok(c) => {
                decisions.push(format!(
                    "restore {} [{}]: {} -> {}",
                    v.key, v.scope, c, v.previous
                ));
                steps.push(Step::Value(v));
            }
            Err(e) => {
                conflicts += 1;
                let why = explain(root, &v.key, Scope::from_label(&v.scope), &file, &e);
                decisions.push(format!("FAILED  {}: {why}", v.key));
            }
        }
    }
    for f in &b.files {
        let path = paths::under(root, &f.path);
        let cur = std::fs::read_to_string(&path).ok();
        if cur == f.previous {
            decisions.push(format!("same    {}", path.display()));
        } else if cur.as_deref() != Some(f.written.as_str()) && !a.force {
            conflicts += 1;
            decisions.push(format!(
                "CHANGED {}: edited since apply wrote it; left alone (--force restores it)",
                path.display()
            ));
        } else {
            let what = if f.previous.is_some() {
                "restore"
            } else {
                "remove "
            };
            decisions.push(format!("{what} {}", path.display()));
            steps.push(Step::File(f));
        }
    }
    let report = |outcome| RollbackReport {
        backup: bpath.display().to_string(),
        profile: b.profile.clone(),
        created: b.created.clone(),
        decisions: decisions.clone(),
        conflicts,
        outcome,
    };
    if steps.is_empty() {
        let outcome = if conflicts == 0 {
            let done = backup::retire(&bpath)?;
            Outcome::NothingToRestore {
                retired: done.display().to_string(),
            }
        } else {
            Outcome::NothingRestored
        };
        return report::emit(&report(outcome), a.json);
    }
    if a.dry_run {
        return report::emit(&report(Outcome::DryRun), a.json);
    }
    if !a.yes {
        if a.json {
            return report::usage("--json cannot ask for confirmation: add --yes (or --dry-run)");
        }
        let head = report(Outcome::DryRun).head_text();
        report::print_text(&head)?;
        let q = format!(
            "Restore {} item(s) beneath {}?",
            steps.len(),
            root.display()
        );
        let r = if report::confirm(&q, "roll back kernel settings")? {
            report(restore(root, &dir, &bpath, &steps, conflicts)?)
        } else {
            report(Outcome::NotConfirmed)
        };
        report::print_text(&r.outcome_text())?;
        return Ok(r.exit_code());
    }
    let r = report(restore(root, &dir, &bpath, &steps, conflicts)?);
    report::emit(&r, a.json)
}

fn restore(
    root: &Path,
    dir: &Path,
    bpath: &Path,
    steps: &[Step],
    conflicts: usize,
) -> anyhow::Result<Outcome> {
    // Lock where the backup lives: that is the state directory apply used.
    let _lock = backup::lock(bpath.parent().unwrap_or(dir))?;
    let mut failed = 0;
    let mut results = Vec::new();
    for s in steps {
        match s {
            Step::Value(v) => {
                let file = paths::under(root, &v.path);
                let scope = Scope::from_label(&v.scope);
                let res = sysctl::write_file(&file, &v.previous)
                    .and_then(|_| sysctl::read_file(&file))
                    .map_err(|e| explain(root, &v.key, scope, &file, &e));
                match res {
                    Ok(now) if now == v.previous => {
                        results.push(format!("ok      {} = {now}", v.key))
                    }
                    Ok(now) => {
                        failed += 1;
                        results.push(format!(
                            "FAILED  {}: wrote {} but reads back {now}",
                            v.key, v.previous
                        ));
                    }
                    Err(why) => {
                        failed += 1;
                        results.push(format!("FAILED  {}: {why}", v.key));
                    }
                }
            }
            Step::File(f) => {
                let path = paths::under(root, &f.path);
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
                        if f.previous.is_none() && f.path.contains(".service.d/") {
                            if let Some(parent) = path.parent() {
                                let _ = std::fs::remove_dir(parent);
                            }
                        }
                        results.push(format!("ok      {}", path.display()));
                    }
                    Err(e) => {
                        failed += 1;
                        results.push(format!("FAILED  {}: {e}", path.display()));
                    }
                }
            }
        }
    }
    let retired = if failed + conflicts == 0 {
        Some(
            backup::retire(bpath)
                .context("values restored, but")?
                .display()
                .to_string(),
        )
    } else {
        None
    };
    Ok(Outcome::Done {
        results,
        failed,
        conflicts,
        retired,
    })
}
