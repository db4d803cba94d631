//! The site's error type.

use std::path::PathBuf;

/// What can go wrong in a site, with the input involved.
///
/// Variants that a client caused (bad credentials, a taken address, a stale
/// slate version) are distinct from server faults ([`SiteError::Store`],
/// [`SiteError::Io`]), so front ends can answer 4xx without logging an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum SiteError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] mantle_store::Error),

    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The site directory has no site (run `mantle init`).
    #[error("{0}: not a Mantle site (no site.store; create one with `mantle init`)")]
    NotASite(PathBuf),

    /// `init` on a directory that already holds a site.
    #[error("{0}: a site already exists here")]
    AlreadyASite(PathBuf),

    /// The configuration file or an override is invalid.
    #[error("configuration: {0}")]
    Config(String),

    /// Not of the form `localpart@domain`.
    #[error("'{0}' is not a valid login (expected localpart@domain)")]
    InvalidAddress(String),

    /// The login is in use by an account.
    #[error("'{0}' is already taken")]
    AddressTaken(String),

    /// Not a message address: a login, `account:ID`, `app:NAME` or `site`.
    #[error("'{0}' is not a message address (expected a login, account:ID, app:NAME or site)")]
    InvalidRecipient(String),

    /// No account has this login.
    #[error("no account with login '{0}'")]
    NoSuchAccount(String),

    /// Unknown login or wrong password (deliberately the same error).
    #[error("wrong login or password")]
    BadCredentials,

    /// The account is disabled.
    #[error("account '{0}' is disabled")]
    Disabled(String),

    /// A token that is unknown, expired, revoked or belongs to a disabled
    /// account.
    #[error("invalid or expired token")]
    BadToken,

    /// Signup is not open under the site's policy.
    #[error("signup is closed on this site ({0})")]
    SignupClosed(&'static str),

    /// The invite code is unknown or already used.
    #[error("invalid or used invite code")]
    BadInvite,

    /// A password that cannot be used.
    #[error("password rejected: {0}")]
    WeakPassword(&'static str),

    /// A slate name outside `[A-Za-z0-9_.-]{1,128}`.
    #[error("invalid slate name '{0}' (use 1-128 of A-Z a-z 0-9 _ . -)")]
    InvalidSlateName(String),

    /// The slate changed since the version the client had.
    #[error("slate '{name}' is at version {current}, not {expected}")]
    SlateConflict {
        name: String,
        expected: i64,
        current: i64,
    },

    /// A replace was sent without the version it replaces.
    #[error("slate '{0}' exists: replacing it needs the version it replaces")]
    SlateVersionRequired(String),

    /// The slate does not exist.
    #[error("no slate '{0}'")]
    NoSuchSlate(String),

    /// Too many login attempts from this address, or too many failures
    /// for this login: try again after `retry_after`.
    #[error("too many login attempts; try again in {} s", retry_after.as_secs_f64().ceil())]
    TooManyAttempts { retry_after: std::time::Duration },

    /// The site's signups per hour (`signup.max_per_hour`) are used up:
    /// try again after `retry_after`.
    #[error("signup is paused: too many new accounts this hour; try again in {} s", retry_after.as_secs_f64().ceil())]
    SignupsPaused { retry_after: std::time::Duration },

    /// Every password worker is busy and their queue is full: the server
    /// refuses rather than take on more; try again after `retry_after`.
    #[error("the server is busy checking passwords; try again in {} s", retry_after.as_secs_f64().ceil())]
    Busy { retry_after: std::time::Duration },

    /// The password worker threads have stopped (the site is closing).
    #[error("password checks are unavailable: the site is closing")]
    PasswordWorkersGone,

    /// The operating system gave no random bytes (for a salt or a token).
    #[error("no randomness available: {0}")]
    NoRandomness(String),

    /// argon2 refused to hash (parameters out of range).
    #[error("password hashing failed: {0}")]
    Hashing(String),

    /// No store of the site has this message address (`site`,
    /// `account:ID`, `app:NAME`).
    #[error("no store at address '{0}'")]
    NoSuchStore(String),

    /// Not a parked message id as `Site::parked_messages` lists them.
    #[error("'{0}' is not a parked message id (STORE/NUMBER, as listed)")]
    BadMessageId(String),

    /// No parked message has this id (never parked, retried or dropped).
    #[error("no parked message '{0}'")]
    NoSuchParkedMessage(String),

    /// Retrying this parked message is refused: its sender was answered
    /// with a refusal and may have undone its side.
    #[error(
        "message '{0}' was answered with a refusal and its sender may have undone its side; drop it instead"
    )]
    MessageAnswered(String),

    /// The account's user store must not be deleted without confirmation.
    #[error("deleting the user store of '{0}' needs explicit confirmation")]
    ConfirmationRequired(String),
}

impl SiteError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SiteError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the client caused this error (as opposed to a server fault).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            SiteError::Store(_)
                | SiteError::Io { .. }
                | SiteError::Config(_)
                | SiteError::Busy { .. }
                | SiteError::PasswordWorkersGone
                | SiteError::NoRandomness(_)
                | SiteError::Hashing(_)
        )
    }
}

/// `Result` with [`SiteError`].
pub type Result<T, E = SiteError> = std::result::Result<T, E>;
