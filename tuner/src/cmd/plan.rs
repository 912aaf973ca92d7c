//! `corestream-tune plan`: what `apply` would change, key by key; changes nothing.

use crate::paths;
use crate::plan::{Action, NofilePlan, Plan, ProfileArgs, Row};
use crate::profile;
use crate::report::{self, Report};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// Show lowering a value as something apply would do (it is skipped otherwise).
    #[arg(long)]
    pub allow_lower: bool,
    /// Print the one-line reason for every key under the table.
    #[arg(long)]
    pub why: bool,
    /// Print the plan as JSON (the same rows and actions as the table).
    #[arg(long)]
    pub json: bool,
}

/// One row as `plan` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    pub key: String,
    /// File beneath the root.
    pub path: String,
    pub scope: &'static str,
    /// What runs now (`null` when unreadable).
    pub current: Option<String>,
    pub target: String,
    pub action: Action,
    pub action_label: String,
    /// What apply writes, if anything.
    pub write: Option<String>,
    pub reason: String,
}

impl RowView {
    pub fn of(r: &Row) -> RowView {
        RowView {
            key: r.key.clone(),
            path: r.rel_path.display().to_string(),
            scope: r.scope.label(),
            current: r.current.as_ref().map(|_| r.current_label()),
            target: r.target_label(),
            action: r.action.clone(),
            action_label: r.action.label(),
            write: r.write.as_ref().map(|w| profile::format_value(r.shape, w)),
            reason: r.reason.clone(),
        }
    }
}

/// The server's open-file limit as its unit sets it.
#[derive(Debug, Clone, Serialize)]
pub struct NofileView {
    pub unit: String,
    pub current: String,
    /// The file (or systemd) the current value comes from.
    pub from: String,
    pub target: u64,
    /// Later drop-ins with a lower limit: ours would not take effect until they change.
    pub overridden_by: Vec<String>,
    pub action: String,
    pub reason: String,
}

fn nofile_view(np: &NofilePlan) -> NofileView {
    let n = np.target;
    let limit = |c: u64| {
        if c == u64::MAX {
            "infinity".to_string()
        } else {
            c.to_string()
        }
    };
    let (cur, action) = match np.effective {
        Some(c) if c >= n => (limit(c), "already fine".to_string()),
        Some(c) => (
            limit(c),
            "raise with --persist (then restart corestream)".into(),
        ),
        None => (
            "unset (1024 soft)".into(),
            "set with --persist (then restart corestream)".into(),
        ),
    };
    NofileView {
        unit: np.unit.clone(),
        current: cur,
        from: np.from.clone(),
        target: n,
        action,
        overridden_by: np.overridden_by.clone(),
        reason: np.reason.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub profile: String,
    pub root: String,
    pub rows: Vec<RowView>,
    pub nofile: Option<NofileView>,
    /// What `--rps` found and left alone.
    pub notes: Vec<String>,
    pub to_change: usize,
    pub already_fine: usize,
    pub would_lower: usize,
    pub unavailable: usize,
    #[serde(skip)]
    pub why: bool,
}

impl PlanReport {
    pub fn new(root: &Path, plan: &Plan, why: bool) -> PlanReport {
        let count = |f: fn(&Row) -> bool| plan.rows.iter().filter(|r| f(r)).count();
        PlanReport {
            profile: plan.profile.name.clone(),
            root: root.display().to_string(),
            rows: plan.rows.iter().map(RowView::of).collect(),
            nofile: plan.nofile.as_ref().map(nofile_view),
            notes: plan.rps_notes().to_vec(),
            to_change: count(|r| r.write.is_some()),
            already_fine: count(|r| r.action == Action::Fine),
            would_lower: count(|r| r.action == Action::WouldLower),
            unavailable: plan.unavailable(),
            why,
        }
    }

    /// The table and its notes (what `apply` shows before it asks).
    pub fn table_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Profile: {}   root: {}", self.profile, self.root);
        let mut t = vec![vec![
            "KEY".to_string(),
            "SCOPE".into(),
            "CURRENT".into(),
            "TARGET".into(),
            "ACTION".into(),
        ]];
        for r in &self.rows {
            t.push(vec![
                r.key.clone(),
                r.scope.into(),
                r.current.clone().unwrap_or_else(|| "?".into()),
                r.target.clone(),
                r.action_label.clone(),
            ]);
        }
        if let Some(n) = &self.nofile {
            t.push(vec![
                format!("LimitNOFILE ({})", n.unit),
                "service".into(),
                n.current.clone(),
                n.target.to_string(),
                n.action.clone(),
            ]);
        }
        report::table(&mut o, &t);
        for r in &self.rows {
            if let Action::Unavailable(why) = &r.action {
                let _ = writeln!(o, "  {}: {why}", r.key);
            }
            if let (Action::RaiseKeep, Some(w)) = (&r.action, &r.write) {
                let _ = writeln!(
                    o,
                    "  {}: fields above the profile are kept; apply writes {w} (--allow-lower writes the target)",
                    r.key
                );
            }
        }
        if let Some(n) = &self.nofile {
            if n.current != "unset (1024 soft)" {
                let _ = writeln!(o, "  LimitNOFILE: {} comes from {}", n.current, n.from);
            }
            for f in &n.overridden_by {
                let _ = writeln!(
                    o,
                    "  LimitNOFILE: {f} sorts after {} and sets a lower limit: it wins over what apply writes; raise or remove it there",
                    paths::shown(&paths::dropin(&n.unit))
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(o, "  rps: {n}");
        }
        if self.why {
            let _ = writeln!(o, "\nWhy:");
            for r in &self.rows {
                let _ = writeln!(o, "  {}: {}", r.key, r.reason);
            }
            if let Some(n) = &self.nofile {
                let _ = writeln!(o, "  LimitNOFILE: {}", n.reason);
            }
        }
        o
    }
}

impl Report for PlanReport {
    fn text(&self) -> String {
        format!(
            "{}\n{} to change, {} already fine, {} skipped (would lower), {} unavailable. Nothing was changed.\n",
            self.table_text(),
            self.to_change,
            self.already_fine,
            self.would_lower,
            self.unavailable
        )
    }
    fn exit_code(&self) -> u8 {
        0
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    let plan = Plan::load(root, &a.p, a.allow_lower)?;
    report::emit(&PlanReport::new(root, &plan, a.why), a.json)
}
