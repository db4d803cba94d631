//! Operator tools: `inspect`, `check` and online `backup`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::{Counter, counter_registry};
use mantle_store::{
    DispatchError, Effect, Error, Id, Interface, Item, Registry, Store, Target, backup, check,
    inspect,
};
use serde::{Deserialize, Serialize};

/// The interface widgets provide as powerups, for `inspect` to count.
pub trait Plugin: Send {
    /// The widget's label.
    fn name(&self) -> String;
}

impl Interface for dyn Plugin {
    const NAME: &'static str = "plugin";
}

#[derive(Item, Debug, Clone)]
#[item(name = "widget", version = 2)]
struct Widget {
    label: String,
    #[item(on_delete = "cascade")]
    owner: Option<Id<Counter>>,
}

impl Plugin for Widget {
    fn name(&self) -> String {
        self.label.clone()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Doomed;
impl Effect for Doomed {
    const KIND: &'static str = "doomed";
}

#[derive(Debug, Serialize, Deserialize)]
struct Waiting;
impl Effect for Waiting {
    const KIND: &'static str = "waiting";
}

fn registry() -> Registry {
    let mut r = counter_registry();
    r.register::<Widget>()
        .provide::<Widget, dyn Plugin>(|w| Box::new(w))
        .task::<Widget>("noop", |_, _| Ok(()));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reports_types_versions_counts_powerups_outbox_and_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.store");
    // "doomed" effects fail for good; "waiting" ones have no handler.
    let config = common::config(registry())
        .on_effect(|_, _: Doomed| async { Err(DispatchError::permanent("never")) });
    let store = Store::open(&path, &config).await.unwrap();
    store
        .transact(|tx| {
            let c = tx.insert(&Counter::new("c", 1))?;
            tx.insert(&Counter::new("d", 2))?;
            let w1 = tx.insert(&Widget {
                label: "w1".into(),
                owner: Some(c),
            })?;
            let w2 = tx.insert(&Widget {
                label: "w2".into(),
                owner: None,
            })?;
            tx.insert(&Widget {
                label: "w3".into(),
                owner: None,
            })?;
            tx.install::<dyn Plugin, _>(Target::STORE, w1, 1)?;
            tx.install::<dyn Plugin, _>(c, w2, 1)?;
            tx.schedule(
                w1,
                "noop",
                mantle_store::Timestamp::now() + Duration::from_secs(3600),
                None,
            )?;
            tx.record(&Doomed)?;
            tx.record(&Waiting)?;
            tx.record(&Waiting)
        })
        .await
        .unwrap();
    common::eventually("the doomed effect to be parked", || {
        let path = path.clone();
        async move { inspect(&path).unwrap().outbox_parked == 1 }
    })
    .await;
    let report = inspect(&path).unwrap();
    assert_eq!(report.path, path);
    assert_eq!(report.format_version, mantle_store::FORMAT_VERSION);
    assert_eq!(report.journal_mode, "wal");
    assert!(report.page_size > 0 && report.page_count > 0);
    let types: Vec<_> = report
        .types
        .iter()
        .map(|t| (t.type_name.as_str(), t.version, t.items, t.columns.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("counter", 1, 2, "name TEXT, n INTEGER"),
            ("widget", 2, 3, "label TEXT, owner INTEGER NULL -> counter"),
        ]
    );
    let powerups: Vec<_> = report
        .powerups
        .iter()
        .map(|p| (p.interface.as_str(), p.powerup_type.as_str(), p.count))
        .collect();
    assert_eq!(powerups, [("plugin", "widget", 2)]);
    assert_eq!((report.outbox_pending, report.outbox_parked), (2, 1));
    assert_eq!(report.scheduled, 1);
    // The report serialises (for the CLI's JSON output).
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["outbox_parked"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_no_problem_in_a_healthy_store_open_or_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.store");
    let store = Store::open(&path, &common::config(registry()))
        .await
        .unwrap();
    store
        .transact(|tx| {
            let c = tx.insert(&Counter::new("c", 1))?;
            tx.insert(&Widget {
                label: "w".into(),
                owner: Some(c),
            })
        })
        .await
        .unwrap();
    assert_eq!(check(&path, None).unwrap(), []);
    assert_eq!(check(&path, Some(&registry())).unwrap(), []);
    common::close(store).await;
    assert_eq!(check(&path, Some(&registry())).unwrap(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_dangling_references_and_warns_of_types_the_program_does_not_register() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.store");
    let store = Store::open(&path, &common::config(registry()))
        .await
        .unwrap();
    store
        .transact(|tx| {
            let c = tx.insert(&Counter::new("c", 1))?;
            tx.insert(&Widget {
                label: "w".into(),
                owner: Some(c),
            })
        })
        .await
        .unwrap();
    common::close(store).await;
    // Remove the counter behind the store's back.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("DELETE FROM item_counter_v1", []).unwrap();
    }
    let problems = check(&path, None).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].what.contains("widget.owner") && problems[0].what.contains("counter"),
        "{}",
        problems[0]
    );
    // A program that knows only counters leaves the widgets alone: a
    // warning, not a problem.
    let report = mantle_store::check_report(&path, Some(&counter_registry())).unwrap();
    assert_eq!(report.problems, problems);
    assert_eq!(
        report
            .unregistered
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["1 item(s) of type widget v2, not registered by this program"]
    );
    assert_eq!(check(&path, Some(&counter_registry())).unwrap(), problems);
}

#[derive(Item, Debug, Clone)]
#[item(name = "half", version = 1)]
struct Half {
    #[item(index)]
    group: i64,
    side: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_holds_a_consistent_prefix_of_whole_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.store");
    let mut r = Registry::new();
    r.register::<Half>();
    let config = common::config(r);
    let store = Store::open(&path, &config).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = {
        let (store, stop, committed) = (store.clone(), stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut group = 0i64;
            while !stop.load(Ordering::SeqCst) {
                store
                    .transact(move |tx| {
                        tx.insert(&Half {
                            group,
                            side: "left".into(),
                        })?;
                        tx.insert(&Half {
                            group,
                            side: "right".into(),
                        })
                    })
                    .await
                    .unwrap();
                group += 1;
                committed.store(group, Ordering::SeqCst);
            }
            group
        })
    };
    common::eventually("some writes before the backup", || {
        let committed = committed.clone();
        async move { committed.load(Ordering::SeqCst) >= 50 }
    })
    .await;
    let mut copies = Vec::new();
    for i in 0..3 {
        let before = committed.load(Ordering::SeqCst);
        let dest = dir.path().join(format!("copy{i}.store"));
        let (src, d) = (path.clone(), dest.clone());
        let pages = tokio::task::spawn_blocking(move || backup(&src, &d))
            .await
            .unwrap()
            .unwrap();
        assert!(pages > 0);
        copies.push((dest, before));
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();

    for (dest, before) in copies {
        assert_eq!(check(&dest, None).unwrap(), []);
        let mut r = Registry::new();
        r.register::<Half>();
        let copy = Store::open(&dest, &common::config(r)).await.unwrap();
        let halves = copy.read(|r| r.query::<Half>().all()).await.unwrap();
        let mut groups: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for h in &halves {
            groups.entry(h.group).or_default().push(h.side.clone());
        }
        let n = groups.len() as i64;
        assert!(n >= before, "holds every transaction committed before it");
        assert!(n <= written);
        // A prefix: groups 0..n, each with both halves.
        assert_eq!(
            groups.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        for (g, sides) in groups {
            assert_eq!(sides, ["left", "right"], "group {g} is whole");
        }
        // The copy is a working store.
        copy.transact(|tx| {
            tx.insert(&Half {
                group: -1,
                side: "new".into(),
            })
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_to_overwrite_and_to_copy_what_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.store");
    let store = Store::open(&path, &common::config(counter_registry()))
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("c", 1)))
        .await
        .unwrap();
    let existing = dir.path().join("existing");
    std::fs::write(&existing, b"precious").unwrap();
    let err = backup(&path, &existing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    let err = backup(&dir.path().join("missing.store"), &dir.path().join("x")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let err = backup(&junk, &dir.path().join("y")).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
}
