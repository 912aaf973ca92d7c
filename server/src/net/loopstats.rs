//! Per-iteration timings of a worker's loop, compiled in only with the `loop-stats` feature
//! (`cargo build --release -p corestream --features loop-stats`): how many events each
//! epoll_wait returned, how long the work after it took, how long the wait itself was. A
//! summary per worker goes to stderr when the worker ends (SIGTERM). For finding where a
//! latency tail comes from (issue 18); free when the feature is off.

use std::time::{Duration, Instant};

/// Log2 buckets of microseconds: [0,1), [1,2), [2,4), ... up to ~2^30 us.
const BUCKETS: usize = 32;

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS],
    max: u64,
    n: u64,
}

impl Hist {
    fn add(&mut self, v: u64) {
        let b = (64 - v.leading_zeros() as usize).min(BUCKETS - 1);
        self.counts[b] += 1;
        self.max = self.max.max(v);
        self.n += 1;
    }

    /// Upper bound of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> u64 {
        let want = ((self.n as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return if b == 0 { 1 } else { 1u64 << b };
            }
        }
        self.max
    }

    fn line(&self, what: &str, unit: &str) -> String {
        format!(
            "{what}: p50<={}{unit} p90<={}{unit} p99<={}{unit} p99.9<={}{unit} max={}{unit}",
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99),
            self.quantile(0.999),
            self.max
        )
    }
}

#[derive(Default)]
pub struct LoopStats {
    work_us: Hist,
    wait_us: Hist,
    events: Hist,
    ready: Hist,
    polled_at: Option<Instant>,
    woke_at: Option<Instant>,
}

impl LoopStats {
    /// Just before epoll_wait.
    pub fn before_poll(&mut self) {
        let now = Instant::now();
        if let Some(w) = self.woke_at.take() {
            self.work_us.add(micros(now - w));
        }
        self.polled_at = Some(now);
    }

    /// Just after epoll_wait returned `events`, with `ready` connections queued.
    pub fn after_poll(&mut self, events: usize, ready: usize) {
        let now = Instant::now();
        if let Some(p) = self.polled_at.take() {
            self.wait_us.add(micros(now - p));
        }
        self.events.add(events as u64);
        self.ready.add(ready as u64);
        self.woke_at = Some(now);
    }

    pub fn report(&self, worker: usize) {
        say!(
            "corestream: loop-stats worker {worker}: {} iterations\n  {}\n  {}\n  {}\n  {}",
            self.work_us.n,
            self.work_us.line("work per iteration", "us"),
            self.wait_us.line("epoll_wait", "us"),
            self.events.line("events per wait", ""),
            self.ready.line("connections queued per iteration", ""),
        );
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut h = Hist::default();
        for v in 1..=1000 {
            h.add(v);
        }
        assert_eq!(h.max, 1000);
        assert_eq!(h.quantile(0.5), 512);
        assert_eq!(h.quantile(0.999), 1024);
    }
}
