//! Moving a user's store to another node, while the cluster serves.
//!
//! The store's owner runs the move (`POST /cluster/move` on every node's
//! web front, vouched for with the cluster's secret, see `peers.rs`):
//!
//! 1. **Quiesce**: the owner stops committing to the store (its fence
//!    refuses from now on: a request answered 503 is tried again by its
//!    client) and closes it, after the transactions already queued.
//! 2. **Copy**: the closed file is a consistent snapshot; it goes to the
//!    target (`POST /cluster/adopt`) with its SHA-256 and what the site
//!    store holds of the account (password hash, logins, token hashes,
//!    products).
//! 3. **Verify**: the target checks the SHA-256 and SQLite's integrity
//!    check, puts the file in place and makes the account; it serves
//!    nothing of it yet (the directory still names the owner).
//! 4. **Flip**: the owner gives the store to the target in the directory,
//!    with the next epoch. From then on requests route to the target.
//! 5. **Retire**: the old owner removes the account and sets the file
//!    aside under `moved/`.
//!
//! A failure before the flip takes the store back (the target discards
//! its copy); nothing acknowledged is lost, because nothing commits
//! between the quiesce and the flip.

use std::path::Path;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mantle_site::{AccountExport, Site};
use mantle_web::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::peers::{MAX_PEER_JSON, from_peer, peer_json};
use crate::routing::hex;
use crate::{ClusterError, Owned, Result};

/// Where a node asks a store's owner to move it.
pub const MOVE_PATH: &str = "/cluster/move";
/// Where the owner hands a store to its new node.
pub const ADOPT_PATH: &str = "/cluster/adopt";
/// Where the owner tells the target to drop a copy it will not get.
pub const DISCARD_PATH: &str = "/cluster/discard";
/// Largest store moved (its file, whole in one request).
const MAX_STORE_BYTES: usize = 4 << 30;

/// A move asked of a store's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveRequest {
    /// The store (`users/…`).
    pub store: String,
    /// The node to move it to.
    pub to: String,
}

/// A move done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moved {
    /// The store.
    pub store: String,
    /// Its old owner.
    pub from: String,
    /// Its new owner.
    pub to: String,
    /// Its new epoch.
    pub epoch: u64,
    /// The file's size.
    pub bytes: u64,
    /// How long the store could not be written, in milliseconds.
    pub paused_ms: u64,
}

/// What travels with a store's file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) store: String,
    pub(crate) from: String,
    pub(crate) sha256: String,
    pub(crate) account: AccountExport,
}

/// The file a store name is kept in, relative to the site directory.
fn relative_file(store: &str) -> String {
    format!("{store}.store")
}

/// The routes of moves on a node's web front (see [`crate::peers`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(MOVE_PATH, post(move_here))
        .route(ADOPT_PATH, post(adopt))
        .route(DISCARD_PATH, post(discard))
}

fn refused(e: ClusterError) -> ApiError {
    let status = match &e {
        ClusterError::OwnedElsewhere { .. }
        | ClusterError::Changed { .. }
        | ClusterError::UnknownStore(_)
        | ClusterError::NodeDown(_) => StatusCode::CONFLICT,
        ClusterError::Config(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.to_string())
}

async fn move_here(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> std::result::Result<Json<Moved>, ApiError> {
    let (node, body) = from_peer(&state, req, MOVE_PATH, MAX_PEER_JSON).await?;
    let request: MoveRequest = peer_json(&body)?;
    move_out(&state.site, &node, &request.store, &request.to)
        .await
        .map(Json)
        .map_err(refused)
}

/// Moves `store`, owned here, to node `to` (see the module docs).
pub async fn move_out(site: &Site, node: &crate::Node, store: &str, to: &str) -> Result<Moved> {
    let me = node.lease().node().to_string();
    if !store.starts_with("users/") {
        return Err(ClusterError::Config(format!(
            "only user stores move (not {store})"
        )));
    }
    if to == me {
        return Err(ClusterError::Config(format!("{store} is on {me} already")));
    }
    let directory = node.lease().directory();
    let owned = directory
        .owner(store)
        .await?
        .ok_or_else(|| ClusterError::UnknownStore(store.to_string()))?;
    if owned.owner.node != me {
        return Err(ClusterError::OwnedElsewhere {
            store: store.to_string(),
            node: owned.owner.node,
            epoch: owned.owner.epoch,
        });
    }
    let target = directory
        .node(to)
        .await?
        .filter(|n| !n.http.is_empty())
        .ok_or_else(|| ClusterError::NodeDown(to.to_string()))?;
    let relative = relative_file(store);
    let path = site.dir().join(&relative);
    let ownership = node.fence();

    // 1. Quiesce: nothing commits from here until the flip.
    let paused = Instant::now();
    ownership.quiesce(&path);
    if let Some(open) = site.stores().cache().remove(&path) {
        open.close().await;
    }
    let handed = hand_over(site, node, store, &relative, &path, &target.http).await;
    let bytes = match handed {
        Ok(bytes) => bytes,
        Err(e) => {
            take_back(&ownership, store, &path).await;
            return Err(e);
        }
    };
    // 4. Flip.
    let moved: Owned = match directory.transfer(&owned, to).await {
        Ok(m) => m,
        Err(e) => {
            let _ = node.peer().discard(&target.http, store).await;
            take_back(&ownership, store, &path).await;
            return Err(e);
        }
    };
    let paused_ms = paused.elapsed().as_millis() as u64;
    node.routing().forget(store);
    // 5. Retire.
    if let Err(e) = site.accounts().retire(&relative).await {
        tracing::error!(store, error = %e, "moved, but could not retire the old copy");
    }
    ownership.moved(&path);
    tracing::info!(
        store,
        to,
        epoch = moved.owner.epoch,
        bytes,
        paused_ms,
        "store moved"
    );
    Ok(Moved {
        store: store.to_string(),
        from: me,
        to: to.to_string(),
        epoch: moved.owner.epoch,
        bytes,
        paused_ms,
    })
}

/// Steps 2 and 3: the file and the account to the target, which verifies
/// them. The file's size.
async fn hand_over(
    site: &Site,
    node: &crate::Node,
    store: &str,
    relative: &str,
    path: &Path,
    target: &str,
) -> Result<u64> {
    let account = site
        .accounts()
        .export(relative)
        .await
        .map_err(|e| ClusterError::Config(format!("cannot describe {store}'s account: {e}")))?;
    let file = tokio::fs::read(path)
        .await
        .map_err(|e| ClusterError::Config(format!("cannot read {}: {e}", path.display())))?;
    node.peer()
        .offer_store(target, store, account, &file)
        .await?;
    Ok(file.len() as u64)
}

/// Takes a store back after a failed move: it may commit here again.
async fn take_back(ownership: &crate::Ownership, store: &str, path: &Path) {
    ownership.moved(path);
    if let Err(e) = ownership.acquire(store, path).await {
        tracing::error!(store, error = %e, "a failed move could not take its store back");
    }
}

async fn adopt(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let (node, body) = from_peer(&state, req, ADOPT_PATH, MAX_STORE_BYTES).await?;
    let bad = |what: &str| ApiError::new(StatusCode::BAD_REQUEST, what.to_string());
    let len = u32::from_be_bytes(
        body.get(..4)
            .ok_or_else(|| bad("no manifest"))?
            .try_into()
            .expect("four bytes"),
    ) as usize;
    let head = body
        .get(4..4 + len)
        .ok_or_else(|| bad("manifest cut off"))?;
    let manifest: Manifest =
        serde_json::from_slice(head).map_err(|e| bad(&format!("manifest: {e}")))?;
    let file = &body[4 + len..];
    if hex(&Sha256::digest(file)) != manifest.sha256 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: the file's SHA-256 does not match", manifest.store),
        ));
    }
    if !manifest.store.starts_with("users/") || manifest.store.contains("..") {
        return Err(bad("only user stores move"));
    }
    let site = &state.site;
    let relative = relative_file(&manifest.store);
    let path = site.dir().join(&relative);
    if path.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{} exists on this node", manifest.store),
        ));
    }
    let arriving = path.with_extension("store.arriving");
    let write = |p: &Path| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(p)?;
        f.write_all(file)?;
        f.sync_all()
    };
    write(&arriving).map_err(|e| ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
    let problems = mantle_store::check(&arriving, None);
    match problems {
        Ok(p) if p.is_empty() => {}
        Ok(p) => {
            let _ = std::fs::remove_file(&arriving);
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}: the integrity check failed: {p:?}", manifest.store),
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&arriving);
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
            ));
        }
    }
    std::fs::rename(&arriving, &path)
        .map_err(|e| ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
    if let Err(e) = site.accounts().import(manifest.account).await {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    node.routing().forget(&manifest.store);
    tracing::info!(store = %manifest.store, from = %manifest.from, bytes = file.len(), "store arrived");
    Ok(Json(serde_json::json!({ "store": manifest.store })))
}

async fn discard(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> std::result::Result<Json<serde_json::Value>, ApiError> {
    let (_, body) = from_peer(&state, req, DISCARD_PATH, MAX_PEER_JSON).await?;
    let request: serde_json::Value = peer_json(&body)?;
    let store = request["store"].as_str().unwrap_or_default();
    if !store.starts_with("users/") || store.contains("..") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "only user stores move",
        ));
    }
    // Still owned elsewhere: nothing of it was served here.
    state
        .site
        .accounts()
        .retire(&relative_file(store))
        .await
        .map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({ "discarded": store })))
}
