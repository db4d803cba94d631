//! A site as a cluster node: what `mantle serve` starts when `[cluster]`
//! names etcd endpoints, and what `mantle cluster status` reads.
//!
//! The running node rewrites `DIR/cluster-node.json` (its [`LeaseView`])
//! every second, so that `mantle cluster status DIR` can show the node's
//! own view of its lease beside what etcd says.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{
    ClusterConfig, ClusterError, ClusterLogins, Directory, Etcd, LeaseView, NodeLease, Ownership,
    Result, Routing,
};

/// The file in the site directory naming the site for the cluster.
const SITE_ID_FILE: &str = "cluster-site-id";
/// How long a starting node keeps trying to reach etcd.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// The file the running node rewrites with its view of its lease.
pub const STATUS_FILE: &str = "cluster-node.json";

/// A site's membership of the cluster, while it serves.
pub struct Node {
    lease: Arc<NodeLease>,
    ownership: Arc<Ownership>,
    routing: Arc<Routing>,
    logins: Arc<ClusterLogins>,
    /// For requests to other nodes (moves).
    http: reqwest::Client,
    /// Senders' epochs checked lately (messages from other nodes).
    sender_epochs: crate::messages::SenderEpochs,
    /// Links to the other nodes (messages to them).
    links: crate::links::Links,
    /// What the node trusts of the other nodes' AMP listeners over TLS.
    amp_tls: Option<Arc<mantle_client::ClientTls>>,
    status: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("lease", &self.lease).finish()
    }
}

/// What the status file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's view of its lease.
    pub lease: LeaseView,
    /// The serving process.
    pub pid: u32,
    /// When the file was written (milliseconds since the Unix epoch).
    pub written_unix_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Node {
    /// Joins the cluster `config` describes as the site in `dir`, whose
    /// domain is `domain`: its lease, the ownership every store it opens
    /// is claimed and fenced through ([`Node::fence`]), the routing of
    /// requests ([`Node::routing`]) and the cluster's logins
    /// ([`Node::logins`]).
    pub async fn join(dir: &Path, config: &ClusterConfig, domain: &str) -> Result<Self> {
        let secret = config.secret(dir)?;
        let etcd = Arc::new(Etcd::new(&config.etcd, config.request_timeout())?);
        let directory = Directory::new(etcd, &config.name);
        let site_id = site_id(dir)?;
        let routing = Arc::new(Routing::new(
            directory.clone(),
            &config.node,
            domain,
            secret,
        ));
        let logins = Arc::new(ClusterLogins::new(directory.clone(), &config.node));
        // `ca_file` must be readable; without it, the system's
        // authorities, if this machine has them.
        let amp_tls = match &config.ca_file {
            Some(file) => Some(Arc::new(
                mantle_client::ClientTls::trusting(&dir.join(file))
                    .map_err(|e| ClusterError::Config(format!("cluster.ca_file: {e}")))?,
            )),
            None => mantle_client::ClientTls::system().ok().map(Arc::new),
        };
        // etcd may be starting, or electing a leader: keep trying for a
        // while before giving up (a node taken for a live one is refused
        // at once).
        let deadline = std::time::Instant::now() + JOIN_PATIENCE;
        let lease = loop {
            match NodeLease::join(
                directory.clone(),
                &config.node,
                &config.advertise,
                &site_id,
                config.lease_ttl(),
            )
            .await
            {
                Ok(lease) => break lease,
                Err(e @ ClusterError::Unreachable { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    tracing::warn!(error = %e, "cannot join the cluster yet; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let ownership = Ownership::new(lease.clone(), dir);
        let status_path = dir.join(STATUS_FILE);
        let watched = Arc::downgrade(&lease);
        let status = tokio::spawn(async move {
            while let Some(lease) = watched.upgrade() {
                let status = NodeStatus {
                    lease: lease.view(),
                    pid: std::process::id(),
                    written_unix_ms: now_unix_ms(),
                };
                drop(lease);
                if let Err(e) = write_atomically(&status_path, &status) {
                    tracing::warn!(error = %e, "cannot write the cluster status file");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(Self {
            lease,
            ownership,
            routing,
            logins,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(|e| ClusterError::Config(format!("no HTTP client: {e}")))?,
            sender_epochs: Default::default(),
            links: Default::default(),
            amp_tls,
            status,
        })
    }

    /// Makes the site `builder` builds (in `dir`, with `domain`) this
    /// node's: its stores claimed and fenced, its logins in the cluster's
    /// directory, its tokens routed, its requests forwarded, its messages
    /// carried to other nodes, and the cluster's routes on its web front.
    pub fn install(
        self: &Arc<Self>,
        builder: mantle_site::SiteBuilder,
        dir: &Path,
        domain: &str,
    ) -> mantle_site::SiteBuilder {
        let routing: Arc<dyn mantle_web::Forwarding> = self.routing();
        let node = self.clone();
        builder
            .fence(self.fence())
            .logins(self.logins())
            .route_tokens()
            .extension::<mantle_web::Forwarder>(|f| f.0 = Some(routing))
            .remote_stores(Arc::new(crate::RemoteMessages::new(
                self.clone(),
                dir,
                domain,
            )))
            .extension::<crate::ClusterHandle>(|h| h.0 = Some(node))
            .extension::<mantle_live_server::amp::NodeLinkServer>(|l| {
                l.0 = Some(Arc::new(crate::links::LinkServer));
            })
            .extension::<mantle_live_server::amp::NodeTls>(|t| t.0 = self.amp_tls.clone())
            .extension::<mantle_web::WebRoutes>(|r| {
                r.add(crate::web_routes);
            })
    }

    /// The fence the site's stores commit through.
    pub fn fence(&self) -> Arc<Ownership> {
        self.ownership.clone()
    }

    /// Where requests belong: the web front's forwarding.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.clone()
    }

    /// The cluster's logins: the site's login directory.
    pub fn logins(&self) -> Arc<ClusterLogins> {
        self.logins.clone()
    }

    /// The node's lease.
    pub fn lease(&self) -> &Arc<NodeLease> {
        &self.lease
    }

    pub(crate) fn sender_epochs(&self) -> &crate::messages::SenderEpochs {
        &self.sender_epochs
    }

    pub(crate) fn links(&self) -> &crate::links::Links {
        &self.links
    }

    /// What the node trusts of the other nodes' AMP listeners over TLS.
    pub(crate) fn amp_tls(&self) -> Option<&mantle_client::ClientTls> {
        self.amp_tls.as_deref()
    }

    /// This node's vouched requests to other nodes.
    pub fn peer(&self) -> crate::peers::Peer<'_> {
        crate::peers::Peer::new(&self.http, &self.routing, self.lease.node())
    }

    /// Leaves the cluster (after the site closed): the lease is revoked,
    /// so the node's stores may be taken over at once.
    pub async fn leave(&self) -> Result<()> {
        self.status.abort();
        self.lease.leave().await
    }
}

/// The site's identity for the cluster, made on first use.
fn site_id(dir: &Path) -> Result<String> {
    let path = dir.join(SITE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ClusterError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ClusterError::Config(format!("no randomness for the site id: {e}")))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| ClusterError::Config(format!("cannot write {}: {e}", path.display())))?;
    Ok(id)
}

fn write_atomically(path: &Path, status: &NodeStatus) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

/// The status file the node serving `dir` wrote, if any (it may be old:
/// see `written_unix_ms`).
pub fn read_status(dir: &Path) -> Option<NodeStatus> {
    let text = std::fs::read(dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}
