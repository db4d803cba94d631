//! The cluster layer's errors.

/// What went wrong in the cluster layer, with what input.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No etcd member answered in time (or each answered with an error).
    #[error("etcd ({endpoints}) did not answer {op}: {detail}")]
    Unreachable {
        /// What was asked ("a lease", "the store directory").
        op: String,
        /// The members tried.
        endpoints: String,
        /// The last member's error.
        detail: String,
    },

    /// Another live node already goes by this node's name.
    #[error("the node name '{node}' is taken by a live node (at {address})")]
    NodeTaken {
        /// The name.
        node: String,
        /// Where the live node says it is.
        address: String,
    },

    /// The store belongs to another node.
    #[error("store {store} is owned by node {node} (epoch {epoch})")]
    OwnedElsewhere {
        /// The store.
        store: String,
        /// Its owner.
        node: String,
        /// The owner's epoch.
        epoch: u64,
    },

    /// A forced takeover while the owner still holds its lease.
    #[error(
        "store {store}'s owner {node} is alive (its lease holds): a takeover is refused; \
         move the store instead"
    )]
    OwnerAlive {
        /// The store.
        store: String,
        /// Its live owner.
        node: String,
    },

    /// The login belongs to an account made on another node.
    #[error("the login {address} is taken (its account was made on node {node})")]
    LoginTaken {
        /// The login.
        address: String,
        /// Where its account was made.
        node: String,
    },

    /// The store has no owner record.
    #[error("store {0} is not in the directory")]
    UnknownStore(String),

    /// A node that is not alive (no liveness key) cannot take a store.
    #[error("node {0} is not alive in the cluster")]
    NodeDown(String),

    /// The owner record changed between reading and writing it.
    #[error("store {store}'s owner changed meanwhile (now node {node}, epoch {epoch})")]
    Changed {
        /// The store.
        store: String,
        /// The owner now.
        node: String,
        /// Its epoch now.
        epoch: u64,
    },

    /// This node's lease ran out (or was never granted): it may not write
    /// nor change ownership until it has a new one.
    #[error("node {node} holds no valid lease: {why}")]
    NoLease {
        /// This node.
        node: String,
        /// Why.
        why: String,
    },

    /// Another node refused a request (its status and its words).
    #[error("{node} answered {status}: {said}")]
    Refused {
        /// The node's base URL.
        node: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        said: String,
    },

    /// A record in etcd that does not parse.
    #[error("the record under {key} cannot be read: {detail}")]
    BadRecord {
        /// Its key.
        key: String,
        /// What is wrong.
        detail: String,
    },

    /// A setting that cannot be used.
    #[error("cluster configuration: {0}")]
    Config(String),
}

/// The cluster layer's results.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
