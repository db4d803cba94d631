//! The connection side of live models: who observes what, and delivery
//! of committed deltas ([`ModelChanged`] effects) to the observers, each
//! in sequence order, once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use mantle_live::builtin::{Delta, DeltaArgs, Ended, EndedArgs, ObserveError, Resync, ResyncArgs};
use mantle_site::Site;
use mantle_store::{Delivery, DispatchError, ReadTx, Store};
use parking_lot::Mutex;

use crate::Caller;
use crate::commands::Failure;
use crate::publish::ModelChanged;
use crate::session::{Push, PushSink};

type SourceFn = Arc<
    dyn Fn(Caller, String) -> BoxFuture<'static, Result<Source, Failure<ObserveError>>>
        + Send
        + Sync,
>;
type SnapshotFn =
    Arc<dyn Fn(&ReadTx, &str) -> mantle_store::Result<serde_json::Value> + Send + Sync>;

/// Where an observed model is: its store, the name its deltas are
/// published under there, the key its snapshot is read with, and (for a
/// model reached through a share) the share that must keep allowing it.
pub(crate) struct Source {
    pub store: Store,
    /// The name deltas are published under (the observed name, unless the
    /// model was reached through a share).
    pub published: Option<String>,
    /// What the snapshot function is given.
    pub key: String,
    pub guard: Option<Guard>,
}

/// The share an observation was granted through: checked again whenever
/// the owner's sharing changes, and the observation ended once it no
/// longer allows reading the same item.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub owner: mantle_store::Id<mantle_site::Account>,
    pub viewer: mantle_site::sharing::Viewer,
    pub share_id: String,
    pub item_type: String,
    pub item_id: i64,
}

/// How to find and read one kind of model.
#[derive(Clone)]
pub(crate) struct ModelSpec {
    pub source: SourceFn,
    pub snapshot: SnapshotFn,
}

impl ModelSpec {
    pub fn new<S, Fut, P>(store: S, snapshot: P) -> Self
    where
        S: Fn(Caller, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Store, Failure<ObserveError>>> + Send + 'static,
        P: Fn(&ReadTx, &str) -> mantle_store::Result<serde_json::Value> + Send + Sync + 'static,
    {
        let store = Arc::new(store);
        Self {
            source: Arc::new(move |c, k| {
                let store = store.clone();
                Box::pin(async move {
                    let found = store(c, k.clone()).await?;
                    Ok(Source {
                        store: found,
                        published: None,
                        key: k,
                        guard: None,
                    })
                })
            }),
            snapshot: Arc::new(snapshot),
        }
    }

    /// A spec whose sources are found by `source` (shared models).
    pub fn with_source(source: SourceFn, snapshot: SnapshotFn) -> Self {
        Self { source, snapshot }
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
    /// The name the client observes (and pushes carry).
    model: String,
    /// The name deltas are published under in the store.
    published: String,
    guard: Option<Guard>,
    sink: Arc<dyn PushSink>,
    stats: Arc<crate::stats::LiveStats>,
    state: Mutex<ObsState>,
    closed: AtomicBool,
    /// The owner's sharing generation the guard was last found to allow
    /// this observation at (-1: not yet checked against one).
    checked: std::sync::atomic::AtomicI64,
}

impl Observation {
    /// An observation of `model` for a connection pushing through `sink`,
    /// holding what arrives until [`activate`](Self::activate).
    pub fn new(
        model: String,
        source: &Source,
        sink: Arc<dyn PushSink>,
        stats: Arc<crate::stats::LiveStats>,
    ) -> Self {
        Self {
            published: source.published.clone().unwrap_or_else(|| model.clone()),
            guard: source.guard.clone(),
            model,
            sink,
            stats,
            state: Mutex::new(ObsState::Pending(Vec::new())),
            closed: AtomicBool::new(false),
            checked: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        *self.state.lock() = ObsState::Stopped;
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The sharing generation its guard was last found to allow it at.
    pub fn checked_at(&self) -> i64 {
        self.checked.load(Ordering::Acquire)
    }

    /// Notes that its guard allows it at sharing generation `generation`.
    pub fn allowed_at(&self, generation: i64) {
        self.checked.fetch_max(generation, Ordering::AcqRel);
    }

    /// The name deltas are published under.
    pub fn published(&self) -> &str {
        &self.published
    }

    /// Ends the observation for good: tells the client why (an `Ended`
    /// push with `code`) and sends nothing more.
    pub fn end(&self, code: &str, reason: &str) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        *self.state.lock() = ObsState::Stopped;
        tracing::debug!(model = %self.model, code, reason, "observation ended");
        self.sink.push_eventually(Push::new::<Ended>(&EndedArgs {
            model: self.model.clone(),
            code: code.to_string(),
            reason: reason.to_string(),
        }));
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
    pub fn activate(&self, sequence: i64, missed: Vec<(i64, Arc<Push>)>) {
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
    /// The observations granted through shares, by store: found without
    /// scanning every observation (checked before each store's deltas).
    guarded: Mutex<HashMap<PathBuf, Vec<Arc<Observation>>>>,
}

impl Hub {
    pub fn add(&self, store: PathBuf, obs: Arc<Observation>) {
        if obs.guard.is_some() {
            let mut guarded = self.guarded.lock();
            let list = guarded.entry(store.clone()).or_default();
            list.retain(|o| !o.is_closed());
            list.push(obs.clone());
        }
        let mut models = self.models.lock();
        let w = models.entry((store, obs.published.clone())).or_default();
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
        let delta: serde_json::Value =
            serde_json::from_str(&change.delta).unwrap_or(serde_json::Value::Null);
        // One push per name observed: observers through shares name the
        // model differently from its store.
        let mut pushes: HashMap<&str, Arc<Push>> = HashMap::new();
        for o in &list {
            let push = pushes.entry(o.model.as_str()).or_insert_with(|| {
                Push::new::<Delta>(&DeltaArgs {
                    model: o.model.clone(),
                    sequence: change.sequence,
                    delta: delta.clone(),
                })
            });
            o.offer(change.sequence, push);
        }
    }

    /// The open observations of `store` granted through a share.
    pub fn guarded(&self, store: Option<&std::path::Path>) -> Vec<(Arc<Observation>, Guard)> {
        let mut guarded = self.guarded.lock();
        let mut open = |list: &mut Vec<Arc<Observation>>| {
            list.retain(|o| !o.is_closed());
            list.iter()
                .filter_map(|o| o.guard.clone().map(|g| (o.clone(), g)))
                .collect::<Vec<_>>()
        };
        match store {
            Some(s) => {
                let found = guarded.get_mut(s).map(&mut open).unwrap_or_default();
                if found.is_empty() {
                    guarded.remove(s);
                }
                found
            }
            None => {
                let found = guarded.values_mut().flat_map(&mut open).collect();
                guarded.retain(|_, list| !list.is_empty());
                found
            }
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
    // Shares first: a delta committed after a withdrawal must not reach
    // an observer the withdrawal ended, even if the announcement of the
    // withdrawal is still on its way.
    let mut seen = std::collections::HashSet::new();
    for (d, _) in &batch {
        if seen.insert(d.store.path().to_path_buf()) {
            crate::shared::check_before_delivery(&site, &live.hub, &d.store).await;
        }
    }
    batch
        .into_iter()
        .map(|(d, change)| {
            live.hub.deliver(d.store.path().to_path_buf(), change);
            Ok(())
        })
        .collect()
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
            published: "m".into(),
            guard: None,
            sink: queue.clone(),
            stats: Arc::new(stats),
            state: Mutex::new(ObsState::Pending(Vec::new())),
            closed: AtomicBool::new(false),
            checked: std::sync::atomic::AtomicI64::new(-1),
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
