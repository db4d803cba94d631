//! Cross-site request forgery: a double-submit token.
//!
//! Every page sets a random `mantle_csrf` cookie (HttpOnly, SameSite=Lax)
//! and puts the same value in its forms; a form post must repeat it. A
//! script of ours that calls the JSON API with the login cookie (rather
//! than a bearer token) repeats it in the `X-CSRF-Token` header, which
//! another site's page can neither read nor set. Requests with
//! `Authorization: Bearer` need no token: a browser never adds that header
//! on its own.

use axum::http::{HeaderMap, HeaderValue, Method};
use base64::Engine;

use crate::auth::{cookie, set_cookie};
use crate::state::AppState;

/// The cookie holding the token.
pub const CSRF_COOKIE: &str = "mantle_csrf";
/// The header a script repeats the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A token's length (256 random bits, URL-safe base64).
pub(crate) const TOKEN_LEN: usize = 43;

/// The request's CSRF token, and a `Set-Cookie` if it had none. Without
/// randomness the token is empty and no cookie is set, so every form
/// fails its check (an empty token never matches).
pub(crate) fn csrf_token(headers: &HeaderMap, state: &AppState) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) if t.len() == TOKEN_LEN => (t.to_string(), None),
        _ => {
            let mut bytes = [0u8; 32];
            if getrandom::fill(&mut bytes).is_err() {
                tracing::error!("no randomness for a CSRF token; forms will be refused");
                return (String::new(), None);
            }
            let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let c = set_cookie(CSRF_COOKIE, &t, 86_400 * 7, state.secure_cookies(), true);
            (t, Some(c))
        }
    }
}

/// Whether `posted` repeats the request's CSRF cookie.
pub(crate) fn csrf_ok(headers: &HeaderMap, posted: &str) -> bool {
    match cookie(headers, CSRF_COOKIE) {
        Some(c) if c.len() == TOKEN_LEN => {
            // Constant-time comparison of equal-length strings.
            c.len() == posted.len()
                && c.bytes()
                    .zip(posted.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

/// Whether a request authenticated by the login cookie alone may do
/// `method`: safe methods always; others only with the CSRF header.
pub(crate) fn cookie_request_ok(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|posted| csrf_ok(headers, posted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{CSRF_COOKIE}={value}")).unwrap(),
        );
        h
    }

    #[test]
    fn only_the_cookies_own_value_passes() {
        let t = "a".repeat(TOKEN_LEN);
        let h = with_cookie(&t);
        assert!(csrf_ok(&h, &t));
        assert!(!csrf_ok(&h, &"b".repeat(TOKEN_LEN)));
        assert!(!csrf_ok(&h, ""));
        // No cookie, or a short one, never passes.
        assert!(!csrf_ok(&HeaderMap::new(), ""));
        assert!(!csrf_ok(&with_cookie(""), ""));
    }

    #[test]
    fn unsafe_cookie_requests_need_the_header() {
        let t = "a".repeat(TOKEN_LEN);
        let mut h = with_cookie(&t);
        assert!(cookie_request_ok(&Method::GET, &h));
        assert!(!cookie_request_ok(&Method::POST, &h));
        h.insert(CSRF_HEADER, HeaderValue::from_str(&t).unwrap());
        assert!(cookie_request_ok(&Method::POST, &h));
        assert!(cookie_request_ok(&Method::DELETE, &h));
    }
}
