//! The CLI's error type: one clear line per failure, and an exit code.

/// The operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// `store check` found problems.
pub const EXIT_PROBLEMS: u8 = 3;

/// What can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the store.
    #[error(transparent)]
    Store(#[from] mantle_store::Error),
    /// From the site.
    #[error(transparent)]
    Site(#[from] mantle_site::SiteError),
    /// From backups.
    #[error(transparent)]
    Backup(#[from] mantle_backup::BackupError),
    /// From the cluster layer.
    #[error(transparent)]
    Cluster(#[from] mantle_cluster::ClusterError),
    /// From the ledger offering (`mantle ledger …`).
    #[cfg(feature = "examples")]
    #[error(transparent)]
    Ledger(#[from] mantle_example_ledger::LedgerError),
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Message(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        EXIT_FAILURE
    }
}
