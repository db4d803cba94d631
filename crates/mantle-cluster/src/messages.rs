//! Interstore messages between nodes: the site's [`RemoteStores`] in a
//! cluster, and the routes that take other nodes' batches.
//!
//! A batch travels from the sender's node to the recipient store's owner
//! over the link between the two nodes (an AMP connection, see
//! `links.rs`; a `Deliver` request), with the sending store's name and
//! epoch. The receiving node refuses a batch whose sender is not, in the
//! directory, owned by the sending node at that epoch (a paused or
//! moved-away node's late batch), then applies it (the site's receipts
//! make a batch carried twice take effect once) and answers after its
//! commit. Answers travel back the same way (`Answers`). To a node without
//! an AMP listener, both go as vouched HTTP requests instead
//! (`POST /cluster/deliver`, `POST /cluster/answers`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mantle_site::{Located, RemoteFuture, RemoteStores, Site};
use mantle_web::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::peers::{MAX_PEER_JSON, from_peer, peer_json};
use crate::{ClusterError, Node, Owner};
use mantle_web::Route;
use parking_lot::Mutex;

/// Where batches of messages arrive.
pub const DELIVER_PATH: &str = "/cluster/deliver";
/// Where answers arrive.
pub const ANSWERS_PATH: &str = "/cluster/answers";

/// A batch, or answers, as they travel between nodes.
#[derive(Debug, Serialize, Deserialize)]
struct Carried {
    /// The sending store's name.
    from: String,
    /// The sending node.
    from_node: String,
    /// The sending store's epoch there.
    from_epoch: u64,
    /// The receiving store's name.
    to: String,
    /// The batch or the answers (the site's own shape).
    body: Value,
}

/// The other nodes' stores, for this node's messaging.
pub struct RemoteMessages {
    node: Arc<Node>,
    domain: String,
    dir: PathBuf,
}

impl std::fmt::Debug for RemoteMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteMessages")
            .field("node", &self.node.lease().node())
            .finish()
    }
}

impl RemoteMessages {
    /// Messaging across the cluster for `node`, serving the site in `dir`
    /// whose domain is `domain`.
    pub fn new(node: Arc<Node>, dir: &std::path::Path, domain: &str) -> Self {
        Self {
            node,
            domain: domain.to_string(),
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        }
    }

    fn me(&self) -> &str {
        self.node.lease().node()
    }

    /// Where the store named `store` lives, seen from here (what the
    /// directory said within the last second: a batch sent to a node that
    /// just gave the store away is refused there, and sent again).
    async fn locate_store(&self, store: &str) -> Located {
        match self.node.routing().owner_of(store).await {
            Ok(Some(node)) if *node != *self.me() => Located::Elsewhere(store.to_string()),
            // The directory says here, but no store here answers: it is
            // arriving, or just left. Not for good.
            Ok(Some(_)) => Located::Unavailable(format!("{store} is not open here yet")),
            Ok(None) => Located::Nowhere,
            Err(e) => Located::Unavailable(e.to_string()),
        }
    }

    /// Carries `body` (a batch or answers) from `from` to `to`'s owner.
    async fn carry(&self, kind: Kind, from: &str, to: &str, body: Value) -> Result<Value, String> {
        let file = mantle_site::node_store_file(self.me(), from)
            .map(|f| self.dir.join(f))
            .ok_or_else(|| format!("{from} is no store of this node"))?;
        let held = self
            .node
            .fence()
            .held(&file)
            .ok_or_else(|| format!("this node does not hold {from} now"))?;
        let carried = Carried {
            from: from.to_string(),
            from_node: self.me().to_string(),
            from_epoch: held.owner.epoch,
            to: to.to_string(),
            body,
        };
        // Where requests for it go (remembered for a second: a batch sent
        // to a node that just gave the store away is refused there, and
        // sent again): over the link to its node, or over HTTP to a node
        // without an AMP listener.
        let routing = self.node.routing();
        match routing.amp_route_store(to).await {
            Route::There(addr) => {
                let json = serde_json::to_vec(&carried).expect("a batch serialises");
                let tls = self.node.amp_tls();
                let answer = self
                    .node
                    .links()
                    .call((&routing, tls), self.me(), &addr, kind.command(), &json)
                    .await?;
                return serde_json::from_slice(&answer)
                    .map_err(|e| format!("{addr} answered what is not JSON: {e}"));
            }
            Route::Here => return Err(format!("{to} is on this node now")),
            Route::Unavailable(_) => {}
        }
        let target = match routing.route_store(to).await {
            Route::There(base) => base,
            Route::Here => return Err(format!("{to} is on this node now")),
            Route::Unavailable(why) => return Err(why),
        };
        self.node
            .peer()
            .call(&target, kind.path(), &carried)
            .await
            .map_err(|e| e.to_string())
    }
}

/// What travels: a batch of messages, or answers.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Batch,
    Answers,
}

impl Kind {
    fn command(self) -> &'static str {
        match self {
            Kind::Batch => crate::links::DELIVER,
            Kind::Answers => crate::links::ANSWERS,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Batch => DELIVER_PATH,
            Kind::Answers => ANSWERS_PATH,
        }
    }
}

impl RemoteStores for RemoteMessages {
    fn node(&self) -> &str {
        self.me()
    }

    fn locate<'a>(&'a self, address: &'a str) -> RemoteFuture<'a, Located> {
        Box::pin(async move {
            if let Some(store) = address.strip_prefix("store:") {
                return self.locate_store(store).await;
            }
            let Ok(login) = mantle_site::Address::parse(address, &self.domain) else {
                return Located::Nowhere;
            };
            match self.node.routing().store_of(&login.to_string()).await {
                Ok(Some(store)) => match self.locate_store(&store).await {
                    Located::Nowhere => {
                        Located::Unavailable(format!("{address}'s store is not claimed yet"))
                    }
                    other => other,
                },
                Ok(None) => Located::Nowhere,
                Err(e) => Located::Unavailable(e.to_string()),
            }
        })
    }

    fn deliver<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        batch: Value,
    ) -> RemoteFuture<'a, Result<Value, String>> {
        Box::pin(self.carry(Kind::Batch, from, to, batch))
    }

    fn answer<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        answers: Value,
    ) -> RemoteFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.carry(Kind::Answers, from, to, answers)
                .await
                .map(|_| ())
        })
    }
}

/// The routes other nodes carry batches and answers to.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(DELIVER_PATH, post(take_batch))
        .route(ANSWERS_PATH, post(take_answers))
}

/// Epochs of senders checked lately, by store: the highest seen, its
/// node, and when it was read from the directory.
#[derive(Default)]
pub(crate) struct SenderEpochs(Mutex<HashMap<String, (Owner, Instant)>>);

/// How long a sender's checked epoch is taken on trust.
const EPOCH_TRUST: Duration = Duration::from_secs(1);

/// Checks that `c.from` is owned by `c.from_node` at `c.from_epoch`: an
/// epoch below the highest seen for the store is refused at once; the
/// current one is read from the directory, at most once a second. (A
/// batch at an epoch that ended less than a second ago was committed
/// before it ended: the old owner's fence refuses commits once it gives
/// a store away.)
async fn current_sender(node: &Node, c: &Carried) -> Result<(), ApiError> {
    let stale = |now: Option<&Owner>| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "stale epoch: {} is not {}'s at epoch {} (the directory says {:?})",
                c.from, c.from_node, c.from_epoch, now
            ),
        )
    };
    if let Some((seen, at)) = node.sender_epochs().0.lock().get(&c.from) {
        if c.from_epoch < seen.epoch {
            return Err(stale(Some(seen)));
        }
        if c.from_epoch == seen.epoch && seen.node == c.from_node && at.elapsed() < EPOCH_TRUST {
            return Ok(());
        }
    }
    let owner = node
        .lease()
        .directory()
        .owner(&c.from)
        .await
        .map_err(|e: ClusterError| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if let Some(o) = &owner {
        let mut seen = node.sender_epochs().0.lock();
        let keep = seen
            .get(&c.from)
            .is_none_or(|(s, _)| s.epoch <= o.owner.epoch);
        if keep {
            seen.insert(c.from.clone(), (o.owner.clone(), Instant::now()));
        }
    }
    match owner {
        Some(o) if o.owner.node == c.from_node && o.owner.epoch == c.from_epoch => Ok(()),
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "stale epoch: {} is not {}'s at epoch {} (the directory says {:?})",
                c.from,
                c.from_node,
                c.from_epoch,
                other.map(|o| o.owner)
            ),
        )),
    }
}

/// Takes what another node carried here: checks its sender's epoch, then
/// applies the batch (its outcomes) or the answers.
async fn take(node: &Node, site: &Site, kind: Kind, c: Carried) -> Result<Value, ApiError> {
    current_sender(node, &c).await?;
    match kind {
        Kind::Batch => Ok(site.messaging().apply_remote(&c.to, c.body).await?),
        Kind::Answers => {
            site.messaging().answer_remote(&c.to, c.body).await?;
            Ok(Value::Null)
        }
    }
}

/// A request that came over a link (`command`, with its JSON document):
/// the JSON answer, or an error code (see `links::codes`) and why.
pub(crate) async fn receive(
    node: &Node,
    site: &Site,
    command: &[u8],
    json: &[u8],
) -> Result<Vec<u8>, (&'static str, String)> {
    use crate::links::codes;
    let kind = match command {
        c if c == crate::links::DELIVER.as_bytes() => Kind::Batch,
        c if c == crate::links::ANSWERS.as_bytes() => Kind::Answers,
        other => {
            let other = String::from_utf8_lossy(other);
            return Err((codes::REFUSED, format!("no such command {other}")));
        }
    };
    let c: Carried = serde_json::from_slice(json).map_err(|e| (codes::REFUSED, e.to_string()))?;
    match take(node, site, kind, c).await {
        Ok(answer) => Ok(serde_json::to_vec(&answer).expect("JSON serialises")),
        Err(e) => {
            let code = match e.status {
                StatusCode::CONFLICT => codes::STALE,
                s if s.is_server_error() => codes::UNAVAILABLE,
                _ => codes::REFUSED,
            };
            Err((code, e.message))
        }
    }
}

async fn take_batch(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let (node, body) = from_peer(&state, req, DELIVER_PATH, MAX_PEER_JSON).await?;
    take(&node, &state.site, Kind::Batch, peer_json(&body)?)
        .await
        .map(Json)
}

async fn take_answers(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let (node, body) = from_peer(&state, req, ANSWERS_PATH, MAX_PEER_JSON).await?;
    take(&node, &state.site, Kind::Answers, peer_json(&body)?)
        .await
        .map(Json)
}
