//! Stores outlive code: a store holding items of types the opening program
//! does not register opens anyway, and leaves those items (their rows,
//! table, scheduled runs, powerup installations and effects) alone until a
//! program that registers them opens it again.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mantle_store::{
    Effect, Error, Id, Interface, Item, Registry, Store, StoreConfig, Target, Timestamp,
    Unregistered,
};
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

/// What both types provide as powerups.
pub trait Describe: Send {
    /// Names the item.
    fn describe(&self) -> String;
}

impl Interface for dyn Describe {
    const NAME: &'static str = "describe";
}

/// "A", which every program registers: at version 1, then 2.
mod apple_v1 {
    use mantle_store::Item;

    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "apple", version = 1)]
    pub struct Apple {
        #[item(index)]
        pub name: String,
    }
}

mod apple_v2 {
    use mantle_store::Item;

    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "apple", version = 2)]
    pub struct Apple {
        #[item(index)]
        pub name: String,
        pub ticks: i64,
    }
}

impl Describe for apple_v1::Apple {
    fn describe(&self) -> String {
        format!("apple {}", self.name)
    }
}

impl Describe for apple_v2::Apple {
    fn describe(&self) -> String {
        format!("apple {}", self.name)
    }
}

/// "B", which the middle program does not register. It refers to apples.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bean", version = 1)]
struct Bean {
    label: String,
    apple: Option<Id<apple_v1::Apple>>,
}

impl Describe for Bean {
    fn describe(&self) -> String {
        format!("bean {}", self.label)
    }
}

/// Recorded for beans; only the last program handles it.
#[derive(Serialize, Deserialize)]
struct Sprouted {
    bean: i64,
}

impl Effect for Sprouted {
    const KIND: &'static str = "bean.sprouted";
}

/// Recorded for apples; the middle and last programs handle it.
#[derive(Serialize, Deserialize)]
struct Picked {
    apple: i64,
}

impl Effect for Picked {
    const KIND: &'static str = "apple.picked";
}

/// Beans with their "ripen" task and their powerup.
fn register_beans(r: &mut Registry) {
    r.register::<Bean>()
        .provide::<Bean, dyn Describe>(|b| Box::new(b))
        .task::<Bean>("ripen", |tx, mut bean| {
            bean.label = format!("{} (ripe)", bean.label);
            tx.update(&mut bean)?;
            tx.record(&Sprouted {
                bean: bean.id().raw(),
            })?;
            Ok(())
        });
}

/// Apples at version 2 (upgraded from 1) with their "tick" task.
fn register_apples_v2(r: &mut Registry) {
    r.register::<apple_v2::Apple>()
        .upgrader(|old: apple_v1::Apple| apple_v2::Apple {
            name: old.name,
            ticks: 0,
        })
        .provide::<apple_v2::Apple, dyn Describe>(|a| Box::new(a))
        .task::<apple_v2::Apple>("tick", |tx, mut apple| {
            apple.ticks += 1;
            tx.update(&mut apple)
        });
}

/// The first program: apples at version 1, and beans. It handles no
/// effects.
fn first() -> StoreConfig {
    let mut r = Registry::new();
    r.register::<apple_v1::Apple>()
        .provide::<apple_v1::Apple, dyn Describe>(|a| Box::new(a));
    register_beans(&mut r);
    common::config(r)
}

/// The second program: apples at version 2, no beans. It handles picked
/// apples.
fn second() -> StoreConfig {
    let mut r = Registry::new();
    register_apples_v2(&mut r);
    common::config(r).on_effect(|_, _: Picked| async { Ok(()) })
}

/// The third program: apples at version 2 and beans again. It handles both
/// effects, noting the sprouted beans.
fn third(sprouted: Arc<Mutex<Vec<i64>>>) -> StoreConfig {
    let mut r = Registry::new();
    register_apples_v2(&mut r);
    register_beans(&mut r);
    common::config(r)
        .on_effect(|_, _: Picked| async { Ok(()) })
        .on_effect(move |_, s: Sprouted| {
            sprouted.lock().unwrap().push(s.bean);
            async { Ok(()) }
        })
}

/// Everything of the beans in the file, read behind the store's back: the
/// rows, the table's schema and id counter, the catalog row, their
/// scheduled runs, powerup installations and effects.
fn beans_in_file(path: &Path) -> Vec<Vec<Value>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut all = Vec::new();
    for sql in [
        "SELECT * FROM item_bean_v1 ORDER BY _id",
        "SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = 'item_bean_v1' ORDER BY name",
        "SELECT seq FROM sqlite_sequence WHERE name = 'item_bean_v1'",
        "SELECT * FROM mantle_types WHERE type_name = 'bean'",
        "SELECT * FROM mantle_schedule WHERE item_type = 'bean' ORDER BY id",
        "SELECT * FROM mantle_powerups WHERE powerup_type = 'bean' ORDER BY rowid",
        "SELECT * FROM mantle_outbox WHERE kind = 'bean.sprouted' ORDER BY id",
    ] {
        all.push(vec![Value::Text(sql.to_string())]);
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap();
        for row in rows {
            all.push(row.unwrap());
        }
    }
    all
}

/// What the store's powerups on itself describe, highest priority first.
async fn described(store: &Store) -> Vec<String> {
    store
        .read(|r| {
            Ok::<_, Error>(
                r.powerups::<dyn Describe>(Target::STORE)?
                    .iter()
                    .map(|p| p.describe())
                    .collect(),
            )
        })
        .await
        .unwrap()
}

async fn outbox_kinds(store: &Store) -> Vec<String> {
    let entries = store.outbox().await.unwrap();
    entries.into_iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_does_not_register_a_type_leaves_its_items_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");

    // The first program writes apples and beans, a run of a bean's task due
    // soon, powerups of both kinds, and an effect it has no handler for.
    let store = Store::open(&path, &first()).await.unwrap();
    // (Due after this program has closed the store.)
    let ripen_at = Timestamp::now() + Duration::from_secs(1);
    let (kept, free, bean) = store
        .transact(move |tx| {
            let kept = tx.insert(&apple_v1::Apple {
                name: "kept".into(),
            })?;
            let free = tx.insert(&apple_v1::Apple {
                name: "free".into(),
            })?;
            let bean = tx.insert(&Bean {
                label: "on a tree".into(),
                apple: Some(kept),
            })?;
            tx.insert(&Bean {
                label: "loose".into(),
                apple: None,
            })?;
            tx.schedule(bean, "ripen", ripen_at, None)?;
            tx.install::<dyn Describe, _>(Target::STORE, kept, 2)?;
            tx.install::<dyn Describe, _>(Target::STORE, bean, 1)?;
            tx.record(&Sprouted { bean: bean.raw() })?;
            Ok::<_, Error>((kept.raw(), free.raw(), bean))
        })
        .await
        .unwrap();
    common::close(store).await;
    let beans = beans_in_file(&path);

    // The second program knows apples only, at version 2: the store opens,
    // its apples are upgraded, and the beans are left alone.
    let store = common::reopen(&path, &second()).await;
    assert_eq!(
        store.unregistered(),
        [Unregistered {
            type_name: "bean".into(),
            version: 1,
            items: 2
        }]
    );
    assert_eq!(
        store.unregistered()[0].to_string(),
        "2 item(s) of type bean v1, not registered by this program"
    );
    assert_eq!(
        beans_in_file(&path),
        beans,
        "upgrading apples touched beans"
    );
    let kept = Id::<apple_v2::Apple>::from_raw(kept);
    let free = Id::<apple_v2::Apple>::from_raw(free);
    let apples = store
        .read(|r| r.query::<apple_v2::Apple>().all())
        .await
        .unwrap();
    assert_eq!(
        apples.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["kept", "free"]
    );

    // Apples read and write as ever; the powerup lookup skips the bean.
    let tick_at = ripen_at + Duration::from_millis(200);
    store
        .transact(move |tx| {
            let mut apple = tx.get(kept)?.expect("kept apple");
            apple.ticks = 10;
            tx.update(&mut apple)?;
            tx.insert(&apple_v2::Apple {
                name: "new".into(),
                ticks: 0,
            })?;
            // Nothing refers to this one.
            assert!(tx.delete(free)?);
            tx.record(&Picked { apple: kept.raw() })?;
            // Due after the bean's run: once it has run, the scheduler
            // has gone past the bean's time.
            tx.schedule(kept, "tick", tick_at, None)?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(described(&store).await, ["apple kept"]);

    // Beans cannot be read: a typed error naming the type. They can be
    // counted by name.
    let err = store.read(move |r| r.get(bean)).await.unwrap_err();
    assert!(matches!(err, Error::NotRegistered("bean")), "{err:?}");
    assert_eq!(
        err.to_string(),
        "type 'bean' is not registered by this program"
    );
    let err = store.read(|r| r.query::<Bean>().count()).await.unwrap_err();
    assert!(matches!(err, Error::NotRegistered("bean")), "{err:?}");
    assert_eq!(store.read(|r| r.count_items("bean")).await.unwrap(), 2);
    assert_eq!(store.read(|r| r.count_items("plum")).await.unwrap(), 0);

    // The apple a bean refers to cannot be deleted, alone or with others;
    // nothing of the refused delete is kept.
    let err = store.transact(move |tx| tx.delete(kept)).await.unwrap_err();
    match &err {
        Error::ReferencedByUnregistered {
            type_name,
            id,
            referrer,
            version,
            attribute,
        } => assert_eq!(
            (
                *type_name,
                *id,
                referrer.as_str(),
                *version,
                attribute.as_str()
            ),
            ("apple", kept.raw(), "bean", 1, "apple")
        ),
        other => panic!("expected ReferencedByUnregistered, got {other:?}"),
    }
    assert!(
        err.to_string().contains("not registered by this program"),
        "{err}"
    );
    let err = store
        .transact(|tx| tx.delete_where(apple_v2::Apple::NAME.like("%")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ReferencedByUnregistered { .. }),
        "{err:?}"
    );
    assert_eq!(
        store
            .read(|r| r.query::<apple_v2::Apple>().count())
            .await
            .unwrap(),
        2
    );

    // The scheduler runs the apple's task, due after the bean's run, and
    // leaves the bean's run waiting; the dispatcher sends the apple's
    // effect and leaves the bean's waiting.
    common::eventually("the apple's task to run", || async {
        store
            .read(move |r| r.get(kept))
            .await
            .unwrap()
            .unwrap()
            .ticks
            == 11
    })
    .await;
    common::eventually("the apple's effect to go", || async {
        outbox_kinds(&store).await == ["bean.sprouted"]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(Timestamp::now() > ripen_at);
    assert_eq!(beans_in_file(&path), beans, "writing apples touched beans");
    common::close(store).await;
    assert_eq!(beans_in_file(&path), beans, "closing touched beans");
    let report = mantle_store::inspect(&path).unwrap();
    assert_eq!(report.scheduled, 1, "the bean's run waits");

    // The third program registers beans again: they are all there, the
    // overdue run runs once, the waiting effect goes, and the bean's
    // references and powerup work again.
    let sprouted = Arc::new(Mutex::new(Vec::new()));
    let store = common::reopen(&path, &third(sprouted.clone())).await;
    assert_eq!(store.unregistered(), []);
    common::eventually("the bean's overdue run", || async {
        store
            .read(move |r| r.get(bean))
            .await
            .unwrap()
            .unwrap()
            .label
            == "on a tree (ripe)"
    })
    .await;
    common::eventually("both sprouted effects", || async {
        sprouted.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*sprouted.lock().unwrap(), [bean.raw(), bean.raw()]);
    assert_eq!(mantle_store::inspect(&path).unwrap().scheduled, 0);
    assert_eq!(
        described(&store).await,
        ["apple kept", "bean on a tree (ripe)"]
    );
    let labels = store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Bean>()
                    .all()?
                    .into_iter()
                    .map(|b| (b.label.clone(), b.apple.map(Id::raw)))
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap();
    assert_eq!(
        labels,
        [
            ("on a tree (ripe)".to_string(), Some(kept.raw())),
            ("loose".to_string(), None)
        ]
    );
    // Now its policy is known (nullify): the apple can go.
    assert!(store.transact(move |tx| tx.delete(kept)).await.unwrap());
    let bean_now = store.read(move |r| r.get(bean)).await.unwrap().unwrap();
    assert_eq!(bean_now.apple, None);
    common::close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_stored_at_a_newer_version_still_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let store = Store::open(&path, &third(Arc::default())).await.unwrap();
    store
        .transact(|tx| {
            let apple = tx.insert(&apple_v2::Apple {
                name: "new".into(),
                ticks: 0,
            })?;
            tx.insert(&Bean {
                label: "b".into(),
                apple: Some(Id::from_raw(apple.raw())),
            })
        })
        .await
        .unwrap();
    common::close(store).await;
    // Everything in the file itself (read connections can leave the
    // write-ahead log unmerged), so that the file alone tells a write.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    // A program that knows apples at version 1 only cannot open it.
    let err = common::open_again(&path, &first()).await.unwrap_err();
    match &err {
        Error::NewerSchema {
            type_name,
            stored,
            known,
        } => assert_eq!((type_name.as_str(), *stored, *known), ("apple", 2, 1)),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "type 'apple' is stored at version 2, newer than this program's version 1"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a refused open wrote"
    );

    // A program that knows neither leaves both alone.
    let store = common::reopen(&path, &common::config(Registry::new())).await;
    assert_eq!(
        store
            .unregistered()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "1 item(s) of type apple v2, not registered by this program",
            "1 item(s) of type bean v1, not registered by this program",
        ]
    );
    common::close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_registered_for_a_type_the_program_does_not_register_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let store = Store::open(&path, &first()).await.unwrap();
    // (Due after this program has closed the store.)
    let ripen_at = Timestamp::now() + Duration::from_secs(1);
    store
        .transact(move |tx| {
            let bean = tx.insert(&Bean {
                label: "b".into(),
                apple: None,
            })?;
            tx.schedule(bean, "ripen", ripen_at, None)
        })
        .await
        .unwrap();
    common::close(store).await;
    let beans = beans_in_file(&path);

    // A task for beans, but no bean type: the scheduler runs, and leaves
    // the due run alone rather than failing it again and again.
    let mut r = Registry::new();
    r.task::<Bean>("ripen", |_, _| panic!("must not run"));
    let store = common::reopen(&path, &common::config(r)).await;
    let past_due = ripen_at + Duration::from_millis(300);
    tokio::time::sleep(past_due.saturating_since(Timestamp::now())).await;
    assert_eq!(beans_in_file(&path), beans);
    assert_eq!(mantle_store::inspect(&path).unwrap().scheduled, 1);
    common::close(store).await;
}
