//! Who is asking: the token from `Authorization: Bearer` or the cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use mantle_site::Avatar;

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie carrying the login token.
pub const TOKEN_COOKIE: &str = "mantle_token";

/// The value of cookie `name`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The token a request presents: the bearer header wins over the cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    presented(headers).map(|(t, _)| t)
}

/// The token of an `Authorization: Bearer` header, ignoring cookies.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    presented(headers)
        .filter(|(_, from_cookie)| !from_cookie)
        .map(|(t, _)| t)
}

/// The token a request presents, and whether it came from the cookie.
pub(crate) fn presented(headers: &HeaderMap) -> Option<(&str, bool)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|t| (t.trim(), false));
    }
    cookie(headers, TOKEN_COOKIE).map(|t| (t, true))
}

/// The token of a request that may act as its user: a bearer token, or
/// the login cookie when the method is safe or the request repeats the
/// CSRF token (see `csrf`); else 403.
pub(crate) fn acting_token<'h>(
    method: &axum::http::Method,
    headers: &'h HeaderMap,
) -> Result<&'h str, ApiError> {
    let (token, from_cookie) = presented(headers).ok_or_else(ApiError::unauthorized)?;
    if from_cookie && !crate::csrf::cookie_request_ok(method, headers) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "a request authenticated by the login cookie must repeat the CSRF token in the {} header (or use Authorization: Bearer)",
                crate::csrf::CSRF_HEADER
            ),
        ));
    }
    Ok(token)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure behind TLS.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: i64,
    secure: bool,
    http_only: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age_secs}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are URL-safe base64")
}

/// An authenticated request's avatar (401 if there is none).
pub struct Authenticated(pub Avatar);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = acting_token(&parts.method, &parts.headers)?;
        let avatar = state.site.auth().authenticate(token).await?;
        Ok(Authenticated(avatar))
    }
}

/// The avatar if the request has a valid token, else `None`.
pub struct MaybeAuthenticated(pub Option<Avatar>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = presented_token(&parts.headers) else {
            return Ok(MaybeAuthenticated(None));
        };
        match state.site.auth().authenticate(token).await {
            Ok(a) => Ok(MaybeAuthenticated(Some(a))),
            Err(mantle_site::SiteError::BadToken) => Ok(MaybeAuthenticated(None)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The avatar acting in a request that may also come from nobody: `None`
/// when no token is presented (an anonymous visitor); otherwise as
/// [`Authenticated`]: the token must be valid (401), and a request
/// authenticated by the login cookie with an unsafe method must repeat
/// the CSRF token (403). For APIs that answer anonymous callers too (the
/// Shoji API's shared entities) without letting another site's page act
/// as the user.
///
/// ```no_run
/// use mantle_web::MaybeActing;
/// use mantle_site::sharing::Viewer;
///
/// async fn handler(MaybeActing(me): MaybeActing) -> String {
///     format!("{:?}", Viewer::of(me.as_ref()))
/// }
/// ```
pub struct MaybeActing(pub Option<Avatar>);

impl FromRequestParts<AppState> for MaybeActing {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if presented(&parts.headers).is_none() {
            return Ok(MaybeActing(None));
        }
        let Authenticated(avatar) = Authenticated::from_request_parts(parts, state).await?;
        Ok(MaybeActing(Some(avatar)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_over_cookie_and_cookies_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mantle_token=abc; b=2"),
        );
        assert_eq!(presented_token(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(presented_token(&h), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    proptest::proptest! {
        // Cookie and Authorization headers come straight from the network.
        #[test]
        fn header_parsing_never_panics(
            cookie_raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            auth_raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&cookie_raw) {
                h.insert(header::COOKIE, v);
            }
            if let Ok(v) = HeaderValue::from_bytes(&auth_raw) {
                h.insert(header::AUTHORIZATION, v);
            }
            let _ = presented_token(&h);
            let _ = cookie(&h, TOKEN_COOKIE);
        }
    }
}
