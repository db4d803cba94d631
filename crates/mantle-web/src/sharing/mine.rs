//! The user's own items as Shoji documents: a catalog per shareable type
//! (`/api/shoji/mine/{type}/`, paged and filtered by attribute), and each
//! item as an entity (`/api/shoji/mine/{type}/{id}`). Reached through the
//! user's own store: these are nobody else's items.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantle_site::Avatar;
use mantle_site::sharing::{Save, ShareableType};
use mantle_store::Store;
use serde_json::{Value, json};

use super::shoji::{body_json, entity, entity_answer, entity_body, if_match, saved_answer};
use super::{API, installed_type, own_error, query_part, save_in, segment};
use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Items per page when the request names no `limit`.
pub const DEFAULT_LIMIT: u64 = 50;
/// The most items a page holds, whatever `limit` says.
pub const MAX_LIMIT: u64 = 500;

/// A type the user may keep items of, and their store.
pub(super) struct Mine {
    pub ty: Arc<ShareableType>,
    pub store: Store,
}

/// The type `type_name` for `me`: a shareable type of an installed
/// offering `me` holds (404 otherwise), with `me`'s own store.
pub(super) async fn mine(state: &AppState, me: &Avatar, type_name: &str) -> Result<Mine, ApiError> {
    let missing = || ApiError::not_found(format!("no catalog '{type_name}'"));
    let ty = installed_type(&state.site, type_name).ok_or_else(missing)?;
    if !state
        .site
        .products()
        .holds(me.account, &ty.offering)
        .await?
    {
        return Err(missing());
    }
    let store = state.site.stores().user_store_unchecked(me.account).await?;
    Ok(Mine { ty, store })
}

/// The URL of `type_name`'s catalog.
pub(super) fn catalog_url(type_name: &str) -> String {
    format!("{API}/mine/{}/", segment(type_name))
}

/// The URL of the user's item `id` of type `type_name`.
pub(super) fn entity_url(type_name: &str, id: i64) -> String {
    format!("{API}/mine/{}/{id}", segment(type_name))
}

/// An item id from a URL: 404 unless it is a number.
pub(super) fn item_id(type_name: &str, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("no {type_name} {id}")))
}

/// A catalog page's query: `offset`, `limit`, and `ATTRIBUTE=VALUE`
/// filters (values read as JSON, else as a string).
struct Page {
    offset: u64,
    limit: u64,
    filters: Vec<(String, Value)>,
}

impl Page {
    fn parse(query: Vec<(String, String)>) -> Result<Page, ApiError> {
        // At most i64::MAX: the store's SQL reads them as integers.
        let number = |name: &str, v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("{name} must be a whole number, not {v:?}"),
                    )
                })
        };
        let mut page = Page {
            offset: 0,
            limit: DEFAULT_LIMIT,
            filters: Vec::new(),
        };
        for (k, v) in query {
            match k.as_str() {
                "offset" => page.offset = number("offset", &v)?,
                "limit" => page.limit = number("limit", &v)?.clamp(1, MAX_LIMIT),
                _ => {
                    let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
                    page.filters.push((k, value));
                }
            }
        }
        Ok(page)
    }

    /// The catalog URL of the page at `offset`, with the same filters.
    fn url(&self, base: &str, offset: u64) -> String {
        let mut q = format!("offset={offset}&limit={}", self.limit);
        for (k, v) in &self.filters {
            // A string that would read as JSON is written as JSON.
            let v = match v {
                Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
                v => v.to_string(),
            };
            q.push_str(&format!("&{}={}", query_part(k), query_part(&v)));
        }
        format!("{base}?{q}")
    }
}

/// `GET /api/shoji/mine/{type}/?offset=&limit=&ATTR=VALUE…`: a page of
/// the user's items of the type (in id order; `limit` 50 unless given, at
/// most 500), those whose attributes equal the filters. `views` links the
/// `next` and `previous` pages when there are; `total` says how many
/// match; `catalogs` has a URI template per attribute (`by title`).
pub(crate) async fn catalog(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(type_name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let page = Page::parse(query)?;
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let (filters, offset, limit) = (page.filters.clone(), page.offset, page.limit);
    let reader = ty.clone();
    let (items, total) = store
        .read(move |r| reader.list(r, &filters, offset, limit))
        .await
        .map_err(own_error)?;
    let base = catalog_url(ty.type_name);
    let mut doc = super::shoji::catalog(
        &page.url(&base, offset),
        ty.type_name,
        &format!(
            "Your {} items (offering {}): POST one to add it",
            ty.type_name, ty.offering
        ),
    );
    let entities: Vec<Value> = items
        .iter()
        .map(|e| json!(entity_url(ty.type_name, e.id)))
        .collect();
    doc.insert("entities".into(), Value::Array(entities));
    let by: serde_json::Map<String, Value> = ty
        .attributes
        .iter()
        .map(|a| (format!("by {a}"), json!(format!("{base}{{?{a}}}"))))
        .collect();
    doc.insert("catalogs".into(), Value::Object(by));
    let mut views = serde_json::Map::new();
    if offset.saturating_add(items.len() as u64) < total {
        views.insert(
            "next".into(),
            json!(page.url(&base, offset.saturating_add(limit))),
        );
    }
    if offset > 0 {
        views.insert(
            "previous".into(),
            json!(page.url(&base, offset.saturating_sub(limit))),
        );
    }
    doc.insert("views".into(), Value::Object(views));
    doc.insert("total".into(), json!(total));
    Ok(super::shoji::answer(StatusCode::OK, doc))
}

/// `POST /api/shoji/mine/{type}/`: makes an item of the body: 201, its
/// entity, and `Location`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(type_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let body = body_json(&body)?;
    let writer = ty.clone();
    let made = store
        .transact(move |tx| writer.insert(tx, body))
        .await
        .map_err(own_error)?;
    let url = entity_url(ty.type_name, made.id);
    let doc = own_doc(&url, &ty, &made);
    let mut r = entity_answer(StatusCode::CREATED, doc, made.revision);
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// The user's own entity: links to its catalog and its shares.
fn own_doc(
    url: &str,
    ty: &ShareableType,
    e: &mantle_site::sharing::Entity,
) -> serde_json::Map<String, Value> {
    let mut doc = entity(url, e);
    own_links(&mut doc, url, ty.type_name);
    doc
}

/// Links an own entity to its catalog and its shares.
fn own_links(doc: &mut serde_json::Map<String, Value>, url: &str, type_name: &str) {
    doc.insert(
        "catalogs".into(),
        json!({ "parent": catalog_url(type_name) }),
    );
    doc.insert("views".into(), json!({ "shares": format!("{url}/shares") }));
}

/// `GET /api/shoji/mine/{type}/{id}`: the item, with its revision as
/// `ETag`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let reader = ty.clone();
    let Some(e) = store
        .read(move |r| reader.get(r, id))
        .await
        .map_err(own_error)?
    else {
        return Err(ApiError::not_found(format!("no {type_name} {id}")));
    };
    let doc = own_doc(&entity_url(ty.type_name, id), &ty, &e);
    Ok(entity_answer(StatusCode::OK, doc, e.revision))
}

/// `PUT /api/shoji/mine/{type}/{id}`: replaces the item's body; with
/// `If-Match: "REVISION"`, only at that revision (412 and the item as it
/// is otherwise).
pub(crate) async fn put(
    state: State<AppState>,
    me: Authenticated,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    save(state, me, path, headers, body, Save::Replace).await
}

/// `PATCH /api/shoji/mine/{type}/{id}`: changes the attributes the body
/// names; `If-Match` as for `PUT`.
pub(crate) async fn patch(
    state: State<AppState>,
    me: Authenticated,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    save(state, me, path, headers, body, Save::Merge).await
}

async fn save(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    how: Save,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let revision = if_match(&headers)?;
    let body = entity_body(&body)?;
    let writer = ty.clone();
    let saved = store
        .transact(move |tx| save_in(tx, &writer, id, body, how, revision))
        .await
        .map_err(own_error)?;
    let url = entity_url(ty.type_name, id);
    Ok(saved_answer(&url, saved, |doc| {
        own_links(doc, &url, ty.type_name)
    }))
}

/// `DELETE /api/shoji/mine/{type}/{id}`: deletes the item and withdraws
/// its shares: 204 (404 if there is none).
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Mine { ty, store } = mine(&state, &me, &type_name).await?;
    let id = item_id(&type_name, &id)?;
    let gone = store
        .transact(move |tx| ty.delete(tx, id))
        .await
        .map_err(own_error)?;
    if gone {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no {type_name} {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pages_read_offsets_limits_and_filters() {
        let p = Page::parse(q(&[
            ("limit", "9999"),
            ("done", "true"),
            ("title", "x y"),
            ("n", "3"),
        ]))
        .unwrap();
        assert_eq!((p.offset, p.limit), (0, MAX_LIMIT));
        assert_eq!(
            p.filters,
            vec![
                ("done".to_string(), json!(true)),
                ("title".to_string(), json!("x y")),
                ("n".to_string(), json!(3)),
            ]
        );
        assert_eq!(
            p.url("/c/", 10),
            "/c/?offset=10&limit=500&done=true&title=x%20y&n=3"
        );
        assert_eq!(Page::parse(q(&[])).unwrap().limit, DEFAULT_LIMIT);
        assert!(Page::parse(q(&[("offset", "-1")])).is_err());
        assert!(Page::parse(q(&[("offset", &u64::MAX.to_string())])).is_err());
        assert_eq!(
            Page::parse(q(&[("offset", &i64::MAX.to_string())]))
                .unwrap()
                .offset,
            i64::MAX as u64
        );
        assert!(Page::parse(q(&[("limit", "x")])).is_err());
        assert_eq!(item_id("t", "0").unwrap_err().status, StatusCode::NOT_FOUND);
    }
}
