//! The JSON API for programs: login, logout, me, tokens, signup, slates.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantle_site::{Expect, SlateDoc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Authenticated, TOKEN_COOKIE, set_cookie};
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body, with rejections answered as `{"error": …}` (400 for bad
/// JSON, 413 for a body over the limit, 415 for a wrong content type).
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// The body of `POST /api/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/login`: `{"username", "password"}` → `{"token"}` and the cookie.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let issued = state
        .site
        .auth()
        .login_from(Some(peer.ip()), &c.username, &c.password, "api login")
        .await?;
    let max_age = state.site.config().token_ttl().as_secs() as i64;
    let mut r = Json(json!({ "token": issued.token, "expires": issued.expires.to_string() }))
        .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            TOKEN_COOKIE,
            &issued.token,
            max_age,
            state.secure_cookies(),
            true,
        ),
    );
    Ok(r)
}

/// `POST /api/logout`: revokes the token presented; clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = crate::auth::acting_token(&method, &headers)?;
    if !state.site.auth().logout(token).await? {
        return Err(ApiError::unauthorized());
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(TOKEN_COOKIE, "", 0, state.secure_cookies(), true),
    );
    Ok(r)
}

/// `GET /api/me`: the account's primary login and its other logins.
pub async fn me(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let info = state.site.accounts().by_id(me.account).await?;
    Ok(Json(json!({
        "primary": info.primary,
        "logins": info.logins.iter().filter(|l| **l != info.primary).collect::<Vec<_>>(),
        "admin": info.admin,
    }))
    .into_response())
}

/// `GET /api/tokens`: the account's live tokens (never their secrets).
pub async fn tokens(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let list = state.site.auth().tokens(me.account).await?;
    let list: Vec<_> = list
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "created": t.created.to_string(),
                "expires": t.expires.to_string(),
                "last_used": t.last_used.to_string(),
                "label": t.label,
                "current": t.id == me.token.raw(),
            })
        })
        .collect();
    Ok(Json(json!({ "tokens": list })).into_response())
}

/// `DELETE /api/tokens/{id}`: revokes one of the account's tokens.
pub async fn revoke_token(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.site.auth().revoke_token(me.account, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such token"))
    }
}

/// The body of `POST /api/signup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    username: String,
    password: String,
    #[serde(default)]
    invite: Option<String>,
}

/// `POST /api/signup`: creates an account under the site's policy.
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(s): JsonBody<Signup>,
) -> Result<Response, ApiError> {
    state.site.auth().count_attempt(peer.ip())?;
    let info = state
        .site
        .accounts()
        .signup(&s.username, &s.password, s.invite.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "primary": info.primary })),
    )
        .into_response())
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits")
}

/// Parses `If-Match` as one of our ETags.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match '{text}' is not a version of this slate"),
        )
    })
}

fn slate_response(status: StatusCode, doc: &SlateDoc) -> Response {
    let mut r = (
        status,
        Json(json!({
            "name": doc.name,
            "version": doc.version,
            "expires": doc.expires.map(|t| t.to_string()),
            "body": doc.body,
        })),
    )
        .into_response();
    r.headers_mut().insert(header::ETAG, etag(doc.version));
    r
}

/// `GET /api/slates`: names of the account's slates.
pub async fn list_slates(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Response, ApiError> {
    let names = state.site.slates().names(me.account).await?;
    Ok(Json(json!({ "slates": names })).into_response())
}

/// `GET /api/slates/{name}`: the slate, with its version as `ETag`.
pub async fn get_slate(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match state.site.slates().get(me.account, &name).await? {
        Some(doc) => Ok(slate_response(StatusCode::OK, &doc)),
        None => Err(ApiError::not_found(format!("no slate '{name}'"))),
    }
}

/// Query parameters of `PUT /api/slates/{name}`.
#[derive(Deserialize)]
pub struct PutParams {
    /// Time to live in seconds (workflow slates).
    ttl: Option<u64>,
}

/// `PUT /api/slates/{name}`: the body is the JSON document. Creating needs
/// no header (or `If-None-Match: *`); replacing needs `If-Match` with the
/// current version (missing: 428; stale: 412).
pub async fn put_slate(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
    Query(params): Query<PutParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    mantle_site::check_slate_name(&name)?;
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))?;
    let expect = match (if_match(&headers)?, headers.get(header::IF_NONE_MATCH)) {
        (Some(v), _) => Expect::Version(v),
        (None, Some(v)) if v.as_bytes() == b"*" => Expect::Absent,
        _ => Expect::Unspecified,
    };
    let ttl = params.ttl.map(Duration::from_secs);
    let (doc, created) = state
        .site
        .slates()
        .put(me.account, &name, doc, expect, ttl)
        .await?;
    Ok(slate_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &doc,
    ))
}

/// `DELETE /api/slates/{name}`: with `If-Match`, only at that version.
pub async fn delete_slate(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let version = if_match(&headers)?;
    state
        .site
        .slates()
        .delete(me.account, &name, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/{login}/slates/{name}`: a user's slate by login. Only
/// its owner sees it; to anyone else it does not exist (404, never 403,
/// which would confirm the user exists).
pub async fn get_user_slate(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((login, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let owner = state.site.accounts().get(&login).await.ok();
    if owner.is_none_or(|o| o.id != me.account) {
        return Err(ApiError::not_found(format!("no slate '{name}'")));
    }
    get_slate(State(state), Authenticated(me), Path(name)).await
}

/// `PUT /api/users/{login}/slates/{name}`: as [`put_slate`], for the owner only.
pub async fn put_user_slate(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    Path((login, name)): Path<(String, String)>,
    query: Query<PutParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let owner = state.site.accounts().get(&login).await.ok();
    if owner.is_none_or(|o| o.id != me.account) {
        return Err(ApiError::not_found(format!("no slate '{name}'")));
    }
    put_slate(
        State(state),
        Authenticated(me),
        Path(name),
        query,
        headers,
        body,
    )
    .await
}

/// `GET /health`: the process answers and its site store reads.
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .site
        .stores()
        .site_store()
        .read(|r| r.query::<mantle_site::Account>().exists())
        .await?;
    Ok(Json(json!({ "status": "ok" })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_if_match(raw: &[u8]) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_bytes(raw).ok()?);
        Some(h)
    }

    #[test]
    fn if_match_takes_our_etags_and_refuses_others() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            if_match(&with_if_match(b"\"3\"").unwrap()).unwrap(),
            Some(3)
        );
        assert_eq!(
            if_match(&with_if_match(b"W/\"7\"").unwrap()).unwrap(),
            Some(7)
        );
        let e = if_match(&with_if_match(b"\"abc\"").unwrap()).unwrap_err();
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
    }

    proptest! {
        // Header values come straight from the network: any bytes give an
        // answer, never a panic.
        #[test]
        fn if_match_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(h) = with_if_match(&raw) {
                let _ = if_match(&h);
            }
        }
    }
}
