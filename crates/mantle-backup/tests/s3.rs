//! Backing up to a real S3-compatible server (s3s-fs, see common/s3.rs):
//! restores to the latest state and moments between, a target that
//! refuses writes for a while and comes back (with the store open, and
//! closed meanwhile), and damaged objects.
//!
//! Skipped (with a note) when `MANTLE_TEST_S3S_FS` is not set, unless
//! `MANTLE_REQUIRE_S3` is: `scripts/test` sets both.
#![cfg(feature = "s3")]

mod common;

use std::time::{Duration, Instant};

use common::damage::damaged_objects_are_caught_and_named;
use common::s3::S3Server;
use common::*;
use mantle_backup::{Catalog, now_us};
use mantle_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_backed_up_to_s3_restores_to_its_latest_state_and_to_moments_between() {
    let Some(server) = S3Server::start().await else {
        return;
    };
    let site = tempfile::tempdir().unwrap();
    let backup = backup_with(site.path(), server.config("site-a", "50ms"));
    assert_eq!(backup.target().name(), "s3://mantle-backups/site-a");
    restores_to_latest_and_moments(&backup, site.path()).await;
    // The objects are in the bucket, under the prefix.
    let held = common::damage::object_names(&server.objects_dir("site-a"));
    assert!(
        held.iter().any(|o| o.starts_with("stores/a.store/")),
        "{held:?}"
    );
}

/// Bytes of rows written while the target is down: past what a store's
/// backup keeps in memory (8 MiB), so that segments go to the spool too.
const OUTAGE_ROWS: i64 = 300;
const OUTAGE_PAD: usize = 40_000;

/// `len` characters that do not compress (objects are compressed before
/// they are sealed; the outage must queue more than the memory bound).
fn noise(seed: i64, len: usize) -> String {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_go_on_while_s3_refuses_writes_and_the_backlog_drains_when_it_is_back() {
    let Some(mut server) = S3Server::start().await else {
        return;
    };
    let site = tempfile::tempdir().unwrap();
    let backup = backup_with(site.path(), server.config("site-b", "50ms"));
    let store = Store::open(site.path().join("b.store"), &store_config(&backup))
        .await
        .unwrap();
    for n in 0..10i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
    }
    assert!(
        backup.flush(Duration::from_secs(30)).await,
        "{:?}",
        backup.status()
    );

    // The target goes away; the store goes on, and no commit waits for it.
    server.stop();
    let mut slowest = Duration::ZERO;
    let mut during = Vec::new();
    for n in 10..10 + OUTAGE_ROWS {
        let started = Instant::now();
        store
            .transact(move |tx| {
                tx.insert(&Row {
                    n,
                    pad: noise(n, OUTAGE_PAD),
                })
            })
            .await
            .unwrap_or_else(|e| panic!("commit {n} while the target refuses: {e}"));
        slowest = slowest.max(started.elapsed());
        during.push((n, now_us()));
        if n % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a commit waited {slowest:?} for the refusing target"
    );
    // Give the uploader time to try, fail and spool.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = backup.status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(status[0].backlog_bytes > 0, "{status:?}");
    assert!(status[0].last_error.is_some(), "{status:?}");
    let spooled = std::fs::read_dir(site.path().join("backup-spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-object")
        })
        .count();
    assert!(spooled > 0, "segments past the memory bound are spooled");
    assert!(
        !backup.flush(Duration::from_millis(300)).await,
        "nothing can be stored while the target is down"
    );
    let expected: Vec<i64> = (0..10 + OUTAGE_ROWS).collect();
    assert_eq!(ns(&store).await, expected, "every commit made it");

    // It comes back: the backlog drains, in order.
    server.restart().await;
    assert!(
        backup.flush(Duration::from_secs(60)).await,
        "the backlog drains once the target is back: {:?}",
        backup.status()
    );
    let status = backup.status();
    assert_eq!(status[0].backlog_bytes, 0, "{status:?}");
    assert_eq!(status[0].last_error, None, "{status:?}");
    let out = tempfile::tempdir().unwrap();
    let latest = restored_ns(&backup, "b.store", None, &out.path().join("latest.store")).await;
    assert_eq!(latest, expected, "the restore has every transaction");
    // And moments during the outage.
    for (i, (n, at)) in during.iter().enumerate().step_by(150) {
        let got = restored_ns(
            &backup,
            "b.store",
            Some(*at),
            &out.path().join(format!("{i}.store")),
        )
        .await;
        assert_eq!(got, (0..=*n).collect::<Vec<_>>(), "as of row {n}");
    }
    let catalog = Catalog::read(backup.target()).await.unwrap();
    assert_eq!(catalog.summaries()[0].generations, 1, "no new generation");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_cut_short_object_in_s3_is_caught_at_restore_and_named() {
    let Some(server) = S3Server::start().await else {
        return;
    };
    let site = tempfile::tempdir().unwrap();
    let backup = backup_with(site.path(), server.config("site-c", "20ms"));
    damaged_objects_are_caught_and_named(&backup, site.path(), &server.objects_dir("site-c")).await;
}

/// A runtime like `#[tokio::test]`'s, to end one as a process would.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_store_closed_while_s3_refuses_leaves_its_commits_in_the_spool_for_a_later_run() {
    let site = tempfile::tempdir().unwrap();
    let path = site.path().join("c.store");
    let first_run = runtime();
    let Some(mut server) = first_run.block_on(S3Server::start()) else {
        return;
    };
    let config = server.config("site-d", "50ms");
    first_run.block_on(async {
        // common::backup_with: 2 s of patience at close.
        let backup = backup_with(site.path(), config.clone());
        let store = Store::open(&path, &store_config(&backup)).await.unwrap();
        for n in 0..5i64 {
            store
                .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
                .await
                .unwrap();
        }
        assert!(backup.flush(Duration::from_secs(30)).await);
        server.stop();
        for n in 5..20i64 {
            store
                .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
                .await
                .unwrap();
        }
        let started = Instant::now();
        store.close().await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "closing waits about its patience (2 s), not {took:?}"
        );
        // Once closed, what the target did not take is in the spool.
        let spooled = std::fs::read_dir(site.path().join("backup-spool"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("-object")
            })
            .count();
        assert!(spooled > 0, "the unstored segments are spooled at close");
    });
    // The process ends: nothing held in memory survives.
    first_run.shutdown_timeout(Duration::ZERO);

    // A later run, with the target back, stores the spool.
    runtime().block_on(async {
        server.restart().await;
        let backup = backup_with(site.path(), config.clone());
        assert_eq!(backup.drain_spool().await, 0, "the whole spool is stored");
        let out = tempfile::tempdir().unwrap();
        let got = restored_ns(&backup, "c.store", None, &out.path().join("r1.store")).await;
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "every commit was kept");
        // The store goes on, in a new generation (its close had not
        // caught up), and is backed up as before.
        let store = Store::open(&path, &store_config(&backup)).await.unwrap();
        store
            .transact(|tx| {
                tx.insert(&Row {
                    n: 20,
                    pad: pad(20),
                })
            })
            .await
            .unwrap();
        assert!(backup.flush(Duration::from_secs(30)).await);
        store.close().await;
        let got = restored_ns(&backup, "c.store", None, &out.path().join("r2.store")).await;
        assert_eq!(got, (0..21).collect::<Vec<_>>());
        let catalog = Catalog::read(backup.target()).await.unwrap();
        assert_eq!(catalog.summaries()[0].generations, 2);
    });
}
