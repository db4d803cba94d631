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

use futures::future::join_all;
use mantle_store::{
    Delivery, DispatchError, Effect, Id, Item, Store, StoreConfig, SubStore, Timestamp, Tx,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SiteError;
use crate::address::Address;
use crate::items::{Account, LoginMethod};
use crate::site::{Site, SiteInner};

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
pub(crate) struct Outgoing {
    pub id: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Value,
    pub one_way: bool,
    /// When it was sent (µs since the epoch), for latency figures.
    pub sent: i64,
}

impl Effect for Outgoing {
    const KIND: &'static str = "mantle.message";
}

/// An answer on its way back, in the recipient's outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Answer {
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
        let id = new_message_id()?;
        let body = serde_json::to_value(message).map_err(|e| mantle_store::Error::Encode {
            what: M::TYPE,
            reason: e.to_string(),
        })?;
        self.record(&Outgoing {
            id: id.clone(),
            to: to.to_string(),
            kind: M::TYPE.to_string(),
            body,
            one_way: M::ONE_WAY,
            sent: Timestamp::now().as_micros(),
        })?;
        Ok(MessageId(id))
    }
}

/// What a receive handler is told besides the message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The message's id.
    pub id: MessageId,
    /// The sender's stable address (`account:ID`, `app:NAME`, `site`).
    pub from: String,
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

/// Connects a store config to the site it will belong to (set once the
/// site exists: the config is made first).
#[derive(Clone, Default)]
pub(crate) struct SiteLink(Arc<OnceLock<Weak<SiteInner>>>);

impl SiteLink {
    pub fn set(&self, site: &Site) {
        let _ = self.0.set(Arc::downgrade(&site.inner));
    }
    pub(crate) fn site(&self) -> Option<Site> {
        self.0.get()?.upgrade().map(|inner| Site { inner })
    }
}

/// Adds the messaging dispatchers to a site's store config.
pub(crate) fn install(
    config: StoreConfig,
    link: SiteLink,
    handlers: Arc<MessageHandlers>,
) -> StoreConfig {
    let (l1, h1) = (link.clone(), handlers.clone());
    config
        .on_effects::<Outgoing, _, _>(move |batch| {
            let (link, handlers) = (l1.clone(), h1.clone());
            async move {
                match link.site() {
                    Some(site) => {
                        let stats = site.inner.stats.messaging.clone();
                        stats.handing_over(batch.iter().filter(|(d, _)| d.attempt == 0).count());
                        let results = deliver_messages(&site, &handlers, batch).await;
                        stats.outcomes(&results);
                        results
                    }
                    None => batch
                        .iter()
                        .map(|_| Err(DispatchError::retry("site is closing")))
                        .collect(),
                }
            }
        })
        .on_effects::<Answer, _, _>(move |batch| {
            let (link, handlers) = (link.clone(), handlers.clone());
            async move {
                match link.site() {
                    Some(site) => deliver_answers(&site, &handlers, batch).await,
                    None => batch
                        .iter()
                        .map(|_| Err(DispatchError::retry("site is closing")))
                        .collect(),
                }
            }
        })
}

/// Groups item indexes by a key, keeping first-seen order.
fn group_by<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        match groups.iter_mut().find(|(g, _)| g == k) {
            Some((_, v)) => v.push(i),
            None => groups.push((k.to_string(), vec![i])),
        }
    }
    groups
}

/// What became of one message at its recipient.
enum Applied {
    /// Applied now or before (its answer, if any, is in the recipient's outbox).
    Done,
    /// Refused for good: answer (if expected) and park.
    Refused(Refusal),
    /// Failed for now: retry later.
    Later(String),
}

async fn deliver_messages(
    site: &Site,
    handlers: &MessageHandlers,
    batch: Vec<(Delivery, Outgoing)>,
) -> Vec<Result<(), DispatchError>> {
    let Some(sender) = batch.first().map(|(d, _)| d.store.clone()) else {
        return Vec::new();
    };
    let from = match site.address_of(&sender).await {
        Ok(a) => a,
        Err(e) => {
            return batch
                .iter()
                .map(|_| Err(DispatchError::retry(e.to_string())))
                .collect();
        }
    };
    let max_attempts = sender.config().max_dispatch_attempts_value();
    // A retried message may have been answered with a refusal already (the
    // process died between answering and parking it): the sender may have
    // undone its side, so it must not be delivered now.
    let retried: Vec<String> = batch
        .iter()
        .filter(|(d, m)| d.attempt > 0 && !m.one_way)
        .map(|(_, m)| format!("answer:{}", m.id))
        .collect();
    let answered: std::collections::HashSet<String> = if retried.is_empty() {
        Default::default()
    } else {
        match sender
            .read(move |r| {
                Ok::<_, mantle_store::Error>(
                    r.query::<Receipt>()
                        .filter(Receipt::KEY.is_in(retried.iter().map(String::as_str)))
                        .all()?
                        .into_iter()
                        .map(|r| r.into_inner().key)
                        .collect(),
                )
            })
            .await
        {
            Ok(a) => a,
            Err(e) => {
                return batch
                    .iter()
                    .map(|_| Err(DispatchError::retry(e.to_string())))
                    .collect();
            }
        }
    };
    let (batch, done_before): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .enumerate()
        .partition(|(_, (_, m))| !answered.contains(&format!("answer:{}", m.id)));
    let mut results_before: Vec<(usize, Result<(), DispatchError>)> = done_before
        .into_iter()
        .map(|(i, _)| {
            (
                i,
                Err(DispatchError::permanent(
                    "answered with a refusal before; not delivered",
                )),
            )
        })
        .collect();
    let (positions, batch): (Vec<usize>, Vec<(Delivery, Outgoing)>) = batch.into_iter().unzip();
    let delivered = deliver_fresh(handlers, &sender, &from, max_attempts, site, batch).await;
    results_before.extend(positions.into_iter().zip(delivered));
    results_before.sort_by_key(|(i, _)| *i);
    results_before.into_iter().map(|(_, r)| r).collect()
}

/// Delivers messages not answered before; one result per message.
async fn deliver_fresh(
    handlers: &MessageHandlers,
    sender: &Store,
    from: &str,
    max_attempts: u32,
    site: &Site,
    batch: Vec<(Delivery, Outgoing)>,
) -> Vec<Result<(), DispatchError>> {
    let from = from.to_string();
    let groups = group_by(&batch, |(_, m)| m.to.as_str());
    let runs = groups.iter().map(|(to, idx)| {
        let msgs: Vec<Outgoing> = idx.iter().map(|&i| batch[i].1.clone()).collect();
        apply_at_recipient(site, handlers, to.clone(), from.clone(), msgs)
    });
    let outcomes = join_all(runs).await;

    let mut results: Vec<Option<Result<(), DispatchError>>> = batch.iter().map(|_| None).collect();
    let mut to_answer: Vec<(usize, Refusal)> = Vec::new();
    for ((_, idx), applied) in groups.iter().zip(outcomes) {
        for (&i, a) in idx.iter().zip(applied) {
            let attempt = batch[i].0.attempt;
            let a = match a {
                Applied::Later(reason) if attempt + 1 >= max_attempts => {
                    Applied::Refused(Refusal::new(
                        "UNDELIVERABLE",
                        format!("gave up after {} attempts: {reason}", attempt + 1),
                    ))
                }
                other => other,
            };
            match a {
                Applied::Done => results[i] = Some(Ok(())),
                Applied::Later(reason) => results[i] = Some(Err(DispatchError::retry(reason))),
                Applied::Refused(r) => to_answer.push((i, r)),
            }
        }
    }
    if !to_answer.is_empty() {
        // Answer refusals in the sender's own store, then park the messages.
        let answers: Vec<Answer> = to_answer
            .iter()
            .filter(|(i, _)| !batch[*i].1.one_way)
            .map(|(i, r)| {
                let m = &batch[*i].1;
                Answer {
                    id: m.id.clone(),
                    to: from.clone(),
                    kind: m.kind.clone(),
                    body: m.body.clone(),
                    result: Err(r.clone()),
                }
            })
            .collect();
        let answered = if answers.is_empty() {
            Ok(())
        } else {
            let handlers = handlers.clone();
            sender
                .transact(move |tx| {
                    for a in &answers {
                        apply_answer(tx, &handlers, a)?;
                    }
                    Ok::<_, mantle_store::Error>(())
                })
                .await
        };
        for (i, r) in to_answer {
            results[i] = Some(match &answered {
                Ok(()) => {
                    tracing::warn!(message = %batch[i].1.id, to = %batch[i].1.to, reason = %r, "message parked");
                    Err(DispatchError::permanent(r.to_string()))
                }
                Err(e) => Err(DispatchError::retry(format!(
                    "cannot answer the refusal yet: {e}"
                ))),
            });
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DispatchError::retry("not delivered"))))
        .collect()
}

/// Applies messages for one recipient in one of its transactions.
async fn apply_at_recipient(
    site: &Site,
    handlers: &MessageHandlers,
    to: String,
    from: String,
    msgs: Vec<Outgoing>,
) -> Vec<Applied> {
    let (recipient, kind) = match site.resolve(&to).await {
        Ok(found) => found,
        Err(Resolve::Refused(r)) => {
            return msgs.iter().map(|_| Applied::Refused(r.clone())).collect();
        }
        Err(Resolve::Later(reason)) => {
            return msgs
                .iter()
                .map(|_| Applied::Later(reason.clone()))
                .collect();
        }
    };
    let handlers = handlers.clone();
    let n = msgs.len();
    let applied = recipient
        .transact(move |tx| {
            let mut out = Vec::with_capacity(msgs.len());
            for m in &msgs {
                out.push(apply_one(tx, &handlers, &kind, &from, m)?);
            }
            Ok::<_, mantle_store::Error>(out)
        })
        .await;
    match applied {
        Ok(v) => v,
        Err(e) => (0..n).map(|_| Applied::Later(e.to_string())).collect(),
    }
}

fn apply_one(
    tx: &mut Tx<'_>,
    handlers: &MessageHandlers,
    store: &StoreKind,
    from: &str,
    m: &Outgoing,
) -> Result<Applied, mantle_store::Error> {
    let key = format!("msg:{}", m.id);
    if tx
        .query::<Receipt>()
        .filter(Receipt::KEY.eq(key.as_str()))
        .exists()?
    {
        return Ok(Applied::Done);
    }
    // After the receipt check: a message applied before (by a program
    // that had a handler here) stays applied, and is not refused now.
    let Some(handler) = handlers.receiver(store, m.kind.as_str()) else {
        // Not recorded: a later program with a handler may apply it.
        return Ok(Applied::Refused(Refusal::new(
            NO_HANDLER,
            format!("no handler for {} in {store}", m.kind),
        )));
    };
    let envelope = Envelope {
        id: MessageId(m.id.clone()),
        from: from.to_string(),
    };
    let result = tx.attempt(|tx| handler(tx, &envelope, &m.body));
    if let Err(r) = &result {
        if !r.permanent {
            return Ok(Applied::Later(r.to_string()));
        }
        if r.code == UNDECODABLE {
            // Like a missing handler: not recorded, parked at the sender.
            return Ok(Applied::Refused(r.clone()));
        }
    }
    tx.insert(&Receipt {
        key,
        at: Timestamp::now(),
    })?;
    match (&result, m.one_way) {
        (_, false) => {
            tx.record(&Answer {
                id: m.id.clone(),
                to: from.to_string(),
                kind: m.kind.clone(),
                body: m.body.clone(),
                result: result.clone(),
            })?;
            Ok(Applied::Done)
        }
        (Ok(_), true) => Ok(Applied::Done),
        (Err(r), true) => Ok(Applied::Refused(r.clone())),
    }
}

/// Applies one answer in the original sender's transaction, once.
fn apply_answer(
    tx: &mut Tx<'_>,
    handlers: &MessageHandlers,
    a: &Answer,
) -> Result<(), mantle_store::Error> {
    let key = format!("answer:{}", a.id);
    if tx
        .query::<Receipt>()
        .filter(Receipt::KEY.eq(key.as_str()))
        .exists()?
    {
        return Ok(());
    }
    match handlers.answer.get(a.kind.as_str()) {
        Some(h) => h(tx, &a.body, a.result.as_ref())?,
        None => tracing::debug!(message = %a.id, kind = %a.kind, "answer with no answer handler"),
    }
    tx.insert(&Receipt {
        key,
        at: Timestamp::now(),
    })?;
    Ok(())
}

async fn deliver_answers(
    site: &Site,
    handlers: &MessageHandlers,
    batch: Vec<(Delivery, Answer)>,
) -> Vec<Result<(), DispatchError>> {
    let groups = group_by(&batch, |(_, a)| a.to.as_str());
    let runs = groups.iter().map(|(to, idx)| {
        let answers: Vec<Answer> = idx.iter().map(|&i| batch[i].1.clone()).collect();
        let handlers = handlers.clone();
        let to = to.clone();
        async move {
            let store = match site.resolve_sender(&to).await {
                Ok(s) => s,
                Err(reason) => return Err(reason),
            };
            store
                .transact(move |tx| {
                    for a in &answers {
                        apply_answer(tx, &handlers, a)?;
                    }
                    Ok::<_, mantle_store::Error>(())
                })
                .await
                .map_err(|e| DispatchError::retry(e.to_string()))
        }
    });
    let outcomes = join_all(runs).await;
    let mut results: Vec<Result<(), DispatchError>> = batch.iter().map(|_| Ok(())).collect();
    for ((_, idx), outcome) in groups.iter().zip(outcomes) {
        for &i in idx {
            results[i] = outcome.clone();
        }
    }
    results
}

/// Why an address did not resolve to a store.
pub(crate) enum Resolve {
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

fn no_such(to: &str) -> Resolve {
    Resolve::Refused(Refusal::new(
        "NO_SUCH_RECIPIENT",
        format!("no store answers to '{to}'"),
    ))
}

/// What a message address names (see [`Site::recipient`]).
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

impl Site {
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
        let invalid = || SiteError::InvalidRecipient(to.to_string());
        let login = match to.strip_prefix("account:") {
            Some(id) => Err(Id::<Account>::from_raw(id.parse().map_err(|_| invalid())?)),
            None => Ok(Address::parse(to, &self.config().domain)
                .map_err(|_| invalid())?
                .to_string()),
        };
        self.site_store()
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

    /// The store a message address names, and its kind.
    pub(crate) async fn resolve(&self, to: &str) -> Result<(Store, StoreKind), Resolve> {
        let recipient = match self.recipient(to).await {
            Ok(r) => r,
            Err(SiteError::InvalidRecipient(_)) => return Err(no_such(to)),
            Err(e) => return Err(e.into()),
        };
        match recipient {
            Recipient::Site => Ok((self.site_store().clone(), StoreKind::Site)),
            Recipient::App(app) => {
                let sub = self.app_substore(&app).await?.ok_or_else(|| no_such(to))?;
                let store = sub.open(self.site_store(), self.stores()).await?;
                Ok((store, StoreKind::App(app)))
            }
            Recipient::NoAccount => Err(no_such(to)),
            Recipient::Account { disabled: true, .. } => Err(Resolve::Refused(Refusal::new(
                "RECIPIENT_DISABLED",
                format!("'{to}' is disabled"),
            ))),
            Recipient::Account { id, .. } => Ok((self.user_store(id).await?, StoreKind::User)),
        }
    }

    /// The store an answer goes back to (disabled senders still get their
    /// answers: they must be able to undo).
    async fn resolve_sender(&self, to: &str) -> Result<Store, DispatchError> {
        if let Some(id) = to.strip_prefix("account:").and_then(|i| i.parse().ok()) {
            return self
                .user_store(Id::from_raw(id))
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

/// A message parked in some store's outbox, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedMessage {
    /// `STORE_ADDRESS/OUTBOX_ID`: what `retry` and `drop` take.
    pub id: String,
    /// The message's own id.
    pub message: String,
    /// The sending store's address.
    pub from: String,
    /// The recipient as addressed.
    pub to: String,
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Failed attempts.
    pub attempts: u32,
    /// Why it was parked.
    pub reason: String,
}

impl Site {
    /// Every parked message in the site's stores (site, app and user stores).
    pub async fn parked_messages(&self) -> crate::Result<Vec<ParkedMessage>> {
        let mut stores = vec![self.site_store().clone()];
        let subs = self
            .site_store()
            .read(|r| r.query::<SubStore>().all())
            .await?;
        for sub in subs {
            stores.push(self.store_by_address(&sub.name).await?);
        }
        let mut out = Vec::new();
        for store in stores {
            let from = self.address_of(&store).await?;
            for e in store.outbox().await? {
                if !e.parked || e.kind != Outgoing::KIND {
                    continue;
                }
                let Ok(m) = serde_json::from_str::<Outgoing>(&e.payload) else {
                    continue;
                };
                out.push(ParkedMessage {
                    id: format!("{from}/{}", e.id.raw()),
                    message: m.id,
                    from: from.clone(),
                    to: m.to,
                    kind: m.kind,
                    attempts: e.attempts,
                    reason: e.last_error.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn store_by_address(&self, address: &str) -> crate::Result<Store> {
        if address == "site" {
            return Ok(self.site_store().clone());
        }
        if let Some(id) = address
            .strip_prefix("account:")
            .and_then(|i| i.parse().ok())
        {
            return self.user_store(Id::from_raw(id)).await;
        }
        let name = address.to_string();
        let sub = self
            .site_store()
            .read(move |r| {
                r.query::<SubStore>()
                    .filter(SubStore::NAME.eq(name.as_str()))
                    .first()
            })
            .await?
            .ok_or_else(|| crate::SiteError::NoSuchStore(address.to_string()))?;
        Ok(sub.open(self.site_store(), self.stores()).await?)
    }

    async fn parked(&self, id: &str) -> crate::Result<(Store, mantle_store::EffectId, Outgoing)> {
        let bad = || crate::SiteError::BadMessageId(id.to_string());
        let (address, n) = id.rsplit_once('/').ok_or_else(bad)?;
        let n: i64 = n.parse().map_err(|_| bad())?;
        let store = self.store_by_address(address).await?;
        let entry = store
            .outbox()
            .await?
            .into_iter()
            .find(|e| e.id.raw() == n && e.parked && e.kind == Outgoing::KIND)
            .ok_or_else(|| crate::SiteError::NoSuchParkedMessage(id.to_string()))?;
        let m = serde_json::from_str::<Outgoing>(&entry.payload).map_err(|e| {
            crate::SiteError::Damaged {
                what: format!("parked message '{id}'"),
                reason: e.to_string(),
            }
        })?;
        Ok((store, entry.id, m))
    }

    /// Puts a parked message back in line. Refused for a message whose
    /// sender was already answered with a refusal: it may have undone its
    /// side (a refund), so delivering now would apply the message twice in
    /// effect.
    pub async fn retry_message(&self, id: &str) -> crate::Result<()> {
        let (store, effect, m) = self.parked(id).await?;
        let key = format!("answer:{}", m.id);
        let answered = store
            .read(move |r| {
                r.query::<Receipt>()
                    .filter(Receipt::KEY.eq(key.as_str()))
                    .exists()
            })
            .await?;
        if answered {
            return Err(crate::SiteError::MessageAnswered(id.to_string()));
        }
        store.retry_effect(effect).await?;
        Ok(())
    }

    /// Deletes a parked message for good.
    pub async fn drop_message(&self, id: &str) -> crate::Result<()> {
        let (store, effect, _) = self.parked(id).await?;
        store.drop_effect(effect).await?;
        Ok(())
    }
}
