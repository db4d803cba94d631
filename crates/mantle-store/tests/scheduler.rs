//! The persistent scheduler: tasks registered with `Registry::task`, run
//! at the time given to `Tx::schedule`, each in its own transaction.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mantle_store::{Error, Id, Item, Registry, Store, Timestamp};

#[derive(Item, Debug, Clone)]
#[item(name = "job", version = 1)]
struct Job {
    name: String,
    runs: i64,
    /// When the last run happened.
    last: Option<Timestamp>,
}

fn job(name: &str) -> Job {
    Job {
        name: name.into(),
        runs: 0,
        last: None,
    }
}

/// A registry whose "tick" task counts runs on the job.
fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Job>().task::<Job>("tick", |tx, mut job| {
        job.runs += 1;
        job.last = Some(Timestamp::now());
        tx.update(&mut job)
    });
    r
}

async fn get(store: &Store, id: Id<Job>) -> mantle_store::Stored<Job> {
    store
        .read(move |r| r.get(id))
        .await
        .unwrap()
        .expect("job exists")
}

async fn runs(store: &Store, id: Id<Job>) -> i64 {
    get(store, id).await.runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_task_runs_at_its_time_in_its_own_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(registry()))
        .await
        .unwrap();
    let at = Timestamp::now() + Duration::from_millis(300);
    let id = store
        .transact(move |tx| {
            let id = tx.insert(&job("once"))?;
            tx.schedule(id, "tick", at, None)?;
            Ok::<_, Error>(id)
        })
        .await
        .unwrap();
    common::eventually("the task to run", || {
        let store = store.clone();
        async move { runs(&store, id).await == 1 }
    })
    .await;
    let j = get(&store, id).await;
    assert!(j.last.unwrap() >= at, "it did not run before its time");
    assert_eq!(j.revision(), 2, "its update committed");
    // A one-off run is then gone from the schedule, and does not run again.
    let report = mantle_store::inspect(store.path()).unwrap();
    assert_eq!(report.scheduled, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&store, id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_task_runs_again_and_again_until_unscheduled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(registry()))
        .await
        .unwrap();
    let (id, sched) = store
        .transact(|tx| {
            let id = tx.insert(&job("repeat"))?;
            let s = tx.schedule(
                id,
                "tick",
                Timestamp::now(),
                Some(Duration::from_millis(50)),
            )?;
            Ok::<_, Error>((id, s))
        })
        .await
        .unwrap();
    common::eventually("three runs", || {
        let store = store.clone();
        async move { runs(&store, id).await >= 3 }
    })
    .await;
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 1);
    let was = store
        .transact(move |tx| tx.unschedule(sched))
        .await
        .unwrap();
    assert!(was);
    let after = runs(&store, id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&store, id).await, after, "no run after unschedule");
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 0);
    let again = store
        .transact(move |tx| tx.unschedule(sched))
        .await
        .unwrap();
    assert!(!again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_due_while_the_store_was_closed_runs_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    // In this first run of the program the task cannot succeed, so whatever
    // the timing, it can only have run in the second.
    let mut first = Registry::new();
    first.register::<Job>().task::<Job>("tick", |_tx, _job| {
        Err(Error::Panicked("not in this run".into()))
    });
    let store = Store::open(&path, &common::config(first)).await.unwrap();
    let at = Timestamp::now() + Duration::from_millis(200);
    let id = store
        .transact(move |tx| {
            let id = tx.insert(&job("missed"))?;
            tx.schedule(id, "tick", at, Some(Duration::from_secs(3600)))?;
            Ok::<_, Error>(id)
        })
        .await
        .unwrap();
    common::close(store).await;
    // Let the time pass while the store is closed.
    while Timestamp::now() <= at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reopened_at = Timestamp::now();
    let store = common::reopen(&path, &common::config(registry())).await;
    common::eventually("the missed run", || {
        let store = store.clone();
        async move { runs(&store, id).await == 1 }
    })
    .await;
    assert!(get(&store, id).await.last.unwrap() >= reopened_at);
    // Missed slots of a repeating task run once, not once per slot; the next
    // is an hour away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&store, id).await, 1);
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_is_rolled_back_and_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut r = Registry::new();
    {
        let calls = calls.clone();
        r.register::<Job>()
            .task::<Job>("flaky", move |tx, mut job| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                job.runs += 1;
                tx.update(&mut job)?;
                if n == 0 {
                    // The update above must be rolled back.
                    return Err(Error::Panicked("first attempt fails".into()));
                }
                Ok(())
            });
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(r))
        .await
        .unwrap();
    let id = store
        .transact(|tx| {
            let id = tx.insert(&job("flaky"))?;
            tx.schedule(id, "flaky", Timestamp::now(), None)?;
            Ok::<_, Error>(id)
        })
        .await
        .unwrap();
    common::eventually("the retried run", || {
        let store = store.clone();
        async move { runs(&store, id).await == 1 }
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one failure, one success");
    let j = get(&store, id).await;
    assert_eq!(
        j.revision(),
        2,
        "the failed attempt's update was rolled back"
    );
    common::eventually("the schedule to be done", || {
        let path = store.path().to_path_buf();
        async move { mantle_store::inspect(&path).unwrap().scheduled == 0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_an_unregistered_task_fails_with_unknown_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(registry()))
        .await
        .unwrap();
    let err = store
        .transact(|tx| {
            let id = tx.insert(&job("x"))?;
            tx.schedule(id, "no-such-task", Timestamp::now(), None)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownTask {
                type_name: "job",
                ref task
            } if task == "no-such-task"
        ),
        "{err:?}"
    );
    // The failed transaction left nothing.
    assert_eq!(store.read(|r| r.query::<Job>().count()).await.unwrap(), 0);
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_item_cancels_its_scheduled_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(registry()))
        .await
        .unwrap();
    let later = Timestamp::now() + Duration::from_secs(3600);
    let (a, b) = store
        .transact(move |tx| {
            let a = tx.insert(&job("a"))?;
            let b = tx.insert(&job("b"))?;
            tx.schedule(a, "tick", later, None)?;
            tx.schedule(a, "tick", later, Some(Duration::from_secs(60)))?;
            tx.schedule(b, "tick", later, None)?;
            Ok::<_, Error>((a, b))
        })
        .await
        .unwrap();
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 3);
    store.transact(move |tx| tx.delete(a)).await.unwrap();
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 1);
    store
        .transact(|tx| tx.delete_where(Job::NAME.eq("b")))
        .await
        .unwrap();
    assert_eq!(mantle_store::inspect(store.path()).unwrap().scheduled, 0);
    let _ = b;
}

/// The store's schedule rows for `id`: (id, every in ms).
fn schedule_rows(store: &Store, id: Id<Job>) -> Vec<(i64, Option<i64>)> {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mut q = conn
        .prepare("SELECT id, every_us / 1000 FROM mantle_schedule WHERE item_id = ?1 ORDER BY id")
        .unwrap();
    q.query_map([id.raw()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_schedule_is_idempotent_and_retimes_when_the_period_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.store"), &common::config(registry()))
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    let (id, first) = store
        .transact(move |tx| {
            let id = tx.insert(&job("swept"))?;
            // A stray one-off and a second repeating row, as an older
            // program might have left.
            tx.schedule(id, "tick", Timestamp::now() + hour, None)?;
            tx.schedule(id, "tick", Timestamp::now() + hour, Some(hour))?;
            tx.schedule(id, "tick", Timestamp::now() + hour, Some(hour))?;
            let s = tx.ensure_schedule(id, "tick", hour)?;
            Ok::<_, Error>((id, s))
        })
        .await
        .unwrap();
    // One row remains: the first repeating one, unchanged.
    assert_eq!(
        schedule_rows(&store, id),
        vec![(first.raw(), Some(3_600_000))]
    );
    // Again, at each start: nothing changes.
    for _ in 0..3 {
        let again = store
            .transact(move |tx| tx.ensure_schedule(id, "tick", hour))
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(
        schedule_rows(&store, id),
        vec![(first.raw(), Some(3_600_000))]
    );
    assert_eq!(runs(&store, id).await, 0, "not due for an hour");
    // The period changes: re-timed, due one new period from now.
    let short = Duration::from_millis(50);
    let same = store
        .transact(move |tx| tx.ensure_schedule(id, "tick", short))
        .await
        .unwrap();
    assert_eq!(same, first);
    assert_eq!(schedule_rows(&store, id), vec![(first.raw(), Some(50))]);
    common::eventually("runs at the new period", || {
        let store = store.clone();
        async move { runs(&store, id).await >= 2 }
    })
    .await;
    // An unregistered task is refused, as with `schedule`.
    let e = store
        .transact(move |tx| tx.ensure_schedule(id, "nope", hour))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownTask { .. }), "{e:?}");
}
