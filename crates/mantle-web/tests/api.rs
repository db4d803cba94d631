//! The JSON API, in process through the harness: logging in and out,
//! tokens, slates with their version checks, signup under each policy,
//! and the CSRF rule for requests authenticated by the login cookie.

use axum::http::StatusCode;
use mantle_site::SignupPolicy;
use mantle_web::harness::{Answer, Harness, PASSWORD};
use serde_json::{Value, json};

/// Logs in over the API; returns the answer.
async fn login(h: &Harness, username: &str, password: &str) -> Answer {
    h.post("/api/login")
        .json(&json!({ "username": username, "password": password }))
        .await
}

/// The token of a successful login.
fn token_of(answer: &Answer) -> String {
    answer.assert_status(StatusCode::OK);
    answer.json()["token"]
        .as_str()
        .expect("a token in the login answer")
        .to_string()
}

#[tokio::test]
async fn login_me_logout_and_the_token_is_refused_after() {
    let h = Harness::new().await;
    h.site()
        .accounts()
        .create("alice", PASSWORD, false)
        .await
        .unwrap();

    let answer = login(&h, "alice", PASSWORD).await;
    let token = token_of(&answer);
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");
    // The same token in an HttpOnly cookie, for pages.
    assert_eq!(answer.set_cookie("mantle_token"), Some(token.as_str()));
    let cookie = answer.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    let me = h.get("/api/me").bearer(&token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({ "primary": "alice@example.com", "logins": [], "admin": false })
    );

    let tokens = h.get("/api/tokens").bearer(&token).await.json();
    let tokens = tokens["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["label"], "api login");
    assert_eq!(tokens[0]["current"], true);

    let out = h.post("/api/logout").bearer(&token).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(out.set_cookie("mantle_token"), Some(""), "cookie cleared");

    h.get("/api/me")
        .bearer(&token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid or expired token");
    h.post("/api/logout")
        .bearer(&token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login required");
}

#[tokio::test]
async fn wrong_password_unknown_user_and_no_token_are_401() {
    let h = Harness::new().await;
    h.user("alice").await;
    login(&h, "alice", "not the password")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "wrong login or password");
    // An unknown login gets the same answer: logins are not confirmed.
    login(&h, "nobody", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "wrong login or password");
    h.get("/api/me")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login required");
    h.get("/api/me")
        .bearer("made-up")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid or expired token");
}

#[tokio::test]
async fn a_revoked_token_stops_working_and_others_stay() {
    let h = Harness::new().await;
    let first = h.user("alice").await;
    let second = token_of(&login(&h, "alice", PASSWORD).await);
    let list = h.get("/api/tokens").bearer(&first).await.json();
    let other = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == false)
        .expect("the second token is listed")["id"]
        .as_i64()
        .unwrap();

    let revoked = h
        .delete(&format!("/api/tokens/{other}"))
        .bearer(&first)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/api/me").bearer(&second).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.get("/api/me").bearer(&first).await.status, StatusCode::OK);
    h.delete(&format!("/api/tokens/{other}"))
        .bearer(&first)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no such token");
}

#[tokio::test]
async fn slates_are_created_read_replaced_and_deleted_under_version_checks() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let put = |body: Value| h.put("/api/slates/prefs").bearer(&token).json(&body);

    let created = put(json!({ "theme": "dark" })).await;
    created.assert_status(StatusCode::CREATED);
    let v1 = created.json()["version"].as_i64().unwrap();
    assert_eq!(created.header("etag"), Some(format!("\"{v1}\"").as_str()));

    let read = h.get("/api/slates/prefs").bearer(&token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.json(),
        json!({ "name": "prefs", "version": v1, "expires": null, "body": { "theme": "dark" } })
    );
    assert_eq!(read.header("etag"), created.header("etag"));
    assert_eq!(
        h.get("/api/slates").bearer(&token).await.json(),
        json!({ "slates": ["prefs"] })
    );

    // Replacing needs the version replaced: missing 428, stale 412.
    put(json!({ "theme": "light" })).await.assert_error(
        StatusCode::PRECONDITION_REQUIRED,
        "replacing it needs the version",
    );
    put(json!({ "theme": "light" }))
        .header("if-match", &format!("\"{}\"", v1 + 5))
        .await
        .assert_error(
            StatusCode::PRECONDITION_FAILED,
            &format!("is at version {v1}, not {}", v1 + 5),
        );
    put(json!({}))
        .header("if-none-match", "*")
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "slate 'prefs'");
    put(json!({}))
        .header("if-match", "\"abc\"")
        .await
        .assert_error(
            StatusCode::PRECONDITION_FAILED,
            "not a version of this slate",
        );
    let replaced = put(json!({ "theme": "light" }))
        .header("if-match", &format!("\"{v1}\""))
        .await;
    replaced.assert_status(StatusCode::OK);
    let v2 = replaced.json()["version"].as_i64().unwrap();
    assert!(v2 > v1, "{v2} after {v1}");
    assert_eq!(
        h.get("/api/slates/prefs").bearer(&token).await.json()["body"],
        json!({ "theme": "light" })
    );

    // Deleting at a stale version is refused; at the current one it goes.
    h.delete("/api/slates/prefs")
        .bearer(&token)
        .header("if-match", &format!("\"{v1}\""))
        .await
        .assert_error(
            StatusCode::PRECONDITION_FAILED,
            &format!("is at version {v2}, not {v1}"),
        );
    let deleted = h
        .delete("/api/slates/prefs")
        .bearer(&token)
        .header("if-match", &format!("\"{v2}\""))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    h.get("/api/slates/prefs")
        .bearer(&token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no slate 'prefs'");
    h.delete("/api/slates/prefs")
        .bearer(&token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no slate 'prefs'");
    // A version given for a slate that does not exist is a conflict.
    put(json!({}))
        .header("if-match", "\"1\"")
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "is at version 0, not 1");
}

#[tokio::test]
async fn slates_check_names_and_bodies_and_stay_their_owners() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.put("/api/slates/bad%20name")
        .bearer(&alice)
        .json(&json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid slate name 'bad name'");
    h.put("/api/slates/prefs")
        .bearer(&alice)
        .body("application/json", "{not json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "body is not JSON");
    h.put("/api/slates/prefs")
        .json(&json!({}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login required");

    let mine = h
        .put("/api/users/alice/slates/prefs")
        .bearer(&alice)
        .json(&json!({ "n": 1 }))
        .await;
    mine.assert_status(StatusCode::CREATED);
    assert_eq!(
        h.get("/api/users/alice@example.com/slates/prefs")
            .bearer(&alice)
            .await
            .json()["body"],
        json!({ "n": 1 })
    );
    // To anyone else, another user's slate does not exist.
    h.get("/api/users/alice/slates/prefs")
        .bearer(&bob)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no slate 'prefs'");
    h.put("/api/users/alice/slates/prefs")
        .bearer(&bob)
        .json(&json!({ "n": 2 }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "no slate 'prefs'");
    assert_eq!(
        h.get("/api/slates").bearer(&bob).await.json(),
        json!({ "slates": [] })
    );
}

async fn signup(h: &Harness, username: &str, invite: Option<&str>) -> Answer {
    let mut body = json!({ "username": username, "password": PASSWORD });
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    h.post("/api/signup").json(&body).await
}

#[tokio::test]
async fn signup_open_takes_anyone_once_per_login() {
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Open).await;
    let made = signup(&h, "carol", None).await;
    made.assert_status(StatusCode::CREATED);
    assert_eq!(made.json(), json!({ "primary": "carol@example.com" }));
    token_of(&login(&h, "carol", PASSWORD).await);

    signup(&h, "carol", None)
        .await
        .assert_error(StatusCode::CONFLICT, "'carol@example.com' is already taken");
    h.post("/api/signup")
        .json(&json!({ "username": "dave", "password": "short" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "at least 8 characters");
    signup(&h, "not a login", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "is not a valid login");
}

#[tokio::test]
async fn signup_invite_needs_an_unused_code() {
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Invite).await;
    signup(&h, "carol", None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid or used invite code");
    signup(&h, "carol", Some("made-up"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid or used invite code");
    let code = h.site().accounts().create_invite().await.unwrap();
    let made = signup(&h, "carol", Some(&code)).await;
    made.assert_status(StatusCode::CREATED);
    assert_eq!(made.json()["primary"], "carol@example.com");
    signup(&h, "dave", Some(&code))
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid or used invite code");
}

#[tokio::test]
async fn signup_admin_is_closed() {
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Admin).await;
    signup(&h, "carol", None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup is closed on this site");
    assert!(h.site().accounts().get("carol").await.is_err());
}

#[tokio::test]
async fn signups_past_the_hourly_allowance_wait() {
    let h = Harness::configured(|c| {
        c.signup.policy = SignupPolicy::Open;
        c.signup.max_per_hour = 1;
    })
    .await;
    assert_eq!(signup(&h, "carol", None).await.status, StatusCode::CREATED);
    let paused = signup(&h, "dave", None).await;
    paused.assert_error(StatusCode::TOO_MANY_REQUESTS, "signup is paused");
    let wait: u64 = paused.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
}

#[tokio::test]
async fn the_login_cookie_needs_the_csrf_header_for_unsafe_requests() {
    let h = Harness::new().await;
    let token = h.user("alice").await;

    // Safe methods pass on the cookie alone.
    let me = h.get("/api/me").login_cookie(&token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["primary"], "alice@example.com");

    // Unsafe ones without the token (or with one not matching the
    // cookie) are refused, and change nothing.
    h.put("/api/slates/prefs")
        .login_cookie(&token)
        .json(&json!({}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "x-csrf-token");
    h.post("/api/logout")
        .login_cookie(&token)
        .cookie("mantle_csrf", &"a".repeat(43))
        .header("x-csrf-token", &"b".repeat(43))
        .await
        .assert_error(StatusCode::FORBIDDEN, "x-csrf-token");
    assert_eq!(
        h.get("/api/slates").bearer(&token).await.json(),
        json!({ "slates": [] })
    );
    assert_eq!(h.get("/api/me").bearer(&token).await.status, StatusCode::OK);

    // With the token repeated, the same requests go through.
    let put = h
        .put("/api/slates/prefs")
        .login_cookie(&token)
        .csrf()
        .json(&json!({}))
        .await;
    put.assert_status(StatusCode::CREATED);
    let out = h.post("/api/logout").login_cookie(&token).csrf().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/api/me").bearer(&token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_client_errors() {
    let h = Harness::with_http(|h| h.max_body_bytes = 4096).await;
    let token = h.user("alice").await;

    let cases = [
        (
            "syntax",
            h.post("/api/login")
                .body("application/json", "{\"username\": ")
                .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong type",
            h.post("/api/login")
                .json(&json!({ "username": 7, "password": PASSWORD }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            h.post("/api/login")
                .json(&json!({ "username": "alice", "password": PASSWORD, "admin": true }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not JSON at all",
            h.post("/api/signup")
                .body("application/json", vec![0xff, 0xfe, 0x00])
                .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "no content type",
            h.post("/api/login")
                .body("text/plain", "{\"username\":\"alice\"}")
                .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "oversized JSON",
            h.post("/api/login")
                .json(&json!({ "username": "a".repeat(8192), "password": PASSWORD }))
                .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, answer, status) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.text());
        assert!(
            answer.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{what}: {}",
            answer.text()
        );
    }

    // A slate body over the limit: 413, and nothing stored.
    let big = json!({ "blob": "x".repeat(8192) });
    let answer = h.put("/api/slates/big").bearer(&token).json(&big).await;
    answer.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        h.get("/api/slates").bearer(&token).await.json(),
        json!({ "slates": [] })
    );
    // Just under the limit is fine.
    let fits = json!({ "blob": "x".repeat(4000) });
    let answer = h.put("/api/slates/big").bearer(&token).json(&fits).await;
    answer.assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn health_answers_ok() {
    let h = Harness::new().await;
    let answer = h.get("/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({ "status": "ok" }));
}
