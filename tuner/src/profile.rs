//! The tuning profile: which kernel settings an edge box needs, why, and how their values compare.
//!
//! The built-in `edge` profile is the single source of truth; `sysctl.d/60-corestream.conf` and
//! `limits.d/90-corestream.conf` at the repository root are [`render_sysctl_d`] and
//! [`render_limits_d`] of it, and a test keeps them equal.
//!
//! # Profile file format (`--profile FILE`)
//! A superset of `sysctl.d(5)`: one `key = value` per line; `#` or `;` start a comment (whole
//! line, or after the value); blank lines are ignored. Extra keys:
//! - `nofile = N`: RLIMIT_NOFILE for the service (limits.d and the systemd drop-in).
//! - `base = edge` (default) layers the file over the built-in profile; `base = none` starts empty.
//! - `key = skip` drops a key of the base (e.g. global keys a container cannot set).
//!
//! A key's reason is its trailing comment, or else the comment lines right above it.

use anyhow::{bail, Context};
use std::fmt::Write as _;
use std::path::Path;

/// Whether a setting is private to a network namespace (each container has its own copy, with
/// kernel defaults, not the host's) or one value for the whole machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    #[serde(rename = "per-netns")]
    PerNetns,
    #[serde(rename = "global")]
    Global,
    /// A NIC queue attribute under /sys/class/net (RPS).
    #[serde(rename = "device")]
    Device,
}

impl Scope {
    /// Inverse of [`Scope::label`] (backups store the label); unknown labels count as per-netns.
    pub fn from_label(s: &str) -> Scope {
        match s {
            "global" => Scope::Global,
            "device" => Scope::Device,
            _ => Scope::PerNetns,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::PerNetns => "per-netns",
            Scope::Global => "global",
            Scope::Device => "device",
        }
    }
}

/// How a value is spelled and which direction is "more".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One integer within inclusive bounds; higher is more.
    Int { min: u64, max: u64 },
    /// `min default max` (tcp_rmem, tcp_wmem; tcp_mem in pages): non-decreasing, each field
    /// compared on its own; higher is more.
    Triple,
    /// `low high` port range: a wider range is more (lower low, higher high).
    Range,
    /// Hex CPU bitmask as in rps_cpus (`3`, `ff,ffffffff`): more CPUs is more.
    Mask,
    /// One word from a fixed list (a qdisc, a congestion control): no "more", only equal or
    /// not. Stored as the word's index in the list.
    Choice(&'static [&'static str]),
}

/// Queueing disciplines `net.core.default_qdisc` accepts.
pub const QDISCS: &[&str] = &[
    "pfifo_fast",
    "fq",
    "fq_codel",
    "cake",
    "sfq",
    "pfifo",
    "bfifo",
    "fq_pie",
    "noqueue",
];
/// TCP congestion controls Linux ships (a write loads the module if it is built).
pub const CONGESTION: &[&str] = &[
    "reno", "cubic", "bbr", "htcp", "dctcp", "westwood", "vegas", "illinois", "hybla", "scalable",
];

/// An opt-in knob: not in the `edge` profile because it trades something away; a profile file
/// may set it (`key = value`), and `diagnose` suggests it with its cost.
#[derive(Clone, Copy, Debug)]
pub struct OptIn {
    pub key: &'static str,
    pub value: &'static str,
    pub gain: &'static str,
    pub cost: &'static str,
}

#[rustfmt::skip]
pub const OPT_IN: &[OptIn] = &[
    OptIn { key: "net.core.default_qdisc", value: "fq", gain: "per-flow fair queueing and pacing in the qdisc, which bbr uses instead of pacing inside TCP", cost: "per-flow state in the qdisc (a few hundred bytes per active flow); applies to qdiscs created afterwards: `tc qdisc replace dev NIC root fq` for running NICs" },
    OptIn { key: "net.ipv4.tcp_congestion_control", value: "bbr", gain: "models bandwidth and RTT instead of reacting to loss: higher throughput to lossy and far viewers", cost: "less fair to cubic flows sharing a bottleneck; wants fq for pacing" },
    OptIn { key: "net.ipv4.tcp_notsent_lowat", value: "131072", gain: "at most 128 KiB unsent per socket waits in the kernel, so memory per viewer stays small and HTTP/2 priorities act sooner", cost: "more wakeups (EPOLLOUT more often) for bulk senders" },
    OptIn { key: "net.core.busy_poll", value: "50", gain: "poll() spins up to 50 us on the NIC queue instead of sleeping for an interrupt: lower latency", cost: "burns CPU while spinning; only worth it with a core to spare per busy queue" },
    OptIn { key: "net.core.busy_read", value: "50", gain: "blocking reads spin up to 50 us on the NIC queue: lower latency for request/response", cost: "burns CPU while spinning" },
    OptIn { key: "nic.napi_defer_hard_irqs", value: "2", gain: "after a NAPI poll finds nothing, the NIC's interrupt stays masked for 2 more polls: fewer interrupts under load", cost: "with gro_flush_timeout, up to that much added latency when traffic is light" },
    OptIn { key: "nic.gro_flush_timeout", value: "200000", gain: "GRO holds packets up to 200 us to merge more of them, and the deferred polls above run on this timer", cost: "up to 200 us of added receive latency" },
];

pub fn opt_in(key: &str) -> Option<&'static OptIn> {
    OPT_IN.iter().find(|o| o.key == key)
}

/// One key the tuner knows: its scope and shape. Profiles may only name these keys, so a typo
/// is an error instead of a silently ignored line.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    pub key: &'static str,
    pub scope: Scope,
    pub shape: Shape,
}

const INT_MAX: u64 = i32::MAX as u64;
const BOOL: Shape = Shape::Int { min: 0, max: 1 };
const POS: Shape = Shape::Int {
    min: 1,
    max: INT_MAX,
};

/// Scopes as on Linux 6.x: the net.core queue/budget keys, tcp_mem and fs.* exist only in the
/// initial network namespace (a child namespace does not even show them); the rest are per
/// namespace. Checked with `unshare -n ls /proc/sys/net/...` on this machine's 6.18 kernel.
#[rustfmt::skip]
pub const CATALOGUE: &[KeyInfo] = &[
    KeyInfo { key: "net.core.somaxconn", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.core.netdev_max_backlog", scope: Scope::Global, shape: POS },
    KeyInfo { key: "net.core.netdev_budget", scope: Scope::Global, shape: POS },
    KeyInfo { key: "net.core.netdev_budget_usecs", scope: Scope::Global, shape: POS },
    KeyInfo { key: "net.core.rps_sock_flow_entries", scope: Scope::Global, shape: Shape::Int { min: 0, max: INT_MAX } },
    KeyInfo { key: "net.core.rmem_max", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.core.wmem_max", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.core.rmem_default", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.core.wmem_default", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.ipv4.tcp_max_syn_backlog", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.ipv4.tcp_syncookies", scope: Scope::PerNetns, shape: Shape::Int { min: 0, max: 2 } },
    KeyInfo { key: "net.ipv4.tcp_migrate_req", scope: Scope::PerNetns, shape: BOOL },
    KeyInfo { key: "net.ipv4.tcp_mem", scope: Scope::Global, shape: Shape::Triple },
    KeyInfo { key: "net.ipv4.tcp_rmem", scope: Scope::PerNetns, shape: Shape::Triple },
    KeyInfo { key: "net.ipv4.tcp_wmem", scope: Scope::PerNetns, shape: Shape::Triple },
    KeyInfo { key: "net.ipv4.ip_local_port_range", scope: Scope::PerNetns, shape: Shape::Range },
    KeyInfo { key: "net.ipv4.tcp_max_tw_buckets", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.ipv4.tcp_max_orphans", scope: Scope::Global, shape: POS },
    KeyInfo { key: "net.ipv4.tcp_fin_timeout", scope: Scope::PerNetns, shape: POS },
    KeyInfo { key: "net.ipv4.tcp_notsent_lowat", scope: Scope::PerNetns, shape: Shape::Int { min: 1, max: u32::MAX as u64 } },
    KeyInfo { key: "net.core.default_qdisc", scope: Scope::Global, shape: Shape::Choice(QDISCS) },
    KeyInfo { key: "net.ipv4.tcp_congestion_control", scope: Scope::PerNetns, shape: Shape::Choice(CONGESTION) },
    KeyInfo { key: "net.core.busy_poll", scope: Scope::Global, shape: Shape::Int { min: 0, max: INT_MAX } },
    KeyInfo { key: "net.core.busy_read", scope: Scope::Global, shape: Shape::Int { min: 0, max: INT_MAX } },
    KeyInfo { key: "net.netfilter.nf_conntrack_max", scope: Scope::Global, shape: POS },
    // Per NIC (`/sys/class/net/NIC/...`), applied to every hardware NIC: see NIC_PREFIX.
    KeyInfo { key: "nic.napi_defer_hard_irqs", scope: Scope::Device, shape: Shape::Int { min: 0, max: INT_MAX } },
    KeyInfo { key: "nic.gro_flush_timeout", scope: Scope::Device, shape: Shape::Int { min: 0, max: u32::MAX as u64 } },
    KeyInfo { key: "net.ipv4.tcp_slow_start_after_idle", scope: Scope::PerNetns, shape: BOOL },
    KeyInfo { key: "net.ipv4.tcp_tw_reuse", scope: Scope::PerNetns, shape: Shape::Int { min: 0, max: 2 } },
    KeyInfo { key: "fs.file-max", scope: Scope::Global, shape: POS },
    KeyInfo { key: "fs.nr_open", scope: Scope::Global, shape: POS },
];

/// Profile keys `nic.ATTR` set `/sys/class/net/NIC/ATTR` on every hardware NIC.
pub const NIC_PREFIX: &str = "nic.";

pub fn key_info(key: &str) -> Option<&'static KeyInfo> {
    CATALOGUE.iter().find(|k| k.key == key)
}

/// A value as a list of numbers; what they mean depends on the [`Shape`] (a mask is stored as
/// 64-bit words, least significant first).
pub type Value = Vec<u64>;

/// Parse a value as the kernel prints it (or as a profile spells it).
pub fn parse_value(shape: Shape, text: &str) -> Result<Value, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let nums = |n: usize| -> Result<Value, String> {
        if fields.len() != n {
            return Err(format!(
                "expected {n} whole number{} separated by spaces, got {:?}",
                if n == 1 { "" } else { "s" },
                text.trim()
            ));
        }
        fields
            .iter()
            .map(|f| {
                f.parse::<u64>()
                    .map_err(|_| format!("{f:?} is not a non-negative whole number"))
            })
            .collect()
    };
    match shape {
        Shape::Int { min, max } => {
            let v = nums(1)?;
            if v[0] < min || v[0] > max {
                return Err(format!("{} is out of range {min}..={max}", v[0]));
            }
            Ok(v)
        }
        Shape::Triple => {
            let v = nums(3)?;
            if v[0] > v[1] || v[1] > v[2] {
                return Err(format!("fields must be min <= default <= max, got {v:?}"));
            }
            if v[2] > i64::MAX as u64 {
                return Err(format!("{} is too large", v[2]));
            }
            Ok(v)
        }
        Shape::Range => {
            let v = nums(2)?;
            if v[0] >= v[1] || v[1] > 65535 || v[0] == 0 {
                return Err(format!(
                    "port range must be low < high within 1..=65535, got {} {}",
                    v[0], v[1]
                ));
            }
            Ok(v)
        }
        Shape::Mask => parse_mask(text),
        Shape::Choice(words) => {
            let t = text.trim();
            words
                .iter()
                .position(|w| *w == t)
                .map(|i| vec![i as u64])
                .ok_or_else(|| format!("{t:?} is not one of {}", words.join(", ")))
        }
    }
}

fn parse_mask(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty CPU mask".into());
    }
    // Kernel masks are comma-separated 32-bit hex groups, most significant first.
    let mut words: Vec<u64> = Vec::new();
    for (i, group) in t.rsplit(',').enumerate() {
        let g = u32::from_str_radix(group, 16)
            .map_err(|_| format!("{group:?} is not a hex CPU mask group"))?;
        let w = i / 2;
        if words.len() <= w {
            words.push(0);
        }
        words[w] |= u64::from(g) << (32 * (i % 2));
    }
    Ok(trim_words(words))
}

fn trim_words(mut words: Vec<u64>) -> Value {
    while words.len() > 1 && words.last() == Some(&0) {
        words.pop();
    }
    if words.is_empty() {
        words.push(0);
    }
    words
}

/// Mask of the given CPU ids.
pub fn mask_of(cpus: &[u32]) -> Value {
    let mut words = vec![0u64; 1];
    for &c in cpus {
        let w = (c / 64) as usize;
        if words.len() <= w {
            words.resize(w + 1, 0);
        }
        words[w] |= 1 << (c % 64);
    }
    trim_words(words)
}

/// Spell a value the way the kernel accepts it.
pub fn format_value(shape: Shape, v: &[u64]) -> String {
    match shape {
        Shape::Mask => {
            let mut groups: Vec<u32> = Vec::new();
            for w in v {
                groups.push((w & 0xffff_ffff) as u32);
                groups.push((w >> 32) as u32);
            }
            while groups.len() > 1 && groups.last() == Some(&0) {
                groups.pop();
            }
            let mut s = String::new();
            for (i, g) in groups.iter().rev().enumerate() {
                if i == 0 {
                    let _ = write!(s, "{g:x}");
                } else {
                    let _ = write!(s, ",{g:08x}");
                }
            }
            s
        }
        Shape::Choice(words) => v
            .first()
            .and_then(|&i| words.get(usize::try_from(i).ok()?))
            .map(|w| w.to_string())
            .unwrap_or_default(),
        _ => v
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// How a current value stands against a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Some field is below the target (or the range is narrower, or CPUs are missing).
    pub below: bool,
    /// Some field is above the target: writing the target would lower it.
    pub above: bool,
    /// Each field at whichever of current and target is more: what a raise-only apply writes.
    pub merged: Value,
}

/// Compare field by field. For a range "more" is wider: the low end counts as below when the
/// current low is higher than the target's.
pub fn compare(shape: Shape, current: &[u64], target: &[u64]) -> Comparison {
    match shape {
        Shape::Mask => {
            let n = current.len().max(target.len());
            let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
            let mut below = false;
            let mut above = false;
            let mut merged = Vec::with_capacity(n);
            for i in 0..n {
                let (c, t) = (at(current, i), at(target, i));
                below |= t & !c != 0;
                above |= c & !t != 0;
                merged.push(c | t);
            }
            Comparison {
                below,
                above,
                merged: trim_words(merged),
            }
        }
        // A word is either the target or not: writing it lowers nothing.
        Shape::Choice(_) => Comparison {
            below: current != target,
            above: false,
            merged: target.to_vec(),
        },
        _ => {
            let mut below = false;
            let mut above = false;
            let mut merged = Vec::with_capacity(target.len());
            for (i, (&c, &t)) in current.iter().zip(target).enumerate() {
                let lower_is_more = shape == Shape::Range && i == 0;
                let (more, less) = if lower_is_more {
                    (c < t, c > t)
                } else {
                    (c > t, c < t)
                };
                below |= less;
                above |= more;
                merged.push(if more { c } else { t });
            }
            if current.len() != target.len() {
                // A kernel printing a different number of fields than we expect: treat as
                // needing the target written.
                below = true;
                merged = target.to_vec();
            }
            Comparison {
                below,
                above,
                merged,
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub reason: String,
}

impl Entry {
    pub fn info(&self) -> &'static KeyInfo {
        // Entries are only built from catalogue keys (parse checks; the built-in is tested).
        key_info(&self.key).unwrap_or(&CATALOGUE[0])
    }
    pub fn value_text(&self) -> String {
        format_value(self.info().shape, &self.value)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Where it came from, for messages: `edge (built-in)` or `edge + /path/file`.
    pub name: String,
    pub sysctls: Vec<Entry>,
    /// RLIMIT_NOFILE for corestream.service (and the service user's login sessions).
    pub nofile: Option<(u64, String)>,
}

/// The service user named in limits.d.
pub const SERVICE_USER: &str = "corestream";

/// The built-in `edge` profile: ready for 50k+ mostly idle keep-alive viewers.
pub fn edge() -> Profile {
    let e = |key: &str, value: &[u64], reason: &str| Entry {
        key: key.to_string(),
        value: value.to_vec(),
        reason: reason.to_string(),
    };
    Profile {
        name: "edge (built-in)".into(),
        sysctls: vec![
            e("net.core.somaxconn", &[65535],
              "Accept queue = min(listen backlog, somaxconn); 4096 (the 5.4+ default) overflows when 50k viewers reconnect after a restart (ListenOverflows)."),
            e("net.core.netdev_max_backlog", &[16384],
              "Per-CPU input queue before the stack; when full, packets drop (softnet_stat column 2). 1000 is too short for a NIC burst at 10G+."),
            e("net.core.netdev_budget", &[600],
              "Packets one NET_RX softirq may process before yielding; 300 runs out under load (time_squeeze). Netdata: raise in steps of 100 and re-test."),
            e("net.core.netdev_budget_usecs", &[8000],
              "Time limit of the same NET_RX round (microseconds); older kernels default to 2000, squeezing before the packet budget is used."),
            e("net.ipv4.tcp_max_syn_backlog", &[65535],
              "SYN queue limit, consulted only with syncookies off (then SYNs drop at 3/4 full); with cookies on the accept backlog bounds it. Matches somaxconn so turning cookies off does not drop first."),
            e("net.ipv4.tcp_syncookies", &[1],
              "A full SYN queue answers with cookies instead of dropping SYNs (TCPReqQFullDoCookies), so a connect storm degrades rather than fails."),
            e("net.ipv4.tcp_migrate_req", &[1],
              "When one SO_REUSEPORT listener closes (worker or process restart), its queued connections move to a sibling listener instead of being reset."),
            e("fs.file-max", &[2097152],
              "System-wide open files (ENFILE): 50k sockets per process times a few processes plus segment files, with headroom."),
            e("fs.nr_open", &[1048576],
              "Ceiling on any process's RLIMIT_NOFILE; must stay above the service's nofile."),
            e("net.ipv4.tcp_mem", &[196608, 262144, 393216],
              "Pages (4 KiB) for all TCP buffers: pressure at 1 GiB, hard cap 1.5 GiB. 50k mostly idle sockets hold ~0 buffer; ~5k active senders x ~200 KiB queued = ~1 GiB. Bigger boxes default higher and keep theirs."),
            e("net.ipv4.tcp_rmem", &[4096, 131072, 6291456],
              "Receive buffer min/default/max per socket. Viewers send small requests; a 6 MiB autotuning ceiling is plenty (16 MiB x 50k = 800 GB is fantasy, and tcp_mem caps the sum anyway)."),
            e("net.ipv4.tcp_wmem", &[4096, 16384, 4194304],
              "Send buffer min/default/max per socket: 4 MiB covers 100 ms x 320 Mbit/s per viewer; idle sockets hold nothing. No 16 MiB maxima: 50k x 16 MiB = 800 GB."),
            e("net.ipv4.ip_local_port_range", &[15000, 65000],
              "Ephemeral ports for outgoing connections (origin fetches); viewers' inbound connections use none. Wider range, ports below 15000 left for services."),
        ],
        nofile: Some((
            262144,
            "Open files per corestream process: one fd per connection plus open segments; systemd's default soft limit of 1024 stops a server at ~1000 viewers.".into(),
        )),
    }
}

/// Parse a profile file's text over `base` (ignored when the file says `base = none`).
pub fn parse(text: &str, origin: &str, base: Profile) -> anyhow::Result<Profile> {
    let mut profile = base;
    let mut started = false;
    let mut base_none = false;
    let mut pending_comment: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let here = || format!("{origin}:{line_no}");
        let line = raw.trim();
        if line.is_empty() {
            pending_comment.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
            pending_comment.push(c.trim().to_string());
            continue;
        }
        let (body, trailing) = match line.find(['#', ';']) {
            Some(pos) => (&line[..pos], Some(line[pos + 1..].trim())),
            None => (line, None),
        };
        // sysctl.d allows a leading '-' meaning "ignore failures"; accept and drop it.
        let body = body.trim().trim_start_matches('-');
        let Some((k, v)) = body.split_once('=') else {
            bail!("{}: expected `key = value`, got {raw:?}", here());
        };
        // sysctl.d also accepts '/' as the separator.
        let key = k.trim().replace('/', ".");
        let value = v.trim();
        let reason = match trailing {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => pending_comment.join(" "),
        };
        pending_comment.clear();
        if key == "base" {
            if started {
                bail!("{}: `base = ...` must come before any key", here());
            }
            match value {
                "edge" => {}
                "none" => {
                    profile.sysctls.clear();
                    profile.nofile = None;
                }
                other => bail!(
                    "{}: unknown base profile {other:?}; use `base = edge` or `base = none`",
                    here()
                ),
            }
            base_none = value == "none";
            started = true;
            continue;
        }
        started = true;
        if key == "nofile" {
            if value == "skip" {
                profile.nofile = None;
                continue;
            }
            let n: u64 = value.parse().map_err(|_| {
                anyhow::anyhow!("{}: nofile must be a whole number, got {value:?}", here())
            })?;
            if !(1024..=INT_MAX).contains(&n) {
                bail!("{}: nofile {n} is out of range 1024..={INT_MAX}", here());
            }
            profile.nofile = Some((n, reason));
            continue;
        }
        let Some(info) = key_info(&key) else {
            let known: Vec<&str> = CATALOGUE.iter().map(|k| k.key).collect();
            bail!(
                "{}: unknown key {key:?}; known keys: nofile, {}",
                here(),
                known.join(", ")
            );
        };
        if value == "skip" {
            profile.sysctls.retain(|e| e.key != key);
            continue;
        }
        let parsed = parse_value(info.shape, value)
            .map_err(|e| anyhow::anyhow!("{}: bad value for {key}: {e}", here()))?;
        match profile.sysctls.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = parsed;
                if !reason.is_empty() {
                    e.reason = reason;
                }
            }
            None => profile.sysctls.push(Entry {
                key,
                value: parsed,
                reason,
            }),
        }
    }
    let nr_open = profile
        .sysctls
        .iter()
        .find(|e| e.key == "fs.nr_open")
        .map(|e| e.value[0]);
    if let (Some((n, _)), Some(cap)) = (&profile.nofile, nr_open) {
        if *n > cap {
            bail!(
                "{origin}: nofile = {n} is above fs.nr_open = {cap}, the kernel's ceiling for any \
                 process's open-file limit; systemd would fail to start the service. Lower nofile or raise fs.nr_open"
            );
        }
    }
    profile.name = if base_none {
        origin.to_string()
    } else {
        format!("edge + {origin}")
    };
    Ok(profile)
}

/// The built-in profile, or it with `file` layered over (or replacing it, `base = none`).
pub fn load(file: Option<&Path>) -> anyhow::Result<Profile> {
    let base = edge();
    match file {
        None => Ok(base),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read profile file {}", p.display()))?;
            parse(&text, &p.display().to_string(), base)
        }
    }
}

/// [`load`] for a command line: a profile file that cannot be read or parsed is a usage error
/// (the user named it), exit 64.
pub fn load_for_cli(file: Option<&Path>) -> anyhow::Result<Profile> {
    load(file).map_err(|e| crate::report::Usage(format!("{e:#}")).into())
}

/// Wrap a reason into `# ` comment lines of at most ~96 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
}

/// The sysctl.d file for `entries` (`systemd-sysctl` reads it at boot). Reasons go on comment
/// lines above each key because sysctl.d has no trailing comments.
pub fn render_sysctl_d(profile_name: &str, entries: &[Entry], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Corestream kernel profile: {profile_name}. Generated by `corestream-tune profile`; edit the profile, not this file."
    );
    out.push_str(
        "# Applied at boot by systemd-sysctl in lexical order: a later file (e.g. 99-*.conf) overrides these.\n",
    );
    out.push_str("# Scope: per-netns keys apply to the network namespace that loads them (a container has its own);\n");
    out.push_str("# global keys can only be set on the host.\n");
    for n in notes {
        comment(&mut out, n);
    }
    for e in entries.iter().filter(|e| !e.key.starts_with(NIC_PREFIX)) {
        out.push('\n');
        let info = e.info();
        comment(&mut out, &format!("[{}] {}", info.scope.label(), e.reason));
        let _ = writeln!(out, "{} = {}", e.key, e.value_text());
    }
    out
}

/// limits.d for the service user's login sessions (pam_limits). systemd services ignore it.
pub fn render_limits_d(nofile: u64, reason: &str) -> String {
    let mut out = String::new();
    out.push_str(
        "# Corestream: open-file limit for the corestream user's login sessions (pam_limits).\n",
    );
    out.push_str("# systemd services do NOT read limits.d: corestream.service gets LimitNOFILE= from its drop-in\n");
    out.push_str("# (/etc/systemd/system/corestream.service.d/nofile.conf, written by `corestream-tune apply --persist`).\n");
    comment(&mut out, reason);
    let _ = writeln!(out, "{SERVICE_USER} soft nofile {nofile}");
    let _ = writeln!(out, "{SERVICE_USER} hard nofile {nofile}");
    out
}

/// systemd drop-in raising corestream.service's RLIMIT_NOFILE (soft and hard).
pub fn render_systemd_dropin(nofile: u64) -> String {
    format!(
        "# Written by corestream-tune apply --persist. systemd ignores limits.d for services; this is\n\
         # what raises corestream.service's open-file limit (soft and hard). Needs a daemon-reload and\n\
         # a service restart to take effect.\n\
         [Service]\n\
         LimitNOFILE={nofile}\n"
    )
}

/// Parse `<user> soft nofile N` out of a limits.d file.
pub fn parse_limits_d(text: &str) -> Option<(u64, u64)> {
    let mut soft = None;
    let mut hard = None;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 4 && f[0] == SERVICE_USER && f[2] == "nofile" {
            let n = f[3].parse().ok();
            match f[1] {
                "soft" => soft = n,
                "hard" => hard = n,
                "-" => {
                    soft = n;
                    hard = n;
                }
                _ => {}
            }
        }
    }
    Some((soft?, hard?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_uses_only_catalogue_keys_and_valid_values() {
        for e in edge().sysctls {
            let info = key_info(&e.key).expect("catalogue key");
            let text = format_value(info.shape, &e.value);
            assert_eq!(
                parse_value(info.shape, &text).unwrap(),
                e.value,
                "{}",
                e.key
            );
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn masks_round_trip() {
        for (text, cpus) in [
            ("3", vec![0, 1]),
            ("1", vec![0]),
            ("1,00000000", vec![32]),
            ("80000000,00000001", vec![0, 63]),
            ("1,00000000,00000000", vec![64]),
        ] {
            let v = parse_value(Shape::Mask, text).unwrap();
            assert_eq!(v, mask_of(&cpus), "{text}");
            assert_eq!(format_value(Shape::Mask, &v), text);
        }
        assert_eq!(
            parse_value(Shape::Mask, "00000000,00000003").unwrap(),
            vec![3]
        );
        assert_eq!(format_value(Shape::Mask, &[0]), "0");
        assert!(parse_value(Shape::Mask, "xyz").is_err());
    }

    #[test]
    fn compare_fields() {
        let c = compare(
            Shape::Triple,
            &[4096, 131072, 33554432],
            &[4096, 131072, 6291456],
        );
        assert!(!c.below && c.above);
        assert_eq!(c.merged, vec![4096, 131072, 33554432]);
        let c = compare(Shape::Triple, &[100, 200, 300], &[50, 400, 200]);
        assert!(c.below && c.above);
        assert_eq!(c.merged, vec![100, 400, 300]);
        let c = compare(Shape::Range, &[32768, 60999], &[15000, 65000]);
        assert!(c.below && !c.above);
        let c = compare(Shape::Range, &[1024, 65535], &[15000, 65000]);
        assert!(!c.below && c.above);
        let c = compare(Shape::Range, &[20000, 65535], &[15000, 65000]);
        assert!(c.below && c.above);
        assert_eq!(c.merged, vec![15000, 65535]);
        let c = compare(Shape::Mask, &[1], &[3]);
        assert!(c.below && !c.above);
        assert_eq!(c.merged, vec![3]);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let err = |t: &str| format!("{:#}", parse(t, "p.conf", edge()).unwrap_err());
        assert!(err("\n\nnet.core.somaxcon = 5\n")
            .contains("p.conf:3: unknown key \"net.core.somaxcon\""));
        assert!(
            err("net.core.somaxconn = lots").contains("p.conf:1: bad value for net.core.somaxconn")
        );
        assert!(err("net.ipv4.tcp_rmem = 1 2").contains("expected 3 whole numbers"));
        assert!(err("net.ipv4.tcp_rmem = 3 2 1").contains("min <= default <= max"));
        assert!(err("net.ipv4.tcp_migrate_req = 2").contains("out of range 0..=1"));
        assert!(err("somaxconn").contains("p.conf:1: expected `key = value`"));
        assert!(err("nofile = 10").contains("out of range"));
        assert!(err("net.core.somaxconn = 1\nbase = none").contains("must come before"));
        assert!(err("nofile = 2000000").contains("nofile = 2000000 is above fs.nr_open = 1048576"));
        assert!(parse("fs.nr_open = 4194304\nnofile = 2000000", "p", edge()).is_ok());
    }

    #[test]
    fn parse_overrides_extends_and_replaces() {
        let p = parse(
            "net.core.somaxconn = 8192 # mine\n# why\nnet.ipv4.tcp_fin_timeout = 30\nfs.file-max = skip\nnofile = 65536\n",
            "f",
            edge(),
        )
        .unwrap();
        let get = |k: &str| p.sysctls.iter().find(|e| e.key == k).cloned();
        assert_eq!(get("net.core.somaxconn").unwrap().value, vec![8192]);
        assert_eq!(get("net.core.somaxconn").unwrap().reason, "mine");
        assert_eq!(get("net.ipv4.tcp_fin_timeout").unwrap().reason, "why");
        assert!(get("fs.file-max").is_none());
        assert_eq!(p.nofile.as_ref().unwrap().0, 65536);
        let p = parse("base = none\nnet/core/somaxconn = 100\n", "f", edge()).unwrap();
        assert_eq!(p.sysctls.len(), 1);
        assert!(p.nofile.is_none());
    }

    #[test]
    fn rendered_sysctl_d_parses_back_to_the_profile() {
        let p = edge();
        let text = render_sysctl_d(&p.name, &p.sysctls, &[]);
        let back = parse(&format!("base = none\n{text}"), "r", edge()).unwrap();
        assert_eq!(back.sysctls.len(), p.sysctls.len());
        for (a, b) in back.sysctls.iter().zip(&p.sysctls) {
            assert_eq!(a.key, b.key);
            assert_eq!(a.value, b.value);
        }
        let (n, why) = p.nofile.unwrap();
        assert_eq!(parse_limits_d(&render_limits_d(n, &why)), Some((n, n)));
        assert_eq!(
            crate::probe::unit::parse_limit_nofile(&render_systemd_dropin(n)),
            vec![Some(n)]
        );
    }
}
