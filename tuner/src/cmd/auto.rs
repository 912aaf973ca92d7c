//! `corestream-tune auto`: evidence-gated tuning, opt-in, in bpftune's spirit and where bpftune
//! does not go (somaxconn, tcp_max_syn_backlog).
//!
//! Every interval it takes a sample, and for each key whose evidence grew it writes one step
//! (`steps::Key::next`) bounded by the profile's value: somaxconn and tcp_max_syn_backlog when
//! ListenOverflows or TCPReqQFullDrop grow, netdev_max_backlog when softnet drops exceed 1/16 of
//! the backlog per minute, netdev_budget and netdev_budget_usecs on squeezes. Each change is
//! logged with its evidence and recorded in one backup per run, the same file `apply` writes,
//! so `rollback` undoes it. A key an administrator changes after auto wrote it is left alone
//! for good (remembered in `auto-backoff.json` in the state directory).
//!
//! A listener keeps the backlog it was created with: a raised somaxconn takes effect when the
//! server calls `listen()` again. Auto sends SIGHUP to the processes named `--name` that own
//! listening sockets, which corestream answers by re-listening.

use crate::backup::{self, Backup, SavedValue};
use crate::paths;
use crate::plan;
use crate::probe::{self, Sample, Target};
use crate::profile::{self, Profile};
use crate::rates::{self, Rates};
use crate::report;
use crate::steps::Key;
use crate::thresholds::Rule;
use corestream_common::date::Civil;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Keys an administrator changed after auto wrote them: never touched again.
pub const BACKOFF_FILE: &str = "auto-backoff.json";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Profile whose values bound every key (auto never goes past them) [default: `edge`].
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Time between samples.
    #[arg(long, default_value = "10s", value_parser = crate::diagnose::parse_interval, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Stop after N intervals (default: run until stopped).
    #[arg(long)]
    pub count: Option<u64>,
    /// Where the backup and the back-off list go [default: <root>/var/lib/corestream-tune].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Change settings unattended (required: auto never asks).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Server process told to re-listen (SIGHUP) after somaxconn or tcp_max_syn_backlog rise.
    #[arg(long, default_value = probe::DEFAULT_PROCESS)]
    pub name: String,
    /// Do not signal the server; a raised somaxconn then waits for its restart.
    #[arg(long)]
    pub no_signal: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Backoff {
    keys: BTreeSet<String>,
}

fn log(line: &str) {
    let stamp = Civil::from_system_time(SystemTime::now()).rfc3339_millis();
    let mut out = std::io::stdout().lock();
    // The log is the point of auto: a closed stdout ends nothing, the backup still records it.
    let _ = writeln!(out, "{stamp} auto: {line}");
    let _ = out.flush();
}

/// Why each key should go up this interval, if it should.
fn evidence(a: &Sample, b: &Sample, r: &Rates) -> BTreeMap<Key, String> {
    let mut out = BTreeMap::new();
    let inc = |k: &str| -> i64 {
        match (a.counters.get(k), b.counters.get(k)) {
            (Some(x), Some(y)) => (y - x).max(0),
            _ => 0,
        }
    };
    let (ov, syn) = (inc("TcpExt:ListenOverflows"), inc("TcpExt:TCPReqQFullDrop"));
    if ov > 0 || syn > 0 {
        let why = format!(
            "TcpExt:ListenOverflows +{ov}, TcpExt:TCPReqQFullDrop +{syn} in {:.1}s",
            r.seconds
        );
        out.insert(Key::Somaxconn, why.clone());
        out.insert(Key::TcpMaxSynBacklog, why);
    }
    let per_min = |get: fn(&rates::CpuRates) -> Option<f64>| -> f64 {
        r.cpus.iter().filter_map(get).sum::<f64>() * 60.0
    };
    let drops = per_min(|c| c.softnet_dropped_per_s);
    if let Some(backlog) = b.sysctls.int(Key::NetdevMaxBacklog.sysctl()) {
        // bpftune's trigger: 1/16 of the backlog dropped in a minute.
        if drops > backlog as f64 / 16.0 {
            out.insert(
                Key::NetdevMaxBacklog,
                format!("softnet drops {drops:.0}/min > netdev_max_backlog {backlog} / 16"),
            );
        }
    }
    let squeezes = per_min(|c| c.softnet_squeezed_per_s);
    if Rule::SoftnetSqueezed.grade(squeezes).is_some() {
        let why = format!("softnet time_squeeze {squeezes:.0}/min");
        out.insert(Key::NetdevBudget, why.clone());
        out.insert(Key::NetdevBudgetUsecs, why);
    }
    out
}

/// Processes named `name` that own a listening socket (or, without owner data, all of them).
fn servers(root: &Path, b: &Sample, name: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = b
        .listeners
        .iter()
        .flat_map(|l| l.sockets.iter())
        .flat_map(|s| s.owners.iter())
        .filter(|(_, comm)| comm == name)
        .map(|(pid, _)| *pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        pids = probe::fds::find_by_name(root, name);
    }
    pids
}

struct Run<'a> {
    root: &'a Path,
    dir: PathBuf,
    profile: Profile,
    backup: Option<(PathBuf, Backup)>,
    /// Key -> what auto last wrote.
    written: BTreeMap<String, String>,
    backoff: Backoff,
    said: BTreeSet<String>,
}

impl Run<'_> {
    fn once(&mut self, what: String) {
        if self.said.insert(what.clone()) {
            log(&what);
        }
    }

    fn save_backoff(&self) -> anyhow::Result<()> {
        let path = self.dir.join(BACKOFF_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&self.backoff)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    /// Keys someone changed since auto wrote them: back off for good.
    fn check_admin(&mut self) -> anyhow::Result<()> {
        let mut touched = Vec::new();
        for (key, wrote) in &self.written {
            let now = crate::sysctl::read(self.root, key).unwrap_or_default();
            if &now != wrote {
                touched.push((key.clone(), wrote.clone(), now));
            }
        }
        for (key, wrote, now) in touched {
            log(&format!(
                "backing off {key} for good: it is now {now}, auto wrote {wrote}; someone changed it by hand (remove it from {} to let auto tune it again)",
                self.dir.join(BACKOFF_FILE).display()
            ));
            self.written.remove(&key);
            self.backoff.keys.insert(key);
            self.save_backoff()?;
        }
        Ok(())
    }

    fn record(&mut self, key: &str, previous: &str, applied: &str) -> anyhow::Result<PathBuf> {
        if self.backup.is_none() {
            let b = Backup {
                format: 1,
                created: backup::stamps(SystemTime::now()).0,
                tool: format!("corestream-tune {} auto", env!("CARGO_PKG_VERSION")),
                root: self.root.display().to_string(),
                profile: format!("auto within {}", self.profile.name),
                values: Vec::new(),
                files: Vec::new(),
            };
            let path = backup::create(&self.dir, &b)?;
            self.backup = Some((path, b));
        }
        let Some((path, b)) = self.backup.as_mut() else {
            anyhow::bail!("backup vanished");
        };
        match b.values.iter_mut().find(|v| v.key == key) {
            // Rollback restores what was there before auto's first step.
            Some(v) => v.applied = Some(applied.to_string()),
            None => b.values.push(SavedValue {
                key: key.to_string(),
                path: paths::sysctl(key).display().to_string(),
                scope: profile::key_info(key)
                    .map(|i| i.scope.label())
                    .unwrap_or("per-netns")
                    .into(),
                previous: previous.to_string(),
                applied: Some(applied.to_string()),
            }),
        }
        backup::save(path, b)?;
        Ok(path.clone())
    }

    /// One step for `key`, within the profile's bound; returns whether it changed.
    fn step(&mut self, key: Key, why: &str, ns: &probe::netns::Netns) -> anyhow::Result<bool> {
        let name = key.sysctl();
        if self.backoff.keys.contains(name) {
            self.once(format!(
                "{name}: evidence ({why}) but backed off for good (an administrator changed it)"
            ));
            return Ok(false);
        }
        let Some(info) = profile::key_info(name) else {
            return Ok(false);
        };
        let Some(bound) = self
            .profile
            .sysctls
            .iter()
            .find(|e| e.key == name)
            .and_then(|e| e.value.first().copied())
        else {
            self.once(format!("{name}: evidence ({why}) but the profile does not set it, so auto has no bound and leaves it"));
            return Ok(false);
        };
        if info.scope != profile::Scope::PerNetns {
            if let Some(refusal) =
                ns.refusal(&format!("writing {name} (global)"), "corestream-tune auto")
            {
                self.once(format!("{name}: evidence ({why}) but {refusal}"));
                return Ok(false);
            }
        }
        let cur_text = match crate::sysctl::read(self.root, name) {
            Ok(t) => t,
            Err(e) => {
                self.once(format!(
                    "{name}: evidence ({why}) but it cannot be read: {e}"
                ));
                return Ok(false);
            }
        };
        let Ok(cur) = cur_text.parse::<i64>() else {
            return Ok(false);
        };
        let bound = i64::try_from(bound).unwrap_or(i64::MAX);
        if cur >= bound {
            self.once(format!("{name}: evidence ({why}) but it is already {cur}, at or past the profile's {bound}: nothing more auto may do"));
            return Ok(false);
        }
        let next = key.next(Some(cur)).min(bound);
        let now = plan::write_and_verify(
            self.root,
            name,
            info.scope,
            info.shape,
            &paths::sysctl(name),
            &next.to_string(),
        )
        .map_err(|why| anyhow::anyhow!("{why}"));
        match now {
            Ok(now) => {
                let backup = self.record(name, &cur_text, &now)?;
                self.written.insert(name.to_string(), now.clone());
                log(&format!(
                    "raised {name} {cur} -> {now} (bound {bound}); evidence: {why}; recorded in {} (undo: corestream-tune rollback)",
                    backup.display()
                ));
                Ok(true)
            }
            Err(e) => {
                self.once(format!("{name}: could not raise it: {e}"));
                Ok(false)
            }
        }
    }
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<u8> {
    if !a.yes {
        return report::usage(
            "auto changes kernel settings unattended: pass --yes (see what it would do with `corestream-tune diagnose`)",
        );
    }
    if a.count == Some(0) {
        return report::usage("--count must be at least 1");
    }
    let profile = profile::load_for_cli(a.profile.as_deref())?;
    let dir = backup::state_dir(root, a.state_dir.as_deref());
    // Held for the whole run: apply and rollback wait for auto to stop.
    let _lock = backup::lock(&dir)?;
    let backoff = match std::fs::read_to_string(dir.join(BACKOFF_FILE)) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(_) => Backoff::default(),
    };
    let mut run = Run {
        root,
        dir,
        profile,
        backup: None,
        written: BTreeMap::new(),
        backoff,
        said: BTreeSet::new(),
    };
    let target = Target::Named(a.name.clone());
    let mut memo = probe::Memo::default();
    let mut prev = probe::take(root, &target, &mut memo);
    log(&format!(
        "watching every {} (bounds from profile {}; state in {})",
        corestream_common::duration::display(a.interval),
        run.profile.name,
        run.dir.display()
    ));
    let mut n = 0u64;
    loop {
        std::thread::sleep(a.interval);
        run.check_admin()?;
        let cur = probe::take(root, &target, &mut memo);
        let secs = cur.taken.duration_since(prev.taken).as_secs_f64();
        let r = rates::between(&prev, &cur, secs);
        let mut backlog_raised = false;
        for (key, why) in evidence(&prev, &cur, &r) {
            let changed = run.step(key, &why, &cur.netns)?;
            backlog_raised |= changed && matches!(key, Key::Somaxconn | Key::TcpMaxSynBacklog);
        }
        if backlog_raised {
            relisten(root, &cur, &a);
        }
        n += 1;
        if a.count.is_some_and(|c| n >= c) {
            return Ok(report::exit::OK);
        }
        prev = cur;
    }
}

/// Tell the server to call listen() again so the raised limits reach its listeners.
fn relisten(root: &Path, b: &Sample, a: &Args) {
    let pids = servers(root, b, &a.name);
    if a.no_signal || root != Path::new("/") || pids.is_empty() {
        log(&format!(
            "a listener keeps the backlog it was created with: the raised limits reach it when {} calls listen() again (SIGHUP) or restarts{}",
            a.name,
            if pids.is_empty() { "; no such process owns a listener here" } else { "" }
        ));
        return;
    }
    for pid in pids {
        let Ok(p) = i32::try_from(pid) else { continue };
        // SAFETY: kill() with a valid signal number has no memory-safety preconditions.
        let rc = unsafe { libc::kill(p, libc::SIGHUP) };
        if rc == 0 {
            log(&format!(
                "sent SIGHUP to {} (pid {pid}) so it calls listen() again: a listener keeps the backlog it was created with",
                a.name
            ));
        } else {
            log(&format!(
                "could not signal {} (pid {pid}): {}; restart it for the new backlog to apply",
                a.name,
                std::io::Error::last_os_error()
            ));
        }
    }
}
