//! `mantle cluster …`: the nodes of a site's cluster and who owns what.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use mantle_cluster::{
    ClusterConfig, Directory, Etcd, FANOUT_COUNT_PATH, FanoutCount, MOVE_PATH, MoveRequest, Moved,
    read_status,
};
use mantle_site::SiteConfig;
use serde_json::json;

use crate::cli::ClusterCommand;
use crate::error::CliError;

/// A status file older than this is a server's that stopped.
const FRESH_MS: u64 = 5_000;

pub async fn run(program: &crate::Program, cmd: ClusterCommand) -> Result<u8, CliError> {
    match cmd {
        ClusterCommand::Recover {
            dir,
            node,
            target,
            key_file,
            endpoint,
            region,
        } => {
            let backup = mantle_backup::BackupConfig {
                target,
                endpoint: endpoint.unwrap_or_default(),
                region,
                ..mantle_backup::BackupConfig::default()
            };
            recover(program, &dir, &node, &backup, &key_file).await
        }
        ClusterCommand::Status { dir, json } => status(&dir, json).await,
        ClusterCommand::Move { dir, store, to } => move_one(&dir, &store, &to).await,
        ClusterCommand::Drain { dir, node } => drain(&dir, &node).await,
        ClusterCommand::Rebalance { dir } => rebalance(&dir).await,
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

/// What the cluster commands that act need: the directory, and how to
/// vouch for a request to a node.
struct Acting {
    directory: Directory,
    routing: mantle_cluster::Routing,
    http: reqwest::Client,
}

impl Acting {
    fn new(dir: &Path) -> Result<Self, CliError> {
        let cluster = cluster_of(dir)?;
        let config = SiteConfig::load(dir)?;
        let secret = cluster.secret(dir)?;
        let etcd = Arc::new(Etcd::new(&cluster.etcd, cluster.request_timeout())?);
        let directory = Directory::new(etcd, &cluster.name);
        let routing =
            mantle_cluster::Routing::new(directory.clone(), "cli", &config.domain, secret);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3600))
            .build()
            .map_err(|e| CliError::Message(format!("no HTTP client: {e}")))?;
        Ok(Self {
            directory,
            routing,
            http,
        })
    }

    /// Asks the owner of `store` to move it to `to`.
    async fn move_store(&self, store: &str, to: &str) -> Result<Moved, CliError> {
        let owner = self.directory.owner(store).await?.ok_or_else(|| {
            CliError::Message(format!("store {store} is not in the cluster's directory"))
        })?;
        let node = self
            .directory
            .node(&owner.owner.node)
            .await?
            .filter(|n| !n.http.is_empty())
            .ok_or_else(|| {
                CliError::Message(format!(
                    "store {store}'s owner {} is not serving: it cannot move the store",
                    owner.owner.node
                ))
            })?;
        self.peer()
            .call(
                &node.http,
                MOVE_PATH,
                &MoveRequest {
                    store: store.to_string(),
                    to: to.to_string(),
                },
            )
            .await
            .map_err(|e| CliError::Message(format!("moving {store} to {to} failed: {e}")))
    }

    /// Vouched requests to the nodes, as this command.
    fn peer(&self) -> mantle_cluster::Peer<'_> {
        mantle_cluster::Peer::new(&self.http, &self.routing, "cli")
    }

    /// The user stores of every live node (nodes with none included).
    async fn user_stores(&self) -> Result<BTreeMap<String, Vec<String>>, CliError> {
        let mut by_node: BTreeMap<String, Vec<String>> = self
            .directory
            .nodes()
            .await?
            .into_iter()
            .filter(|n| !n.http.is_empty())
            .map(|n| (n.node, Vec::new()))
            .collect();
        for o in self.directory.owners().await? {
            if o.store.starts_with("users/")
                && let Some(stores) = by_node.get_mut(&o.owner.node)
            {
                stores.push(o.store);
            }
        }
        Ok(by_node)
    }
}

/// `mantle fanout DIR count TYPE` on a cluster node: the count asked of
/// every live node (vouched), collated; `None` when DIR is no cluster
/// node.
pub(super) async fn fanout_count(
    dir: &Path,
    type_name: &str,
    parallel: usize,
) -> Result<Option<(mantle_site::ItemCount, usize)>, CliError> {
    let config = SiteConfig::load(dir)?;
    let cluster: ClusterConfig = config.section()?;
    if !cluster.enabled() {
        return Ok(None);
    }
    let acting = Acting::new(dir)?;
    let nodes: Vec<_> = acting
        .directory
        .nodes()
        .await?
        .into_iter()
        .filter(|n| !n.http.is_empty())
        .collect();
    let mut total = mantle_site::ItemCount {
        type_name: type_name.to_string(),
        items: 0,
        stores: 0,
        holding: 0,
    };
    let progress = bar(nodes.len(), &format!("counting {type_name}"));
    for node in &nodes {
        let count: mantle_site::ItemCount = acting
            .peer()
            .call(
                &node.http,
                FANOUT_COUNT_PATH,
                &FanoutCount {
                    type_name: type_name.to_string(),
                    parallel,
                },
            )
            .await
            .map_err(|e| CliError::Message(format!("counting on node {}: {e}", node.node)))?;
        total.items += count.items;
        total.stores += count.stores;
        total.holding += count.holding;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(Some((total, nodes.len())))
}

/// `mantle cluster recover`: see its `--help`.
async fn recover(
    program: &crate::Program,
    dir: &Path,
    dead: &str,
    backup: &mantle_backup::BackupConfig,
    key_file: &Path,
) -> Result<u8, CliError> {
    let acting = Acting::new(dir)?;
    if acting.directory.node(dead).await?.is_some() {
        return Err(CliError::Message(format!(
            "node {dead} is alive: its stores cannot be taken over (drain it instead)"
        )));
    }
    let stores: Vec<String> = acting
        .directory
        .owners()
        .await?
        .into_iter()
        .filter(|o| o.owner.node == dead && o.store.starts_with("users/"))
        .map(|o| o.store)
        .collect();
    if stores.is_empty() {
        println!("node {dead} owns no user store");
        return Ok(0);
    }
    let mut counts: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (node, owned) in acting.user_stores().await? {
        if let Some(record) = acting.directory.node(&node).await? {
            counts.insert(node, (owned.len(), record.http));
        }
    }
    if counts.is_empty() {
        return Err(CliError::Message("no live node to take the stores".into()));
    }
    // The dead node's site as its backup has it, in a temporary directory,
    // opened without backing up or joining anything.
    let temp = tempfile::tempdir()
        .map_err(|e| CliError::Message(format!("a temporary directory: {e}")))?;
    let restored_dir = temp.path().join("site");
    let base = std::env::current_dir()
        .map_err(|e| CliError::Message(format!("current directory: {e}")))?;
    let target = mantle_backup::Target::open(backup, &base)?;
    let keys = mantle_backup::Keyring::new(mantle_backup::BackupKey::read_file(key_file)?);
    let progress = bar(stores.len(), &format!("restoring {dead}'s site"));
    mantle_backup::restore_site(&target, &keys, &restored_dir, |_| {}).await?;
    let mut config = SiteConfig::load(&restored_dir)?;
    config.backup.target = String::new();
    let site = program.site(&restored_dir).config(config).open().await?;
    let peer = acting.peer();
    let mut recovered = Vec::new();
    for store in &stores {
        progress.set_message(format!("recovering {store}"));
        let (to, base) = counts
            .iter()
            .min_by_key(|(_, (n, _))| *n)
            .map(|(node, (_, http))| (node.clone(), http.clone()))
            .expect("a live node");
        let relative = format!("{store}.store");
        let account = site.accounts().export(&relative).await?;
        let file = std::fs::read(restored_dir.join(&relative))
            .map_err(|e| CliError::Message(format!("{store} in the restored site: {e}")))?;
        peer.offer_store(&base, store, account, &file).await?;
        match acting.directory.take_over(store, &to).await {
            Ok(owned) => {
                progress.suspend(|| {
                    println!(
                        "recovered {store} on {to} (epoch {}, {:.1} MB)",
                        owned.owner.epoch,
                        file.len() as f64 / 1e6
                    )
                });
                if let Some((n, _)) = counts.get_mut(&to) {
                    *n += 1;
                }
                recovered.push(store.clone());
            }
            Err(e) => {
                let _ = peer.discard(&base, store).await;
                progress.abandon();
                site.close().await;
                return Err(e.into());
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    site.close().await;
    println!(
        "recovered {} user store(s) of {dead} from its backup",
        recovered.len()
    );
    Ok(0)
}

fn describe(m: &Moved) -> String {
    format!(
        "moved {} from {} to {} (epoch {}, {:.1} MB, writes paused {} ms)",
        m.store,
        m.from,
        m.to,
        m.epoch,
        m.bytes as f64 / 1e6,
        m.paused_ms
    )
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

async fn move_one(dir: &Path, store: &str, to: &str) -> Result<u8, CliError> {
    let acting = Acting::new(dir)?;
    let progress = bar(1, &format!("moving {store} to {to}"));
    let moved = acting.move_store(store, to).await;
    progress.finish_and_clear();
    println!("{}", describe(&moved?));
    Ok(0)
}

/// Moves `plan` (store, target) in order, with a progress bar; stops at
/// the first failure.
async fn run_plan(
    acting: &Acting,
    plan: Vec<(String, String)>,
    what: &str,
) -> Result<u8, CliError> {
    if plan.is_empty() {
        println!("nothing to move");
        return Ok(0);
    }
    let progress = bar(plan.len(), what);
    for (store, to) in plan {
        progress.set_message(format!("{what}: {store} to {to}"));
        match acting.move_store(&store, &to).await {
            // Printed whether or not the bar shows (not on a terminal).
            Ok(m) => progress.suspend(|| println!("{}", describe(&m))),
            Err(e) => {
                progress.abandon();
                return Err(e);
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(0)
}

async fn drain(dir: &Path, node: &str) -> Result<u8, CliError> {
    let acting = Acting::new(dir)?;
    let mut by_node = acting.user_stores().await?;
    let leaving = by_node.remove(node).unwrap_or_default();
    if by_node.is_empty() {
        return Err(CliError::Message(format!(
            "no other live node to take {node}'s stores"
        )));
    }
    let mut counts: BTreeMap<String, usize> =
        by_node.iter().map(|(n, s)| (n.clone(), s.len())).collect();
    let plan = leaving
        .into_iter()
        .map(|store| {
            let (to, count) = counts
                .iter_mut()
                .min_by_key(|(_, c)| **c)
                .expect("another node");
            *count += 1;
            (store, to.clone())
        })
        .collect();
    run_plan(&acting, plan, &format!("draining {node}")).await
}

/// The moves that even out `by_node`: while the fullest node has two
/// stores more than the emptiest, one store from the one to the other.
fn rebalance_plan(mut by_node: BTreeMap<String, Vec<String>>) -> Vec<(String, String)> {
    let mut plan = Vec::new();
    loop {
        let Some((most, _)) = by_node
            .iter()
            .max_by_key(|(n, s)| (s.len(), std::cmp::Reverse((*n).clone())))
        else {
            return plan;
        };
        let Some((least, _)) = by_node.iter().min_by_key(|(n, s)| (s.len(), (*n).clone())) else {
            return plan;
        };
        let (most, least) = (most.clone(), least.clone());
        if by_node[&most].len() < by_node[&least].len() + 2 {
            return plan;
        }
        let store = by_node.get_mut(&most).and_then(Vec::pop).expect("a store");
        by_node.get_mut(&least).expect("a node").push(store.clone());
        plan.push((store, least));
    }
}

async fn rebalance(dir: &Path) -> Result<u8, CliError> {
    let acting = Acting::new(dir)?;
    let plan = rebalance_plan(acting.user_stores().await?);
    run_plan(&acting, plan, "rebalancing").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalancing_evens_out_to_within_one_store() {
        let of = |n: usize, p: &str| (0..n).map(|i| format!("users/{p}{i}")).collect::<Vec<_>>();
        let by_node: BTreeMap<String, Vec<String>> = [
            ("n1".to_string(), of(7, "a")),
            ("n2".to_string(), of(1, "b")),
            ("n3".to_string(), Vec::new()),
        ]
        .into();
        let plan = rebalance_plan(by_node);
        assert_eq!(plan.len(), 4, "{plan:?}");
        let to = |n: &str| plan.iter().filter(|(_, t)| t == n).count();
        // 7 / 1 / 0 becomes 3 / 3 / 2.
        assert_eq!((to("n2"), to("n3")), (2, 2), "{plan:?}");
        assert!(plan.iter().all(|(s, _)| s.starts_with("users/a")));
        let even: BTreeMap<String, Vec<String>> = [
            ("n1".to_string(), of(2, "a")),
            ("n2".to_string(), of(1, "b")),
        ]
        .into();
        assert!(rebalance_plan(even).is_empty());
    }
}
