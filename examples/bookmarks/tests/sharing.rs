//! Sharing and publishing, through the sharing layer: a bookmark shared
//! with one user is read live by them and by nobody else, until it is
//! withdrawn; a published one is on the public page for anyone, until it
//! is unpublished; and the public page says nothing of who has an
//! account. Also: flags left by version 2 of the offering become shares.

mod common;

use axum::http::StatusCode;
use bookmarks::{Bookmark, NAME};
use common::{add, eventually, prepare, titles, user_store};
use mantle_site::{Offering, Scope, Site};
use mantle_store::Timestamp;
use mantle_web::harness::{Answer, Harness};
use serde_json::{Value, json};

/// An answer's status, type and body: what must not tell two refusals
/// apart.
fn seen(a: &Answer) -> (StatusCode, Option<String>, String) {
    (
        a.status,
        a.header("content-type").map(str::to_string),
        a.text().to_string(),
    )
}

/// What others share with the caller (`GET /api/bookmarks/shared`).
async fn shared_with_me(h: &Harness, token: &str) -> Vec<Value> {
    let got = h.get("/api/bookmarks/shared").bearer(token).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    got.json()["shared"].as_array().unwrap().clone()
}

/// The public page of `login`, for an anonymous visitor.
async fn public_page(h: &Harness, login: &str) -> Answer {
    h.get(&format!("/bookmarks/public/{login}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_shared_with_one_user_is_theirs_to_read_live_until_withdrawn() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let carol = h.user("carol").await;
    h.user("dave").await;
    h.user("erin").await;
    for who in ["alice", "bob", "carol", "erin"] {
        h.give(who, NAME).await;
    }
    h.site()
        .accounts()
        .set_disabled("erin", true)
        .await
        .unwrap();
    let b = add(
        &h,
        &alice,
        json!({"url": "https://example.com/good", "title": "Good"}),
    )
    .await;
    let id = b["id"].as_i64().unwrap();
    let share = format!("/api/bookmarks/{id}/share");

    // Refused before anything is shared: oneself, shared stores, no
    // address, no account, a disabled one, one not given the bookmarks.
    for (to, says) in [
        ("alice", "your own account"),
        ("alice@example.com", "your own account"),
        ("site", "not a user's account"),
        ("app:lists", "not a user's account"),
        ("not an address", "not a user's account"),
        ("nobody", "cannot receive"),
        ("dave", "cannot receive"),
        ("erin", "cannot receive"),
    ] {
        h.post(&share)
            .bearer(&alice)
            .json(&json!({ "to": to }))
            .await
            .assert_error(StatusCode::BAD_REQUEST, says);
    }
    h.post("/api/bookmarks/999/share")
        .bearer(&alice)
        .json(&json!({"to": "bob"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "no bookmark");
    let none = h
        .get(&format!("/api/bookmarks/{id}/shares"))
        .bearer(&alice)
        .await;
    assert_eq!(none.json()["shares"], json!([]));

    // Shared with Bob, for reading; sharing again answers the same share.
    let made = h
        .post(&share)
        .bearer(&alice)
        .json(&json!({"to": "bob"}))
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text());
    let made = made.json();
    assert_eq!(made["with"], "bob@example.com");
    assert_eq!(made["access"], json!(["read"]));
    let share_id = made["share_id"].as_str().unwrap().to_string();
    let again = h
        .post(&share)
        .bearer(&alice)
        .json(&json!({"to": "bob@example.com"}))
        .await;
    assert_eq!(again.json()["share_id"], share_id.as_str());
    let listed = h
        .get(&format!("/api/bookmarks/{id}/shares"))
        .bearer(&alice)
        .await;
    assert_eq!(
        listed.json()["shares"],
        json!([{"with": "bob@example.com", "share_id": share_id, "access": ["read"]}])
    );

    // Bob hears of it (a notice to his store, just after) and reads it.
    let (hr, bobr) = (&h, &bob);
    eventually("bob to be told of the share", || async move {
        !shared_with_me(hr, bobr).await.is_empty()
    })
    .await;
    let bobs = shared_with_me(&h, &bob).await;
    assert_eq!(
        bobs,
        [json!({
            "owner": "alice@example.com",
            "share_id": share_id,
            "url": "https://example.com/good",
            "title": "Good",
            "created": bobs[0]["created"],
        })]
    );
    let open = format!("/api/bookmarks/shared/alice/{share_id}");
    let read = h.get(&open).bearer(&bob).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(read.json()["title"], "Good");
    assert_eq!(read.json()["owner"], "alice@example.com");

    // The owner's bookmark itself, not a copy: nothing is in Bob's store,
    // and a change of Alice's shows at once.
    assert!(titles(&h, &bob).await.is_empty());
    let bob_store = user_store(h.site(), "bob").await;
    let copies = bob_store
        .read(|r| r.query::<Bookmark>().count())
        .await
        .unwrap();
    assert_eq!(copies, 0);
    user_store(h.site(), "alice")
        .await
        .transact(move |tx| {
            let mut b = tx.get(mantle_store::Id::<Bookmark>::from_raw(id))?.unwrap();
            b.title = "Better".into();
            tx.update(&mut b)
        })
        .await
        .unwrap();
    assert_eq!(h.get(&open).bearer(&bob).await.json()["title"], "Better");
    assert_eq!(shared_with_me(&h, &bob).await[0]["title"], "Better");

    // Carol and anonymous visitors get what a missing share gets: 404, in
    // the same words, whatever is missing.
    let missing = seen(
        &h.get("/api/bookmarks/shared/alice/no-such-share")
            .bearer(&carol)
            .await,
    );
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    for answer in [
        h.get(&open).bearer(&carol).await,
        h.get(&open).await,
        h.get("/api/bookmarks/shared/alice/no-such-share").await,
        h.get(&format!("/api/bookmarks/shared/nobody/{share_id}"))
            .bearer(&bob)
            .await,
        h.get(&format!("/api/bookmarks/shared/erin/{share_id}"))
            .await,
    ] {
        assert_eq!(seen(&answer), missing);
    }
    assert!(shared_with_me(&h, &carol).await.is_empty());
    // The web front's page of the share, likewise.
    let shown = h
        .get(&format!("/users/alice@example.com/{share_id}"))
        .bearer(&bob)
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    assert!(shown.text().contains(">Better</a>"), "{}", shown.text());
    assert!(!shown.text().contains("alice@"), "{}", shown.text());
    let no_page = seen(
        &h.get("/users/alice@example.com/no-such-share")
            .bearer(&carol)
            .await,
    );
    assert_eq!(no_page.0, StatusCode::NOT_FOUND);
    for answer in [
        h.get(&format!("/users/alice@example.com/{share_id}"))
            .bearer(&carol)
            .await,
        h.get(&format!("/users/alice@example.com/{share_id}")).await,
    ] {
        assert_eq!(seen(&answer), no_page);
    }
    // Not published either.
    assert_eq!(
        seen(&public_page(&h, "alice").await),
        seen(&public_page(&h, "nobody").await)
    );

    // Withdrawn: gone from Bob's list and refused at once.
    h.delete(&format!("/api/bookmarks/{id}/share/bob"))
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(shared_with_me(&h, &bob).await.is_empty());
    assert_eq!(seen(&h.get(&open).bearer(&bob).await), missing);
    h.delete(&format!("/api/bookmarks/{id}/share/bob"))
        .bearer(&alice)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not shared with 'bob'");
    h.delete("/api/bookmarks/999/share/bob")
        .bearer(&alice)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no bookmark");

    // Shared again, then deleted: its shares go with it.
    let made = h
        .post(&share)
        .bearer(&alice)
        .json(&json!({"to": "bob"}))
        .await;
    let share_id = made.json()["share_id"].as_str().unwrap().to_string();
    eventually("bob to be told again", || async move {
        !shared_with_me(hr, bobr).await.is_empty()
    })
    .await;
    h.delete(&format!("/api/bookmarks/{id}"))
        .bearer(&alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(shared_with_me(&h, &bob).await.is_empty());
    let open = format!("/api/bookmarks/shared/alice/{share_id}");
    assert_eq!(seen(&h.get(&open).bearer(&bob).await), missing);
    let left = user_store(h.site(), "alice")
        .await
        .read(|r| r.query::<mantle_site::sharing::Share>().count())
        .await
        .unwrap();
    assert_eq!(left, 0, "no share outlives its bookmark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_bookmarks_are_on_the_public_page_until_unpublished() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.give("alice", NAME).await;
    h.give("bob", NAME).await;
    let open = add(
        &h,
        &alice,
        json!({"url": "https://example.com/open", "title": "Open <b>", "public": true}),
    )
    .await;
    assert_eq!(open["public"], true);
    let secret = add(
        &h,
        &alice,
        json!({"url": "https://example.com/secret", "title": "Secret"}),
    )
    .await;
    let (open_id, secret_id) = (open["id"].as_i64().unwrap(), secret["id"].as_i64().unwrap());

    // Published: shared with everyone, read-only.
    let shares = h
        .get(&format!("/api/bookmarks/{open_id}/shares"))
        .bearer(&alice)
        .await
        .json();
    assert_eq!(shares["shares"][0]["with"], "everyone");
    assert_eq!(shares["shares"][0]["access"], json!(["read"]));
    let everyone_id = shares["shares"][0]["share_id"]
        .as_str()
        .unwrap()
        .to_string();
    let anon = h
        .get(&format!("/api/bookmarks/shared/alice/{everyone_id}"))
        .await;
    assert_eq!(anon.status, StatusCode::OK, "{}", anon.text());
    assert_eq!(anon.json()["url"], "https://example.com/open");
    // Anonymous visitors are not told the owner's address.
    assert_eq!(anon.json()["owner"], "alice");
    assert!(!anon.text().contains("alice@"), "{}", anon.text());

    // The public page: no login needed.
    let page = public_page(&h, "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    // (Templates escape '/' as "&#x2f;".)
    let text = page.text().replace("&#x2f;", "/");
    assert!(text.contains("Open &lt;b&gt;"), "{text}");
    assert!(
        text.contains(r#"href="https://example.com/open""#),
        "{text}"
    );
    assert!(!text.contains("Secret"), "{text}");
    assert!(!text.contains("/secret"), "{text}");
    // The owner's address, not as harvesters would find it.
    assert!(
        text.contains("Bookmarks of alice (at) example (dot) com"),
        "{text}"
    );
    assert!(!text.contains("alice@example.com"), "{text}");
    assert!(!text.contains("alice@"), "{text}");
    let full = public_page(&h, "alice@example.com").await;
    assert_eq!(full.status, StatusCode::OK);

    // Public shares are not "shared with" anyone in particular.
    assert!(shared_with_me(&h, &bob).await.is_empty());

    // Publishing the other: both there; the flag follows the share.
    let published = h
        .post(&format!("/api/bookmarks/{secret_id}/publish"))
        .bearer(&alice)
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text());
    assert_eq!(published.json()["public"], true);
    let text = public_page(&h, "alice").await.text().to_string();
    assert!(
        text.contains("Open &lt;b&gt;") && text.contains("Secret"),
        "{text}"
    );
    // Publishing again changes nothing.
    h.post(&format!("/api/bookmarks/{secret_id}/publish"))
        .bearer(&alice)
        .await
        .assert_status(StatusCode::OK);
    let shares = h
        .get(&format!("/api/bookmarks/{secret_id}/shares"))
        .bearer(&alice)
        .await
        .json();
    assert_eq!(shares["shares"].as_array().unwrap().len(), 1);

    // Unpublished: gone from the page at once, and from the API.
    let withdrawn = h
        .delete(&format!("/api/bookmarks/{open_id}/publish"))
        .bearer(&alice)
        .await;
    assert_eq!(withdrawn.json()["public"], false);
    let text = public_page(&h, "alice").await.text().to_string();
    assert!(
        !text.contains("Open &lt;b&gt;") && text.contains("Secret"),
        "{text}"
    );
    assert_eq!(
        h.get(&format!("/api/bookmarks/shared/alice/{everyone_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = h.get("/api/bookmarks").bearer(&alice).await.json();
    let flags: Vec<(&str, bool)> = list["bookmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["title"].as_str().unwrap(), b["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, [("Secret", true), ("Open <b>", false)]);
    let stored = user_store(h.site(), "alice")
        .await
        .read(|r| r.query::<Bookmark>().all())
        .await
        .unwrap();
    let stored: Vec<(&str, bool)> = stored
        .iter()
        .map(|b| (b.title.as_str(), b.public))
        .collect();
    assert_eq!(stored, [("Open <b>", false), ("Secret", true)]);

    // Nothing published any more: the page is the one for nobody.
    h.delete(&format!("/api/bookmarks/{secret_id}/publish"))
        .bearer(&alice)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        seen(&public_page(&h, "alice").await),
        seen(&public_page(&h, "nobody").await)
    );
    h.post("/api/bookmarks/999/publish")
        .bearer(&alice)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no bookmark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_answers_alike_for_unknown_disabled_and_unpublished_logins() {
    let h = Harness::build(Harness::config(), prepare).await;
    let alice = h.user("alice").await;
    let dave = h.user("dave").await;
    h.user("bob").await;
    h.user("carol").await;
    for who in ["alice", "bob", "dave"] {
        h.give(who, NAME).await;
    }
    for token in [&alice, &dave] {
        add(
            &h,
            token,
            json!({"url": "https://example.com/p", "title": "Published", "public": true}),
        )
        .await;
    }
    assert_eq!(public_page(&h, "alice").await.status, StatusCode::OK);
    assert_eq!(public_page(&h, "dave").await.status, StatusCode::OK);
    h.site()
        .accounts()
        .set_disabled("dave", true)
        .await
        .unwrap();
    let bob_id = h.site().accounts().get("bob").await.unwrap().id.raw();

    let unknown = public_page(&h, "nobody").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for who in [
        "bob".to_string(),                // given the bookmarks, nothing published
        "bob@example.com".to_string(),    // the same, by full address
        format!("account:{bob_id}"),      // the same, by id
        "carol".to_string(),              // not given the bookmarks
        "dave".to_string(),               // published, then disabled
        "nobody@example.com".to_string(), // no such account
        "account:999".to_string(),
        "no%20such@".to_string(), // not an address
        "site".to_string(),
        "app:lists".to_string(),
    ] {
        let answer = public_page(&h, &who).await;
        assert_eq!(seen(&answer), seen(&unknown), "{who}");
        assert!(answer.header("set-cookie").is_none(), "{who}");
    }
}

/// Version 2 of the offering, as an older program declared it: the same
/// item type, whose `public` flag alone published a bookmark.
fn version_2() -> Offering {
    Offering::new(NAME, 2)
        .requires(mantle_web::LAYER)
        .items(Scope::User, |r| {
            r.register::<Bookmark>();
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_flagged_public_by_version_2_are_published_by_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || {
        Site::builder(dir.path())
            .offering(mantle_web::offering())
            .offering(mantle_live_server::offering())
    };
    let old = Harness::for_site(
        builder()
            .offering(version_2())
            .init(Harness::config())
            .await
            .unwrap(),
    );
    old.user("alice").await;
    old.give("alice", NAME).await;
    let store = user_store(old.site(), "alice").await;
    store
        .transact(|tx| {
            for (title, public) in [("Flagged", true), ("Private", false)] {
                tx.insert(&Bookmark {
                    url: format!("https://example.com/{title}"),
                    title: title.into(),
                    public,
                    created: Timestamp::now(),
                })?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    drop(store);
    old.site().close().await;
    drop(old);

    // This program opens the site: the offering's upgrade hook tells
    // Alice's store to publish what she had flagged.
    let h = Harness::for_site(
        builder()
            .offering(bookmarks::offering())
            .open()
            .await
            .unwrap(),
    );
    let hr = &h;
    eventually("the flagged bookmark to be published", || async move {
        public_page(hr, "alice").await.status == StatusCode::OK
    })
    .await;
    let text = public_page(&h, "alice").await.text().to_string();
    assert!(
        text.contains("Flagged") && !text.contains("Private"),
        "{text}"
    );
    let store = user_store(h.site(), "alice").await;
    let shares = store
        .read(|r| {
            r.query::<mantle_site::sharing::Share>()
                .all()
                .map(|all| all.iter().map(|s| s.role.clone()).collect::<Vec<_>>())
        })
        .await
        .unwrap();
    assert_eq!(shares, ["everyone"]);
    h.site().close().await;
}
