//! The item types a site keeps: accounts, login methods, tokens and
//! invites in the site store; slates in each user store.

use mantle_store::{Id, Item, SubStore, Timestamp};

/// An account. Its user data lives in its own user store.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_account", version = 1)]
pub struct Account {
    /// The argon2id hash (PHC string) of the password.
    pub password_hash: String,
    /// A disabled account cannot log in, and its tokens stop working.
    pub disabled: bool,
    /// May see admin pages (statistics, the dashboard).
    pub admin: bool,
    /// When it was created.
    pub created: Timestamp,
    /// Its user store.
    pub user_store: Id<SubStore>,
}

/// One way to log in to an account: `localpart@domain`.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_login_method", version = 1)]
pub struct LoginMethod {
    /// The account; deleting it deletes its login methods.
    #[item(on_delete = "cascade")]
    pub account: Id<Account>,
    /// `localpart@domain`, lower case; unique across the site.
    #[item(index)]
    pub address: String,
    /// The account's primary login (exactly one per account).
    pub primary: bool,
}

/// An auth token: only its SHA-256 is kept.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_auth_token", version = 1)]
pub struct AuthToken {
    /// The account it logs in as; deleting the account deletes its tokens.
    #[item(on_delete = "cascade")]
    pub account: Id<Account>,
    /// SHA-256 of the token.
    #[item(index)]
    pub hash: Vec<u8>,
    /// When it was issued.
    pub created: Timestamp,
    /// When it stops working.
    #[item(index)]
    pub expires: Timestamp,
    /// When it was last presented (updated at most once a minute).
    pub last_used: Timestamp,
    /// What issued it ("http login", "cli", …).
    pub label: String,
}

/// An invite code for signup under the `invite` policy; only its SHA-256
/// is kept.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_invite", version = 1)]
pub struct Invite {
    /// SHA-256 of the code.
    #[item(index)]
    pub hash: Vec<u8>,
    /// When it was made.
    pub created: Timestamp,
    /// The account that used it.
    pub used_by: Option<Id<Account>>,
}

/// The site store's token sweeper: a scheduled task deletes expired tokens.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_token_sweeper", version = 1)]
pub struct TokenSweeper {
    /// Tokens deleted so far.
    pub swept: i64,
}

/// A slate: a named JSON document in a user store.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_slate", version = 1)]
pub struct Slate {
    /// The name (unique in the store).
    #[item(index)]
    pub name: String,
    /// The document, as JSON text.
    pub body: String,
    /// When a workflow slate expires.
    pub expires: Option<Timestamp>,
}
