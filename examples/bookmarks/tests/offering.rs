//! The offering's routes, in process, against a real site in a temporary
//! directory.

use axum::http::StatusCode;
use mantle_web::harness::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_the_users_given_the_offering_and_no_one_else() {
    let h = Harness::build(Harness::config(), |site| {
        site.offering(mantle_live_server::offering())
            .offering(bookmarks::offering())
    })
    .await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.give("alice", bookmarks::NAME).await;

    let page = h.get("/bookmarks").bearer(&alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Hello, alice@example.com"), "{}", page.text());

    let other = h.get("/bookmarks").bearer(&bob).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}
