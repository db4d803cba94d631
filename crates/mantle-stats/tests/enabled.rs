//! The `Enabled` switch stops collection, not reporting.

use mantle_stats::{Record, StatsRegistry, Value};

#[test]
fn disabled_namespace_freezes_counters_and_collections_while_reports_keep_working() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("Web");
    let requests = ns.counter("Requests", "Requests served.");
    let open = ns.gauge("Open Connections", "");
    let load = ns.float_gauge("Load", "");
    let state = ns.text("State", "");
    let last = ns.timestamp("Last Request", "");
    let recent = ns.collection("Recent", "", 5);
    let workers = ns.collection("Workers", "", 5);

    requests.add(3);
    open.set(2);
    load.set(0.5);
    state.set("serving");
    last.set_now();
    recent.push(Record::new().with("Path", "/a"));
    workers.set("w1", Record::new().with("Busy", true));
    let before = stats.snapshot();

    ns.set_enabled(false);
    requests.inc();
    requests.add(100);
    open.inc();
    open.set(50);
    load.add(1.0);
    state.set("paused?");
    last.set(std::time::UNIX_EPOCH);
    recent.push(Record::new().with("Path", "/b"));
    workers.set("w1", Record::new().with("Busy", false));
    workers.update("w2", |r| r.set("Busy", true));
    assert_eq!(workers.remove("w1"), None);

    let during = stats.snapshot();
    let (b, d) = (
        before.namespace("Web").unwrap(),
        during.namespace("Web").unwrap(),
    );
    assert!(b.enabled);
    assert!(!d.enabled);
    assert_eq!(b.values, d.values, "values are frozen");
    assert_eq!(b.collections, d.collections, "collections are frozen");
    assert_eq!(d.value("Requests"), Some(&Value::Int(3)));

    // Every report still works and shows the switch.
    assert!(during.to_prometheus().contains("mantle_web_enabled 0\n"));
    assert!(
        during
            .to_prometheus()
            .contains("mantle_web_requests_total 3\n")
    );
    assert!(
        during
            .to_html()
            .contains("<th scope=\"row\">Enabled</th><td>false</td>")
    );
    assert!(during.to_json().contains(r#""Web":{"enabled":false"#));

    // Turning it back on resumes collection from the frozen values.
    assert!(stats.set_enabled("Web", true));
    requests.inc();
    recent.push(Record::new().with("Path", "/c"));
    let after = stats.snapshot();
    let a = after.namespace("Web").unwrap();
    assert_eq!(a.value("Requests"), Some(&Value::Int(4)));
    assert_eq!(a.collection("Recent").unwrap().records.len(), 2);
}

#[test]
fn the_switch_is_per_namespace() {
    let stats = StatsRegistry::new();
    let a = stats.namespace("A").counter("n", "");
    let b = stats.namespace("B").counter("n", "");
    stats.namespace("A").set_enabled(false);
    a.inc();
    b.inc();
    assert_eq!((a.get(), b.get()), (0, 1));
}

#[test]
fn handles_made_while_disabled_follow_the_switch() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("N");
    ns.set_enabled(false);
    let c = ns.counter("n", "");
    c.inc();
    ns.set_enabled(true);
    c.inc();
    assert_eq!(c.get(), 1);
}

#[test]
fn counting_from_many_threads_loses_nothing() {
    let stats = StatsRegistry::new();
    let c = stats.namespace("N").counter("n", "");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let c = c.clone();
            s.spawn(move || {
                for _ in 0..10_000 {
                    c.inc();
                }
            });
        }
    });
    assert_eq!(c.get(), 40_000);
}
