//! A node's lease: its liveness key in etcd, renewed in the background,
//! and the node's own view of how long the lease surely lasts.
//!
//! **Own clock.** etcd expires a lease `ttl` after the last renewal it
//! received. A renewal that this node *sent* at `t` and saw acknowledged
//! was received at or after `t`, so the lease lives at least until
//! `t + ttl` by any clock that runs at the same rate. The node counts its
//! lease valid until `t + ttl - margin` (the margin covers clock rate
//! differences), measured on the monotonic clock, and its fence refuses
//! commits past that, whether or not the process was paused meanwhile:
//! by the time another node may take its stores over (etcd removed its
//! node key), it has stopped writing them.
//!
//! A lease that ran out is not renewed but replaced: the node joins again
//! with a new lease (a new *generation*), and stores it owned under the
//! old one must be confirmed in the directory again before it writes them
//! (see [`Ownership`](crate::Ownership)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3client::pb;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::directory::{Directory, NodeRecord, json, parse};
use crate::etcd::{exists, put, read, read_in, unchanged_since};
use crate::{ClusterError, Result};

/// What a node knows of its own lease, for status reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The node.
    pub node: String,
    /// The current lease's id (hexadecimal, as `etcdctl` shows it).
    pub lease: String,
    /// Incremented every time the node joins with a new lease.
    pub generation: u64,
    /// Milliseconds the lease surely lasts by this node's clock (0: it may
    /// have run out; the node writes nothing).
    pub valid_for_ms: u64,
    /// Renewals acknowledged since the node started.
    pub renewals: u64,
    /// The last failure to renew, if the last attempt failed.
    pub last_error: Option<String>,
}

struct State {
    id: i64,
    generation: u64,
    valid_until: Option<Instant>,
    renewals: u64,
    last_error: Option<String>,
    /// Set by [`NodeLease::leave`]: a renewal that was already under way
    /// (its task is aborted, but not in the middle of a poll) must not
    /// make the lease valid again.
    left: bool,
}

/// A node's membership of the cluster: its lease, renewed in the
/// background until [`NodeLease::leave`].
pub struct NodeLease {
    directory: Directory,
    /// The node's name.
    node: String,
    /// What the node key says (its lease set at each registration).
    record: Mutex<NodeRecord>,
    ttl: Duration,
    margin: Duration,
    state: Mutex<State>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The generation, for those who confirm what they held under the
    /// previous one ([`Ownership`]).
    generations: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for NodeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLease")
            .field("node", &self.node)
            .field("view", &self.view())
            .finish()
    }
}

impl NodeLease {
    /// Joins the cluster as `node`, reachable at `advertise`, with a lease
    /// of `ttl`, renewed every third of it. `site_id` names the site
    /// directory: an earlier incarnation of this node on the same
    /// directory (killed before its lease ran out) is replaced; a live
    /// node of the same name elsewhere is refused.
    pub async fn join(
        directory: Directory,
        node: &str,
        advertise: &str,
        site_id: &str,
        ttl: Duration,
    ) -> Result<Arc<Self>> {
        let record = NodeRecord {
            node: node.to_string(),
            advertise: advertise.to_string(),
            joined_unix_ms: crate::node::now_unix_ms(),
            site_id: site_id.to_string(),
            lease: 0,
            http: String::new(),
            amp: String::new(),
        };
        let lease = Arc::new(Self {
            directory,
            node: record.node.clone(),
            record: Mutex::new(record),
            ttl,
            margin: (ttl / 10).max(Duration::from_millis(200)),
            state: Mutex::new(State {
                id: 0,
                generation: 0,
                valid_until: None,
                renewals: 0,
                last_error: None,
                left: false,
            }),
            renewer: Mutex::new(None),
            generations: tokio::sync::watch::Sender::new(0),
        });
        lease.register().await?;
        let renewing = Arc::downgrade(&lease);
        let handle = tokio::spawn(async move {
            loop {
                let Some(lease) = renewing.upgrade() else {
                    return;
                };
                let pause = lease.renew_once().await;
                drop(lease);
                tokio::time::sleep(pause).await;
            }
        });
        *lease.renewer.lock() = Some(handle);
        Ok(lease)
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where the other nodes reach this one (`host:port`, as configured).
    pub fn advertise(&self) -> String {
        self.record.lock().advertise.clone()
    }

    /// Says in the node key where the node's HTTP front answers
    /// (`http://host:port`), for the nodes that forward requests to it.
    pub async fn set_http(&self, url: &str) -> Result<()> {
        self.announce(|r| r.http = url.to_string()).await
    }

    /// Says in the node key where the node's AMP listener answers
    /// (`amp://host:port`), for the nodes that pass AMP connections on.
    pub async fn set_amp(&self, url: &str) -> Result<()> {
        self.announce(|r| r.amp = url.to_string()).await
    }

    /// Changes the node key's record with `change`, under the current
    /// lease.
    async fn announce(&self, change: impl FnOnce(&mut NodeRecord)) -> Result<()> {
        let (record, id) = {
            let mut r = self.record.lock();
            change(&mut r);
            (r.clone(), self.state.lock().id)
        };
        let mut record = record;
        record.lease = id;
        let key = self.directory.keys().node(&self.node);
        self.directory
            .etcd()
            .txn(
                &format!("the address of node {}", self.node),
                pb::TxnRequest {
                    compare: vec![crate::etcd::compare(
                        &key,
                        pb::compare::CompareTarget::Lease,
                        pb::compare::CompareResult::Equal,
                        pb::compare::TargetUnion::Lease(id),
                    )],
                    success: vec![put(&key, json(&record), id)],
                    failure: vec![],
                },
            )
            .await
            .map(|_| ())
    }

    /// The directory the node joined.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Grants a lease and puts the node key under it (a new generation).
    async fn register(&self) -> Result<()> {
        let etcd = self.directory.etcd();
        let key = self.directory.keys().node(&self.node);
        let sent = Instant::now();
        let id = etcd.grant(self.ttl).await?;
        let mut record = self.record.lock().clone();
        record.lease = id;
        // Twice at most: once more after replacing an earlier incarnation.
        for _ in 0..2 {
            let answer = etcd
                .txn(
                    &format!("the registration of node {}", record.node),
                    pb::TxnRequest {
                        compare: vec![exists(&key, false)],
                        success: vec![put(&key, json(&record), id)],
                        failure: vec![read(&key)],
                    },
                )
                .await?;
            if answer.succeeded {
                self.registered(id, sent);
                return Ok(());
            }
            let Some(kv) = read_in(&answer, 0) else {
                continue;
            };
            let other: NodeRecord = parse(kv)?;
            if other.lease == id {
                // An earlier attempt of this very call put it (its answer
                // was lost).
                continue;
            }
            if other.site_id != record.site_id {
                let _ = etcd.revoke(id).await;
                return Err(ClusterError::NodeTaken {
                    node: record.node.clone(),
                    address: other.advertise,
                });
            }
            // This node's earlier incarnation: the site directory is ours
            // (its lock is held), so that process is gone. Replace it,
            // if the record is still the one read.
            tracing::info!(node = %record.node, old_lease = other.lease, "replacing this node's earlier incarnation");
            let replaced = etcd
                .txn(
                    &format!("the replacement of node {}", record.node),
                    pb::TxnRequest {
                        compare: vec![unchanged_since(&key, kv.mod_revision)],
                        success: vec![put(&key, json(&record), id)],
                        failure: vec![],
                    },
                )
                .await?;
            let _ = etcd.revoke(other.lease).await;
            if replaced.succeeded {
                self.registered(id, sent);
                return Ok(());
            }
        }
        let _ = etcd.revoke(id).await;
        Err(ClusterError::NoLease {
            node: record.node.clone(),
            why: "the node key kept changing while registering".into(),
        })
    }

    /// Records the new lease `id`, granted by a request sent at `sent`.
    fn registered(&self, id: i64, sent: Instant) {
        let mut s = self.state.lock();
        if s.left {
            return;
        }
        s.id = id;
        s.generation += 1;
        s.valid_until = Some(sent + self.ttl.saturating_sub(self.margin));
        s.last_error = None;
        self.generations.send_replace(s.generation);
    }

    /// Renews the lease once (or joins again with a new one if it ran
    /// out); how long to wait before the next attempt.
    async fn renew_once(&self) -> Duration {
        let id = self.state.lock().id;
        let sent = Instant::now();
        match self.directory.etcd().keep_alive(id).await {
            Ok(ttl) if ttl > 0 => {
                let mut s = self.state.lock();
                if s.id == id && !s.left {
                    let until = sent + Duration::from_secs(ttl as u64).saturating_sub(self.margin);
                    s.valid_until = Some(s.valid_until.map_or(until, |u| u.max(until)));
                    s.renewals += 1;
                    s.last_error = None;
                }
                self.ttl / 3
            }
            Ok(_) => {
                // etcd expired the lease: the node key is gone, and other
                // nodes may have taken stores over. Join again.
                tracing::warn!(node = %self.node, lease = id, "lease ran out; joining again");
                self.state.lock().valid_until = None;
                match self.register().await {
                    Ok(()) => self.ttl / 3,
                    Err(e) => {
                        self.state.lock().last_error = Some(e.to_string());
                        Duration::from_millis(500)
                    }
                }
            }
            Err(e) => {
                tracing::warn!(node = %self.node, error = %e, "lease renewal failed");
                self.state.lock().last_error = Some(e.to_string());
                Duration::from_millis(500)
            }
        }
    }

    /// Whether the lease surely lasts now by this node's clock, and its
    /// generation.
    pub fn valid(&self) -> (bool, u64) {
        let s = self.state.lock();
        let valid = s.valid_until.is_some_and(|u| Instant::now() < u);
        (valid, s.generation)
    }

    /// Watches the lease's generation (it changes when the node joins
    /// again after its lease ran out).
    pub fn generations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generations.subscribe()
    }

    /// What the node knows of its lease.
    pub fn view(&self) -> LeaseView {
        let s = self.state.lock();
        LeaseView {
            node: self.node.clone(),
            lease: format!("{:x}", s.id),
            generation: s.generation,
            valid_for_ms: s.valid_until.map_or(0, |u| {
                u.saturating_duration_since(Instant::now()).as_millis() as u64
            }),
            renewals: s.renewals,
            last_error: s.last_error.clone(),
        }
    }

    /// Stops renewing and revokes the lease: the node key goes at once,
    /// and the node writes nothing more.
    pub async fn leave(&self) -> Result<()> {
        if let Some(h) = self.renewer.lock().take() {
            h.abort();
        }
        let id = {
            let mut s = self.state.lock();
            s.valid_until = None;
            s.left = true;
            s.id
        };
        self.directory.etcd().revoke(id).await
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        if let Some(h) = self.renewer.get_mut().take() {
            h.abort();
        }
    }
}
