//! Effects on commit: the outbox and its dispatcher.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Counter, counter_registry};
use mantle_store::{DispatchError, Effect, EffectId, Error, Store, StoreConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Greet {
    to: String,
}

impl Effect for Greet {
    const KIND: &'static str = "test.greet";
}

/// An effect kind no handler is registered for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unhandled {
    n: u32,
}

impl Effect for Unhandled {
    const KIND: &'static str = "test.unhandled";
}

/// What a handler saw: the effect id, the attempt number and the effect.
type Seen = (EffectId, u32, Greet);

/// A config whose `Greet` handler forwards every delivery to a channel.
fn forwarding_config() -> (StoreConfig, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = common::config(counter_registry()).on_effect(move |d, g: Greet| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((d.id, d.attempt, g));
            Ok(())
        }
    });
    (config, rx)
}

async fn open(config: &StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("e.store"), config)
        .await
        .unwrap();
    (dir, store)
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("an effect should be dispatched")
        .expect("handler alive")
}

async fn outbox_is_empty(store: &Store) -> bool {
    store.outbox().await.unwrap().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_recorded_in_a_committed_transaction_is_dispatched_once() {
    let (config, mut rx) = forwarding_config();
    let (_dir, store) = open(&config).await;
    let id = store
        .transact(|tx| {
            tx.insert(&Counter::new("x", 1))?;
            tx.record(&Greet { to: "ada".into() })
        })
        .await
        .unwrap();
    let (seen_id, attempt, greet) = recv(&mut rx).await;
    assert_eq!(seen_id, id);
    assert_eq!(attempt, 0);
    assert_eq!(greet, Greet { to: "ada".into() });
    common::eventually("the delivered effect to leave the outbox", || {
        outbox_is_empty(&store)
    })
    .await;
    // Several effects, several transactions: each once, in order.
    for i in 0..5 {
        store
            .transact(move |tx| {
                tx.record(&Greet {
                    to: format!("n{i}"),
                })
            })
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(recv(&mut rx).await.2.to);
    }
    assert_eq!(got, ["n0", "n1", "n2", "n3", "n4"]);
    common::eventually("the outbox to drain", || outbox_is_empty(&store)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "nothing is dispatched twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_from_a_rolled_back_transaction_is_never_dispatched() {
    let (config, mut rx) = forwarding_config();
    let (_dir, store) = open(&config).await;
    let err = store
        .transact(|tx| {
            tx.record(&Greet {
                to: "rolled back".into(),
            })?;
            Err::<(), _>(Error::NoSuchItem {
                type_name: "counter",
                id: 0,
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchItem { .. }));
    let err = store
        .transact(|tx| {
            tx.record(&Greet {
                to: "panicked".into(),
            })?;
            if tx.query::<Counter>().count()? == 0 {
                panic!("after recording");
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Panicked(_)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "nothing was dispatched");
    assert!(store.outbox().await.unwrap().is_empty());
    // The dispatcher is alive: a committed effect after those comes through
    // and is the first and only one seen.
    store
        .transact(|tx| tx.record(&Greet { to: "kept".into() }))
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await.2.to, "kept");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_dispatch_failure_parks_the_effect_until_retry_effect() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let config = {
        let calls = calls.clone();
        common::config(counter_registry()).on_effect(move |d, g: Greet| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                if n == 0 {
                    return Err(DispatchError::permanent("mailbox does not exist"));
                }
                let _ = tx.send((d.id, d.attempt, g));
                Ok(())
            }
        })
    };
    let (_dir, store) = open(&config).await;
    let id = store
        .transact(|tx| tx.record(&Greet { to: "bob".into() }))
        .await
        .unwrap();
    common::eventually("the effect to be parked", || {
        let store = store.clone();
        async move { store.outbox().await.unwrap().iter().any(|e| e.parked) }
    })
    .await;
    let outbox = store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1);
    let entry = &outbox[0];
    assert_eq!(entry.id, id);
    assert_eq!(entry.kind, "test.greet");
    assert_eq!(
        serde_json::from_str::<Greet>(&entry.payload).unwrap(),
        Greet { to: "bob".into() }
    );
    assert_eq!(entry.attempts, 1);
    assert!(entry.parked);
    assert_eq!(entry.last_error.as_deref(), Some("mailbox does not exist"));
    let report = mantle_store::inspect(store.path()).unwrap();
    assert_eq!((report.outbox_pending, report.outbox_parked), (0, 1));
    // Parked means no more attempts on its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(rx.try_recv().is_err());
    // retry_effect puts it back in line; the handler now succeeds.
    assert!(store.retry_effect(id).await.unwrap());
    let (seen_id, attempt, greet) = recv(&mut rx).await;
    assert_eq!((seen_id, greet.to.as_str()), (id, "bob"));
    assert_eq!(attempt, 0, "retry_effect resets the attempts");
    common::eventually("the outbox to drain", || outbox_is_empty(&store)).await;
    assert!(!store.retry_effect(id).await.unwrap(), "no longer parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_failing_max_dispatch_attempts_times_is_parked() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = {
        let calls = calls.clone();
        common::config(counter_registry())
            .max_dispatch_attempts(2)
            .on_effect(move |_d, _g: Greet| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(DispatchError::retry("try again later")) }
            })
    };
    let (_dir, store) = open(&config).await;
    store
        .transact(|tx| tx.record(&Greet { to: "x".into() }))
        .await
        .unwrap();
    common::eventually("the effect to be parked", || {
        let store = store.clone();
        async move { store.outbox().await.unwrap().iter().any(|e| e.parked) }
    })
    .await;
    let entry = store.outbox().await.unwrap().remove(0);
    assert_eq!(entry.attempts, 2);
    assert_eq!(entry.last_error.as_deref(), Some("try again later"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_without_a_handler_wait_in_the_outbox() {
    let (config, mut rx) = forwarding_config();
    let (_dir, store) = open(&config).await;
    store
        .transact(|tx| {
            tx.record(&Unhandled { n: 7 })?;
            tx.record(&Greet { to: "z".into() })
        })
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await.2.to, "z");
    common::eventually("only the unhandled effect to remain", || {
        let store = store.clone();
        async move { store.outbox().await.unwrap().len() == 1 }
    })
    .await;
    let entry = store.outbox().await.unwrap().remove(0);
    assert_eq!(entry.kind, "test.unhandled");
    assert_eq!(entry.payload, r#"{"n":7}"#);
    assert!(!entry.parked);
    assert_eq!(entry.attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_not_done_before_close_is_dispatched_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.store");
    let attempts = Arc::new(AtomicUsize::new(0));
    let failing = {
        let attempts = attempts.clone();
        common::config(counter_registry()).on_effect(move |_d, _g: Greet| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err(DispatchError::retry("network down")) }
        })
    };
    let store = Store::open(&path, &failing).await.unwrap();
    let id = store
        .transact(|tx| tx.record(&Greet { to: "later".into() }))
        .await
        .unwrap();
    common::eventually("a failed attempt to be recorded", || {
        let store = store.clone();
        async move {
            store
                .outbox()
                .await
                .unwrap()
                .iter()
                .any(|e| e.attempts >= 1)
        }
    })
    .await;
    common::close(store).await;
    let tried = attempts.load(Ordering::SeqCst);
    assert!(tried >= 1);

    let (succeeding, mut rx) = forwarding_config();
    let store = common::reopen(&path, &succeeding).await;
    let (seen_id, attempt, greet) = recv(&mut rx).await;
    assert_eq!(seen_id, id, "the same outbox row, across the restart");
    assert!(attempt >= 1, "earlier failed attempts are remembered");
    assert_eq!(greet.to, "later");
    common::eventually("the outbox to drain", || outbox_is_empty(&store)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        tried,
        "the closed store's handler is not called any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_receives_a_usable_store_handle() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let config = common::config(counter_registry()).on_effect(move |d, _g: Greet| {
        let tx = tx.clone();
        async move {
            // The handler can read what the transaction committed.
            let n = d
                .store
                .read(|r| r.query::<Counter>().count())
                .await
                .map_err(|e| DispatchError::retry(e.to_string()))?;
            let _ = tx.send(n);
            Ok(())
        }
    });
    let (_dir, store) = open(&config).await;
    store
        .transact(|tx| {
            tx.insert(&Counter::new("a", 1))?;
            tx.insert(&Counter::new("b", 2))?;
            tx.record(&Greet { to: "a".into() })
        })
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2, "the handler runs after commit and sees the commit");
}
