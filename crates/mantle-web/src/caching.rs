//! Caching for public answers: crawlers and browsers revalidate instead
//! of fetching again.
//!
//! A `GET` or `HEAD` that presents no login and is answered 200 (and not
//! `no-store`) gets an `ETag` (a hash of its body, unless the handler set
//! one), a `Last-Modified` (the server's start, unless the handler set
//! one) and `Cache-Control: no-cache` (revalidate every time; the answer
//! may change at any deploy). A request whose `If-None-Match` names that
//! tag, or (without `If-None-Match`) whose `If-Modified-Since` is not
//! before `Last-Modified`, is answered 304 with no body.
//!
//! Pages carry a per-visitor CSRF token, which would make every visit's
//! body, and so its tag, differ: they compute their tag over the page
//! without the token ([`page_etag`]), so a crawler's revalidation still
//! matches.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Bodies larger than this are passed through untagged (they are not
/// pages; reading them whole would cost memory).
const MAX_TAGGED_BODY: usize = 1 << 20;

/// When the server started: the `Last-Modified` of what it serves from
/// its own binary.
#[derive(Clone, Copy)]
pub(crate) struct Started(pub SystemTime);

/// A strong tag for `bytes`: 128 bits of SHA-256, quoted.
fn etag_of(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
}

/// The tag of a rendered page, computed without its per-visitor CSRF
/// token.
pub(crate) fn page_etag(html: &str, csrf: &str) -> HeaderValue {
    if csrf.is_empty() {
        return etag_of(html.as_bytes());
    }
    etag_of(html.replace(csrf, "").as_bytes())
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn none_match_hits(headers: &HeaderMap, etag: &HeaderValue) -> Option<bool> {
    let v = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let ours = etag.to_str().ok()?;
    Some(
        v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == ours || t.strip_prefix("W/") == Some(ours)),
    )
}

/// Whether `If-Modified-Since` is not before `last_modified`.
fn not_modified_since(headers: &HeaderMap, last_modified: &HeaderValue) -> bool {
    let parse = |v: &HeaderValue| httpdate::parse_http_date(v.to_str().ok()?).ok();
    match (
        headers.get(header::IF_MODIFIED_SINCE).and_then(parse),
        parse(last_modified),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// The middleware (see the module docs).
pub(crate) async fn conditional(
    State(started): State<Started>,
    request: Request,
    next: Next,
) -> Response {
    let cacheable = matches!(*request.method(), Method::GET | Method::HEAD)
        && crate::auth::presented_token(request.headers()).is_none();
    // Only the two headers a revalidation needs, and only when the answer
    // may be cached: no copy of every request's headers.
    let mut asked = HeaderMap::new();
    if cacheable {
        for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE] {
            if let Some(v) = request.headers().get(&name) {
                asked.insert(name, v.clone());
            }
        }
    }
    let response = next.run(request).await;
    if !cacheable || response.status() != StatusCode::OK {
        return response;
    }
    let no_store = response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-store"));
    if no_store {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (etag, body) = match parts.headers.get(header::ETAG).cloned() {
        Some(tag) => (tag, body),
        None => {
            // Only bodies known to be small are read whole to be tagged.
            let small = axum::body::HttpBody::size_hint(&body)
                .upper()
                .is_some_and(|n| n <= MAX_TAGGED_BODY as u64);
            if !small {
                return Response::from_parts(parts, body);
            }
            match axum::body::to_bytes(body, MAX_TAGGED_BODY).await {
                Ok(bytes) => (etag_of(&bytes), Body::from(bytes)),
                Err(e) => {
                    tracing::warn!(%e, "could not read an answer to tag it");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
                }
            }
        }
    };
    let h = &mut parts.headers;
    h.insert(header::ETAG, etag.clone());
    if !h.contains_key(header::LAST_MODIFIED) {
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(started.0)).expect("an HTTP date"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    let fresh = match none_match_hits(&asked, &etag) {
        Some(hit) => hit,
        None => not_modified_since(&asked, &h[header::LAST_MODIFIED]),
    };
    if fresh {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tags_ignore_the_csrf_token() {
        let a = page_etag("<form><input value=\"tokA\"></form>", "tokA");
        let b = page_etag("<form><input value=\"tokB\"></form>", "tokB");
        assert_eq!(a, b);
        assert_ne!(a, page_etag("<form><input value=\"tokA\">!</form>", "tokA"));
    }

    #[test]
    fn if_none_match_matches_our_tag_weak_or_strong_or_star() {
        let tag = etag_of(b"x");
        let mut h = HeaderMap::new();
        assert_eq!(none_match_hits(&h, &tag), None);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(none_match_hits(&h, &tag), Some(false));
        let listed = format!("\"other\", W/{}", tag.to_str().unwrap());
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&listed).unwrap(),
        );
        assert_eq!(none_match_hits(&h, &tag), Some(true));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(none_match_hits(&h, &tag), Some(true));
    }

    #[test]
    fn if_modified_since_compares_dates() {
        let modified = HeaderValue::from_static("Mon, 30 Nov 2026 10:00:00 GMT");
        let mut h = HeaderMap::new();
        assert!(!not_modified_since(&h, &modified));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Mon, 30 Nov 2026 10:00:00 GMT"),
        );
        assert!(not_modified_since(&h, &modified));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Mon, 30 Nov 2026 09:59:59 GMT"),
        );
        assert!(!not_modified_since(&h, &modified));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("garbage"),
        );
        assert!(!not_modified_since(&h, &modified));
    }
}
