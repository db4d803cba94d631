//! Helpers shared by the integration tests of `mantle-store`.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use mantle_store::{Durability, Error, Item, Registry, Store, StoreConfig};

/// A config for tests: commits survive the process, not a power cut, which
/// keeps tests that commit many transactions quick on slow disks.
pub fn config(registry: Registry) -> StoreConfig {
    StoreConfig::new(registry).durability(Durability::Process)
}

/// A registry holding `Counter` only.
pub fn counter_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Counter>();
    r
}

/// Waits until `check` holds, polling; panics naming `what` if it has not
/// held after a generous time (this is a hang guard, not a speed check).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes a store and lets go of the handle.
pub async fn close(store: Store) {
    store.close().await;
    drop(store);
}

/// Opens a store that this process had open before and has closed,
/// waiting while the open fails with `Error::Locked`.
///
/// After `close` (or dropping the last handle) the writer lock can stay
/// held for a moment: by a writer thread still dropping the store, or by a
/// child process that another test is starting (it inherits the lock
/// file's descriptor until it execs). `errors.rs` pins those down in
/// dedicated tests; other tests use this so they test what they are about.
pub async fn open_again(path: &Path, config: &StoreConfig) -> Result<Store, Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match Store::open(path, config).await {
            Err(Error::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// [`open_again`], which must succeed.
pub async fn reopen(path: &Path, config: &StoreConfig) -> Store {
    open_again(path, config)
        .await
        .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", path.display()))
}

/// A named counter.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "counter", version = 1)]
pub struct Counter {
    #[item(index)]
    pub name: String,
    pub n: i64,
}

impl Counter {
    pub fn new(name: &str, n: i64) -> Self {
        Self {
            name: name.to_string(),
            n,
        }
    }
}

/// All counters as (name, n), in insertion order.
pub async fn counters(store: &Store) -> Vec<(String, i64)> {
    store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Counter>()
                    .all()?
                    .into_iter()
                    .map(|c| (c.name.clone(), c.n))
                    .collect(),
            )
        })
        .await
        .expect("read counters")
}
