//! The server-rendered pages, in process through the harness: the forms
//! with their CSRF tokens, logging in and out, signing up, and the
//! redirects between pages.

use axum::http::StatusCode;
use mantle_site::SignupPolicy;
use mantle_web::harness::{Answer, CSRF_TOKEN, Harness, PASSWORD};

/// Asserts a redirect (303) to `to`.
#[track_caller]
fn redirects(answer: &Answer, to: &str) {
    answer.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(answer.header("location"), Some(to));
}

#[tokio::test]
async fn a_visitor_gets_the_index_and_a_csrf_token_its_forms_repeat() {
    let h = Harness::new().await;
    let index = h.get("/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(index.text().contains("This is a Mantle site."));
    // Signup is by an administrator here: no link to it.
    assert!(!index.text().contains("href=\"/signup\""));
    let csrf = index.set_cookie("mantle_csrf").expect("a CSRF cookie");
    assert_eq!(csrf.len(), 43);

    // The login form carries the cookie's token, and a visitor who has
    // one keeps it.
    let form = h.get("/login").cookie("mantle_csrf", csrf).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.text()
            .contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
        "{}",
        form.text()
    );
    assert_eq!(form.set_cookie("mantle_csrf"), None);
}

#[tokio::test]
async fn logging_in_with_the_form_leads_home_and_logging_out_ends_it() {
    let h = Harness::new().await;
    h.site()
        .accounts()
        .create("alice", PASSWORD, false)
        .await
        .unwrap();

    let posted = h
        .post("/login")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .csrf()
        .await;
    redirects(&posted, "/home");
    let token = posted
        .set_cookie("mantle_token")
        .expect("the login cookie")
        .to_string();
    h.site()
        .auth()
        .authenticate(&token)
        .await
        .expect("a live token");

    let home = h.get("/home").login_cookie(&token).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("alice@example.com"), "{}", home.text());
    assert_eq!(home.header("cache-control"), Some("no-store"));
    // A logged-in visitor of the index goes home.
    redirects(&h.get("/").login_cookie(&token).await, "/home");

    let out = h
        .post("/logout")
        .login_cookie(&token)
        .form(&[])
        .csrf()
        .await;
    redirects(&out, "/login");
    assert_eq!(out.set_cookie("mantle_token"), Some(""));
    assert!(h.site().auth().authenticate(&token).await.is_err());
    redirects(&h.get("/home").login_cookie(&token).await, "/login");
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_the_error() {
    let h = Harness::new().await;
    h.user("alice").await;
    let answer = h
        .post("/login")
        .form(&[("username", "alice"), ("password", "not the password")])
        .csrf()
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let page = answer.text();
    assert!(page.contains("wrong login or password"), "{page}");
    assert!(
        page.contains("value=\"alice\""),
        "the login is kept: {page}"
    );
    assert_eq!(answer.set_cookie("mantle_token"), None);
}

#[tokio::test]
async fn forms_without_this_sites_csrf_token_are_refused() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let expired = "This form has expired or did not come from this site.";

    // No token at all.
    let answer = h
        .post("/login")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.text().contains(expired), "{}", answer.text());
    assert_eq!(answer.set_cookie("mantle_token"), None);

    // A token in the form that is not the cookie's (another site's page).
    let answer = h
        .post("/login")
        .cookie("mantle_csrf", CSRF_TOKEN)
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf", &"x".repeat(43)),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Logging out by a forged form leaves the login alive.
    let answer = h.post("/logout").login_cookie(&token).form(&[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(h.site().auth().authenticate(&token).await.is_ok());

    // A form missing a field is malformed, whatever its token.
    let answer = h.post("/login").form(&[("username", "alice")]).csrf().await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.text(), "malformed form");
}

/// Posts the signup form (with this site's CSRF token) for carol.
async fn sign_up(h: &Harness, invite: Option<&str>) -> Answer {
    let mut fields = vec![("username", "carol"), ("password", PASSWORD)];
    fields.extend(invite.map(|code| ("invite", code)));
    h.post("/signup").form(&fields).csrf().await
}

#[tokio::test]
async fn signing_up_with_the_form_follows_the_policy() {
    // Open: the form makes the account and logs in.
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Open).await;
    assert!(h.get("/").await.text().contains("href=\"/signup\""));
    let made = sign_up(&h, None).await;
    redirects(&made, "/home");
    let token = made.set_cookie("mantle_token").unwrap();
    let me = h.site().auth().authenticate(token).await.unwrap();
    assert_eq!(me.address, "carol@example.com");

    // Invite: the form asks for the code, and refuses without one.
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Invite).await;
    assert!(h.get("/signup").await.text().contains("name=\"invite\""));
    let refused = sign_up(&h, None).await;
    refused.assert_status(StatusCode::FORBIDDEN);
    assert!(refused.text().contains("invalid or used invite code"));
    let code = h.site().accounts().create_invite().await.unwrap();
    redirects(&sign_up(&h, Some(&code)).await, "/home");

    // Admin: closed.
    let h = Harness::configured(|c| c.signup.policy = SignupPolicy::Admin).await;
    let refused = sign_up(&h, None).await;
    refused.assert_status(StatusCode::FORBIDDEN);
    assert!(refused.text().contains("signup is closed on this site"));
    assert!(h.site().accounts().get("carol").await.is_err());
}

#[tokio::test]
async fn robots_keep_crawlers_to_the_public_pages() {
    let h = Harness::new().await;
    let robots = h.get("/robots.txt").await;
    assert_eq!(robots.status, StatusCode::OK);
    assert_eq!(
        robots.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    for path in ["/api/", "/home", "/admin", "/stats"] {
        assert!(
            robots.text().contains(&format!("Disallow: {path}\n")),
            "{path}"
        );
    }
}
