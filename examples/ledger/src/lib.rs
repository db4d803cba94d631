//! A ledger offering: an internal unit of credit (the seed's "divmids").
//!
//! Each user's balance and history live in that user's own store. A
//! transfer debits the sender in the sender's transaction and sends a
//! [`Credit`] message; the receiver credits itself in its own transaction.
//! If the credit is refused (unknown or disabled receiver), the refusal
//! comes back as the answer and the sender is refunded, again in one of its
//! own transactions. No transaction ever touches two stores, and messaging
//! makes every credit and refund happen exactly once, so the sum of all
//! balances always comes back to what was granted.
//!
//! Every amount is positive and at most [`MAX_AMOUNT`], and every change of
//! a balance is checked, never wrapped: a grant that would take a balance
//! past `i64::MAX` is refused ([`LedgerError::Overflow`]), a credit that
//! does not fit is refused with `OVERFLOW` and refunded, and a refund that
//! does not fit (units came in while its credit was away) waits and is
//! retried.
//!
//! A transfer goes to another user's account, named by a login or
//! `account:ID`: one to the sender's own account (however written), to
//! `site`, to `app:NAME` or to anything else is refused before anything is
//! recorded. A login or `account:ID` that names no account is accepted and
//! refunded when its credit is refused (`NO_SUCH_RECIPIENT`), as for a
//! disabled recipient.
//!
//! ```
//! use mantle_example_ledger as ledger;
//! use mantle_site::{Site, SiteConfig};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let site = Site::builder(dir.path())
//!     .offering(mantle_web::offering())
//!     .offering(ledger::offering())
//!     .init(SiteConfig { domain: "example.com".into(), ..SiteConfig::default() })
//!     .await?;
//! site.offerings().install(ledger::NAME).await?;
//! let alice = site.accounts().create("alice", "correct horse battery", false).await?.id;
//! site.accounts().create("bob", "correct horse battery", false).await?;
//! ledger::grant(&site, "alice", 100).await?;
//! ledger::transfer(&site, alice, "bob@example.com", 30).await?;
//! assert_eq!(ledger::balance(&site, alice).await?, 70);
//! // Not to oneself, not to the site's or an app's store.
//! for to in ["alice", "site", "app:lists"] {
//!     assert!(ledger::transfer(&site, alice, to, 1).await.is_err());
//! }
//! site.close().await;
//! # Ok::<_, ledger::LedgerError>(())
//! # }).unwrap();
//! ```

mod web;

use mantle_site::{
    Account, Envelope, Message, MessageHandlers, Offering, Recipient, Refusal, Scope, SendMessage,
    Site, SiteBuilder, SiteError,
};
use mantle_store::{Id, Item, Registry, Timestamp, Tx};
use mantle_web::WebOffering;
use serde::{Deserialize, Serialize};

pub use web::routes;

/// A user's balance (one per user store).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "ledger_balance", version = 1)]
pub struct Balance {
    /// Units held.
    pub units: i64,
}

/// One line of a user's history.
#[derive(Item, Debug, Clone, PartialEq, Serialize)]
#[item(name = "ledger_entry", version = 1, index(transfer, kind))]
pub struct Entry {
    /// The transfer it belongs to (or the grant's id).
    pub transfer: String,
    /// `grant`, `debit`, `credit` or `refund`.
    pub kind: String,
    /// Units (always positive; `kind` gives the direction).
    pub amount: i64,
    /// The other party's address.
    pub counterparty: String,
    /// When.
    pub at: Timestamp,
}

/// The message that moves credit: "add `amount` to your balance".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credit {
    /// The transfer's id.
    pub transfer: String,
    /// Units.
    pub amount: i64,
    /// The recipient as the sender named it.
    pub to: String,
}

impl Message for Credit {
    const TYPE: &'static str = "ledger.credit";
    type Answer = ();
}

/// The largest amount one grant, transfer or credit moves.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Why a grant or transfer was refused (before anything was recorded).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The amount is not between 1 and [`MAX_AMOUNT`].
    #[error("amount must be between 1 and {MAX_AMOUNT} (got {0})")]
    BadAmount(i64),
    /// The sender has less than the amount.
    #[error("insufficient funds: balance {balance}, amount {amount}")]
    InsufficientFunds {
        /// What the sender has.
        balance: i64,
        /// What the transfer asked for.
        amount: i64,
    },
    /// The balance would pass the largest one a ledger holds (`i64::MAX`).
    #[error(
        "a balance of {balance} cannot take {amount} more units (the largest balance is {})",
        i64::MAX
    )]
    Overflow {
        /// The balance as it is (and stays).
        balance: i64,
        /// The units it was to take.
        amount: i64,
    },
    /// The recipient is the sender's own account.
    #[error("'{to}' is your own account: cannot transfer to yourself")]
    ToSelf {
        /// The recipient as given.
        to: String,
    },
    /// The recipient is not a user's account (`site`, `app:NAME`, or not
    /// an address at all).
    #[error("'{to}' is not a user's account: transfers go to a login or account:ID")]
    NotAnAccount {
        /// The recipient as given.
        to: String,
    },
    /// The site or a store failed (or an account is unknown).
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl From<mantle_store::Error> for LedgerError {
    fn from(e: mantle_store::Error) -> Self {
        LedgerError::Site(e.into())
    }
}

impl From<LedgerError> for Refusal {
    /// A credit refused for good (a bad amount, a balance that cannot take
    /// it), or for now (a store error: delivered again later).
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Site(SiteError::Store(e)) => Refusal::from(e),
            LedgerError::Site(e) => Refusal::retry("SITE_ERROR", e.to_string()),
            LedgerError::BadAmount(_) => Refusal::new("BAD_AMOUNT", e.to_string()),
            LedgerError::InsufficientFunds { .. } => {
                Refusal::new("INSUFFICIENT_FUNDS", e.to_string())
            }
            LedgerError::Overflow { .. } => Refusal::new("OVERFLOW", e.to_string()),
            LedgerError::ToSelf { .. } => Refusal::new("TO_SELF", e.to_string()),
            LedgerError::NotAnAccount { .. } => Refusal::new("NOT_AN_ACCOUNT", e.to_string()),
        }
    }
}

/// Checks that `amount` is between 1 and [`MAX_AMOUNT`].
pub fn check_amount(amount: i64) -> Result<(), LedgerError> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(())
    } else {
        Err(LedgerError::BadAmount(amount))
    }
}

/// Registers the ledger's item types.
pub fn register(registry: &mut Registry) {
    registry.register::<Balance>().register::<Entry>();
}

/// Registers the ledger's message handlers.
pub fn messages(handlers: &mut MessageHandlers) {
    handlers
        .on::<Credit>(|tx, envelope: &Envelope, credit| {
            check_amount(credit.amount)?;
            adjust(tx, credit.amount)?;
            tx.insert(&Entry {
                transfer: credit.transfer,
                kind: "credit".into(),
                amount: credit.amount,
                counterparty: envelope.from.clone(),
                at: Timestamp::now(),
            })?;
            Ok(())
        })
        .on_answer::<Credit>(|tx, credit, answer| {
            if let Err(refusal) = answer {
                tracing::info!(transfer = %credit.transfer, reason = %refusal, "transfer refused; refunding");
                adjust(tx, credit.amount).map_err(|e| {
                    // Units came back while the credit was away: the refund
                    // waits (the answer is retried) rather than wrapping.
                    tracing::error!(transfer = %credit.transfer, error = %e, "cannot refund yet");
                    match e {
                        LedgerError::Site(SiteError::Store(e)) => e,
                        e => mantle_store::Error::Encode {
                            what: "ledger refund",
                            reason: e.to_string(),
                        },
                    }
                })?;
                tx.insert(&Entry {
                    transfer: credit.transfer,
                    kind: "refund".into(),
                    amount: credit.amount,
                    counterparty: credit.to,
                    at: Timestamp::now(),
                })?;
            }
            Ok(())
        });
}

/// The ledger's name: its offering, its configuration section.
pub const NAME: &str = "ledger";

/// The ledger as an offering: its item types (in user stores), its
/// message handlers and its HTTP routes.
pub fn offering() -> Offering {
    Offering::new(NAME, 1)
        .description("Credits, moved between users by interstore messages")
        .requires(mantle_web::LAYER)
        .items(Scope::User, register)
        .messages(messages)
        .routes(routes)
        .nav("Ledger: balance", "/api/ledger/balance")
}

/// Includes the ledger ([`offering`]) in a site builder.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder.offering(offering())
}

/// Adds `amount` units (negative: takes them) to the balance in this
/// store; returns the new balance. A balance that would pass `i64::MAX` (or
/// `i64::MIN`) is left as it is.
fn adjust(tx: &mut Tx<'_>, amount: i64) -> Result<i64, LedgerError> {
    let mut b = tx.find_or_create(mantle_store::Filter::all(), || Balance { units: 0 })?;
    b.units = b.units.checked_add(amount).ok_or(LedgerError::Overflow {
        balance: b.units,
        amount,
    })?;
    tx.update(&mut b)?;
    Ok(b.units)
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    // Ids only need to be unique, not secret; fall back to the clock.
    if getrandom::fill(&mut bytes).is_err() {
        let t = Timestamp::now().as_micros().to_le_bytes();
        bytes[..8].copy_from_slice(&t);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives `amount` new units to the account holding `login` (an
/// administrator's act: the only way units come into being). Returns the
/// new balance; a balance that cannot take them is left as it is.
pub async fn grant(site: &Site, login: &str, amount: i64) -> Result<i64, LedgerError> {
    check_amount(amount)?;
    let account = site.accounts().get(login).await?;
    let store = site.stores().user_store_unchecked(account.id).await?;
    store
        .transact(move |tx| {
            let balance = adjust(tx, amount)?;
            tx.insert(&Entry {
                transfer: new_id(),
                kind: "grant".into(),
                amount,
                counterparty: "site".into(),
                at: Timestamp::now(),
            })?;
            Ok::<_, LedgerError>(balance)
        })
        .await
}

/// Checks that `to` names a user's account other than `from`'s (or a
/// login or `account:ID` of no account: its credit is refused and
/// refunded).
async fn check_recipient(site: &Site, from: Id<Account>, to: &str) -> Result<(), LedgerError> {
    match site.messaging().recipient(to).await {
        Ok(Recipient::Account { id, .. }) if id == from => {
            Err(LedgerError::ToSelf { to: to.to_string() })
        }
        Ok(Recipient::Account { .. } | Recipient::NoAccount) => Ok(()),
        Ok(Recipient::Site | Recipient::App(_)) | Err(SiteError::InvalidRecipient(_)) => {
            Err(LedgerError::NotAnAccount { to: to.to_string() })
        }
        Err(e) => Err(e.into()),
    }
}

/// Debits `amount` from `from` and sends the credit to `to` (a login or
/// `account:ID` of another account). Returns the transfer's id and the
/// sender's new balance once the debit is committed; the credit (or the
/// refund) follows.
pub async fn transfer(
    site: &Site,
    from: Id<Account>,
    to: &str,
    amount: i64,
) -> Result<(String, i64), LedgerError> {
    check_amount(amount)?;
    check_recipient(site, from, to).await?;
    let store = site.stores().user_store_unchecked(from).await?;
    let to = to.to_string();
    store
        .transact(move |tx| {
            let balance = tx.query::<Balance>().first()?.map_or(0, |b| b.units);
            if balance < amount {
                return Err(LedgerError::InsufficientFunds { balance, amount });
            }
            let left = adjust(tx, -amount)?;
            let transfer = new_id();
            tx.insert(&Entry {
                transfer: transfer.clone(),
                kind: "debit".into(),
                amount,
                counterparty: to.clone(),
                at: Timestamp::now(),
            })?;
            tx.send(
                &to,
                &Credit {
                    transfer: transfer.clone(),
                    amount,
                    to: to.clone(),
                },
            )?;
            Ok((transfer, left))
        })
        .await
}

/// The balance of an account.
pub async fn balance(site: &Site, account: Id<Account>) -> Result<i64, SiteError> {
    let store = site.stores().user_store_unchecked(account).await?;
    store
        .read(|r| Ok(r.query::<Balance>().first()?.map_or(0, |b| b.units)))
        .await
}

/// An account's history, newest first.
pub async fn history(
    site: &Site,
    account: Id<Account>,
    limit: u64,
) -> Result<Vec<Entry>, SiteError> {
    let store = site.stores().user_store_unchecked(account).await?;
    store
        .read(move |r| {
            Ok(r.query::<Entry>()
                .order_by(mantle_store::Order::by_id())
                .all()?
                .into_iter()
                .rev()
                .take(limit as usize)
                .map(|e| e.into_inner())
                .collect())
        })
        .await
}
