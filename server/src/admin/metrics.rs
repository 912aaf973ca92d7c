//! Per-worker counters, summed when `/metrics` is scraped.
//!
//! Each worker is the only writer of its own `WorkerStats`, so a counter bump is a relaxed
//! load and store (a plain `mov` on x86), not a locked read-modify-write; the scraper reads
//! them relaxed from another thread. Aligned to a cache line so workers never share one.

use crate::http::Status;
use crate::net::timer::{Expiry, Phase, PHASES};
use crate::tls::{TlsShared, FAIL_LABELS};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (or reset) the connection.
    Peer,
    /// We closed after `Connection: close`, HTTP/1.0, or an error response.
    Done,
    /// A socket or file error mid-response (including a file that shrank).
    Error,
    /// Closed by shutdown (idle at drain, or drain timeout).
    Shutdown,
    /// Its turn panicked (a bug some input reaches): closed, the worker goes on.
    Panic,
    /// A phase's deadline passed (labels from the phase table in `net::timer`).
    Timeout(Phase),
}

/// Reasons that are not timeouts, with their metric labels.
const OTHER_REASONS: [(CloseReason, &str); 5] = [
    (CloseReason::Peer, "peer"),
    (CloseReason::Done, "done"),
    (CloseReason::Error, "error"),
    (CloseReason::Shutdown, "shutdown"),
    (CloseReason::Panic, "panic"),
];

/// Counter slots: the other reasons, then one per phase.
const CLOSE_SLOTS: usize = OTHER_REASONS.len() + PHASES.len();

impl CloseReason {
    fn slot(self) -> usize {
        match self {
            CloseReason::Timeout(p) => OTHER_REASONS.len() + p as usize,
            other => OTHER_REASONS
                .iter()
                .position(|&(r, _)| r == other)
                .unwrap_or(0),
        }
    }
}

/// Every reason with its `reason` label, and the `kind` label of the timeouts.
fn close_reasons() -> impl Iterator<Item = (CloseReason, &'static str, Option<&'static str>)> {
    let timeouts = PHASES.iter().filter_map(|row| match row.expiry {
        Expiry::Timeout { reason, kind } => {
            Some((CloseReason::Timeout(row.phase), reason, Some(kind)))
        }
        _ => None,
    });
    OTHER_REASONS
        .iter()
        .map(|&(r, l)| (r, l, None))
        .chain(timeouts)
}

/// Status codes counted individually (the rest as "other").
const STATUSES: usize = Status::ALL.len();

/// accept(2) errors counted by errno.
pub const ACCEPT_ERRNOS: [(i32, &str); 4] = [
    (libc::EMFILE, "EMFILE"),
    (libc::ENFILE, "ENFILE"),
    (libc::ECONNABORTED, "ECONNABORTED"),
    (libc::ENOBUFS, "ENOBUFS"),
];

#[repr(align(64))]
#[derive(Default)]
pub struct WorkerStats {
    pub active: AtomicU64,
    pub accepted: AtomicU64,
    pub closed: [AtomicU64; CLOSE_SLOTS],
    pub requests: [AtomicU64; STATUSES + 1],
    pub response_bytes: AtomicU64,
    pub sendfile_bytes: AtomicU64,
    /// Indexed like ACCEPT_ERRNOS, plus one slot for any other errno.
    pub accept_errors: [AtomicU64; 5],
    pub listener_pauses: AtomicU64,
    pub max_conn_pauses: AtomicU64,
    /// Gauge: bytes held by this worker's playlist cache.
    pub playlist_cache_bytes: AtomicU64,
    pub playlist_cache_evictions: AtomicU64,
    /// Gauge: responses of this worker following a growing object.
    pub growing_viewers: AtomicU64,
    pub growing_responses: AtomicU64,
}

/// Single-writer increment: only the owning worker calls this.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl WorkerStats {
    pub fn closed(&self, r: CloseReason) {
        bump(&self.closed[r.slot()], 1);
    }

    pub fn request(&self, status: u16) {
        let i = Status::ALL
            .iter()
            .position(|s| s.code() == status)
            .unwrap_or(STATUSES);
        bump(&self.requests[i], 1);
    }

    pub fn accept_error(&self, errno: i32) {
        let i = ACCEPT_ERRNOS
            .iter()
            .position(|&(e, _)| e == errno)
            .unwrap_or(ACCEPT_ERRNOS.len());
        bump(&self.accept_errors[i], 1);
    }
}

fn sum(stats: &[WorkerStats], f: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
    stats.iter().map(|s| f(s).load(Relaxed)).sum()
}

/// Prometheus text exposition (format 0.0.4): a family's HELP and TYPE lines, then its
/// samples.
pub struct Exposition(String);

impl Exposition {
    pub fn new() -> Exposition {
        Exposition(String::with_capacity(4096))
    }

    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` are (name, value) pairs, values escaped as the format requires.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        v: impl std::fmt::Display,
    ) -> &mut Self {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                for c in val.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        v: impl std::fmt::Display,
    ) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], v)
    }

    pub fn finish(self) -> String {
        self.0
    }
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition::new()
    }
}

/// Process-level facts read at scrape time.
pub struct ProcessFacts {
    pub open_fds: u64,
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub draining: bool,
    /// The process's connection cap as the workers enforce it (0 = none).
    pub max_connections: u64,
}

impl ProcessFacts {
    pub fn read() -> ProcessFacts {
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let (soft, hard) = crate::shared::nofile_limit();
        ProcessFacts {
            open_fds,
            nofile_soft: soft,
            nofile_hard: hard,
            draining: false,
            max_connections: 0,
        }
    }
}

fn render_tls(o: &mut Exposition, t: &TlsShared) {
    o.family(
        "corestream_tls_handshakes_total",
        "counter",
        "TLS handshakes completed, by protocol version and whether the session was resumed.",
    );
    for (i, (version, resumed)) in [
        ("1.2", "false"),
        ("1.2", "true"),
        ("1.3", "false"),
        ("1.3", "true"),
    ]
    .iter()
    .enumerate()
    {
        o.sample(
            "corestream_tls_handshakes_total",
            &[("version", version), ("resumed", resumed)],
            t.stats.handshakes[i].load(Relaxed),
        );
    }
    o.family(
        "corestream_tls_handshake_failures_total",
        "counter",
        "TLS connections that ended before the handshake finished, by cause.",
    );
    for (i, reason) in FAIL_LABELS.iter().enumerate() {
        o.sample(
            "corestream_tls_handshake_failures_total",
            &[("reason", reason)],
            t.stats.failures[i].load(Relaxed),
        );
    }
    o.family(
        "corestream_tls_certificate_not_after_seconds",
        "gauge",
        "Expiry (Unix time) of each certificate in use, by file and first name.",
    );
    for (file, names, not_after) in t.certs.in_use() {
        let name = names.first().map_or("", String::as_str);
        o.sample(
            "corestream_tls_certificate_not_after_seconds",
            &[("file", &file), ("name", name)],
            not_after,
        );
    }
    o.family(
        "corestream_tls_certificate_reloads_total",
        "counter",
        "Certificate reloads (file change or SIGHUP), by result; a failed one keeps the old certificates.",
    )
    .sample(
        "corestream_tls_certificate_reloads_total",
        &[("result", "ok")],
        t.certs.reloads.load(Relaxed),
    )
    .sample(
        "corestream_tls_certificate_reloads_total",
        &[("result", "failed")],
        t.certs.reload_failures.load(Relaxed),
    );
}

/// The per-worker counters and gauges exported as one sum each: name, type, help, field.
type Field = fn(&WorkerStats) -> &AtomicU64;

const SUMS: [(&str, &str, &str, Field); 10] = [
    (
        "corestream_connections_active",
        "gauge",
        "Open viewer connections.",
        |s| &s.active,
    ),
    (
        "corestream_connections_accepted_total",
        "counter",
        "Connections accepted.",
        |s| &s.accepted,
    ),
    (
        "corestream_response_bytes_total",
        "counter",
        "Bytes written to viewers (heads and bodies).",
        |s| &s.response_bytes,
    ),
    (
        "corestream_sendfile_bytes_total",
        "counter",
        "Body bytes sent with sendfile(2).",
        |s| &s.sendfile_bytes,
    ),
    (
        "corestream_listener_pauses_total",
        "counter",
        "Times a worker paused accepting because it ran out of file descriptors.",
        |s| &s.listener_pauses,
    ),
    (
        "corestream_max_connections_pauses_total",
        "counter",
        "Times a worker stopped accepting at --max-connections.",
        |s| &s.max_conn_pauses,
    ),
    (
        "corestream_growing_responses_total",
        "counter",
        "Viewer responses served from an object while it was still being pushed.",
        |s| &s.growing_responses,
    ),
    (
        "corestream_growing_viewers",
        "gauge",
        "Viewer responses following an object still being pushed (sent as its bytes land).",
        |s| &s.growing_viewers,
    ),
    (
        "corestream_playlist_cache_bytes",
        "gauge",
        "Bytes of playlists held in memory (bounded by --playlist-cache-bytes).",
        |s| &s.playlist_cache_bytes,
    ),
    (
        "corestream_playlist_cache_evictions_total",
        "counter",
        "Playlists evicted from memory to stay within --playlist-cache-bytes.",
        |s| &s.playlist_cache_evictions,
    ),
];

/// Render the Prometheus text exposition format (version 0.0.4).
pub fn render(
    stats: &[WorkerStats],
    p: &ProcessFacts,
    tls: Option<&TlsShared>,
    qoe: &crate::qoe::Snapshot,
    ingest: Option<&crate::ingest::Stats>,
) -> String {
    let mut o = Exposition::new();
    qoe.render(&mut o);
    if let Some(i) = ingest {
        i.render(&mut o);
    }
    if let Some(t) = tls {
        render_tls(&mut o, t);
    }
    for (name, kind, help, field) in SUMS {
        o.single(name, kind, help, sum(stats, field));
    }
    o.family(
        "corestream_worker_connections_active",
        "gauge",
        "Open viewer connections per worker.",
    );
    for (i, s) in stats.iter().enumerate() {
        o.sample(
            "corestream_worker_connections_active",
            &[("worker", &i.to_string())],
            s.active.load(Relaxed),
        );
    }
    o.family(
        "corestream_connections_closed_total",
        "counter",
        "Connections closed, by reason.",
    );
    for (r, name, _) in close_reasons() {
        let n = sum(stats, |s| &s.closed[r.slot()]);
        o.sample(
            "corestream_connections_closed_total",
            &[("reason", name)],
            n,
        );
    }
    o.family(
        "corestream_timeouts_total",
        "counter",
        "Connections closed by a timeout, by kind.",
    );
    for (r, _, kind) in close_reasons() {
        if let Some(kind) = kind {
            let n = sum(stats, |s| &s.closed[r.slot()]);
            o.sample("corestream_timeouts_total", &[("kind", kind)], n);
        }
    }
    o.family(
        "corestream_requests_total",
        "counter",
        "Requests answered, by status code.",
    );
    for (i, status) in Status::ALL.iter().enumerate() {
        let n = sum(stats, |s| &s.requests[i]);
        o.sample(
            "corestream_requests_total",
            &[("code", &status.code().to_string())],
            n,
        );
    }
    let other = sum(stats, |s| &s.requests[STATUSES]);
    o.sample("corestream_requests_total", &[("code", "other")], other);
    o.family(
        "corestream_accept_errors_total",
        "counter",
        "accept(2) failures, by errno.",
    );
    for (i, name) in ACCEPT_ERRNOS
        .iter()
        .map(|(_, n)| *n)
        .chain(["other"])
        .enumerate()
    {
        let n = sum(stats, |s| &s.accept_errors[i]);
        o.sample("corestream_accept_errors_total", &[("errno", name)], n);
    }
    o.single(
        "corestream_open_fds",
        "gauge",
        "File descriptors open in this process.",
        p.open_fds,
    );
    o.family(
        "corestream_nofile_limit",
        "gauge",
        "RLIMIT_NOFILE of this process.",
    )
    .sample(
        "corestream_nofile_limit",
        &[("kind", "soft")],
        p.nofile_soft,
    )
    .sample(
        "corestream_nofile_limit",
        &[("kind", "hard")],
        p.nofile_hard,
    );
    o.single(
        "corestream_draining",
        "gauge",
        "1 while the process is shutting down gracefully.",
        u8::from(p.draining),
    );
    o.single(
        "corestream_max_connections",
        "gauge",
        "Viewer connections this process accepts before it pauses its listeners (0 = no cap).",
        p.max_connections,
    );
    o.finish()
}
