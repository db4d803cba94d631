//! The admin JSON API for offerings and products:
//! `/api/admin/offerings…` and `/api/admin/products…`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AdminCaller, failed};
use crate::api::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

type Answer = Result<Response, ApiError>;

/// `GET /api/admin/offerings`: `{"offerings": [offering, …]}`, each with
/// its `state` (`layer`, `installed`, `available`, `not_in_program`).
pub async fn list(_: AdminCaller, State(state): State<AppState>) -> Answer {
    let offerings = state.site.offerings().list().await.map_err(failed)?;
    Ok(Json(json!({ "offerings": offerings })).into_response())
}

/// `POST /api/admin/offerings/{name}/install`: the offering, installed.
pub async fn install(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Answer {
    let info = state
        .site
        .offerings()
        .install(&name)
        .await
        .map_err(failed)?;
    tracing::info!(%by, offering = %name, "admin: offering installed");
    Ok(Json(info).into_response())
}

/// The query of `POST /api/admin/offerings/{name}/uninstall`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uninstall {
    /// Also delete the offering's data (its items everywhere, its app
    /// store); an offering already uninstalled is only purged.
    #[serde(default)]
    purge: bool,
}

/// `POST /api/admin/offerings/{name}/uninstall[?purge=true]`:
/// `{"deleted": N}` (items deleted: 0 unless purging); without `purge`
/// the offering's data is kept.
pub async fn uninstall(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Uninstall>,
) -> Answer {
    let deleted = state
        .site
        .offerings()
        .remove(&name, q.purge)
        .await
        .map_err(failed)?;
    tracing::info!(%by, offering = %name, purge = q.purge, deleted, "admin: offering uninstalled");
    Ok(Json(json!({ "deleted": deleted })).into_response())
}

/// `GET /api/admin/products`: `{"products": [product, …]}`.
pub async fn products(_: AdminCaller, State(state): State<AppState>) -> Answer {
    let products = state.site.products().list().await.map_err(failed)?;
    Ok(Json(json!({ "products": products })).into_response())
}

/// The body of `POST /api/admin/products`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    name: String,
    offerings: Vec<String>,
}

/// `POST /api/admin/products` `{"name", "offerings": [...]}`: 201 and the
/// product.
pub async fn create_product(
    by: AdminCaller,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewProduct>,
) -> Answer {
    let offerings: Vec<&str> = new.offerings.iter().map(String::as_str).collect();
    let info = state
        .site
        .products()
        .create(&new.name, &offerings)
        .await
        .map_err(failed)?;
    tracing::info!(%by, product = %info.name, "admin: product created");
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `DELETE /api/admin/products/{name}`: 204 (409 while anyone holds it).
pub async fn delete_product(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Answer {
    state.site.products().delete(&name).await.map_err(failed)?;
    tracing::info!(%by, product = %name, "admin: product deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of a grant or revoke.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    login: String,
}

/// `POST /api/admin/products/{name}/grant` `{"login"}`:
/// `{"changed": bool}` (false if the account held it already).
pub async fn grant(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(holder): JsonBody<Holder>,
) -> Answer {
    change_holder(by, &state, &name, &holder.login, true).await
}

/// `POST /api/admin/products/{name}/revoke` `{"login"}`:
/// `{"changed": bool}` (false if the account did not hold it).
pub async fn revoke(
    by: AdminCaller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(holder): JsonBody<Holder>,
) -> Answer {
    change_holder(by, &state, &name, &holder.login, false).await
}

/// Grants (`grant`) or revokes product `name` for `login`.
async fn change_holder(
    by: AdminCaller,
    state: &AppState,
    name: &str,
    login: &str,
    grant: bool,
) -> Answer {
    let account = state.site.accounts().get(login).await.map_err(failed)?;
    let products = state.site.products();
    let changed = if grant {
        products.grant(name, account.id).await
    } else {
        products.revoke(name, account.id).await
    }
    .map_err(failed)?;
    tracing::info!(%by, product = %name, login = %account.primary, grant, changed, "admin: product holder changed");
    Ok(Json(json!({ "changed": changed })).into_response())
}
