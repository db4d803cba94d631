//! Statistics for any crate: named namespaces of counters, gauges, text,
//! timestamps, collections of records and report-time functions, reported
//! as HTML, JSON or the Prometheus text format.
//!
//! This is CherryPy's `logging.statistics` proposal in Rust. A
//! [`StatsRegistry`] holds [`Namespace`]s ("SQLAlchemy", "Web", "Mail
//! Relay"); each namespace holds named statistics whose names are chosen to
//! read well in a report:
//!
//! - [`Counter`]s and [`Gauge`]s / [`FloatGauge`]s: atomics, lock-free on
//!   the hot path (one relaxed load of the `Enabled` flag, one relaxed
//!   read-modify-write);
//! - [`TextValue`]s and [`TimestampValue`]s;
//! - [`Collection`]s of [`Record`]s: the last N, the largest N by a field
//!   ("slowest requests"), or one record per key ("worker threads");
//! - functions computed only when a report is made (the seed's
//!   *extrapolation*), which see their namespace through a
//!   [`NamespaceView`]; the order in which they run is not guaranteed.
//!
//! Each namespace has an `Enabled` switch ([`Namespace::set_enabled`]) that
//! stops collection but not reporting. [`StatsRegistry::snapshot`] copies
//! everything and computes the functions; the [`Snapshot`] renders as JSON
//! ([`Snapshot::to_json`], and back with [`Snapshot::from_json`]), HTML
//! ([`Snapshot::to_html`], [`HtmlReport`] for a toggle button per namespace)
//! and Prometheus text ([`Snapshot::to_prometheus`]).
//!
//! What it is not: it depends on nothing else in Mantle and serves nothing
//! by itself; a web layer mounts the reports. There is no global registry:
//! create one and pass clones around. It is not a time-series store or a
//! histogram library either: it reports the present.
//!
//! ```
//! use mantle_stats::{Record, StatsRegistry, Value};
//!
//! let stats = StatsRegistry::new();
//! let web = stats.namespace("Web");
//!
//! // At start-up: create the statistics, keep the handles.
//! let start = web.timestamp("Start Time", "When the server started.");
//! start.set_now();
//! let requests = web.counter("Requests", "Requests served.");
//! let slowest = web.collection("Slowest Requests", "The 10 slowest requests.", 10);
//! web.function("Requests/Second", "Average since start.", |ns| {
//!     let started = ns.get_f64("Start Time")?;
//!     Some(ns.get_f64("Requests")? / (ns.now() - started).max(1e-9))
//! });
//!
//! // On the hot path.
//! requests.inc();
//! slowest.keep_largest(Record::new().with("Path", "/").with("Seconds", 0.25), "Seconds");
//!
//! // Pausing stops collection, not reporting.
//! web.set_enabled(false);
//! requests.inc();
//!
//! let snapshot = stats.snapshot();
//! let ns = snapshot.namespace("Web").unwrap();
//! assert_eq!(ns.value("Requests"), Some(&Value::Int(1)));
//! assert!(!ns.enabled);
//! assert_eq!(ns.collection("Slowest Requests").unwrap().records.len(), 1);
//! assert!(ns.value("Requests/Second").unwrap().as_f64().is_some());
//!
//! let prom = snapshot.to_prometheus();
//! assert!(prom.contains("# TYPE mantle_web_requests_total counter\nmantle_web_requests_total 1\n"));
//! assert!(snapshot.to_html().contains("<h2>Web</h2>"));
//! assert_eq!(mantle_stats::Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
//! ```

mod collection;
mod error;
mod handles;
mod registry;
pub mod report;
mod snapshot;
mod time;
mod value;

pub use collection::Collection;
pub use error::StatsError;
pub use handles::{Counter, FloatGauge, Gauge, TextValue, TimestampValue};
pub use registry::{ENABLED, Namespace, StatsRegistry};
pub use report::HtmlReport;
pub use snapshot::{
    CollectionRecord, CollectionSnapshot, NamespaceSnapshot, NamespaceView, Snapshot, ValueKind,
    ValueSnapshot,
};
pub use value::{Record, Value};
