//! A node's own site store sends to a user whose store another node holds
//! (over the link between the two nodes), and the answer comes back to
//! it: two nodes in one process, on three etcd members (Debian's
//! `etcd-server`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantle_cluster::harness::EtcdCluster;
use mantle_cluster::{ClusterConfig, Node};
use mantle_site::{Message, MessageHandlers, SendMessage, Site, SiteConfig};
use mantle_store::{Item, Registry};
use serde::{Deserialize, Serialize};

const DOMAIN: &str = "cluster.test";

/// Asks the recipient to note `n`; answered with `n * 2`.
#[derive(Serialize, Deserialize)]
struct Ask {
    n: i64,
}

impl Message for Ask {
    const TYPE: &'static str = "test.ask";
    type Answer = i64;
}

/// What the recipient keeps.
#[derive(Item, Debug, Clone)]
#[item(name = "test_asked", version = 1)]
struct Asked {
    n: i64,
}

/// What the sender keeps of the answer.
#[derive(Item, Debug, Clone)]
#[item(name = "test_answered", version = 1)]
struct Answered {
    n: i64,
    answer: i64,
}

fn types(r: &mut Registry) {
    r.register::<Asked>().register::<Answered>();
}

fn handlers(h: &mut MessageHandlers) {
    h.on::<Ask>(|tx, _env, ask| {
        tx.insert(&Asked { n: ask.n })?;
        Ok(ask.n * 2)
    })
    .on_answer::<Ask>(|tx, ask, answer| {
        // A refusal is kept as -1 (and fails the test).
        tx.insert(&Answered {
            n: ask.n,
            answer: answer.unwrap_or(-1),
        })?;
        Ok(())
    });
}

/// One node: its site, membership and AMP listener (where the other
/// node's link arrives).
struct TestNode {
    site: Site,
    node: Arc<Node>,
    amp: mantle_site::RunningService,
}

async fn start(etcd: &EtcdCluster, dir: &std::path::Path, name: &str) -> TestNode {
    std::fs::create_dir_all(dir).unwrap();
    let secret = etcd.path().join("cluster.secret");
    if !secret.exists() {
        std::fs::write(&secret, "a secret both nodes share, long enough\n").unwrap();
    }
    let config = ClusterConfig {
        etcd: etcd.endpoints(),
        node: name.to_string(),
        advertise: "127.0.0.1:1".into(),
        secret_file: Some(secret),
        ..ClusterConfig::default()
    };
    let node = Arc::new(Node::join(dir, &config, DOMAIN).await.unwrap());
    let builder = Site::builder(dir).with(types).messages(handlers);
    let builder = node.install(
        mantle_live_server::install(mantle_web::install(builder)),
        dir,
        DOMAIN,
    );
    let site = builder
        .init(SiteConfig {
            domain: DOMAIN.into(),
            ..SiteConfig::default()
        })
        .await
        .unwrap();
    let amp = mantle_live_server::amp::start_on(&site, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    node.lease()
        .set_amp(amp.address.as_deref().unwrap())
        .await
        .unwrap();
    TestNode { site, node, amp }
}

impl TestNode {
    async fn stop(self) {
        self.amp.stop().await;
        self.site.close().await;
        let _ = self.node.leave().await;
    }
}

/// How many items of type `T` `store` holds.
async fn count<T: Item>(store: &mantle_store::Store) -> u64 {
    store.read(|r| r.query::<T>().count()).await.unwrap()
}

/// Waits up to 20 s for `check`.
async fn settles(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_site_store_asks_a_user_of_another_node_and_gets_its_answer() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let one = start(&etcd, &dirs.path().join("n1"), "n1").await;
    let two = start(&etcd, &dirs.path().join("n2"), "n2").await;
    let alice = two
        .site
        .accounts()
        .create("alice", "correct horse battery", false)
        .await
        .unwrap();
    let alice_store = two
        .site
        .stores()
        .user_store_unchecked(alice.id)
        .await
        .unwrap();

    let to = format!("alice@{DOMAIN}");
    one.site
        .stores()
        .site_store()
        .transact(move |tx| {
            for n in 1..=3 {
                tx.send(&to, &Ask { n })?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    settles("alice's store keeping the three", async || {
        count::<Asked>(&alice_store).await == 3
    })
    .await;
    let site_store = one.site.stores().site_store().clone();
    settles("the answers back in n1's site store", async || {
        count::<Answered>(&site_store).await == 3
    })
    .await;
    let mut answered: Vec<(i64, i64)> = site_store
        .read(|r| {
            mantle_store::ok(
                r.query::<Answered>()
                    .all()?
                    .into_iter()
                    .map(|a| (a.n, a.answer))
                    .collect(),
            )
        })
        .await
        .unwrap();
    answered.sort();
    assert_eq!(answered, [(1, 2), (2, 4), (3, 6)]);
    // Nothing twice at the recipient, once everything has settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count::<Asked>(&alice_store).await, 3);
    two.stop().await;
    one.stop().await;
}
