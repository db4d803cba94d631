//! Many stores: 10,000 store files written through a cache that keeps at
//! most 1,000 open, with bounded file descriptors, then a random sample
//! read back through the cache.

// Counts descriptors in /proc/self/fd.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mantle_store::{Durability, Item, Registry, StoreCache, StoreConfig};

const STORES: usize = 10_000;
const CAPACITY: usize = 1_000;
const ITEMS_PER_STORE: i64 = 5;
const SAMPLE: usize = 200;
const CONCURRENCY: usize = 16;
/// An open store uses about four descriptors (lock file, database, WAL,
/// shared memory), plus one per pooled reader connection.
const FD_BUDGET: usize = CAPACITY * 5 + 200;

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "thing", version = 1)]
struct Thing {
    owner: i64,
    #[item(index)]
    n: i64,
    text: String,
}

fn thing(owner: i64, n: i64) -> Thing {
    Thing {
        owner,
        n,
        text: format!("thing {n} of user {owner}"),
    }
}

fn store_file(root: &Path, i: usize) -> PathBuf {
    root.join("users").join(format!("u{i}.store"))
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_stores_through_a_cache_of_one_thousand() {
    let started = Instant::now();
    let limit = mantle_store::raise_open_file_limit().expect("raise open file limit");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    std::fs::create_dir_all(root.join("users")).expect("users dir");

    let mut registry = Registry::new();
    registry.register::<Thing>();
    let config = StoreConfig::new(registry)
        .durability(Durability::Process)
        .page_cache_kib(256);
    let cache = StoreCache::new(config, CAPACITY);
    let baseline = open_fds();
    let max_fds = Arc::new(AtomicUsize::new(baseline));

    // Create every store through the cache, 16 at a time.
    let results: Vec<(usize, mantle_store::Result<()>)> = futures::stream::iter(0..STORES)
        .map(|i| {
            let cache = cache.clone();
            let path = store_file(&root, i);
            let max_fds = max_fds.clone();
            async move {
                let result = async {
                    let store = cache.get(&path).await?;
                    store
                        .transact(move |tx| {
                            for n in 0..ITEMS_PER_STORE {
                                tx.insert(&thing(i as i64, n))?;
                            }
                            mantle_store::ok(())
                        })
                        .await
                }
                .await;
                if i.is_multiple_of(50) {
                    max_fds.fetch_max(open_fds(), Ordering::Relaxed);
                }
                (i, result)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} stores failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(results.len(), STORES);
    let created = started.elapsed();

    let stats = cache.stats();
    let fds_after_create = open_fds();
    eprintln!(
        "created {STORES} stores in {:.1} s; stats {stats:?}; open fds: baseline {baseline}, \
         max seen {}, now {fds_after_create} (limit {limit})",
        created.as_secs_f64(),
        max_fds.load(Ordering::Relaxed)
    );
    assert!(stats.open <= CAPACITY, "cache holds {} stores", stats.open);
    assert!(
        stats.misses >= STORES as u64,
        "only {} misses for {STORES} new stores",
        stats.misses
    );
    let files = std::fs::read_dir(root.join("users"))
        .expect("list users")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".store"))
        .count();
    assert_eq!(files, STORES, "store files on disk");

    // A random sample, read back through the cache.
    let sample: Vec<usize> = rand::seq::index::sample(&mut rand::rng(), STORES, SAMPLE).into_vec();
    let checked: Vec<(usize, mantle_store::Result<Vec<Thing>>)> =
        futures::stream::iter(sample.clone())
            .map(|i| {
                let cache = cache.clone();
                let path = store_file(&root, i);
                let max_fds = max_fds.clone();
                async move {
                    let result = async {
                        let store = cache.get(&path).await?;
                        store
                            .read(|r| {
                                let things = r.query::<Thing>().order_by(Thing::N.asc()).all()?;
                                mantle_store::ok(
                                    things.into_iter().map(|t| t.into_inner()).collect(),
                                )
                            })
                            .await
                    }
                    .await;
                    max_fds.fetch_max(open_fds(), Ordering::Relaxed);
                    (i, result)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    for (i, result) in checked {
        let things = result.unwrap_or_else(|e| panic!("store u{i}: {e}"));
        let expected: Vec<Thing> = (0..ITEMS_PER_STORE).map(|n| thing(i as i64, n)).collect();
        assert_eq!(things, expected, "store u{i}");
    }

    let stats = cache.stats();
    let fds_now = open_fds();
    let max_seen = max_fds.load(Ordering::Relaxed).max(fds_now);
    eprintln!(
        "after reading {SAMPLE} stores: stats {stats:?}; open fds max seen {max_seen}, now {fds_now}"
    );
    assert!(stats.open <= CAPACITY, "cache holds {} stores", stats.open);
    assert!(
        stats.misses >= STORES as u64,
        "only {} misses",
        stats.misses
    );
    assert_eq!(
        stats.hits + stats.misses,
        (STORES + SAMPLE) as u64,
        "every lookup is a hit or a miss"
    );
    assert!(
        max_seen < FD_BUDGET,
        "{max_seen} open file descriptors (budget {FD_BUDGET}) for a cache of {CAPACITY}"
    );

    // Closing everything gives the descriptors back (evicted stores close
    // in the background, so allow a moment).
    cache.close_all().await;
    assert_eq!(cache.stats().open, 0, "stores open after close_all");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fds = open_fds();
    while fds > baseline + 16 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds = open_fds();
    }
    assert!(
        fds <= baseline + 16,
        "{fds} descriptors open after close_all (baseline {baseline})"
    );
    eprintln!(
        "after close_all: {fds} open fds; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
