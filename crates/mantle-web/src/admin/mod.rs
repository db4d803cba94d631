//! Administration of a running site: a JSON API under `/api/admin/…` for
//! programs (the `mantle` command among them) and an HTML dashboard at
//! `/admin` for people.
//!
//! Who may use them: an account made with `--admin`, or the operator of
//! the machine, who presents the secret that the HTTP service writes to
//! [`ADMIN_RUNTIME_FILE`] at each start. To anyone else every admin route
//! answers 404, exactly as a route that does not exist (also for a method
//! the route lacks), so their existence is not revealed.
//!
//! - The JSON API takes the caller from `Authorization: Bearer` only
//!   (an admin's token, or the runtime secret): never from the login
//!   cookie, so another site cannot make a browser call it.
//! - The dashboard takes the login cookie too; its forms carry the CSRF
//!   token as the other pages' forms do.
//!
//! Offerings add admin routes of their own with [`admin_only`] and the
//! [`AdminCaller`] extractor (the ledger's grant, say).

mod api;
mod dashboard;
mod offerings;
mod runtime;
mod stores;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use mantle_site::Avatar;

use crate::auth::{bearer_token, presented_token};
use crate::error::ApiError;
use crate::state::AppState;

pub use runtime::{ADMIN_RUNTIME_FILE, AdminRuntime, RuntimeFileError};
pub use stores::{StoreInfo, TypeState, UpgradeState};

/// The secret of one run of the HTTP service: a bearer token that acts as
/// the site's operator. Made at each start, written only to
/// [`ADMIN_RUNTIME_FILE`] (mode 0600), never stored elsewhere.
#[derive(Clone)]
pub(crate) struct AdminSecret(Arc<str>);

impl AdminSecret {
    pub(crate) fn new(secret: &str) -> Self {
        Self(secret.into())
    }

    /// Whether `presented` is this secret, in time independent of where
    /// they differ.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Who is administering: the operator (with the runtime secret) or an
/// admin account.
///
/// As an extractor it takes the caller from `Authorization: Bearer` and
/// rejects everyone else with a bare 404, the answer of a route that does
/// not exist. Put it first among a handler's extractors, so that nothing
/// else (a malformed path, a bad body) answers before it.
#[derive(Debug, Clone)]
pub enum AdminCaller {
    /// The operator of the machine: the runtime secret was presented.
    Operator,
    /// An admin account (its token was presented).
    Account(Avatar),
}

impl std::fmt::Display for AdminCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCaller::Operator => f.write_str("operator"),
            AdminCaller::Account(a) => f.write_str(&a.address),
        }
    }
}

/// Where a caller's credentials may come from.
#[derive(Clone, Copy)]
enum Via {
    /// `Authorization: Bearer` only (the JSON API).
    Bearer,
    /// The bearer header or the login cookie (the dashboard).
    BearerOrCookie,
}

impl AdminCaller {
    /// The admin making a request, if it is one.
    async fn of(parts: &Parts, state: &AppState, via: Via) -> Option<AdminCaller> {
        let token = match via {
            Via::Bearer => bearer_token(&parts.headers),
            Via::BearerOrCookie => presented_token(&parts.headers),
        }?;
        if let Some(secret) = parts.extensions.get::<AdminSecret>()
            && bearer_token(&parts.headers) == Some(token)
            && secret.matches(token)
        {
            return Some(AdminCaller::Operator);
        }
        match state.site.auth().authenticate(token).await {
            Ok(me) if me.admin => Some(AdminCaller::Account(me)),
            _ => None,
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StatusCode> {
        AdminCaller::of(parts, state, Via::Bearer)
            .await
            .ok_or(StatusCode::NOT_FOUND)
    }
}

/// An admin using the dashboard: as [`AdminCaller`], but the login cookie
/// counts too (the dashboard's forms carry CSRF tokens).
pub(crate) struct DashboardAdmin(pub AdminCaller);

impl FromRequestParts<AppState> for DashboardAdmin {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StatusCode> {
        AdminCaller::of(parts, state, Via::BearerOrCookie)
            .await
            .map(DashboardAdmin)
            .ok_or(StatusCode::NOT_FOUND)
    }
}

/// Makes `router`'s routes answer 404, not 405, to a method they lack, so
/// that an admin route's existence is not revealed by its methods. Every
/// handler of the routes must still take [`AdminCaller`] first.
pub fn admin_only(router: Router<AppState>) -> Router<AppState> {
    router.method_not_allowed_fallback(|| async { StatusCode::NOT_FOUND })
}

/// An admin request's failure (see [`ApiError::for_admin`]).
pub(crate) fn failed(e: mantle_site::SiteError) -> ApiError {
    ApiError::for_admin(e)
}

/// The admin API and the dashboard.
pub(crate) fn routes() -> Router<AppState> {
    admin_only(
        Router::new()
            .route(
                "/api/admin/accounts",
                get(api::accounts).post(api::create_account),
            )
            .route(
                "/api/admin/accounts/{login}",
                get(api::account).delete(api::delete_account),
            )
            .route("/api/admin/accounts/{login}/disable", post(api::disable))
            .route("/api/admin/accounts/{login}/enable", post(api::enable))
            .route(
                "/api/admin/accounts/{login}/password",
                put(api::set_password),
            )
            .route("/api/admin/accounts/{login}/tokens", get(api::tokens))
            .route(
                "/api/admin/accounts/{login}/tokens/{id}",
                axum::routing::delete(api::revoke_token),
            )
            .route("/api/admin/invites", post(api::invite))
            .route("/api/admin/stores", get(api::stores))
            .route("/api/admin/fanout/count/{type}", get(api::count_items))
            .route("/api/admin/messages", get(api::messages))
            .route("/api/admin/messages/retry", post(api::retry_message))
            .route("/api/admin/messages/drop", post(api::drop_message))
            .route("/api/admin/offerings", get(offerings::list))
            .route(
                "/api/admin/offerings/{name}/install",
                post(offerings::install),
            )
            .route(
                "/api/admin/offerings/{name}/uninstall",
                post(offerings::uninstall),
            )
            .route(
                "/api/admin/products",
                get(offerings::products).post(offerings::create_product),
            )
            .route(
                "/api/admin/products/{name}",
                axum::routing::delete(offerings::delete_product),
            )
            .route("/api/admin/products/{name}/grant", post(offerings::grant))
            .route("/api/admin/products/{name}/revoke", post(offerings::revoke))
            .route("/admin", get(dashboard::overview))
            .route("/admin/accounts", post(dashboard::create_account))
            .route("/admin/accounts/{id}", get(dashboard::account))
            .route(
                "/admin/accounts/{id}/{action}",
                post(dashboard::account_action),
            )
            .route(
                "/admin/accounts/{id}/tokens/{token}/revoke",
                post(dashboard::revoke_token),
            )
            .route("/admin/invites", post(dashboard::invite))
            .route("/admin/messages/{action}", post(dashboard::message_action)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_matches_only_itself() {
        let s = AdminSecret::new("abcdef");
        assert!(s.matches("abcdef"));
        assert!(!s.matches("abcdeg"));
        assert!(!s.matches("abcde"));
        assert!(!s.matches(""));
    }
}
