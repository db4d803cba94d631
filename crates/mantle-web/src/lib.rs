//! Mantle's HTTP front.
//!
//! The site's HTTP service ([`HttpService`], a powerup in the site store)
//! serves:
//!
//! - a JSON API for programs: `POST /api/login`, `POST /api/logout`,
//!   `GET /api/me`, `GET /api/tokens`, `DELETE /api/tokens/{id}`,
//!   `POST /api/signup`, and slates at `GET/PUT/DELETE /api/slates/{name}`
//!   with `ETag` / `If-Match`;
//! - server-rendered pages (templates as files): `/`, `/login`, `/logout`,
//!   `/signup`, `/home`; and `/health`, `/robots.txt`;
//! - shared items (see `mantle_site::sharing`): their pages at
//!   `/users/{login}/{share_id}` and `/users/{login}` (declared by
//!   offerings with [`WebOffering::share_page`] and
//!   [`WebOffering::default_share`]), and the Shoji catalog API under
//!   `/api/shoji/` (the user's own items, their shares and groups, and
//!   what others share with them), reaching other users' items only
//!   through `Site::sharing`;
//! - the site's statistics ([`Site::stats`](mantle_site::Site::stats), plus
//!   this crate's "HTTP" namespace): `/stats` (HTML, with a pause/resume
//!   button per namespace), `/stats.json`, `/metrics` (Prometheus text) and
//!   `POST /stats/enabled`, answered to requests from loopback (unless
//!   `[http] stats_from_loopback = false`; never to requests relayed by a
//!   proxy) and to admins, 404 to anyone else. The "HTTP" namespace is
//!   described at [`HTTP_NAMESPACE`].
//! - administration ([`admin`]): a JSON API under `/api/admin/…` and a
//!   dashboard at `/admin`, for admins and for the operator holding the
//!   secret of [`ADMIN_RUNTIME_FILE`]; 404 to anyone else.
//!
//! Hardening: tokens in an HttpOnly SameSite=Lax cookie or a bearer header;
//! CSRF tokens on form posts; login attempts limited per client address
//! (429 with `Retry-After`); a request body limit (413); header and body
//! read time-outs; a cap on concurrent connections. Over TLS (see
//! [`tls`]) when `[http] tls_cert` and `tls_key` are set, with HSTS and
//! `Secure` cookies, and an optional plain-HTTP listener that redirects
//! to it (`[http] redirect_listen`).
//!
//! What it is not: it holds no user data and no sessions; everything goes
//! through [`mantle_site::Site`].
//!
//! Testing: with the `harness` feature, `mantle_web::harness` sends
//! requests through [`router`] in process, against a real site in a
//! temporary directory (this crate's tests and offerings' use it).

pub mod admin;
mod api;
mod auth;
mod caching;
mod config;
pub mod connections;
mod csrf;
mod error;
mod forward;
#[cfg(feature = "harness")]
pub mod harness;
mod headers;
mod offerings;
mod pages;
mod redirect;
mod server;
mod sharing;
mod splice;
mod state;
mod stats;
mod templates;
pub mod tls;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use mantle_site::{Service, Site};
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use admin::{ADMIN_RUNTIME_FILE, AdminCaller, AdminRuntime, admin_only};
pub use api::JsonBody;
pub use auth::{
    Authenticated, MaybeActing, MaybeAuthenticated, TOKEN_COOKIE, cookie, presented_token,
};
pub use config::HttpConfig;
pub use csrf::{CSRF_COOKIE, CSRF_HEADER};
pub use error::ApiError;
pub use forward::{FORWARDED_HEADER, ForwardFuture, Forwarder, Forwarding, Route};
pub use headers::CONTENT_SECURITY_POLICY;
/// The template engine of pages, for offerings that render their own
/// ([`render_page`] takes its `Value`, made with `minijinja::context!`).
pub use minijinja;
pub use offerings::{
    LAYER, Member, NavLink, OfferingName, WebNav, WebOffering, WebRoutes, WebTemplates, offering,
    render_page,
};
pub use server::{
    HttpService, bind, connection_limits, serve, serve_node, serve_tls, start_node_listener,
    warn_if_descriptors_short,
};
pub use sharing::SharePages;
/// The site's 404 page (`not_found.html`): the same bytes for every refusal.
pub use sharing::not_found_page;
pub use state::AppState;
pub use stats::{HTTP_NAMESPACE, Toggle};

/// Registers the web front's item types (the HTTP service powerup).
pub fn register(registry: &mut mantle_store::Registry) {
    registry
        .register::<HttpService>()
        .provide::<HttpService, dyn Service>(|s| Box::new(s));
}

/// Adds the web front to a site builder: its [`offering`] (its item
/// types and its configuration section, `[http]`, see [`HttpConfig`]).
pub fn install(builder: mantle_site::SiteBuilder) -> mantle_site::SiteBuilder {
    builder.offering(offering())
}

/// The router for `site` (its own routes and its offerings'), with its
/// limits applied.
pub fn router(site: Site) -> Router {
    let http = site.section::<HttpConfig>().clone();
    let mut all = routes();
    if let Some(extra) = site.extension::<WebRoutes>() {
        all = all.merge(extra.merged(&site));
    }
    let http_stats = std::sync::Arc::new(stats::HttpStats::new(site.stats()));
    let policy = headers::HeaderPolicy {
        tls: http.over_tls(),
    };
    let forwarding = site
        .extension::<Forwarder>()
        .and_then(|f| f.0.clone())
        .map(|f| forward::ForwardState::new(f, http.max_body_bytes));
    let state = AppState::new(site);
    let mut all = all
        .with_state(state)
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            caching::Started(std::time::SystemTime::now()),
            caching::conditional,
        ))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            headers::secure,
        ));
    // A request for a user served elsewhere is passed on before this
    // node does any work of its own on it (the owner answers with its
    // own validators and headers), but under the body's time-out.
    if let Some(forwarding) = forwarding {
        all = all.layer(axum::middleware::from_fn_with_state(
            forwarding,
            forward::forward,
        ));
    }
    all.layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
        http.body_timeout_secs.max(1),
    )))
    // Outermost, so every answer is counted (time-outs, 404s included).
    .layer(axum::middleware::from_fn_with_state(
        http_stats,
        stats::track,
    ))
}

/// The routes, before state and limits (for embedding in a larger router).
/// The "HTTP" statistics are recorded by a layer [`router`] adds; the
/// statistics routes need `ConnectInfo<SocketAddr>`, as [`serve`] gives.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/signup", post(api::signup))
        .route("/api/me", get(api::me))
        .route("/api/tokens", get(api::tokens))
        .route("/api/tokens/{id}", delete(api::revoke_token))
        .route("/api/slates", get(api::list_slates))
        .route(
            "/api/slates/{name}",
            get(api::get_slate)
                .put(api::put_slate)
                .delete(api::delete_slate),
        )
        .route(
            "/api/users/{login}/slates/{name}",
            get(api::get_user_slate).put(api::put_user_slate),
        )
        .route("/health", get(api::health))
        .route("/", get(pages::index))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/signup", get(pages::signup_form).post(pages::signup))
        .route("/home", get(pages::home))
        .route("/robots.txt", get(pages::robots))
        .route("/stats", get(stats::page))
        .route("/stats.json", get(stats::json))
        .route("/metrics", get(stats::metrics))
        .route("/stats/enabled", post(stats::set_enabled))
        .merge(admin::routes())
        .merge(sharing::routes())
}
