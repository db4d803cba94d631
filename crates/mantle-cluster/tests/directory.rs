//! The directory on a real three-member etcd: nodes join under leases,
//! stores are claimed, moved and taken over only as the invariants allow.

use std::sync::Arc;
use std::time::Duration;

use mantle_cluster::harness::EtcdCluster;
use mantle_cluster::{ClusterError, Directory, Etcd, NodeLease};

fn directory(etcd: &EtcdCluster, cluster: &str) -> Directory {
    let client = Etcd::new(&etcd.endpoints(), Duration::from_millis(500)).unwrap();
    Directory::new(Arc::new(client), cluster)
}

async fn join(d: &Directory, node: &str, site: &str) -> Arc<NodeLease> {
    NodeLease::join(
        d.clone(),
        node,
        &format!("{node}.test:7001"),
        site,
        Duration::from_secs(2),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_under_leases_and_a_live_name_is_not_taken_twice() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let d = directory(&etcd, "joining");
    let n1 = join(&d, "n1", "site-a").await;
    let _n2 = join(&d, "n2", "site-b").await;
    let names: Vec<String> = d
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node)
        .collect();
    assert_eq!(names, ["n1", "n2"]);
    assert!(n1.valid().0);

    // Another site may not go by a live node's name.
    let err = NodeLease::join(d.clone(), "n1", "x:1", "site-c", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::NodeTaken { node, address } if node == "n1" && address == "n1.test:7001"),
        "{err}"
    );

    // The same site directory (a restart after kill -9) replaces its
    // earlier incarnation at once.
    // (Its process is gone: it renews no more, its lease still lives.)
    drop(n1);
    let again = join(&d, "n1", "site-a").await;
    let record = d.node("n1").await.unwrap().unwrap();
    assert_eq!(format!("{:x}", record.lease), again.view().lease);

    // Leaving removes the node key at once.
    again.leave().await.unwrap();
    assert!(d.node("n1").await.unwrap().is_none());
    assert!(!again.valid().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_changes_owner_only_from_what_was_read_and_only_to_a_live_node() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let d = directory(&etcd, "owning");
    let _n1 = join(&d, "n1", "a").await;
    let n2 = join(&d, "n2", "b").await;

    let first = d.claim("users/alice", "n1").await.unwrap();
    assert_eq!((first.owner.node.as_str(), first.owner.epoch), ("n1", 1));
    // Claiming again is idempotent for the owner, refused for others.
    assert_eq!(d.claim("users/alice", "n1").await.unwrap(), first);
    let err = d.claim("users/alice", "n2").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::OwnedElsewhere { node, epoch: 1, .. } if node == "n1"),
        "{err}"
    );
    // A node that is not alive gets nothing.
    let err = d.claim("users/bob", "ghost").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::NodeDown(n) if n == "ghost"),
        "{err}"
    );
    assert!(d.owner("users/bob").await.unwrap().is_none());

    let moved = d.transfer(&first, "n2").await.unwrap();
    assert_eq!((moved.owner.node.as_str(), moved.owner.epoch), ("n2", 2));
    // A change from a stale read is refused and says what stands now.
    let err = d.transfer(&first, "n1").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::Changed { node, epoch: 2, .. } if node == "n2"),
        "{err}"
    );
    let err = d.transfer(&moved, "ghost").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::NodeDown(n) if n == "ghost"),
        "{err}"
    );

    // A forced takeover is refused while the owner's lease lives...
    let err = d.take_over("users/alice", "n1").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::OwnerAlive { node, .. } if node == "n2"),
        "{err}"
    );
    assert_eq!(d.owner("users/alice").await.unwrap().unwrap(), moved);
    // ...and succeeds, with the next epoch, once it is gone.
    n2.leave().await.unwrap();
    let taken = d.take_over("users/alice", "n1").await.unwrap();
    assert_eq!((taken.owner.node.as_str(), taken.owner.epoch), ("n1", 3));
    let err = d.take_over("users/nobody", "n1").await.unwrap_err();
    assert!(matches!(err, ClusterError::UnknownStore(_)), "{err}");

    let owners = d.owners().await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].store, "users/alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_racing_claims_and_transfers_exactly_one_wins() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let d = directory(&etcd, "racing");
    let mut leases = Vec::new();
    for i in 0..4 {
        leases.push(join(&d, &format!("n{i}"), &format!("s{i}")).await);
    }
    let claims = (0..4).map(|i| {
        let d = d.clone();
        tokio::spawn(async move { d.claim("shared", &format!("n{i}")).await })
    });
    let results: Vec<_> = futures::future::join_all(claims).await;
    let won: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.unwrap().ok())
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let from = won[0].clone();
    let transfers = (0..4).map(|i| {
        let (d, from) = (d.clone(), from.clone());
        tokio::spawn(async move { d.transfer(&from, &format!("n{i}")).await })
    });
    let results: Vec<_> = futures::future::join_all(transfers).await;
    let moved: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.unwrap().ok())
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].owner.epoch, 2);
    assert_eq!(d.owner("shared").await.unwrap().unwrap(), moved[0]);
}
