//! Messages to and from stores on other nodes, when several sites serve
//! as one (a cluster): the same guarantees as between two stores of one
//! site, with the node-to-node transport left to a layer above
//! ([`RemoteStores`], given with
//! [`SiteBuilder::remote_stores`](crate::SiteBuilder::remote_stores)).
//!
//! A message whose recipient no store here answers to is located among
//! the other nodes; if one holds it, the batch goes there and is applied
//! by [`Messaging::apply_remote`] in one transaction of the recipient,
//! with the same receipts (so a batch carried twice takes effect once).
//! The sender's outbox keeps each message until the recipient's node
//! answers *after* its commit. A store sending across nodes is known
//! there as `store:NAME` (its name among the nodes, see
//! [`node_store_name`](crate::node_store_name): a user store's, or a
//! node's own site store's or app store's), which is where answers, and
//! the recipient's replies, find it wherever it lives by then.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::delivery::{Applied, Sender};
use super::{Answer, Messaging, Outgoing, Refusal};
use crate::{Result, SiteError};

/// What a [`RemoteStores`] hands back.
pub type RemoteFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a message address leads beyond this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// To the store of this name, on another node.
    Elsewhere(String),
    /// Nowhere: no node holds it.
    Nowhere,
    /// Cannot be told now (try again).
    Unavailable(String),
}

/// The other nodes' stores, for messaging (see the module docs).
pub trait RemoteStores: Send + Sync + 'static {
    /// This node's name among the nodes (its site store is `sites/NODE`
    /// there, its app stores `apps/NODE/NAME`: see
    /// [`node_store_name`](crate::node_store_name)).
    fn node(&self) -> &str;
    /// The store that `address` (a login, or `store:NAME`) names on
    /// another node.
    fn locate<'a>(&'a self, address: &'a str) -> RemoteFuture<'a, Located>;
    /// Carries `batch` from this node's store `from` to the store `to` on
    /// its node, which applies it with [`Messaging::apply_remote`]; what
    /// that returned. `Err`: not carried, try again.
    fn deliver<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        batch: Value,
    ) -> RemoteFuture<'a, std::result::Result<Value, String>>;
    /// Carries `answers` from this node's store `from` to the store `to`
    /// on its node ([`Messaging::answer_remote`]).
    fn answer<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        answers: Value,
    ) -> RemoteFuture<'a, std::result::Result<(), String>>;
}

/// A batch as it travels.
#[derive(Serialize, Deserialize)]
struct Batch {
    /// The sending store's name among the nodes.
    from_store: String,
    /// The sending account's primary login.
    from_login: Option<String>,
    msgs: Vec<Outgoing>,
}

/// One message's outcome as it travels back.
#[derive(Serialize, Deserialize)]
enum Outcome {
    Done,
    Refused(Refusal),
    Later(String),
}

impl From<Applied> for Outcome {
    fn from(a: Applied) -> Self {
        match a {
            Applied::Done => Outcome::Done,
            Applied::Refused(r) => Outcome::Refused(r),
            Applied::Later(s) => Outcome::Later(s),
        }
    }
}

impl From<Outcome> for Applied {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Done => Applied::Done,
            Outcome::Refused(r) => Applied::Refused(r),
            Outcome::Later(s) => Applied::Later(s),
        }
    }
}

/// The message address of the store named `name` among the nodes.
pub(crate) fn store_address(name: &str) -> String {
    format!("store:{name}")
}

impl Messaging {
    /// Applies a batch another node carried to this node's store `to`
    /// (see the module docs); the outcomes, to carry back.
    pub async fn apply_remote(&self, to: &str, batch: Value) -> Result<Value> {
        let batch: Batch = serde_json::from_value(batch)
            .map_err(|e| SiteError::InvalidRecipient(format!("a batch for {to}: {e}")))?;
        let handlers = self.0.handlers.clone();
        let from = Sender {
            address: store_address(&batch.from_store),
            login: batch.from_login,
            store: Some(batch.from_store),
        };
        let applied = super::delivery::apply_at_recipient(
            self,
            &handlers,
            store_address(to),
            from,
            batch.msgs,
            false,
        )
        .await;
        let outcomes: Vec<Outcome> = applied.into_iter().map(Outcome::from).collect();
        Ok(serde_json::to_value(outcomes).expect("outcomes serialise"))
    }

    /// Applies answers another node carried to this node's store `to`.
    pub async fn answer_remote(&self, to: &str, answers: Value) -> Result<()> {
        let answers: Vec<Answer> = serde_json::from_value(answers)
            .map_err(|e| SiteError::InvalidRecipient(format!("answers for {to}: {e}")))?;
        let handlers = self.0.handlers.clone();
        let store = self
            .resolve_sender(&store_address(to))
            .await
            .map_err(|e| SiteError::InvalidRecipient(format!("{to}: {e}")))?;
        store
            .transact(move |tx| {
                for a in &answers {
                    super::delivery::apply_answer(tx, &handlers, a)?;
                }
                mantle_store::ok(())
            })
            .await?;
        Ok(())
    }
}

/// Carries `msgs` from `from` to the store `store` on another node.
pub(super) async fn deliver(
    remote: &dyn RemoteStores,
    from: &Sender,
    store: &str,
    msgs: Vec<Outgoing>,
) -> Vec<Applied> {
    let n = msgs.len();
    let Some(from_store) = from.store.clone() else {
        let refusal = Refusal::new(
            "NOT_ACROSS_NODES",
            format!("{} has no name among the nodes", from.address),
        );
        return (0..n).map(|_| Applied::Refused(refusal.clone())).collect();
    };
    let batch = Batch {
        from_store: from_store.clone(),
        from_login: from.login.clone(),
        msgs,
    };
    let batch = serde_json::to_value(batch).expect("a batch serialises");
    match remote.deliver(&from_store, store, batch).await {
        Ok(outcomes) => match serde_json::from_value::<Vec<Outcome>>(outcomes) {
            Ok(o) if o.len() == n => o.into_iter().map(Applied::from).collect(),
            Ok(o) => (0..n)
                .map(|_| Applied::Later(format!("{} outcomes for {n} messages", o.len())))
                .collect(),
            Err(e) => (0..n)
                .map(|_| Applied::Later(format!("outcomes: {e}")))
                .collect(),
        },
        Err(reason) => (0..n).map(|_| Applied::Later(reason.clone())).collect(),
    }
}

/// Carries `answers` from this node's store `from` back to `store`.
pub(super) async fn answer(
    remote: &dyn RemoteStores,
    from: &str,
    store: &str,
    answers: &[Answer],
) -> std::result::Result<(), String> {
    let answers = serde_json::to_value(answers).expect("answers serialise");
    remote.answer(from, store, answers).await
}
