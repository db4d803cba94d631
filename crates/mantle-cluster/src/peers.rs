//! Between nodes: the routes a node's web front answers for the other
//! nodes, the vouchers they are asked with, and [`Peer`], which asks.
//!
//! Every such request carries [`NODE_HEADER`]: a voucher (see
//! `routing.rs`) for its method and path under the cluster's shared
//! secret. It is checked before the request's body is read, so a stranger
//! can make a node hold nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use mantle_site::{AccountExport, Site};
use mantle_web::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::moving::{ADOPT_PATH, DISCARD_PATH, Manifest};
use crate::routing::hex;
use crate::{ClusterError, Result};

/// Where a node is asked to count a type's items in its user stores
/// (`mantle fanout` across the cluster).
pub const FANOUT_COUNT_PATH: &str = "/cluster/fanout/count";
/// The header carrying a node's voucher on these requests.
pub const NODE_HEADER: &str = "x-mantle-node";

/// The cluster's routes on a node's web front: moves, messages, counts.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(FANOUT_COUNT_PATH, post(fanout_count))
        .merge(crate::moving::routes())
        .merge(crate::messages::routes())
}

/// The node's cluster state, for the routes (a site extension).
#[derive(Default, Clone)]
pub struct ClusterHandle(pub Option<std::sync::Arc<crate::Node>>);

pub(crate) fn node_of(site: &Site) -> std::result::Result<std::sync::Arc<crate::Node>, ApiError> {
    site.extension::<ClusterHandle>()
        .and_then(|h| h.0.clone())
        .ok_or_else(|| ApiError::not_found("not a cluster node"))
}

/// Checks a peer's voucher for `path`.
fn vouched(
    node: &crate::Node,
    headers: &HeaderMap,
    path: &str,
) -> std::result::Result<(), ApiError> {
    let ok = headers
        .get(NODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| mantle_web::Forwarding::verify(&*node.routing(), v, "POST", path))
        .is_some();
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only a node of this cluster may ask this",
        ))
    }
}

/// Largest body of a peer's JSON request (a batch of messages).
pub(crate) const MAX_PEER_JSON: usize = 64 << 20;

/// A peer's request to `path`: the site's node, and the body (up to
/// `limit` bytes), read only once the voucher checks out, so that a
/// stranger cannot make the node hold a large body.
pub(crate) async fn from_peer(
    state: &AppState,
    req: axum::extract::Request,
    path: &str,
    limit: usize,
) -> std::result::Result<(std::sync::Arc<crate::Node>, Bytes), ApiError> {
    let node = node_of(&state.site)?;
    vouched(&node, req.headers(), path)?;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?;
    Ok((node, body))
}

/// A peer's JSON request body.
pub(crate) fn peer_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Asks other nodes, as a node of the cluster (or a command run with the
/// cluster's secret): vouched requests.
pub struct Peer<'a> {
    http: &'a reqwest::Client,
    routing: &'a crate::Routing,
    /// Who asks (a node's name, for the logs).
    from: &'a str,
}

impl<'a> Peer<'a> {
    /// Requests sent with `http`, vouched for by `routing`, from `from`.
    pub fn new(http: &'a reqwest::Client, routing: &'a crate::Routing, from: &'a str) -> Self {
        Self {
            http,
            routing,
            from,
        }
    }

    /// Hands `store` (its `file`, and its `account`) to the node at
    /// `base`, which verifies and keeps it, serving nothing of it until
    /// the directory names it the owner.
    pub async fn offer_store(
        &self,
        base: &str,
        store: &str,
        account: AccountExport,
        file: &[u8],
    ) -> Result<()> {
        let manifest = Manifest {
            store: store.to_string(),
            from: self.from.to_string(),
            sha256: hex(&Sha256::digest(file)),
            account,
        };
        let head = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let mut body = Vec::with_capacity(4 + head.len() + file.len());
        body.extend_from_slice(&(head.len() as u32).to_be_bytes());
        body.extend_from_slice(&head);
        body.extend_from_slice(file);
        self.send(base, ADOPT_PATH, body).await.map(|_| ())
    }

    /// Tells the node at `base` to drop its copy of `store` (it will not
    /// own it).
    pub async fn discard(&self, base: &str, store: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call(base, DISCARD_PATH, &serde_json::json!({ "store": store }))
            .await?;
        Ok(())
    }

    /// A vouched POST of `body` as JSON to the node at `base`; its JSON
    /// answer.
    pub async fn call<R: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<R> {
        let body = serde_json::to_vec(body).expect("a request serialises");
        let answer = self.send(base, path, body).await?;
        serde_json::from_slice(&answer).map_err(|e| ClusterError::BadRecord {
            key: format!("{base}{path}"),
            detail: format!("the answer: {e}"),
        })
    }

    /// A vouched POST; the answer's body, or an error unless the node
    /// answers 2xx (with the node's own words).
    async fn send(&self, base: &str, path: &str, body: Vec<u8>) -> Result<Bytes> {
        let voucher = mantle_web::Forwarding::vouch(
            self.routing,
            std::net::IpAddr::from([127, 0, 0, 1]),
            "POST",
            path,
        );
        let answer = self
            .http
            .post(format!("{base}{path}"))
            .header(NODE_HEADER, voucher)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ClusterError::NodeDown(format!("{base}: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            return answer
                .bytes()
                .await
                .map_err(|e| ClusterError::NodeDown(format!("{base}: the answer was cut: {e}")));
        }
        let text = answer.text().await.unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        Err(ClusterError::Refused {
            node: base.to_string(),
            status: status.as_u16(),
            said,
        })
    }
}

/// A count asked of every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutCount {
    /// The item type's stored name.
    pub type_name: String,
    /// Stores worked on at once.
    pub parallel: usize,
}

async fn fanout_count(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> std::result::Result<Json<mantle_site::ItemCount>, ApiError> {
    let (_, body) = from_peer(&state, req, FANOUT_COUNT_PATH, MAX_PEER_JSON).await?;
    let ask: FanoutCount = peer_json(&body)?;
    let count = state
        .site
        .accounts()
        .count_items(&ask.type_name, ask.parallel.clamp(1, 64), |_, _| {})
        .await?;
    Ok(Json(count))
}
