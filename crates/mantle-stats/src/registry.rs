//! The registry of namespaces, and namespaces of named statistics.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::SystemTime;

use parking_lot::RwLock;

use crate::collection::Collection;
use crate::error::StatsError;
use crate::handles::{Counter, FloatGauge, Gauge, TextValue, TimestampValue};
use crate::snapshot::{
    CollectionSnapshot, NamespaceSnapshot, NamespaceView, Snapshot, ValueKind, ValueSnapshot,
};
use crate::time::unix_seconds;
use crate::value::Value;

/// The name every report gives a namespace's switch; no statistic may take
/// it (compared ignoring letter case).
pub const ENABLED: &str = "Enabled";

/// A set of named [`Namespace`]s: the seed's `logging.statistics`.
///
/// A plain value, not a global: create one for the process (or one per test)
/// and hand clones to whoever records or reports. Clones share everything.
#[derive(Clone, Default)]
pub struct StatsRegistry {
    namespaces: Arc<RwLock<Vec<Namespace>>>,
}

impl StatsRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The namespace called `name`, created (enabled, empty) if missing.
    ///
    /// Names may contain spaces and capitals ("SQLAlchemy ORM"): they are
    /// chosen to read well in a report.
    #[must_use]
    pub fn namespace(&self, name: &str) -> Namespace {
        if let Some(ns) = self.get(name) {
            return ns;
        }
        let mut namespaces = self.namespaces.write();
        if let Some(ns) = namespaces.iter().find(|n| n.name() == name) {
            return ns.clone();
        }
        let ns = Namespace::new(name);
        namespaces.push(ns.clone());
        ns
    }

    /// The namespace called `name`, if it exists.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Namespace> {
        self.namespaces
            .read()
            .iter()
            .find(|n| n.name() == name)
            .cloned()
    }

    /// Every namespace, in registration order.
    #[must_use]
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.namespaces.read().clone()
    }

    /// Sets the `Enabled` switch of the namespace called `name`; returns
    /// whether there is such a namespace. What a report's toggle button
    /// should end up calling.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        self.get(name).map(|ns| ns.set_enabled(enabled)).is_some()
    }

    /// Copies every namespace and computes every function: the input to the
    /// reports ([`Snapshot::to_json`], [`Snapshot::to_html`],
    /// [`Snapshot::to_prometheus`]).
    ///
    /// No lock is held while functions run, so a function may itself use
    /// the registry.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let taken_at = unix_seconds(SystemTime::now());
        let namespaces = self
            .namespaces()
            .iter()
            .map(|ns| ns.snapshot_at(taken_at))
            .collect();
        Snapshot {
            taken_at,
            namespaces,
        }
    }
}

impl fmt::Debug for StatsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.namespaces.read().iter())
            .finish()
    }
}

type ReportFn = Arc<dyn Fn(&NamespaceView<'_>) -> Value + Send + Sync>;

/// One named group of statistics, with its own `Enabled` switch.
///
/// Ask it for handles by name — `counter`, `gauge`, `float_gauge`, `text`,
/// `timestamp`, `collection` — and keep the handles where the recording
/// happens. Asking again for an existing name of the same kind returns a
/// handle to the same statistic (the first `help` and `capacity` stay);
/// asking for it as another kind is an error (the plain methods panic, the
/// `try_` ones return [`StatsError::KindConflict`]). Names are shared by all
/// kinds, and [`ENABLED`] is reserved.
///
/// While the namespace is disabled, every handle stops recording, but
/// reports go on showing the frozen values.
///
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Namespace {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    enabled: Arc<AtomicBool>,
    slots: RwLock<Vec<Slot>>,
}

struct Slot {
    name: String,
    help: String,
    kind: SlotKind,
}

#[derive(Clone)]
enum SlotKind {
    Counter(Counter),
    Gauge(Gauge),
    FloatGauge(FloatGauge),
    Text(TextValue),
    Timestamp(TimestampValue),
    Collection(Collection),
    Function(ReportFn),
}

impl SlotKind {
    fn describe(&self) -> &'static str {
        match self {
            SlotKind::Counter(_) => "counter",
            SlotKind::Gauge(_) => "gauge",
            SlotKind::FloatGauge(_) => "float gauge",
            SlotKind::Text(_) => "text value",
            SlotKind::Timestamp(_) => "timestamp",
            SlotKind::Collection(_) => "collection",
            SlotKind::Function(_) => "function",
        }
    }
}

macro_rules! handle_methods {
    ($(#[$doc:meta])* $name:ident, $try_name:ident, $ty:ident, $variant:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// # Panics
        ///
        /// If `name` is taken by another kind of statistic, or is [`ENABLED`].
        #[must_use]
        #[track_caller]
        pub fn $name(&self, name: &str, help: &str) -> $ty {
            self.$try_name(name, help).unwrap_or_else(|e| panic!("{e}"))
        }

        #[doc = concat!("Like [`", stringify!($name), "`](Self::", stringify!($name), "), returning an error instead of panicking.")]
        ///
        /// # Errors
        ///
        /// [`StatsError::KindConflict`] if `name` is taken by another kind of
        /// statistic, [`StatsError::ReservedName`] if it is [`ENABLED`].
        pub fn $try_name(&self, name: &str, help: &str) -> Result<$ty, StatsError> {
            self.get_or_insert(
                name,
                help,
                $what,
                |kind| match kind {
                    SlotKind::$variant(h) => Some(h.clone()),
                    _ => None,
                },
                |enabled| {
                    let h = $ty::new(enabled);
                    (SlotKind::$variant(h.clone()), h)
                },
            )
        }
    };
}

impl Namespace {
    fn new(name: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                enabled: Arc::new(AtomicBool::new(true)),
                slots: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Turns collection on or off for every statistic in the namespace.
    /// Reports work either way.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Relaxed);
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Relaxed)
    }

    handle_methods!(
        /// The [`Counter`] called `name`, created at zero if missing.
        counter, try_counter, Counter, Counter, "counter"
    );
    handle_methods!(
        /// The integer [`Gauge`] called `name`, created at zero if missing.
        gauge, try_gauge, Gauge, Gauge, "gauge"
    );
    handle_methods!(
        /// The [`FloatGauge`] called `name`, created at zero if missing.
        float_gauge, try_float_gauge, FloatGauge, FloatGauge, "float gauge"
    );
    handle_methods!(
        /// The [`TextValue`] called `name`, created empty if missing.
        text, try_text, TextValue, Text, "text value"
    );
    handle_methods!(
        /// The [`TimestampValue`] called `name`, created unset if missing.
        timestamp, try_timestamp, TimestampValue, Timestamp, "timestamp"
    );

    /// The [`Collection`] called `name`, created empty and keeping at most
    /// `capacity` records if missing (an existing one keeps its capacity).
    ///
    /// # Panics
    ///
    /// If `name` is taken by another kind of statistic, or is [`ENABLED`].
    #[must_use]
    #[track_caller]
    pub fn collection(&self, name: &str, help: &str, capacity: usize) -> Collection {
        self.try_collection(name, help, capacity)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`collection`](Self::collection), returning an error instead of
    /// panicking.
    ///
    /// # Errors
    ///
    /// [`StatsError::KindConflict`] if `name` is taken by another kind of
    /// statistic, [`StatsError::ReservedName`] if it is [`ENABLED`].
    pub fn try_collection(
        &self,
        name: &str,
        help: &str,
        capacity: usize,
    ) -> Result<Collection, StatsError> {
        self.get_or_insert(
            name,
            help,
            "collection",
            |kind| match kind {
                SlotKind::Collection(c) => Some(c.clone()),
                _ => None,
            },
            |enabled| {
                let c = Collection::new(capacity, enabled);
                (SlotKind::Collection(c.clone()), c)
            },
        )
    }

    /// Registers a function computed only when a report is made (the seed's
    /// "extrapolation"), such as a rate from a counter and a start time.
    ///
    /// The function sees the namespace through a [`NamespaceView`] (values
    /// and collections, not other functions' results) and returns the value
    /// to report. It runs on the reporting thread with no lock held; if it
    /// panics, the report shows `null`. Registering a function under the
    /// name of an existing function replaces it.
    ///
    /// # Panics
    ///
    /// If `name` is taken by another kind of statistic, or is [`ENABLED`].
    #[track_caller]
    pub fn function<F, V>(&self, name: &str, help: &str, f: F)
    where
        F: Fn(&NamespaceView<'_>) -> V + Send + Sync + 'static,
        V: Into<Value>,
    {
        self.try_function(name, help, f)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Like [`function`](Self::function), returning an error instead of
    /// panicking.
    ///
    /// # Errors
    ///
    /// [`StatsError::KindConflict`] if `name` is taken by another kind of
    /// statistic, [`StatsError::ReservedName`] if it is [`ENABLED`].
    pub fn try_function<F, V>(&self, name: &str, help: &str, f: F) -> Result<(), StatsError>
    where
        F: Fn(&NamespaceView<'_>) -> V + Send + Sync + 'static,
        V: Into<Value>,
    {
        let f: ReportFn = Arc::new(move |view: &NamespaceView<'_>| f(view).into());
        let mut slots = self.inner.slots.write();
        if let Some(slot) = slots.iter_mut().find(|s| s.name == name) {
            return match slot.kind {
                SlotKind::Function(_) => {
                    slot.kind = SlotKind::Function(f);
                    slot.help = help.to_owned();
                    Ok(())
                }
                ref other => Err(self.conflict(name, other.describe(), "function")),
            };
        }
        self.check_reserved(name)?;
        slots.push(Slot {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: SlotKind::Function(f),
        });
        Ok(())
    }

    /// Removes the statistic called `name` from the namespace (and so from
    /// reports); returns whether it existed. Handles to it keep working but
    /// are no longer reported.
    pub fn remove(&self, name: &str) -> bool {
        let mut slots = self.inner.slots.write();
        let before = slots.len();
        slots.retain(|s| s.name != name);
        slots.len() != before
    }

    /// The names of the namespace's statistics, in registration order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.inner
            .slots
            .read()
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// A snapshot of this namespace alone, functions computed.
    #[must_use]
    pub fn snapshot(&self) -> NamespaceSnapshot {
        self.snapshot_at(unix_seconds(SystemTime::now()))
    }

    fn get_or_insert<T>(
        &self,
        name: &str,
        help: &str,
        requested: &'static str,
        existing: impl Fn(&SlotKind) -> Option<T>,
        make: impl FnOnce(Arc<AtomicBool>) -> (SlotKind, T),
    ) -> Result<T, StatsError> {
        let mut slots = self.inner.slots.write();
        if let Some(slot) = slots.iter().find(|s| s.name == name) {
            return existing(&slot.kind)
                .ok_or_else(|| self.conflict(name, slot.kind.describe(), requested));
        }
        self.check_reserved(name)?;
        let (kind, handle) = make(self.inner.enabled.clone());
        slots.push(Slot {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
        });
        Ok(handle)
    }

    fn check_reserved(&self, name: &str) -> Result<(), StatsError> {
        if name.eq_ignore_ascii_case(ENABLED) {
            return Err(StatsError::ReservedName {
                namespace: self.inner.name.clone(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn conflict(&self, name: &str, existing: &'static str, requested: &'static str) -> StatsError {
        StatsError::KindConflict {
            namespace: self.inner.name.clone(),
            name: name.to_owned(),
            existing,
            requested,
        }
    }

    pub(crate) fn snapshot_at(&self, taken_at: f64) -> NamespaceSnapshot {
        // Copy the slot list under the read lock, then read values without it.
        let slots: Vec<(String, String, SlotKind)> = self
            .inner
            .slots
            .read()
            .iter()
            .map(|s| (s.name.clone(), s.help.clone(), s.kind.clone()))
            .collect();
        let mut snap = NamespaceSnapshot {
            name: self.inner.name.clone(),
            enabled: self.is_enabled(),
            values: Vec::with_capacity(slots.len()),
            collections: Vec::new(),
        };
        let mut functions = Vec::new();
        for (name, help, kind) in slots {
            let (kind, value) = match kind {
                SlotKind::Counter(c) => (ValueKind::Counter, Value::from(c.get())),
                SlotKind::Gauge(g) => (ValueKind::Gauge, Value::Int(g.get())),
                SlotKind::FloatGauge(g) => (ValueKind::Gauge, Value::Float(g.get())),
                SlotKind::Text(t) => (ValueKind::Text, Value::Text(t.get())),
                SlotKind::Timestamp(t) => (ValueKind::Timestamp, Value::from(t.get())),
                SlotKind::Function(f) => {
                    functions.push((snap.values.len(), f));
                    (ValueKind::Function, Value::Null)
                }
                SlotKind::Collection(c) => {
                    snap.collections.push(CollectionSnapshot {
                        name,
                        help,
                        capacity: c.capacity(),
                        records: c.records(),
                    });
                    continue;
                }
            };
            snap.values.push(ValueSnapshot {
                name,
                kind,
                help,
                value,
            });
        }
        // Functions see the copy without each other's results, then fill in.
        let view = NamespaceView {
            snapshot: &snap,
            taken_at,
        };
        let results: Vec<(usize, Value)> = functions
            .into_iter()
            .map(|(at, f)| {
                (
                    at,
                    catch_unwind(AssertUnwindSafe(|| f(&view))).unwrap_or_default(),
                )
            })
            .collect();
        for (at, value) in results {
            snap.values[at].value = value;
        }
        snap
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name())
            .field("enabled", &self.is_enabled())
            .field("names", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;

    #[test]
    fn namespace_is_get_or_create() {
        let reg = StatsRegistry::new();
        let a = reg.namespace("Web");
        let b = reg.clone().namespace("Web");
        a.counter("Hits", "").inc();
        assert_eq!(b.counter("Hits", "ignored").get(), 1);
        assert_eq!(reg.namespaces().len(), 1);
        assert!(reg.get("Other").is_none());
    }

    #[test]
    fn kind_conflicts_and_reserved_names_are_errors() {
        let ns = StatsRegistry::new().namespace("N");
        let _c = ns.counter("x", "");
        assert!(matches!(
            ns.try_gauge("x", ""),
            Err(StatsError::KindConflict {
                existing: "counter",
                requested: "gauge",
                ..
            })
        ));
        assert!(matches!(
            ns.try_function("x", "", |_| 1),
            Err(StatsError::KindConflict { .. })
        ));
        assert!(matches!(
            ns.try_collection("enabled", "", 3),
            Err(StatsError::ReservedName { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "is a counter, not a text value")]
    fn plain_methods_panic_on_conflict() {
        let ns = StatsRegistry::new().namespace("N");
        let _c = ns.counter("x", "");
        let _t = ns.text("x", "");
    }

    #[test]
    fn functions_run_at_snapshot_time_and_can_be_replaced() {
        let ns = StatsRegistry::new().namespace("N");
        let hits = ns.counter("Hits", "");
        ns.function("Double", "", |v| v.get_f64("Hits").map(|h| h * 2.0));
        hits.add(2);
        assert_eq!(ns.snapshot().value("Double"), Some(&Value::Float(4.0)));
        ns.function("Double", "", |_| "replaced");
        assert_eq!(
            ns.snapshot().value("Double"),
            Some(&Value::from("replaced"))
        );
    }

    #[test]
    fn a_panicking_function_reports_null() {
        let ns = StatsRegistry::new().namespace("N");
        ns.function("Boom", "", |_| -> i64 { panic!("boom") });
        ns.function("Fine", "", |_| 1);
        let snap = ns.snapshot();
        assert_eq!(snap.value("Boom"), Some(&Value::Null));
        assert_eq!(snap.value("Fine"), Some(&Value::Int(1)));
    }

    #[test]
    fn functions_may_use_the_registry() {
        let reg = StatsRegistry::new();
        let inner = reg.clone();
        reg.namespace("N")
            .function("Namespaces", "", move |_| inner.namespaces().len());
        let snap = reg.snapshot();
        assert_eq!(
            snap.namespace("N").unwrap().value("Namespaces"),
            Some(&Value::Int(1))
        );
    }

    #[test]
    fn remove_drops_a_statistic_from_reports() {
        let ns = StatsRegistry::new().namespace("N");
        let c = ns.collection("C", "", 2);
        c.push(Record::new().with("a", 1));
        assert!(ns.remove("C"));
        assert!(!ns.remove("C"));
        assert!(ns.snapshot().collections.is_empty());
        assert_eq!(ns.names(), Vec::<String>::new());
    }

    #[test]
    fn registry_set_enabled_finds_the_namespace() {
        let reg = StatsRegistry::new();
        let ns = reg.namespace("N");
        assert!(reg.set_enabled("N", false));
        assert!(!ns.is_enabled());
        assert!(!reg.set_enabled("missing", false));
        assert!(!reg.snapshot().namespace("N").unwrap().enabled);
    }
}
