//! Timeouts: one table of connection phases (what a connection waits for, how long it may,
//! and what happens then) and one timer wheel per worker.
//!
//! The wheel has 250 ms ticks and O(1) arm and cancel: entries are never removed, a stale
//! one is recognised when its slot comes round (its tick no longer equals the connection's
//! `armed` tick), so a tick costs O(entries in its slot), not O(connections).

use crate::config::Config;
use std::time::{Duration, Instant};

/// Timer resolution: deadlines fire within one tick after they pass.
pub const TICK: Duration = Duration::from_millis(250);
/// 1024 x 250 ms = 256 s spans every default timeout in one round; longer deadlines stay in
/// their slot for extra rounds.
const SLOTS: usize = 1024;
/// How long a closing connection may keep sending us bytes before we close anyway.
const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a response may stay blocked, its unsent queue not moving, on a peer that has
/// closed its side. A peer that went away with its window shut (its FIN came while it was
/// not reading, common under TCP memory pressure) only answers the kernel's zero-window
/// probes, for up to tcp_fin_timeout (a minute): without this, the socket sits in
/// CLOSE-WAIT all that time with its fd and its unsent bytes. A half-closed peer that still
/// reads drains the queue and is never cut.
const PEER_CLOSED_STALL: Duration = Duration::from_secs(2);

/// What a connection is waiting for, which decides its timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// A request head: from accept, or from the first byte of a head.
    Head,
    /// Keep-alive between requests.
    Idle,
    /// The peer to take the response (no write progress is a stall).
    Send,
    /// The peer to take the response, blocked on it after it closed its side.
    SendPeerClosed,
    /// The peer to close after we shut our side.
    Linger,
    /// A playlist or part to change (LL-HLS): the deadline is the request's own.
    Parked,
}

/// What happens when a phase's deadline passes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expiry {
    /// Close, counted in `corestream_connections_closed_total{reason}` and
    /// `corestream_timeouts_total{kind}` under these labels.
    Timeout {
        reason: &'static str,
        kind: &'static str,
    },
    /// Close as a normal end (a lingering close).
    Done,
    /// Run the request again to answer its timeout (503 playlist, 404 part).
    Rerun,
}

pub struct PhaseRow {
    pub phase: Phase,
    /// None: the deadline is not a phase-wide value (parked requests carry their own).
    pub timeout: fn(&Config) -> Option<Duration>,
    pub expiry: Expiry,
}

/// One row per phase, in `Phase` order; a new timeout is a new row (and its variant).
pub const PHASES: [PhaseRow; 6] = [
    PhaseRow {
        phase: Phase::Head,
        timeout: |c| Some(c.header_timeout),
        expiry: Expiry::Timeout {
            reason: "header_timeout",
            kind: "header",
        },
    },
    PhaseRow {
        phase: Phase::Idle,
        timeout: |c| Some(c.keepalive_timeout),
        expiry: Expiry::Timeout {
            reason: "idle_timeout",
            kind: "keepalive",
        },
    },
    PhaseRow {
        phase: Phase::Send,
        timeout: |c| Some(c.send_timeout),
        expiry: Expiry::Timeout {
            reason: "send_stall",
            kind: "send_stall",
        },
    },
    PhaseRow {
        phase: Phase::SendPeerClosed,
        timeout: |c| Some(c.send_timeout.min(PEER_CLOSED_STALL)),
        expiry: Expiry::Timeout {
            reason: "peer_gone",
            kind: "peer_gone",
        },
    },
    PhaseRow {
        phase: Phase::Linger,
        timeout: |_| Some(LINGER_TIMEOUT),
        expiry: Expiry::Done,
    },
    PhaseRow {
        phase: Phase::Parked,
        timeout: |_| None,
        expiry: Expiry::Rerun,
    },
];

impl Phase {
    pub fn row(self) -> &'static PhaseRow {
        &PHASES[self as usize]
    }
}

/// Ticks (rounded up, at least one) for a duration.
pub fn ticks(d: Duration) -> u32 {
    let t = d.as_millis().div_ceil(TICK.as_millis()).max(1);
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// Ticks for a wait given in seconds (LL-HLS hold times).
pub fn ticks_for_secs(secs: f64) -> u32 {
    ticks(Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX))
}

/// Each phase's timeout in ticks, from the configuration (u32::MAX: none).
pub fn phase_ticks(cfg: &Config) -> [u32; PHASES.len()] {
    // One tick more than the timeout: a deadline is checked at tick granularity and must
    // never fire early.
    PHASES.map(|row| (row.timeout)(cfg).map_or(u32::MAX, |d| ticks(d).saturating_add(1)))
}

pub struct Wheel {
    slots: Vec<Vec<(u32, u32)>>,
    /// Last tick whose slot has been processed.
    done: u32,
    start: Instant,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new(Instant::now())
    }
}

impl Wheel {
    pub fn new(start: Instant) -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            done: 1,
            start,
        }
    }

    /// The current tick (1 at start).
    pub fn now(&self) -> u32 {
        self.tick_at(Instant::now())
    }

    pub fn tick_at(&self, t: Instant) -> u32 {
        let elapsed = t.saturating_duration_since(self.start).as_millis() / TICK.as_millis();
        u32::try_from(elapsed).unwrap_or(u32::MAX - 1) + 1
    }

    /// Schedule `key` at tick `due` (never earlier than the next unprocessed tick); returns
    /// the tick used, which the caller keeps as the key's `armed` tick.
    pub fn schedule(&mut self, key: usize, due: u32) -> u32 {
        let due = due.max(self.done + 1);
        self.slots[due as usize % SLOTS].push((key as u32, due));
        due
    }

    /// Process every tick up to `now`: append each entry that came due as (key, due tick)
    /// to `out`, in tick order, and call `on_tick` for each tick passed. Entries for later
    /// rounds stay.
    pub fn advance(&mut self, now: u32, out: &mut Vec<(usize, u32)>, mut on_tick: impl FnMut(u32)) {
        while self.done < now {
            self.done += 1;
            let t = self.done;
            let slot = &mut self.slots[t as usize % SLOTS];
            slot.retain(|&(k, due)| {
                if due > t {
                    return true; // a later round
                }
                out.push((k as usize, due));
                false
            });
            // A processed slot is usually empty until its next round: give its memory back
            // instead of keeping every slot at its busiest size (1024 slots at 19k
            // connections would otherwise hold megabytes of stale capacity).
            if slot.capacity() > 2 * slot.len().max(16) {
                slot.shrink_to_fit();
            }
            on_tick(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel() -> Wheel {
        Wheel::new(Instant::now())
    }

    #[test]
    fn fires_in_order_and_not_early() {
        let mut w = wheel();
        assert_eq!(w.schedule(1, 5), 5);
        assert_eq!(w.schedule(2, 3), 3);
        assert_eq!(w.schedule(3, 5), 5);
        let mut out = Vec::new();
        w.advance(2, &mut out, |_| {});
        assert!(out.is_empty(), "nothing is due before tick 3");
        w.advance(4, &mut out, |_| {});
        assert_eq!(out, vec![(2, 3)]);
        out.clear();
        w.advance(5, &mut out, |_| {});
        assert_eq!(out, vec![(1, 5), (3, 5)]);
        out.clear();
        w.advance(100, &mut out, |_| {});
        assert!(out.is_empty(), "an entry fires once");
    }

    #[test]
    fn past_deadlines_go_to_the_next_tick() {
        let mut w = wheel();
        let mut out = Vec::new();
        w.advance(10, &mut out, |_| {});
        assert_eq!(
            w.schedule(7, 2),
            11,
            "a due tick already processed is moved forward"
        );
        w.advance(11, &mut out, |_| {});
        assert_eq!(out, vec![(7, 11)]);
    }

    #[test]
    fn deadlines_beyond_one_round_wait_for_their_round() {
        let mut w = wheel();
        let far = 2 + SLOTS as u32 + 5;
        w.schedule(9, far);
        let mut out = Vec::new();
        w.advance(far - 1, &mut out, |_| {});
        assert!(out.is_empty(), "same slot, earlier round: not yet");
        w.advance(far, &mut out, |_| {});
        assert_eq!(out, vec![(9, far)]);
    }

    #[test]
    fn every_tick_is_reported_once() {
        let mut w = wheel();
        let mut seen = Vec::new();
        w.advance(4, &mut Vec::new(), |t| seen.push(t));
        w.advance(4, &mut Vec::new(), |t| seen.push(t));
        w.advance(6, &mut Vec::new(), |t| seen.push(t));
        assert_eq!(seen, vec![2, 3, 4, 5, 6]);
    }

    #[test]
    fn memory_of_a_busy_slot_is_returned() {
        let mut w = wheel();
        for k in 0..10_000 {
            w.schedule(k, 3);
        }
        let mut out = Vec::new();
        w.advance(3, &mut out, |_| {});
        assert_eq!(out.len(), 10_000);
        assert!(w.slots[3].capacity() <= 32);
    }

    #[test]
    fn table_matches_phase_order_and_tick_rounding() {
        for (i, row) in PHASES.iter().enumerate() {
            assert_eq!(row.phase as usize, i);
        }
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_millis(250)), 1);
        assert_eq!(ticks(Duration::from_millis(251)), 2);
        assert_eq!(ticks(Duration::from_secs(10)), 40);
        assert_eq!(ticks_for_secs(6.0), 24);
        assert_eq!(ticks_for_secs(f64::NAN), 1);
        assert_eq!(ticks_for_secs(1e300), u32::MAX);
    }
}
