//! Helpers for the cluster tests: nodes' environments on an etcd harness,
//! and the directory they share.

use std::sync::Arc;
use std::time::Duration;

use mantle_cluster::harness::EtcdCluster;
use mantle_cluster::{Directory, Etcd};

use super::{free_port, s};

/// The cluster's shared secret, in a file of the etcd harness's
/// directory (every node of a test reads the same one).
pub fn secret_file(etcd: &EtcdCluster) -> String {
    let path = etcd.path().join("cluster.secret");
    if !path.exists() {
        std::fs::write(&path, "a secret the test's nodes share, long enough\n").unwrap();
    }
    s(&path).to_string()
}

/// The environment making `mantle` a node of the cluster in `etcd`.
pub fn node_env(etcd: &EtcdCluster, node: &str) -> Vec<(String, String)> {
    vec![
        ("MANTLE_CLUSTER_SECRET_FILE".into(), secret_file(etcd)),
        ("MANTLE_CLUSTER_ETCD".into(), etcd.endpoints().join(",")),
        ("MANTLE_CLUSTER_NODE".into(), node.into()),
        (
            "MANTLE_CLUSTER_ADVERTISE".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
        ("MANTLE_CLUSTER_LEASE_TTL_SECS".into(), "3".into()),
        ("MANTLE_CLUSTER_REQUEST_TIMEOUT_MS".into(), "900".into()),
        // Every test logs in from 127.0.0.1, many times, through every node.
        ("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE".into(), "10000".into()),
    ]
}

pub fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

pub fn directory(etcd: &EtcdCluster) -> Directory {
    let client = Etcd::new(&etcd.endpoints(), Duration::from_millis(400)).unwrap();
    Directory::new(Arc::new(client), "mantle")
}

/// The user stores `node` owns.
pub async fn user_stores_of(d: &Directory, node: &str) -> Vec<String> {
    d.owners()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.owner.node == node && o.store.starts_with("users/"))
        .map(|o| o.store)
        .collect()
}

/// Cluster tests start three etcd members and several nodes each: on a
/// small machine, one at a time (the guard, held for the test).
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// The environments of nodes `n1` … `nN` of the cluster in `etcd`.
pub fn envs(etcd: &EtcdCluster, n: usize) -> Vec<Vec<(String, String)>> {
    (1..=n).map(|i| node_env(etcd, &format!("n{i}"))).collect()
}

/// `mantle ARGS` with a node's environment `env`; its output.
pub fn mantle_in(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(super::mantle_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mantle")
}
