//! Security headers every answer carries, unless a route set its own.
//!
//! - `Content-Security-Policy`: scripts, styles, images and connections
//!   from this origin only (inline styles allowed, inline scripts not),
//!   no plugins, forms posting only here, and no framing by anyone
//!   (`frame-ancestors 'none'`, with `X-Frame-Options: DENY` for older
//!   browsers): a page with buttons cannot be overlaid by another site.
//! - `X-Content-Type-Options: nosniff`: a JSON answer is never run as a
//!   script.
//! - `Referrer-Policy: same-origin`: page addresses never leak to other
//!   sites.
//! - `Cache-Control: no-store` on answers to requests that presented a
//!   login (cookie or bearer): a shared or back-button cache never keeps
//!   a user's page.
//! - `Strict-Transport-Security` when the site is served over TLS (or
//!   behind a TLS proxy).

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The content security policy of every page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// HSTS: a year, subdomains included.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// What the layer needs to know of the site.
#[derive(Clone, Copy)]
pub(crate) struct HeaderPolicy {
    /// Whether answers reach the client over TLS.
    pub tls: bool,
}

/// The middleware (see the module docs).
pub(crate) async fn secure(
    State(policy): State<HeaderPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let credentialed = crate::auth::presented_token(request.headers()).is_some();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let mut default = |name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    default(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    default(header::X_FRAME_OPTIONS, "DENY");
    default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    default(header::REFERRER_POLICY, "same-origin");
    if credentialed {
        default(header::CACHE_CONTROL, "no-store");
    }
    if policy.tls {
        default(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}
