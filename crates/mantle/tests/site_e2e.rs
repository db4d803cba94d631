//! End-to-end tests of a Mantle site: the real `mantle` binary, serving on
//! loopback ports, driven over HTTP and through its command line.

mod support;

use std::time::Duration;

use mantle_web::HttpConfig;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use serde_json::{Value, json};
use support::*;

const PW: &str = "correct horse battery";

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_login_token_and_cookie_work_until_logout() {
    let site = TestSite::init("open");
    let server = site.serve(&[]);
    let c = client();

    let r = c
        .post(server.url("/api/signup"))
        .json(&json!({ "username": "alice", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json_of(r).await["primary"], "alice@localhost");

    let token = token(&c, &server, "alice@localhost", PW).await;
    let r = get_auth(&c, &server, "/api/me", &token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["primary"], "alice@localhost");

    let r = c
        .get(server.url("/api/me"))
        .header(COOKIE, format!("mantle_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the cookie logs in too");

    let r = c
        .post(server.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = get_auth(&c, &server, "/api/me", &token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(server.url("/api/me"))
        .header(COOKIE, format!("mantle_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_a_token_and_an_httponly_lax_cookie_without_secure() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    let c = client();

    let r = login(&c, &server, "alice", PW).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (value, header) = set_cookie(&r, "mantle_token").expect("token cookie set");
    let body = json_of(r).await;
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.len(), 43);
    assert_eq!(value, token, "the cookie carries the same token");
    let attrs: Vec<&str> = header.split(';').map(str::trim).collect();
    assert!(attrs.contains(&"HttpOnly"), "{header}");
    assert!(attrs.contains(&"SameSite=Lax"), "{header}");
    assert!(
        !attrs.iter().any(|a| a.eq_ignore_ascii_case("Secure")),
        "{header}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_zero_ttl_is_refused_at_once() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[("MANTLE_TOKEN_TTL_HOURS", "0")]);
    let c = client();

    let token = token(&c, &server, "alice", PW).await;
    let r = get_auth(&c, &server, "/api/me", &token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_swept_by_the_scheduler() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    // Set after `init`, as an operator would: the new interval must apply.
    site.edit_config(|c| c.auth.sweep_interval_secs = 1);
    let server = site.serve(&[("MANTLE_TOKEN_TTL_HOURS", "0")]);
    let c = client();
    for _ in 0..3 {
        token(&c, &server, "alice", PW).await;
    }
    // Each sweep logs "expired tokens swept swept=N"; wait until the three
    // are accounted for (about a second; more on a loaded machine).
    let swept = |lines: &[String]| -> i64 {
        lines
            .iter()
            .filter(|l| l.contains("expired tokens swept"))
            .filter_map(|l| {
                l.split("swept=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    tokio::time::sleep(Duration::from_secs(3)).await;
    while swept(&server.stderr()) < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(swept(&stderr), 3, "sweeps logged:\n{}", stderr.join("\n"));
    assert_eq!(site.item_count("site.store", "mantle_auth_token"), 0);
    assert_eq!(site.item_count("site.store", "mantle_token_sweeper"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slates_are_versioned_with_etags_and_preconditions() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    let c = client();
    let t = token(&c, &server, "alice", PW).await;
    let url = server.url("/api/slates/prefs");
    let etag = |r: &reqwest::Response| {
        r.headers()
            .get(ETAG)
            .map(|v| v.to_str().unwrap().to_string())
    };

    let r = c
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"theme": "dark"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(etag(&r).as_deref(), Some("\"1\""));

    let r = c
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"theme": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_REQUIRED,
        "replace without If-Match"
    );

    let r = c
        .put(&url)
        .bearer_auth(&t)
        .header(IF_MATCH, "\"7\"")
        .json(&json!({"theme": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "stale If-Match"
    );

    let r = c
        .put(&url)
        .bearer_auth(&t)
        .header(IF_MATCH, "\"1\"")
        .json(&json!({"theme": "light"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));

    let r = c
        .put(&url)
        .bearer_auth(&t)
        .header(IF_NONE_MATCH, "*")
        .json(&json!({"theme": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "If-None-Match: * on an existing slate"
    );

    let r = c.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));
    let body = json_of(r).await;
    assert_eq!(body["body"], json!({"theme": "light"}));
    assert_eq!(body["version"], 2);

    let r = c.delete(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slate_with_a_ttl_expires_and_leaves_other_slates_alone() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    let c = client();
    let t = token(&c, &server, "alice", PW).await;

    let r = c
        .put(server.url("/api/slates/flow?ttl=1"))
        .bearer_auth(&t)
        .json(&json!({"step": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(server.url("/api/slates/keep"))
        .bearer_auth(&t)
        .json(&json!({"stay": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get_auth(&c, &server, "/api/slates/flow", &t).await;
    assert_eq!(r.status(), StatusCode::OK, "alive before its TTL");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get_auth(&c, &server, "/api/slates/flow", &t).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get_auth(&c, &server, "/api/slates/keep", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["body"], json!({"stay": true}));
    let r = get_auth(&c, &server, "/api/slates", &t).await;
    assert_eq!(json_of(r).await["slates"], json!(["keep"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slate_name_outside_the_alphabet_is_a_bad_request() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    let c = client();
    let t = token(&c, &server, "alice", PW).await;

    let long = "x".repeat(129);
    for name in ["bad%20name", "a%2Fb", long.as_str()] {
        let url = server.url(&format!("/api/slates/{name}"));
        let r = c
            .put(&url)
            .bearer_auth(&t)
            .json(&json!(1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "PUT {name}");
        assert!(
            json_of(r).await["error"]
                .as_str()
                .unwrap()
                .contains("invalid slate name")
        );
        let r = c.get(&url).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "GET {name}");
    }
    let ok128 = server.url(&format!("/api/slates/{}", "x".repeat(128)));
    let r = c
        .put(&ok128)
        .bearer_auth(&t)
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "128 characters are allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_read_or_write_another_users_slates() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    site.add_user("bob", PW);
    let server = site.serve(&[]);
    let c = client();
    let alice = token(&c, &server, "alice", PW).await;
    let bob = token(&c, &server, "bob", PW).await;
    let url = server.url("/api/users/bob@localhost/slates/secret");

    let r = c
        .put(&url)
        .bearer_auth(&bob)
        .json(&json!({"pin": 1234}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "bob writes his own slate");

    let r = c.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "not 403: alice must not learn it exists"
    );
    let r = c
        .put(&url)
        .bearer_auth(&alice)
        .header(IF_MATCH, "\"1\"")
        .json(&json!({"pin": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .get(server.url("/api/users/nobody@localhost/slates/secret"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "same answer for an unknown user"
    );

    let r = c.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await["body"],
        json!({"pin": 1234}),
        "alice changed nothing"
    );
    // Nor did alice's attempt land in her own store.
    let r = get_auth(&c, &server, "/api/slates/secret", &alice).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_refused_until_enabled() {
    let site = TestSite::init("admin");
    site.add_user("bob", PW);
    let c = client();

    let server = site.serve(&[]);
    let old = token(&c, &server, "bob", PW).await;
    assert!(server.stop().0.success());

    ok(mantle(&["user", "disable", site.path(), "bob"]));
    let server = site.serve(&[]);
    let r = get_auth(&c, &server, "/api/me", &old).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "old token of a disabled account"
    );
    let r = login(&c, &server, "bob", PW).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        json_of(r).await["error"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    let r = login(&c, &server, "bob", "wrong password").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "disabled is only told to who knows the password"
    );
    assert!(server.stop().0.success());

    ok(mantle(&["user", "enable", site.path(), "bob"]));
    let server = site.serve(&[]);
    let fresh = token(&c, &server, "bob", PW).await;
    let r = get_auth(&c, &server, "/api/me", &fresh).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_answered_without_logging_server_errors() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.max_body_bytes = 1024)
            .unwrap()
    });
    let server = site.serve(&[]);
    let c = client();

    let wrong = login(&c, &server, "alice", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    let unknown = login(&c, &server, "mallory", "not the password").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    assert_eq!(wrong, unknown, "no account enumeration through the answer");

    let r = c
        .post(server.url("/api/login"))
        .header(CONTENT_TYPE, "application/json")
        .body("{\"username\": \"alice\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = json_of(r).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!msg.is_empty(), "malformed JSON gets a message");

    let t = token(&c, &server, "alice", PW).await;
    let r = c
        .put(server.url("/api/slates/notes"))
        .bearer_auth(&t)
        .header(CONTENT_TYPE, "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let big = json!({ "username": "alice", "password": "x".repeat(2000) });
    let r = c
        .post(server.url("/api/login"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .put(server.url("/api/slates/big"))
        .bearer_auth(&t)
        .json(&json!({ "blob": "y".repeat(2000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (status, stderr) = server.stop();
    assert!(status.success());
    assert!(
        stderr.iter().any(|l| l.contains(" INFO ")),
        "logging was not captured:\n{}",
        stderr.join("\n")
    );
    let errors = error_lines(&stderr);
    assert!(
        errors.is_empty(),
        "client errors logged as server errors: {errors:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rate_limit_triggers_and_resets() {
    let site = TestSite::init("admin");
    let server = site.serve(&[("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE", "120")]);
    let c = client();

    let mut allowed = 0;
    let mut limited = None;
    // A different login each time: failures for one login back off on
    // their own, and this test is about the per-address allowance.
    'outer: for round in 0..50 {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..8 {
            let c = c.clone();
            let url = server.url("/api/login");
            let username = format!("nobody{round}-{i}");
            batch.spawn(async move {
                c.post(url)
                    .json(&json!({ "username": username, "password": "wrong password" }))
                    .send()
                    .await
                    .unwrap()
            });
        }
        let mut got_429 = false;
        while let Some(r) = batch.join_next().await {
            let r = r.unwrap();
            match r.status() {
                StatusCode::UNAUTHORIZED => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    got_429 = true;
                    limited.get_or_insert(r);
                }
                other => panic!("unexpected {other}"),
            }
        }
        if got_429 {
            break 'outer;
        }
    }
    let limited = limited.expect("no 429 after 400 wrong logins");
    assert!(allowed >= 120, "limited after only {allowed} attempts");
    let retry: u64 = limited
        .headers()
        .get(RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert!(
        json_of(limited).await["error"]
            .as_str()
            .unwrap()
            .contains("too many")
    );

    // 120 a minute refills one attempt every half second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = login(&c, &server, "somebody-else", "wrong password").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "allowed again after waiting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_slates_survive_a_restart() {
    let site = TestSite::init("open");
    let c = client();
    let server = site.serve(&[]);
    let r = c
        .post(server.url("/api/signup"))
        .json(&json!({ "username": "carol", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let t = token(&c, &server, "carol", PW).await;
    let url = server.url("/api/slates/draft");
    let r = c
        .put(&url)
        .bearer_auth(&t)
        .json(&json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(&url)
        .bearer_auth(&t)
        .header(IF_MATCH, "\"1\"")
        .json(&json!({"v": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, stderr) = server.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM is a clean stop:\n{}",
        stderr.join("\n")
    );
    assert!(stderr.iter().any(|l| l == "mantle: shutting down"));

    let server = site.serve(&[]);
    let r = get_auth(&c, &server, "/api/me", &t).await;
    assert_eq!(r.status(), StatusCode::OK, "the token survives too");
    let t = token(&c, &server, "carol", PW).await;
    let r = get_auth(&c, &server, "/api/slates/draft", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get(ETAG).unwrap(), "\"2\"");
    assert_eq!(json_of(r).await["body"], json!({"v": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_work_from_scripts() {
    let site = TestSite::init("admin");
    let out = site.add_user("alice", PW);
    assert!(out.contains("created alice@localhost"), "{out}");

    let list: Value =
        serde_json::from_str(&ok(mantle(&["user", "list", "--json", site.path()]))).unwrap();
    let accounts = list.as_array().expect("a JSON array");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["primary"], "alice@localhost");
    assert_eq!(accounts[0]["disabled"], false);
    let store = site.dir.join(accounts[0]["store"].as_str().unwrap());
    assert!(
        store.exists(),
        "user store made at account creation: {}",
        store.display()
    );

    // `passwd` revokes the account's tokens.
    let c = client();
    let server = site.serve(&[]);
    let old = token(&c, &server, "alice", PW).await;
    assert!(server.stop().0.success());
    ok(mantle_with_stdin(
        &["user", "passwd", site.path(), "alice"],
        "a brand new password\n",
    ));
    let server = site.serve(&[]);
    let r = get_auth(&c, &server, "/api/me", &old).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = login(&c, &server, "alice", PW).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    token(&c, &server, "alice", "a brand new password").await;
    assert!(server.stop().0.success());

    // `delete` keeps the user store unless purged and confirmed.
    let out = ok(mantle(&["user", "delete", site.path(), "alice"]));
    assert!(out.contains("kept"), "{out}");
    assert!(store.exists(), "store kept: {}", store.display());
    let list: Value =
        serde_json::from_str(&ok(mantle(&["user", "list", "--json", site.path()]))).unwrap();
    assert_eq!(list, json!([]));

    site.add_user("dave", PW);
    let list: Value =
        serde_json::from_str(&ok(mantle(&["user", "list", "--json", site.path()]))).unwrap();
    let dave_store = site.dir.join(list[0]["store"].as_str().unwrap());
    assert!(dave_store.exists());
    let refused = mantle(&["user", "delete", site.path(), "dave", "--purge-store"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "--purge-store without confirmation"
    );
    assert!(dave_store.exists());
    ok(mantle(&[
        "user",
        "delete",
        site.path(),
        "dave",
        "--purge-store",
        "--yes",
    ]));
    assert!(!dave_store.exists(), "store purged");

    // Failures: exit code 1 and one line on stderr.
    for args in [
        vec!["user", "add", site.path(), "not a login!"],
        vec!["user", "disable", site.path(), "nobody"],
        vec!["user", "add", site.path(), "erin"],
    ] {
        let o = mantle_with_stdin(
            &args,
            if args[3] == "erin" {
                "short\n"
            } else {
                "long enough password\n"
            },
        );
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with("mantle: "), "{args:?}: {err}");
    }
}

/// The hidden `csrf` field's value in a page.
fn csrf_field(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("csrf hidden field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_uses_csrf_and_logs_in_to_home() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    let c = client();

    let r = c.get(server.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (cookie, header) = set_cookie(&r, "mantle_csrf").expect("csrf cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("type=\"hidden\" name=\"csrf\""), "{html}");
    let field = csrf_field(&html);
    assert_eq!(field, cookie);

    let form = |csrf: Option<&str>| {
        let mut body = format!("username=alice&password={}", PW.replace(' ', "+"));
        if let Some(t) = csrf {
            body = format!("csrf={t}&{body}");
        }
        c.post(server.url("/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, format!("mantle_csrf={cookie}"))
            .body(body)
    };
    let r = form(None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no csrf field");
    let r = form(Some(&"A".repeat(43))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong csrf field");

    let r = form(Some(&field)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/home");
    let (token, header) = set_cookie(&r, "mantle_token").expect("token cookie");
    assert!(header.contains("HttpOnly"), "{header}");

    let r = c
        .get(server.url("/home"))
        .header(COOKIE, format!("mantle_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("alice@localhost"), "{html}");

    let r = c.get(server.url("/home")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "home without a token");
    assert_eq!(r.headers().get(LOCATION).unwrap(), "/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_run_side_by_side_in_one_process() {
    use mantle_site::{Site, SiteConfig, SiteError};
    use mantle_web::HttpService;

    let temp = tempfile::tempdir().unwrap();
    let mut sites = Vec::new();
    for (name, user) in [("a", "alice"), ("b", "bob")] {
        let mut config = SiteConfig::default();
        config
            .edit_section::<HttpConfig>(|s| s.listen = "127.0.0.1:0".parse().unwrap())
            .unwrap();
        let site = mantle_web::install(Site::builder(temp.path().join(name)))
            .init(config)
            .await
            .unwrap();
        site.accounts().create(user, PW, false).await.unwrap();
        site.services()
            .install(HttpService {
                label: "web".into(),
            })
            .await
            .unwrap();
        sites.push(site);
    }
    let (a, b) = (&sites[0], &sites[1]);

    assert!(a.auth().login("alice", PW, "test").await.is_ok());
    assert!(matches!(
        a.auth().login("bob", PW, "test").await,
        Err(SiteError::BadCredentials)
    ));
    assert!(matches!(
        b.auth().login("alice", PW, "test").await,
        Err(SiteError::BadCredentials)
    ));
    assert!(b.auth().login("bob", PW, "test").await.is_ok());

    let mut bases = Vec::new();
    for site in &sites {
        let started = site.start().await.unwrap();
        let base = started
            .iter()
            .find(|(n, _)| n == "http")
            .and_then(|(_, a)| a.clone())
            .expect("http address");
        assert!(!base.ends_with(":0"), "{base}");
        bases.push(base);
    }
    assert_ne!(bases[0], bases[1]);

    let c = client();
    let post = |base: &str, user: &str| {
        c.post(format!("{base}/api/login"))
            .json(&json!({ "username": user, "password": PW }))
            .send()
    };
    // Both at once.
    let (ra, rb) = tokio::join!(post(&bases[0], "alice"), post(&bases[1], "bob"));
    assert_eq!(ra.unwrap().status(), StatusCode::OK);
    assert_eq!(rb.unwrap().status(), StatusCode::OK);
    assert_eq!(
        post(&bases[0], "bob").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&bases[1], "alice").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Stopping one leaves the other serving.
    a.close().await;
    assert!(
        post(&bases[0], "alice").await.is_err(),
        "site a stopped listening"
    );
    assert_eq!(
        post(&bases[1], "bob").await.unwrap().status(),
        StatusCode::OK
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_working_credentials() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("demo");
    let server = Server::spawn(&["demo", s(&dir), "--http", "127.0.0.1:0"], &[]);

    let field = |label: &str| {
        let line = server.wait_stdout(|l| l.trim_start().starts_with(label));
        line.trim_start()[label.len()..].trim().to_string()
    };
    let url = field("open:");
    let user = field("login:");
    let password = field("password:");
    assert_eq!(
        url,
        format!("{}/", server.base),
        "the printed URL is where it listens"
    );
    assert_eq!(user, "demo@localhost");

    let c = client();
    let t = token(&c, &server, &user, &password).await;
    let r = get_auth(&c, &server, "/api/me", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["primary"], "demo@localhost");
    let (status, _) = server.stop();
    assert!(status.success());
}
