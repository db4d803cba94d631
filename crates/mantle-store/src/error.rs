//! The store's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store, with what it was given.
///
/// Variant fields name the input involved (path, type, attribute, id); the
/// variant's doc says what it means for the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Error {
    /// The file exists but is not a SQLite database, or is SQLite but not a
    /// Mantle store. Nothing was written to it.
    #[error("{path}: not a Mantle store ({reason})")]
    NotAStore { path: PathBuf, reason: String },

    /// Another process (or another open in this one) has the store open for
    /// writing.
    #[error("{path}: store is already open for writing by another process or handle")]
    Locked { path: PathBuf },

    /// The store's file format is newer than this program understands.
    #[error("{path}: store format {found} is newer than this program's {supported}")]
    NewerFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// The store holds items of a version newer than the registered one.
    #[error(
        "type '{type_name}' is stored at version {stored}, newer than this program's version {known}"
    )]
    NewerSchema {
        type_name: String,
        stored: u32,
        known: u32,
    },

    /// The store holds items of a type the registry does not know, and the
    /// config asked for a strict open
    /// ([`StoreConfig::allow_unknown_types(false)`](crate::StoreConfig::allow_unknown_types));
    /// by default such items are left alone and the store opens.
    #[error(
        "store holds {count} item(s) of type '{type_name}' version {version}, which this program does not register"
    )]
    UnknownType {
        type_name: String,
        version: u32,
        count: i64,
    },

    /// Old items cannot be upgraded: no upgrader covers a step.
    #[error(
        "no upgrader registered for type '{type_name}' from version {from} (current version {to})"
    )]
    NoUpgradePath {
        type_name: String,
        from: u32,
        to: u32,
    },

    /// A type's struct changed without a version bump.
    #[error(
        "type '{type_name}' version {version}: stored columns ({stored}) differ from the program's ({declared}); bump the version and register an upgrader"
    )]
    SchemaMismatch {
        type_name: String,
        version: u32,
        stored: String,
        declared: String,
    },

    /// The item type was used without being registered (at this version):
    /// its items cannot be read or written by this program.
    #[error("type '{0}' is not registered by this program")]
    NotRegistered(&'static str),

    /// A type named at run time (by a tool, say) that this program does
    /// not register.
    #[error("type '{0}' is not registered by this program")]
    NotRegisteredName(String),

    /// A reference attribute points at an item that does not exist.
    #[error("{type_name}.{attribute} refers to {target}#{id}, which does not exist")]
    DanglingReference {
        type_name: &'static str,
        attribute: &'static str,
        target: &'static str,
        id: i64,
    },

    /// A delete was refused because a `forbid` reference points at the item.
    #[error(
        "cannot delete {type_name}#{id}: {referrer}.{attribute} refers to it (on_delete = forbid)"
    )]
    ReferencedBy {
        type_name: &'static str,
        id: i64,
        referrer: &'static str,
        attribute: &'static str,
    },

    /// A delete was refused because items of a type this program does not
    /// register refer to the item. Those items are left alone (see
    /// [`Store::unregistered`](crate::Store::unregistered)); their delete
    /// policy is not known here, and a reference left pointing at nothing
    /// would break them when their program opens the store again.
    #[error(
        "cannot delete {type_name}#{id}: {referrer} v{version}.{attribute} refers to it, and type '{referrer}' is not registered by this program (its items are left alone)"
    )]
    ReferencedByUnregistered {
        type_name: &'static str,
        id: i64,
        referrer: String,
        version: u32,
        attribute: String,
    },

    /// An update was based on a stale read.
    #[error(
        "{type_name}#{id} was changed since it was read (read revision {expected}, now {actual})"
    )]
    Conflict {
        type_name: &'static str,
        id: i64,
        expected: i64,
        actual: i64,
    },

    /// The item to update does not exist (any more).
    #[error("{type_name}#{id} does not exist")]
    NoSuchItem { type_name: &'static str, id: i64 },

    /// `unique()` / `find_or_create` matched more than one item.
    #[error("expected at most one {type_name}, found {count}")]
    NotUnique { type_name: &'static str, count: i64 },

    /// A column held a value the attribute cannot take.
    #[error("cannot decode {type_name}.{attribute}: {reason}")]
    Decode {
        type_name: &'static str,
        attribute: &'static str,
        reason: String,
    },

    /// A value could not be encoded (a `Json` attribute or an effect).
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    /// A powerup was installed for an interface its type does not provide.
    #[error("type '{type_name}' is not registered as a provider of interface '{interface}'")]
    NotAProvider {
        type_name: &'static str,
        interface: &'static str,
    },

    /// A scheduled task name is not registered for the item type.
    #[error("no task '{task}' registered for type '{type_name}'")]
    UnknownTask {
        type_name: &'static str,
        task: String,
    },

    /// The transaction closure panicked; the transaction was rolled back.
    #[error("transaction panicked and was rolled back: {0}")]
    Panicked(String),

    /// The commit covering this transaction failed; nothing of it is kept.
    #[error("commit failed: {0}")]
    CommitFailed(String),

    /// The store's [`Fence`](crate::Fence) refused the commit: this node
    /// may not write the store now (another owns it, or this node's lease
    /// may have run out). Refused before `COMMIT`, nothing was written;
    /// refused after, the transaction was written here but never
    /// acknowledged, and the store's owner decides what stands.
    #[error("store {store} is fenced: {why}")]
    Fenced {
        /// The store's file.
        store: PathBuf,
        /// What the fence said.
        why: String,
    },

    /// The store was closed.
    #[error("store {0} is closed")]
    Closed(PathBuf),

    /// An error from SQLite, with the operation.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A file-system error, with the path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
