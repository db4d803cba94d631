//! Helpers shared by the backup tests.
#![allow(dead_code)]

pub mod damage;
#[cfg(feature = "s3")]
pub mod s3;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mantle_backup::{Backup, BackupConfig, Catalog, restore_store};
use mantle_store::{Durability, Item, Registry, Store, StoreConfig};

/// A row written by the tests: `n` counts up, `pad` makes pages change.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "row", version = 1)]
pub struct Row {
    #[item(index)]
    pub n: i64,
    pub pad: String,
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Row>();
    r
}

/// A site directory's backup to `target` (a directory), lag `lag`.
pub fn backup(site: &Path, target: &str, point_of_loss: &str) -> Backup {
    backup_with(
        site,
        BackupConfig {
            target: target.into(),
            point_of_loss: point_of_loss.into(),
            ..BackupConfig::default()
        },
    )
}

/// A backup of the site directory `site` as `config` says.
pub fn backup_with(site: &Path, config: BackupConfig) -> Backup {
    Backup::open(site, &config, &mantle_stats::StatsRegistry::new())
        .unwrap()
        .retry_max(Duration::from_millis(200))
        .close_patience(Duration::from_secs(2))
}

pub fn store_config(backup: &Backup) -> StoreConfig {
    StoreConfig::new(registry())
        .durability(Durability::Process)
        .replicator(Arc::new(backup.clone()))
}

/// Every row's `n`, in order.
pub async fn ns(store: &Store) -> Vec<i64> {
    store
        .read(|r| {
            Ok::<_, mantle_store::Error>(
                r.query::<Row>()
                    .all()?
                    .into_iter()
                    .map(|s| s.n)
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap()
}

/// Restores `store` (its path in the site) as of `at_us` to `dest` and
/// returns its rows' `n`.
pub async fn restored_ns(
    backup: &Backup,
    store: &str,
    at_us: Option<u64>,
    dest: &Path,
) -> Vec<i64> {
    let catalog = Catalog::read(backup.target()).await.unwrap();
    restore_store(backup.target(), backup.keys(), &catalog, store, at_us, dest)
        .await
        .unwrap_or_else(|e| panic!("restore of {store}: {e}"));
    let s = Store::open(dest, &StoreConfig::new(registry()))
        .await
        .unwrap();
    let out = ns(&s).await;
    s.close().await;
    out
}

pub fn pad(n: i64) -> String {
    format!("{n:0>200}")
}

/// Waits until `check` holds (a hang guard, not a speed check).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes 60 rows into `a.store` of `site` (a pause every seventh), then
/// deletes the first 10 so pages are reused; waits for the backup; checks
/// that the latest state and every sixth acknowledged moment restore
/// exactly. The same scenario runs against each kind of target.
pub async fn restores_to_latest_and_moments(backup: &Backup, site: &Path) {
    let store = Store::open(site.join("a.store"), &store_config(backup))
        .await
        .unwrap();
    let mut moments = Vec::new();
    for n in 0..60i64 {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        moments.push((n, mantle_backup::now_us()));
        if n % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    store
        .transact(|tx| {
            for row in tx.query::<Row>().filter(Row::N.lt(10)).all()? {
                tx.delete(row.id())?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    assert!(
        backup.flush(Duration::from_secs(30)).await,
        "{:?}",
        backup.status()
    );
    let out = tempfile::tempdir().unwrap();
    let latest = restored_ns(backup, "a.store", None, &out.path().join("latest.store")).await;
    assert_eq!(latest, ns(&store).await);
    assert_eq!(latest, (10..60).collect::<Vec<_>>());
    for (i, (n, at)) in moments.iter().enumerate().step_by(6) {
        let got = restored_ns(
            backup,
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
