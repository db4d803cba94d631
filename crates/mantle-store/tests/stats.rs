//! The "Stores" statistics namespace, recorded by real stores.

mod common;

use common::{Counter, counter_registry, eventually};
use mantle_stats::{Snapshot, StatsRegistry, Value};
use mantle_store::{DispatchError, Effect, Error, STATS_NAMESPACE, Store, StoreCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping {
    fail: bool,
}

impl Effect for Ping {
    const KIND: &'static str = "test.ping";
}

fn num(snap: &Snapshot, name: &str) -> f64 {
    snap.namespace(STATS_NAMESPACE)
        .expect("Stores namespace")
        .value(name)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{name} is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_record_transactions_cache_use_and_the_outbox() {
    let stats = StatsRegistry::new();
    let config = common::config(counter_registry())
        .stats(stats.clone())
        .max_dispatch_attempts(1)
        .on_effect(|_, p: Ping| async move {
            if p.fail {
                Err(DispatchError::permanent("refused"))
            } else {
                Ok(())
            }
        });
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(config.clone(), 4);
    let a = cache.get(dir.path().join("a.store")).await.unwrap();
    let _again = cache.get(dir.path().join("a.store")).await.unwrap();
    let b = Store::open(dir.path().join("b.store"), &config)
        .await
        .unwrap();
    assert_eq!(num(&stats.snapshot(), "Open Stores"), 2.0);
    assert_eq!(num(&stats.snapshot(), "Cache Hits"), 1.0);
    assert_eq!(num(&stats.snapshot(), "Cache Misses"), 1.0);

    for i in 0..5 {
        a.transact(move |tx| tx.insert(&Counter::new("c", i)))
            .await
            .unwrap();
    }
    let failed = a
        .transact(|tx| {
            tx.insert(&Counter::new("gone", 0))?;
            Err::<(), _>(Error::Encode {
                what: "test",
                reason: "refused on purpose".into(),
            })
        })
        .await;
    assert!(failed.is_err());
    b.transact(|tx| {
        tx.record(&Ping { fail: false })?;
        tx.record(&Ping { fail: true })
    })
    .await
    .unwrap();

    eventually("the effects to be dispatched and parked", || {
        let stats = stats.clone();
        async move {
            let s = stats.snapshot();
            num(&s, "Effects Dispatched") == 1.0 && num(&s, "Effects Parked") == 1.0
        }
    })
    .await;
    let s = stats.snapshot();
    assert!(num(&s, "Transactions") >= 7.0, "{}", s.to_json_pretty());
    assert!(num(&s, "Transactions Rolled Back") >= 1.0);
    assert!(num(&s, "Group Commits") >= 1.0);
    assert_eq!(num(&s, "Effects Recorded"), 2.0);
    assert_eq!(num(&s, "Outbox Backlog"), 0.0);
    assert!(num(&s, "Max Transaction Seconds") > 0.0);
    assert!(num(&s, "Mean Transaction Seconds") > 0.0);
    assert!(num(&s, "Mean Transaction Seconds") <= num(&s, "Max Transaction Seconds"));
    let slow = s
        .namespace(STATS_NAMESPACE)
        .unwrap()
        .collection("Slow Transactions")
        .unwrap();
    assert!(!slow.records.is_empty());
    let store = slow.records[0].values.get("store").unwrap().to_string();
    assert!(store.ends_with(".store"), "{store}");
    assert!(
        slow.records
            .windows(2)
            .all(|w| w[0].values.get("duration_ms").unwrap().as_f64()
                >= w[1].values.get("duration_ms").unwrap().as_f64())
    );

    b.close().await;
    cache.close_all().await;
    drop((a, _again, b));
    assert_eq!(num(&stats.snapshot(), "Open Stores"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_namespace_freezes_its_counters() {
    let stats = StatsRegistry::new();
    let config = common::config(counter_registry()).stats(stats.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &config)
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    // A writer records a group just after answering it.
    eventually("the first transaction to be counted", || {
        let stats = stats.clone();
        async move { num(&stats.snapshot(), "Transactions") == 1.0 }
    })
    .await;
    let before = stats.snapshot();
    assert_eq!(num(&before, "Transactions"), 1.0);
    assert!(stats.set_enabled(STATS_NAMESPACE, false));
    for i in 0..3 {
        store
            .transact(move |tx| tx.insert(&Counter::new("b", i)))
            .await
            .unwrap();
    }
    let after = stats.snapshot();
    assert_eq!(num(&after, "Transactions"), num(&before, "Transactions"));
    assert_eq!(
        num(&after, "Max Transaction Seconds"),
        num(&before, "Max Transaction Seconds")
    );
    assert!(!after.namespace(STATS_NAMESPACE).unwrap().enabled);

    stats.set_enabled(STATS_NAMESPACE, true);
    store
        .transact(|tx| tx.insert(&Counter::new("c", 1)))
        .await
        .unwrap();
    eventually("the transaction after resuming to be counted", || {
        let stats = stats.clone();
        async move { num(&stats.snapshot(), "Transactions") == 2.0 }
    })
    .await;
    store.close().await;
}

#[tokio::test]
async fn without_a_registry_nothing_is_recorded() {
    let config = common::config(counter_registry());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &config)
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    store.close().await;
}
