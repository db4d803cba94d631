//! Cacheables: models observed by clients as a snapshot, then ordered
//! deltas.
//!
//! A controller changes a model inside a store transaction and calls
//! [`publish`] there: it takes the model's next sequence number, keeps the
//! delta in the store's bounded history (for resuming clients) and records
//! a [`ModelChanged`] effect. Only when the transaction commits does the
//! effect reach the [`Hub`], which forwards the delta to the observers.
//! Sequence numbers come from the store, so they survive restarts and
//! follow commit order; a delta that is never committed is never seen.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use mantle_live::builtin::{
    Delta, DeltaArgs, Observe, ObserveAnswer, ObserveArgs, ObserveError, Resync, ResyncArgs,
    SnapshotPart, SnapshotPartArgs,
};
use mantle_live::{Arguments, Command, RemoteError};
use mantle_site::Site;
use mantle_store::{Delivery, DispatchError, Effect, Item, ReadTx, Registry, Store, Tx};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::Caller;
use crate::commands::{Failure, Fields, decode, failed};
use crate::session::{Conn, Out, Push, PushSink, Request, reply};

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

type StoreFn = Arc<
    dyn Fn(Caller, String) -> BoxFuture<'static, Result<Store, Failure<ObserveError>>>
        + Send
        + Sync,
>;
type SnapshotFn =
    Arc<dyn Fn(&ReadTx, &str) -> mantle_store::Result<serde_json::Value> + Send + Sync>;

/// How to find and read one kind of model.
#[derive(Clone)]
pub(crate) struct ModelSpec {
    pub store: StoreFn,
    pub snapshot: SnapshotFn,
}

impl ModelSpec {
    pub fn new<S, Fut, P>(store: S, snapshot: P) -> Self
    where
        S: Fn(Caller, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Store, Failure<ObserveError>>> + Send + 'static,
        P: Fn(&ReadTx, &str) -> mantle_store::Result<serde_json::Value> + Send + Sync + 'static,
    {
        Self {
            store: Arc::new(move |c, k| Box::pin(store(c, k))),
            snapshot: Arc::new(snapshot),
        }
    }
}

enum ObsState {
    /// Observe has not answered yet: keep what arrives.
    Pending(Vec<(i64, Arc<Push>)>),
    /// Sent up to this sequence.
    Live(i64),
    /// Told to resync, or closed: send nothing more.
    Stopped,
}

/// One connection observing one model.
pub(crate) struct Observation {
    model: String,
    sink: Arc<dyn PushSink>,
    stats: Arc<crate::stats::LiveStats>,
    state: Mutex<ObsState>,
    closed: AtomicBool,
}

impl Observation {
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        *self.state.lock() = ObsState::Stopped;
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Offers the delta `seq`; sends it if it is the next one.
    fn offer(&self, seq: i64, push: &Arc<Push>) {
        let mut state = self.state.lock();
        match &mut *state {
            ObsState::Pending(buf) => buf.push((seq, push.clone())),
            ObsState::Live(last) if seq <= *last => {}
            ObsState::Live(last) if seq == *last + 1 && !self.sink.fits(push) => {
                let why = format!("delta {seq} is too large for this transport; observe again");
                *state = self.resync(&why);
            }
            ObsState::Live(last) if seq == *last + 1 => {
                if self.sink.push(push.clone()) {
                    self.stats.deltas.inc();
                    *last = seq;
                } else {
                    *state = self.resync("the connection fell too far behind");
                }
            }
            ObsState::Live(last) => {
                let why = format!("deltas {} to {} were not delivered", *last + 1, seq - 1);
                *state = self.resync(&why);
            }
            ObsState::Stopped => {}
        }
    }

    /// Asks the client to observe again (from its last sequence, so it
    /// gets what it missed from the history). Stops this observation.
    fn resync(&self, reason: &str) -> ObsState {
        tracing::debug!(model = %self.model, reason, "observer must resync");
        self.stats.resyncs.inc();
        let push = Push::new::<Resync>(&ResyncArgs {
            model: self.model.clone(),
            reason: reason.to_string(),
        });
        // The queue may be full (that may be why): the client must still
        // learn that it has to observe again.
        self.sink.push_eventually(push);
        ObsState::Stopped
    }

    /// After the answer to Observe is queued: sends `missed` (resumed
    /// deltas) and what arrived meanwhile, then goes live.
    fn activate(&self, sequence: i64, missed: Vec<(i64, Arc<Push>)>) {
        let mut state = self.state.lock();
        let ObsState::Pending(buf) =
            std::mem::replace(&mut *state, ObsState::Live(sequence - missed.len() as i64))
        else {
            return;
        };
        drop(state);
        for (seq, push) in missed.into_iter().chain(buf) {
            self.offer(seq, &push);
        }
    }
}

#[derive(Default)]
struct Watchers {
    list: Vec<Arc<Observation>>,
}

/// Observers by (store file, model name), and delivery of committed
/// deltas to them.
#[derive(Default)]
pub(crate) struct Hub {
    models: Mutex<HashMap<(PathBuf, String), Watchers>>,
}

impl Hub {
    fn add(&self, store: PathBuf, obs: Arc<Observation>) {
        let mut models = self.models.lock();
        let w = models.entry((store, obs.model.clone())).or_default();
        w.list.retain(|o| !o.is_closed());
        w.list.push(obs);
    }

    /// Forwards one committed delta to the model's observers.
    fn deliver(&self, store: PathBuf, change: ModelChanged) {
        let key = (store, change.model);
        let list = {
            let mut models = self.models.lock();
            let Some(w) = models.get_mut(&key) else {
                return;
            };
            w.list.retain(|o| !o.is_closed());
            if w.list.is_empty() {
                models.remove(&key);
                return;
            }
            w.list.clone()
        };
        let delta = serde_json::from_str(&change.delta).unwrap_or(serde_json::Value::Null);
        let push = Push::new::<Delta>(&DeltaArgs {
            model: key.1.clone(),
            sequence: change.sequence,
            delta,
        });
        for o in &list {
            o.offer(change.sequence, &push);
        }
    }

    /// Observers now registered (for tests and statistics).
    pub fn observers(&self) -> usize {
        self.models
            .lock()
            .values()
            .map(|w| w.list.iter().filter(|o| !o.is_closed()).count())
            .sum()
    }
}

/// The dispatcher of [`ModelChanged`] effects (installed by
/// [`install`](crate::install)).
pub(crate) async fn dispatch_changes(
    site: Site,
    batch: Vec<(Delivery, ModelChanged)>,
) -> Vec<Result<(), DispatchError>> {
    let Some(live) = site.extension::<crate::Live>() else {
        return batch.iter().map(|_| Ok(())).collect();
    };
    batch
        .into_iter()
        .map(|(d, change)| {
            live.hub.deliver(d.store.path().to_path_buf(), change);
            Ok(())
        })
        .collect()
}

/// `Observe`: registers the observation before reading, so nothing
/// committed in between is lost, answers with a snapshot (or resumes from
/// the history), then releases what arrived meanwhile, in order.
pub(crate) async fn observe<T: Send + 'static>(
    conn: Arc<Conn>,
    out: mpsc::Sender<Out<T>>,
    req: Request<T>,
) {
    let result = start(&conn, req.args).await;
    let (answer, obs, missed, parts) = match result {
        Ok(ok) => ok,
        Err(e) => return reply(&conn, &out, req.tag, Err(e)).await,
    };
    let sequence = answer.sequence;
    let fields = match serde_json::to_value(&answer) {
        Ok(serde_json::Value::Object(f)) => f,
        _ => Fields::new(),
    };
    reply(&conn, &out, req.tag, Ok((fields, ObserveAnswer::schema()))).await;
    // The parts go through the connection's queue in order, right after
    // the answer; deltas committed meanwhile wait in the observation.
    for part in parts {
        if out.send(Out::Push(part)).await.is_err() {
            obs.close();
            return;
        }
    }
    obs.activate(sequence, missed);
}

/// The answer, the observation, the missed deltas that follow it (when
/// resumed) and the `SnapshotPart`s (when the snapshot is too long for
/// one value).
type Started = (
    ObserveAnswer,
    Arc<Observation>,
    Vec<(i64, Arc<Push>)>,
    Vec<Arc<Push>>,
);

/// Splits `text` into pieces of at most `max` bytes, each ending on a
/// character boundary (every piece must be valid UTF-8 on its own, as
/// AMP's Unicode values are). A character longer than `max` is a piece
/// of its own.
fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = first.len_utf8();
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// The snapshot as `SnapshotPart` pushes if its JSON text is longer than
/// the transport's values (`max_value`); `None` if it fits as it is.
fn snapshot_parts(
    model: &str,
    sequence: i64,
    snapshot: &serde_json::Value,
    max_value: Option<usize>,
) -> Option<Vec<Arc<Push>>> {
    let max = max_value?;
    let text = serde_json::to_string(snapshot).ok()?;
    if text.len() <= max {
        return None;
    }
    let pieces = split_text(&text, max);
    let parts = pieces.len() as i64;
    Some(
        pieces
            .into_iter()
            .zip(1..)
            .map(|(piece, part)| {
                Push::new::<SnapshotPart>(&SnapshotPartArgs {
                    model: model.to_string(),
                    sequence,
                    part,
                    parts,
                    text: piece.to_string(),
                })
            })
            .collect(),
    )
}

async fn start(conn: &Arc<Conn>, raw: crate::session::RawArgs) -> Result<Started, RemoteError> {
    let args: ObserveArgs = decode(raw.fields(ObserveArgs::schema())?)?;
    let caller = conn.caller_or_unauthorized()?;
    let (kind, key) = args.model.split_once(':').unwrap_or((&args.model, ""));
    let live = conn.live();
    let no_such = || {
        RemoteError::from_typed(&ObserveError::NoSuchModel {
            model: args.model.clone(),
        })
    };
    let spec = live.models.get(kind).cloned().ok_or_else(no_such)?;
    let store = (spec.store)(caller, key.to_string())
        .await
        .map_err(|f| f.into_remote(Observe::NAME))?;
    let obs = Arc::new(Observation {
        model: args.model.clone(),
        sink: conn.sink.clone(),
        stats: conn.stats.clone(),
        state: Mutex::new(ObsState::Pending(Vec::new())),
        closed: AtomicBool::new(false),
    });
    live.hub.add(store.path().to_path_buf(), obs.clone());
    if let Some(old) = conn
        .observing
        .lock()
        .insert(args.model.clone(), obs.clone())
    {
        old.close();
    }
    let (model, key, since) = (args.model.clone(), key.to_string(), args.since);
    let snapshot = spec.snapshot.clone();
    let max_value = conn.sink.max_value();
    let history_max = max_value.unwrap_or(usize::MAX);
    let read = store
        .read(move |r| {
            let head = sequence(r, &model)?;
            if let Some(since) = since.filter(|s| (0..=head).contains(s)) {
                let missed = r
                    .query::<ModelDelta>()
                    .filter(
                        ModelDelta::MODEL
                            .eq(model.as_str())
                            .and(ModelDelta::SEQUENCE.gt(since)),
                    )
                    .order_by(ModelDelta::SEQUENCE.asc())
                    .all()?;
                // Resumable only if the history still starts right after
                // `since`, and every missed delta fits the transport (else
                // a snapshot replaces them).
                if missed.len() as i64 == head - since
                    && missed.iter().all(|d| d.delta.len() <= history_max)
                {
                    let missed = missed
                        .into_iter()
                        .map(|d| {
                            let d = d.into_inner();
                            (d.sequence, d.delta)
                        })
                        .collect::<Vec<_>>();
                    return Ok((head, None, missed));
                }
            }
            Ok::<_, mantle_store::Error>((head, Some(snapshot(r, &key)?), Vec::new()))
        })
        .await;
    let (head, snapshot, missed) = match read {
        Ok(r) => r,
        Err(e) => {
            obs.close();
            return Err(failed(Observe::NAME, e.to_string()));
        }
    };
    let missed = missed
        .into_iter()
        .map(|(seq, delta)| {
            let delta = serde_json::from_str(&delta).unwrap_or(serde_json::Value::Null);
            let push = Push::new::<Delta>(&DeltaArgs {
                model: args.model.clone(),
                sequence: seq,
                delta,
            });
            (seq, push)
        })
        .collect();
    let resumed = snapshot.is_none();
    let parts = snapshot
        .as_ref()
        .and_then(|s| snapshot_parts(&args.model, head, s, max_value));
    let answer = ObserveAnswer {
        sequence: head,
        resumed,
        parts: parts.as_ref().map(|p| p.len() as i64),
        snapshot: if parts.is_some() { None } else { snapshot },
    };
    Ok((answer, obs, missed, parts.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::session::PushQueue;

    /// A connection queue with room for `room` pushes.
    #[derive(Default)]
    struct Queue {
        room: AtomicUsize,
        sent: Mutex<Vec<(&'static str, serde_json::Value)>>,
        later: Mutex<Vec<&'static str>>,
    }

    impl PushQueue for Queue {
        fn try_send(&self, p: Arc<Push>) -> bool {
            if self.room.load(Ordering::Relaxed) == 0 {
                return false;
            }
            self.room.fetch_sub(1, Ordering::Relaxed);
            self.sent
                .lock()
                .push((p.command, p.fields["sequence"].clone()));
            true
        }
        fn send_later(&self, p: Arc<Push>) {
            self.later.lock().push(p.command);
        }
    }

    impl PushSink for Queue {
        fn fits(&self, _: &Push) -> bool {
            true
        }
        fn max_value(&self) -> Option<usize> {
            None
        }
        fn queue(&self) -> &dyn PushQueue {
            self
        }
    }

    fn observation(room: usize) -> (Arc<Queue>, Observation) {
        let queue = Arc::new(Queue {
            room: AtomicUsize::new(room),
            ..Queue::default()
        });
        let stats = crate::stats::LiveStats::new(
            &mantle_stats::StatsRegistry::new(),
            std::sync::Weak::new(),
        );
        let o = Observation {
            model: "m".into(),
            sink: queue.clone(),
            stats: Arc::new(stats),
            state: Mutex::new(ObsState::Pending(Vec::new())),
            closed: AtomicBool::new(false),
        };
        (queue, o)
    }

    fn delta(seq: i64) -> Arc<Push> {
        Push::new::<Delta>(&DeltaArgs {
            model: "m".into(),
            sequence: seq,
            delta: serde_json::Value::Null,
        })
    }

    #[test]
    fn deltas_are_sent_once_and_in_order_after_the_answer() {
        let (q, o) = observation(10);
        o.offer(3, &delta(3)); // arrived before Observe answered
        o.activate(2, Vec::new());
        o.offer(3, &delta(3)); // the same again: ignored
        o.offer(4, &delta(4));
        let sent: Vec<_> = q.sent.lock().iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(sent, vec![serde_json::json!(3), serde_json::json!(4)]);
        assert!(q.later.lock().is_empty());
    }

    #[test]
    fn long_text_splits_on_character_boundaries_and_joins_back() {
        let text = "ab€d".repeat(10); // '€' is 3 bytes
        for max in [3, 4, 5, 7, 64] {
            let pieces = split_text(&text, max);
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= max));
            assert_eq!(pieces.concat(), text);
        }
        assert!(split_text("", 10).is_empty());
        assert_eq!(split_text("a€", 1), ["a", "€"]);
        let snap = serde_json::json!({"entries": ["x".repeat(100)]});
        assert!(snapshot_parts("m", 1, &snap, None).is_none(), "no limit");
        assert!(snapshot_parts("m", 1, &snap, Some(1000)).is_none(), "fits");
        let parts = snapshot_parts("m", 7, &snap, Some(40)).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.amp().is_some()));
    }

    #[test]
    fn a_full_queue_or_a_gap_ends_the_observation_with_a_resync_that_is_not_lost() {
        let (q, o) = observation(1);
        o.activate(0, Vec::new());
        o.offer(1, &delta(1));
        o.offer(2, &delta(2)); // no room: must resync, even though full
        o.offer(3, &delta(3)); // stopped: nothing more
        assert_eq!(q.sent.lock().len(), 1);
        assert_eq!(*q.later.lock(), vec!["Resync"]);

        let (q, o) = observation(10);
        o.activate(0, Vec::new());
        o.offer(2, &delta(2)); // 1 is missing
        assert!(q.sent.lock().is_empty());
        assert_eq!(*q.later.lock(), vec!["Resync"]);
        o.offer(1, &delta(1));
        assert!(q.sent.lock().is_empty(), "stopped after the resync");
    }
}
