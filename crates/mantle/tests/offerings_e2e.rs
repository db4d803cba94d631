//! Offerings, installation and products against the real binary: install
//! and uninstall on a running site (routes appear and disappear, data
//! kept), products granted and revoked (pages 404 to a user without
//! them, hooks run once per user, also for users made before the
//! install), and configuration errors said clearly.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::*;

const PW: &str = "correct horse battery staple";

/// Runs `mantle ARGS` and returns its stdout, asserting success.
fn run(args: &[&str]) -> String {
    ok(mantle(args))
}

/// `(items, stores holding some)` of the notes' `note` type across the
/// user stores (`mantle fanout`), waiting (bounded) until `want` items are
/// there: an offering is given by a message, which arrives just after the
/// grant or install.
fn notes(site: &TestSite, want: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["fanout", site.path(), "count", "note"]);
        // "note: N items in M user stores (K hold some)"
        let words: Vec<&str> = out.split_whitespace().collect();
        let items: u64 = words[1].parse().expect("items");
        let holding: u64 = words[7].trim_start_matches('(').parse().expect("holding");
        if items >= want || Instant::now() > deadline {
            return (items, holding);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offerings_are_installed_and_uninstalled_on_a_running_site_and_keep_their_data() {
    let site = TestSite::init_bare("admin", &[]);
    site.add_user("alice", PW);
    let listed = run(&["offering", "list", site.path()]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ledger") && l.contains("not installed")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("web") && l.contains("layer")),
        "{listed}"
    );

    let server = site.serve(&[]);
    let c = client();
    let alice = token(&c, &server, "alice", PW).await;
    // Not installed: as if the routes did not exist.
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Installed through the running server's admin API; alice is given
    // them by a product granted before the install.
    run(&["product", "create", site.path(), "basic", "ledger", "notes"]);
    run(&["product", "grant", site.path(), "basic", "alice"]);
    let out = run(&["offering", "install", site.path(), "ledger"]);
    assert!(out.contains("installed ledger"), "{out}");
    run(&["offering", "install", site.path(), "notes"]);
    // The notes' on_given hook made alice's first note.
    assert_eq!(notes(&site, 1), (1, 1));
    run(&["ledger", "grant", site.path(), "alice", "50"]);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["balance"], 50);

    // Uninstalled: the routes are gone, the data is not.
    run(&["offering", "uninstall", site.path(), "ledger"]);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let listed = run(&["offering", "list", site.path(), "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let ledger = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "ledger")
        .unwrap();
    assert_eq!(ledger["state"], "available");

    run(&["offering", "install", site.path(), "ledger"]);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.json::<Value>().await.unwrap()["balance"], 50);
    // Given again on a re-install, but the hook ran once.
    run(&["offering", "uninstall", site.path(), "notes"]);
    run(&["offering", "install", site.path(), "notes"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(notes(&site, 2), (1, 1));
    server.stop_cleanly();

    // The record of installation is in the site: a restart keeps it.
    let server = site.serve(&[]);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Purging deletes the data, and only when confirmed.
    let refused = mantle(&["offering", "uninstall", site.path(), "notes", "--purge"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("not purged"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(notes(&site, 1), (1, 1));
    let out = run(&[
        "offering",
        "uninstall",
        site.path(),
        "notes",
        "--purge",
        "--yes",
    ]);
    assert!(out.contains("deleted its data (2 items)"), "{out}");
    assert_eq!(notes(&site, 0), (0, 0));
    server.stop_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_decide_who_sees_an_offerings_pages_and_hooks_run_once_per_user() {
    let site = TestSite::init_bare("open", &[]);
    // Users made before anything is installed.
    site.add_user("alice", PW);
    site.add_user("bob", PW);
    run(&["offering", "install", site.path(), "ledger"]);
    run(&["offering", "install", site.path(), "lists"]);
    run(&["offering", "install", site.path(), "notes"]);
    run(&["product", "create", site.path(), "money", "ledger", "notes"]);
    run(&[
        "product",
        "create",
        site.path(),
        "all",
        "ledger",
        "lists",
        "notes",
    ]);
    run(&["product", "grant", site.path(), "money", "alice"]);
    run(&["product", "grant", site.path(), "all", "alice"]);
    // A second grant of the same product changes nothing.
    let again = run(&["product", "grant", site.path(), "money", "alice"]);
    assert!(again.contains("already holds"), "{again}");
    let listed = run(&["product", "list", site.path(), "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let server = site.serve(&[]);
    let c = client();
    let alice = token(&c, &server, "alice", PW).await;
    let bob = token(&c, &server, "bob", PW).await;
    // Two products give alice the notes: the hook ran once, in her store
    // only.
    assert_eq!(notes(&site, 1), (1, 1));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(notes(&site, 2), (1, 1));

    // Bob was given nothing: the pages answer 404 to him.
    let r = get_auth(&c, &server, "/api/ledger/balance", &bob).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for path in [
        "/lists",
        "/lists/groceries",
        "/lists/bob@localhost/groceries",
    ] {
        let r = get_auth(&c, &server, path, &bob).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = get_auth(&c, &server, "/lists", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = get_auth(&c, &server, "/lists/groceries", &alice).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[reqwest::header::LOCATION],
        "/lists/alice@localhost/groceries"
    );
    let r = get_auth(&c, &server, "/lists/alice@localhost/groceries", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Alice's home page lists her applications with links.
    let home = get_auth(&c, &server, "/home", &alice)
        .await
        .text()
        .await
        .unwrap();
    // (Template output escapes '/' as "&#x2f;".)
    let links = home.replace("&#x2f;", "/");
    assert!(links.contains(r#"href="/lists""#), "{home}");
    assert!(links.contains(r#"href="/api/ledger/balance""#), "{home}");
    let home = get_auth(&c, &server, "/home", &bob)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !home.replace("&#x2f;", "/").contains(r#"href="/lists""#),
        "{home}"
    );

    // Revoking "all" keeps the ledger (still given by "money"), takes the
    // lists; the ledger's data stays after revoking "money" too.
    run(&["product", "revoke", site.path(), "all", "alice"]);
    for path in [
        "/lists",
        "/lists/groceries",
        "/lists/alice@localhost/groceries",
    ] {
        let r = get_auth(&c, &server, path, &alice).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    run(&["product", "revoke", site.path(), "money", "alice"]);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let failed = mantle(&["product", "delete", site.path(), "nosuch"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("no product named"),
        "{}",
        stderr(&failed)
    );
    run(&["product", "delete", site.path(), "all"]);
    server.stop_cleanly();
    // Taken back, her notes are still hers.
    assert_eq!(notes(&site, 1), (1, 1));

    // New signups get the signup product, and with it the hook's work.
    site.edit_config(|c| c.signup.product = Some("money".into()));
    let server = site.serve(&[]);
    let r = c
        .post(server.url("/api/signup"))
        .json(&serde_json::json!({ "username": "carol", "password": PW }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(notes(&site, 2), (2, 2));
    server.stop_cleanly();
}

#[test]
fn offering_commands_refuse_what_cannot_be_done_with_one_clear_line() {
    let site = TestSite::init_bare("admin", &[]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["offering", "install", site.path(), "nosuch"],
            "no offering named \"nosuch\"",
        ),
        (&["offering", "install", site.path(), "web"], "is a layer"),
        (
            &["offering", "uninstall", site.path(), "ledger"],
            "is not installed",
        ),
        (
            &["product", "create", site.path(), "p", "nosuch"],
            "no offering named",
        ),
        (
            &["product", "grant", site.path(), "nosuch", "alice"],
            "no account with login",
        ),
    ];
    for (args, says) in cases {
        let out = mantle(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn an_offering_section_no_offering_reads_is_refused_at_start() {
    let site = TestSite::init_bare("admin", &[]);
    let toml = site_dir(&site).join(mantle_site::CONFIG_FILE);
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("\n[offerings.nosuch]\nsetting = 1\n");
    std::fs::write(&toml, text).unwrap();
    let out = mantle(&["serve", site.path(), "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("[offerings.nosuch]"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

fn site_dir(site: &TestSite) -> std::path::PathBuf {
    std::path::PathBuf::from(site.path())
}

/// An item type of an offering this program does not have.
#[derive(mantle_store::Item, Debug, Clone, PartialEq)]
#[item(name = "bookmarks_bookmark", version = 1)]
struct Bookmark {
    url: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_whose_stores_hold_types_this_program_lacks_is_served_and_administered() {
    let site = TestSite::init("open");
    site.add_user("alice", PW);
    // Another program (one with a bookmarks offering) wrote bookmarks in
    // alice's store and in the site store.
    for store in ["users/alice_localhost.store", "site.store"] {
        let mut registry = mantle_store::Registry::new();
        registry.register::<Bookmark>();
        let file = site_dir(&site).join(store);
        let s = mantle_store::Store::open(&file, &mantle_store::StoreConfig::new(registry))
            .await
            .unwrap();
        s.transact(|tx| {
            for i in 0..3 {
                tx.insert(&Bookmark {
                    url: format!("https://example.com/{i}"),
                })?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
        s.close().await;
    }

    // The stock tools work, and say what they leave alone.
    let user_store = site_dir(&site).join("users/alice_localhost.store");
    let check = mantle(&["store", "check", s(&user_store)]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(
        stdout(&check).contains("not registered by this program"),
        "{}",
        stdout(&check)
    );
    run(&["messages", "list", site.path()]);
    let counted = run(&["fanout", site.path(), "count", "bookmarks_bookmark"]);
    assert!(counted.contains("3 items in 1 user stores"), "{counted}");
    site.add_user("bob", PW);

    // Served: everything else works for alice.
    let server = site.serve(&[]);
    let c = client();
    let alice = token(&c, &server, "alice", PW).await;
    let put = c
        .put(server.url("/api/slates/x"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "ok": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let got = get_auth(&c, &server, "/api/slates/x", &alice).await;
    assert_eq!(got.status(), StatusCode::OK);
    let r = get_auth(&c, &server, "/api/ledger/balance", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    server.stop_cleanly();
    // And the bookmarks are still there, untouched.
    let counted = run(&["fanout", site.path(), "count", "bookmarks_bookmark"]);
    assert!(counted.contains("3 items in"), "{counted}");
}
