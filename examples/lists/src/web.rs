//! The lists' page: `GET /lists/{name}`.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use mantle_web::{AppState, MaybeAuthenticated};

/// The page, with `{{NAME}}` and `{{USER}}` (HTML-escaped) to fill in.
const PAGE: &str = include_str!("page.html");

/// `GET /lists/{name}`: the list's page for a logged-in browser (others
/// are redirected to `/login`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/lists/{name}", get(page))
}

async fn page(MaybeAuthenticated(me): MaybeAuthenticated, Path(name): Path<String>) -> Response {
    let Some(me) = me else {
        return Redirect::to("/login").into_response();
    };
    if let Err(why) = crate::check_name(&name) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let html = PAGE
        .replace("{{NAME}}", &escape(&name))
        .replace("{{USER}}", &escape(&me.address));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(html),
    )
        .into_response()
}

/// Text made safe for HTML text and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped_and_the_page_has_its_placeholders() {
        assert_eq!(
            super::escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert!(super::PAGE.contains("{{NAME}}") && super::PAGE.contains("{{USER}}"));
        assert!(super::PAGE.contains(r#"src="/live.js""#));
    }
}
