//! What every answer passes through, in process through the harness: the
//! security headers, conditional GETs of public answers, and who may see
//! the statistics.

use axum::http::StatusCode;
use mantle_stats::Snapshot;
use mantle_web::CONTENT_SECURITY_POLICY;
use mantle_web::harness::{Answer, Harness, LOOPBACK, REMOTE};
use serde_json::json;

/// Asserts the headers every answer carries.
#[track_caller]
fn secured(answer: &Answer, what: &str) {
    assert_eq!(
        answer.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY),
        "{what}"
    );
    assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("same-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));

    let answers = [
        ("page", h.get("/").await),
        ("api", h.get("/api/me").bearer(&token).await),
        ("error", h.get("/api/me").await),
        ("no route", h.get("/no/such/page").await),
        ("refused form", h.post("/login").form(&[]).await),
    ];
    for (what, answer) in &answers {
        secured(answer, what);
        // Plain HTTP, no proxy: no HSTS.
        assert_eq!(answer.header("strict-transport-security"), None, "{what}");
    }
    assert_eq!(answers[3].1.status, StatusCode::NOT_FOUND);
    // Answers to a request presenting a login are never cached.
    assert_eq!(answers[1].1.header("cache-control"), Some("no-store"));
    assert_eq!(answers[2].1.header("cache-control"), None);
}

#[tokio::test]
async fn behind_tls_answers_carry_hsts_and_cookies_are_secure() {
    let h = Harness::with_http(|h| h.behind_tls = true).await;
    let page = h.get("/login").await;
    secured(&page, "page");
    assert_eq!(
        page.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let csrf = page.header("set-cookie").expect("a CSRF cookie");
    assert!(
        csrf.starts_with("mantle_csrf=") && csrf.ends_with("; Secure"),
        "{csrf}"
    );

    h.site()
        .accounts()
        .create("alice", mantle_web::harness::PASSWORD, false)
        .await
        .unwrap();
    let login = h
        .post("/api/login")
        .json(&json!({ "username": "alice", "password": mantle_web::harness::PASSWORD }))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let cookie = login.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn public_answers_are_revalidated_with_etags_and_dates() {
    let h = Harness::new().await;
    let first = h.get("/").await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = first.header("etag").expect("an ETag").to_string();
    let modified = first
        .header("last-modified")
        .expect("a Last-Modified")
        .to_string();
    assert_eq!(first.header("cache-control"), Some("no-cache"));

    // Another visitor gets another CSRF token, but the same tag.
    let second = h.get("/").await;
    assert_ne!(
        second.set_cookie("mantle_csrf"),
        first.set_cookie("mantle_csrf")
    );
    assert_eq!(second.header("etag"), Some(etag.as_str()));

    let revalidated = h.get("/").header("if-none-match", &etag).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));
    assert_eq!(revalidated.header("content-type"), None);
    secured(&revalidated, "304");

    let listed = h
        .get("/")
        .header("if-none-match", &format!("\"other\", W/{etag}"))
        .await;
    assert_eq!(listed.status, StatusCode::NOT_MODIFIED);
    let changed = h.get("/").header("if-none-match", "\"other\"").await;
    assert_eq!(changed.status, StatusCode::OK);
    assert!(!changed.body.is_empty());

    // Without If-None-Match, the date decides.
    let by_date = h.get("/").header("if-modified-since", &modified).await;
    assert_eq!(by_date.status, StatusCode::NOT_MODIFIED);
    let older = h
        .get("/")
        .header("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")
        .await;
    assert_eq!(older.status, StatusCode::OK);
    // If-None-Match wins over the date.
    let both = h
        .get("/")
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", &modified)
        .await;
    assert_eq!(both.status, StatusCode::OK);

    // An answer without a tag of its own gets one from its body.
    let robots = h.get("/robots.txt").await;
    let tag = robots.header("etag").expect("a tag").to_string();
    let again = h.get("/robots.txt").header("if-none-match", &tag).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn answers_to_logged_in_requests_are_not_tagged() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let public = h.get("/robots.txt").await;
    let etag = public.header("etag").unwrap();
    let answer = h
        .get("/robots.txt")
        .bearer(&token)
        .header("if-none-match", etag)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("etag"), None);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // Nor are errors or posts.
    assert_eq!(h.get("/api/me").await.header("etag"), None);
    assert_eq!(h.post("/login").form(&[]).await.header("etag"), None);
}

/// The "HTTP" namespace's `Requests` in a `/stats.json` answer.
fn requests(answer: &Answer) -> i64 {
    let snap = Snapshot::from_json(answer.text()).expect("a statistics snapshot");
    snap.namespace(mantle_web::HTTP_NAMESPACE)
        .expect("the HTTP namespace")
        .value("Requests")
        .and_then(|v| v.as_i64())
        .expect("a request count")
}

#[tokio::test]
async fn statistics_answer_loopback_and_admins_and_no_one_else() {
    let h = Harness::new().await;
    let user = h.user("alice").await;
    let admin = h.admin("root").await;
    for _ in 0..3 {
        assert_eq!(h.get("/health").await.status, StatusCode::OK);
    }

    let local = h.get("/stats.json").peer(LOOPBACK).await;
    local.assert_status(StatusCode::OK);
    assert_eq!(local.header("content-type"), Some("application/json"));
    assert_eq!(local.header("cache-control"), Some("no-store"));
    assert!(requests(&local) >= 3, "{}", local.text());
    let metrics = h.get("/metrics").peer(LOOPBACK).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text().contains("# TYPE "), "{}", metrics.text());

    let as_admin = h.get("/stats.json").bearer(&admin).await;
    assert_eq!(as_admin.status, StatusCode::OK);
    requests(&as_admin);

    // Anyone else: 404, as for a page that does not exist, with nothing
    // of the statistics in it.
    let refusals = [
        ("remote", h.get("/stats.json").peer(REMOTE).await),
        ("remote user", h.get("/stats.json").bearer(&user).await),
        (
            "relayed by a proxy",
            h.get("/stats.json")
                .peer(LOOPBACK)
                .header("x-forwarded-for", "198.51.100.7")
                .await,
        ),
        (
            "relayed (Forwarded)",
            h.get("/metrics")
                .peer(LOOPBACK)
                .header("forwarded", "for=198.51.100.7")
                .await,
        ),
        ("remote page", h.get("/stats").await),
    ];
    for (what, answer) in &refusals {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}");
        assert!(!answer.text().contains("Requests"), "{what}");
    }
}

#[tokio::test]
async fn statistics_from_loopback_can_be_turned_off() {
    let h = Harness::with_http(|h| h.stats_from_loopback = false).await;
    let admin = h.admin("root").await;
    assert_eq!(
        h.get("/stats.json").peer(LOOPBACK).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/stats.json")
            .peer(LOOPBACK)
            .bearer(&admin)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_namespace_is_paused_and_resumed_from_loopback() {
    let h = Harness::new().await.peer(LOOPBACK);
    let paused = h
        .post("/stats/enabled")
        .json(&json!({ "namespace": "HTTP", "enabled": false }))
        .await;
    paused.assert_status(StatusCode::OK);
    assert_eq!(
        paused.json(),
        json!({ "namespace": "HTTP", "enabled": false })
    );
    let before = requests(&h.get("/stats.json").await);
    h.get("/health").await;
    assert_eq!(requests(&h.get("/stats.json").await), before, "paused");

    let unknown = h
        .post("/stats/enabled")
        .json(&json!({ "namespace": "Nope", "enabled": true }))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // The page's form needs its CSRF token.
    let forged = h
        .post("/stats/enabled")
        .form(&[("namespace", "HTTP"), ("enabled", "true")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let resumed = h
        .post("/stats/enabled")
        .form(&[("namespace", "HTTP"), ("enabled", "true")])
        .csrf()
        .await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER);
    assert_eq!(resumed.header("location"), Some("/stats"));
    h.get("/health").await;
    assert!(requests(&h.get("/stats.json").await) > before, "resumed");
    // From elsewhere, the switch does not exist.
    let remote = h
        .post("/stats/enabled")
        .peer(REMOTE)
        .json(&json!({ "namespace": "HTTP", "enabled": false }))
        .await;
    assert_eq!(remote.status, StatusCode::NOT_FOUND);
}
