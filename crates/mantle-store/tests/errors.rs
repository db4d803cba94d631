//! Errors when opening a store: files that are not stores, stores written
//! by other programs or versions, and stores open elsewhere.

mod common;

use std::path::Path;

use common::{Counter, counter_registry};
use mantle_store::{Error, Item, Registry, Store};

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn assert_not_a_store(err: &Error, path: &Path) {
    match err {
        Error::NotAStore { path: p, .. } => assert_eq!(p, path),
        other => panic!("expected NotAStore, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_random_bytes_is_not_a_store_and_is_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.bin");
    let bytes = random_bytes(64 * 1024);
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path, &common::config(counter_registry()))
        .await
        .unwrap_err();
    assert_not_a_store(&err, &path);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "not a byte changed");
    assert!(!dir.path().join("random.bin-wal").exists());
    // The tools refuse it too.
    assert_not_a_store(&mantle_store::inspect(&path).unwrap_err(), &path);
    assert_not_a_store(&mantle_store::check(&path, None).unwrap_err(), &path);
    // And a tiny file.
    let small = dir.path().join("small.bin");
    std::fs::write(
        &small,
        b"hello, not sqlite at all, but more than a few bytes long......",
    )
    .unwrap();
    let err = Store::open(&small, &common::config(counter_registry()))
        .await
        .unwrap_err();
    assert_not_a_store(&err, &small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_sqlite_database_is_not_a_store_and_is_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('keep me');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path, &common::config(counter_registry()))
        .await
        .unwrap_err();
    match &err {
        Error::NotAStore { reason, .. } => {
            assert!(reason.contains("application_id"), "{reason}")
        }
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // A directory is not a store either.
    let err = Store::open(dir.path(), &common::config(counter_registry()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.store");
    std::fs::write(&path, b"").unwrap();
    let store = Store::open(&path, &common::config(counter_registry()))
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    let report = mantle_store::inspect(&path).unwrap();
    assert_eq!(report.journal_mode, "wal");
    assert_eq!(report.format_version, mantle_store::FORMAT_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_a_newer_file_format_is_refused_with_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    common::close(Store::open(&path, &config).await.unwrap()).await;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = common::open_again(&path, &config).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NewerFormat {
                found: 99,
                supported: mantle_store::FORMAT_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
}

mod thing_v1 {
    use mantle_store::Item;
    #[derive(Item, Debug, Clone)]
    #[item(name = "thing", version = 1)]
    pub struct Thing {
        pub label: String,
    }
}

mod thing_v2 {
    use mantle_store::Item;
    #[derive(Item, Debug, Clone)]
    #[item(name = "thing", version = 2)]
    pub struct Thing {
        pub label: String,
        pub weight: i64,
    }
}

/// Same name and version as `thing_v1::Thing`, different fields.
mod thing_v1_changed {
    use mantle_store::Item;
    #[derive(Item, Debug, Clone)]
    #[item(name = "thing", version = 1)]
    pub struct Thing {
        pub label: String,
        pub colour: Option<String>,
    }
}

fn registry_with<T: Item>() -> Registry {
    let mut r = Registry::new();
    r.register::<T>();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_holding_a_newer_type_version_is_refused_with_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let store = Store::open(&path, &common::config(registry_with::<thing_v2::Thing>()))
        .await
        .unwrap();
    store
        .transact(|tx| {
            tx.insert(&thing_v2::Thing {
                label: "new".into(),
                weight: 3,
            })
        })
        .await
        .unwrap();
    common::close(store).await;
    let before = std::fs::read(&path).unwrap();
    let err = common::open_again(&path, &common::config(registry_with::<thing_v1::Thing>()))
        .await
        .unwrap_err();
    match &err {
        Error::NewerSchema {
            type_name,
            stored,
            known,
        } => {
            assert_eq!((type_name.as_str(), *stored, *known), ("thing", 2, 1));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("'thing'") && message.contains('2') && message.contains('1'),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // The newer program still opens it.
    let store = common::reopen(&path, &common::config(registry_with::<thing_v2::Thing>())).await;
    assert_eq!(
        store
            .read(|r| r.query::<thing_v2::Thing>().count())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_an_unregistered_type_are_refused_with_unknown_type_only_by_a_strict_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let mut both = counter_registry();
    both.register::<thing_v1::Thing>();
    let store = Store::open(&path, &common::config(both)).await.unwrap();
    // A table for "thing" exists but is empty.
    store
        .transact(|tx| {
            tx.insert(&Counter::new("c", 1))?;
            let t = tx.insert(&thing_v1::Thing { label: "t".into() })?;
            tx.delete(t)
        })
        .await
        .unwrap();
    common::close(store).await;
    let strict = common::config(counter_registry()).allow_unknown_types(false);
    let store = common::reopen(&path, &strict).await;
    assert_eq!(common::counters(&store).await, [("c".to_string(), 1)]);
    assert_eq!(store.unregistered(), []);
    common::close(store).await;

    let mut both = counter_registry();
    both.register::<thing_v1::Thing>();
    let store = common::reopen(&path, &common::config(both)).await;
    store
        .transact(|tx| {
            tx.insert(&thing_v1::Thing { label: "a".into() })?;
            tx.insert(&thing_v1::Thing { label: "b".into() })
        })
        .await
        .unwrap();
    common::close(store).await;
    let err = common::open_again(&path, &strict).await.unwrap_err();
    match &err {
        Error::UnknownType {
            type_name,
            version,
            count,
        } => assert_eq!((type_name.as_str(), *version, *count), ("thing", 1, 2)),
        other => panic!("expected UnknownType, got {other:?}"),
    }
    // By default the store opens, leaving those items alone.
    let store = common::reopen(&path, &common::config(counter_registry())).await;
    assert_eq!(common::counters(&store).await.len(), 1);
    assert_eq!(
        store.unregistered(),
        [mantle_store::Unregistered {
            type_name: "thing".into(),
            version: 1,
            items: 2
        }]
    );
    common::close(store).await;
    let report = mantle_store::inspect(&path).unwrap();
    assert!(
        report
            .types
            .iter()
            .any(|t| t.type_name == "thing" && t.items == 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_struct_changed_without_a_version_bump_is_refused_with_schema_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let store = Store::open(&path, &common::config(registry_with::<thing_v1::Thing>()))
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&thing_v1::Thing { label: "x".into() }))
        .await
        .unwrap();
    common::close(store).await;
    let before = std::fs::read(&path).unwrap();
    let err = common::open_again(
        &path,
        &common::config(registry_with::<thing_v1_changed::Thing>()),
    )
    .await
    .unwrap_err();
    match &err {
        Error::SchemaMismatch {
            type_name,
            version,
            stored,
            declared,
        } => {
            assert_eq!((type_name.as_str(), *version), ("thing", 1));
            assert_eq!(stored, "label TEXT");
            assert_eq!(declared, "label TEXT, colour TEXT NULL");
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_twice_in_one_process_fails_with_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    let store = Store::open(&path, &config).await.unwrap();
    let err = Store::open(&path, &config).await.unwrap_err();
    match &err {
        Error::Locked { path: p } => assert_eq!(p, &path),
        other => panic!("expected Locked, got {other:?}"),
    }
    // The first handle is unaffected.
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    // Inspecting needs no lock.
    assert_eq!(mantle_store::inspect(&path).unwrap().types.len(), 1);
}

/// `close` says it closes the file; another open must then succeed even
/// though a handle (now answering `Error::Closed`) is still around. (It
/// waits out a momentary `Locked`, see `open_again`; a lock held until the
/// old handle is dropped never goes away here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_can_be_opened_again_while_an_old_handle_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    let store = Store::open(&path, &config).await.unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    store.close().await;
    let again = common::open_again(&path, &config).await;
    let again = again.expect("reopen after close");
    assert_eq!(common::counters(&again).await.len(), 1);
    drop(store);
}

/// Dropping the last handle closes the store; opening it again right
/// away must not fail because the file is still being closed elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_last_handle_was_dropped_can_be_opened_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    for i in 0..50 {
        let store = Store::open(&path, &config)
            .await
            .unwrap_or_else(|e| panic!("open #{i} after dropping the last handle: {e}"));
        store
            .transact(move |tx| tx.insert(&Counter::new("n", i)))
            .await
            .unwrap();
        drop(store);
    }
}

const CHILD_ENV: &str = "MANTLE_STORE_TEST_CHILD_PATH";

/// Run by `another_process_cannot_open_a_store_that_is_open` in a child
/// process: tries to open the store named in the environment and prints
/// the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by another_process_cannot_open_a_store_that_is_open"]
async fn child_process_tries_to_open_the_store() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    match Store::open(&path, &common::config(counter_registry())).await {
        Ok(_) => println!("CHILD-OUTCOME: opened"),
        Err(e) => println!("CHILD-OUTCOME: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_cannot_open_a_store_that_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    let store = Store::open(&path, &config).await.unwrap();
    store
        .transact(|tx| tx.insert(&Counter::new("a", 1)))
        .await
        .unwrap();
    let run_child = || {
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_tries_to_open_the_store",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .output()
    };
    let out = run_child().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(
        stdout.contains("CHILD-OUTCOME: Locked"),
        "child output: {stdout}"
    );
    // Once closed here, the other process can open it. (Retried: for a
    // moment after close, a child process another test is starting may
    // still hold the lock; see the next test.)
    common::close(store).await;
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let out = run_child().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.contains("CHILD-OUTCOME: opened") {
            return;
        }
        outcomes.push(stdout);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the child never opened the closed store: {outcomes:?}");
}

/// A child process started while a store is open inherits the descriptor
/// of its lock file until it execs (its `flock` with it); closing the store
/// must still let this process open it again. Test binaries that start
/// child processes (as the test above does) hit this as a rare `Locked`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_closed_while_a_child_process_starts_can_be_opened_again() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let config = common::config(counter_registry());
    let store = Store::open(&path, &config).await.unwrap();
    let (mut forked, mut signal) = std::io::pipe().unwrap();
    let spawner = std::thread::spawn(move || {
        let mut cmd = std::process::Command::new("true");
        // SAFETY: the hook only writes to a pipe and sleeps.
        unsafe {
            cmd.pre_exec(move || {
                signal.write_all(b"f")?;
                std::thread::sleep(std::time::Duration::from_millis(500));
                Ok(())
            });
        }
        cmd.status().unwrap()
    });
    // Wait until the child exists (it holds copies of our descriptors).
    tokio::task::spawn_blocking(move || forked.read_exact(&mut [0u8; 1]))
        .await
        .unwrap()
        .unwrap();
    common::close(store).await;
    let reopened = Store::open(&path, &config).await;
    assert!(spawner.join().unwrap().success());
    reopened.expect("reopen after close while a child process was starting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_every_item_of_a_type_named_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path().join("s.store"),
        &common::config(counter_registry()),
    )
    .await
    .unwrap();
    let deleted = store
        .transact(|tx| {
            for i in 0..3 {
                tx.insert(&Counter::new(&format!("c{i}"), i))?;
            }
            tx.delete_all_of_type(Counter::TYPE_NAME)
        })
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert!(common::counters(&store).await.is_empty());
    // A name this program does not register: refused, naming it.
    let refused = store
        .transact(|tx| tx.delete_all_of_type("no_such_type"))
        .await;
    match refused {
        Err(Error::NotRegisteredName(name)) => assert_eq!(name, "no_such_type"),
        other => panic!("expected NotRegisteredName, got {other:?}"),
    }
    common::close(store).await;
}
