//! State shared by all threads of a process (workers, admin, signals, watcher), and the
//! process's file-descriptor limit.

use crate::admin::metrics::WorkerStats;
use crate::config::Config;
use crate::live::growing::Registry;
use crate::live::hints::Hints;
use crate::live::watcher::Watcher;
use crate::net::fsys::Root;
use crate::net::notify::Inboxes;
use crate::tls::TlsShared;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct Shared {
    pub cfg: Config,
    /// The media root; follows the path if the directory is deleted and recreated.
    pub root: Arc<Root>,
    /// Set by the first SIGTERM/SIGINT: stop accepting, finish what is in flight, exit.
    pub draining: AtomicBool,
    /// Bumped by SIGHUP: workers reopen the access log.
    pub log_generation: AtomicU64,
    /// One per worker, indexed by worker id.
    pub stats: Box<[WorkerStats]>,
    /// inotify on served playlist directories (None if inotify is unavailable: parked
    /// requests are then re-checked every second instead).
    pub watcher: Option<Arc<Watcher>>,
    /// Parts announced by live playlists, for holding requests instead of 404.
    pub hints: Hints,
    /// TLS configuration, certificates and counters (None without --tls-listen).
    pub tls: Option<Arc<TlsShared>>,
    /// Who watches what (CMCD, playlist reloads) and what the playlists list.
    pub qoe: crate::qoe::Qoe,
    /// Every worker's inbox: how the watcher and the ingest plane reach the workers.
    pub inboxes: Arc<Inboxes>,
    /// Objects still arriving (uploads in progress), served while they arrive.
    pub growing: Registry,
    /// The edge tier: origins, cache directory, fetches (None without --origin).
    pub tier: Option<Arc<crate::tier::Tier>>,
    /// Counters of the ingest port (zero without --ingest).
    pub ingest: crate::ingest::Stats,
}

impl Shared {
    /// Shared state for a process serving `cfg` from the open root directory `root`.
    pub fn new(cfg: Config, root: OwnedFd) -> Shared {
        let inboxes = Arc::new(Inboxes::default());
        Shared {
            growing: Registry::new(inboxes.clone()),
            inboxes,
            ingest: crate::ingest::Stats::default(),
            tier: None,
            stats: (0..cfg.workers).map(|_| WorkerStats::default()).collect(),
            qoe: crate::qoe::Qoe::new(cfg.workers, cfg.qoe),
            root: Arc::new(Root::new(cfg.root.clone(), root)),
            cfg,
            draining: AtomicBool::new(false),
            log_generation: AtomicU64::new(0),
            watcher: None,
            hints: Hints::default(),
            tls: None,
        }
    }
}

/// Current (soft, hard) RLIMIT_NOFILE.
pub fn nofile_limit() -> (u64, u64) {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((0, 0))
}

/// Raise the soft fd limit to the hard one: every viewer costs a descriptor.
pub fn raise_nofile() -> (u64, u64) {
    use nix::sys::resource::{setrlimit, Resource};
    let (soft, hard) = nofile_limit();
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            say!("corestream: cannot raise the nofile soft limit {soft} to {hard}: {e}");
        }
    }
    nofile_limit()
}

/// End the process with `code`, from whichever thread gets here first. exit(3) is not safe
/// to enter from two threads at once (glibc runs the atexit handlers under a lock and can
/// deadlock): a second caller (say, a second SIGTERM while main is returning) waits for the
/// first to finish the job.
pub fn exit(code: i32) -> ! {
    static EXITING: AtomicBool = AtomicBool::new(false);
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    std::process::exit(code)
}
