//! `mantle cluster …`: the nodes of a site's cluster and who owns what.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mantle_cluster::{ClusterConfig, Directory, Etcd, read_status};
use mantle_site::SiteConfig;
use serde_json::json;

use crate::cli::ClusterCommand;
use crate::error::CliError;

/// A status file older than this is a server's that stopped.
const FRESH_MS: u64 = 5_000;

pub async fn run(cmd: ClusterCommand) -> Result<u8, CliError> {
    match cmd {
        ClusterCommand::Status { dir, json } => status(&dir, json).await,
    }
}

/// The cluster settings of the site in `dir`, which must be a node.
fn cluster_of(dir: &Path) -> Result<ClusterConfig, CliError> {
    let config = SiteConfig::load(dir)?;
    let cluster: ClusterConfig = config.section()?;
    if !cluster.enabled() {
        return Err(CliError::Message(format!(
            "{} is not a cluster node: set [cluster] etcd in its mantle.toml (see docs/cluster.md)",
            dir.display()
        )));
    }
    Ok(cluster)
}

async fn status(dir: &Path, as_json: bool) -> Result<u8, CliError> {
    let cluster = cluster_of(dir)?;
    let etcd = Arc::new(Etcd::new(&cluster.etcd, cluster.request_timeout())?);
    let directory = Directory::new(etcd, &cluster.name);
    let nodes = directory.nodes().await?;
    let owners = directory.owners().await?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &owners {
        *counts.entry(o.owner.node.as_str()).or_default() += 1;
    }
    let orphans: Vec<_> = owners
        .iter()
        .filter(|o| !nodes.iter().any(|n| n.node == o.owner.node))
        .collect();
    let own = read_status(dir)
        .filter(|s| mantle_cluster::now_unix_ms().saturating_sub(s.written_unix_ms) < FRESH_MS);
    if as_json {
        let doc = json!({
            "cluster": cluster.name,
            "etcd": cluster.etcd,
            "nodes": nodes.iter().map(|n| json!({
                "node": n.node,
                "advertise": n.advertise,
                "joined_unix_ms": n.joined_unix_ms,
                "lease": format!("{:x}", n.lease),
                "stores": counts.get(n.node.as_str()).copied().unwrap_or(0),
            })).collect::<Vec<_>>(),
            "orphaned_stores": orphans.iter().map(|o| json!({
                "store": o.store, "node": o.owner.node, "epoch": o.owner.epoch,
            })).collect::<Vec<_>>(),
            "this_node": own.as_ref().map(|s| json!({
                "node": cluster.node,
                "pid": s.pid,
                "lease": s.lease,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(0);
    }
    println!(
        "cluster {} (etcd {})",
        cluster.name,
        cluster.etcd.join(", ")
    );
    println!(
        "{:<16} {:<24} {:>7} {:>17}",
        "node", "address", "stores", "lease"
    );
    for n in &nodes {
        println!(
            "{:<16} {:<24} {:>7} {:>17x}",
            n.node,
            n.advertise,
            counts.get(n.node.as_str()).copied().unwrap_or(0),
            n.lease
        );
    }
    if nodes.is_empty() {
        println!("(no live node)");
    }
    if !orphans.is_empty() {
        println!(
            "{} store(s) owned by nodes that are not alive: {}",
            orphans.len(),
            orphans
                .iter()
                .take(10)
                .map(|o| format!("{} ({} epoch {})", o.store, o.owner.node, o.owner.epoch))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match own {
        Some(s) => {
            let l = &s.lease;
            println!(
                "this node ({}, pid {}): lease {} generation {}, valid for {:.1} s, {} renewals{}",
                l.node,
                s.pid,
                l.lease,
                l.generation,
                l.valid_for_ms as f64 / 1000.0,
                l.renewals,
                l.last_error
                    .as_ref()
                    .map(|e| format!("; last renewal failed: {e}"))
                    .unwrap_or_default()
            );
        }
        None => println!("this node ({}): not running", cluster.node),
    }
    Ok(0)
}
