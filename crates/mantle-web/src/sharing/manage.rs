//! What the user shares: the shares of one of their items
//! (`/api/shoji/mine/{type}/{id}/shares`) and their groups
//! (`/api/shoji/groups`). All in the user's own store.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantle_site::sharing::{ReadShares, Role, ShareInfo, ShareItems};
use mantle_site::{Site, SiteError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::mine::{Mine, entity_url, item_id, mine};
use super::shoji::{answer, view};
use super::{API, own_error, segment, shared_url};
use crate::api::JsonBody;
use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// A role as a request names it: `everyone`, `authenticated`,
/// `account:ID`, `group:NAME`, or a login (`alice@example.com`), which
/// stands for that account's role.
pub(super) async fn role_of(site: &Site, text: &str) -> Result<Role, ApiError> {
    let text = text.trim();
    if let Ok(role) = text.parse::<Role>() {
        return Ok(role);
    }
    if !text.is_empty()
        && !text.contains(':')
        && let Some(account) = site.sharing().owner(text).await
    {
        return Ok(Role::account(account));
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "'{text}' is not a role (everyone, authenticated, account:ID, group:NAME) nor the login of an account"
        ),
    ))
}

/// One share as the owner sees it, with the URL others open it at.
fn share_json(owner: &str, s: &ShareInfo) -> Value {
    json!({
        "share_id": s.share_id,
        "role": s.role,
        "access": s.access,
        "entity": shared_url(owner, &s.share_id),
        "page": format!("/users/{}/{}", segment(owner), segment(&s.share_id)),
    })
}

/// `GET /api/shoji/mine/{type}/{id}/shares`: the item's shares, a view.
pub(crate) async fn shares(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let list = store
        .read(move |r| {
            if !r.contains(ty.type_name, id)? {
                return Ok(None);
            }
            ty.shares_of(r, id).map(Some)
        })
        .await
        .map_err(own_error)?
        .ok_or_else(|| ApiError::not_found(format!("no {type_name} {id}")))?;
    let value: Vec<Value> = list.iter().map(|s| share_json(&me.address, s)).collect();
    let url = format!("{}/shares", entity_url(&type_name, id));
    Ok(answer(StatusCode::OK, view(&url, Value::Array(value))))
}

/// The body of `POST …/shares`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareBody {
    role: String,
    #[serde(default)]
    access: Vec<String>,
    #[serde(default)]
    share_id: Option<String>,
}

/// `POST /api/shoji/mine/{type}/{id}/shares` `{"role", "access"?,
/// "share_id"?}`: shares the item (sharing again with the same role and id
/// replaces the access): 201, the share, and `Location` (the shared
/// entity). 409 if the share id names another item.
pub(crate) async fn share(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let role = role_of(&state.site, &body.role).await?;
    let (access, share_id) = (body.access, body.share_id);
    let info = store
        .transact(move |tx| {
            let names: Vec<&str> = access.iter().map(String::as_str).collect();
            let share_id = ty.share(tx, id, &role, &names, share_id.as_deref())?;
            let info = ty
                .shares_of(tx, id)?
                .into_iter()
                .find(|s| s.share_id == share_id && s.role == role);
            info.ok_or_else(|| SiteError::NoSuchShare(share_id))
        })
        .await
        .map_err(own_error)?;
    let doc = share_json(&me.address, &info);
    let mut r = answer(StatusCode::CREATED, doc);
    if let Ok(v) = HeaderValue::from_str(&shared_url(&me.address, &info.share_id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// The query of `DELETE …/shares/{share_id}`.
#[derive(Deserialize)]
pub(crate) struct UnshareQuery {
    #[serde(default)]
    role: Option<String>,
}

/// `DELETE /api/shoji/mine/{type}/{id}/shares/{share_id}?role=ROLE`:
/// withdraws the share from `role` (from every role without it): 204; 404
/// if the item has no such share.
pub(crate) async fn unshare(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id, share_id)): Path<(String, String, String)>,
    Query(query): Query<UnshareQuery>,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let role = match query.role.as_deref() {
        Some(text) => Some(role_of(&state.site, text).await?),
        None => None,
    };
    let missing = format!("item {id} has no share '{share_id}'");
    let n = store
        .transact(move |tx| {
            let of_item = ty.shares_of(tx, id)?.into_iter().any(|s| {
                s.share_id == share_id && role.as_ref().is_none_or(|role| s.role == *role)
            });
            if !of_item {
                return Ok(0);
            }
            tx.unshare(&share_id, role.as_ref())
        })
        .await
        .map_err(own_error)?;
    if n == 0 {
        return Err(ApiError::not_found(missing));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn group_url(name: &str) -> String {
    format!("{API}/groups/{}", segment(name))
}

fn group_json(name: &str, members: &[Role]) -> Value {
    json!({
        "name": name,
        "role": format!("group:{name}"),
        "members": members.iter().map(Role::to_string).collect::<Vec<_>>(),
    })
}

/// `GET /api/shoji/groups`: the user's groups and their members, a view.
pub(crate) async fn groups(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let store = own_store(&state, &me).await?;
    let groups = store.read(|r| r.groups()).await?;
    let value: Vec<Value> = groups.iter().map(|(n, m)| group_json(n, m)).collect();
    Ok(answer(
        StatusCode::OK,
        view(&format!("{API}/groups"), Value::Array(value)),
    ))
}

async fn own_store(
    state: &AppState,
    me: &mantle_site::Avatar,
) -> Result<mantle_store::Store, ApiError> {
    Ok(state.site.stores().user_store_unchecked(me.account).await?)
}

/// The body of `POST /api/shoji/groups`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    name: String,
}

/// `POST /api/shoji/groups` `{"name"}`: makes the group (if it is not
/// there): 201, the group, and `Location`.
pub(crate) async fn create_group(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Response, ApiError> {
    let store = own_store(&state, &me).await?;
    let name = body.name.clone();
    store.transact(move |tx| tx.create_group(&name)).await?;
    let url = group_url(&body.name);
    let mut r = answer(StatusCode::CREATED, group_json(&body.name, &[]));
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// `GET /api/shoji/groups/{name}`: the group as an entity (its body: name,
/// role, members).
pub(crate) async fn group(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let store = own_store(&state, &me).await?;
    let groups = store.read(|r| r.groups()).await?;
    let Some((name, members)) = groups.into_iter().find(|(n, _)| *n == name) else {
        return Err(SiteError::NoSuchGroup(name).into());
    };
    let url = group_url(&name);
    let doc = json!({
        "element": "shoji:entity",
        "self": url,
        "body": group_json(&name, &members),
        "catalogs": {},
        "views": {},
        "fragments": {},
    });
    Ok(answer(StatusCode::OK, doc))
}

/// `DELETE /api/shoji/groups/{name}`: deletes the group, its memberships
/// and the shares made to it: 204 (404 if there is none).
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let store = own_store(&state, &me).await?;
    let key = name.clone();
    if store.transact(move |tx| tx.delete_group(&key)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(SiteError::NoSuchGroup(name).into())
    }
}

/// The body of `POST /api/shoji/groups/{name}/members`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    role: String,
}

/// `POST /api/shoji/groups/{name}/members` `{"role"}`: adds a member (a
/// role or a login): 204; 409 if it would make a cycle, 404 if a group
/// does not exist.
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<MemberBody>,
) -> Result<Response, ApiError> {
    let role = role_of(&state.site, &body.role).await?;
    let store = own_store(&state, &me).await?;
    store
        .transact(move |tx| tx.add_member(&name, &role))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/shoji/groups/{name}/members/{role}`: removes a member:
/// 204 (404 if it was not one).
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((name, member)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let role = role_of(&state.site, &member).await?;
    let store = own_store(&state, &me).await?;
    let group = name.clone();
    let removed = store
        .transact(move |tx| tx.remove_member(&group, &role))
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "'{member}' is not a member of group '{name}'"
        )))
    }
}
