//! A node's lease and its fence when etcd members fail: one of three
//! lost changes nothing; the majority lost stops commits once the lease
//! may have run out, and everything comes back by itself with etcd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mantle_cluster::harness::EtcdCluster;
use mantle_cluster::{ClusterError, Directory, Etcd, NodeLease, Ownership};
use mantle_store::{Fence, Item, Registry, Store, StoreConfig};

const TTL: Duration = Duration::from_secs(2);

/// A note, to have something to write.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "note", version = 1)]
struct Note {
    text: String,
}

fn config(ownership: Arc<Ownership>) -> StoreConfig {
    let mut registry = Registry::new();
    registry.register::<Note>();
    StoreConfig::new(registry).fence(ownership)
}

/// Writes one note.
async fn write(store: &Store, text: &str) -> Result<(), mantle_store::Error> {
    let note = Note { text: text.into() };
    store.transact(move |tx| tx.insert(&note).map(|_| ())).await
}

fn directory(etcd: &EtcdCluster) -> Directory {
    let client = Etcd::new(&etcd.endpoints(), Duration::from_millis(400)).unwrap();
    Directory::new(Arc::new(client), "leases")
}

async fn join(d: &Directory, node: &str) -> Arc<NodeLease> {
    let site = format!("site-{node}");
    NodeLease::join(d.clone(), node, "127.0.0.1:1", &site, TTL)
        .await
        .unwrap()
}

/// Waits up to `limit` for `cond`; whether it came true.
async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_of_three_members_changes_nothing() {
    let Some(mut etcd) = EtcdCluster::start(3) else {
        return;
    };
    let d = directory(&etcd);
    let lease = join(&d, "n1").await;
    d.claim("users/a", "n1").await.unwrap();
    // The member the client asks first (the first endpoint) goes.
    etcd.kill(0);
    let renewals = lease.view().renewals;
    // Three lease lengths: the lease stays valid all along.
    let end = Instant::now() + 3 * TTL;
    while Instant::now() < end {
        assert!(lease.valid().0, "{:?}", lease.view());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lease.view().renewals >= renewals + 3, "{:?}", lease.view());
    // The directory still answers and changes.
    d.claim("users/b", "n1").await.unwrap();
    assert_eq!(d.owners().await.unwrap().len(), 2);
    etcd.restart(0);
    etcd.wait_healthy(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_majority_stops_writes_and_etcd_coming_back_restarts_them() {
    let Some(mut etcd) = EtcdCluster::start(3) else {
        return;
    };
    let d = directory(&etcd);
    let lease = join(&d, "n1").await;
    let dir = tempfile::tempdir().unwrap();
    let ownership = Ownership::new(lease.clone(), dir.path());
    let path = std::path::absolute(dir.path().join("users/a.mantle")).unwrap();
    std::fs::create_dir(dir.path().join("users")).unwrap();
    let store = Store::open(&path, &config(ownership.clone()))
        .await
        .unwrap();
    write(&store, "before").await.unwrap();
    assert!(ownership.check(&path).is_ok());

    etcd.kill(1);
    etcd.kill(2);
    // Renewals fail; within a lease length the node stops writing.
    assert!(
        within(TTL + Duration::from_millis(500), || !lease.valid().0).await,
        "{:?}",
        lease.view()
    );
    let err = ownership.check(&path).unwrap_err();
    assert!(err.contains("holds no valid lease"), "{err}");
    let err = write(&store, "cut off").await.unwrap_err();
    assert!(matches!(err, mantle_store::Error::Fenced { .. }), "{err:?}");
    assert!(lease.view().last_error.is_some(), "{:?}", lease.view());
    // Ownership cannot change either.
    let err = d.claim("users/b", "n1").await.unwrap_err();
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");

    // etcd comes back: the node renews (or joins again) and, its
    // ownership confirmed, writes again, with no one stepping in.
    etcd.restart(1);
    etcd.restart(2);
    etcd.wait_healthy(1);
    assert!(
        within(Duration::from_secs(10), || lease.valid().0).await,
        "{:?}",
        lease.view()
    );
    // No one took the store meanwhile: the node confirms it by itself.
    assert!(
        within(Duration::from_secs(10), || ownership.check(&path).is_ok()).await,
        "{:?}",
        ownership.check(&path)
    );
    write(&store, "after").await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_given_away_is_fenced_here() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let d = directory(&etcd);
    let lease = join(&d, "n1").await;
    let _other = join(&d, "n2").await;
    let dir = tempfile::tempdir().unwrap();
    let ownership = Ownership::new(lease, dir.path());
    let path = std::path::absolute(dir.path().join("users/a.mantle")).unwrap();
    std::fs::create_dir(dir.path().join("users")).unwrap();
    // Opening the store claims it ("users/a": its file in the site).
    let store = Store::open(&path, &config(ownership.clone()))
        .await
        .unwrap();
    let owned = ownership.held(&path).unwrap();
    assert_eq!((owned.store.as_str(), owned.owner.epoch), ("users/a", 1));
    assert_eq!(d.owner("users/a").await.unwrap().unwrap(), owned);
    write(&store, "mine").await.unwrap();

    // Released before the transfer: from then on nothing commits here.
    ownership.release(&path).unwrap();
    d.transfer(&owned, "n2").await.unwrap();
    let err = write(&store, "not mine").await.unwrap_err();
    assert!(err.to_string().contains("does not own this store"), "{err}");
    // And the node cannot claim it back: it is n2's now.
    let err = ownership.acquire("users/a", &path).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::OwnedElsewhere { epoch: 2, .. }),
        "{err}"
    );
    assert!(ownership.check(&path).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_is_replaced_and_only_stores_no_one_took_come_back() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let d = directory(&etcd);
    let lease = join(&d, "n1").await;
    let _n2 = join(&d, "n2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("users")).unwrap();
    let ownership = Ownership::new(lease.clone(), dir.path());
    let kept = std::path::absolute(dir.path().join("users/kept.mantle")).unwrap();
    let taken = std::path::absolute(dir.path().join("users/taken.mantle")).unwrap();
    let kept_store = Store::open(&kept, &config(ownership.clone()))
        .await
        .unwrap();
    let taken_store = Store::open(&taken, &config(ownership.clone()))
        .await
        .unwrap();
    write(&kept_store, "1").await.unwrap();
    write(&taken_store, "1").await.unwrap();

    // The lease is gone at etcd (as when the node was paused past it):
    // n2 takes one store over meanwhile.
    let id = i64::from_str_radix(&lease.view().lease, 16).unwrap();
    d.etcd().revoke(id).await.unwrap();
    d.take_over("users/taken", "n2").await.unwrap();

    // The node finds out at its next renewal, joins again (generation 2)
    // and confirms what no one took.
    assert!(
        within(Duration::from_secs(5), || lease.view().generation == 2
            && ownership.check(&kept).is_ok())
        .await,
        "{:?} {:?}",
        lease.view(),
        ownership.check(&kept)
    );
    write(&kept_store, "2").await.unwrap();
    let err = write(&taken_store, "2").await.unwrap_err();
    assert!(err.to_string().contains("does not own this store"), "{err}");
    assert_eq!(
        d.owner("users/taken").await.unwrap().unwrap().owner.node,
        "n2"
    );
}
