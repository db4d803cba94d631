//! The admin API and dashboard, end to end: the real `mantle` binary
//! serving sites on loopback ports; the administrative commands run
//! against a served site (through its admin API) and against a site that
//! is not served (opening its files), with the same output; who may use
//! the admin routes; the runtime file; and the dashboard in headless
//! Chromium on a desktop and a phone, with screenshots written under
//! `target/test-output/admin/`.

mod browser;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use browser::{Browser, Viewport, js};
use mantle_web::AdminRuntime;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

const PW: &str = "correct horse battery";

/// A site with an admin (`root`), `alice` and `bob`, and one parked
/// message: alice's credit to a login that does not exist (refused and
/// refunded, so it cannot be retried, only dropped).
async fn prepared_site() -> TestSite {
    let site = TestSite::init("invite");
    site.add_admin("root", PW);
    let lib = library_site(&site.dir).open().await.expect("open the site");
    lib.accounts().create("alice", PW, false).await.unwrap();
    lib.accounts().create("bob", PW, false).await.unwrap();
    let alice = credit_a_ghost(&lib, "alice").await;
    eventually("refunded and parked", async || {
        let balance = mantle_example_ledger::balance(&lib, alice).await.unwrap();
        let parked = lib.messaging().parked().await.unwrap();
        (balance == 100 && parked.len() == 1, (balance, parked))
    })
    .await;
    lib.close().await;
    site
}

/// What a command did, comparable across two sites: the exit code and
/// what it printed, with the site's directory written `DIR`, invite codes
/// `CODE`, and the fields that differ between two runs (creation times,
/// message ids) taken out of JSON.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn outcome(o: &Output, dir: &str) -> Outcome {
    let clean = |text: String| {
        let text = text.replace(dir, "DIR");
        match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                if let Some(items) = v.as_array_mut() {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.remove("created");
                        item.remove("message");
                    }
                }
                v.to_string()
            }
            Err(_) => text
                .lines()
                .map(|l| {
                    let is_code = l.len() == 43
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if is_code { "CODE" } else { l }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    };
    Outcome {
        code: o.status.code(),
        stdout: clean(stdout(o)),
        stderr: clean(stderr(o)),
    }
}

/// `mantle ARGS` with `DIR` replaced by the site's directory.
fn run(site: &TestSite, args: &[&str], input: &str) -> Outcome {
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DIR" { site.path() } else { a })
        .collect();
    outcome(&mantle_with_stdin(&args, input), site.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_says_the_same_served_or_not() {
    let files = prepared_site().await;
    let served = prepared_site().await;
    let server = served.serve(&[]);
    let parked = {
        let out = ok(mantle(&["messages", "list", files.path()]));
        let row = out.lines().nth(1).expect("a parked message").to_string();
        row.split_whitespace().next().unwrap().to_string()
    };
    let pw = format!("{PW}\n");
    let new_pw = "a brand new password\n";
    // Each command, its standard input, and what it must say (on stdout if
    // it succeeds, on stderr if not).
    let script: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["user", "add", "DIR", "carol"],
            &pw,
            "created carol@localhost",
        ),
        (
            vec!["user", "add", "DIR", "dave", "--admin"],
            &pw,
            "(admin)",
        ),
        (vec!["user", "add", "DIR", "carol"], &pw, "already taken"),
        (
            vec!["user", "add", "DIR", "not a login!"],
            &pw,
            "not a valid login",
        ),
        (vec!["user", "add", "DIR", "erin"], "short\n", "at least 8"),
        (vec!["user", "list", "DIR"], "", "dave@localhost"),
        (vec!["user", "list", "DIR", "--json"], "", "carol@localhost"),
        (vec!["user", "disable", "DIR", "bob"], "", "bob disabled"),
        (vec!["user", "disable", "DIR", "nobody"], "", "no account"),
        (vec!["user", "list", "DIR"], "", "disabled"),
        (
            vec!["user", "enable", "DIR", "bob@localhost"],
            "",
            "enabled",
        ),
        (vec!["user", "passwd", "DIR", "alice"], new_pw, "revoked"),
        (
            vec!["user", "passwd", "DIR", "alice"],
            "short\n",
            "at least 8",
        ),
        (
            vec!["user", "passwd", "DIR", "nobody"],
            new_pw,
            "no account",
        ),
        (vec!["user", "invite", "DIR"], "", "CODE"),
        (vec!["messages", "list", "DIR"], "", "NO_SUCH_RECIPIENT"),
        (
            vec!["messages", "list", "DIR", "--json"],
            "",
            "ghost@localhost",
        ),
        (
            vec!["messages", "retry", "DIR", &parked],
            "",
            "answered with a refusal",
        ),
        (
            vec!["messages", "retry", "DIR", "account:1/x"],
            "",
            "not a parked message id",
        ),
        (
            vec!["messages", "drop", "DIR", "app:nothing/1"],
            "",
            "no store at address",
        ),
        (vec!["messages", "drop", "DIR", &parked], "", "dropped"),
        (
            vec!["messages", "drop", "DIR", &parked],
            "",
            "no parked message",
        ),
        (vec!["messages", "list", "DIR"], "", "no parked messages"),
        (
            vec!["ledger", "grant", "DIR", "alice", "5"],
            "",
            "balance 105",
        ),
        (
            vec!["ledger", "grant", "DIR", "nobody", "5"],
            "",
            "no account",
        ),
        (vec!["ledger", "balance", "DIR", "alice"], "", "alice: 105"),
        (vec!["ledger", "balance", "DIR", "bob@localhost"], "", ": 0"),
        (
            vec!["fanout", "DIR", "count", "ledger_entry"],
            "",
            "4 items in 5 user stores (1 hold some)",
        ),
        (
            vec!["fanout", "DIR", "--parallel", "1", "count", "notes_note"],
            "",
            "0 items",
        ),
        (
            vec!["user", "delete", "DIR", "carol"],
            "",
            "kept at DIR/users/carol",
        ),
        (
            vec!["user", "delete", "DIR", "dave", "--purge-store", "--yes"],
            "",
            "and its user store",
        ),
        (vec!["user", "delete", "DIR", "nobody"], "", "no account"),
        (vec!["user", "list", "DIR"], "", "bob@localhost"),
    ];
    for (args, input, says) in &script {
        let here = run(&files, args, input);
        let there = run(&served, args, input);
        assert_eq!(
            there,
            here,
            "`mantle {}` says something else when the site is served",
            args.join(" ")
        );
        if here.code == Some(0) {
            assert!(here.stdout.contains(says), "{args:?}: {here:?}");
        } else {
            assert_eq!(here.code, Some(1), "{args:?}: {here:?}");
            assert_eq!(here.stderr.lines().count(), 1, "{args:?}: {here:?}");
            assert!(here.stderr.starts_with("mantle: "), "{args:?}: {here:?}");
            assert!(here.stderr.contains(says), "{args:?}: {here:?}");
        }
    }
    // The served site's commands went through its server (it logged them,
    // as done by the operator), and it kept serving meanwhile.
    let logged = server.stderr().join("\n");
    for what in [
        "admin: account created",
        "admin: account switched",
        "admin: password set",
        "admin: invite made",
        "admin: parked message dropped",
        "admin: ledger grant",
        "admin: account deleted",
    ] {
        assert!(
            logged.contains(what) && logged.contains("by=operator"),
            "{what} not logged:\n{logged}"
        );
    }
    let c = client();
    token(&c, &server, "alice", "a brand new password").await;
    let (status, stderr) = server.stop();
    assert!(status.success(), "{status:?}");
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
    // What the server did is in the files.
    assert_eq!(
        run(&served, &["user", "list", "DIR", "--json"], ""),
        run(&files, &["user", "list", "DIR", "--json"], "")
    );
    assert!(
        !served.dir.join("users/dave_localhost.store").exists(),
        "purged"
    );
    assert!(
        served.dir.join("users/carol_localhost.store").exists(),
        "kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_an_account_while_served_takes_effect_at_once() {
    let site = TestSite::init("admin");
    site.add_admin("root", PW);
    site.add_user("bob", PW);
    let server = site.serve(&[]);
    let c = client();
    let bob = token(&c, &server, "bob", PW).await;
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::OK
    );

    assert_eq!(
        ok(mantle(&["user", "disable", site.path(), "bob"])).trim(),
        "bob disabled"
    );
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::UNAUTHORIZED,
        "the disabled account's token is refused at once"
    );
    assert_eq!(
        login(&c, &server, "bob", PW).await.status(),
        StatusCode::FORBIDDEN
    );
    ok(mantle(&["user", "enable", site.path(), "bob"]));
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::UNAUTHORIZED,
        "enabling does not revive old tokens"
    );
    let fresh = token(&c, &server, "bob", PW).await;
    ok(mantle_with_stdin(
        &["user", "passwd", site.path(), "bob"],
        "another long password\n",
    ));
    assert_eq!(
        get_auth(&c, &server, "/api/me", &fresh).await.status(),
        StatusCode::UNAUTHORIZED,
        "a new password revokes the tokens at once"
    );
    token(&c, &server, "bob", "another long password").await;
    assert!(server.stop().0.success());
}

/// Every admin route with a request that an admin would get an answer to.
fn admin_requests() -> Vec<(Method, &'static str, Option<Value>)> {
    let login = json!({ "login": "carol", "password": PW });
    vec![
        (Method::GET, "/api/admin/accounts", None),
        (Method::POST, "/api/admin/accounts", Some(login)),
        (Method::GET, "/api/admin/accounts/bob@localhost", None),
        (
            Method::POST,
            "/api/admin/accounts/bob@localhost/disable",
            None,
        ),
        (
            Method::POST,
            "/api/admin/accounts/bob@localhost/enable",
            None,
        ),
        (
            Method::PUT,
            "/api/admin/accounts/carol/password",
            Some(json!({ "password": "a third long password" })),
        ),
        (Method::GET, "/api/admin/accounts/bob/tokens", None),
        (Method::DELETE, "/api/admin/accounts/bob/tokens/999", None),
        (Method::POST, "/api/admin/invites", None),
        (Method::GET, "/api/admin/stores", None),
        (Method::GET, "/api/admin/fanout/count/ledger_entry", None),
        (Method::GET, "/api/admin/messages", None),
        (
            Method::POST,
            "/api/admin/messages/retry",
            Some(json!({ "id": "site/1" })),
        ),
        (
            Method::POST,
            "/api/admin/messages/drop",
            Some(json!({ "id": "site/1" })),
        ),
        (
            Method::POST,
            "/api/admin/ledger/grant",
            Some(json!({ "login": "bob", "amount": 1 })),
        ),
        (Method::GET, "/api/admin/ledger/balance/bob", None),
        (Method::DELETE, "/api/admin/accounts/carol", None),
        (Method::GET, "/admin", None),
        (Method::GET, "/admin/accounts/2", None),
        (Method::POST, "/admin/accounts", None),
        (Method::POST, "/admin/accounts/2/disable", None),
        (Method::POST, "/admin/accounts/2/tokens/1/revoke", None),
        (Method::POST, "/admin/invites", None),
        (Method::POST, "/admin/messages/drop", None),
        // Methods the routes lack: 404 like the rest, not 405.
        (Method::PATCH, "/api/admin/accounts", None),
        (Method::GET, "/api/admin/accounts/bob/disable", None),
        (Method::DELETE, "/admin", None),
        (Method::GET, "/api/admin/ledger/grant", None),
        // Bad input: still 404 before anything looks at it.
        (Method::DELETE, "/api/admin/accounts/bob/tokens/x", None),
        (Method::GET, "/admin/accounts/x", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_404_to_anyone_but_admins() {
    let site = TestSite::init("admin");
    site.add_admin("root", PW);
    site.add_user("bob", PW);
    let server = site.serve(&[]);
    let c = client();
    let bob = token(&c, &server, "bob", PW).await;
    let root = token(&c, &server, "root", PW).await;
    let secret = AdminRuntime::load(&site.dir)
        .unwrap()
        .expect("runtime file")
        .secret;

    let missing = c.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing_type = missing.headers().get(CONTENT_TYPE).cloned();
    let missing_body = missing.bytes().await.unwrap();

    type Dress = fn(reqwest::RequestBuilder, &str) -> reqwest::RequestBuilder;
    let callers: Vec<(&str, Option<&str>, Dress)> = vec![
        ("anonymous", None, |r, _| r),
        ("bob's token", Some(&bob), |r, t| r.bearer_auth(t)),
        ("bob's cookie", Some(&bob), |r, t| {
            r.header(COOKIE, format!("mantle_token={t}"))
        }),
        ("a made-up token", Some("A".repeat(43).leak()), |r, t| {
            r.bearer_auth(t)
        }),
        ("the secret as a cookie", Some(&secret), |r, t| {
            r.header(COOKIE, format!("mantle_token={t}"))
        }),
    ];
    for (method, path, body) in admin_requests() {
        for (who, credential, dress) in &callers {
            let mut req = c.request(method.clone(), server.url(path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(t) = credential {
                req = dress(req, t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::NOT_FOUND,
                "{method} {path} as {who}"
            );
            assert_eq!(
                r.headers().get(CONTENT_TYPE).cloned(),
                missing_type,
                "{method} {path} as {who}"
            );
            assert_eq!(
                r.bytes().await.unwrap(),
                missing_body,
                "{method} {path} as {who}: the answer of a page that does not exist"
            );
        }
    }

    // The JSON API takes an admin's token or the secret, as a bearer token
    // only (never the cookie: another site could make a browser send it).
    for credential in [&root, &secret] {
        let r = get_auth(&c, &server, "/api/admin/accounts", credential).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["accounts"].as_array().unwrap().len(), 2);
    }
    let r = c
        .get(server.url("/api/admin/accounts"))
        .header(COOKIE, format!("mantle_token={root}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "an admin's cookie");
    let r = c
        .get(server.url("/admin"))
        .header(COOKIE, format!("mantle_token={root}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the dashboard takes the cookie");
    // Errors are in the site's own words.
    let r = get_auth(&c, &server, "/api/admin/accounts/nobody", &secret).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "no account with login 'nobody@localhost'");
    // A dashboard form without the CSRF token changes nothing.
    let r = c
        .post(server.url("/admin/accounts/2/disable"))
        .header(COOKIE, format!("mantle_token={root}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("csrf=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::OK
    );
    let (status, stderr) = server.stop();
    assert!(status.success());
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
}

/// An admin using the dashboard over plain HTTP: the login cookie and a
/// CSRF cookie of its own (the forms must repeat it).
struct Dashboard<'a> {
    c: reqwest::Client,
    server: &'a Server,
    cookies: String,
    csrf: String,
}

impl<'a> Dashboard<'a> {
    async fn as_admin(server: &'a Server, login_name: &str) -> Dashboard<'a> {
        let c = client();
        let token = token(&c, server, login_name, PW).await;
        let csrf = "C".repeat(43);
        let cookies = format!("mantle_token={token}; mantle_csrf={csrf}");
        Dashboard {
            c,
            server,
            cookies,
            csrf,
        }
    }

    /// `GET path`: the page's HTML, showing the outcome `flash` carries.
    async fn get(&self, path: &str, flash: Option<&str>) -> String {
        let mut cookies = self.cookies.clone();
        if let Some(f) = flash {
            cookies.push_str(&format!("; mantle_admin_flash={f}"));
        }
        let r = self
            .c
            .get(self.server.url(path))
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.unwrap()
    }

    /// Posts a form (with the CSRF token); follows the redirect and
    /// answers where it went and the outcome the page shows there.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (String, String) {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('@', "%40").replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&");
        let r = self
            .c
            .post(self.server.url(path))
            .header(COOKIE, &self.cookies)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "POST {path}");
        let to = r.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        let (flash, _) = set_cookie(&r, "mantle_admin_flash").expect("an outcome to show");
        let html = self.get(to.split('#').next().unwrap(), Some(&flash)).await;
        let at = html.find("id=\"flash\"").expect("the outcome shown");
        let text = &html[at..];
        let text = &text[text.find('>').unwrap() + 1..text.find("</p>").unwrap()];
        let text = [
            ("&#x27;", "'"),
            ("&#x2f;", "/"),
            ("&quot;", "\""),
            ("&lt;", "<"),
            ("&gt;", ">"),
        ]
        .iter()
        .fold(text.to_string(), |t, (entity, c)| t.replace(entity, c))
        .replace("&amp;", "&");
        (to, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_forms_do_what_they_say() {
    let site = prepared_site().await;
    let server = site.serve(&[]);
    let d = Dashboard::as_admin(&server, "root").await;
    let c = client();

    let (to, said) = d
        .post(
            "/admin/accounts",
            &[("login", "carol"), ("password", PW), ("admin", "on")],
        )
        .await;
    assert_eq!(said, "created carol@localhost (admin)");
    assert!(to.starts_with("/admin#account-"), "{to}");
    let carol_id = to.trim_start_matches("/admin#account-").to_string();
    let (_, said) = d
        .post("/admin/accounts", &[("login", "carol"), ("password", PW)])
        .await;
    assert_eq!(said, "'carol@localhost' is already taken");

    // Bob's page: his token, revoked; his password, set.
    let bob = token(&c, &server, "bob", PW).await;
    let page = d.get("/admin/accounts/3", None).await;
    assert!(page.contains("<h1>bob@localhost</h1>"), "{page}");
    let token_id = {
        let at = page.find("data-token=\"").expect("a token row") + "data-token=\"".len();
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    let (to, said) = d
        .post(&format!("/admin/accounts/3/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(
        (to.as_str(), said.as_str()),
        ("/admin/accounts/3", "token revoked")
    );
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (_, said) = d
        .post(
            "/admin/accounts/3/password",
            &[("password", "short"), ("from", "account")],
        )
        .await;
    assert_eq!(said, "password rejected: at least 8 characters");
    let (to, said) = d
        .post(
            "/admin/accounts/3/password",
            &[("password", "a fresh password"), ("from", "account")],
        )
        .await;
    assert_eq!(to, "/admin/accounts/3");
    assert_eq!(
        said,
        "password changed for bob@localhost; its tokens were revoked"
    );
    token(&c, &server, "bob", "a fresh password").await;

    // An invite code, shown once, works at signup.
    let r = c
        .post(server.url("/admin/invites"))
        .header(COOKIE, &d.cookies)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={}", d.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let at = html.find("id=\"invite-code\">").expect("the code") + "id=\"invite-code\">".len();
    let code = &html[at..at + 43];
    let r = c
        .post(server.url("/api/signup"))
        .json(&json!({ "username": "erin", "password": PW, "invite": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // The parked message: retrying is refused (its sender was refunded);
    // dropping it works once.
    let id = ok(mantle(&["messages", "list", site.path(), "--json"]));
    let id: Value = serde_json::from_str(&id).unwrap();
    let id = id[0]["id"].as_str().unwrap().to_string();
    let (to, said) = d.post("/admin/messages/retry", &[("id", &id)]).await;
    assert_eq!(to, "/admin#messages");
    assert!(said.contains("answered with a refusal"), "{said}");
    let (_, said) = d.post("/admin/messages/drop", &[("id", &id)]).await;
    assert_eq!(said, format!("{id}: dropped"));
    let (_, said) = d.post("/admin/messages/drop", &[("id", &id)]).await;
    assert_eq!(said, format!("no parked message '{id}'"));
    assert!(d.get("/admin", None).await.contains("No parked messages."));

    // Deleting needs the login typed again; the user store is kept.
    let path = format!("/admin/accounts/{carol_id}/delete");
    let (_, said) = d
        .post(&path, &[("confirm", "carol"), ("from", "account")])
        .await;
    assert_eq!(said, "not deleted: type carol@localhost to confirm");
    let (to, said) = d.post(&path, &[("confirm", "carol@localhost")]).await;
    assert_eq!(to, "/admin#accounts");
    assert!(
        said.starts_with("deleted carol@localhost; its user store is kept at "),
        "{said}"
    );
    assert!(site.dir.join("users/carol_localhost.store").exists());
    let (to, said) = d
        .post(&format!("/admin/accounts/{carol_id}/disable"), &[])
        .await;
    assert_eq!(to, "/admin#accounts");
    assert_eq!(said, format!("no account with login '#{carol_id}'"));

    let (status, stderr) = server.stop();
    assert!(status.success());
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Asserts a command failed with exit code 1 and one line on stderr
/// containing each of `parts`.
#[track_caller]
fn fails_saying(o: Output, parts: &[&str]) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for p in parts {
        assert!(err.contains(p), "{p:?} not in: {err}");
    }
    assert!(stdout(&o).is_empty(), "stdout: {}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_file_is_private_removed_at_stop_and_a_stale_one_is_named() {
    let site = TestSite::init("admin");
    site.add_user("bob", PW);
    let file = site.dir.join(mantle_web::ADMIN_RUNTIME_FILE);

    // Written at start: the bound address, mode 0600 in a 0700 directory.
    let server = site.serve(&[]);
    let runtime = AdminRuntime::load(&site.dir).unwrap().expect("written");
    assert_eq!(format!("http://{}", runtime.http), server.base);
    assert_eq!(runtime.pid, server.pid());
    assert_eq!(runtime.secret.len(), 43);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    // Removed at a clean stop.
    assert!(server.stop().0.success());
    assert!(!file.exists(), "removed at shutdown");

    // A new secret at each start; a killed server leaves its file behind.
    let server = site.serve(&[]);
    let second = AdminRuntime::load(&site.dir).unwrap().expect("written");
    assert_ne!(second.secret, runtime.secret);
    let dead_base = server.base.clone();
    server.kill();
    assert!(file.exists(), "a killed server cannot clean up");

    // With nobody holding the site, commands open its files (the stale
    // file does not matter).
    assert_eq!(
        ok(mantle(&["user", "disable", site.path(), "bob"])).trim(),
        "bob disabled"
    );
    // With the site held by another process, the stale file is named.
    let held = library_site(&site.dir).open().await.expect("open the site");
    fails_saying(
        mantle(&["user", "enable", site.path(), "bob"]),
        &[
            "run/admin.json is stale",
            &format!("nothing answers at {dead_base}"),
            &format!("process {}", second.pid),
        ],
    );
    // Held, and no runtime file at all.
    std::fs::remove_file(&file).unwrap();
    fails_saying(
        mantle(&["messages", "list", site.path()]),
        &["is open for writing by another process that is not serving it"],
    );
    // A runtime file naming a server that is not this site's.
    let stranger = TestSite::init("admin");
    let other = stranger.serve(&[]);
    let mut wrong = AdminRuntime::load(&stranger.dir).unwrap().expect("written");
    wrong.secret = "B".repeat(43);
    std::fs::write(&file, serde_json::to_string(&wrong).unwrap()).unwrap();
    fails_saying(
        mantle(&["user", "list", site.path()]),
        &["is stale", "does not take its secret"],
    );
    drop(other);
    held.close().await;
    assert_eq!(
        ok(mantle(&["user", "enable", site.path(), "bob"])).trim(),
        "bob enabled"
    );

    // A new server replaces a stale file with its own.
    let server = site.serve(&[]);
    let third = AdminRuntime::load(&site.dir).unwrap().expect("written");
    assert_eq!(format!("http://{}", third.http), server.base);
    assert!(ok(mantle(&["user", "list", site.path()])).contains("bob@localhost"));
    assert!(server.stop().0.success());
}

/// A script listing the elements of a page that reach past `width` CSS
/// pixels (as `TAG#id.class: right edge`), leaving out those inside a box
/// that scrolls or clips sideways (they do not widen the page). A phone's
/// window widens to what the page needs, so the width is the device's.
fn overflowing(width: u32) -> String {
    format!(
        "Array.from(document.querySelectorAll('body *')).filter(e => {{ \
           const r = e.getBoundingClientRect(); \
           if (r.width === 0 || r.right <= {width} + 0.5) return false; \
           for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {{ \
             if (getComputedStyle(a).overflowX !== 'visible') return false; \
           }} \
           return true; \
         }}).map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') \
              + ': ' + e.getBoundingClientRect().right)"
    )
}

/// Where this test's screenshots go: `target/test-output/admin/`.
fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp is in target/")
        .join("test-output")
        .join("admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_disables_an_account_with_a_click_on_desktop_and_phone() {
    let site = prepared_site().await;
    let server = site.serve(&[]);
    let c = client();
    let bob = token(&c, &server, "bob", PW).await;
    let shots = output_dir();

    let browser = Browser::launch().await;
    let desk = browser.page("desktop (root)").await;
    desk.set_viewport(Viewport::DESKTOP).await;
    desk.log_in(&server, "root", PW).await;
    desk.goto(&server.url("/admin")).await;
    let row = |login: &str| {
        format!(
            "Array.from(document.querySelectorAll('#account-list tr[data-login]')).find(r => r.dataset.login === {})",
            js(login)
        )
    };
    let logins = desk
        .eval("Array.from(document.querySelectorAll('#account-list tr[data-login]')).map(r => r.dataset.login)")
        .await;
    assert_eq!(
        logins,
        json!(["root@localhost", "alice@localhost", "bob@localhost"])
    );
    assert_eq!(
        desk.eval("document.querySelectorAll('#message-list tr[data-id]').length")
            .await,
        json!(1),
        "the parked message is listed"
    );
    assert_eq!(
        desk.eval("document.querySelectorAll('#store-list tr[data-path]').length")
            .await,
        json!(4),
        "the site store and three user stores (no offering has an app store)"
    );
    desk.screenshot(&shots.join("dashboard-desktop.png"), false)
        .await;

    // One click disables bob: the page says so, and his token is refused.
    desk.eval(&format!(
        "({}).querySelector('button[name=disable]').click(), true",
        row("bob@localhost")
    ))
    .await;
    desk.wait_for(
        "bob shown disabled",
        &format!(
            "!!document.querySelector('#flash') && document.querySelector('#flash').textContent === 'bob@localhost disabled' \
             && ({}).dataset.state === 'disabled'",
            row("bob@localhost")
        ),
    )
    .await;
    assert_eq!(
        get_auth(&c, &server, "/api/me", &bob).await.status(),
        StatusCode::UNAUTHORIZED
    );
    desk.screenshot(&shots.join("dashboard-desktop-disabled.png"), true)
        .await;

    // On a phone: the tables become cards that fit the screen.
    let phone = browser.page("phone (root)").await;
    phone.set_viewport(Viewport::PHONE).await;
    phone.log_in(&server, "root", PW).await;
    phone.goto(&server.url("/admin")).await;
    assert_eq!(phone.eval("window.innerWidth").await, json!(390));
    let fits = overflowing(Viewport::PHONE.width);
    assert_eq!(
        phone.eval(&fits).await,
        json!([]),
        "nothing wider than the phone"
    );
    assert_eq!(
        phone
            .eval(&format!(
                "getComputedStyle({}).display",
                row("bob@localhost")
            ))
            .await,
        json!("block"),
        "rows are cards"
    );
    assert_eq!(
        phone
            .eval("document.querySelector('#store-list').getBoundingClientRect().right <= 390")
            .await,
        json!(true),
        "the stores' cards fit too (their box could scroll sideways)"
    );
    phone
        .screenshot(&shots.join("dashboard-phone.png"), false)
        .await;
    phone
        .screenshot(&shots.join("dashboard-phone-full.png"), true)
        .await;
    for section in ["messages", "stores"] {
        phone
            .eval(&format!(
                "document.querySelector('#{section}').scrollIntoView(), true"
            ))
            .await;
        phone
            .screenshot(&shots.join(format!("dashboard-phone-{section}.png")), false)
            .await;
    }
    phone.eval("window.scrollTo(0, 0), true").await;
    // A tap enables bob again.
    phone
        .eval(&format!(
            "({}).querySelector('button[name=enable]').click(), true",
            row("bob@localhost")
        ))
        .await;
    phone
        .wait_for(
            "bob shown active",
            &format!("({}).dataset.state === 'active'", row("bob@localhost")),
        )
        .await;
    token(&c, &server, "bob", PW).await;
    // Bob's page: his tokens, the password and the delete forms.
    phone
        .eval(&format!(
            "({}).querySelector('a').click(), true",
            row("bob@localhost")
        ))
        .await;
    phone
        .wait_for(
            "bob's page with his token",
            "location.pathname.startsWith('/admin/accounts/') \
             && document.querySelectorAll('#token-list tr[data-token]').length === 1",
        )
        .await;
    assert_eq!(
        phone.eval(&fits).await,
        json!([]),
        "the account page fits the phone"
    );
    assert_eq!(phone.eval("window.innerWidth").await, json!(390));
    phone
        .screenshot(&shots.join("account-phone.png"), true)
        .await;

    // To a user who is not an admin the dashboard does not exist.
    let other = browser.page("bob").await;
    other.log_in(&server, "bob", PW).await;
    let status = other.eval("fetch('/admin').then(r => r.status)").await;
    assert_eq!(status, json!(404));

    let exceptions = browser.cdp.exceptions.lock().clone();
    assert!(
        exceptions.is_empty(),
        "uncaught exceptions: {exceptions:#?}"
    );
    drop(browser);
    let (status, stderr) = server.stop();
    assert!(status.success());
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
    for name in [
        "dashboard-desktop.png",
        "dashboard-desktop-disabled.png",
        "dashboard-phone.png",
        "dashboard-phone-full.png",
        "dashboard-phone-messages.png",
        "dashboard-phone-stores.png",
        "account-phone.png",
    ] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(png.len() > 1000, "{name} is an image");
    }
}
