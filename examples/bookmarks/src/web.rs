//! The HTTP side: the JSON API, the user's page and the public page
//! (templates in `templates/`, extending the site's `base.html`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use mantle_site::SiteError;
use mantle_store::{Id, Timestamp};
use mantle_web::{ApiError, AppState, JsonBody, Member, minijinja, render_page};
use serde::Deserialize;

use crate::NAME;
use crate::checks::{BookmarkError, check_title, check_url};
use crate::config::Config;
use crate::items::Bookmark;
use crate::live::{delete_in, insert_in, list, public};
use crate::share::share;
use crate::sweep::configure_in;

/// The API and the pages.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/bookmarks", get(api_list).post(api_add))
        .route("/api/bookmarks/{id}", delete(api_delete))
        .route("/api/bookmarks/{id}/share", post(api_share))
        .route("/bookmarks", get(page))
        .route("/bookmarks/public/{login}", get(public_page))
}

/// `GET /api/bookmarks`: `{"bookmarks": [...]}`, newest first.
async fn api_list(member: Member) -> Result<Response, ApiError> {
    let bookmarks = member.store.read(list).await?;
    Ok(Json(serde_json::json!({ "bookmarks": bookmarks })).into_response())
}

/// `POST /api/bookmarks` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    public: bool,
}

/// `POST /api/bookmarks` `{url, title?, public?}`: 201 and the bookmark.
async fn api_add(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<AddBody>,
) -> Result<Response, ApiError> {
    let url = check_url(&body.url)?;
    let title = check_title(body.title.as_deref(), &url)?;
    let config = state.site.section::<Config>().clone();
    let bookmark = Bookmark {
        url,
        title,
        public: body.public,
        created: Timestamp::now(),
    };
    let view = member
        .store
        .transact(move |tx| {
            // The route knows the configuration: keep the sweeper in line.
            configure_in(tx, &config)?;
            insert_in(tx, &bookmark)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn bookmark_id(id: &str) -> Result<Id<Bookmark>, BookmarkError> {
    id.parse::<i64>()
        .map(Id::from_raw)
        .map_err(|_| BookmarkError::NotFound(id.to_string()))
}

/// `DELETE /api/bookmarks/{id}`: 204, or 404.
async fn api_delete(member: Member, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    if member.store.transact(move |tx| delete_in(tx, bid)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(BookmarkError::NotFound(id).into())
    }
}

/// `POST /api/bookmarks/{id}/share` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    to: String,
}

/// `POST /api/bookmarks/{id}/share` `{to}`: 202 once the message is
/// recorded; the copy reaches the recipient's store just after.
async fn api_share(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    share(&state.site, member.avatar.account, bid, &body.to).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "shared": bid.raw(), "to": body.to.trim() })),
    )
        .into_response())
}

/// `GET /bookmarks`: the user's page (404 to users not given the offering).
async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    member: Member,
) -> Result<Response, ApiError> {
    let greeting = state.site.section::<Config>().greeting.clone();
    let bookmarks = member.store.read(list).await?;
    Ok(render_page(
        &state,
        &headers,
        PAGE,
        minijinja::context! { greeting, user => member.avatar.address, bookmarks },
    ))
}

/// `GET /bookmarks/public/{login}`: anyone (no login needed) sees the
/// public bookmarks of `login` (its address shown protected from
/// harvesters); 404 for a login that names no account, a disabled one,
/// or one not given the bookmarks.
async fn public_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not found");
    let account = match state.site.accounts().get(&login).await {
        Ok(a) => a,
        Err(SiteError::NoSuchAccount(_) | SiteError::InvalidAddress(_)) => {
            return Err(not_found());
        }
        Err(e) => return Err(e.into()),
    };
    if account.disabled || !state.site.products().holds(account.id, NAME).await? {
        return Err(not_found());
    }
    let store = state.site.stores().user_store_unchecked(account.id).await?;
    let bookmarks = store.read(public).await?;
    Ok(render_page(
        &state,
        &headers,
        PUBLIC,
        minijinja::context! { who => account.primary, bookmarks },
    ))
}

/// The user's page: its template's name, and the template.
pub(crate) const PAGE: &str = "bookmarks/page.html";
pub(crate) const PAGE_TEMPLATE: &str = include_str!("../templates/page.html");

/// The public page: its template's name, and the template.
pub(crate) const PUBLIC: &str = "bookmarks/public.html";
pub(crate) const PUBLIC_TEMPLATE: &str = include_str!("../templates/public.html");
