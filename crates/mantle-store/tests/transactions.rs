//! Transactions: all-or-nothing commits, panics, optimistic concurrency,
//! snapshot reads and back-pressure.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Counter, counter_registry, counters};
use mantle_store::{Error, Item, Registry, Store, StoreConfig};
use parking_lot::Mutex;

async fn open_with(config: &StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.store"), config)
        .await
        .unwrap();
    (dir, store)
}

async fn open() -> (tempfile::TempDir, Store) {
    open_with(&common::config(counter_registry())).await
}

/// An application error type: store errors convert into it.
#[derive(Debug)]
enum AppError {
    Store(Error),
    Refused(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Store(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closure_returning_err_rolls_back_every_write_of_the_transaction() {
    let (_dir, store) = open().await;
    let (a, b) = store
        .transact(|tx| {
            Ok::<_, Error>((
                tx.insert(&Counter::new("a", 1))?,
                tx.insert(&Counter::new("b", 2))?,
            ))
        })
        .await
        .unwrap();
    let err = store
        .transact(move |tx| {
            tx.insert(&Counter::new("c", 3))?;
            let mut a = tx.get(a)?.unwrap();
            a.n = 100;
            tx.update(&mut a)?;
            tx.delete(b)?;
            tx.update_where(Counter::NAME.eq("c"), [Counter::N.set(30)])?;
            // Everything above was applied inside the transaction...
            assert_eq!(tx.query::<Counter>().count()?, 2);
            Err::<(), _>(AppError::Refused("changed my mind"))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Refused("changed my mind")),
        "{err:?}"
    );
    // ...and none of it was kept.
    assert_eq!(
        counters(&store).await,
        [("a".to_string(), 1), ("b".to_string(), 2)]
    );
    let a = store.read(move |r| r.get(a)).await.unwrap().unwrap();
    assert_eq!(a.revision(), 1);
    // A store error propagated with `?` also rolls back.
    let err = store
        .transact(move |tx| {
            tx.insert(&Counter::new("d", 4))?;
            let mut stale = tx.get(a.id())?.unwrap();
            tx.update(&mut tx.get(a.id())?.unwrap())?;
            tx.update(&mut stale)?; // conflicts
            Ok::<_, AppError>(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Store(Error::Conflict { .. })),
        "{err:?}"
    );
    assert_eq!(counters(&store).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_inside_transact_returns_panicked_and_the_store_stays_usable() {
    let (_dir, store) = open().await;
    store
        .transact(|tx| tx.insert(&Counter::new("before", 0)))
        .await
        .unwrap();
    let err = store
        .transact(|tx| {
            tx.insert(&Counter::new("doomed", 1))?;
            if tx.query::<Counter>().count()? == 2 {
                panic!("boom in the middle of a transaction");
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap_err();
    match err {
        Error::Panicked(msg) => assert!(msg.contains("boom in the middle"), "{msg}"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(
        counters(&store).await,
        [("before".to_string(), 0)],
        "the panic rolled back"
    );
    // The writer carries on.
    for i in 0..3 {
        store
            .transact(move |tx| tx.insert(&Counter::new("after", i)))
            .await
            .unwrap();
    }
    assert_eq!(counters(&store).await.len(), 4);
    // A panicking read too.
    let err = store
        .read(|_r| -> Result<(), Error> { panic!("reader panic") })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Panicked(ref m) if m.contains("reader panic")),
        "{err:?}"
    );
    assert_eq!(counters(&store).await.len(), 4);
}

/// The first insert of a type creates its table. If that transaction rolls
/// back (error or panic), the table goes too; the next transaction must be
/// able to create it again and write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_first_written_in_a_rolled_back_transaction_can_be_written_later() {
    let (_dir, store) = open().await;
    let err = store
        .transact(|tx| {
            tx.insert(&Counter::new("rolled back", 1))?;
            Err::<(), _>(AppError::Refused("no"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Refused("no")), "{err:?}");
    let inserted = store
        .transact(|tx| {
            let id = tx.insert(&Counter::new("kept", 2))?;
            Ok::<_, Error>((id, tx.get(id)?.is_some(), tx.query::<Counter>().count()?))
        })
        .await;
    let (_, found, count) = inserted.expect("insert after a rolled-back first insert");
    assert!(found);
    assert_eq!(count, 1);
    assert_eq!(counters(&store).await, [("kept".to_string(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_first_written_in_a_panicked_transaction_can_be_written_later() {
    let (_dir, store) = open().await;
    let err = store
        .transact(|tx| {
            tx.insert(&Counter::new("doomed", 1))?;
            if tx.query::<Counter>().exists()? {
                panic!("boom after the first insert");
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Panicked(_)), "{err:?}");
    store
        .transact(|tx| tx.insert(&Counter::new("kept", 2)))
        .await
        .expect("insert after a panicked first insert");
    assert_eq!(counters(&store).await, [("kept".to_string(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_a_stale_revision_conflicts_and_the_fresh_revision_succeeds() {
    let (_dir, store) = open().await;
    let id = store
        .transact(|tx| tx.insert(&Counter::new("x", 0)))
        .await
        .unwrap();
    let mut first = store.read(move |r| r.get(id)).await.unwrap().unwrap();
    let mut second = first.clone();
    first.n = 1;
    let first = store
        .transact(move |tx| {
            tx.update(&mut first)?;
            Ok::<_, Error>(first)
        })
        .await
        .unwrap();
    assert_eq!(first.revision(), 2, "update advances the revision");
    second.n = 2;
    let err = store
        .transact(move |tx| tx.update(&mut second))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                type_name: "counter",
                id: i,
                expected: 1,
                actual: 2
            } if i == id.raw()
        ),
        "{err:?}"
    );
    assert_eq!(counters(&store).await, [("x".to_string(), 1)]);
    // Re-read and retry: succeeds.
    let mut fresh = store.read(move |r| r.get(id)).await.unwrap().unwrap();
    assert_eq!(fresh.revision(), 2);
    fresh.n = 2;
    let fresh = store
        .transact(move |tx| {
            tx.update(&mut fresh)?;
            Ok::<_, Error>(fresh)
        })
        .await
        .unwrap();
    assert_eq!(fresh.revision(), 3);
    let stored = store.read(move |r| r.get(id)).await.unwrap().unwrap();
    assert_eq!((stored.n, stored.revision()), (2, 3));
    // Updating a deleted item: NoSuchItem.
    store.transact(move |tx| tx.delete(id)).await.unwrap();
    let mut gone = fresh;
    let err = store
        .transact(move |tx| tx.update(&mut gone))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoSuchItem {
                type_name: "counter",
                ..
            }
        ),
        "{err:?}"
    );
}

#[derive(Item, Debug, Clone)]
#[item(name = "account", version = 1)]
struct Account {
    #[item(index)]
    name: String,
    balance: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_a_consistent_snapshot_while_writes_happen() {
    let mut registry = Registry::new();
    registry.register::<Account>();
    let (_dir, store) = open_with(&common::config(registry)).await;
    let (a, b) = store
        .transact(|tx| {
            Ok::<_, Error>((
                tx.insert(&Account {
                    name: "a".into(),
                    balance: 1000,
                })?,
                tx.insert(&Account {
                    name: "b".into(),
                    balance: 0,
                })?,
            ))
        })
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            for i in 0..300i64 {
                store
                    .transact(move |tx| {
                        let mut from = tx.get(a)?.unwrap();
                        let mut to = tx.get(b)?.unwrap();
                        let amount = 1 + i % 7;
                        from.balance -= amount;
                        tx.update(&mut from)?;
                        // Between the two writes the total is off by `amount`;
                        // no reader may ever see that.
                        to.balance += amount;
                        tx.update(&mut to)
                    })
                    .await
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut reads = 0;
    let mut saw_change_between_reads = false;
    while !done.load(Ordering::SeqCst) || reads < 20 {
        let (total, first_b, again_b, sum) = store
            .read(move |r| {
                let first_b = r.get(b)?.unwrap().balance;
                // Give the writer time to commit more transfers meanwhile.
                std::thread::sleep(Duration::from_millis(2));
                let a_now = r.get(a)?.unwrap().balance;
                let again_b = r.get(b)?.unwrap().balance;
                let sum = r.query::<Account>().sum(Account::BALANCE)?;
                Ok::<_, Error>((a_now + again_b, first_b, again_b, sum))
            })
            .await
            .unwrap();
        assert_eq!(total, 1000, "a + b is constant in every snapshot");
        assert_eq!(sum, 1000);
        assert_eq!(first_b, again_b, "a snapshot does not change while read");
        let later = store.read(move |r| r.get(b)).await.unwrap().unwrap();
        saw_change_between_reads |= later.balance != again_b;
        reads += 1;
    }
    writer.await.unwrap();
    let final_b = store.read(move |r| r.get(b)).await.unwrap().unwrap();
    let expected: i64 = (0..300i64).map(|i| 1 + i % 7).sum();
    assert_eq!(final_b.balance, expected);
    assert_eq!(final_b.revision(), 301);
    // Not an assertion about speed: with 300 commits interleaved with the
    // reads, later reads observe newer commits at least once.
    let _ = saw_change_between_reads;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_one_completes_many_concurrent_transactions_in_submission_order() {
    let config = common::config(counter_registry()).queue_depth(1);
    let (_dir, store) = open_with(&config).await;
    let id = store
        .transact(|tx| tx.insert(&Counter::new("hits", 0)))
        .await
        .unwrap();
    const N: usize = 200;
    let order = Arc::new(Mutex::new(Vec::with_capacity(N)));
    let futures = (0..N).map(|i| {
        let store = store.clone();
        let order = order.clone();
        async move {
            store
                .transact(move |tx| {
                    order.lock().push(i);
                    let mut c = tx.get(id)?.unwrap();
                    c.n += 1;
                    tx.update(&mut c)?;
                    Ok::<_, Error>(c.n)
                })
                .await
        }
    });
    let results: Vec<i64> = futures::future::join_all(futures)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, (1..=N as i64).collect::<Vec<_>>());
    assert_eq!(*order.lock(), (0..N).collect::<Vec<_>>());
    let c = store.read(move |r| r.get(id)).await.unwrap().unwrap();
    assert_eq!(c.n, N as i64);
    assert_eq!(c.revision(), N as i64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_from_many_tasks_on_a_tiny_queue_all_commit() {
    let config = common::config(counter_registry()).queue_depth(1);
    let (_dir, store) = open_with(&config).await;
    let id = store
        .transact(|tx| tx.insert(&Counter::new("hits", 0)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    store
                        .transact(move |tx| {
                            let mut c = tx.get(id)?.unwrap();
                            c.n += 1;
                            tx.update(&mut c)
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let c = store.read(move |r| r.get(id)).await.unwrap().unwrap();
    assert_eq!(c.n, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transact_future_still_commits_once_submitted() {
    let (_dir, store) = open().await;
    {
        let fut = store.transact(|tx| tx.insert(&Counter::new("orphan", 7)));
        futures::pin_mut!(fut);
        // One poll submits it (the queue is empty); then drop the future.
        let _ = futures::poll!(fut.as_mut());
    }
    common::eventually("the orphaned transaction to commit", || {
        let store = store.clone();
        async move { counters(&store).await == [("orphan".to_string(), 7)] }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_store_refuses_reads_and_transactions_with_closed() {
    let (_dir, store) = open().await;
    store
        .transact(|tx| tx.insert(&Counter::new("x", 1)))
        .await
        .unwrap();
    let other = store.clone();
    store.close().await;
    let err = other
        .transact(|tx| tx.insert(&Counter::new("y", 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Closed(ref p) if p == store.path()),
        "{err:?}"
    );
    let err = other
        .read(|r| r.query::<Counter>().count())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    // Closing twice is harmless.
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_an_unregistered_type_fails_with_not_registered() {
    #[derive(Item, Debug, Clone)]
    #[item(name = "stranger", version = 1)]
    struct Stranger {
        x: i64,
    }
    let (_dir, store) = open().await;
    let err = store
        .transact(|tx| tx.insert(&Stranger { x: 1 }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRegistered("stranger")), "{err:?}");
    let err = store
        .read(|r| r.query::<Stranger>().count())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRegistered("stranger")), "{err:?}");
    // A type registered at another version is not this one either.
    #[derive(Item, Debug, Clone)]
    #[item(name = "counter", version = 2)]
    struct CounterV2 {
        name: String,
        n: i64,
    }
    let err = store
        .read(|r| r.query::<CounterV2>().count())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRegistered("counter")), "{err:?}");
}
