//! Interstore messaging: stores talk to each other only by messages, and a
//! message takes effect exactly once.
//!
//! Alice's store wants Bob's store to do something (credit him, add an
//! event to his calendar). Inside one of Alice's transactions,
//! `tx.send("bob@example.com", &Credit { … })` records the message in her
//! store's outbox — so if her transaction rolls back, the message never
//! existed. After her commit, her store's dispatcher carries it to Bob's
//! store, where the handler registered for the message type runs in one of
//! Bob's transactions, which also records the message's id. A redelivery
//! (after a crash, a retry) finds the id and changes nothing: the message
//! takes effect once. The handler's answer, or its refusal, is recorded in
//! the same transaction of Bob's and travels back the same way, to be
//! handled in a transaction of Alice's by the answer handler she registered
//! (again once: answers have ids too).
//!
//! A handler serves the stores it was registered for: [`MessageHandlers::on`]
//! registers it for user stores, [`MessageHandlers::on_in`] for the site
//! store or one app store. A message to a store with no handler for its type
//! there (a user's message to `site` or `app:NAME` that no offering declared
//! a handler for, say) is refused with [`NO_HANDLER`] and writes nothing in
//! that store.
//!
//! A message that cannot be delivered — no such recipient, a disabled one,
//! no handler for its type in the recipient's store, a body that does not
//! decode, too many failed attempts — is parked in the sender's outbox with
//! its reason, and (for messages that expect an answer) answered with a
//! [`Refusal`], so the sender can undo what it did.
//!
//! Deliveries are batched: the messages waiting in one store's outbox are
//! grouped by recipient, and each group is applied in one transaction of
//! the recipient (each message in its own savepoint).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use mantle_store::{DispatchError, Effect, Id, Item, Store, SubStore, Timestamp, Tx};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SiteError;
use crate::address::Address;
use crate::items::{Account, LoginMethod};
use crate::stores::Stores;

mod delivery;
mod parked;
mod remote;
mod stats;

pub(crate) use delivery::install;
pub use parked::ParkedMessage;
pub use remote::{Located, RemoteFuture, RemoteStores};
pub use stats::MESSAGING_NAMESPACE;
pub(crate) use stats::MessagingStats;

/// A message one store can send another.
///
/// ```
/// use mantle_site::Message;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Credit { amount: i64 }
/// impl Message for Credit {
///     const TYPE: &'static str = "ledger.credit";
///     type Answer = i64; // the recipient's new balance
/// }
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name handlers are registered under; stable across versions.
    const TYPE: &'static str;
    /// What the recipient answers.
    type Answer: Serialize + DeserializeOwned + Send + 'static;
    /// One-way messages get no answer; failures only park them.
    const ONE_WAY: bool = false;
}

/// Why a message was not carried out: a code for programs and a message
/// for people. Travels back to the sender as the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// A stable code (`NO_SUCH_RECIPIENT`, `INSUFFICIENT_FUNDS`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// `false` for a refusal worth retrying later: the handler's work is
    /// undone and the message redelivered with back-off.
    #[serde(default = "yes")]
    pub permanent: bool,
}

fn yes() -> bool {
    true
}

/// The refusal code of a message whose body does not decode as the
/// recipient's type.
pub const UNDECODABLE: &str = "UNDECODABLE";

/// The refusal code of a message whose type has no handler in the
/// recipient's store (see [`StoreKind`]).
pub const NO_HANDLER: &str = "NO_HANDLER";

impl Refusal {
    /// A final refusal: the sender gets it as the answer.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            permanent: true,
        }
    }
    /// A passing failure: undo, and deliver again later.
    pub fn retry(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            ..Self::new(code, message)
        }
    }
}

impl From<mantle_store::Error> for Refusal {
    fn from(e: mantle_store::Error) -> Self {
        // A store error in a handler is a fault of ours, worth retrying.
        Refusal::retry("STORE_ERROR", e.to_string())
    }
}

impl From<SiteError> for Refusal {
    fn from(e: SiteError) -> Self {
        match e {
            SiteError::Store(e) => e.into(),
            // One answer for a missing share and a forbidden one.
            SiteError::NoSuchShare(id) => Refusal::new(
                crate::sharing::NO_SUCH_SHARE,
                format!("no share {id:?} is available to you"),
            ),
            e if e.is_client_error() => Refusal::new("REFUSED", e.to_string()),
            e => Refusal::retry("SITE_ERROR", e.to_string()),
        }
    }
}

/// The id of a sent message (random, unique across stores).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageId(pub String);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message in the sender's outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Outgoing {
    pub id: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Value,
    pub one_way: bool,
    /// When it was sent (µs since the epoch), for latency figures.
    pub sent: i64,
    /// The share it is addressed to, in the recipient's store (see
    /// `SendToShare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
}

impl Effect for Outgoing {
    const KIND: &'static str = "mantle.message";
}

/// An answer on its way back, in the recipient's outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Answer {
    pub id: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The original message, so the answer handler has it.
    pub body: Value,
    pub result: Result<Value, Refusal>,
}

impl Effect for Answer {
    const KIND: &'static str = "mantle.answer";
}

/// Ids of messages and answers a store has applied: the exactly-once
/// record. `key` is `msg:ID` or `answer:ID`.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_receipt", version = 1)]
pub struct Receipt {
    /// `msg:ID` or `answer:ID`.
    #[item(index)]
    pub key: String,
    /// When it was applied.
    pub at: Timestamp,
}

fn new_message_id() -> Result<String, mantle_store::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| mantle_store::Error::Encode {
        what: "message id",
        reason: e.to_string(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Sending messages from inside a transaction.
pub trait SendMessage {
    /// Queues `message` to `to` (a login, `account:ID`, `app:NAME` or
    /// `site`). It leaves only if this transaction commits.
    fn send<M: Message>(&mut self, to: &str, message: &M)
    -> Result<MessageId, mantle_store::Error>;
}

impl SendMessage for Tx<'_> {
    fn send<M: Message>(
        &mut self,
        to: &str,
        message: &M,
    ) -> Result<MessageId, mantle_store::Error> {
        send_in(self, to, None, message)
    }
}

/// Records `message` to `to` (to its share `share`, if given) in `tx`'s
/// outbox.
pub(crate) fn send_in<M: Message>(
    tx: &mut Tx<'_>,
    to: &str,
    share: Option<&str>,
    message: &M,
) -> Result<MessageId, mantle_store::Error> {
    let id = new_message_id()?;
    let body = serde_json::to_value(message).map_err(|e| mantle_store::Error::Encode {
        what: M::TYPE,
        reason: e.to_string(),
    })?;
    tx.record(&Outgoing {
        id: id.clone(),
        to: to.to_string(),
        kind: M::TYPE.to_string(),
        body,
        one_way: M::ONE_WAY,
        sent: Timestamp::now().as_micros(),
        share: share.map(str::to_string),
    })?;
    Ok(MessageId(id))
}

/// What a receive handler is told besides the message.
///
/// Made by the delivery only (non-exhaustive: fields may be added).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Envelope {
    /// The message's id.
    pub id: MessageId,
    /// The sender's stable address (`account:ID`, `app:NAME`, `site`).
    pub from: String,
    /// The primary login of the sending account (`alice@example.com`), as
    /// it is when the message is delivered; `None` for a message from the
    /// site store or an app store (and from an account that no longer
    /// exists). For showing who sent it: [`from`](Self::from) is the
    /// stable identity to decide on and to record.
    pub sender_login: Option<String>,
    /// The recipient's stable address (`account:ID`, `app:NAME`, `site`).
    pub to: String,
    /// The share the message is addressed to, in the recipient's store
    /// (sent with `SendToShare`); handlers registered with
    /// [`MessageHandlers::on_shared`] check the sender's access to it.
    pub share: Option<String>,
}

type ReceiveFn =
    Arc<dyn Fn(&mut Tx<'_>, &Envelope, &Value) -> Result<Value, Refusal> + Send + Sync>;
type AnswerFn = Arc<
    dyn Fn(&mut Tx<'_>, &Value, Result<&Value, &Refusal>) -> Result<(), mantle_store::Error>
        + Send
        + Sync,
>;

/// The stores a receive handler serves.
///
/// A message is applied only by a handler registered for the kind of store
/// it was sent to: a handler for user stores never runs in the site store or
/// an app store, so a user cannot make a store shared by everyone run a
/// handler its offering did not declare for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// Every user store (`account:ID`, a login).
    User,
    /// The site store (`site`).
    Site,
    /// The app store `app:NAME` (declared with `SiteBuilder::app`); holds
    /// the NAME only.
    App(String),
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreKind::User => f.write_str("a user store"),
            StoreKind::Site => f.write_str("the site store"),
            StoreKind::App(name) => write!(f, "the app store app:{name}"),
        }
    }
}

/// The message handlers of a site's offerings, each for the stores it
/// serves (see [`StoreKind`]).
#[derive(Default, Clone)]
pub struct MessageHandlers {
    receive: HashMap<StoreKind, HashMap<&'static str, ReceiveFn>>,
    answer: HashMap<&'static str, AnswerFn>,
}

impl MessageHandlers {
    /// Registers what a user store does with messages of type `M`: it runs
    /// in the recipient's transaction; `Err` undoes its work and refuses.
    /// Messages of type `M` sent to the site store or an app store are
    /// refused ([`NO_HANDLER`]) unless a handler is registered for that
    /// store with [`on_in`](Self::on_in).
    pub fn on<M: Message>(
        &mut self,
        handler: impl Fn(&mut Tx<'_>, &Envelope, M) -> Result<M::Answer, Refusal>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.on_in(StoreKind::User, handler)
    }

    /// Registers what the stores of kind `store` do with messages of type
    /// `M` (as [`on`](Self::on) does for user stores). The handler is told
    /// the sender ([`Envelope::from`]): one in the site store or an app
    /// store decides what each sender may do there.
    ///
    /// ```
    /// use mantle_site::{Message, MessageHandlers, StoreKind};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Vote { choice: String }
    /// impl Message for Vote {
    ///     const TYPE: &'static str = "poll.vote";
    ///     type Answer = ();
    /// }
    /// fn messages(h: &mut MessageHandlers) {
    ///     // Users vote by sending to `app:poll`; no user store takes votes.
    ///     h.on_in::<Vote>(StoreKind::App("poll".into()), |_tx, env, vote| {
    ///         let _ = (&env.from, vote.choice); // record who voted for what
    ///         Ok(())
    ///     });
    /// }
    /// ```
    pub fn on_in<M: Message>(
        &mut self,
        store: StoreKind,
        handler: impl Fn(&mut Tx<'_>, &Envelope, M) -> Result<M::Answer, Refusal>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        let f: ReceiveFn = Arc::new(move |tx, env, body| {
            let msg: M = serde_json::from_value(body.clone()).map_err(|e| {
                Refusal::new(UNDECODABLE, format!("{} does not decode: {e}", M::TYPE))
            })?;
            let answer = handler(tx, env, msg)?;
            serde_json::to_value(answer)
                .map_err(|e| Refusal::new("UNENCODABLE_ANSWER", e.to_string()))
        });
        self.receive.entry(store).or_default().insert(M::TYPE, f);
        self
    }

    /// Adds `other`'s handlers, each answering only while `present()`
    /// (refused with [`NO_HANDLER`] otherwise: `offering` is not
    /// installed). Answer handlers always run: a sender must be able to
    /// undo what it did.
    pub(crate) fn merge_gated(
        &mut self,
        other: MessageHandlers,
        offering: &str,
        present: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        let present: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(present);
        for (store, receivers) in other.receive {
            for (kind, f) in receivers {
                let (present, offering) = (present.clone(), offering.to_string());
                let gated: ReceiveFn = Arc::new(move |tx, env, body| {
                    if present() {
                        f(tx, env, body)
                    } else {
                        Err(Refusal::new(
                            NO_HANDLER,
                            format!(
                                "{kind}: the offering {offering:?} is not installed in this site"
                            ),
                        ))
                    }
                });
                self.receive
                    .entry(store.clone())
                    .or_default()
                    .insert(kind, gated);
            }
        }
        self.answer.extend(other.answer);
    }

    /// The handler of messages of type `kind` in stores of kind `store`.
    fn receiver(&self, store: &StoreKind, kind: &str) -> Option<&ReceiveFn> {
        self.receive.get(store)?.get(kind)
    }

    /// Registers what the sender does with the answer to its message of
    /// type `M` (the original message comes back with it). Runs in the
    /// sender's transaction, once per message.
    pub fn on_answer<M: Message>(
        &mut self,
        handler: impl Fn(&mut Tx<'_>, M, Result<M::Answer, Refusal>) -> Result<(), mantle_store::Error>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        let f: AnswerFn = Arc::new(move |tx, body, result| {
            let msg: M =
                serde_json::from_value(body.clone()).map_err(|e| mantle_store::Error::Encode {
                    what: M::TYPE,
                    reason: format!("original message does not decode: {e}"),
                })?;
            let result = match result {
                Ok(v) => serde_json::from_value::<M::Answer>(v.clone())
                    .map_err(|e| Refusal::new("UNDECODABLE_ANSWER", e.to_string())),
                Err(r) => Err(r.clone()),
            };
            handler(tx, msg, result)
        });
        self.answer.insert(M::TYPE, f);
        self
    }
}

/// A registration of message handlers (see `SiteBuilder::messages`).
pub type MessageRegistration = fn(&mut MessageHandlers);

/// The site's messaging as operators and programs see it: what an address
/// names, and the messages parked in its stores (see
/// [`Site::messaging`](crate::Site::messaging)). Sending is done inside a
/// transaction ([`SendMessage`]); delivery runs by itself.
///
/// ```no_run
/// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
/// for parked in site.messaging().parked().await? {
///     println!("{} to {}: {}", parked.kind, parked.to, parked.reason);
///     site.messaging().discard(&parked.id).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Messaging(Arc<Inner>);

struct Inner {
    stores: Stores,
    /// The site's domain, for logins given as a bare localpart.
    domain: String,
    stats: MessagingStats,
    /// The handlers messages are applied with (also for batches other
    /// nodes carry here).
    handlers: Arc<MessageHandlers>,
    /// The other nodes' stores, in a cluster.
    remote: Option<Arc<dyn RemoteStores>>,
}

/// Registers the messaging items (receipts of messages applied).
pub(crate) fn register(registry: &mut mantle_store::Registry) {
    registry.register::<Receipt>();
}

/// Connects the stores' dispatchers to the messaging they deliver for (set
/// once it exists: the stores' configuration is made first). Weak: what the
/// stores' configuration holds must not keep the stores open.
#[derive(Clone, Default)]
pub(crate) struct MessagingLink(Arc<OnceLock<Weak<Inner>>>);

impl MessagingLink {
    fn get(&self) -> Option<Messaging> {
        self.0.get()?.upgrade().map(Messaging)
    }
}

impl Messaging {
    /// The messaging of a site whose stores are `stores`; `link` (given to
    /// [`install`] before) delivers for it from now on.
    pub(crate) fn new(
        stores: Stores,
        domain: String,
        stats: MessagingStats,
        link: &MessagingLink,
        handlers: Arc<MessageHandlers>,
        remote: Option<Arc<dyn RemoteStores>>,
    ) -> Self {
        let messaging = Self(Arc::new(Inner {
            stores,
            domain,
            stats,
            handlers,
            remote,
        }));
        let _ = link.0.set(Arc::downgrade(&messaging.0));
        messaging
    }

    /// The other nodes' stores, in a cluster.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn RemoteStores>> {
        self.0.remote.as_ref()
    }

    /// A user store's name among the nodes (see
    /// [`store_name`](crate::store_name)); `None` for other stores.
    /// `store`'s name among the nodes (see `remote.rs`), when this site is
    /// one of several.
    pub(crate) fn store_name_among_nodes(&self, store: &Store) -> Option<String> {
        let remote = self.0.remote.as_ref()?;
        let relative = store.path().strip_prefix(self.0.stores.dir()).ok()?;
        Some(crate::logins::node_store_name(
            remote.node(),
            relative.to_str()?,
        ))
    }
}

/// Why an address did not resolve to a store.
enum Resolve {
    /// For good (no such recipient, disabled).
    Refused(Refusal),
    /// For now (a store error).
    Later(String),
}

impl From<crate::SiteError> for Resolve {
    fn from(e: crate::SiteError) -> Self {
        Resolve::Later(e.to_string())
    }
}

impl From<mantle_store::Error> for Resolve {
    fn from(e: mantle_store::Error) -> Self {
        Resolve::Later(e.to_string())
    }
}

/// The refusal code of a message to an address no store answers to.
pub(crate) const NO_SUCH_RECIPIENT: &str = "NO_SUCH_RECIPIENT";

fn no_such(to: &str) -> Resolve {
    Resolve::Refused(Refusal::new(
        NO_SUCH_RECIPIENT,
        format!("no store answers to '{to}'"),
    ))
}

/// What a message address names (see [`Messaging::recipient`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The site store: `site`.
    Site,
    /// An app store: `app:NAME` (holds the NAME; the app may be undeclared).
    App(String),
    /// A user's store: the account a login or `account:ID` names.
    Account {
        /// The account.
        id: Id<Account>,
        /// Disabled accounts take no messages.
        disabled: bool,
    },
    /// A login or `account:ID` that names no account.
    NoAccount,
}

impl Messaging {
    /// What the message address `to` names: `site`, `app:NAME`, or the
    /// account of `account:ID` or of a login (a bare localpart takes the
    /// site's domain). Messages are delivered by this reading; programs
    /// use it to check an address before sending (that it is a user's,
    /// and whose).
    ///
    /// Fails with [`SiteError::InvalidRecipient`] for text that is none of
    /// these forms.
    pub async fn recipient(&self, to: &str) -> crate::Result<Recipient> {
        if to == "site" {
            return Ok(Recipient::Site);
        }
        if let Some(app) = to.strip_prefix("app:") {
            return Ok(Recipient::App(app.to_string()));
        }
        if let Some(name) = to.strip_prefix("store:") {
            // This node's own site or app store, by its name among the
            // nodes (see `remote.rs`).
            if let Some(remote) = &self.0.remote {
                match crate::logins::node_store_file(remote.node(), name) {
                    Some(file) if file == crate::SITE_STORE => return Ok(Recipient::Site),
                    Some(file) if !name.starts_with("users/") => {
                        let app = file.trim_start_matches("apps/").trim_end_matches(".store");
                        return Ok(Recipient::App(app.to_string()));
                    }
                    _ => {}
                }
            }
            // A user store by its name among the nodes.
            let path = format!("{name}.store");
            return self
                .0
                .stores
                .site_store()
                .read(move |r| {
                    let Some(sub) = r
                        .query::<SubStore>()
                        .filter(SubStore::PATH.eq(path.as_str()))
                        .first()?
                    else {
                        return Ok(Recipient::NoAccount);
                    };
                    Ok(
                        match r
                            .query::<Account>()
                            .filter(Account::USER_STORE.eq(sub.id()))
                            .first()?
                        {
                            Some(a) => Recipient::Account {
                                id: a.id(),
                                disabled: a.disabled,
                            },
                            None => Recipient::NoAccount,
                        },
                    )
                })
                .await;
        }
        let invalid = || SiteError::InvalidRecipient(to.to_string());
        let login = match to.strip_prefix("account:") {
            Some(id) => Err(Id::<Account>::from_raw(id.parse().map_err(|_| invalid())?)),
            None => Ok(Address::parse(to, &self.0.domain)
                .map_err(|_| invalid())?
                .to_string()),
        };
        self.0
            .stores
            .site_store()
            .read(move |r| {
                let id = match login {
                    Err(id) => Some(id),
                    Ok(address) => r
                        .query::<LoginMethod>()
                        .filter(LoginMethod::ADDRESS.eq(address.as_str()))
                        .first()?
                        .map(|m| m.account),
                };
                let account = match id {
                    Some(id) => r.get(id)?,
                    None => None,
                };
                Ok(match account {
                    Some(a) => Recipient::Account {
                        id: a.id(),
                        disabled: a.disabled,
                    },
                    None => Recipient::NoAccount,
                })
            })
            .await
    }

    /// The store a message from `from` to `to` goes to, and its kind. A
    /// disabled account takes no messages, except the site's own (giving
    /// or taking back offerings: the site's bookkeeping, not a user's
    /// request).
    async fn resolve_from(&self, from: &str, to: &str) -> Result<(Store, StoreKind), Resolve> {
        if from == "site"
            && let Ok(Recipient::Account { id, .. }) = self.recipient(to).await
        {
            return Ok((
                self.0.stores.user_store_unchecked(id).await?,
                StoreKind::User,
            ));
        }
        self.resolve(to).await
    }

    /// The store a message address names, and its kind.
    async fn resolve(&self, to: &str) -> Result<(Store, StoreKind), Resolve> {
        let recipient = match self.recipient(to).await {
            Ok(r) => r,
            Err(SiteError::InvalidRecipient(_)) => return Err(no_such(to)),
            Err(e) => return Err(e.into()),
        };
        match recipient {
            Recipient::Site => Ok((self.0.stores.site_store().clone(), StoreKind::Site)),
            Recipient::App(app) => {
                let sub = self
                    .0
                    .stores
                    .app_substore(&app)
                    .await?
                    .ok_or_else(|| no_such(to))?;
                let store = sub
                    .open(self.0.stores.site_store(), self.0.stores.cache())
                    .await?;
                Ok((store, StoreKind::App(app)))
            }
            Recipient::NoAccount => Err(no_such(to)),
            Recipient::Account { disabled: true, .. } => Err(Resolve::Refused(Refusal::new(
                "RECIPIENT_DISABLED",
                format!("'{to}' is disabled"),
            ))),
            Recipient::Account { id, .. } => Ok((
                self.0.stores.user_store_unchecked(id).await?,
                StoreKind::User,
            )),
        }
    }

    /// The primary login of the account whose store has the address
    /// `from`, if it is `account:ID` and that account has one. One indexed
    /// read of the site store.
    fn login_of(&self, from: &str) -> Result<Option<String>, mantle_store::Error> {
        let Some(id) = from.strip_prefix("account:").and_then(|i| i.parse().ok()) else {
            return Ok(None);
        };
        let account = Id::<Account>::from_raw(id);
        self.0.stores.site_store().read_now(move |r| {
            Ok(r.query::<LoginMethod>()
                .filter(
                    LoginMethod::ACCOUNT
                        .eq(account)
                        .and(LoginMethod::PRIMARY.eq(true)),
                )
                .first()?
                .map(|m| m.into_inner().address))
        })
    }

    /// The store an answer goes back to (disabled senders still get their
    /// answers: they must be able to undo).
    async fn resolve_sender(&self, to: &str) -> Result<Store, DispatchError> {
        if let Some(id) = to.strip_prefix("account:").and_then(|i| i.parse().ok()) {
            return self
                .0
                .stores
                .user_store_unchecked(Id::from_raw(id))
                .await
                .map_err(|e| DispatchError::retry(e.to_string()));
        }
        match self.resolve(to).await {
            Ok((s, _)) => Ok(s),
            Err(Resolve::Refused(r)) => {
                Err(DispatchError::permanent(format!("answer to {to}: {r}")))
            }
            Err(Resolve::Later(reason)) => Err(DispatchError::retry(reason)),
        }
    }
}
