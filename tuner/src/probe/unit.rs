//! A systemd unit's effective `LimitNOFILE=`, read the way systemd does: the unit file from the
//! first directory that has it (/etc, /run, /usr/lib, /lib), then every `*.conf` drop-in in
//! `<unit>.d/` of all those directories, a name in an earlier directory hiding the same name
//! in a later one, applied in lexical order of the names; the last assignment wins and an empty
//! one resets. When systemd runs the live root, `systemctl show` has the last word (it knows
//! what is loaded).

use crate::paths;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// File beneath the root.
    pub file: String,
    /// Soft limit it sets; `None` is `LimitNOFILE=` (reset) ; `u64::MAX` is infinity.
    pub soft: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitNofile {
    pub unit: String,
    /// The unit file found, if any (beneath the root).
    pub unit_file: Option<String>,
    /// Every `LimitNOFILE=` in the order systemd applies them.
    pub assignments: Vec<Assignment>,
    /// `systemctl show -p LimitNOFILESoft`, when systemd runs this root.
    pub systemctl: Option<u64>,
}

impl UnitNofile {
    /// The soft limit the service starts with (`None`: systemd's default, 1024 soft).
    pub fn effective(&self) -> Option<u64> {
        let files = self.assignments.last().and_then(|a| a.soft);
        match (files, self.systemctl) {
            (Some(f), Some(s)) => Some(f.max(s)),
            (f, s) => f.or(s),
        }
    }

    /// Drop-ins that sort after `name` and set the limit: they would override a drop-in of
    /// that name.
    pub fn later_than<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Assignment> + 'a {
        let name = name.to_string();
        self.assignments.iter().filter(move |a| {
            a.file.contains(".d/")
                && Path::new(&a.file)
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy().as_ref() > name.as_str())
        })
    }
}

/// `LimitNOFILE=` values of a unit or drop-in text, in order (`N`, `soft:hard`, `infinity`).
pub fn parse_limit_nofile(text: &str) -> Vec<Option<u64>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .map(|v| {
            let soft = v.split(':').next().unwrap_or("").trim();
            match soft {
                "" => None,
                "infinity" => Some(u64::MAX),
                n => n.parse().ok(),
            }
        })
        .collect()
}

pub fn read(root: &Path, unit: &str) -> UnitNofile {
    let mut assignments = Vec::new();
    let unit_file = paths::UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{unit}"))
        .find(|f| paths::under(root, f).is_file());
    if let Some(f) = &unit_file {
        let text = std::fs::read_to_string(paths::under(root, f)).unwrap_or_default();
        for soft in parse_limit_nofile(&text) {
            assignments.push(Assignment {
                file: f.clone(),
                soft,
            });
        }
    }
    // Name -> file: the first directory that has a name wins.
    let mut dropins: BTreeMap<String, String> = BTreeMap::new();
    for d in paths::UNIT_DIRS {
        let dir = format!("{d}/{unit}.d");
        let Ok(rd) = std::fs::read_dir(paths::under(root, &dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                dropins
                    .entry(name.clone())
                    .or_insert_with(|| format!("{dir}/{name}"));
            }
        }
    }
    for file in dropins.values() {
        let text = std::fs::read_to_string(paths::under(root, file)).unwrap_or_default();
        for soft in parse_limit_nofile(&text) {
            assignments.push(Assignment {
                file: file.clone(),
                soft,
            });
        }
    }
    let systemctl = if root == Path::new("/") && unit_file.is_some() {
        systemctl_soft(unit)
    } else {
        None
    };
    UnitNofile {
        unit: unit.to_string(),
        unit_file,
        assignments,
        systemctl,
    }
}

/// `systemctl show -p LimitNOFILESoft --value UNIT` when systemd is the running init.
fn systemctl_soft(unit: &str) -> Option<u64> {
    if !paths::under(Path::new("/"), paths::SYSTEMD_RUNNING).is_dir() {
        return None;
    }
    let out = std::process::Command::new("systemctl")
        .args(["show", "-p", "LimitNOFILESoft", "--value", unit])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if v == "infinity" {
        Some(u64::MAX)
    } else {
        v.parse().ok()
    }
}
