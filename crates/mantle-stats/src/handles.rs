//! Handles to scalar values: counters, gauges, text and timestamps.
//!
//! Every handle shares its namespace's `Enabled` flag; while the namespace
//! is disabled, recording through the handle does nothing (one relaxed load
//! of the flag). Reading always works.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A monotonically increasing count (requests served, bytes sent).
///
/// Cheap to clone (two `Arc`s); keep a clone where the counting happens.
/// `inc` and `add` are lock-free: when the namespace is enabled, a relaxed
/// load of the flag and a relaxed `fetch_add`; when disabled, only the load.
/// The count wraps on overflow of `u64`.
#[derive(Clone)]
pub struct Counter {
    value: Arc<AtomicU64>,
    enabled: Arc<AtomicBool>,
}

impl Counter {
    pub(crate) fn new(enabled: Arc<AtomicBool>) -> Self {
        Self {
            value: Arc::new(AtomicU64::new(0)),
            enabled,
        }
    }

    /// Adds one, if the namespace is enabled.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`, if the namespace is enabled.
    #[inline]
    pub fn add(&self, n: u64) {
        if self.enabled.load(Relaxed) {
            self.value.fetch_add(n, Relaxed);
        }
    }

    /// The current count.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// A signed integer that goes up and down (connections open, queue depth).
///
/// Lock-free like [`Counter`]; every change is skipped while the namespace
/// is disabled. Arithmetic wraps on overflow.
#[derive(Clone)]
pub struct Gauge {
    value: Arc<AtomicI64>,
    enabled: Arc<AtomicBool>,
}

impl Gauge {
    pub(crate) fn new(enabled: Arc<AtomicBool>) -> Self {
        Self {
            value: Arc::new(AtomicI64::new(0)),
            enabled,
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        if self.enabled.load(Relaxed) {
            self.value.store(v, Relaxed);
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        if self.enabled.load(Relaxed) {
            self.value.fetch_add(n, Relaxed);
        }
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        if self.enabled.load(Relaxed) {
            self.value.fetch_sub(n, Relaxed);
        }
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("value", &self.get())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// A floating-point gauge (load average, a ratio, seconds).
///
/// The `f64` lives as bits in an `AtomicU64`: `set` is one store, `add` a
/// compare-and-swap loop. Skipped while the namespace is disabled.
#[derive(Clone)]
pub struct FloatGauge {
    bits: Arc<AtomicU64>,
    enabled: Arc<AtomicBool>,
}

impl FloatGauge {
    pub(crate) fn new(enabled: Arc<AtomicBool>) -> Self {
        Self {
            bits: Arc::new(AtomicU64::new(0f64.to_bits())),
            enabled,
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        if self.enabled.load(Relaxed) {
            self.bits.store(v.to_bits(), Relaxed);
        }
    }

    /// Adds `delta` (which may be negative).
    #[inline]
    pub fn add(&self, delta: f64) {
        if self.enabled.load(Relaxed) {
            // `fetch_update` retries until no other writer intervened.
            let _ = self.bits.fetch_update(Relaxed, Relaxed, |b| {
                Some((f64::from_bits(b) + delta).to_bits())
            });
        }
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Relaxed))
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

impl fmt::Debug for FloatGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloatGauge")
            .field("value", &self.get())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// A piece of text (a version, the current state of something).
///
/// Setting takes a short mutex; skipped while the namespace is disabled.
#[derive(Clone)]
pub struct TextValue {
    text: Arc<Mutex<String>>,
    enabled: Arc<AtomicBool>,
}

impl TextValue {
    pub(crate) fn new(enabled: Arc<AtomicBool>) -> Self {
        Self {
            text: Arc::new(Mutex::new(String::new())),
            enabled,
        }
    }

    /// Sets the text.
    pub fn set(&self, text: impl Into<String>) {
        if self.enabled.load(Relaxed) {
            *self.text.lock() = text.into();
        }
    }

    /// The current text.
    #[must_use]
    pub fn get(&self) -> String {
        self.text.lock().clone()
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

impl fmt::Debug for TextValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextValue")
            .field("text", &*self.text.lock())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// Nanoseconds since the epoch, or this for "never set".
const UNSET: u64 = u64::MAX;

/// A point in time (start time, last error), unset until first set.
///
/// Stored as nanoseconds since the Unix epoch in an `AtomicU64` (times
/// before the epoch are clamped to it). Reports show Unix seconds.
/// Skipped while the namespace is disabled.
#[derive(Clone)]
pub struct TimestampValue {
    nanos: Arc<AtomicU64>,
    enabled: Arc<AtomicBool>,
}

impl TimestampValue {
    pub(crate) fn new(enabled: Arc<AtomicBool>) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(UNSET)),
            enabled,
        }
    }

    /// Sets the time to now.
    pub fn set_now(&self) {
        self.set(SystemTime::now());
    }

    /// Sets the time.
    pub fn set(&self, t: SystemTime) {
        if self.enabled.load(Relaxed) {
            let nanos = t
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(UNSET - 1));
            self.nanos.store(nanos, Relaxed);
        }
    }

    /// The time, if it has been set.
    #[must_use]
    pub fn get(&self) -> Option<SystemTime> {
        match self.nanos.load(Relaxed) {
            UNSET => None,
            n => Some(UNIX_EPOCH + Duration::from_nanos(n)),
        }
    }

    /// Whether the namespace is collecting.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

impl fmt::Debug for TimestampValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimestampValue")
            .field("time", &self.get())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(on: bool) -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(on))
    }

    #[test]
    fn counter_counts_only_while_enabled() {
        let enabled = flag(true);
        let c = Counter::new(enabled.clone());
        c.inc();
        c.add(4);
        enabled.store(false, Relaxed);
        c.add(100);
        assert_eq!(c.get(), 5);
        assert!(!c.is_enabled());
    }

    #[test]
    fn gauges_move_both_ways() {
        let g = Gauge::new(flag(true));
        g.set(10);
        g.inc();
        g.dec();
        g.dec();
        g.sub(4);
        g.add(-1);
        assert_eq!(g.get(), 4);

        let f = FloatGauge::new(flag(true));
        f.set(1.5);
        f.add(0.25);
        f.add(-2.0);
        assert!((f.get() - -0.25).abs() < f64::EPSILON);
    }

    #[test]
    fn float_gauge_add_is_atomic_across_threads() {
        let f = FloatGauge::new(flag(true));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let f = f.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        f.add(1.0);
                    }
                });
            }
        });
        assert!((f.get() - 4000.0).abs() < f64::EPSILON);
    }

    #[test]
    fn text_and_timestamp_freeze_when_disabled() {
        let enabled = flag(true);
        let t = TextValue::new(enabled.clone());
        let ts = TimestampValue::new(enabled.clone());
        assert_eq!(ts.get(), None);
        t.set("up");
        let when = UNIX_EPOCH + Duration::from_secs(1_000_000);
        ts.set(when);
        enabled.store(false, Relaxed);
        t.set("down");
        ts.set_now();
        assert_eq!(t.get(), "up");
        assert_eq!(ts.get(), Some(when));
    }

    #[test]
    fn timestamp_before_epoch_clamps() {
        let ts = TimestampValue::new(flag(true));
        ts.set(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(ts.get(), Some(UNIX_EPOCH));
    }
}
