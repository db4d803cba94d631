//! Effects on commit: the outbox.
//!
//! A transaction never talks to the network. It records effects (typed,
//! serde-encoded) in the `mantle_outbox` table, in the same SQLite
//! transaction as its data. After commit the store's dispatcher task hands
//! each pending effect to the handler registered for its kind and deletes
//! the row when the handler succeeds. A rolled-back transaction leaves no
//! row, so its effects never happen; a row not yet deleted when the process
//! dies is dispatched again after the next open. Handlers therefore see
//! each effect at least once, and exactly once per run of the process.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Notify;

use crate::store::{Store, StoreConfig, StoreInner};
use crate::value::Timestamp;
use crate::{Error, Result};

/// A typed effect that a transaction can record with
/// [`Tx::record`](crate::Tx::record).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendWelcomeMail { to: String }
/// impl mantle_store::Effect for SendWelcomeMail { const KIND: &'static str = "mail.welcome"; }
/// ```
pub trait Effect: Serialize + DeserializeOwned + Send + 'static {
    /// The name rows of this effect are stored under.
    const KIND: &'static str;
}

/// The outbox row of a recorded effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EffectId(pub(crate) i64);

impl EffectId {
    /// The raw row id.
    pub fn raw(self) -> i64 {
        self.0
    }
}

/// Why a dispatch failed, as told by the handler.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct DispatchError {
    /// What went wrong.
    pub reason: String,
    /// `true`: retrying cannot help; park the effect now.
    pub permanent: bool,
}

impl DispatchError {
    /// A failure worth retrying later (with back-off).
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }
    /// A failure that retrying cannot mend; the effect is parked.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
        }
    }
}

/// What a handler is told besides the effect itself.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The store whose transaction recorded the effect.
    pub store: Store,
    /// The effect's outbox id (stable across retries and restarts: use it
    /// to make the handler idempotent).
    pub id: EffectId,
    /// Earlier failed attempts.
    pub attempt: u32,
}

/// Dispatches a batch of one kind's effects (payloads as stored); one
/// result per effect, in order.
pub(crate) type DispatchFn = Arc<
    dyn Fn(Vec<(Delivery, String)>) -> BoxFuture<'static, Vec<Result<(), DispatchError>>>
        + Send
        + Sync,
>;

impl StoreConfig {
    /// Registers the handler for effects of type `E`, run after commit.
    ///
    /// ```
    /// # use mantle_store::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
    /// # impl Effect for Ping { const KIND: &'static str = "ping"; }
    /// let config = StoreConfig::new(Registry::new()).on_effect(|_delivery, ping: Ping| async move {
    ///     println!("ping {}", ping.n);
    ///     Ok(())
    /// });
    /// # let _ = config;
    /// ```
    pub fn on_effect<E, F, Fut>(self, handler: F) -> Self
    where
        E: Effect,
        F: Fn(Delivery, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), DispatchError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.on_effects::<E, _, _>(move |batch| {
            let runs: Vec<_> = batch.into_iter().map(|(d, e)| handler(d, e)).collect();
            async move { futures::future::join_all(runs).await }
        })
    }

    /// Registers a handler that receives due effects of type `E` in
    /// batches (up to 256, oldest first) and answers one result per effect,
    /// in order. For handlers that do better with many at once, such as
    /// delivering several messages to one store in one transaction.
    pub fn on_effects<E, F, Fut>(mut self, handler: F) -> Self
    where
        E: Effect,
        F: Fn(Vec<(Delivery, E)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), DispatchError>>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let f: DispatchFn = Arc::new(move |batch: Vec<(Delivery, String)>| {
            let mut decoded = Vec::with_capacity(batch.len());
            let mut slots: Vec<Option<Result<(), DispatchError>>> = Vec::with_capacity(batch.len());
            for (delivery, payload) in batch {
                match serde_json::from_str::<E>(&payload) {
                    Ok(effect) => {
                        decoded.push((delivery, effect));
                        slots.push(None);
                    }
                    Err(e) => slots.push(Some(Err(DispatchError::permanent(format!(
                        "cannot decode {} effect: {e}",
                        E::KIND
                    ))))),
                }
            }
            let handler = handler.clone();
            Box::pin(async move {
                let expected = decoded.len();
                let mut results = if decoded.is_empty() {
                    Vec::new()
                } else {
                    handler(decoded).await
                };
                if results.len() != expected {
                    results = (0..expected)
                        .map(|_| {
                            Err(DispatchError::retry(
                                "handler answered the wrong number of results",
                            ))
                        })
                        .collect();
                }
                let mut results = results.into_iter();
                slots
                    .into_iter()
                    .map(|s| {
                        s.unwrap_or_else(|| results.next().expect("one result per decoded effect"))
                    })
                    .collect()
            })
        });
        Arc::make_mut(&mut self.dispatchers).insert(E::KIND, f);
        self
    }
}

/// A pending effect as read from the outbox.
struct Pending {
    id: i64,
    kind: String,
    payload: String,
    attempts: u32,
}

const BATCH: usize = 256;

fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(10))).min(Duration::from_secs(60))
}

/// The dispatcher task of one store. Holds only a weak handle while idle so
/// the store can close.
pub(crate) async fn run_dispatcher(store: Weak<StoreInner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(inner) = store.upgrade() else { return };
        let store = Store { inner };
        let kinds: Vec<String> = store
            .inner
            .config
            .dispatchers
            .keys()
            .map(|k| k.to_string())
            .collect();
        let now = Timestamp::now().as_micros();
        let due = store.read(move |r| load_due(r, &kinds, now)).await;
        let (due, next) = match due {
            Ok(d) => d,
            Err(Error::Closed(_)) => return,
            Err(e) => {
                tracing::warn!(store = %store.path().display(), error = %e, "cannot read outbox");
                drop(store);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let wait = next.map_or(Duration::from_secs(3600), |t| {
                Duration::from_micros((t - now).max(0) as u64)
            });
            // With effects waiting for a retry, keep the store open (a
            // cache must not close it and strand them); with none, hold
            // only the weak handle so it can close.
            let keep_open = next.is_some().then_some(store);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
            drop(keep_open);
            continue;
        }
        let dispatchers = store.inner.config.dispatchers.clone();
        // One batch per kind, each in the outbox's order.
        let mut by_kind: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, p) in due.iter().enumerate() {
            match by_kind.iter_mut().find(|(k, _)| *k == p.kind) {
                Some((_, idx)) => idx.push(i),
                None => by_kind.push((p.kind.as_str(), vec![i])),
            }
        }
        let runs = by_kind.iter().map(|(kind, idx)| {
            let batch = idx
                .iter()
                .map(|&i| {
                    let p = &due[i];
                    let delivery = Delivery {
                        store: store.clone(),
                        id: EffectId(p.id),
                        attempt: p.attempts,
                    };
                    (delivery, p.payload.clone())
                })
                .collect();
            dispatchers[*kind](batch)
        });
        let per_kind = futures::future::join_all(runs).await;
        let mut results: Vec<Option<Result<(), DispatchError>>> =
            due.iter().map(|_| None).collect();
        for ((_, idx), rs) in by_kind.iter().zip(per_kind) {
            for (&i, r) in idx.iter().zip(rs) {
                results[i] = Some(r);
            }
        }
        let results: Vec<Result<(), DispatchError>> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DispatchError::retry("no result from handler"))))
            .collect();
        let max_attempts = store.inner.config.max_attempts;
        let outcome: Vec<(i64, u32, Result<(), DispatchError>)> = due
            .into_iter()
            .zip(results)
            .map(|(p, r)| (p.id, p.attempts, r))
            .collect();
        let marked = store
            .transact(move |tx| mark(tx, outcome, max_attempts))
            .await;
        match marked {
            Ok((dispatched, parked)) => {
                if let Some(stats) = &store.inner.config.stats {
                    stats.effects_done(dispatched, parked);
                }
            }
            Err(Error::Closed(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark dispatched effects");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Due effects of the given kinds (oldest first), and when the next one
/// not yet due will be.
fn load_due(
    r: &crate::ReadTx<'_>,
    kinds: &[String],
    now: i64,
) -> Result<(Vec<Pending>, Option<i64>)> {
    if kinds.is_empty() {
        return Ok((Vec::new(), None));
    }
    let list = vec!["?"; kinds.len()].join(",");
    let mut stmt = r.conn.prepare_cached(&format!(
        "SELECT id, kind, payload, attempts FROM mantle_outbox
         WHERE parked = 0 AND next_attempt <= ? AND kind IN ({list}) ORDER BY id LIMIT {BATCH}"
    ))?;
    let params = std::iter::once(rusqlite::types::Value::Integer(now)).chain(
        kinds
            .iter()
            .map(|k| rusqlite::types::Value::Text(k.clone())),
    );
    let due = stmt
        .query_map(rusqlite::params_from_iter(params.clone()), |row| {
            Ok(Pending {
                id: row.get(0)?,
                kind: row.get(1)?,
                payload: row.get(2)?,
                attempts: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = r
        .conn
        .prepare_cached(&format!(
            "SELECT min(next_attempt) FROM mantle_outbox WHERE parked = 0 AND next_attempt > ? AND kind IN ({list})"
        ))?
        .query_row(rusqlite::params_from_iter(params), |row| row.get(0))?;
    Ok((due, next))
}

/// Deletes delivered effects; reschedules or parks failed ones. Returns
/// how many were delivered and how many parked.
fn mark(
    tx: &mut crate::Tx<'_>,
    outcome: Vec<(i64, u32, Result<(), DispatchError>)>,
    max_attempts: u32,
) -> Result<(u64, u64)> {
    let conn = tx.read.conn;
    let mut done = conn.prepare_cached("DELETE FROM mantle_outbox WHERE id = ?1")?;
    let mut failed = conn.prepare_cached(
        "UPDATE mantle_outbox SET attempts = ?2, next_attempt = ?3, parked = ?4, last_error = ?5 WHERE id = ?1",
    )?;
    let now = Timestamp::now();
    let (mut delivered, mut parked) = (0, 0);
    for (id, attempts, result) in outcome {
        match result {
            Ok(()) => {
                done.execute([id])?;
                delivered += 1;
            }
            Err(e) => {
                let attempts = attempts + 1;
                let park = e.permanent || attempts >= max_attempts;
                if park {
                    tracing::warn!(effect = id, reason = %e.reason, "effect parked");
                    parked += 1;
                }
                failed.execute(rusqlite::params![
                    id,
                    attempts,
                    (now + backoff(attempts)).as_micros(),
                    park,
                    e.reason
                ])?;
            }
        }
    }
    Ok((delivered, parked))
}

/// An effect that is parked or waiting, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The outbox id.
    pub id: EffectId,
    /// The effect's kind.
    pub kind: String,
    /// The JSON payload.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Whether it is parked (no more automatic attempts).
    pub parked: bool,
    /// The last failure.
    pub last_error: Option<String>,
}

impl Store {
    /// Effects still in the outbox (pending or parked), oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.read(|r| {
            let mut stmt = r.conn.prepare(
                "SELECT id, kind, payload, attempts, parked, last_error FROM mantle_outbox ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(OutboxEntry {
                        id: EffectId(row.get(0)?),
                        kind: row.get(1)?,
                        payload: row.get(2)?,
                        attempts: row.get(3)?,
                        parked: row.get(4)?,
                        last_error: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    /// Deletes a parked effect (an operator gave up on it); returns whether
    /// it was parked.
    pub async fn drop_effect(&self, id: EffectId) -> Result<bool> {
        let n = self
            .transact(move |tx| {
                Ok::<_, Error>(tx.read.conn.execute(
                    "DELETE FROM mantle_outbox WHERE id = ?1 AND parked = 1",
                    [id.0],
                )?)
            })
            .await?;
        Ok(n > 0)
    }

    /// Puts a parked effect back in line for dispatch; returns whether it
    /// was parked.
    pub async fn retry_effect(&self, id: EffectId) -> Result<bool> {
        let n = self
            .transact(move |tx| {
                Ok::<_, Error>(tx.read.conn.execute(
                    "UPDATE mantle_outbox SET parked = 0, attempts = 0, next_attempt = ?2 WHERE id = ?1 AND parked = 1",
                    rusqlite::params![id.0, Timestamp::now().as_micros()],
                )?)
            })
            .await?;
        if let Some(stats) = &self.inner.config.stats {
            stats.effects_requeued(n as u64);
        }
        self.inner.outbox_wake.notify_one();
        Ok(n > 0)
    }
}
