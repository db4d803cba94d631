//! Fencing: a store whose fence refuses commits nothing (asked before the
//! commit) or acknowledges nothing (asked after it).

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Counter, counter_registry};
use mantle_store::{Error, Fence, Store};
use parking_lot::Mutex;

/// Answers the fence's questions from a script, then says yes; records
/// which stores it was asked about.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<bool>>,
    asked: Mutex<Vec<PathBuf>>,
}

impl Scripted {
    fn then(&self, answers: &[bool]) {
        self.answers.lock().extend(answers);
    }
}

impl Fence for Scripted {
    fn check(&self, store: &Path) -> Result<(), String> {
        self.asked.lock().push(store.to_path_buf());
        match self.answers.lock().pop_front() {
            Some(false) => Err("the lease ran out".into()),
            _ => Ok(()),
        }
    }
}

async fn open(fence: Arc<Scripted>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(counter_registry()).fence(fence);
    let store = Store::open(dir.path().join("f.store"), &config)
        .await
        .unwrap();
    (dir, store)
}

async fn count(store: &Store) -> u64 {
    store
        .read(|tx| tx.query::<Counter>().count())
        .await
        .unwrap()
}

fn insert(
    name: &str,
) -> impl FnOnce(&mut mantle_store::Tx<'_>) -> Result<(), Error> + Send + use<> {
    let name = name.to_string();
    move |tx| tx.insert(&Counter::new(&name, 1)).map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_is_asked_before_and_after_every_commit() {
    let fence = Arc::new(Scripted::default());
    let (_dir, store) = open(fence.clone()).await;
    let before = fence.asked.lock().len();
    store.transact(insert("a")).await.unwrap();
    let asked = fence.asked.lock()[before..].to_vec();
    assert_eq!(asked, vec![store.path().to_path_buf(); 2]);
    assert_eq!(count(&store).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_before_the_commit_nothing_is_written() {
    let fence = Arc::new(Scripted::default());
    let (_dir, store) = open(fence.clone()).await;
    fence.then(&[false]);
    let err = store.transact(insert("a")).await.unwrap_err();
    match &err {
        Error::Fenced { store: path, why } => {
            assert_eq!(path, store.path());
            assert_eq!(why, "the lease ran out");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(
        err.to_string().contains("is fenced: the lease ran out"),
        "{err}"
    );
    assert_eq!(count(&store).await, 0);
    // The fence says yes again: the store commits as before.
    store.transact(insert("b")).await.unwrap();
    assert_eq!(count(&store).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_after_the_commit_nothing_is_acknowledged() {
    let fence = Arc::new(Scripted::default());
    let (_dir, store) = open(fence.clone()).await;
    // Yes before the commit, no after it: written here, never acknowledged.
    fence.then(&[true, false]);
    let err = store.transact(insert("a")).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
    assert_eq!(count(&store).await, 1, "the commit itself stands here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_refused_is_refused_whole() {
    let fence = Arc::new(Scripted::default());
    let (_dir, store) = open(fence.clone()).await;
    // A slow transaction holds the writer (its two questions: yes), so
    // the next five queue up and commit as one group, whose question
    // before the commit is refused.
    fence.then(&[true, true, false]);
    let slow = store.transact(|tx| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        tx.insert(&Counter::new("slow", 1)).map(|_| ())
    });
    let queued = store.clone();
    let group = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let group: Vec<_> = (0..5)
            .map(|i| queued.transact(insert(&format!("g{i}"))))
            .collect();
        futures::future::join_all(group).await
    });
    slow.await.unwrap();
    let results = group.await.unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Fenced { .. }))),
        "{results:?}"
    );
    assert_eq!(count(&store).await, 1);
}

/// Refuses to open one store, says yes to everything else.
struct RefuseOpening(PathBuf);

impl Fence for RefuseOpening {
    fn check(&self, _store: &Path) -> Result<(), String> {
        Ok(())
    }
    fn opening<'a>(&'a self, store: &'a Path) -> mantle_store::FenceFuture<'a> {
        Box::pin(async move {
            if store == self.0 {
                Err("owned by node n2".to_string())
            } else {
                Ok(())
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_the_fence_refuses_to_open_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let refused = std::path::absolute(dir.path().join("theirs.store")).unwrap();
    let config = common::config(counter_registry()).fence(Arc::new(RefuseOpening(refused.clone())));
    let err = Store::open(&refused, &config).await.unwrap_err();
    assert!(
        matches!(&err, Error::Fenced { store, why } if store == &refused && why == "owned by node n2"),
        "{err:?}"
    );
    assert!(!refused.exists(), "nothing was made");
    let mine = Store::open(dir.path().join("mine.store"), &config)
        .await
        .unwrap();
    mine.transact(insert("a")).await.unwrap();
}
