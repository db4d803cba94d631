//! Mantle's benchmarks, run by `mantle bench AREA`: `store`
//! ([`run_store`]), `messaging` ([`run_messaging`]: interstore messages
//! against raw rusqlite doing the commits a message needs), `site`
//! ([`run_site`]: an authenticated slate read over HTTP against a plain
//! handler serving the same bytes, loaded by `wrk`) and `live`
//! ([`run_live`]: commands over AMP through `mantle-client`, one and 100 in
//! flight, against a plain TCP echo of the same request bytes; and one
//! model's deltas fanned out to 1,000 observing clients, commit to
//! observer, against the same bytes written to 1,000 plain sockets) and
//! `hostile` ([`run_hostile`]: a real `mantle serve` process under a
//! password-guessing flood and under 20,000 idle connections per
//! listener, a legitimate client measured through each attack against
//! the same client on the same server unloaded) and `sharing`
//! ([`run_sharing`]: a shared item read through the sharing layer by a
//! user who reaches it through groups, against its owner's direct read)
//! and `backup` ([`run_backup`]: small transactions and one-way messages
//! with continuous backup to a local directory against the same without
//! it, and a restore against copying the same bytes) and `cluster`
//! ([`run_cluster`]: two nodes of a cluster in this process: messages
//! across nodes against on one node, a forwarded request against a
//! direct one, and moving a store against copying its file).
//!
//! Each bench measures Mantle's code and, in the same run, a *reference*:
//! the plainest competent implementation of the same work on the same
//! machine, files and data. For the store ([`run_store`]) the reference is
//! raw `rusqlite` on the same schema with the same pragmas as a store
//! (WAL, `synchronous = FULL` — the store's default
//! [`Durability::Full`](mantle_store::Durability::Full) — and a 2 MiB page
//! cache) and the same indexes. Every result is a [`BenchRecord`] with both
//! rates and their `ratio` (ours / reference), so a figure is read against
//! a baseline measured under the same conditions, not against numbers from
//! another machine.
//!
//! Sizes scale with [`StoreBenchOptions::scale`] (1.0 = the documented
//! sizes; tests use 0.01); every count stays at least 1.
//!
//! ```no_run
//! # async fn f() -> Result<(), mantle_bench::BenchError> {
//! let opts = mantle_bench::StoreBenchOptions { scale: 1.0, dir: None, only: None };
//! mantle_bench::run_store(&opts, &mut |record| {
//!     println!("{} {:.2}", record.bench, record.ratio);
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Release builds only give meaningful figures: `cargo run --release -p
//! mantle -- bench store`.

pub mod backup;
pub mod cluster;
pub mod hostile;
pub mod live;
pub mod messaging;
mod report;
mod rss;
pub mod sharing;
pub mod site;
mod store;

/// What a bench run is asked for; every area takes the same options.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Multiplies the benches' sizes or durations (1.0 = the documented
    /// ones); each stays at least its minimum.
    pub scale: f64,
    /// Where to put the benches' files (default: a temporary directory).
    /// Each bench uses a fresh subdirectory named after it and removes it.
    pub dir: Option<std::path::PathBuf>,
    /// Runs only the bench of this name.
    pub only: Option<String>,
}

impl BenchOptions {
    /// Refuses an `only` that names none of `benches`.
    pub(crate) fn check_only(&self, benches: &[&str]) -> Result<(), BenchError> {
        match &self.only {
            Some(name) if !benches.contains(&name.as_str()) => {
                Err(BenchError::UnknownBench(name.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether the bench `name` is to run.
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == name)
    }

    /// The directory the benches work in: `dir` (made if missing), or a
    /// temporary one removed when the returned value is dropped.
    pub(crate) fn workspace(&self) -> Result<Workspace, BenchError> {
        Ok(match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Workspace::Given(dir.clone())
            }
            None => {
                Workspace::Temporary(tempfile::Builder::new().prefix("mantle-bench-").tempdir()?)
            }
        })
    }
}

/// Where a run's benches put their files.
pub(crate) enum Workspace {
    Given(std::path::PathBuf),
    Temporary(tempfile::TempDir),
}

impl Workspace {
    pub(crate) fn path(&self) -> &std::path::Path {
        match self {
            Workspace::Given(p) => p,
            Workspace::Temporary(t) => t.path(),
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            dir: None,
            only: None,
        }
    }
}

pub use backup::{BACKUP_BENCHES, BackupBenchOptions, run_backup};
pub use cluster::{CLUSTER_BENCHES, ClusterBenchOptions, run_cluster};
pub use hostile::{
    HOLD_COMMAND, HOSTILE_BENCHES, HoldSpec, HostileBenchOptions, hold_idle, run_hostile,
};
pub use live::{LIVE_BENCHES, LiveBenchOptions, run_live};
pub use messaging::{MESSAGING_BENCHES, MessagingBenchOptions, run_messaging};
pub use report::{BenchRecord, Timings};
pub use sharing::{SHARING_BENCHES, SharingBenchOptions, run_sharing};
pub use site::{SITE_BENCHES, SiteBenchOptions, run_site};
pub use store::{STORE_BENCHES, StoreBenchOptions, run_store};

/// Every bench's name, area by area (for error messages).
fn known_benches() -> String {
    [
        STORE_BENCHES,
        MESSAGING_BENCHES,
        SITE_BENCHES,
        LIVE_BENCHES,
        HOSTILE_BENCHES,
        SHARING_BENCHES,
        BACKUP_BENCHES,
        CLUSTER_BENCHES,
    ]
    .concat()
    .join(", ")
}

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] mantle_store::Error),
    /// The site failed.
    #[error("site: {0}")]
    Site(#[from] mantle_site::SiteError),
    /// An HTTP request of the bench itself failed.
    #[error("http: {0}")]
    Http(String),
    /// A live-object connection or call of the bench itself failed
    /// (connecting, logging in, calling, observing).
    #[error("live: {0}")]
    Live(String),
    /// A process the bench started (the server under attack, a helper
    /// holding connections) failed or said something unexpected.
    #[error("process: {0}")]
    Process(String),
    /// A program the bench runs is not installed.
    #[error("{tool} not found: {hint}")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// The continuous backup, or a restore, failed.
    #[error("backup: {0}")]
    Backup(#[from] mantle_backup::BackupError),
    /// The reference (raw SQLite) failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Creating, reading or removing benchmark files failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// `only` named no bench of the area; the names are in
    /// [`STORE_BENCHES`], [`MESSAGING_BENCHES`], [`SITE_BENCHES`],
    /// [`LIVE_BENCHES`], [`HOSTILE_BENCHES`], [`SHARING_BENCHES`] and
    /// [`BACKUP_BENCHES`].
    #[error("unknown bench '{0}' (known: {known})", known = known_benches())]
    UnknownBench(String),
    /// A bench read back something other than what it wrote: its figures
    /// would mean nothing.
    #[error("bench {bench}: wrong result: {reason}")]
    Check {
        /// The bench.
        bench: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A background task of the bench panicked or was cancelled.
    #[error("bench task failed: {0}")]
    Task(String),
}
