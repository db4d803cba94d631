//! The crate's error type.

use std::path::PathBuf;

/// What went wrong backing up or restoring, and with what.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configuration is not usable.
    #[error("backup configuration: {0}")]
    Config(String),
    /// The backup key cannot be read or is malformed.
    #[error("backup key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The object storage refused or failed a request.
    #[error("backup target {target}: {source}")]
    Target {
        /// The target (its address, without credentials).
        target: String,
        /// The storage's error.
        #[source]
        source: object_store::Error,
    },
    /// An object failed its check: damaged, cut short, or not one of ours.
    #[error("backup object {object} is damaged: {reason}")]
    Corrupt {
        /// The object's name in the target.
        object: String,
        /// What failed.
        reason: String,
    },
    /// An object is sealed with a key this site does not hold.
    #[error("backup object {object} is sealed with key {key_id}, which is not in the keyring")]
    UnknownKey {
        /// The object's name.
        object: String,
        /// The key's id, in hex.
        key_id: String,
    },
    /// No backup of the store holds the moment asked for.
    #[error("no backup of {store} reaches {moment}: {reason}")]
    NotRestorable {
        /// The store (its name in the site).
        store: String,
        /// The moment asked for.
        moment: String,
        /// Why.
        reason: String,
    },
    /// A restored store failed its integrity check.
    #[error("restored {store} fails its integrity check: {reason}")]
    Integrity {
        /// The store.
        store: String,
        /// SQLite's report.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// From the store layer.
    #[error(transparent)]
    Store(#[from] mantle_store::Error),
}

impl BackupError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BackupError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(object: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        BackupError::Corrupt {
            object: object.to_string(),
            reason: reason.into(),
        }
    }
}

/// The crate's result.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
