//! Shared items on the web: who sees what at `/users/{login}/{share_id}`
//! and `/api/shoji/users/{login}/{share_id}`, and that every refusal is
//! the same answer, byte for byte.

mod sharing_support;

use axum::http::StatusCode;
use mantle_web::harness::{Answer, Harness};
use serde_json::json;
use sharing_support::{ALICE, World, create};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    Reader,
    Editor,
    GroupMember,
    Other,
    Anonymous,
}

const EVERYONE: [Who; 6] = [
    Who::Owner,
    Who::Reader,
    Who::Editor,
    Who::GroupMember,
    Who::Other,
    Who::Anonymous,
];

fn token(w: &World, who: Who) -> Option<&str> {
    match who {
        Who::Owner => Some(&w.alice),
        Who::Reader => Some(&w.bob),
        Who::Editor => Some(&w.carol),
        Who::GroupMember => Some(&w.dave),
        Who::Other => Some(&w.eve),
        Who::Anonymous => None,
    }
}

async fn get(h: &Harness, path: &str, token: Option<&str>) -> Answer {
    match token {
        Some(t) => h.get(path).bearer(t).await,
        None => h.get(path).await,
    }
}

async fn put(h: &Harness, path: &str, token: Option<&str>, body: serde_json::Value) -> Answer {
    match token {
        Some(t) => h.put(path).bearer(t).json(&body).await,
        None => h.put(path).json(&body).await,
    }
}

async fn delete(h: &Harness, path: &str, token: Option<&str>) -> Answer {
    match token {
        Some(t) => h.delete(path).bearer(t).await,
        None => h.delete(path).await,
    }
}

/// Asserts a refusal: 404 and exactly `reference`'s body.
#[track_caller]
fn assert_same_refusal(a: &Answer, reference: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{what}: {}", a.text());
    assert_eq!(a.body, reference.body, "{what}: the refusal differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_each_viewer_as_the_shares_say_and_refuses_alike() {
    let w = World::new().await;
    let h = &w.h;
    let plan = format!("/api/shoji/users/{ALICE}/plan");

    // "No such share", in several forms, for the share id `plan`: a login
    // that names nobody, a user who has no such share, a disabled user.
    let no_such = get(h, "/api/shoji/users/nobody@example.com/plan", None).await;
    no_such.assert_error(StatusCode::NOT_FOUND, "no share 'plan'");
    for path in [
        "/api/shoji/users/eve@example.com/plan".to_string(),
        "/api/shoji/users/account:99999/plan".to_string(),
    ] {
        let a = get(h, &path, Some(&w.bob)).await;
        assert_same_refusal(&a, &no_such, &path);
    }

    for who in EVERYONE {
        let t = token(&w, who);
        let a = get(h, &plan, t).await;
        match who {
            Who::Other | Who::Anonymous => {
                assert_same_refusal(&a, &no_such, &format!("{who:?} GET"))
            }
            _ => {
                a.assert_status(StatusCode::OK);
                assert_eq!(a.header("content-type"), Some("application/json"));
                let doc = a.json();
                assert_eq!(doc["element"], "shoji:entity");
                assert_eq!(doc["self"], plan.as_str());
                assert_eq!(doc["body"]["title"], "The plan");
                let access = doc["access"].clone();
                let expected = match who {
                    Who::Owner => json!(["owner"]),
                    Who::Reader => json!(["read"]),
                    Who::Editor => json!(["read", "edit"]),
                    _ => json!(["read", "delete"]),
                };
                assert_eq!(access, expected, "{who:?}");
                assert_eq!(
                    a.header("etag"),
                    Some(format!("\"{}\"", doc["revision"]).as_str())
                );
            }
        }
    }

    // PUT: the owner and the editor; everybody else is refused alike
    // (the reader and the group member may see it, and still get the
    // answer of a share that does not exist).
    for who in EVERYONE {
        let t = token(&w, who);
        let a = put(
            h,
            &plan,
            t,
            json!({ "title": format!("by {who:?}"), "done": false }),
        )
        .await;
        match who {
            Who::Owner | Who::Editor => {
                a.assert_status(StatusCode::OK);
                assert_eq!(a.json()["body"]["title"], format!("by {who:?}"));
            }
            _ => assert_same_refusal(&a, &no_such, &format!("{who:?} PUT")),
        }
    }
    // A body that does not make a memo: 400 for the editor, the refusal
    // for the reader.
    put(h, &plan, Some(&w.carol), json!({ "title": 3 }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "does not fit");
    let a = put(h, &plan, Some(&w.bob), json!({ "title": 3 })).await;
    assert_same_refusal(&a, &no_such, "reader's bad PUT");

    // An unknown share id is refused as any other (the same words as for
    // a login that names nobody).
    let ghost = get(h, "/api/shoji/users/nobody@example.com/ghost", None).await;
    for who in EVERYONE {
        let path = format!("/api/shoji/users/{ALICE}/ghost");
        let a = get(h, &path, token(&w, who)).await;
        assert_same_refusal(&a, &ghost, &format!("{who:?} GET ghost"));
        let a = put(
            h,
            &path,
            token(&w, who),
            json!({ "title": "x", "done": true }),
        )
        .await;
        assert_same_refusal(&a, &ghost, &format!("{who:?} PUT ghost"));
        let a = delete(h, &path, token(&w, who)).await;
        assert_same_refusal(&a, &ghost, &format!("{who:?} DELETE ghost"));
    }

    // DELETE: only the group member (and the owner) may.
    for who in [Who::Reader, Who::Editor, Who::Other, Who::Anonymous] {
        let a = delete(h, &plan, token(&w, who)).await;
        assert_same_refusal(&a, &no_such, &format!("{who:?} DELETE"));
    }
    delete(h, &plan, Some(&w.dave))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // Gone, and its shares with it: now truly no such share, for everyone.
    for who in EVERYONE {
        let a = get(h, &plan, token(&w, who)).await;
        assert_same_refusal(&a, &no_such, &format!("{who:?} GET after delete"));
    }
    h.get(&format!("{}{}", sharing_support::MEMOS, w.plan))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // The owner deletes through the share too.
    let front = format!("/api/shoji/users/{ALICE}/front");
    get(h, &front, None).await.assert_status(StatusCode::OK);
    delete(h, &front, None)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    delete(h, &front, Some(&w.alice))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    // A disabled owner's shares are refused alike.
    let id = create(h, &w.alice, json!({ "title": "t", "done": false })).await;
    h.post(&format!("/api/shoji/mine/memos_memo/{id}/shares"))
        .bearer(&w.alice)
        .json(&json!({ "role": "everyone", "share_id": "plan" }))
        .await
        .assert_status(StatusCode::CREATED);
    get(h, &plan, None).await.assert_status(StatusCode::OK);
    h.site()
        .accounts()
        .set_disabled("alice", true)
        .await
        .unwrap();
    let a = get(h, &plan, None).await;
    assert_same_refusal(&a, &no_such, "disabled owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_that_change_a_share_need_the_csrf_token() {
    let w = World::new().await;
    let h = &w.h;
    let plan = format!("/api/shoji/users/{ALICE}/plan");
    let body = json!({ "title": "by cookie", "done": true });
    // Reading by cookie needs nothing more.
    h.get(&plan)
        .login_cookie(&w.carol)
        .await
        .assert_status(StatusCode::OK);
    h.put(&plan)
        .login_cookie(&w.carol)
        .json(&body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "CSRF");
    h.put(&plan)
        .login_cookie(&w.carol)
        .csrf()
        .json(&body)
        .await
        .assert_status(StatusCode::OK);
    h.post(sharing_support::MEMOS)
        .login_cookie(&w.alice)
        .json(&body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "CSRF");
    // A token that is no longer good is not anonymous: 401.
    h.get(&plan)
        .bearer("not-a-token")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_shared_items_to_those_who_may_and_one_404_to_the_rest() {
    let w = World::new().await;
    let h = &w.h;
    let plan = format!("/users/{ALICE}/plan");
    let no_such = get(h, "/users/nobody@example.com/plan", None).await;
    no_such.assert_status(StatusCode::NOT_FOUND);
    assert!(no_such.text().contains("Not found"), "{}", no_such.text());

    for who in EVERYONE {
        let a = get(h, &plan, token(&w, who)).await;
        match who {
            Who::Other | Who::Anonymous => assert_same_refusal(&a, &no_such, &format!("{who:?}")),
            _ => {
                a.assert_status(StatusCode::OK);
                let text = a.text();
                assert!(text.contains(r#"<h1 id="memo">The plan</h1>"#), "{text}");
                assert!(text.contains("alice (at) example (dot) com"), "{text}");
                assert!(text.contains("as plan (revision 1)"), "{text}");
                assert!(!text.contains('@'), "an address on a page: {text}");
            }
        }
    }
    let carol = get(h, &plan, Some(&w.carol)).await;
    assert!(
        carol.text().contains("you may read, edit."),
        "{}",
        carol.text()
    );

    // Every other refusal is the same page: an unknown id, a user without
    // the share, a share of a type with no page, a login naming nobody.
    let scrap = h
        .post("/api/shoji/mine/memos_scrap/")
        .bearer(&w.alice)
        .json(&json!({ "text": "bits" }))
        .await;
    scrap.assert_status(StatusCode::CREATED);
    let scrap_shares = format!("{}/shares", scrap.header("location").unwrap());
    h.post(&scrap_shares)
        .bearer(&w.alice)
        .json(&json!({ "role": "everyone", "share_id": "bits" }))
        .await
        .assert_status(StatusCode::CREATED);
    // The scrap is served as an entity, but has no page.
    get(h, &format!("/api/shoji/users/{ALICE}/bits"), None)
        .await
        .assert_status(StatusCode::OK);
    for path in [
        format!("/users/{ALICE}/ghost"),
        format!("/users/{ALICE}/bits"),
        "/users/eve@example.com/plan".to_string(),
        "/users/eve@example.com".to_string(),
        "/users/nobody@example.com".to_string(),
        "/users/not an address/x".replace(' ', "%20"),
    ] {
        for who in [Who::Owner, Who::Other, Who::Anonymous] {
            let a = get(h, &path, token(&w, who)).await;
            assert_same_refusal(&a, &no_such, &format!("{who:?} {path}"));
        }
    }

    // The default share: `front`, shared with everyone.
    let home = get(h, &format!("/users/{ALICE}"), None).await;
    home.assert_status(StatusCode::OK);
    assert!(home.text().contains("Welcome"), "{}", home.text());
    assert!(!home.text().contains('@'), "{}", home.text());
    // By account id too.
    let by_id = get(h, &format!("/users/account:{}", w.alice_id.raw()), None).await;
    assert_eq!(by_id.body, home.body);

    // Revoked: the next request is refused.
    h.delete(&format!(
        "/api/shoji/mine/memos_memo/{}/shares/plan?role=account:{}",
        w.plan,
        w.bob_id.raw()
    ))
    .bearer(&w.alice)
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let a = get(h, &plan, Some(&w.bob)).await;
    assert_same_refusal(&a, &no_such, "revoked reader");
    get(h, &plan, Some(&w.carol))
        .await
        .assert_status(StatusCode::OK);

    // The offering uninstalled: its pages and entities go.
    h.site().offerings().uninstall("memos").await.unwrap();
    let a = get(h, &format!("/users/{ALICE}"), None).await;
    assert_same_refusal(&a, &no_such, "uninstalled default");
    let a = get(h, &plan, Some(&w.alice)).await;
    assert_same_refusal(&a, &no_such, "uninstalled page");
    get(h, &format!("/api/shoji/users/{ALICE}/plan"), Some(&w.carol))
        .await
        .assert_error(StatusCode::NOT_FOUND, "no share 'plan'");
}

/// The same, through a real server on loopback: anonymous and logged-in
/// visitors, and the refusals' bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_site_answers_shares_over_http() {
    let w = World::new().await;
    let site = w.h.site().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mantle_web::serve(
        listener,
        mantle_web::router(site.clone()),
        mantle_web::connection_limits(site.section::<mantle_web::HttpConfig>()),
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let fetch = |path: String, token: Option<String>| {
        let client = client.clone();
        async move {
            let mut req = client.get(path);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let (status, page) = fetch(url(&format!("/users/{ALICE}/front")), None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Welcome") && !page.contains('@'), "{page}");
    let (status, doc) = fetch(
        url(&format!("/api/shoji/users/{ALICE}/plan")),
        Some(w.bob.clone()),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    let refused = fetch(url(&format!("/api/shoji/users/{ALICE}/plan")), None).await;
    let missing = fetch(url("/api/shoji/users/nobody@example.com/plan"), None).await;
    assert_eq!(refused.0, 404);
    assert_eq!(refused, missing);
    let refused = fetch(url(&format!("/users/{ALICE}/plan")), Some(w.eve.clone())).await;
    let missing = fetch(url(&format!("/users/{ALICE}/ghost")), None).await;
    assert_eq!(refused.0, 404);
    assert_eq!(refused, missing);

    let _ = stop.send(());
    server.await.unwrap();
}
