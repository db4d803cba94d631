//! Collections: bounded lists or keyed maps of [`Record`]s.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::snapshot::CollectionRecord;
use crate::value::Record;

/// A bounded collection of records: the seed's "collection", such as one
/// record per worker thread or the slowest requests.
///
/// It holds at most `capacity` records (a capacity of 0 counts as 1) and can
/// be used in one of three ways:
///
/// - as a **log** of the last `capacity` records: [`push`](Self::push)
///   evicts the oldest when full;
/// - as the **largest N** by a numeric field ("slowest 10 requests"):
///   [`keep_largest`](Self::keep_largest) keeps records in descending order
///   of that field and drops the smallest;
/// - as a **keyed map** (one record per worker): [`set`](Self::set),
///   [`update`](Self::update) and [`remove`](Self::remove) by key; when a new
///   key arrives and the collection is full, the oldest entry is evicted.
///
/// Recording takes a mutex, but first checks the namespace's `Enabled` flag
/// and does nothing while it is off; all changes (including `remove`) are
/// frozen then. Only [`clear`](Self::clear), an administrative action, works
/// regardless. Check [`is_enabled`](Self::is_enabled) before building an
/// expensive record, or [`would_keep`](Self::would_keep) for a largest-N.
///
/// Cheap to clone; clones share the records.
#[derive(Clone)]
pub struct Collection {
    inner: Arc<Inner>,
    enabled: Arc<AtomicBool>,
}

struct Inner {
    capacity: usize,
    entries: Mutex<VecDeque<CollectionRecord>>,
}

impl Collection {
    pub(crate) fn new(capacity: usize, enabled: Arc<AtomicBool>) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Inner {
                capacity,
                entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            }),
            enabled,
        }
    }

    /// Appends a record, evicting the oldest if the collection is full.
    pub fn push(&self, record: Record) {
        if !self.is_enabled() {
            return;
        }
        let mut entries = self.inner.entries.lock();
        if entries.len() >= self.inner.capacity {
            entries.pop_front();
        }
        entries.push_back(CollectionRecord {
            key: None,
            values: record,
        });
    }

    /// Keeps `record` if its numeric field `by_key` is among the `capacity`
    /// largest seen, holding records in descending order of that field.
    ///
    /// Returns whether the record was kept. A record whose `by_key` is
    /// missing, not a number or NaN is not kept; on a tie with a full
    /// collection the earlier record stays.
    pub fn keep_largest(&self, record: Record, by_key: &str) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let Some(score) = score_of(&record, by_key) else {
            return false;
        };
        let mut entries = self.inner.entries.lock();
        let at = entries
            .iter()
            .position(|e| score_of(&e.values, by_key).unwrap_or(f64::NEG_INFINITY) < score)
            .unwrap_or(entries.len());
        if at >= self.inner.capacity {
            return false;
        }
        entries.insert(
            at,
            CollectionRecord {
                key: None,
                values: record,
            },
        );
        entries.truncate(self.inner.capacity);
        true
    }

    /// Whether [`keep_largest`](Self::keep_largest) would keep a record whose
    /// `by_key` field is `score`: lets a caller skip building the record.
    #[must_use]
    pub fn would_keep(&self, by_key: &str, score: f64) -> bool {
        if !self.is_enabled() || score.is_nan() {
            return false;
        }
        let entries = self.inner.entries.lock();
        entries.len() < self.inner.capacity
            || entries
                .back()
                .is_some_and(|e| score_of(&e.values, by_key).unwrap_or(f64::NEG_INFINITY) < score)
    }

    /// Sets the record for `key`, replacing it in place if present; a new
    /// key evicts the oldest entry when the collection is full.
    pub fn set(&self, key: impl Into<String>, record: Record) {
        if !self.is_enabled() {
            return;
        }
        let key = key.into();
        let mut entries = self.inner.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key.as_deref() == Some(&*key)) {
            e.values = record;
            return;
        }
        if entries.len() >= self.inner.capacity {
            entries.pop_front();
        }
        entries.push_back(CollectionRecord {
            key: Some(key),
            values: record,
        });
    }

    /// Changes the record for `key` in place (starting from an empty record
    /// if there is none), as [`set`](Self::set) would store it.
    pub fn update(&self, key: impl Into<String>, f: impl FnOnce(&mut Record)) {
        if !self.is_enabled() {
            return;
        }
        let key = key.into();
        let mut entries = self.inner.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key.as_deref() == Some(&*key)) {
            f(&mut e.values);
            return;
        }
        let mut record = Record::new();
        f(&mut record);
        if entries.len() >= self.inner.capacity {
            entries.pop_front();
        }
        entries.push_back(CollectionRecord {
            key: Some(key),
            values: record,
        });
    }

    /// Removes the record for `key`, returning it (nothing happens, and
    /// `None` is returned, while the namespace is disabled).
    pub fn remove(&self, key: &str) -> Option<Record> {
        if !self.is_enabled() {
            return None;
        }
        let mut entries = self.inner.entries.lock();
        let at = entries.iter().position(|e| e.key.as_deref() == Some(key))?;
        entries.remove(at).map(|e| e.values)
    }

    /// The record for `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Record> {
        let entries = self.inner.entries.lock();
        entries
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .map(|e| e.values.clone())
    }

    /// Removes every record, even while the namespace is disabled.
    pub fn clear(&self) {
        self.inner.entries.lock().clear();
    }

    /// A copy of the records, in order.
    #[must_use]
    pub fn records(&self) -> Vec<CollectionRecord> {
        self.inner.entries.lock().iter().cloned().collect()
    }

    /// The number of records held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.entries.lock().len()
    }

    /// Whether no records are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records this collection keeps.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

fn score_of(record: &Record, by_key: &str) -> Option<f64> {
    record
        .get(by_key)
        .and_then(crate::Value::as_f64)
        .filter(|s| !s.is_nan())
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn collection(cap: usize) -> (Collection, Arc<AtomicBool>) {
        let enabled = Arc::new(AtomicBool::new(true));
        (Collection::new(cap, enabled.clone()), enabled)
    }

    fn rec(n: i64) -> Record {
        Record::new().with("n", n)
    }

    fn ns(c: &Collection) -> Vec<i64> {
        c.records()
            .iter()
            .map(|r| r.values.get("n").and_then(Value::as_i64).unwrap())
            .collect()
    }

    #[test]
    fn push_keeps_the_last_capacity_records() {
        let (c, _) = collection(3);
        for n in 0..5 {
            c.push(rec(n));
        }
        assert_eq!(ns(&c), [2, 3, 4]);
        assert_eq!(c.capacity(), 3);
    }

    #[test]
    fn keep_largest_keeps_the_top_n_in_descending_order() {
        let (c, _) = collection(3);
        for n in [5, 1, 9, 3, 7, 2] {
            c.keep_largest(rec(n), "n");
        }
        assert_eq!(ns(&c), [9, 7, 5]);
        assert!(!c.keep_largest(rec(4), "n"));
        assert!(c.keep_largest(rec(8), "n"));
        assert_eq!(ns(&c), [9, 8, 7]);
        assert!(!c.keep_largest(Record::new().with("other", 100), "n"));
        assert!(c.would_keep("n", 7.5));
        assert!(!c.would_keep("n", 7.0));
        assert!(!c.would_keep("n", f64::NAN));
    }

    #[test]
    fn keyed_set_update_remove() {
        let (c, _) = collection(2);
        c.set("w1", rec(1));
        c.set("w2", rec(2));
        c.set("w1", rec(10));
        assert_eq!(ns(&c), [10, 2]);
        c.update("w2", |r| r.set("n", 20));
        c.update("w3", |r| r.set("n", 30)); // evicts the oldest entry, w1
        assert_eq!(ns(&c), [20, 30]);
        assert_eq!(c.get("w1"), None);
        assert_eq!(c.remove("w2"), Some(rec(20)));
        assert_eq!(c.remove("w2"), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_collection_is_frozen_but_clearable() {
        let (c, enabled) = collection(4);
        c.push(rec(1));
        c.set("k", rec(2));
        enabled.store(false, Relaxed);
        c.push(rec(3));
        c.set("k", rec(4));
        c.update("k", |r| r.set("n", 5));
        assert!(!c.keep_largest(rec(6), "n"));
        assert!(!c.would_keep("n", 100.0));
        assert_eq!(c.remove("k"), None);
        assert_eq!(ns(&c), [1, 2]);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn zero_capacity_counts_as_one() {
        let (c, _) = collection(0);
        c.push(rec(1));
        c.push(rec(2));
        assert_eq!(ns(&c), [2]);
    }
}
