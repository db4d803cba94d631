//! Transactions that wait together are committed together, yet each keeps
//! its own outcome: a failing or panicking one undoes only its own work.

use mantle_store::{Error, Item, Registry, Store, StoreConfig};

#[derive(Item, Debug, Clone)]
#[item(name = "mark", version = 1)]
struct Mark {
    #[item(index)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_keep_their_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    registry.register::<Mark>();
    let store = Store::open(dir.path().join("g.store"), &StoreConfig::new(registry))
        .await
        .unwrap();
    let mut calls = Vec::new();
    for n in 0..300i64 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            store
                .transact(move |tx| {
                    tx.insert(&Mark { n })?;
                    tx.insert(&Mark { n: -n - 1 })?;
                    if n % 3 == 1 {
                        return Err(Error::NotRegistered("refused on purpose"));
                    }
                    if n % 7 == 2 {
                        panic!("panic on purpose");
                    }
                    Ok(n)
                })
                .await
        }));
    }
    let mut expected = Vec::new();
    for (n, call) in calls.into_iter().enumerate() {
        let n = n as i64;
        let outcome = call.await.unwrap();
        match outcome {
            Ok(v) => {
                assert_eq!(v, n);
                assert!(n % 3 != 1 && n % 7 != 2, "{n} should have failed");
                expected.push(n);
            }
            Err(Error::NotRegistered(_)) => assert_eq!(n % 3, 1),
            Err(Error::Panicked(_)) => assert_eq!(n % 7, 2),
            Err(e) => panic!("unexpected error for {n}: {e}"),
        }
    }
    let stored = store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Mark>()
                    .filter(Mark::N.ge(0))
                    .order_by(Mark::N.asc())
                    .all()?
                    .into_iter()
                    .map(|m| m.n)
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        stored, expected,
        "exactly the successful transactions are kept"
    );
    let halves = store
        .read(|r| r.query::<Mark>().filter(Mark::N.lt(0)).count())
        .await
        .unwrap();
    assert_eq!(halves as usize, expected.len(), "and each one whole");
    store.close().await;
}
