//! The Shoji documents (draft 02: catalogs, entities, views, as JSON),
//! the root catalog, the catalog of what is shared with the user, and
//! shared entities at `/api/shoji/users/{login}/{share_id}`, reached only
//! through the sharing layer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantle_site::sharing::{DELETE, EDIT, Entity, Save, Viewer};
use serde_json::{Map, Value, json};

use super::{API, Opened, Saved, change, installed_type, open, save_in, segment, shared_url};
use crate::auth::{Authenticated, MaybeActing};
use crate::{ApiError, AppState};

/// A Shoji catalog: `element`, `self`, `title`, `description`, and empty
/// `catalogs`, `entities`, `views` and `fragments` to fill.
pub(super) fn catalog(self_url: &str, title: &str, description: &str) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("element".into(), json!("shoji:catalog"));
    doc.insert("self".into(), json!(self_url));
    doc.insert("title".into(), json!(title));
    doc.insert("description".into(), json!(description));
    doc.insert("catalogs".into(), json!({}));
    doc.insert("entities".into(), json!([]));
    doc.insert("views".into(), json!({}));
    doc.insert("fragments".into(), json!({}));
    doc
}

/// A Shoji entity: `element`, `self`, `body`, `revision`, and empty
/// `catalogs`, `views` and `fragments` to fill.
pub(super) fn entity(self_url: &str, e: &Entity) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("element".into(), json!("shoji:entity"));
    doc.insert("self".into(), json!(self_url));
    doc.insert("body".into(), e.body.clone());
    doc.insert("revision".into(), json!(e.revision));
    doc.insert("catalogs".into(), json!({}));
    doc.insert("views".into(), json!({}));
    doc.insert("fragments".into(), json!({}));
    doc
}

/// A Shoji view: `element`, `self`, `value`.
pub(super) fn view(self_url: &str, value: Value) -> Value {
    json!({ "element": "shoji:view", "self": self_url, "value": value })
}

/// A document answered as `application/json`.
pub(super) fn answer(status: StatusCode, doc: impl Into<Value>) -> Response {
    (status, Json(doc.into())).into_response()
}

/// An entity answered with its revision as `ETag`.
pub(super) fn entity_answer(
    status: StatusCode,
    doc: Map<String, Value>,
    revision: i64,
) -> Response {
    let mut r = answer(status, doc);
    r.headers_mut().insert(header::ETAG, etag(revision));
    r
}

fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits")
}

/// `If-Match` as a revision: `"3"` (or `W/"3"`); `*` or none is no
/// condition. Anything else names no revision: 412.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<i64>().map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match {text:?} is not a revision (send the ETag as it came: \"3\")"),
        )
    })
}

/// A request body as JSON (400 if it is not).
pub(super) fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))
}

/// The attributes a `PUT` or `PATCH` sends: the body itself, or the
/// `body` of a Shoji entity document (`{"element": "shoji:entity",
/// "body": {...}}`, what a `GET` answered), as Shoji clients send it.
pub(super) fn entity_body(body: &Bytes) -> Result<Value, ApiError> {
    let value = body_json(body)?;
    match value {
        Value::Object(mut doc) if doc.get("element") == Some(&json!("shoji:entity")) => {
            doc.remove("body").ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "a shoji:entity document without a body",
                )
            })
        }
        other => Ok(other),
    }
}

/// The answer to a save: 200 and the entity, or 412 and the entity as it
/// is, with `current_revision` (as live's `SaveConflict`).
pub(super) fn saved_answer(
    self_url: &str,
    saved: Saved,
    dress: impl Fn(&mut Map<String, Value>),
) -> Response {
    match saved {
        Saved::Done(e) => {
            let mut doc = entity(self_url, &e);
            dress(&mut doc);
            entity_answer(StatusCode::OK, doc, e.revision)
        }
        Saved::Conflict { yours, current } => {
            let mut doc = entity(self_url, &current);
            dress(&mut doc);
            doc.insert("your_revision".into(), json!(yours));
            doc.insert("current_revision".into(), json!(current.revision));
            doc.insert(
                "error".into(),
                json!(format!(
                    "the item was saved by someone else since revision {yours}; it is now at revision {}",
                    current.revision
                )),
            );
            entity_answer(StatusCode::PRECONDITION_FAILED, doc, current.revision)
        }
    }
}

/// `GET /api/shoji/`: the user's root catalog: one catalog per shareable
/// type of the installed offerings they hold, and what is shared with
/// them.
pub(crate) async fn root(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let mut doc = catalog(
        &format!("{API}/"),
        "Your items",
        "Your shareable items by type, and what others share with you",
    );
    let mut catalogs = Map::new();
    for ty in state.site.sharing().types().iter() {
        if state.site.offerings().is_installed(&ty.offering)
            && state
                .site
                .products()
                .holds(me.account, &ty.offering)
                .await?
        {
            catalogs.insert(
                ty.type_name.to_string(),
                json!(format!("{API}/mine/{}/", segment(ty.type_name))),
            );
        }
    }
    catalogs.insert("shared with me".into(), json!(format!("{API}/shared/")));
    doc.insert("catalogs".into(), Value::Object(catalogs));
    doc.insert("views".into(), json!({ "groups": format!("{API}/groups") }));
    Ok(answer(StatusCode::OK, doc))
}

/// `GET /api/shoji/shared/`: what other users share with the user (and
/// the user may still open), as entities at
/// `/api/shoji/users/{owner}/{share_id}`; `index` says, for each, its
/// owner, share id, type and access.
pub(crate) async fn shared(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let entries = state.site.sharing().shared_with(me.account).await?;
    let mut doc = catalog(
        &format!("{API}/shared/"),
        "Shared with me",
        "Items other users share with you",
    );
    let mut entities = Vec::new();
    let mut index = Map::new();
    for e in entries {
        if installed_type(&state.site, &e.item_type).is_none() {
            continue;
        }
        let url = shared_url(&e.owner_login, &e.share_id);
        entities.push(json!(url));
        index.insert(
            url,
            json!({
                "owner": e.owner_login,
                "share_id": e.share_id,
                "type": e.item_type,
                "access": e.access,
            }),
        );
    }
    doc.insert("entities".into(), Value::Array(entities));
    doc.insert("index".into(), Value::Object(index));
    Ok(answer(StatusCode::OK, doc))
}

/// What a shared entity carries besides the Shoji members: the access
/// held.
fn shared_doc(self_url: &str, opened: &Opened) -> Map<String, Value> {
    let mut doc = entity(self_url, &opened.entity);
    doc.insert("access".into(), json!(opened.grant.access.names()));
    doc
}

/// `GET /api/shoji/users/{login}/{share_id}`: the shared entity, to
/// whoever the owner's shares let read it (anonymous visitors included):
/// 404 `{"error"}` otherwise, the same for every refusal.
pub(crate) async fn get_shared(
    State(state): State<AppState>,
    MaybeActing(me): MaybeActing,
    Path((login, share_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let opened = open(&state.site, Viewer::of(me.as_ref()), &login, &share_id).await?;
    let doc = shared_doc(&shared_url(&login, &share_id), &opened);
    Ok(entity_answer(StatusCode::OK, doc, opened.entity.revision))
}

/// `PUT /api/shoji/users/{login}/{share_id}`: replaces the entity's body
/// (needs `edit`).
pub(crate) async fn put_shared(
    state: State<AppState>,
    me: MaybeActing,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    save_shared(state, me, path, headers, body, Save::Replace).await
}

/// `PATCH /api/shoji/users/{login}/{share_id}`: changes the attributes the
/// body names (needs `edit`).
pub(crate) async fn patch_shared(
    state: State<AppState>,
    me: MaybeActing,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    save_shared(state, me, path, headers, body, Save::Merge).await
}

async fn save_shared(
    State(state): State<AppState>,
    MaybeActing(me): MaybeActing,
    Path((login, share_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    how: Save,
) -> Result<Response, ApiError> {
    let revision = if_match(&headers)?;
    let body = entity_body(&body)?;
    let viewer = Viewer::of(me.as_ref());
    let (saved, access) = change(
        &state.site,
        viewer,
        &login,
        &share_id,
        EDIT,
        move |tx, grant, ty| {
            let saved = save_in(tx, ty, grant.item_id, body, how, revision)?;
            Ok((saved, grant.access.names()))
        },
    )
    .await?;
    let self_url = shared_url(&login, &share_id);
    Ok(saved_answer(&self_url, saved, |doc| {
        doc.insert("access".into(), json!(access));
    }))
}

/// `DELETE /api/shoji/users/{login}/{share_id}`: deletes the item and its
/// shares (needs `delete`): 204.
pub(crate) async fn delete_shared(
    State(state): State<AppState>,
    MaybeActing(me): MaybeActing,
    Path((login, share_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(me.as_ref());
    change(
        &state.site,
        viewer,
        &login,
        &share_id,
        DELETE,
        |tx, grant, ty| ty.delete(tx, grant.item_id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(raw: &[u8]) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_bytes(raw).ok()?);
        Some(h)
    }

    #[test]
    fn if_match_takes_revisions() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(if_match(&with(b"*").unwrap()).unwrap(), None);
        assert_eq!(if_match(&with(b"\"4\"").unwrap()).unwrap(), Some(4));
        assert_eq!(if_match(&with(b"W/\"4\"").unwrap()).unwrap(), Some(4));
        let e = if_match(&with(b"\"x\"").unwrap()).unwrap_err();
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
    }

    proptest::proptest! {
        // Header values and bodies come from the network: an answer,
        // never a panic.
        #[test]
        fn bad_input_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Some(h) = with(&raw) {
                let _ = if_match(&h);
            }
            let _ = body_json(&Bytes::from(raw));
        }
    }
}
