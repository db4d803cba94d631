//! The site's error type.

use std::path::PathBuf;

/// What can go wrong in a site, with the input involved.
///
/// Variants that a client caused (bad credentials, a taken address, a stale
/// slate version) are distinct from server faults ([`SiteError::Store`],
/// [`SiteError::Io`]), so front ends can answer 4xx without logging an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// A store operation failed (see [`mantle_store::Error`] for what each
    /// failure means).
    #[error(transparent)]
    Store(#[from] mantle_store::Error),

    /// Backing up or restoring failed.
    #[error(transparent)]
    Backup(#[from] mantle_backup::BackupError),

    /// A file-system operation failed: check the file's permissions and
    /// the disk.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The site directory has no site (run `mantle init`).
    #[error("{0}: not a Mantle site (no site.store; create one with `mantle init`)")]
    NotASite(PathBuf),

    /// `init` on a directory that already holds a site.
    #[error("{0}: a site already exists here")]
    AlreadyASite(PathBuf),

    /// The configuration file or an override is invalid: fix the key the
    /// message names in `mantle.toml` (or its environment override).
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be opened (the address is taken, or not this
    /// machine's): choose another address in the configuration.
    #[error("cannot listen {what}on {addr}: {source}")]
    Listen {
        /// Which listener, as a phrase ending in a space ("for AMP "), or
        /// empty for the main one.
        what: String,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A service of the site (HTTPS, the admin runtime file, …) could not
    /// start or run; `source` is its own typed error, which says what to
    /// fix.
    #[error("{service}: {source}")]
    Service {
        /// The service.
        service: &'static str,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The site was built without a layer this call needs (say, the live
    /// objects' `install`): a fault of the program that built the site.
    #[error("the site was built without {0}")]
    NotInstalled(&'static str),
    /// The site has no app store of this name: the offering must declare
    /// it with `SiteBuilder::app`.
    #[error("the site has no app store {0:?} (declare it with SiteBuilder::app)")]
    NoSuchAppStore(String),
    /// A store handle that is not one of this site's stores (not under its
    /// directory, or not listed in its site store).
    #[error("{}: not a store of this site", .0.display())]
    NotInSite(PathBuf),
    /// Something stored is damaged (it does not decode): the message says
    /// what; an operator may drop it (parked messages) or restore it.
    #[error("{what} is damaged: {reason}")]
    Damaged {
        /// What was read.
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A question asked of every user store failed in one of them; the
    /// others' answers are not summed. Ask again, or look at that store.
    #[error("fan-out failed in the store of {account}: {reason}")]
    FanoutFailed {
        /// The account whose store failed (its primary login).
        account: String,
        /// Its error.
        reason: String,
    },
    /// Blocking work run on another thread panicked or was cancelled (a
    /// bug, or the runtime shutting down); the message says which.
    #[error("{what} did not finish: {reason}")]
    TaskFailed {
        /// The work.
        what: &'static str,
        /// The panic or cancellation.
        reason: String,
    },

    /// Not of the form `localpart@domain`.
    #[error("'{0}' is not a valid login (expected localpart@domain)")]
    InvalidAddress(String),

    /// The login is in use by an account.
    #[error("'{0}' is already taken")]
    AddressTaken(String),

    /// A directory shared with other sites (a cluster's) cannot be reached
    /// now; nothing was changed. Try again.
    #[error("the cluster directory is unavailable: {0}")]
    DirectoryUnavailable(String),

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
    /// Read it again and reapply the change.
    #[error("slate '{name}' is at version {current}, not {expected}")]
    SlateConflict {
        /// The slate.
        name: String,
        /// The version the client had.
        expected: i64,
        /// The version it is at.
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
    TooManyAttempts {
        /// How long to wait.
        retry_after: std::time::Duration,
    },

    /// The site's signups per hour (`signup.max_per_hour`) are used up:
    /// try again after `retry_after`.
    #[error("signup is paused: too many new accounts this hour; try again in {} s", retry_after.as_secs_f64().ceil())]
    SignupsPaused {
        /// How long to wait.
        retry_after: std::time::Duration,
    },

    /// Every password worker is busy and their queue is full: the server
    /// refuses rather than take on more; try again after `retry_after`.
    #[error("the server is busy checking passwords; try again in {} s", retry_after.as_secs_f64().ceil())]
    Busy {
        /// How long to wait.
        retry_after: std::time::Duration,
    },

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

    /// Not a parked message id as `Messaging::parked` lists them.
    #[error("'{0}' is not a parked message id (STORE/NUMBER, as listed)")]
    BadMessageId(String),

    /// Not a role (`everyone`, `authenticated`, `account:ID`, `group:NAME`).
    #[error("'{0}' is not a role (expected everyone, authenticated, account:ID or group:NAME)")]
    BadRole(String),

    /// A group or access name outside 1-64 of `a-z 0-9 _ . -`.
    #[error("'{name}' is not a valid {what} name (use 1-64 of a-z 0-9 _ . -)")]
    BadSharingName {
        /// `group` or `access`.
        what: &'static str,
        /// The name given.
        name: String,
    },

    /// A share id outside 1-100 of `A-Z a-z 0-9 _ . - ~`.
    #[error("'{0}' is not a valid share id (use 1-100 of A-Z a-z 0-9 _ . - ~)")]
    BadShareId(String),

    /// The share id already names another item of the store.
    #[error("the share id '{0}' already names another item")]
    ShareIdTaken(String),

    /// Adding the member would make the group (transitively) its own member.
    #[error(
        "'{member}' cannot join group '{group}': '{group}' is already one of its members (a cycle)"
    )]
    RoleCycle {
        /// The group.
        group: String,
        /// The member refused.
        member: String,
    },

    /// No group of this name in the store.
    #[error("no group '{0}'")]
    NoSuchGroup(String),

    /// No share of this id that the viewer may use for what was asked.
    /// Deliberately one error for "does not exist" and "not permitted".
    #[error("no share '{0}' is available to you")]
    NoSuchShare(String),

    /// A body that does not make an item of the type (a Shoji `PUT`).
    #[error("the entity does not fit its type: {0}")]
    BadEntity(String),

    /// A catalog filter naming no attribute, or a value of the wrong kind.
    #[error(
        "cannot filter on {attribute} = {value}: no such attribute, or a value of another kind"
    )]
    BadFilter {
        /// The attribute named.
        attribute: String,
        /// The value given (JSON).
        value: String,
    },

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

    /// The program has no offering of this name (`mantle offering list`
    /// shows what it has).
    #[error("this program has no offering named {0:?}")]
    NoSuchOffering(String),
    /// Not a name an offering or product can have: lower-case letters,
    /// digits, `-` and `_`, at most 64.
    #[error(
        "{0:?} cannot name an offering (use lower-case letters, digits, '-' and '_', at most 64)"
    )]
    BadOfferingName(String),
    /// The program includes the same offering twice.
    #[error("the offering {0:?} is included twice")]
    DuplicateOffering(String),
    /// The program includes `offering` but not `needs`, which it requires:
    /// a fault of the program's assembly, found when the site opens.
    #[error("the offering {offering:?} requires {needs:?}, which this program does not include")]
    OfferingMissing {
        /// The offering included.
        offering: String,
        /// What it requires.
        needs: String,
    },
    /// `offering` needs `needs` installed: install it first (or, when
    /// uninstalling `needs`, uninstall `offering` first).
    #[error("the offering {offering:?} needs {needs:?} installed")]
    OfferingNeeds {
        /// The offering that needs the other.
        offering: String,
        /// What it needs.
        needs: String,
    },
    /// A layer is part of every site of the program: it is not installed,
    /// uninstalled or put in a product.
    #[error("{0:?} is a layer of this program, not an installable offering")]
    OfferingIsLayer(String),
    /// The offering is installed: uninstall it before purging its data.
    #[error("the offering {0:?} is installed: uninstall it before purging its data")]
    OfferingInstalled(String),
    /// The offering is not installed in this site (`mantle offering install`).
    #[error("the offering {0:?} is not installed in this site")]
    OfferingNotInstalled(String),
    /// No product of this name (`mantle product list`).
    #[error("no product named {0:?}")]
    NoSuchProduct(String),
    /// Not a name a product can have.
    #[error(
        "{0:?} cannot name a product (use lower-case letters, digits, '-' and '_', at most 64)"
    )]
    BadProductName(String),
    /// A product of this name exists.
    #[error("a product named {0:?} exists")]
    ProductExists(String),
    /// Accounts hold the product: revoke it from them before deleting it.
    #[error("{holders} account(s) hold the product {product:?}: revoke it first")]
    ProductHeld {
        /// The product.
        product: String,
        /// How many accounts hold it.
        holders: u64,
    },
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
                | SiteError::Listen { .. }
                | SiteError::Service { .. }
                | SiteError::NotInstalled(_)
                | SiteError::NoSuchAppStore(_)
                | SiteError::DuplicateOffering(_)
                | SiteError::OfferingMissing { .. }
                | SiteError::NotInSite(_)
                | SiteError::Damaged { .. }
                | SiteError::FanoutFailed { .. }
                | SiteError::TaskFailed { .. }
                | SiteError::Busy { .. }
                | SiteError::DirectoryUnavailable(_)
                | SiteError::PasswordWorkersGone
                | SiteError::NoRandomness(_)
                | SiteError::Hashing(_)
        )
    }
}

/// `Result` with [`SiteError`].
pub type Result<T, E = SiteError> = std::result::Result<T, E>;
