//! Command-line syntax (clap). Kept apart from the work it drives.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Mantle: a multi-user application server with a built-in object store.
///
/// Exit codes: 0 success; 1 the operation failed (one line on stderr says
/// why); 2 the command line was wrong; 3 `store check` found problems.
/// Set MANTLE_LOG (e.g. MANTLE_LOG=info) for logs on stderr.
#[derive(Debug, Parser)]
#[command(name = "mantle", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with store files (one SQLite file per store).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run an area's benchmarks; prints one JSON object per line.
    ///
    /// Build with --release for meaningful figures:
    /// `cargo run --release -p mantle -- bench store`.
    Bench {
        /// The area to benchmark.
        #[arg(value_enum)]
        area: BenchArea,
        /// Scale every bench's size (1.0 = the documented sizes).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Run only the bench of this name.
        #[arg(long)]
        only: Option<String>,
        /// Where to put benchmark files (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchArea {
    /// The object store against raw rusqlite.
    Store,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Show what a store holds: types, versions, item counts, powerups,
    /// outbox and schedule. Safe while the store is in use.
    Inspect {
        /// The store file.
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a store's integrity and schema; exit code 3 if there are
    /// problems. Safe while the store is in use.
    Check {
        /// The store file.
        file: PathBuf,
    },
    /// Copy a store to DEST as one consistent snapshot, while other
    /// processes keep writing to it.
    Backup {
        /// The store file.
        file: PathBuf,
        /// The new file to write (must not exist).
        dest: PathBuf,
    },
    /// Upgrade items stored at older schema versions to the versions this
    /// program knows, with a progress bar. Resumable: if interrupted, run
    /// it again. Needs the store not to be open elsewhere.
    Upgrade {
        /// The store file.
        file: PathBuf,
    },
}
