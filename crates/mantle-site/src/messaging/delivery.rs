//! Delivery: the dispatchers that carry messages and answers from one
//! store's outbox to another store, and apply them there once.

use futures::future::join_all;
use mantle_store::{Delivery, DispatchError, Store, StoreConfig, Timestamp, Tx};

use super::*;

/// Adds the messaging dispatchers to a site's store config.
pub(crate) fn install(
    config: StoreConfig,
    link: MessagingLink,
    handlers: Arc<MessageHandlers>,
) -> StoreConfig {
    let (l1, h1) = (link.clone(), handlers.clone());
    config
        .on_effects::<Outgoing, _, _>(move |batch| {
            let (link, handlers) = (l1.clone(), h1.clone());
            async move {
                match link.get() {
                    Some(messaging) => {
                        let stats = messaging.0.stats.clone();
                        stats.handing_over(batch.iter().filter(|(d, _)| d.attempt == 0).count());
                        let results = deliver_messages(&messaging, &handlers, batch).await;
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
                match link.get() {
                    Some(messaging) => deliver_answers(&messaging, &handlers, batch).await,
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

/// Who sent a batch of messages (all from one store).
#[derive(Debug, Clone)]
pub(super) struct Sender {
    /// The sending store's address (`account:ID`, `app:NAME`, `site`;
    /// `store:NAME` for a store of another node).
    pub(super) address: String,
    /// The sending account's primary login (see [`Envelope::sender_login`]).
    pub(super) login: Option<String>,
    /// The store's name among the nodes (see `remote.rs`), when this
    /// site is one of several.
    pub(super) store: Option<String>,
}

/// What became of one message at its recipient.
pub(super) enum Applied {
    /// Applied now or before (its answer, if any, is in the recipient's outbox).
    Done,
    /// Refused for good: answer (if expected) and park.
    Refused(Refusal),
    /// Failed for now: retry later.
    Later(String),
}

async fn deliver_messages(
    messaging: &Messaging,
    handlers: &MessageHandlers,
    batch: Vec<(Delivery, Outgoing)>,
) -> Vec<Result<(), DispatchError>> {
    let Some(sender) = batch.first().map(|(d, _)| d.store.clone()) else {
        return Vec::new();
    };
    let from = match messaging.0.stores.address_of(&sender).await {
        Ok(a) => a,
        Err(e) => {
            return batch
                .iter()
                .map(|_| Err(DispatchError::retry(e.to_string())))
                .collect();
        }
    };
    // Once per batch: every message in it has the same sender.
    let from = match messaging.login_of(&from) {
        Ok(login) => Sender {
            address: from,
            login,
            store: messaging.store_name_among_nodes(&sender),
        },
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
                mantle_store::ok(
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
    let delivered = deliver_fresh(handlers, &sender, &from, max_attempts, messaging, batch).await;
    results_before.extend(positions.into_iter().zip(delivered));
    results_before.sort_by_key(|(i, _)| *i);
    results_before.into_iter().map(|(_, r)| r).collect()
}

/// Delivers messages not answered before; one result per message.
async fn deliver_fresh(
    handlers: &MessageHandlers,
    sender: &Store,
    from: &Sender,
    max_attempts: u32,
    messaging: &Messaging,
    batch: Vec<(Delivery, Outgoing)>,
) -> Vec<Result<(), DispatchError>> {
    let groups = group_by(&batch, |(_, m)| m.to.as_str());
    let runs = groups.iter().map(|(to, idx)| {
        let msgs: Vec<Outgoing> = idx.iter().map(|&i| batch[i].1.clone()).collect();
        apply_at_recipient(messaging, handlers, to.clone(), from.clone(), msgs, true)
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
                    to: from.address.clone(),
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
                    mantle_store::ok(())
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

/// Applies messages for one recipient in one of its transactions. A
/// recipient no store here answers to is looked for on the other nodes
/// when `may_forward` (not for batches another node carried here: they
/// were sent here because this node holds the store, and if it moved on
/// meanwhile, the sender tries again).
pub(super) async fn apply_at_recipient(
    messaging: &Messaging,
    handlers: &MessageHandlers,
    to: String,
    from: Sender,
    msgs: Vec<Outgoing>,
    may_forward: bool,
) -> Vec<Applied> {
    let (recipient, kind) = match messaging.resolve_from(&from.address, &to).await {
        Ok(found) => found,
        Err(Resolve::Refused(r)) if r.code == NO_SUCH_RECIPIENT => {
            let Some(remote) = messaging.remote() else {
                return msgs.iter().map(|_| Applied::Refused(r.clone())).collect();
            };
            if !may_forward {
                let later = format!("{to} is not on this node (it may have moved)");
                return msgs.iter().map(|_| Applied::Later(later.clone())).collect();
            }
            return match remote.locate(&to).await {
                super::remote::Located::Elsewhere(store) => {
                    super::remote::deliver(remote.as_ref(), &from, &store, msgs).await
                }
                super::remote::Located::Nowhere => {
                    msgs.iter().map(|_| Applied::Refused(r.clone())).collect()
                }
                super::remote::Located::Unavailable(why) => {
                    msgs.iter().map(|_| Applied::Later(why.clone())).collect()
                }
            };
        }
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
    let to = match messaging.0.stores.address_of(&recipient).await {
        Ok(a) => a,
        Err(e) => {
            return msgs.iter().map(|_| Applied::Later(e.to_string())).collect();
        }
    };
    let handlers = handlers.clone();
    let n = msgs.len();
    let applied = recipient
        .transact(move |tx| {
            let mut out = Vec::with_capacity(msgs.len());
            for m in &msgs {
                out.push(apply_one(tx, &handlers, &kind, &from, &to, m)?);
            }
            mantle_store::ok(out)
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
    from: &Sender,
    to: &str,
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
        from: from.address.clone(),
        sender_login: from.login.clone(),
        to: to.to_string(),
        share: m.share.clone(),
    };
    let result = tx.attempt(|tx| handler(tx, &envelope, &m.body));
    if let Err(r) = &result {
        if !r.permanent {
            return Ok(Applied::Later(r.to_string()));
        }
        // A body that does not decode, or the handler of an offering that
        // is not installed (`merge_gated` refuses with NO_HANDLER): like a
        // missing handler, not recorded, so that a retry once it is
        // installed applies the message; the sender answers itself and
        // parks it.
        if r.code == UNDECODABLE || r.code == NO_HANDLER {
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
                to: from.address.clone(),
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
pub(super) fn apply_answer(
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
    messaging: &Messaging,
    handlers: &MessageHandlers,
    batch: Vec<(Delivery, Answer)>,
) -> Vec<Result<(), DispatchError>> {
    let groups = group_by(&batch, |(_, a)| a.to.as_str());
    let runs = groups.iter().map(|(to, idx)| {
        let answers: Vec<Answer> = idx.iter().map(|&i| batch[i].1.clone()).collect();
        let handlers = handlers.clone();
        let to = to.clone();
        let answering = batch.first().map(|(d, _)| d.store.clone());
        async move {
            let store = match messaging.resolve_sender(&to).await {
                Ok(s) => s,
                Err(reason) => {
                    // The sender may live on another node (or have moved
                    // there): carry the answers to it.
                    let Some(remote) = messaging.remote() else {
                        return Err(reason);
                    };
                    let from = answering
                        .as_ref()
                        .and_then(|s| messaging.store_name_among_nodes(s))
                        .unwrap_or_default();
                    return match remote.locate(&to).await {
                        super::remote::Located::Elsewhere(store) => {
                            super::remote::answer(remote.as_ref(), &from, &store, &answers)
                                .await
                                .map_err(DispatchError::retry)
                        }
                        super::remote::Located::Nowhere => Err(reason),
                        super::remote::Located::Unavailable(why) => Err(DispatchError::retry(why)),
                    };
                }
            };
            store
                .transact(move |tx| {
                    for a in &answers {
                        apply_answer(tx, &handlers, a)?;
                    }
                    mantle_store::ok(())
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
