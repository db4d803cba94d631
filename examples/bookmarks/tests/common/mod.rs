//! What the offering's tests share: the site they run, and a few calls.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use mantle_site::{Site, SiteBuilder};
use mantle_store::Store;
use mantle_web::harness::Harness;
use serde_json::Value;

/// The offerings a bookmarks site needs (the web layer comes with the
/// harness).
pub fn prepare(site: SiteBuilder) -> SiteBuilder {
    site.offering(mantle_live_server::offering())
        .offering(bookmarks::offering())
}

/// Waits (10 s at most) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The user store of `login`.
pub async fn user_store(site: &Site, login: &str) -> Store {
    let account = site.accounts().get(login).await.unwrap();
    site.stores()
        .user_store_unchecked(account.id)
        .await
        .unwrap()
}

/// The titles of the caller's own bookmarks, newest first.
pub async fn titles(h: &Harness, token: &str) -> Vec<String> {
    let list = h.get("/api/bookmarks").bearer(token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    list.json()["bookmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_string())
        .collect()
}

/// Adds a bookmark (`POST /api/bookmarks`); answers it.
pub async fn add(h: &Harness, token: &str, body: Value) -> Value {
    let added = h.post("/api/bookmarks").bearer(token).json(&body).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    added.json()
}
