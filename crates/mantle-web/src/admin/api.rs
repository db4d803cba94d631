//! The admin JSON API, `/api/admin/…`. Every handler takes
//! [`AdminCaller`] first; answers and errors are JSON, errors as
//! `{"error": "…"}` in the site's own words.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AdminCaller, failed, stores};
use crate::api::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

type Answer = Result<Response, ApiError>;

/// `GET /api/admin/accounts`: `{"accounts": [account, …]}`, oldest first.
pub async fn accounts(_: AdminCaller, State(state): State<AppState>) -> Answer {
    let accounts = state.site.accounts().list().await.map_err(failed)?;
    Ok(Json(json!({ "accounts": accounts })).into_response())
}

/// The body of `POST /api/admin/accounts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    login: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/admin/accounts` `{"login", "password", "admin"?}`: 201 and
/// the account, whatever the signup policy.
pub async fn create_account(
    by: AdminCaller,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewAccount>,
) -> Answer {
    let info = state
        .site
        .accounts()
        .create(&new.login, &new.password, new.admin)
        .await
        .map_err(failed)?;
    tracing::info!(%by, login = %info.primary, admin = info.admin, "admin: account created");
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `GET /api/admin/accounts/{login}`: the account.
pub async fn account(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Answer {
    let info = state.site.accounts().get(&login).await.map_err(failed)?;
    Ok(Json(info).into_response())
}

/// Query of `DELETE /api/admin/accounts/{login}`.
#[derive(Deserialize)]
pub struct DeleteParams {
    /// Also delete the user store (all the account's data).
    #[serde(default)]
    purge_store: bool,
}

/// `DELETE /api/admin/accounts/{login}[?purge_store=true]`: deletes the
/// account; `{"store": FILE, "purged": bool}`, the user store's file
/// (kept unless purged).
pub async fn delete_account(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
    Query(p): Query<DeleteParams>,
) -> Answer {
    let file = state
        .site
        .accounts()
        .delete(&login, p.purge_store)
        .await
        .map_err(failed)?;
    tracing::info!(%by, login, purge_store = p.purge_store, "admin: account deleted");
    Ok(Json(json!({ "store": file, "purged": p.purge_store })).into_response())
}

async fn set_disabled(state: AppState, by: AdminCaller, login: &str, disabled: bool) -> Answer {
    state
        .site
        .accounts()
        .set_disabled(login, disabled)
        .await
        .map_err(failed)?;
    tracing::info!(%by, login, disabled, "admin: account switched");
    let info = state.site.accounts().get(login).await.map_err(failed)?;
    Ok(Json(info).into_response())
}

/// `POST /api/admin/accounts/{login}/disable`: its tokens stop working at
/// once; answers the account.
pub async fn disable(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Answer {
    set_disabled(state, by, &login, true).await
}

/// `POST /api/admin/accounts/{login}/enable`: answers the account.
pub async fn enable(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Answer {
    set_disabled(state, by, &login, false).await
}

/// The body of `PUT /api/admin/accounts/{login}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

/// `PUT /api/admin/accounts/{login}/password` `{"password"}`: 204; the
/// account's tokens are revoked.
pub async fn set_password(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
    JsonBody(body): JsonBody<NewPassword>,
) -> Result<StatusCode, ApiError> {
    state
        .site
        .accounts()
        .set_password(&login, &body.password)
        .await
        .map_err(failed)?;
    tracing::info!(%by, login, "admin: password set");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/accounts/{login}/tokens`: `{"tokens": [...]}`, the
/// account's live tokens (never their secrets), newest first.
pub async fn tokens(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Answer {
    let account = state.site.accounts().get(&login).await.map_err(failed)?;
    let tokens = state.site.auth().tokens(account.id).await.map_err(failed)?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `DELETE /api/admin/accounts/{login}/tokens/{id}`: 204; 404 if the
/// account has no such token.
pub async fn revoke_token(
    by: AdminCaller,
    State(state): State<AppState>,
    Path((login, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let account = state.site.accounts().get(&login).await.map_err(failed)?;
    if !state
        .site
        .auth()
        .revoke_token(account.id, id)
        .await
        .map_err(failed)?
    {
        return Err(ApiError::not_found(format!(
            "{} has no token {id}",
            account.primary
        )));
    }
    tracing::info!(%by, login, token = id, "admin: token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/invites`: 201 `{"code"}`, an invite code for signup
/// under the invite policy (shown once; only its hash is kept).
pub async fn invite(by: AdminCaller, State(state): State<AppState>) -> Answer {
    let code = state
        .site
        .accounts()
        .create_invite()
        .await
        .map_err(failed)?;
    tracing::info!(%by, "admin: invite made");
    Ok((StatusCode::CREATED, Json(json!({ "code": code }))).into_response())
}

/// Query of `GET /api/admin/stores`.
#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// Stores described per request at most (each is a file to read).
pub(crate) const MAX_STORES: usize = 1000;

/// `GET /api/admin/stores[?offset=N&limit=N]`: `{"total", "offset",
/// "stores": [...]}`, the site store first, then user and app stores
/// (at most 1000 a request; 100 unless `limit` says otherwise).
pub async fn stores(
    _: AdminCaller,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Answer {
    let limit = page.limit.unwrap_or(100).min(MAX_STORES);
    let (total, stores) = stores::list(&state.site, page.offset, limit)
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "total": total, "offset": page.offset, "stores": stores })).into_response())
}

/// Query of `GET /api/admin/fanout/count/{type}`.
#[derive(Deserialize)]
pub struct FanoutParams {
    /// Stores worked on at once (1 to 64; 8 unless given).
    parallel: Option<usize>,
}

/// `GET /api/admin/fanout/count/{type}[?parallel=N]`: `{"type_name",
/// "items", "stores", "holding"}`, the items of a type (by its stored
/// name) in every user store.
pub async fn count_items(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    Query(p): Query<FanoutParams>,
) -> Answer {
    let parallel = p.parallel.unwrap_or(8).clamp(1, 64);
    let count = state
        .site
        .accounts()
        .count_items(&type_name, parallel, |_, _| {})
        .await
        .map_err(failed)?;
    Ok(Json(count).into_response())
}

/// `GET /api/admin/messages`: `{"messages": [...]}`, every parked message.
pub async fn messages(_: AdminCaller, State(state): State<AppState>) -> Answer {
    let parked = state.site.messaging().parked().await.map_err(failed)?;
    Ok(Json(json!({ "messages": parked })).into_response())
}

/// The body of the parked message actions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    id: String,
}

/// `POST /api/admin/messages/retry` `{"id"}`: puts a parked message back
/// in line; 409 if its sender was already answered with a refusal.
pub async fn retry_message(
    by: AdminCaller,
    State(state): State<AppState>,
    JsonBody(m): JsonBody<MessageRef>,
) -> Answer {
    state.site.messaging().retry(&m.id).await.map_err(failed)?;
    tracing::info!(%by, id = m.id, "admin: parked message retried");
    Ok(Json(json!({ "id": m.id })).into_response())
}

/// `POST /api/admin/messages/drop` `{"id"}`: deletes a parked message.
pub async fn drop_message(
    by: AdminCaller,
    State(state): State<AppState>,
    JsonBody(m): JsonBody<MessageRef>,
) -> Answer {
    state
        .site
        .messaging()
        .discard(&m.id)
        .await
        .map_err(failed)?;
    tracing::info!(%by, id = m.id, "admin: parked message dropped");
    Ok(Json(json!({ "id": m.id })).into_response())
}
