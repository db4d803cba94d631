//! `StoreCache` (a bounded LRU of open stores) and `SubStore` items.

mod common;

use std::path::PathBuf;

use common::{Counter, counter_registry, counters};
use mantle_store::{CacheStats, Error, Store, StoreCache, SubStore};

fn paths(dir: &std::path::Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| dir.join(format!("s{i}.store"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keeps_at_most_capacity_stores_open_and_counts_hits_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(common::config(counter_registry()), 3);
    assert_eq!(cache.stats(), CacheStats::default());
    let files = paths(dir.path(), 10);
    for (i, f) in files.iter().enumerate() {
        let store = cache.get(f).await.unwrap();
        store
            .transact(move |tx| tx.insert(&Counter::new("n", i as i64)))
            .await
            .unwrap();
    }
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 0,
            misses: 10,
            open: 3
        }
    );
    // The three most recent are open: asking again is a hit.
    for f in &files[7..] {
        cache.get(f).await.unwrap();
    }
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 3,
            misses: 10,
            open: 3
        }
    );
    // Another spelling of the same file is the same entry.
    let dotted = files[9].parent().unwrap().join(".").join("s9.store");
    cache.get(&dotted).await.unwrap();
    assert_eq!(cache.stats().hits, 4);
    // Every store got its own item.
    let last = cache.get(&files[9]).await.unwrap();
    assert_eq!(counters(&last).await, [("n".to_string(), 9)]);
    cache.close_all().await;
    assert_eq!(cache.stats().open, 0);
    let err = last
        .read(|r| r.query::<Counter>().count())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_store_still_held_elsewhere_is_returned_as_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(common::config(counter_registry()), 3);
    let files = paths(dir.path(), 10);
    let held = cache.get(&files[0]).await.unwrap();
    held.transact(|tx| tx.insert(&Counter::new("via held", 1)))
        .await
        .unwrap();
    for f in &files[1..] {
        cache.get(f).await.unwrap();
    }
    assert_eq!(cache.stats().open, 3, "files[0] was evicted");
    let again = cache.get(&files[0]).await.unwrap();
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 1,
            misses: 10,
            open: 3
        },
        "no second open of the file"
    );
    // Write through one handle, read through the other, both ways.
    again
        .transact(|tx| tx.insert(&Counter::new("via again", 2)))
        .await
        .unwrap();
    assert_eq!(
        counters(&held).await,
        [("via held".to_string(), 1), ("via again".to_string(), 2)]
    );
    held.transact(|tx| tx.insert(&Counter::new("via held again", 3)))
        .await
        .unwrap();
    assert_eq!(counters(&again).await.len(), 3);
    assert_eq!(again.path(), held.path());
}

/// After `close_all` nothing stays open: not an evicted store still held
/// elsewhere, and not one a late task asks for (which would hold the
/// writer lock past the close, so the next open of the file would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_all_closes_held_evicted_stores_and_refuses_later_opens() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(common::config(counter_registry()), 2);
    let files = paths(dir.path(), 4);
    let held = cache.get(&files[0]).await.unwrap();
    for f in &files[1..] {
        cache.get(f).await.unwrap();
    }
    cache.close_all().await;
    let err = held
        .read(|r| r.query::<Counter>().count())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    let err = cache.get(&files[1]).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    assert_eq!(cache.stats().open, 0);
    // Every file's writer lock is free: another cache opens them at once.
    let other = StoreCache::new(common::config(counter_registry()), 4);
    for f in &files {
        other.get(f).await.unwrap();
    }
    other.close_all().await;
}

/// An evicted store nobody holds is closed; asking for it again opens the
/// file again, which must not fail while the old one is still closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_and_released_store_is_reopened_by_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(common::config(counter_registry()), 1);
    let (a, b) = (dir.path().join("a.store"), dir.path().join("b.store"));
    for i in 0..30 {
        for f in [&a, &b] {
            let store = cache
                .get(f)
                .await
                .unwrap_or_else(|e| panic!("round {i}: {e}"));
            store
                .transact(move |tx| tx.insert(&Counter::new("n", i)))
                .await
                .unwrap();
        }
    }
    let store = cache.get(&a).await.unwrap();
    assert_eq!(counters(&store).await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_one_path_open_the_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = StoreCache::new(common::config(counter_registry()), 4);
    let path = dir.path().join("shared.store");
    let gets = (0..16).map(|i| {
        let cache = cache.clone();
        let path = path.clone();
        async move {
            let store = cache.get(&path).await?;
            store
                .transact(move |tx| tx.insert(&Counter::new("n", i)))
                .await
        }
    });
    for r in futures::future::join_all(gets).await {
        r.unwrap();
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.open), (1, 15, 1));
    let store = cache.get(&path).await.unwrap();
    assert_eq!(counters(&store).await.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substore_opens_its_file_relative_to_the_parent_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(counter_registry());
    let site = Store::open(dir.path().join("site.store"), &config)
        .await
        .unwrap();
    let cache = StoreCache::new(config.clone(), 8);
    let (alice_id, bob_id) = site
        .transact(|tx| {
            Ok::<_, Error>((
                tx.insert(&SubStore::new("alice", "users/alice.store"))?,
                tx.insert(&SubStore::new("bob", "users/deeper/bob.store"))?,
            ))
        })
        .await
        .unwrap();
    let alice = site
        .read(|r| {
            r.query::<SubStore>()
                .filter(SubStore::NAME.eq("alice"))
                .unique()
        })
        .await
        .unwrap()
        .expect("found by name");
    assert_eq!(alice.id(), alice_id);
    let expected = dir.path().join("users").join("alice.store");
    assert_eq!(alice.file(&site), expected);
    let child = alice.open(&site, &cache).await.unwrap();
    assert_eq!(child.path(), expected);
    assert!(expected.is_file(), "the directory and file were created");
    child
        .transact(|tx| tx.insert(&Counter::new("alice's", 1)))
        .await
        .unwrap();
    // Opening it again through the item is the same cached store.
    let again = alice.open(&site, &cache).await.unwrap();
    assert_eq!(counters(&again).await, [("alice's".to_string(), 1)]);
    assert_eq!(cache.stats().misses, 1);
    // The parent holds no counters: the child is a separate file.
    assert!(counters(&site).await.is_empty());
    let bob = site.read(move |r| r.get(bob_id)).await.unwrap().unwrap();
    let bob_store = bob.open(&site, &cache).await.unwrap();
    assert_eq!(
        bob_store.path(),
        dir.path().join("users").join("deeper").join("bob.store")
    );
    let report = mantle_store::inspect(site.path()).unwrap();
    assert!(
        report
            .types
            .iter()
            .any(|t| t.type_name == "mantle_substore" && t.items == 2)
    );
}
