//! `corestream-tune check`: does the running system meet the profile? Exit 0 when it does, 1
//! with the list of drifts (config management and monitoring read `--json`).

use crate::paths;
use crate::plan::{Action, Plan, ProfileArgs};
use crate::probe::{self, fds};
use crate::profile::Shape;
use crate::report::{self, Report};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// Print `{"ok", "profile", "root", "keys", "corestream_processes", "drifts": [{"key",
    /// "scope", "current", "target", "message"}]}` instead of text (same exit status).
    #[arg(long)]
    pub json: bool,
}

/// One way the running system misses the profile.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub profile: String,
    pub root: String,
    pub keys: usize,
    pub corestream_processes: usize,
    pub drifts: Vec<Drift>,
    #[serde(skip)]
    key_drifts: usize,
    #[serde(skip)]
    notes: Vec<String>,
    #[serde(skip)]
    custom_profile: bool,
}

impl Report for CheckReport {
    fn text(&self) -> String {
        let mut o = String::new();
        for n in &self.notes {
            let _ = writeln!(o, "rps: {n}");
        }
        let procs_note = if self.corestream_processes > 0 {
            format!(
                "; {} corestream process(es) checked for open files",
                self.corestream_processes
            )
        } else {
            String::new()
        };
        if self.drifts.is_empty() {
            let _ = writeln!(
                o,
                "OK: {} keys meet profile {} beneath {}{procs_note}",
                self.keys, self.profile, self.root
            );
            return o;
        }
        let _ = writeln!(
            o,
            "DRIFT: {} of {} keys do not meet profile {} beneath {}{procs_note}:",
            self.key_drifts, self.keys, self.profile, self.root
        );
        for d in &self.drifts {
            let _ = writeln!(o, "  {}", d.message);
        }
        let _ = writeln!(
            o,
            "Fix with: corestream-tune apply{}",
            if self.custom_profile {
                " --profile ..."
            } else {
                ""
            }
        );
        o
    }
    fn exit_code(&self) -> u8 {
        u8::from(!self.drifts.is_empty())
    }
}

pub fn check(root: &Path, p: &ProfileArgs) -> anyhow::Result<CheckReport> {
    let plan = Plan::load(root, p, false)?;
    let mut drifts = Vec::new();
    for r in &plan.rows {
        let message = match &r.action {
            Action::Fine | Action::WouldLower | Action::Lower => continue,
            Action::Raise | Action::RaiseKeep | Action::Change => format!(
                "{} [{}]: running {}, profile wants {}",
                r.key,
                r.scope.label(),
                r.current_label(),
                match r.shape {
                    Shape::Range => format!("a range covering {}", r.target_label()),
                    Shape::Mask => format!("at least CPUs {}", r.target_label()),
                    Shape::Triple => format!("each field at least {}", r.target_label()),
                    Shape::Int { .. } => format!("at least {}", r.target_label()),
                    Shape::Choice(_) => r.target_label(),
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
    if let Some(np) = &plan.nofile {
        let installed = np.from != "not installed";
        match np.effective {
            Some(e) if e >= np.target => {}
            _ if !installed => {}
            e => drifts.push(Drift {
                key: format!("LimitNOFILE ({})", np.unit),
                scope: "service".into(),
                current: e.map(|v| v.to_string()),
                target: np.target.to_string(),
                message: format!(
                    "{}: LimitNOFILE soft {} (from {}), profile wants {} (corestream-tune apply --persist, then restart it)",
                    np.unit,
                    e.map_or("1024 (systemd's default)".to_string(), |v| v.to_string()),
                    np.from,
                    np.target
                ),
            }),
        }
    }
    let mut procs = 0;
    if let Some((n, _)) = &plan.profile.nofile {
        for pid in fds::find_by_name(root, probe::DEFAULT_PROCESS) {
            procs += 1;
            let soft = std::fs::read_to_string(paths::under(root, &paths::pid(pid, "limits")))
                .ok()
                .and_then(|t| fds::parse_nofile(&t).ok())
                .map(|(soft, _)| soft.unwrap_or(u64::MAX));
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
    Ok(CheckReport {
        ok: drifts.is_empty(),
        profile: plan.profile.name.clone(),
        root: root.display().to_string(),
        keys: plan.rows.len(),
        corestream_processes: procs,
        drifts,
        key_drifts,
        notes: plan.rps_notes().to_vec(),
        custom_profile: p.profile.is_some(),
    })
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    report::emit(&check(root, &a.p)?, a.json)
}
