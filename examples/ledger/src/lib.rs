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
//! ```
//! use mantle_example_ledger as ledger;
//! use mantle_site::{Site, SiteConfig};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let site = ledger::install(Site::builder(dir.path()))
//!     .init(SiteConfig { domain: "example.com".into(), ..SiteConfig::default() })
//!     .await?;
//! let alice = site.create_account("alice", "correct horse battery", false).await?.id;
//! site.create_account("bob", "correct horse battery", false).await?;
//! ledger::grant(&site, "alice", 100).await?;
//! ledger::transfer(&site, alice, "bob@example.com", 30).await.unwrap();
//! assert_eq!(ledger::balance(&site, alice).await?, 70);
//! site.close().await;
//! # Ok::<_, mantle_site::SiteError>(())
//! # }).unwrap();
//! ```

mod web;

use mantle_site::{
    Account, Envelope, Message, MessageHandlers, Refusal, SendMessage, Site, SiteBuilder, SiteError,
};
use mantle_store::{Id, Item, Registry, Timestamp, Tx};
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

/// Why a transfer was refused before anything moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The amount is not positive.
    BadAmount(i64),
    /// The sender has less than the amount.
    InsufficientFunds {
        /// What the sender has.
        balance: i64,
    },
    /// A transfer to oneself.
    ToSelf,
    /// The store failed.
    Site(String),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::BadAmount(a) => write!(f, "amount must be positive (got {a})"),
            TransferError::InsufficientFunds { balance } => {
                write!(f, "insufficient funds (balance {balance})")
            }
            TransferError::ToSelf => write!(f, "cannot transfer to yourself"),
            TransferError::Site(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TransferError {}

impl From<mantle_store::Error> for TransferError {
    fn from(e: mantle_store::Error) -> Self {
        TransferError::Site(e.to_string())
    }
}

impl From<SiteError> for TransferError {
    fn from(e: SiteError) -> Self {
        TransferError::Site(e.to_string())
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
            if credit.amount <= 0 {
                return Err(Refusal::new("BAD_AMOUNT", "credits are positive"));
            }
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
                adjust(tx, credit.amount)?;
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

/// Adds the ledger (types, messages, HTTP routes) to a site.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder
        .with(register)
        .messages(messages)
        .extension::<mantle_web::WebRoutes>(|r| {
            r.add(routes);
        })
}

/// Adds `delta` to the balance in this store; returns the new balance.
fn adjust(tx: &mut Tx<'_>, delta: i64) -> mantle_store::Result<i64> {
    let mut b = tx.find_or_create(mantle_store::Filter::all(), || Balance { units: 0 })?;
    b.units += delta;
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
/// administrator's act: the only way units come into being).
pub async fn grant(site: &Site, login: &str, amount: i64) -> Result<i64, SiteError> {
    if amount <= 0 {
        return Err(SiteError::Config(format!(
            "grant must be positive (got {amount})"
        )));
    }
    let account = site.account(login).await?;
    let store = site.user_store(account.id).await?;
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
            Ok::<_, SiteError>(balance)
        })
        .await
}

/// Debits `amount` from `from` and sends the credit to `to`. Returns the
/// transfer's id and the sender's new balance once the debit is committed;
/// the credit (or the refund) follows.
pub async fn transfer(
    site: &Site,
    from: Id<Account>,
    to: &str,
    amount: i64,
) -> Result<(String, i64), TransferError> {
    if amount <= 0 {
        return Err(TransferError::BadAmount(amount));
    }
    let me = site.account_by_id(from).await?;
    if let Ok(other) = site.account(to).await
        && other.id == from
    {
        return Err(TransferError::ToSelf);
    }
    let _ = me;
    let store = site.user_store(from).await?;
    let to = to.to_string();
    store
        .transact(move |tx| {
            let balance = tx.query::<Balance>().first()?.map_or(0, |b| b.units);
            if balance < amount {
                return Err(TransferError::InsufficientFunds { balance });
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
    let store = site.user_store(account).await?;
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
    let store = site.user_store(account).await?;
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
