//! The plain-HTTP listener of `[http] redirect_listen`: every request is
//! answered 308 (Permanent Redirect: the method and body are kept) to the
//! `https://` URL of the same host, path and query, on the HTTPS
//! listener's port. It serves nothing else, sets no cookie and sends no
//! `Strict-Transport-Security` (browsers ignore it over plain HTTP).

use axum::Router;
use axum::extract::Request;
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The redirecting router, for an HTTPS listener on `https_port`.
pub(crate) fn router(https_port: u16) -> Router {
    Router::new().fallback(move |request: Request| async move { to_https(https_port, &request) })
}

fn to_https(https_port: u16, request: &Request) -> Response {
    let host = request
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
    match host.and_then(|h| location(h, request.uri(), https_port)) {
        Some(to) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, to)],
            "this site is served over HTTPS\n",
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "a request to this plain-HTTP listener must name its host (Host header); the site is served over HTTPS\n",
        )
            .into_response(),
    }
}

/// `https://HOST[:PORT]/PATH?QUERY` for a request to `host` (a `Host`
/// header, whose port is the plain listener's and is dropped); `None` if
/// `host` is not a host.
fn location(host: &str, uri: &Uri, https_port: u16) -> Option<HeaderValue> {
    let authority: Authority = host.parse().ok()?;
    let name = authority.host();
    if name.is_empty() {
        return None;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let to = if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    };
    HeaderValue::from_str(&to).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, uri: &str, port: u16) -> Option<String> {
        location(host, &uri.parse().unwrap(), port).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn the_location_is_the_same_host_and_path_on_the_https_port() {
        assert_eq!(
            at("example.com:8080", "/home?x=1&y=%20", 8443).as_deref(),
            Some("https://example.com:8443/home?x=1&y=%20")
        );
        assert_eq!(
            at("example.com", "/", 443).as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            at("[::1]:80", "/a", 8443).as_deref(),
            Some("https://[::1]:8443/a")
        );
        assert_eq!(
            at("user@example.com", "/a", 443).as_deref(),
            Some("https://example.com/a")
        );
        for bad in ["", "exa mple.com", "a/b", ":80"] {
            assert_eq!(at(bad, "/", 443), None, "{bad:?}");
        }
    }
}
