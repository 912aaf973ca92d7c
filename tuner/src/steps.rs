//! The next value to try for a key that a rule found too small: one step, the same for the
//! remedy `diagnose` prints and for what `auto` writes (which also stops at the profile's value).
//! Steps follow the public advice they cite; they never go down.

use crate::thresholds::Rule;

/// Keys with a step. A key without one is set straight to the profile's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Key {
    Somaxconn,
    TcpMaxSynBacklog,
    NetdevMaxBacklog,
    NetdevBudget,
    NetdevBudgetUsecs,
}

impl Key {
    pub const ALL: [Key; 5] = [
        Key::Somaxconn,
        Key::TcpMaxSynBacklog,
        Key::NetdevMaxBacklog,
        Key::NetdevBudget,
        Key::NetdevBudgetUsecs,
    ];

    pub const fn sysctl(self) -> &'static str {
        match self {
            Key::Somaxconn => "net.core.somaxconn",
            Key::TcpMaxSynBacklog => "net.ipv4.tcp_max_syn_backlog",
            Key::NetdevMaxBacklog => "net.core.netdev_max_backlog",
            Key::NetdevBudget => "net.core.netdev_budget",
            Key::NetdevBudgetUsecs => "net.core.netdev_budget_usecs",
        }
    }

    /// The value one step above `current` (`None`: the kernel default, when unreadable).
    pub fn next(self, current: Option<i64>) -> i64 {
        match self {
            // Doubling, and at least the level below which somaxconn_low warns.
            Key::Somaxconn => {
                let floor = Rule::SomaxconnLow.threshold().warn.unwrap_or(0.0) as i64;
                current.unwrap_or(floor).saturating_mul(2).max(floor)
            }
            // Kernel default 1024 (128 on tiny boxes); doubling, at least 8192.
            Key::TcpMaxSynBacklog => current.unwrap_or(1024).saturating_mul(2).max(8192),
            // Kernel default 1000; bpftune doubles it when 1/16 of the backlog drops.
            Key::NetdevMaxBacklog => current.unwrap_or(1000).saturating_mul(2).max(2000),
            // Netdata: raise netdev_budget from 300 in steps of 100 and re-test.
            Key::NetdevBudget => current.unwrap_or(300).saturating_add(100),
            // Kernel default 2000 us (8000 on 6.x); one more default's worth per step.
            Key::NetdevBudgetUsecs => current.unwrap_or(2000).saturating_add(2000),
        }
    }
}
