//! The lists' pages (templates in `templates/`, extending the site's
//! `base.html`; the live page's script in `static/page.js`, a file of its
//! own since the site's content security policy runs no inline scripts).
//!
//! - `GET /lists`: the caller's lists and those shared with her, and a
//!   form to open (or make) one; `?name=NAME&owner=LOGIN` goes there.
//! - `GET /lists/{name}`: a redirect to the caller's own list `name`.
//! - `GET /lists/{owner}/{name}`: the live page for a logged-in viewer who
//!   may read the list (read-only without edit access); for anonymous
//!   visitors, a read-only page of a list published to everyone. Anything
//!   else, whatever the reason, is the site's 404 page
//!   ([`mantle_web::not_found_page`]), as for a missing list.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use mantle_site::sharing::{EDIT, Viewer};
use mantle_site::{Account, Avatar, SiteError};
use mantle_store::Id;
use mantle_web::{ApiError, AppState, MaybeAuthenticated, minijinja, render_page};
use serde::Deserialize;

use crate::APP;
use crate::items::{List, check_name};
use crate::share::{my_lists, read, shared_lists};

/// The index page: its template's name, and the template.
pub(crate) const INDEX: &str = "lists/index.html";
pub(crate) const INDEX_TEMPLATE: &str = include_str!("../templates/index.html");
/// The live page of one list.
pub(crate) const PAGE: &str = "lists/page.html";
pub(crate) const PAGE_TEMPLATE: &str = include_str!("../templates/page.html");
/// The read-only page of a published list, for anonymous visitors.
pub(crate) const PUBLIC: &str = "lists/public.html";
pub(crate) const PUBLIC_TEMPLATE: &str = include_str!("../templates/public.html");
/// The live page's script, and where it is served.
pub(crate) const SCRIPT_PATH: &str = "/lists/page.js";
pub(crate) const SCRIPT: &[u8] = include_bytes!("../static/page.js");

/// The pages (the script is an asset of the offering).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/lists", get(index))
        .route("/lists/{name}", get(own))
        .route("/lists/{owner}/{name}", get(page))
}

/// The one answer to whatever may not be shown, whatever the reason: the
/// site's 404 page, the same bytes the web front answers for a share it
/// may not show.
fn not_found(state: &AppState) -> Response {
    mantle_web::not_found_page(state)
}

/// A path segment as it is written in a URL: what is not unreserved (or
/// `@`, `:`) percent-encoded.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of `owner`'s list `name`.
fn list_path(owner: &str, name: &str) -> String {
    format!("/lists/{}/{}", segment(owner), segment(name))
}

/// The logged-in user given the lists: `Err` is the answer otherwise (a
/// redirect to the login page without a login, else 404).
async fn member(state: &AppState, me: Option<Avatar>) -> Result<Avatar, Response> {
    let Some(me) = me else {
        return Err(Redirect::to("/login").into_response());
    };
    match state.site.products().holds(me.account, APP).await {
        Ok(true) => Ok(me),
        Ok(false) => Err(not_found(state)),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// The page's answer, kept out of caches (it shows who is logged in, and
/// what changes).
fn uncached(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /lists` query: the list to open.
#[derive(Deserialize)]
struct OpenQuery {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

/// `GET /lists`: the caller's lists and those shared with her; with
/// `?name=`, a redirect to that list (`owner`'s, or hers).
async fn index(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    Query(open): Query<OpenQuery>,
    headers: HeaderMap,
) -> Response {
    let me = match member(&state, me).await {
        Ok(me) => me,
        Err(answer) => return answer,
    };
    let mut error = None;
    if let Some(name) = open
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match check_name(name) {
            Ok(()) => {
                let owner = open
                    .owner
                    .as_deref()
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .unwrap_or(&me.address);
                return Redirect::to(&list_path(owner, name)).into_response();
            }
            Err(why) => error = Some(why),
        }
    }
    let (lists, shared) = match lists_of(&state, me.account).await {
        Ok(both) => both,
        Err(e) => return ApiError::from(e).into_response(),
    };
    uncached(render_page(
        &state,
        &headers,
        INDEX,
        minijinja::context! { user => me.address, account => me.account.raw(), lists, shared, error },
    ))
}

/// The caller's lists and those shared with her.
async fn lists_of(
    state: &AppState,
    me: Id<Account>,
) -> Result<(Vec<crate::MyList>, Vec<crate::SharedList>), SiteError> {
    Ok((
        my_lists(&state.site, me).await?,
        shared_lists(&state.site, me).await?,
    ))
}

/// `GET /lists/{name}`: a redirect to the caller's own list `name` (the
/// address of a list before lists had owners).
async fn own(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    Path(name): Path<String>,
) -> Response {
    let me = match member(&state, me).await {
        Ok(me) => me,
        Err(answer) => return answer,
    };
    if let Err(why) = check_name(&name) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    Redirect::to(&list_path(&me.address, &name)).into_response()
}

/// `GET /lists/{owner}/{name}`: the live page, or the public page, or 404.
async fn page(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    Path((owner_login, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if check_name(&name).is_err() {
        return not_found(&state);
    }
    let site = &state.site;
    let Some(owner) = site.sharing().owner(&owner_login).await else {
        return not_found(&state);
    };
    let answer = match me {
        Some(me) => live_page(&state, &headers, me, owner, &name).await,
        None => public_page(&state, &headers, owner, &name).await,
    };
    match answer {
        Ok(Some(page)) => uncached(page),
        Ok(None) | Err(SiteError::NoSuchShare(_)) => not_found(&state),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The live page of `owner`'s list `name` for `me`, if she may read it
/// (her own lists: if she was given the lists; made on first opening).
async fn live_page(
    state: &AppState,
    headers: &HeaderMap,
    me: Avatar,
    owner: Id<Account>,
    name: &str,
) -> Result<Option<Response>, SiteError> {
    let site = &state.site;
    let mine = me.account == owner;
    let edit = if mine {
        if !site.products().holds(me.account, APP).await? {
            return Ok(None);
        }
        true
    } else {
        let list = site
            .sharing()
            .open::<List>(Viewer::Account(me.account), owner, name)
            .await?;
        list.grant.access.permits(EDIT)
    };
    let owner_login = site.accounts().by_id(owner).await?.primary;
    let public_path = list_path(&format!("account:{}", owner.raw()), name);
    Ok(Some(render_page(
        state,
        headers,
        PAGE,
        minijinja::context! {
            user => me.address,
            owner => owner_login,
            name,
            edit,
            mine,
            public_path,
        },
    )))
}

/// The read-only page of `owner`'s list `name` for an anonymous visitor,
/// if it is published to everyone. The owner's address is shown protected
/// from harvesters (`protect_email`).
async fn public_page(
    state: &AppState,
    headers: &HeaderMap,
    owner: Id<Account>,
    name: &str,
) -> Result<Option<Response>, SiteError> {
    let site = &state.site;
    let list = read(site, Viewer::Anonymous, owner, name).await?;
    let owner_login = site.accounts().by_id(owner).await?.primary;
    Ok(Some(render_page(
        state,
        headers,
        PUBLIC,
        minijinja::context! { owner => owner_login, name => list.name, entries => list.entries },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_what_a_segment_cannot_hold() {
        assert_eq!(
            list_path("alice@example.com", "groceries"),
            "/lists/alice@example.com/groceries"
        );
        assert_eq!(list_path("a b/c?", "x"), "/lists/a%20b%2Fc%3F/x");
        assert_eq!(list_path("account:7", "x~y"), "/lists/account:7/x~y");
    }

    #[test]
    fn templates_use_no_inline_scripts_and_protect_the_owner() {
        for t in [INDEX_TEMPLATE, PAGE_TEMPLATE, PUBLIC_TEMPLATE] {
            assert!(t.contains(r#"{% extends "base.html" %}"#));
            assert!(!t.contains("<script>"), "no inline scripts");
        }
        assert!(PAGE_TEMPLATE.contains(r#"src="/live.js""#));
        assert!(PAGE_TEMPLATE.contains(r#"src="/lists/page.js""#));
        // Every mention of the owner on the public page is protected.
        let mentions = PUBLIC_TEMPLATE.matches("owner").count();
        let protected = PUBLIC_TEMPLATE.matches("owner|protect_email").count();
        assert!(mentions > 0 && mentions == protected, "{PUBLIC_TEMPLATE}");
    }
}
