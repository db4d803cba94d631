//! What the web front adds to offerings: routes present only while the
//! offering is installed, pages for the users given it, templates that
//! extend the site's, static files, and links on the home page.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use mantle_site::Offering;
use mantle_web::harness::Harness;
use mantle_web::{AppState, Member, WebOffering, minijinja, render_page};

const PAGE: &str = r#"{% extends "base.html" %}{% block title %}Shelf{% endblock %}
{% block content %}<h1 id="shelf">Shelf of {{ who }}</h1>{% endblock %}"#;

async fn shelf(State(state): State<AppState>, headers: HeaderMap, member: Member) -> Response {
    render_page(
        &state,
        &headers,
        "shelf/page.html",
        minijinja::context! { who => member.avatar.address },
    )
}

fn shelf_offering() -> Offering {
    Offering::new("shelf", 1)
        .routes(|| Router::new().route("/shelf", get(shelf)))
        .template("shelf/page.html", PAGE)
        .asset(
            "/shelf/shelf.css",
            "text/css; charset=utf-8",
            b"h1 { color: teal }",
        )
        .nav("Shelf", "/shelf")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offerings_page_extends_the_sites_and_its_files_follow_its_installation() {
    let h = Harness::build(Harness::config(), |b| b.offering(shelf_offering())).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;

    // Not installed: nothing of it answers.
    h.get("/shelf")
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.get("/shelf/shelf.css")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    h.give("alice", "shelf").await;
    let page = h.get("/shelf").bearer(&alice).await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text()
            .contains(r#"<h1 id="shelf">Shelf of alice@example.com</h1>"#),
        "{}",
        page.text()
    );
    // The site's chrome, from base.html.
    assert!(page.text().contains("<title>Shelf"), "{}", page.text());
    let css = h.get("/shelf/shelf.css").await;
    css.assert_status(StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.text(), "h1 { color: teal }");
    // Bob was not given it.
    h.get("/shelf")
        .bearer(&bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Alice's home page links to it; Bob's does not.
    let home = h.get("/home").bearer(&alice).await;
    assert!(
        home.text()
            .replace("&#x2f;", "/")
            .contains(r#"href="/shelf""#),
        "{}",
        home.text()
    );
    let home = h.get("/home").bearer(&bob).await;
    assert!(
        !home
            .text()
            .replace("&#x2f;", "/")
            .contains(r#"href="/shelf""#)
    );

    h.site().offerings().uninstall("shelf").await.unwrap();
    h.get("/shelf")
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.get("/shelf/shelf.css")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}
