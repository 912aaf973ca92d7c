//! corestream-tune: reads what the kernel is doing to an edge box (probes, diagnose, watch,
//! softirq) and changes it safely (profile, plan, apply, check, rollback).
//!
//! Every probe takes a root directory (`--root`, default `/`) so tests run on a fake tree.

pub mod backup;
pub mod cli;
pub mod diagnose;
pub mod nofile;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod rps;
pub mod rules;
pub mod softirq;
pub mod sysctl;
pub mod watch;
