//! The ledger's HTTP JSON endpoints.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mantle_web::{AdminCaller, ApiError, AppState, Authenticated, JsonBody, Member, admin_only};
use serde::Deserialize;
use serde_json::json;

use crate::LedgerError;

/// `GET /api/ledger/balance`, `GET /api/ledger/history`,
/// `POST /api/ledger/transfer` (users given the ledger; 404 to others),
/// `POST /api/ledger/grant` (administrators),
/// and the admin API's ledger routes (`admin_routes` below).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/ledger/balance", get(balance))
        .route("/api/ledger/history", get(history))
        .route("/api/ledger/transfer", post(transfer))
        .route("/api/ledger/grant", post(grant))
        .merge(admin_routes())
}

/// The ledger's part of the admin API (what `mantle ledger` uses while the
/// site is served), for admins and the operator's runtime secret, 404 to
/// anyone else:
///
/// - `POST /api/admin/ledger/grant` `{"login", "amount"}` →
///   `{"login", "balance"}`;
/// - `GET /api/admin/ledger/balance/{login}` → `{"login", "balance"}`.
pub fn admin_routes() -> Router<AppState> {
    admin_only(
        Router::new()
            .route("/api/admin/ledger/grant", post(admin_grant))
            .route("/api/admin/ledger/balance/{login}", get(admin_balance)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminGrantBody {
    login: String,
    amount: i64,
}

async fn admin_grant(
    by: AdminCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<AdminGrantBody>,
) -> Result<Response, ApiError> {
    let balance = crate::grant(&state.site, &body.login, body.amount)
        .await
        .map_err(|e| match e {
            LedgerError::Site(e) => ApiError::for_admin(e),
            e => ApiError::from(e),
        })?;
    tracing::info!(%by, login = body.login, amount = body.amount, "admin: ledger grant");
    Ok(Json(json!({ "login": body.login, "balance": balance })).into_response())
}

async fn admin_balance(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Result<Response, ApiError> {
    let account = state
        .site
        .accounts()
        .get(&login)
        .await
        .map_err(ApiError::for_admin)?;
    let balance = crate::balance(&state.site, account.id)
        .await
        .map_err(ApiError::for_admin)?;
    Ok(Json(json!({ "login": login, "balance": balance })).into_response())
}

async fn balance(
    State(state): State<AppState>,
    Member { avatar: me, .. }: Member,
) -> Result<Response, ApiError> {
    let units = crate::balance(&state.site, me.account).await?;
    Ok(Json(json!({ "balance": units })).into_response())
}

#[derive(Deserialize)]
struct HistoryParams {
    limit: Option<u64>,
}

async fn history(
    State(state): State<AppState>,
    Member { avatar: me, .. }: Member,
    Query(p): Query<HistoryParams>,
) -> Result<Response, ApiError> {
    let entries =
        crate::history(&state.site, me.account, p.limit.unwrap_or(100).min(10_000)).await?;
    let entries: Vec<_> = entries
        .into_iter()
        .map(|e| {
            json!({
                "transfer": e.transfer, "kind": e.kind, "amount": e.amount,
                "counterparty": e.counterparty, "at": e.at.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: String,
    amount: i64,
}

async fn transfer(
    State(state): State<AppState>,
    Member { avatar: me, .. }: Member,
    JsonBody(body): JsonBody<TransferBody>,
) -> Result<Response, ApiError> {
    let (id, balance) = crate::transfer(&state.site, me.account, &body.to, body.amount).await?;
    // Accepted: the debit is committed; the credit follows by message.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "transfer": id, "balance": balance })),
    )
        .into_response())
}

/// The ledger's refusals as HTTP answers: 400 for a request that can never
/// succeed, 409 for one the balance does not allow.
impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::BadAmount(_)
            | LedgerError::ToSelf { .. }
            | LedgerError::NotAnAccount { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            LedgerError::InsufficientFunds { .. } | LedgerError::Overflow { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            LedgerError::Site(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    to: String,
    amount: i64,
}

async fn grant(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    JsonBody(body): JsonBody<GrantBody>,
) -> Result<Response, ApiError> {
    if !me.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only administrators grant credit",
        ));
    }
    let balance = crate::grant(&state.site, &body.to, body.amount).await?;
    Ok(Json(json!({ "to": body.to, "balance": balance })).into_response())
}
