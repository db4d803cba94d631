//! The store side of live models: what an offering calls inside its
//! transactions. It knows nothing of connections.
//!
//! A controller changes a model inside a store transaction and calls
//! [`publish`] there: it takes the model's next sequence number, keeps the
//! delta in the store's bounded history (for resuming clients) and records
//! a [`ModelChanged`] effect. Only when the transaction commits does the
//! effect reach the hub (see `hub`), which forwards the delta to the
//! observers. Sequence numbers come from the store, so they survive
//! restarts and follow commit order; a delta that is never committed is
//! never seen.

use mantle_store::{Effect, Item, ReadTx, Registry, Tx};
use serde::{Deserialize, Serialize};

/// Deltas kept per model for observers that reconnect. An observer that
/// was away for more changes than this gets a fresh snapshot.
pub const HISTORY: i64 = 256;

/// A model's latest sequence number (one per model per store).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "live_model_head", version = 1)]
pub struct ModelHead {
    /// The model's name (`list:groceries`).
    #[item(index)]
    pub model: String,
    /// The sequence of its latest delta (0: none yet).
    pub sequence: i64,
}

/// One delta in a model's bounded history.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "live_model_delta", version = 1, index(model, sequence))]
pub struct ModelDelta {
    /// The model's name.
    pub model: String,
    /// Its sequence number.
    pub sequence: i64,
    /// The delta, as JSON text.
    pub delta: String,
}

/// Registers the live layer's item types (every store may hold models).
pub fn register(registry: &mut Registry) {
    registry.register::<ModelHead>().register::<ModelDelta>();
}

/// The effect that carries a committed delta to the observers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelChanged {
    /// The model's name.
    pub model: String,
    /// Its new sequence number.
    pub sequence: i64,
    /// The delta, as JSON text.
    pub delta: String,
}

impl Effect for ModelChanged {
    const KIND: &'static str = "live.model_changed";
}

/// Publishes a change of `model` from inside the transaction that makes
/// it; returns its sequence number. Observers see it only if and when the
/// transaction commits, in commit order.
///
/// ```no_run
/// # fn f(tx: &mut mantle_store::Tx) -> mantle_store::Result<()> {
/// let seq = mantle_live_server::publish(tx, "list:groceries", &serde_json::json!({"added": "milk"}))?;
/// # let _ = seq; Ok(()) }
/// ```
pub fn publish<D: Serialize>(tx: &mut Tx, model: &str, delta: &D) -> mantle_store::Result<i64> {
    let delta = serde_json::to_string(delta).map_err(|e| mantle_store::Error::Encode {
        what: "live delta",
        reason: e.to_string(),
    })?;
    let mut head = match tx
        .query::<ModelHead>()
        .filter(ModelHead::MODEL.eq(model))
        .first()?
    {
        Some(h) => h,
        None => {
            let id = tx.insert(&ModelHead {
                model: model.to_string(),
                sequence: 0,
            })?;
            tx.get(id)?.expect("inserted just now")
        }
    };
    head.sequence += 1;
    let sequence = head.sequence;
    tx.update(&mut head)?;
    tx.insert(&ModelDelta {
        model: model.to_string(),
        sequence,
        delta: delta.clone(),
    })?;
    tx.delete_where(
        ModelDelta::MODEL
            .eq(model)
            .and(ModelDelta::SEQUENCE.le(sequence - HISTORY)),
    )?;
    tx.record(&ModelChanged {
        model: model.to_string(),
        sequence,
        delta,
    })?;
    Ok(sequence)
}

/// The latest sequence number of `model` (0 if it never changed).
pub fn sequence(r: &ReadTx, model: &str) -> mantle_store::Result<i64> {
    Ok(r.query::<ModelHead>()
        .filter(ModelHead::MODEL.eq(model))
        .first()?
        .map_or(0, |h| h.sequence))
}
