//! The lists' pages, for the owner, users she shares with, a stranger
//! and anonymous visitors.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use mantle_web::harness::Harness;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_each_viewer_what_the_shares_allow() {
    let t = Started::new().await;
    let h = Harness::for_site(t.site.clone());
    let token = |u: &str| t.tokens[u].clone();
    let mut a = t.client("alice").await;
    let (ha, _) = a.open(None, "groceries").await;
    a.ok("AddEntry", json!({"text": "milk <b>&</b>"}), Some(ha))
        .await;
    for (who, access) in [("bob", "edit"), ("carol", "read")] {
        a.ok(
            "ShareList",
            json!({"name": "groceries", "with": who, "access": access}),
            None,
        )
        .await;
    }
    let page = "/lists/alice@example.com/groceries";

    // Anonymous visitors: to the login page for the index, 404 for a list
    // not published.
    let r = h.get("/lists").send().await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/login"));
    let unpublished = h.get(page).send().await;
    assert_eq!(unpublished.status, StatusCode::NOT_FOUND);
    assert!(
        unpublished.text().contains("<h1>Not found</h1>"),
        "the site's 404 page: {}",
        unpublished.text()
    );
    let web_front = h.get("/users/alice@example.com/groceries").send().await;
    assert_eq!(
        (web_front.status, web_front.text()),
        (unpublished.status, unpublished.text()),
        "the web front's own refusal, byte for byte"
    );
    let missing = h.get("/lists/alice@example.com/nothing").send().await;
    assert_eq!(
        (missing.status, missing.text()),
        (unpublished.status, unpublished.text()),
        "an unpublished list is answered as a missing one"
    );

    // The owner's page: live, editable, with the sharing panel.
    let r = h.get(page).bearer(&token("alice")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains(r#"data-owner="alice@example.com""#), "{html}");
    assert!(html.contains(r#"data-edit="true""#) && html.contains(r#"data-mine="true""#));
    assert!(html.contains(r#"id="add-form""#) && html.contains(r#"id="share-form""#));
    assert!(html.contains(r#"src="/lists/page.js""#) && !html.contains("<script>"));
    let account = t.site.accounts().get("alice").await.unwrap().id.raw();
    let public_path = format!("/lists/account:{account}/groceries");
    assert!(
        html.replace("&#x2f;", "/").contains(&public_path),
        "the public link names no address: {html}"
    );
    // Bob may edit; Carol may read; neither gets the sharing panel.
    let html = h
        .get(page)
        .bearer(&token("bob"))
        .send()
        .await
        .text()
        .to_string();
    assert!(html.contains(r#"data-edit="true""#) && html.contains(r#"data-mine="false""#));
    assert!(html.contains(r#"id="add-form""#) && !html.contains(r#"id="share-form""#));
    let r = h.get(page).bearer(&token("carol")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains(r#"data-edit="false""#), "{html}");
    assert!(!html.contains(r#"id="add-form""#) && !html.contains(r#"id="share-form""#));
    // Dave is refused as for a missing list.
    let stranger = h.get(page).bearer(&token("dave")).send().await;
    let missing = h
        .get("/lists/alice@example.com/nothing")
        .bearer(&token("dave"))
        .send()
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.text(), missing.text());
    assert_eq!(stranger.text(), unpublished.text());

    // The index: her lists with their shares; his, what is shared with him.
    let html = h.get("/lists").bearer(&token("alice")).send().await;
    let html = html.text();
    assert!(html.contains(r#"data-name="groceries""#), "{html}");
    assert!(html.contains("bob@example.com (edit)") && html.contains("carol@example.com (read)"));
    assert!(!html.contains("public page"), "not published: {html}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = h.get("/lists").bearer(&token("bob")).send().await;
        if r.text().contains(r#"data-owner="alice@example.com""#) {
            assert!(
                r.text().contains("by alice@example.com (edit)"),
                "{}",
                r.text()
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The form's query, and the old address of a list, lead to a list.
    let r = h
        .get("/lists?name=groceries&owner=alice")
        .bearer(&token("bob"))
        .send()
        .await;
    assert_eq!(r.header("location"), Some("/lists/alice/groceries"));
    let r = h.get("/lists/groceries").bearer(&token("bob")).send().await;
    assert!(r.status.is_redirection());
    assert_eq!(
        r.header("location"),
        Some("/lists/bob@example.com/groceries")
    );
    let r = h.get("/lists?name=a+b").bearer(&token("bob")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("class=\"error\""), "{}", r.text());

    // Published: anonymous visitors read it, without the owner's address
    // in a form harvesters find, and with no way to change it.
    a.ok(
        "ShareList",
        json!({"name": "groceries", "with": "everyone", "access": "read"}),
        None,
    )
    .await;
    let html = h.get("/lists").bearer(&token("alice")).send().await;
    assert!(
        html.text()
            .replace("&#x2f;", "/")
            .contains(&format!(r#"<a class="public" href="{public_path}">"#)),
        "{}",
        html.text()
    );
    for path in [page.to_string(), public_path] {
        let r = h.get(&path).send().await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let html = r.text();
        assert!(
            html.contains("milk &lt;b&gt;&amp;&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(html.contains("alice (at) example (dot) com"), "{html}");
        assert!(!html.contains("alice@"), "no harvestable address: {html}");
        assert!(!html.contains("<form") || !html.contains("add-form"));
        assert!(!html.contains("page.js"), "no live page for visitors");
    }
    // Dave, logged in, reads it live (and read-only) now.
    let html = h
        .get(page)
        .bearer(&token("dave"))
        .send()
        .await
        .text()
        .to_string();
    assert!(html.contains(r#"data-edit="false""#), "{html}");
    let mut d = t.client("dave").await;
    let (hd, opened) = d.open(Some("alice@example.com"), "groceries").await;
    assert_eq!(opened["edit"], false);
    let e = d.refused("AddEntry", json!({"text": "x"}), Some(hd)).await;
    assert_eq!(e["code"], "NOT_FOUND");
    t.site.close().await;
}
