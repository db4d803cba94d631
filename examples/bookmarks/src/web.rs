//! The HTTP side: the JSON API, the user's page (with its script) and the
//! public page (templates in `templates/`, extending the site's
//! `base.html`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use mantle_site::sharing::Viewer;
use mantle_store::{Id, Timestamp};
use mantle_web::{
    ApiError, AppState, JsonBody, MaybeAuthenticated, Member, minijinja, render_page,
};
use serde::{Deserialize, Serialize};

use crate::checks::{BookmarkError, check_title, check_url};
use crate::config::Config;
use crate::items::Bookmark;
use crate::live::{BookmarkView, delete_in, insert_in, list};
use crate::publish::publish_in;
use crate::share::{
    open_shared, published_by, share, shared_by_bookmark, shared_with, shares, unshare,
};
use crate::sweep::configure_in;

/// The API and the pages.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/bookmarks", get(api_list).post(api_add))
        .route("/api/bookmarks/shared", get(api_shared_with_me))
        .route("/api/bookmarks/shared/{owner}/{share_id}", get(api_open))
        .route("/api/bookmarks/{id}", delete(api_delete))
        .route(
            "/api/bookmarks/{id}/publish",
            post(api_publish).delete(api_unpublish),
        )
        .route("/api/bookmarks/{id}/share", post(api_share))
        .route("/api/bookmarks/{id}/share/{login}", delete(api_unshare))
        .route("/api/bookmarks/{id}/shares", get(api_shares))
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

/// `POST /api/bookmarks` `{url, title?, public?}`: 201 and the bookmark
/// (published at once with `"public": true`).
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

/// `DELETE /api/bookmarks/{id}`: 204 (its shares withdrawn with it), or
/// 404.
async fn api_delete(member: Member, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    if member.store.transact(move |tx| delete_in(tx, bid)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(BookmarkError::NotFound(id).into())
    }
}

/// Publishes (`POST`) or withdraws from the public (`DELETE`) bookmark
/// `id`: the bookmark, or 404.
async fn set_public(member: Member, id: String, public: bool) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    match member
        .store
        .transact(move |tx| publish_in(tx, bid, public))
        .await?
    {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(BookmarkError::NotFound(id).into()),
    }
}

/// `POST /api/bookmarks/{id}/publish`: shares it with everyone.
async fn api_publish(member: Member, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_public(member, id, true).await
}

/// `DELETE /api/bookmarks/{id}/publish`: withdraws it from everyone.
async fn api_unpublish(member: Member, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_public(member, id, false).await
}

/// `POST /api/bookmarks/{id}/share` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    to: String,
}

/// `POST /api/bookmarks/{id}/share` `{to}`: shares it with that user for
/// reading; `{"shared": ID, "with": LOGIN, "share_id", "access"}`.
async fn api_share(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    let made = share(&state.site, member.avatar.account, bid, &body.to).await?;
    Ok(Json(serde_json::json!({
        "shared": bid.raw(),
        "with": made.with,
        "share_id": made.share_id,
        "access": made.access,
    }))
    .into_response())
}

/// `DELETE /api/bookmarks/{id}/share/{login}`: withdraws the share with
/// that user (204); 404 if it is not shared with them.
async fn api_unshare(
    State(state): State<AppState>,
    member: Member,
    Path((id, login)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    unshare(&state.site, member.avatar.account, bid, &login).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/bookmarks/{id}/shares`: `{"shares": [{with, share_id,
/// access}]}`, `with` a login or `everyone`.
async fn api_shares(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    let list = shares(&state.site, member.avatar.account, bid).await?;
    Ok(Json(serde_json::json!({ "shares": list })).into_response())
}

/// `GET /api/bookmarks/shared`: `{"shared": [{owner, share_id, url,
/// title, created}]}`, what other users share with the caller.
async fn api_shared_with_me(
    State(state): State<AppState>,
    member: Member,
) -> Result<Response, ApiError> {
    let list = shared_with(&state.site, member.avatar.account).await?;
    Ok(Json(serde_json::json!({ "shared": list })).into_response())
}

/// `GET /api/bookmarks/shared/{owner}/{share_id}`: one bookmark another
/// user shares, if the caller may read it (anyone, logged in or not, for
/// a published one); the same 404 otherwise, whatever the reason.
async fn api_open(
    State(state): State<AppState>,
    MaybeAuthenticated(avatar): MaybeAuthenticated,
    Path((owner, share_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let shared = open_shared(&state.site, Viewer::of(avatar.as_ref()), &owner, &share_id).await?;
    Ok(Json(shared).into_response())
}

/// A bookmark on the owner's page: the bookmark and who it is shared
/// with.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    bookmark: BookmarkView,
    shared_with: Vec<String>,
}

/// `GET /bookmarks`: the user's page (404 to users not given the
/// offering): their bookmarks, each with its controls, and what others
/// share with them.
async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    member: Member,
) -> Result<Response, ApiError> {
    let greeting = state.site.section::<Config>().greeting.clone();
    let mut with = shared_by_bookmark(&state.site, member.avatar.account).await?;
    let bookmarks: Vec<Row> = member
        .store
        .read(list)
        .await?
        .into_iter()
        .map(|b| Row {
            shared_with: with.remove(&b.id).unwrap_or_default(),
            bookmark: b,
        })
        .collect();
    let shared = shared_with(&state.site, member.avatar.account).await?;
    Ok(render_page(
        &state,
        &headers,
        PAGE,
        minijinja::context! {
            greeting,
            user => member.avatar.address,
            bookmarks,
            shared,
        },
    ))
}

/// `GET /bookmarks/public/{login}`: anyone (no login needed) sees what
/// `login` has published, as the sharing layer shows it to an anonymous
/// visitor, with the owner's address protected from harvesters. A login
/// that names no account, a disabled one, or one that has published
/// nothing all get the same 404: the page tells nobody who has an
/// account.
async fn public_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Result<Response, ApiError> {
    let Some((who, bookmarks)) = published_by(&state.site, &login).await? else {
        return Err(BookmarkError::NoSuchShare.into());
    };
    Ok(render_page(
        &state,
        &headers,
        PUBLIC,
        minijinja::context! { who, bookmarks },
    ))
}

/// The user's page: its template's name, and the template.
pub(crate) const PAGE: &str = "bookmarks/page.html";
pub(crate) const PAGE_TEMPLATE: &str = include_str!("../templates/page.html");

/// The public page: its template's name, and the template.
pub(crate) const PUBLIC: &str = "bookmarks/public.html";
pub(crate) const PUBLIC_TEMPLATE: &str = include_str!("../templates/public.html");

/// The page of a shared bookmark at `/users/{login}/{share_id}` (the web
/// front's, which checks access through the sharing layer): its
/// template's name, and the template.
pub(crate) const SHARED: &str = "bookmarks/shared.html";
pub(crate) const SHARED_TEMPLATE: &str = include_str!("../templates/shared.html");

/// The user's page's script: where it is served, and the script.
pub(crate) const SCRIPT: &str = "/bookmarks/app.js";
pub(crate) const SCRIPT_SOURCE: &[u8] = include_bytes!("../assets/app.js");
