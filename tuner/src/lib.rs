//! corestream-tune: reads what the kernel is doing to an edge box and changes it safely.
//!
//! Data flow: `probe` (read /proc and /sys beneath `--root`) -> two `Sample`s -> `rates` (once)
//! -> `rules` (by family, keyed by `thresholds::Rule`) -> `finding`s; `profile` + current
//! values -> `plan` -> `cmd::{plan, apply, check, rollback}`, each returning a report value that
//! `report` prints as text or JSON. Every file read or written is named in `paths`.

// `say!` (corestream_common): stderr lines that never panic.
#[macro_use]
extern crate corestream_common;

pub mod backup;
pub mod cli;
pub mod cmd;
pub mod diagnose;
pub mod exporter;
pub mod finding;
pub mod metrics;
pub mod nofile;
pub mod paths;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod rates;
pub mod report;
pub mod rps;
pub mod rules;
pub mod softirq;
pub mod steps;
pub mod sysctl;
pub mod thresholds;
pub mod watch;
