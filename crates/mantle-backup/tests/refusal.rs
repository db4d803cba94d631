//! A target that refuses writes for a while: commits go on, nothing is
//! lost, the backlog drains when it comes back; in the synchronous mode
//! acknowledgements wait for it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mantle_store::Store;

/// Makes the directory target refuse every write (a file where its
/// directory was) until `restore` is called.
struct Refusing<'a> {
    dir: &'a Path,
    away: std::path::PathBuf,
}

impl<'a> Refusing<'a> {
    fn start(dir: &'a Path) -> Self {
        let away = dir.with_extension("away");
        std::fs::rename(dir, &away).unwrap();
        std::fs::write(dir, b"not a directory").unwrap();
        Refusing { dir, away }
    }

    fn restore(self) {
        std::fs::remove_file(self.dir).unwrap();
        std::fs::rename(&self.away, self.dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_go_on_while_the_target_refuses_and_the_backlog_drains_after() {
    let site = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let target = holder.path().join("target");
    let backup = backup(site.path(), target.to_str().unwrap(), "20ms");
    let config = store_config(&backup);
    let store = Store::open(site.path().join("r.store"), &config)
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Row { n: 0, pad: pad(0) }))
        .await
        .unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);

    let refusing = Refusing::start(&target);
    for n in 1..200i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
    }
    // The refusals are seen and reported, the commits all went through.
    common::eventually("a refusal reported", || async {
        backup
            .status()
            .iter()
            .any(|s| s.last_error.is_some() && s.backlog_bytes > 0)
    })
    .await;
    assert!(
        !backup.flush(Duration::from_millis(300)).await,
        "nothing can be stored yet"
    );
    refusing.restore();
    assert!(
        backup.flush(Duration::from_secs(30)).await,
        "the backlog drains"
    );
    assert!(backup.status().iter().all(|s| s.last_error.is_none()));
    let out = tempfile::tempdir().unwrap();
    let got = restored_ns(&backup, "r.store", None, &out.path().join("r.store")).await;
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_closed_while_the_target_refuses_leaves_its_log_in_the_spool() {
    let site = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let target = holder.path().join("target");
    let backup = backup(site.path(), target.to_str().unwrap(), "20ms");
    let config = store_config(&backup);
    let path = site.path().join("s.store");
    let store = Store::open(&path, &config).await.unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);
    let refusing = Refusing::start(&target);
    for n in 0..20i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
    }
    store.close().await;
    let spooled = std::fs::read_dir(site.path().join("backup-spool"))
        .unwrap()
        .count();
    assert!(spooled > 0, "the unshipped segments wait in the spool");
    refusing.restore();
    assert_eq!(backup.drain_spool().await, 0);
    let out = tempfile::tempdir().unwrap();
    let got = restored_ns(&backup, "s.store", None, &out.path().join("s.store")).await;
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    // Not known to be whole at close: the next open starts a new generation.
    let store = Store::open(&path, &config).await.unwrap();
    assert!(backup.flush(Duration::from_secs(20)).await);
    store.close().await;
    let catalog = mantle_backup::Catalog::read(backup.target()).await.unwrap();
    assert_eq!(catalog.summaries()[0].generations, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_synchronous_mode_an_acknowledgement_waits_for_the_target() {
    let site = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let target = holder.path().join("target");
    let backup = backup(site.path(), target.to_str().unwrap(), "sync");
    let config = store_config(&backup);
    let store = Store::open(site.path().join("y.store"), &config)
        .await
        .unwrap();
    // Acknowledged means stored: a restore right after has it.
    store
        .transact(|tx| tx.insert(&Row { n: 1, pad: pad(1) }))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    assert_eq!(
        restored_ns(&backup, "y.store", None, &out.path().join("a.store")).await,
        [1]
    );

    let refusing = Refusing::start(&target);
    let s = store.clone();
    let mut pending =
        tokio::spawn(async move { s.transact(|tx| tx.insert(&Row { n: 2, pad: pad(2) })).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut pending)
            .await
            .is_err(),
        "not acknowledged while the target refuses"
    );
    // Committed locally all the same.
    assert_eq!(ns(&store).await, [1, 2]);
    refusing.restore();
    tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("acknowledged once stored")
        .unwrap()
        .unwrap();
    assert_eq!(
        restored_ns(&backup, "y.store", None, &out.path().join("b.store")).await,
        [1, 2]
    );
    store.close().await;
}
