//! The store layer's statistics: the "Stores" namespace of a
//! [`StatsRegistry`], recorded when a config asks for it with
//! [`StoreConfig::stats`](crate::StoreConfig::stats). What it holds is
//! listed at [`STATS_NAMESPACE`].
//!
//! The hot path stays cheap: with stats on, a transaction costs two clock
//! reads, a few relaxed atomic operations, and a collection lock only when
//! it is slow enough to be kept; with the namespace disabled, one relaxed
//! load per event; with no registry given, nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mantle_stats::{Collection, Counter, Gauge, Namespace, Record, StatsRegistry};

/// The name of the store layer's statistics namespace, "Stores", and
/// what it holds (see [`StoreConfig::stats`](crate::StoreConfig::stats)):
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Open Stores` | gauge | stores open now (writer not yet closed) |
/// | `Cache Hits`, `Cache Misses` | counters | [`StoreCache`](crate::StoreCache) lookups answered by an open store / that opened the file |
/// | `Transactions` | counter | transactions run on a writer (committed or not) |
/// | `Transactions Rolled Back` | counter | of those, the ones whose work was undone (error, panic, failed commit) |
/// | `Group Commits` | counter | commits, each covering one or more transactions |
/// | `Mean Transaction Seconds`, `Max Transaction Seconds` | functions | a transaction's time: its body plus the commit it waited for |
/// | `Effects Recorded`, `Effects Dispatched`, `Effects Parked` | counters | outbox rows committed (and parked ones put back), delivered, parked |
/// | `Outbox Backlog` | function | recorded − dispatched − parked since start (not below 0) |
/// | `Slow Transactions` | collection | the slowest transactions: `store`, `duration_ms`, `group_size`, `committed` |
///
/// Values that describe the present (open stores) stay true across a pause:
/// they are set afresh at the next change after collection resumes.
pub const STATS_NAMESPACE: &str = "Stores";

/// How many slow transactions are kept.
const SLOW_KEPT: usize = 20;

/// The field slow transactions are ranked by.
const DURATION_MS: &str = "duration_ms";

/// The handles of the "Stores" namespace, shared by every store opened with
/// one config (and its clones).
pub(crate) struct StoreStats {
    open: Gauge,
    /// Stores open, kept whatever the `Enabled` switch, so the gauge is set
    /// to the truth at the next open or close after a pause.
    open_now: AtomicI64,
    cache_hits: Counter,
    cache_misses: Counter,
    transactions: Counter,
    rolled_back: Counter,
    group_commits: Counter,
    /// Sum and maximum of transaction times, in microseconds (only while
    /// enabled); reported by functions.
    tx_micros: Arc<AtomicU64>,
    tx_max_micros: Arc<AtomicU64>,
    effects_recorded: Counter,
    effects_dispatched: Counter,
    effects_parked: Counter,
    slow: Collection,
}

impl std::fmt::Debug for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreStats")
            .field("open", &self.open_now.load(Relaxed))
            .field("transactions", &self.transactions.get())
            .finish_non_exhaustive()
    }
}

/// What one group of transactions took, measured by the writer.
#[derive(Default)]
pub(crate) struct GroupTiming {
    /// Each job's body time and whether its work was kept.
    pub(crate) jobs: Vec<(Duration, bool)>,
    /// The commit (or rollback) time.
    pub(crate) commit: Duration,
    /// Effects recorded by the kept jobs.
    pub(crate) effects: u64,
}

impl StoreStats {
    pub(crate) fn new(registry: &StatsRegistry) -> Self {
        let ns = registry.namespace(STATS_NAMESPACE);
        let tx_micros = Arc::new(AtomicU64::new(0));
        let tx_max_micros = Arc::new(AtomicU64::new(0));
        let stats = Self {
            open: ns.gauge("Open Stores", "Stores open now."),
            open_now: AtomicI64::new(0),
            cache_hits: ns.counter(
                "Cache Hits",
                "Store cache lookups answered by an already open store.",
            ),
            cache_misses: ns.counter(
                "Cache Misses",
                "Store cache lookups that had to open the store file.",
            ),
            transactions: ns.counter(
                "Transactions",
                "Transactions run by store writers, committed or not.",
            ),
            rolled_back: ns.counter(
                "Transactions Rolled Back",
                "Transactions whose work was undone (an error, a panic or a failed commit).",
            ),
            group_commits: ns.counter(
                "Group Commits",
                "Commits, each covering one or more transactions.",
            ),
            tx_micros: tx_micros.clone(),
            tx_max_micros: tx_max_micros.clone(),
            effects_recorded: ns.counter(
                "Effects Recorded",
                "Effects committed to outboxes (and parked effects put back in line).",
            ),
            effects_dispatched: ns
                .counter("Effects Dispatched", "Effects their handlers carried out."),
            effects_parked: ns.counter(
                "Effects Parked",
                "Effects given up on (parked) after a permanent failure or too many attempts.",
            ),
            slow: ns.collection(
                "Slow Transactions",
                "The slowest transactions since start (body plus the commit waited for).",
                SLOW_KEPT,
            ),
        };
        register_functions(&ns, tx_micros, tx_max_micros);
        stats
    }

    pub(crate) fn store_opened(&self) {
        let now = self.open_now.fetch_add(1, Relaxed) + 1;
        self.open.set(now);
    }

    pub(crate) fn store_closed(&self) {
        let now = self.open_now.fetch_sub(1, Relaxed) - 1;
        self.open.set(now);
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// Whether timings are wanted (the namespace is enabled).
    pub(crate) fn timing(&self) -> bool {
        self.transactions.is_enabled()
    }

    /// Records a group run by the writer of the store at `path`.
    pub(crate) fn group_done(&self, path: &Path, timing: &GroupTiming, committed: bool) {
        if timing.jobs.is_empty() {
            return;
        }
        let n = timing.jobs.len() as u64;
        self.transactions.add(n);
        let undone = timing
            .jobs
            .iter()
            .filter(|(_, kept)| !kept || !committed)
            .count() as u64;
        if undone > 0 {
            self.rolled_back.add(undone);
        }
        if committed && timing.jobs.iter().any(|(_, kept)| *kept) {
            self.group_commits.inc();
            if timing.effects > 0 {
                self.effects_recorded.add(timing.effects);
            }
        }
        if !self.transactions.is_enabled() {
            return;
        }
        let mut sum = 0u64;
        let mut max = 0u64;
        for (run, kept) in &timing.jobs {
            let total = *run + timing.commit;
            let micros = u64::try_from(total.as_micros()).unwrap_or(u64::MAX);
            sum = sum.saturating_add(micros);
            max = max.max(micros);
            let ms = total.as_secs_f64() * 1e3;
            if self.slow.would_keep(DURATION_MS, ms) {
                self.slow.keep_largest(
                    Record::new()
                        .with("store", path.display().to_string())
                        .with(DURATION_MS, ms)
                        .with("group_size", n)
                        .with("committed", committed && *kept),
                    DURATION_MS,
                );
            }
        }
        self.tx_micros.fetch_add(sum, Relaxed);
        self.tx_max_micros.fetch_max(max, Relaxed);
    }

    /// Records what a dispatcher's marking transaction committed.
    pub(crate) fn effects_done(&self, dispatched: u64, parked: u64) {
        if dispatched > 0 {
            self.effects_dispatched.add(dispatched);
        }
        if parked > 0 {
            self.effects_parked.add(parked);
        }
    }

    /// Parked effects put back in line by an operator.
    pub(crate) fn effects_requeued(&self, n: u64) {
        if n > 0 {
            self.effects_recorded.add(n);
        }
    }
}

fn register_functions(ns: &Namespace, tx_micros: Arc<AtomicU64>, tx_max_micros: Arc<AtomicU64>) {
    ns.function(
        "Mean Transaction Seconds",
        "Mean time of a transaction since start: its body plus the commit it waited for.",
        move |view| {
            let n = view.get_f64("Transactions")?;
            (n > 0.0).then(|| tx_micros.load(Relaxed) as f64 / 1e6 / n)
        },
    );
    ns.function(
        "Max Transaction Seconds",
        "Longest transaction since start: its body plus the commit it waited for.",
        move |_| tx_max_micros.load(Relaxed) as f64 / 1e6,
    );
    ns.function(
        "Outbox Backlog",
        "Effects recorded but not yet dispatched or parked, since start.",
        |view| {
            let get = |name| view.get_f64(name).unwrap_or(0.0);
            (get("Effects Recorded") - get("Effects Dispatched") - get("Effects Parked")).max(0.0)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_stats::Value;

    #[test]
    fn a_group_counts_its_transactions_times_and_slow_ones() {
        let registry = StatsRegistry::new();
        let stats = StoreStats::new(&registry);
        stats.store_opened();
        stats.store_opened();
        stats.store_closed();
        let timing = GroupTiming {
            jobs: vec![
                (Duration::from_millis(3), true),
                (Duration::from_millis(1), false),
            ],
            commit: Duration::from_millis(2),
            effects: 2,
        };
        stats.group_done(Path::new("/x/a.store"), &timing, true);
        stats.effects_done(1, 0);
        let snap = registry.snapshot();
        let ns = snap.namespace(STATS_NAMESPACE).unwrap();
        assert_eq!(ns.value("Open Stores"), Some(&Value::Int(1)));
        assert_eq!(ns.value("Transactions"), Some(&Value::UInt(2)));
        assert_eq!(ns.value("Transactions Rolled Back"), Some(&Value::UInt(1)));
        assert_eq!(ns.value("Group Commits"), Some(&Value::UInt(1)));
        assert_eq!(
            ns.value("Outbox Backlog").and_then(Value::as_f64),
            Some(1.0)
        );
        let max = ns
            .value("Max Transaction Seconds")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((max - 0.005).abs() < 1e-9, "{max}");
        let mean = ns
            .value("Mean Transaction Seconds")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((mean - 0.004).abs() < 1e-9, "{mean}");
        let slow = ns.collection("Slow Transactions").unwrap();
        assert_eq!(slow.records.len(), 2);
        let first = &slow.records[0].values;
        assert_eq!(first.get("store"), Some(&Value::from("/x/a.store")));
        assert_eq!(first.get("committed"), Some(&Value::Bool(true)));
    }

    #[test]
    fn open_stores_stay_true_across_a_pause() {
        let registry = StatsRegistry::new();
        let stats = StoreStats::new(&registry);
        stats.store_opened();
        registry.set_enabled(STATS_NAMESPACE, false);
        stats.store_closed();
        stats.store_opened();
        stats.store_opened();
        registry.set_enabled(STATS_NAMESPACE, true);
        stats.store_closed();
        let snap = registry.snapshot();
        let ns = snap.namespace(STATS_NAMESPACE).unwrap();
        assert_eq!(ns.value("Open Stores"), Some(&Value::Int(1)));
    }
}
