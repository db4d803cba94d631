//! Functions are computed when a report is made, and see their namespace.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mantle_stats::{Record, StatsRegistry, Value};

#[test]
fn function_values_are_computed_at_report_time_and_see_the_namespace() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("SQLAlchemy");
    let calls = Arc::new(AtomicUsize::new(0));

    let start = ns.timestamp("Start", "");
    start.set(SystemTime::now() - Duration::from_secs(10));
    let inserts = ns.counter("Inserts", "");
    let slow = ns.collection("Slow Queries", "", 5);
    let counted = calls.clone();
    ns.function("Inserts per Second", "", move |s| {
        counted.fetch_add(1, Ordering::SeqCst);
        assert_eq!(s.name(), "SQLAlchemy");
        assert!(s.is_enabled());
        Some(s.get_f64("Inserts")? / (s.now() - s.get_f64("Start")?))
    });
    ns.function("Slow Query Count", "", |s| {
        s.collection("Slow Queries").map(|c| c.records.len())
    });
    ns.function("Sees Other Functions", "", |s| {
        s.get("Inserts per Second").is_some()
    });
    ns.function("Value Names", "", |s| {
        s.values().map(|(n, _)| n).collect::<Vec<_>>().join(",")
    });

    // Registering and recording compute nothing.
    inserts.add(50);
    slow.push(Record::new().with("Query", "SELECT 1"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let snap = stats.snapshot();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let ns_snap = snap.namespace("SQLAlchemy").unwrap();
    let rate = ns_snap
        .value("Inserts per Second")
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((4.0..=5.01).contains(&rate), "rate {rate}");
    assert_eq!(ns_snap.value("Slow Query Count"), Some(&Value::Int(1)));
    assert_eq!(
        ns_snap.value("Sees Other Functions"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        ns_snap.value("Value Names"),
        Some(&Value::from("Start,Inserts"))
    );

    // Each report computes afresh.
    inserts.add(50);
    let again = stats.snapshot();
    let rate2 = again
        .namespace("SQLAlchemy")
        .unwrap()
        .value("Inserts per Second");
    assert!(rate2.unwrap().as_f64().unwrap() > rate);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn functions_run_while_disabled_too() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("N");
    ns.function("Answer", "", |_| 42);
    ns.set_enabled(false);
    assert_eq!(
        stats.snapshot().namespace("N").unwrap().value("Answer"),
        Some(&Value::Int(42))
    );
}

#[test]
fn a_function_returning_none_reports_null() {
    let stats = StatsRegistry::new();
    stats
        .namespace("N")
        .function("Missing", "", |s| s.get_f64("nothing here"));
    let snap = stats.snapshot();
    assert_eq!(
        snap.namespace("N").unwrap().value("Missing"),
        Some(&Value::Null)
    );
    assert!(!snap.to_prometheus().contains("missing"));
}
