//! The site's statistics: "Auth", "Messaging", "Process" and the store
//! layer's "Stores", recorded by real activity.

use std::time::Duration;

use mantle_site::{
    AUTH_NAMESPACE, MESSAGING_NAMESPACE, Message, MessageHandlers, PROCESS_NAMESPACE, SendMessage,
    Site, SiteConfig,
};
use mantle_stats::{Snapshot, StatsRegistry, Value};
use serde::{Deserialize, Serialize};

const PW: &str = "correct horse battery";

#[derive(Serialize, Deserialize)]
struct Hello;
impl Message for Hello {
    const TYPE: &'static str = "test.hello";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// A type no store handles: parked.
#[derive(Serialize, Deserialize)]
struct Stray;
impl Message for Stray {
    const TYPE: &'static str = "test.stray";
    type Answer = ();
    const ONE_WAY: bool = true;
}

fn handlers(h: &mut MessageHandlers) {
    h.on::<Hello>(|_, _, _| Ok(()));
}

fn num(snap: &Snapshot, ns: &str, name: &str) -> f64 {
    snap.namespace(ns)
        .unwrap_or_else(|| panic!("no namespace {ns}"))
        .value(name)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{ns}/{name} is not a number"))
}

async fn wait_for(site: &Site, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    for _ in 0..2400 {
        let snap = site.stats_snapshot().await.unwrap();
        if check(&snap) {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for {what}: {}",
        site.stats_snapshot().await.unwrap().to_json_pretty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_messages_and_the_process_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let registry = StatsRegistry::new();
    let config = SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    };
    let site = Site::builder(dir.path())
        .messages(handlers)
        .stats(registry.clone())
        .init(config)
        .await
        .unwrap();
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();

    site.auth().login("alice", PW, "test").await.unwrap();
    site.auth().login("bob", PW, "test").await.unwrap();
    assert!(
        site.auth()
            .login("alice", "wrong password", "test")
            .await
            .is_err()
    );
    assert!(site.auth().login("nobody", PW, "test").await.is_err());

    let snap = site.stats_snapshot().await.unwrap();
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Logins"), 2.0);
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Login Failures"), 2.0);
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Active Tokens"), 2.0);
    assert!(num(&snap, PROCESS_NAMESPACE, "Uptime Seconds") >= 0.0);
    assert!(num(&snap, PROCESS_NAMESPACE, "Threads") >= 1.0);
    assert!(num(&snap, PROCESS_NAMESPACE, "Resident Memory Bytes") > 0.0);
    assert!(num(&snap, mantle_store::STATS_NAMESPACE, "Transactions") > 0.0);
    assert!(num(&snap, mantle_store::STATS_NAMESPACE, "Open Stores") >= 1.0);
    // The registry given to the builder is the site's.
    assert!(registry.get(AUTH_NAMESPACE).is_some());

    let alice = site
        .stores()
        .user_store_unchecked(site.accounts().get("alice").await.unwrap().id)
        .await
        .unwrap();
    alice
        .transact(|tx| {
            tx.send("bob", &Hello)?;
            tx.send("bob", &Hello)?;
            tx.send("bob", &Stray)
        })
        .await
        .unwrap();
    let snap = wait_for(&site, "3 messages delivered or parked", |s| {
        num(s, MESSAGING_NAMESPACE, "Delivered") == 2.0
            && num(s, MESSAGING_NAMESPACE, "Parked") == 1.0
    })
    .await;
    assert_eq!(num(&snap, MESSAGING_NAMESPACE, "Queued"), 3.0);
    assert_eq!(num(&snap, MESSAGING_NAMESPACE, "Retried"), 0.0);
    assert!(num(&snap, mantle_store::STATS_NAMESPACE, "Effects Recorded") >= 3.0);

    // Paused, the Auth counters stand still; reports go on.
    assert!(site.stats().set_enabled(AUTH_NAMESPACE, false));
    site.auth().login("alice", PW, "test").await.unwrap();
    assert!(
        site.auth()
            .login("alice", "wrong password", "test")
            .await
            .is_err()
    );
    let snap = site.stats_snapshot().await.unwrap();
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Logins"), 2.0);
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Login Failures"), 2.0);
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Active Tokens"), 2.0);
    site.stats().set_enabled(AUTH_NAMESPACE, true);
    let snap = site.stats_snapshot().await.unwrap();
    assert_eq!(num(&snap, AUTH_NAMESPACE, "Active Tokens"), 3.0);
    site.close().await;
}
