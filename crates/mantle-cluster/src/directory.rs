//! The directory: which nodes are alive and which node owns which store,
//! kept in etcd and changed only by transactions that compare what they
//! read.
//!
//! Keys, under the cluster's name:
//! - `/NAME/nodes/NODE`: a [`NodeRecord`], attached to the node's lease,
//!   so it disappears when the node stops renewing it;
//! - `/NAME/stores/STORE`: an [`Owner`] (`{node, epoch}`). Every change
//!   of owner raises the epoch by one; effects leaving a node carry the
//!   epoch of the store they come from, and receivers refuse older ones.
//!
//! Invariants, each enforced by the comparison in the transaction that
//! could break it:
//! - a store gets its first owner only if it has none, and only a live
//!   node (one whose node key exists) gets it;
//! - a store changes owner only from the record the caller read (its
//!   `mod_revision`), so two concurrent changes cannot both succeed;
//! - a forced takeover succeeds only once the owner's node key is gone,
//!   that is once etcd has expired its lease; the owner stopped writing
//!   before then by its own clock (see `lease.rs`).

use std::sync::Arc;

use etcdv3client::pb;
use serde::{Deserialize, Serialize};

use crate::etcd::{Etcd, delete, exists, put, read, read_in, unchanged_since};
use crate::{ClusterError, Result};

/// What a live node says of itself, under its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name.
    pub node: String,
    /// Where the other nodes reach it (`host:port`).
    pub advertise: String,
    /// When this incarnation joined (milliseconds since the Unix epoch).
    pub joined_unix_ms: u64,
    /// The site directory's identity: a node restarting on the same
    /// directory replaces its earlier incarnation instead of waiting for
    /// that one's lease to run out.
    pub site_id: String,
    /// The lease the record is attached to.
    pub lease: i64,
    /// Where the node's HTTP front answers forwarded requests
    /// (`http://host:port`; empty until it listens).
    #[serde(default)]
    pub http: String,
    /// Where the node's AMP listener answers (`amp://host:port`; empty
    /// without one).
    #[serde(default)]
    pub amp: String,
}

/// A login's record: the store holding its account, and the node that
/// claimed it (the store's owner now is the store's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRecord {
    /// The account's user store (its name, `users/…`).
    pub store: String,
    /// The node where the account was made.
    pub node: String,
}

/// A store's owner: a node, and the epoch of its ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The owning node.
    pub node: String,
    /// Raised by one at every change of owner.
    pub epoch: u64,
}

/// A store's owner as read from the directory, with the revision that
/// a change must compare against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The store.
    pub store: String,
    /// Its owner.
    pub owner: Owner,
    /// The record's `mod_revision` in etcd.
    pub revision: i64,
}

/// The keys of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    root: String,
}

impl Keys {
    pub(crate) fn new(cluster: &str) -> Self {
        Self {
            root: format!("/{cluster}"),
        }
    }
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.root)
    }
    fn nodes(&self) -> String {
        format!("{}/nodes/", self.root)
    }
    fn store(&self, store: &str) -> String {
        format!("{}/stores/{store}", self.root)
    }
    fn stores(&self) -> String {
        format!("{}/stores/", self.root)
    }
    fn login(&self, address: &str) -> String {
        format!("{}/logins/{address}", self.root)
    }
}

/// Parses the JSON record `kv` holds.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(kv: &pb::KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| ClusterError::BadRecord {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        detail: e.to_string(),
    })
}

/// The cluster's directory of nodes and store owners.
///
/// ```no_run
/// # async fn demo(etcd: std::sync::Arc<mantle_cluster::Etcd>) -> mantle_cluster::Result<()> {
/// let directory = mantle_cluster::Directory::new(etcd, "mantle");
/// let owned = directory.claim("users/alice", "n1").await?;
/// assert_eq!((owned.owner.node.as_str(), owned.owner.epoch), ("n1", 1));
/// let moved = directory.transfer(&owned, "n2").await?;
/// assert_eq!(moved.owner.epoch, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Directory {
    etcd: Arc<Etcd>,
    keys: Keys,
}

impl Directory {
    /// The directory of the cluster `name` in `etcd`.
    pub fn new(etcd: Arc<Etcd>, name: &str) -> Self {
        Self {
            etcd,
            keys: Keys::new(name),
        }
    }

    /// The etcd members.
    pub fn etcd(&self) -> &Arc<Etcd> {
        &self.etcd
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The live nodes, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.etcd
            .prefix(&self.keys.nodes())
            .await?
            .iter()
            .map(parse)
            .collect()
    }

    /// The live node `name`, if it is alive.
    pub async fn node(&self, name: &str) -> Result<Option<NodeRecord>> {
        self.etcd
            .get(&self.keys.node(name))
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    /// The owner of `store`, if it has one.
    pub async fn owner(&self, store: &str) -> Result<Option<Owned>> {
        match self.etcd.get(&self.keys.store(store)).await? {
            Some(kv) => Ok(Some(self.owned(&kv)?)),
            None => Ok(None),
        }
    }

    /// Every store's owner, by store.
    pub async fn owners(&self) -> Result<Vec<Owned>> {
        self.etcd
            .prefix(&self.keys.stores())
            .await?
            .iter()
            .map(|kv| self.owned(kv))
            .collect()
    }

    fn owned(&self, kv: &pb::KeyValue) -> Result<Owned> {
        let key = String::from_utf8_lossy(&kv.key);
        let store = key
            .strip_prefix(&self.keys.stores())
            .unwrap_or(&key)
            .to_string();
        Ok(Owned {
            store,
            owner: parse(kv)?,
            revision: kv.mod_revision,
        })
    }

    /// The record of the login `address`, if an account holds it.
    pub async fn login(&self, address: &str) -> Result<Option<LoginRecord>> {
        self.etcd
            .get(&self.keys.login(address))
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    /// Reserves the login `address` for the account whose store is
    /// `record.store`: refused with [`ClusterError::LoginTaken`] when
    /// another account holds it (another store's, or one made on another
    /// node: store names derive from logins, so two nodes name their
    /// stores alike). Claiming it again as claimed is no error.
    pub async fn claim_login(&self, address: &str, record: &LoginRecord) -> Result<()> {
        let key = self.keys.login(address);
        let answer = self
            .etcd
            .txn(
                &format!("the claim of login {address}"),
                pb::TxnRequest {
                    compare: vec![exists(&key, false)],
                    success: vec![put(&key, json(record), 0)],
                    failure: vec![read(&key)],
                },
            )
            .await?;
        if answer.succeeded {
            return Ok(());
        }
        match read_in(&answer, 0).map(parse::<LoginRecord>).transpose()? {
            Some(now) if now == *record => Ok(()),
            Some(now) => Err(ClusterError::LoginTaken {
                address: address.to_string(),
                node: now.node,
            }),
            // Released meanwhile: claim again.
            None => Box::pin(self.claim_login(address, record)).await,
        }
    }

    /// Gives up the login `address` if the account of `store` holds it.
    pub async fn release_login(&self, address: &str, store: &str) -> Result<()> {
        let key = self.keys.login(address);
        let Some(kv) = self.etcd.get(&key).await? else {
            return Ok(());
        };
        let now: LoginRecord = parse(&kv)?;
        if now.store != store {
            return Ok(());
        }
        self.etcd
            .txn(
                &format!("the release of login {address}"),
                pb::TxnRequest {
                    compare: vec![unchanged_since(&key, kv.mod_revision)],
                    success: vec![delete(&key)],
                    failure: vec![],
                },
            )
            .await
            .map(|_| ())
    }

    /// Makes live `node` the first owner of `store` (epoch 1). Claiming a
    /// store `node` already owns returns its record; one owned elsewhere
    /// is refused.
    pub async fn claim(&self, store: &str, node: &str) -> Result<Owned> {
        let key = self.keys.store(store);
        let node_key = self.keys.node(node);
        let owner = Owner {
            node: node.to_string(),
            epoch: 1,
        };
        let answer = match self
            .set_owner(
                &format!("the claim of store {store}"),
                store,
                owner,
                vec![exists(&key, false), exists(&node_key, true)],
                vec![read(&key), read(&node_key)],
            )
            .await?
        {
            Ok(owned) => return Ok(owned),
            Err(answer) => answer,
        };
        match read_in(&answer, 0) {
            Some(kv) => {
                let now = self.owned(kv)?;
                if now.owner.node == node {
                    Ok(now)
                } else {
                    Err(ClusterError::OwnedElsewhere {
                        store: store.to_string(),
                        node: now.owner.node,
                        epoch: now.owner.epoch,
                    })
                }
            }
            None => Err(ClusterError::NodeDown(node.to_string())),
        }
    }

    /// Gives `from.store` to live node `to`, with the next epoch, if its
    /// record is still `from`.
    pub async fn transfer(&self, from: &Owned, to: &str) -> Result<Owned> {
        let key = self.keys.store(&from.store);
        let to_key = self.keys.node(to);
        let owner = Owner {
            node: to.to_string(),
            epoch: from.owner.epoch + 1,
        };
        let answer = match self
            .set_owner(
                &format!("the transfer of store {} to {to}", from.store),
                &from.store,
                owner.clone(),
                vec![unchanged_since(&key, from.revision), exists(&to_key, true)],
                vec![read(&key), read(&to_key)],
            )
            .await?
        {
            Ok(owned) => return Ok(owned),
            Err(answer) => answer,
        };
        self.explain_failure(&answer, from, owner, || ClusterError::NodeDown(to.into()))
    }

    /// Makes live `node` the owner of `store`, with the next epoch, once
    /// its owner's lease is gone (a dead or paused owner). Refused while
    /// the owner's lease lives. A store `node` already owns returns its
    /// record.
    pub async fn take_over(&self, store: &str, node: &str) -> Result<Owned> {
        let from = self
            .owner(store)
            .await?
            .ok_or_else(|| ClusterError::UnknownStore(store.to_string()))?;
        if from.owner.node == node {
            return Ok(from);
        }
        let key = self.keys.store(store);
        let old_key = self.keys.node(&from.owner.node);
        let node_key = self.keys.node(node);
        let owner = Owner {
            node: node.to_string(),
            epoch: from.owner.epoch + 1,
        };
        let answer = match self
            .set_owner(
                &format!("the takeover of store {store} by {node}"),
                store,
                owner.clone(),
                vec![
                    unchanged_since(&key, from.revision),
                    exists(&old_key, false),
                    exists(&node_key, true),
                ],
                vec![read(&key), read(&node_key), read(&old_key)],
            )
            .await?
        {
            Ok(owned) => return Ok(owned),
            Err(answer) => answer,
        };
        let old_alive = read_in(&answer, 2).is_some();
        self.explain_failure(&answer, &from, owner, || {
            if old_alive {
                ClusterError::OwnerAlive {
                    store: store.to_string(),
                    node: from.owner.node.clone(),
                }
            } else {
                ClusterError::NodeDown(node.to_string())
            }
        })
    }

    /// Puts `owner` as `store`'s record if every comparison holds; the
    /// new record, or the answer with the `failure` reads.
    async fn set_owner(
        &self,
        op: &str,
        store: &str,
        owner: Owner,
        compare: Vec<pb::Compare>,
        failure: Vec<pb::RequestOp>,
    ) -> Result<Result<Owned, pb::TxnResponse>> {
        let key = self.keys.store(store);
        let answer = self
            .etcd
            .txn(
                op,
                pb::TxnRequest {
                    compare,
                    success: vec![put(&key, json(&owner), 0)],
                    failure,
                },
            )
            .await?;
        if !answer.succeeded {
            return Ok(Err(answer));
        }
        Ok(Ok(Owned {
            store: store.to_string(),
            owner,
            revision: revision(&answer),
        }))
    }

    /// Why a change of `from` to `wanted` failed, from the transaction's
    /// reads (the record first, the new owner's node key second): it
    /// stands already (an earlier attempt applied it), the record changed
    /// meanwhile, or `otherwise`.
    fn explain_failure(
        &self,
        answer: &pb::TxnResponse,
        from: &Owned,
        wanted: Owner,
        otherwise: impl FnOnce() -> ClusterError,
    ) -> Result<Owned> {
        let Some(kv) = read_in(answer, 0) else {
            return Err(ClusterError::UnknownStore(from.store.clone()));
        };
        let now = self.owned(kv)?;
        if now.owner == wanted {
            return Ok(now);
        }
        if now.revision != from.revision {
            return Err(ClusterError::Changed {
                store: from.store.clone(),
                node: now.owner.node,
                epoch: now.owner.epoch,
            });
        }
        Err(otherwise())
    }
}

/// A record as stored: JSON.
pub(crate) fn json<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialise")
}

/// The revision a successful transaction wrote at.
pub(crate) fn revision(answer: &pb::TxnResponse) -> i64 {
    answer.header.as_ref().map_or(0, |h| h.revision)
}
