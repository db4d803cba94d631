//! Ids are never reused, including across a schema upgrade.

use mantle_store::{Id, Item, Registry, Store, StoreConfig};

#[derive(Item, Debug, Clone)]
#[item(name = "thing", version = 1)]
struct ThingV1 {
    n: i64,
}

#[derive(Item, Debug, Clone)]
#[item(name = "thing", version = 2)]
struct Thing {
    n: i64,
    doubled: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_items_deleted_before_an_upgrade_are_not_reused_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.store");
    let mut v1 = Registry::new();
    v1.register::<ThingV1>();
    let store = Store::open(&file, &StoreConfig::new(v1)).await.unwrap();
    let highest = store
        .transact(|tx| {
            let mut last = Id::from_raw(0);
            for n in 0..5 {
                last = tx.insert(&ThingV1 { n })?;
            }
            // Delete the newest two: their ids must stay retired.
            tx.delete(last)?;
            tx.delete(Id::<ThingV1>::from_raw(last.raw() - 1))?;
            mantle_store::ok(last.raw())
        })
        .await
        .unwrap();
    store.close().await;

    let mut v2 = Registry::new();
    v2.register::<Thing>().upgrader(|old: ThingV1| Thing {
        n: old.n,
        doubled: old.n * 2,
    });
    let store = Store::open(&file, &StoreConfig::new(v2)).await.unwrap();
    let fresh = store
        .transact(|tx| tx.insert(&Thing { n: 9, doubled: 18 }))
        .await
        .unwrap();
    assert!(
        fresh.raw() > highest,
        "new id {} reuses an id at or below {highest}",
        fresh.raw()
    );
    let upgraded = store.read(|r| r.query::<Thing>().count()).await.unwrap();
    assert_eq!(upgraded, 4);
    store.close().await;
}
