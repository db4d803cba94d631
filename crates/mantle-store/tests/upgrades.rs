//! Schema upgrades on open: chains of upgraders, items at several old
//! versions, ids and references kept, progress reports, missing steps.

mod common;

use std::path::Path;
use std::sync::Arc;

use mantle_store::{Error, Id, Item, Order, Registry, Store, StoreConfig, UpgradeProgress};
use parking_lot::Mutex;

/// Owners are not upgraded; things refer to them.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "person", version = 1)]
struct Person {
    name: String,
}

mod v1 {
    use super::Person;
    use mantle_store::{Id, Item};

    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "thing", version = 1)]
    pub struct Thing {
        pub title: String,
        pub price_cents: i64,
        pub owner: Id<Person>,
    }

    /// Refers to things; its own version never changes.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "tag", version = 1)]
    pub struct Tag {
        pub label: String,
        #[item(on_delete = "cascade")]
        pub thing: Id<Thing>,
    }
}

mod v2 {
    use super::Person;
    use mantle_store::{Id, Item};

    /// Price in units instead of cents.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "thing", version = 2)]
    pub struct Thing {
        pub title: String,
        pub price: f64,
        pub owner: Id<Person>,
    }

    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "tag", version = 1)]
    pub struct Tag {
        pub label: String,
        #[item(on_delete = "cascade")]
        pub thing: Id<Thing>,
    }

    pub fn up(old: super::v1::Thing) -> Thing {
        Thing {
            title: old.title,
            price: old.price_cents as f64 / 100.0,
            owner: old.owner,
        }
    }
}

mod v3 {
    use super::Person;
    use mantle_store::{Id, Item};

    /// `title` renamed to `name` (upper-cased), a derived flag added.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "thing", version = 3)]
    pub struct Thing {
        pub name: String,
        pub price: f64,
        pub owner: Id<Person>,
        pub pricey: bool,
    }

    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "tag", version = 1)]
    pub struct Tag {
        pub label: String,
        #[item(on_delete = "cascade")]
        pub thing: Id<Thing>,
    }

    pub fn up(old: super::v2::Thing) -> Thing {
        Thing {
            name: old.title.to_uppercase(),
            pricey: old.price >= 10.0,
            price: old.price,
            owner: old.owner,
        }
    }
}

fn v1_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v1::Thing>()
        .register::<v1::Tag>();
    r
}

fn v2_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v2::Thing>()
        .register::<v2::Tag>()
        .upgrader(v2::up);
    r
}

fn v3_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v3::Thing>()
        .register::<v3::Tag>()
        .upgrader(v2::up)
        .upgrader(v3::up);
    r
}

fn versions(path: &Path, type_name: &str) -> Vec<(u32, i64)> {
    mantle_store::inspect(path)
        .unwrap()
        .types
        .into_iter()
        .filter(|t| t.type_name == type_name)
        .map(|t| (t.version, t.items))
        .collect()
}

/// Progress reports seen by an open.
type Seen = Arc<Mutex<Vec<UpgradeProgress>>>;

/// Opens with `open_with_progress`, recording each report in `seen`;
/// waits out a momentary `Locked` after the store was closed (see
/// `common::open_again`).
async fn open_recording(path: &Path, config: &StoreConfig, seen: &Seen) -> Result<Store, Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sink = seen.clone();
        let opened = Store::open_with_progress(path, config, move |p: &UpgradeProgress| {
            sink.lock().push(p.clone())
        })
        .await;
        match opened {
            Err(Error::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_at_v1_and_v2_reach_v3_with_values_ids_and_references_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.store");

    // Program version 1.
    let store = Store::open(&path, &common::config(v1_registry()))
        .await
        .unwrap();
    let (ada, cheap, dear, revised) = store
        .transact(|tx| {
            let ada = tx.insert(&Person { name: "Ada".into() })?;
            let cheap = tx.insert(&v1::Thing {
                title: "pencil".into(),
                price_cents: 250,
                owner: ada,
            })?;
            let dear = tx.insert(&v1::Thing {
                title: "lamp".into(),
                price_cents: 4999,
                owner: ada,
            })?;
            let mut revised = tx.insert(&v1::Thing {
                title: "mug".into(),
                price_cents: 800,
                owner: ada,
            })?;
            // Give one item a later revision, which the upgrade keeps.
            let mut m = tx.get(revised)?.unwrap();
            m.price_cents = 1200;
            tx.update(&mut m)?;
            revised = m.id();
            tx.insert(&v1::Tag {
                label: "office".into(),
                thing: cheap,
            })?;
            tx.insert(&v1::Tag {
                label: "home".into(),
                thing: dear,
            })?;
            Ok::<_, Error>((ada, cheap.raw(), dear.raw(), revised.raw()))
        })
        .await
        .unwrap();
    common::close(store).await;
    assert_eq!(versions(&path, "thing"), [(1, 3)]);

    // Program version 2: upgrades on open, then writes v2 items.
    let store = common::reopen(&path, &common::config(v2_registry())).await;
    assert_eq!(versions(&path, "thing"), [(2, 3)]);
    let pencil = store
        .read(move |r| r.get(Id::<v2::Thing>::from_raw(cheap)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pencil.price, 2.5);
    let chair = store
        .transact(move |tx| {
            let chair = tx.insert(&v2::Thing {
                title: "chair".into(),
                price: 75.0,
                owner: ada,
            })?;
            tx.insert(&v2::Tag {
                label: "home".into(),
                thing: chair,
            })?;
            Ok::<_, Error>(chair.raw())
        })
        .await
        .unwrap();
    assert!(chair > revised, "new ids come after the upgraded ones");
    common::close(store).await;

    // Program version 3: both upgraders registered.
    let seen = Seen::default();
    let store = open_v3(&path, &seen).await;
    assert_eq!(versions(&path, "thing"), [(3, 4)]);
    let things = store
        .read(|r| r.query::<v3::Thing>().order_by(Order::by_id()).all())
        .await
        .unwrap();
    let got: Vec<_> = things
        .iter()
        .map(|t| {
            (
                t.id().raw(),
                t.revision(),
                t.name.as_str(),
                t.price,
                t.pricey,
                t.owner,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (cheap, 1, "PENCIL", 2.5, false, ada),
            (dear, 1, "LAMP", 49.99, true, ada),
            (revised, 2, "MUG", 12.0, true, ada),
            (chair, 1, "CHAIR", 75.0, true, ada),
        ]
    );
    // Tags still point at the same things.
    let tags = store
        .read(|r| {
            let mut out = Vec::new();
            for tag in r.query::<v3::Tag>().order_by(Order::by_id()).all()? {
                let thing = r.get(tag.thing)?.expect("tagged thing exists");
                out.push((tag.label.clone(), thing.name.clone()));
            }
            Ok::<_, Error>(out)
        })
        .await
        .unwrap();
    assert_eq!(
        tags,
        [
            ("office".to_string(), "PENCIL".to_string()),
            ("home".to_string(), "LAMP".to_string()),
            ("home".to_string(), "CHAIR".to_string()),
        ]
    );
    // References work as before: deleting a thing cascades to its tags.
    store
        .transact(move |tx| tx.delete(Id::<v3::Thing>::from_raw(dear)))
        .await
        .unwrap();
    assert_eq!(
        store.read(|r| r.query::<v3::Tag>().count()).await.unwrap(),
        2
    );
    // Progress: 4 items made one move (v2 -> v3), reported to the end.
    let seen = seen.lock().clone();
    let last = seen.last().expect("progress was reported");
    assert_eq!(last.type_name, "thing");
    assert_eq!((last.done, last.total), (4, 4));
    assert!(seen.iter().all(|p| p.done <= p.total));
    assert!(
        mantle_store::check(&path, Some(&v3_registry()))
            .unwrap()
            .is_empty()
    );
}

/// Opens with the v3 program, two items per upgrade transaction.
async fn open_v3(path: &Path, seen: &Seen) -> Store {
    open_recording(path, &common::config(v3_registry()).upgrade_batch(2), seen)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_items_at_v1_and_v2_at_once_is_upgraded_to_v3_with_full_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.store");
    let store = Store::open(&path, &common::config(v1_registry()))
        .await
        .unwrap();
    let ada = store
        .transact(|tx| {
            let ada = tx.insert(&Person { name: "Ada".into() })?;
            for i in 0..5 {
                tx.insert(&v1::Thing {
                    title: format!("t{i}"),
                    price_cents: 1000 * i,
                    owner: ada,
                })?;
            }
            Ok::<_, Error>(ada)
        })
        .await
        .unwrap();
    common::close(store).await;

    // A v2 program starts upgrading, two items per transaction, and dies
    // after the first batch (its progress callback panics).
    let err = loop {
        let opened = Store::open_with_progress(
            &path,
            &common::config(v2_registry()).upgrade_batch(2),
            |_: &UpgradeProgress| panic!("the program dies mid-upgrade"),
        )
        .await;
        match opened {
            Err(Error::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(matches!(err, Error::Panicked(_)), "{err:?}");
    assert_eq!(versions(&path, "thing"), [(1, 3), (2, 2)], "mixed versions");

    // The v3 program finishes: 3 items move twice, 2 items once.
    let seen = Seen::default();
    let store = open_v3(&path, &seen).await;
    assert_eq!(versions(&path, "thing"), [(3, 5)]);
    let seen = seen.lock().clone();
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (8, 8));
    let dones: Vec<u64> = seen.iter().map(|p| p.done).collect();
    assert!(dones.windows(2).all(|w| w[0] <= w[1]), "{dones:?}");
    assert_eq!(seen.first().unwrap().from_version, 1);
    assert_eq!(last.from_version, 2);
    let things = store
        .read(|r| r.query::<v3::Thing>().order_by(Order::by_id()).all())
        .await
        .unwrap();
    let got: Vec<_> = things
        .iter()
        .map(|t| (t.id().raw(), t.name.clone(), t.price, t.owner))
        .collect();
    let want: Vec<_> = (0..5i64)
        .map(|i| (i + 1, format!("T{i}"), (10 * i) as f64, ada))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_upgrader_refuses_the_open_with_no_upgrade_path_and_keeps_the_items() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.store");
    let store = Store::open(&path, &common::config(v1_registry()))
        .await
        .unwrap();
    store
        .transact(|tx| {
            let ada = tx.insert(&Person { name: "Ada".into() })?;
            tx.insert(&v1::Thing {
                title: "x".into(),
                price_cents: 1,
                owner: ada,
            })
        })
        .await
        .unwrap();
    common::close(store).await;
    // Only v2 -> v3 registered: nothing covers v1 -> v2.
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v3::Thing>()
        .register::<v3::Tag>()
        .upgrader(v3::up);
    let err = common::open_again(&path, &common::config(r))
        .await
        .unwrap_err();
    match &err {
        Error::NoUpgradePath {
            type_name,
            from,
            to,
        } => assert_eq!((type_name.as_str(), *from, *to), ("thing", 1, 3)),
        other => panic!("expected NoUpgradePath, got {other:?}"),
    }
    // No upgrader at all.
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v2::Thing>()
        .register::<v2::Tag>();
    let err = common::open_again(&path, &common::config(r))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NoUpgradePath { from: 1, to: 2, .. }),
        "{err:?}"
    );
    // Nothing moved: the v1 program still reads its item.
    assert_eq!(versions(&path, "thing"), [(1, 1)]);
    let store = common::reopen(&path, &common::config(v1_registry())).await;
    assert_eq!(
        store
            .read(|r| r.query::<v1::Thing>().count())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_old_version_table_needs_no_upgrader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.store");
    let store = Store::open(&path, &common::config(v1_registry()))
        .await
        .unwrap();
    store
        .transact(|tx| {
            let ada = tx.insert(&Person { name: "Ada".into() })?;
            let t = tx.insert(&v1::Thing {
                title: "x".into(),
                price_cents: 1,
                owner: ada,
            })?;
            tx.delete(t)
        })
        .await
        .unwrap();
    common::close(store).await;
    let mut r = Registry::new();
    r.register::<Person>()
        .register::<v2::Thing>()
        .register::<v2::Tag>();
    let store = common::reopen(&path, &common::config(r)).await;
    assert_eq!(
        store
            .read(|r| r.query::<v2::Thing>().count())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_an_up_to_date_store_reports_no_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.store");
    let store = Store::open(&path, &common::config(v3_registry()))
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Person { name: "Ada".into() }))
        .await
        .unwrap();
    common::close(store).await;
    let seen = Seen::default();
    let _store = open_v3(&path, &seen).await;
    assert!(seen.lock().is_empty());
}
