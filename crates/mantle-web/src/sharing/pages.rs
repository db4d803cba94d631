//! The pages of shared items: `GET /users/{login}/{share_id}` renders the
//! page template the item type's offering declared, to whoever the
//! owner's shares let see it; `GET /users/{login}` the owner's default
//! share. Every refusal is the same 404 page.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use mantle_site::SiteError;
use mantle_site::sharing::Viewer;
use minijinja::context;

use super::{Opened, SharePages, open};
use crate::auth::MaybeAuthenticated;
use crate::{ApiError, AppState, render_page};

/// The page answering every refusal, whatever its reason.
pub(crate) const NOT_FOUND_TEMPLATE: &str = "not_found.html";

/// Said if even the not-found template fails to render.
const NOT_FOUND_FALLBACK: &str =
    "<!doctype html><title>Not found</title><h1>Not found</h1><p>There is nothing here.</p>";

/// The 404 page: the same bytes for every refusal and every visitor (it
/// is rendered with nothing of the request: no user, no CSRF token).
/// Offerings answer it too (as `mantle_web::not_found_page`) where they
/// refuse what a share does not allow, so that their refusals look like
/// the web front's and like a page that does not exist.
pub fn not_found(state: &AppState) -> Response {
    let html = state
        .templates
        .render(
            NOT_FOUND_TEMPLATE,
            context! { site_domain => state.site.config().domain.clone() },
        )
        .unwrap_or_else(|e| {
            tracing::error!(template = NOT_FOUND_TEMPLATE, error = %e, "template failed");
            NOT_FOUND_FALLBACK.to_string()
        });
    (StatusCode::NOT_FOUND, Html(html)).into_response()
}

/// `GET /users/{login}/{share_id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    headers: HeaderMap,
    Path((login, share_id)): Path<(String, String)>,
) -> Response {
    let viewer = Viewer::of(me.as_ref());
    match render(&state, &headers, viewer, &login, &share_id).await {
        Ok(Some(page)) => page,
        Ok(None) => not_found(&state),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /users/{login}`: the first default share (in the order offerings
/// declared them) that the owner has and the visitor may see.
pub(crate) async fn default_page(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    let viewer = Viewer::of(me.as_ref());
    let defaults: Vec<String> = state
        .site
        .extension::<SharePages>()
        .map(|p| p.defaults(&state.site).map(str::to_string).collect())
        .unwrap_or_default();
    for share_id in defaults {
        match render(&state, &headers, viewer, &login, &share_id).await {
            Ok(Some(page)) => return page,
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    not_found(&state)
}

/// The page of `login`'s share `share_id` for `viewer`: `None` for every
/// refusal; an error only for a fault.
async fn render(
    state: &AppState,
    headers: &HeaderMap,
    viewer: Viewer,
    login: &str,
    share_id: &str,
) -> Result<Option<Response>, SiteError> {
    let Opened {
        owner,
        grant,
        entity,
        ty,
    } = match open(&state.site, viewer, login, share_id).await {
        Ok(o) => o,
        Err(SiteError::NoSuchShare(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(template) = state
        .site
        .extension::<SharePages>()
        .and_then(|p| p.template(&state.site, ty.type_name))
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let owner = match state.site.accounts().by_id(owner).await {
        Ok(info) => info.primary,
        Err(SiteError::NoSuchAccount(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ctx = context! {
        item => entity.body,
        share_id => grant.share_id,
        access => grant.access.names(),
        owner,
        revision => entity.revision,
        // Whether the visitor is logged in (the base template's button).
        user => viewer != Viewer::Anonymous,
    };
    Ok(Some(render_page(state, headers, &template, ctx)))
}
