//! Backing up stores to a local directory and restoring them: the latest
//! state, moments in between, and across closes and reopens.

mod common;

use std::time::Duration;

use common::*;
use mantle_backup::{Catalog, now_us};
use mantle_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restores_to_its_latest_state_and_to_moments_between() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup(site.path(), target.path().to_str().unwrap(), "50ms");
    restores_to_latest_and_moments(&backup, site.path()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_segments_and_moments_still_restore() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup(site.path(), target.path().to_str().unwrap(), "5ms");
    let store = Store::open(site.path().join("c.store"), &store_config(&backup))
        .await
        .unwrap();
    let mut moments = Vec::new();
    for n in 0..30i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        moments.push((n, now_us()));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(backup.flush(Duration::from_secs(20)).await);
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let before = catalog.summaries()[0].clone();
    assert!(before.segments > 5, "{} segments", before.segments);
    let done = mantle_backup::compact(backup.target(), backup.keys(), &catalog, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(done.written, 1, "{done:?}");
    let after = Catalog::read(backup.target()).await.unwrap().summaries()[0].clone();
    assert_eq!(after.segments, 1);
    // One object for thirty, compressed (the rows' padding is a run of
    // zeros).
    assert!(
        after.bytes < before.bytes,
        "{} bytes before the merge, {} after",
        before.bytes,
        after.bytes
    );
    let out = tempfile::tempdir().unwrap();
    for (n, at) in moments.iter().step_by(7) {
        let got = restored_ns(
            &backup,
            "c.store",
            Some(*at),
            &out.path().join(format!("{n}.store")),
        )
        .await;
        assert_eq!(got, (0..=*n).collect::<Vec<_>>());
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_every_moment_of_the_window_and_drops_what_is_older() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup_with(
        site.path(),
        mantle_backup::BackupConfig {
            target: target.path().to_str().unwrap().into(),
            point_of_loss: "5ms".into(),
            snapshot_every: "100ms".into(),
            ..Default::default()
        },
    );
    let store = Store::open(site.path().join("p.store"), &store_config(&backup))
        .await
        .unwrap();
    let mut moments = Vec::new();
    for n in 0..40i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        assert!(backup.flush(Duration::from_secs(20)).await);
        moments.push((n, now_us()));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let before = catalog.summaries()[0].clone();
    assert!(before.snapshots >= 4, "{before:?}");
    // Keep the second half of the run.
    let (_, mid) = moments[20];
    let keep = Duration::from_micros(now_us() - mid);
    let pruned = mantle_backup::prune(backup.target(), &catalog, keep)
        .await
        .unwrap();
    assert!(pruned.objects > 0, "{pruned:?}");
    let after = Catalog::read(backup.target()).await.unwrap().summaries()[0].clone();
    assert!(
        after.snapshots < before.snapshots && after.segments < before.segments,
        "{before:?} {after:?}"
    );
    assert!(
        after.earliest_us.unwrap() <= mid,
        "the window's start is still restorable"
    );
    let out = tempfile::tempdir().unwrap();
    for (n, at) in moments[20..].iter().step_by(5) {
        let got = restored_ns(
            &backup,
            "p.store",
            Some(*at),
            &out.path().join(format!("{n}.store")),
        )
        .await;
        assert_eq!(got, (0..=*n).collect::<Vec<_>>());
    }
    // Long before the window: gone, and said so.
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let err = mantle_backup::restore_store(
        backup.target(),
        backup.keys(),
        &catalog,
        "p.store",
        Some(moments[0].1),
        &out.path().join("early.store"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, mantle_backup::BackupError::NotRestorable { .. }),
        "{err}"
    );
    store.close().await;
}
