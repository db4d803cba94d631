//! The lists' page: `GET /lists/{name}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use mantle_web::{AppState, MaybeAuthenticated};

/// The page: a MiniJinja template (`name`, `user`), auto-escaped as HTML.
const PAGE: &str = include_str!("page.html");

fn render(name: &str, user: &str) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", PAGE)?;
    env.get_template("page.html")?
        .render(minijinja::context! { name, user })
}

/// The page's script, a file of its own: the site's content security
/// policy runs no inline scripts.
const SCRIPT: &str = include_str!("page.js");

/// `GET /lists/{name}`: the list's page for a logged-in browser whose
/// user was given the lists (others are redirected to `/login`, or told
/// 404); `GET /lists/page.js`: its script.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/lists/page.js", get(script))
        .route("/lists/{name}", get(page))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

async fn page(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    Path(name): Path<String>,
) -> Response {
    let Some(me) = me else {
        return Redirect::to("/login").into_response();
    };
    // Only for users given the lists; to others, as if it did not exist.
    match state.site.products().holds(me.account, crate::APP).await {
        Ok(true) => {}
        Ok(false) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return mantle_web::ApiError::from(e).into_response(),
    }
    if let Err(why) = crate::check_name(&name) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let html = match render(&name, &me.address) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(%e, "lists page template");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the page").into_response();
        }
    };
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(html),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped_and_the_page_has_its_placeholders() {
        let html = super::render("shop", r#"<a href="x">&'"#).unwrap();
        assert!(
            html.contains("&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"),
            "{html}"
        );
        assert!(html.contains(r#"data-list="shop""#));
        assert!(super::PAGE.contains(r#"src="/live.js""#));
        assert!(super::PAGE.contains(r#"src="/lists/page.js""#));
        assert!(!super::PAGE.contains("<script>"), "no inline scripts");
    }
}
