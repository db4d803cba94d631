//! Backing up stores to a local directory and restoring them: the latest
//! state, moments in between, and across closes and reopens.

mod common;

use std::time::Duration;

use common::*;
use mantle_backup::{Catalog, now_for_tests};
use mantle_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restores_to_its_latest_state_and_to_moments_between() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup(site.path(), target.path().to_str().unwrap(), "50ms");
    let config = store_config(&backup);
    let store = Store::open(site.path().join("a.store"), &config)
        .await
        .unwrap();
    let mut moments = Vec::new();
    for n in 0..60i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        moments.push((n, now_for_tests()));
        if n % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Updates and deletes too, so pages are reused.
    store
        .transact(|tx| {
            for row in tx.query::<Row>().filter(Row::N.lt(10)).all()? {
                tx.delete(row.id())?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);
    let out = tempfile::tempdir().unwrap();
    let latest = restored_ns(&backup, "a.store", None, &out.path().join("latest.store")).await;
    assert_eq!(latest, ns(&store).await);
    for (i, (n, at)) in moments.iter().enumerate().step_by(6) {
        let got = restored_ns(
            &backup,
            "a.store",
            Some(*at),
            &out.path().join(format!("{i}.store")),
        )
        .await;
        assert_eq!(
            got,
            (0..=*n).collect::<Vec<_>>(),
            "as of the moment row {n} was acknowledged"
        );
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanly_reopened_store_goes_on_with_its_generation() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup(site.path(), target.path().to_str().unwrap(), "20ms");
    let config = store_config(&backup);
    let path = site.path().join("b.store");
    for round in 0..3i64 {
        let store = Store::open(&path, &config).await.unwrap();
        for k in 0..5 {
            let n = round * 10 + k;
            store
                .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
                .await
                .unwrap();
        }
        store.close().await;
    }
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let summary = &catalog.summaries()[0];
    assert_eq!(summary.generations, 1, "{summary:?}");
    assert_eq!(summary.snapshots, 1, "{summary:?}");
    let out = tempfile::tempdir().unwrap();
    let got = restored_ns(&backup, "b.store", None, &out.path().join("r.store")).await;
    assert_eq!(
        got,
        vec![0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
    );
    // A store written while not backed up starts a new generation.
    let plain = Store::open(&path, &mantle_store::StoreConfig::new(registry()))
        .await
        .unwrap();
    plain
        .transact(|tx| {
            tx.insert(&Row {
                n: 99,
                pad: pad(99),
            })
        })
        .await
        .unwrap();
    plain.close().await;
    let store = Store::open(&path, &config).await.unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);
    store.close().await;
    let catalog = Catalog::read(backup.target()).await.unwrap();
    assert_eq!(catalog.summaries()[0].generations, 2);
    let got = restored_ns(&backup, "b.store", None, &out.path().join("r2.store")).await;
    assert_eq!(got.last(), Some(&99));
}
