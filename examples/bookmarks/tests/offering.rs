//! The offering's routes, in process, against a real site in a temporary
//! directory: the API, the pages, the v1 → v2 upgrade, the sweep and the
//! configuration (sharing and publishing: `tests/sharing.rs`).

mod common;

use common::{add, eventually, prepare, titles, user_store};

use axum::http::StatusCode;
use bookmarks::legacy::BookmarkV1;
use bookmarks::{Bookmark, Config, NAME, SWEEP_TASK, Sweeper};
use mantle_site::{Site, SiteConfig};
use mantle_store::{Registry, Store, StoreConfig, Timestamp};
use mantle_web::harness::{Harness, PASSWORD};
use serde_json::json;

/// A site whose `[offerings.bookmarks]` is `section` (TOML).
async fn harness_with(section: &str) -> Harness {
    let mut config = Harness::config();
    config.sections.insert(
        "offerings".into(),
        toml::Value::Table(toml::from_str(&format!("[bookmarks]\n{section}")).unwrap()),
    );
    Harness::build(config, prepare).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_the_users_given_the_offering_and_no_one_else() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.give("alice", bookmarks::NAME).await;

    let page = h.get("/bookmarks").bearer(&alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text().contains("Hello, alice@example.com"),
        "{}",
        page.text()
    );

    let other = h.get("/bookmarks").bearer(&bob).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_are_added_listed_and_deleted_and_each_change_is_published() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    h.give("alice", NAME).await;

    let rust = add(
        &h,
        &alice,
        json!({"url": "https://www.rust-lang.org/learn", "title": "Rust"}),
    )
    .await;
    assert_eq!(rust["public"], false);
    let untitled = add(&h, &alice, json!({"url": "http://example.com:8080/a?b#c"})).await;
    assert_eq!(untitled["title"], "example.com", "the host by default");
    assert_eq!(
        titles(&h, &alice).await,
        ["example.com", "Rust"],
        "newest first"
    );

    // Each change published a delta to the live model, in its transaction.
    let store = user_store(h.site(), "alice").await;
    let seq = |store: Store| async move {
        store
            .read(|r| mantle_live_server::sequence(r, bookmarks::MODEL))
            .await
            .unwrap()
    };
    assert_eq!(seq(store.clone()).await, 2);

    let id = rust["id"].as_i64().unwrap();
    h.delete(&format!("/api/bookmarks/{id}"))
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(titles(&h, &alice).await, ["example.com"]);
    assert_eq!(seq(store).await, 3);
    h.delete(&format!("/api/bookmarks/{id}"))
        .bearer(&alice)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no bookmark");
    h.delete("/api/bookmarks/nope")
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // The page shows them, escaped.
    add(
        &h,
        &alice,
        json!({"url": "https://example.org/?q=<x>", "title": "<script>alert(1)</script>"}),
    )
    .await;
    let page = h.get("/bookmarks").bearer(&alice).await;
    assert_eq!(page.status, StatusCode::OK);
    // Escaped ('/' too, as templates do).
    assert!(
        page.text()
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("<script>alert"), "{}", page.text());
    assert!(
        page.text()
            .replace("&#x2f;", "/")
            .contains("https://example.org/?q=&lt;x&gt;"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("<script>"), "{}", page.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bookmarks_are_refused_with_a_clear_400() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    h.give("alice", NAME).await;

    let long_url = format!("https://example.com/{}", "a".repeat(bookmarks::MAX_URL));
    let long_title = "t".repeat(bookmarks::MAX_TITLE + 1);
    let cases = [
        (
            json!({"url": "ftp://example.com/"}),
            "only http:// and https://",
        ),
        (
            json!({"url": "javascript:alert(1)"}),
            "only http:// and https://",
        ),
        (json!({"url": ""}), "needs a URL"),
        (json!({"url": "https://"}), "no host"),
        (json!({"url": "https://exa mple.com/"}), "no spaces"),
        (json!({"url": long_url}), "at most"),
        (
            json!({"url": "https://example.com", "title": long_title}),
            "title: a title has at most",
        ),
        (
            json!({"url": "https://example.com", "title": "a\nb"}),
            "one line",
        ),
    ];
    for (body, says) in cases {
        h.post("/api/bookmarks")
            .bearer(&alice)
            .json(&body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, says);
    }
    // Unknown fields and wrong types are refused too.
    let odd = h
        .post("/api/bookmarks")
        .bearer(&alice)
        .json(&json!({"url": "https://example.com", "colour": "red"}))
        .await;
    assert!(odd.status.is_client_error(), "{}", odd.text());
    assert!(titles(&h, &alice).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_for_users_given_the_offering() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.give("alice", NAME).await;

    h.get("/api/bookmarks")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    h.get("/api/bookmarks")
        .bearer(&bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.post("/api/bookmarks")
        .bearer(&bob)
        .json(&json!({"url": "https://example.com"}))
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert!(titles(&h, &alice).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_bookmarks_are_upgraded_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || prepare(Site::builder(dir.path()).offering(mantle_web::offering()));
    let site = builder().init(Harness::config()).await.unwrap();
    let alice = site
        .accounts()
        .create("alice", PASSWORD, false)
        .await
        .unwrap()
        .id;
    let path = site
        .stores()
        .user_store_unchecked(alice)
        .await
        .unwrap()
        .path()
        .to_path_buf();
    site.close().await;

    // An older program, knowing only version 1, writes two bookmarks.
    let mut old = Registry::new();
    old.register::<BookmarkV1>();
    let store = Store::open(&path, &StoreConfig::new(old)).await.unwrap();
    store
        .transact(|tx| {
            tx.insert(&BookmarkV1 {
                url: "https://docs.example.com/guide".into(),
                created: Timestamp::from_micros(1_000_000),
            })?;
            tx.insert(&BookmarkV1 {
                url: "http://[::1]:8080/local".into(),
                created: Timestamp::from_micros(2_000_000),
            })
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);

    // This program opens the site: the store upgrades as it opens.
    let h = Harness::for_site(builder().open().await.unwrap());
    h.give("alice", NAME).await;
    let token = h
        .site()
        .auth()
        .login("alice", PASSWORD, "test")
        .await
        .unwrap()
        .token;
    let list = h.get("/api/bookmarks").bearer(&token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json()["bookmarks"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["title"], "[::1]");
    assert_eq!(list[0]["url"], "http://[::1]:8080/local");
    assert_eq!(list[1]["title"], "docs.example.com");
    assert!(list.iter().all(|b| b["public"] == false), "{list:?}");
    h.site().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_trims_each_list_to_max_per_user_oldest_first() {
    let h = harness_with("max_per_user = 2\nsweep_minutes = 5").await;
    let alice = h.user("alice").await;
    h.give("alice", NAME).await;
    let store = user_store(h.site(), "alice").await;

    // on_given made the sweeper with the defaults; the refresh that
    // followed brought the configured settings.
    eventually("the sweeper to follow the configuration", || {
        let store = store.clone();
        async move {
            store
                .read(|r| r.query::<Sweeper>().first())
                .await
                .unwrap()
                .is_some_and(|s| s.max_per_user == 2 && s.every_minutes == 5)
        }
    })
    .await;

    for n in 1..=3 {
        add(
            &h,
            &alice,
            json!({"url": format!("https://example.com/{n}"), "title": format!("n{n}")}),
        )
        .await;
    }
    assert_eq!(titles(&h, &alice).await.len(), 3, "nothing trimmed on add");

    // Run the scheduled task now rather than in five minutes.
    store
        .transact(|tx| {
            let sweeper = tx.query::<Sweeper>().first()?.expect("a sweeper").id();
            tx.schedule(sweeper, SWEEP_TASK, Timestamp::now(), None)
        })
        .await
        .unwrap();
    eventually("the sweep to trim the list", || {
        let store = store.clone();
        async move { store.read(|r| r.query::<Bookmark>().count()).await.unwrap() == 2 }
    })
    .await;
    assert_eq!(titles(&h, &alice).await, ["n3", "n2"], "the oldest went");
}

#[test]
fn zero_or_unreadable_settings_are_refused_naming_the_key() {
    let parse = |toml_text: &str, env: &[(&str, &str)]| {
        let config: SiteConfig = toml::from_str(toml_text).unwrap();
        config.offering_section_with_env::<Config>(&|k| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let ok = parse(
        "[offerings.bookmarks]\nmax_per_user = 3\nsweep_minutes = 7\ngreeting = \"Hi\"",
        &[],
    )
    .unwrap();
    assert_eq!(
        (ok.max_per_user, ok.sweep_minutes, ok.greeting.as_str()),
        (3, 7, "Hi")
    );
    assert_eq!(parse("", &[]).unwrap(), Config::default());

    for (text, env, says) in [
        (
            "[offerings.bookmarks]\nmax_per_user = 0",
            &[][..],
            "offerings.bookmarks.max_per_user",
        ),
        (
            "[offerings.bookmarks]\nsweep_minutes = 0",
            &[][..],
            "offerings.bookmarks.sweep_minutes",
        ),
        (
            "[offerings.bookmarks]\ngreeting = \" \"",
            &[][..],
            "offerings.bookmarks.greeting",
        ),
        (
            "",
            &[("MANTLE_BOOKMARKS_MAX_PER_USER", "0")][..],
            "offerings.bookmarks.max_per_user",
        ),
        (
            "",
            &[("MANTLE_BOOKMARKS_SWEEP_MINUTES", "0")][..],
            "offerings.bookmarks.sweep_minutes",
        ),
        (
            "",
            &[("MANTLE_BOOKMARKS_SWEEP_MINUTES", "soon")][..],
            "MANTLE_BOOKMARKS_SWEEP_MINUTES",
        ),
        (
            "[offerings.bookmarks]\nmax_per_user = -1",
            &[][..],
            "offerings.bookmarks",
        ),
        ("[offerings.bookmarks]\nmax_items = 1", &[][..], "max_items"),
    ] {
        let e = parse(text, env).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?} {env:?}: {e}");
    }
    // Environment overrides win over the file.
    let env = parse(
        "[offerings.bookmarks]\nmax_per_user = 3",
        &[
            ("MANTLE_BOOKMARKS_MAX_PER_USER", "9"),
            ("MANTLE_BOOKMARKS_GREETING", "Hey"),
        ],
    )
    .unwrap();
    assert_eq!((env.max_per_user, env.greeting.as_str()), (9, "Hey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_a_zero_setting_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Harness::config();
    config.sections.insert(
        "offerings".into(),
        toml::Value::Table(toml::from_str("[bookmarks]\nmax_per_user = 0").unwrap()),
    );
    let e = prepare(Site::builder(dir.path()).offering(mantle_web::offering()))
        .init(config)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("offerings.bookmarks.max_per_user"),
        "{e}"
    );
}
