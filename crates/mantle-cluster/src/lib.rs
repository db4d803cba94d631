//! Several Mantle nodes as one site, coordinated through etcd.
//!
//! One node with no `[cluster]` configuration runs alone, as always. In a
//! cluster, etcd (an existing, proven engine: linearizable transactions,
//! leases) holds only small data: which node is alive and where, and
//! which node owns which store, as `{node, epoch}`. Never user data.
//!
//! - [`Etcd`]: the etcd members, asked in turn (a dead member costs one
//!   time-out).
//! - [`NodeLease`]: a node's liveness key under a lease, renewed in the
//!   background; the node's own clock says how long it surely lasts.
//! - [`Directory`]: nodes and store owners, changed only by transactions
//!   that compare the revision they read; every change of owner raises
//!   the store's epoch.
//! - [`Ownership`]: the stores a node owns, and the
//!   [`Fence`](mantle_store::Fence) its stores commit through: no commit
//!   and no acknowledgement once the lease may have run out.
//! - [`Routing`]: where a request, a login or an AMP connection belongs,
//!   and the vouchers (HMAC under the cluster's secret) nodes forward
//!   with; [`ClusterLogins`], logins unique across the cluster.
//! - [`RemoteMessages`]: interstore messages carried between nodes, with
//!   their sender's epoch, over [`links`]: one authenticated AMP
//!   connection from each node to each other node's AMP listener.
//! - [`move_out`], [`Peer`]: moving a user's store to another node (and
//!   recovering a dead node's from its backup), verified before the flip.
//! - [`Node`]: all of it for a site that `mantle serve` runs
//!   ([`Node::install`]); [`web_routes`], what a node answers other nodes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mantle_cluster::{Directory, Etcd, NodeLease, Ownership};
//!
//! # async fn demo() -> mantle_cluster::Result<()> {
//! let etcd = Arc::new(Etcd::new(&["http://127.0.0.1:2379".into()], Duration::from_secs(2))?);
//! let directory = Directory::new(etcd, "mantle");
//! let lease = NodeLease::join(directory, "n1", "10.0.0.11:7001", "site-1", Duration::from_secs(10)).await?;
//! let ownership = Ownership::new(lease, "/srv/mantle".as_ref());
//! let file = std::path::Path::new("/srv/mantle/users/alice.mantle");
//! assert_eq!(ownership.store_name(file).as_deref(), Some("users/alice"));
//! let owned = ownership.acquire("users/alice", file).await?;
//! println!("n1 owns {} at epoch {}", owned.store, owned.owner.epoch);
//! # Ok(()) }
//! ```

mod config;
mod directory;
mod error;
mod etcd;
#[cfg(feature = "harness")]
pub mod harness;
mod lease;
pub mod links;
mod messages;
mod moving;
mod node;
mod ownership;
mod peers;
mod routing;

pub use config::ClusterConfig;
pub use directory::{Directory, LoginRecord, NodeRecord, Owned, Owner};
pub use error::{ClusterError, Result};
pub use etcd::Etcd;
pub use lease::{LeaseView, NodeLease};
pub use messages::{ANSWERS_PATH, DELIVER_PATH, RemoteMessages};
pub use moving::{ADOPT_PATH, DISCARD_PATH, MOVE_PATH, MoveRequest, Moved, move_out};
pub use node::{Node, NodeStatus, STATUS_FILE, now_unix_ms, read_status};
pub use ownership::{Ownership, store_name};
pub use peers::{
    ClusterHandle, FANOUT_COUNT_PATH, FanoutCount, NODE_HEADER, Peer, routes as web_routes,
};
pub use routing::{ClusterLogins, Routing};
