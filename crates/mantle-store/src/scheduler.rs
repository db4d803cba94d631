//! Persistent timed events: "run this item's task at T, then every D".
//!
//! Schedules are rows of `mantle_schedule`, written in the transaction that
//! makes them, so they survive restarts. Each open store with registered
//! tasks runs a scheduler task that sleeps until the earliest due row, then
//! runs each due task in its own transaction. A run that fails is rolled
//! back and retried with back-off; a repeating one is moved to its next
//! slot after now (missed slots while the store was closed run once, not
//! once per slot).
//!
//! The scheduler only looks at rows whose (item type, task) this program
//! registers, type and task both. Other rows, left by a program that
//! registered more (a store outlives its code), are not run, failed,
//! re-timed or deleted, and do not wake the scheduler: they wait, due or
//! not, until a program that registers them opens the store, which runs
//! each overdue one once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::OptionalExtension;
use rusqlite::types::Value;
use tokio::sync::Notify;

use crate::store::{Store, StoreInner};
use crate::value::Timestamp;
use crate::{Error, Result};

/// A scheduled run, as returned by [`Tx::schedule`](crate::Tx::schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleId(pub(crate) i64);

impl ScheduleId {
    /// The raw row id.
    pub fn raw(self) -> i64 {
        self.0
    }
}

fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(8)).min(Duration::from_secs(300))
}

/// The SQL condition selecting rows whose (type, task) is registered, the
/// type included: the rest are left alone.
fn known_tasks(store: &Store) -> (String, Vec<Value>) {
    let registry = &store.inner.config.registry;
    let mut params = Vec::new();
    let conds: Vec<&str> = registry
        .task_names()
        .into_iter()
        .filter(|(t, _)| registry.knows(t))
        .map(|(t, n)| {
            params.push(Value::Text(t.to_string()));
            params.push(Value::Text(n));
            "(item_type = ? AND task = ?)"
        })
        .collect();
    if conds.is_empty() {
        // Only tasks of unregistered types: nothing to run.
        return ("(0)".to_string(), params);
    }
    (format!("({})", conds.join(" OR ")), params)
}

pub(crate) async fn run_scheduler(store: Weak<StoreInner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(inner) = store.upgrade() else { return };
        let store = Store { inner };
        let now = Timestamp::now().as_micros();
        let (cond, params) = known_tasks(&store);
        let due = store
            .read(move |r| {
                let mut p = params.clone();
                p.push(Value::Integer(now));
                let ids: Vec<i64> = r
                    .conn
                    .prepare_cached(&format!(
                        "SELECT id FROM mantle_schedule WHERE {cond} AND run_at <= ? ORDER BY run_at LIMIT 64"
                    ))?
                    .query_map(rusqlite::params_from_iter(p), |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let next: Option<i64> = r
                    .conn
                    .prepare_cached(&format!("SELECT min(run_at) FROM mantle_schedule WHERE {cond}"))?
                    .query_row(rusqlite::params_from_iter(params), |row| row.get(0))?;
                Ok::<_, Error>((ids, next))
            })
            .await;
        let (due, next) = match due {
            Ok(d) => d,
            Err(Error::Closed(_)) => return,
            Err(e) => {
                tracing::warn!(store = %store.path().display(), error = %e, "cannot read schedule");
                drop(store);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            drop(store);
            let wait = next.map_or(Duration::from_secs(3600), |t| {
                Duration::from_micros((t - now).max(0) as u64)
            });
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for id in due {
            let ran = store.transact(move |tx| run_one(tx, id)).await;
            match ran {
                Ok(()) => {}
                Err(Error::Closed(_)) => return,
                Err(e) => {
                    tracing::warn!(store = %store.path().display(), schedule = id, error = %e, "scheduled task failed; will retry");
                    let reason = e.to_string();
                    let _ = store
                        .transact(move |tx| {
                            let attempts: u32 = tx
                                .read
                                .conn
                                .query_row(
                                    "SELECT attempts FROM mantle_schedule WHERE id = ?1",
                                    [id],
                                    |r| r.get(0),
                                )
                                .optional()?
                                .unwrap_or(0);
                            let next = Timestamp::now() + retry_delay(attempts);
                            tx.read.conn.execute(
                                "UPDATE mantle_schedule SET attempts = attempts + 1, run_at = ?2, last_error = ?3 WHERE id = ?1",
                                rusqlite::params![id, next.as_micros(), reason],
                            )?;
                            Ok::<_, Error>(())
                        })
                        .await;
                }
            }
        }
    }
}

/// Runs one due row in the caller's transaction.
fn run_one(tx: &mut crate::Tx<'_>, id: i64) -> Result<()> {
    let row: Option<(String, i64, String, i64, Option<i64>)> = tx
        .read
        .conn
        .query_row(
            "SELECT item_type, item_id, task, run_at, every_us FROM mantle_schedule WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((item_type, item_id, task, run_at, every)) = row else {
        return Ok(());
    };
    let now = Timestamp::now().as_micros();
    if run_at > now {
        return Ok(());
    }
    let registry = tx.read.registry;
    let Some(f) = registry
        .tasks
        .iter()
        .find(|((t, n), _)| *t == item_type && *n == task)
        .map(|(_, f)| f.clone())
    else {
        return Ok(());
    };
    f(tx, item_id)?;
    match every {
        Some(every) if every > 0 => {
            // The first slot after now: missed slots run once, not each.
            let missed = (now - run_at) / every + 1;
            let next = run_at + missed * every;
            tx.read.conn.execute(
                "UPDATE mantle_schedule SET run_at = ?2, attempts = 0, last_error = NULL WHERE id = ?1",
                [id, next],
            )?;
        }
        _ => {
            tx.read
                .conn
                .execute("DELETE FROM mantle_schedule WHERE id = ?1", [id])?;
        }
    }
    tx.schedule_changed = true;
    Ok(())
}
