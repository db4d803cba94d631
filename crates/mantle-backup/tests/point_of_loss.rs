//! The point of loss holds when storing takes time: a commit is stored
//! within the lag of committing, the time a segment takes to seal and
//! store included.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mantle_backup::{Backup, BackupConfig, BackupKey, Keyring, Target};
use mantle_store::Store;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};

/// How long the target takes to store each object.
const PUT: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_stored_within_the_lag_when_the_target_is_slow() {
    let site = tempfile::tempdir().unwrap();
    let config = BackupConfig {
        target: "memory".into(),
        point_of_loss: "1s".into(),
        ..BackupConfig::default()
    };
    let keys = Keyring::new(BackupKey::create_file(&site.path().join("backup.key")).unwrap());
    let slow = ThrottledStore::new(
        InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: PUT,
            ..ThrottleConfig::default()
        },
    );
    let backup = Backup::with_target(
        site.path(),
        &config,
        keys,
        Target::from_store(Arc::new(slow), "a slow target"),
        &mantle_stats::StatsRegistry::new(),
    )
    .unwrap();
    let store = Store::open(site.path().join("a.store"), &store_config(&backup))
        .await
        .unwrap();
    // A first commit and its segment (and the snapshot) stored.
    store
        .transact(|tx| tx.insert(&Row { n: 0, pad: pad(0) }))
        .await
        .unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);
    let out = tempfile::tempdir().unwrap();
    for n in 1..=3i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        let committed = Instant::now();
        tokio::time::sleep_until((committed + Duration::from_secs(1)).into()).await;
        let got = restored_ns(
            &backup,
            "a.store",
            None,
            &out.path().join(format!("{n}.store")),
        )
        .await;
        assert_eq!(
            got.last(),
            Some(&n),
            "row {n} is not stored {:?} after it was committed (the point of loss is 1 s)",
            committed.elapsed()
        );
    }
    store.close().await;
}
