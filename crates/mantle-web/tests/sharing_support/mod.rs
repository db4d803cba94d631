//! What the sharing tests share: a small shareable item type, an offering
//! declaring it with a page, and a site where Alice shares her memos.

#![allow(dead_code)]

use axum::http::StatusCode;
use mantle_site::sharing::{Role, ShareItems};
use mantle_site::{Account, Offering, Scope};
use mantle_store::{Id, Item};
use mantle_web::WebOffering;
use mantle_web::harness::Harness;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A memo: what the tests share.
#[derive(Item, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[item(name = "memos_memo", version = 1)]
pub struct Memo {
    pub title: String,
    pub done: bool,
}

/// A scrap: shareable, but with no page.
#[derive(Item, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[item(name = "memos_scrap", version = 1)]
pub struct Scrap {
    pub text: String,
}

/// The memo page: the owner only through the address filter.
pub const PAGE: &str = r#"{% extends "base.html" %}{% block title %}{{ item.title }}{% endblock %}
{% block content %}<h1 id="memo">{{ item.title }}</h1>
<p>Shared by {{ owner|protect_email }} as {{ share_id }} (revision {{ revision }}); you may {{ access|join(", ") }}.</p>
{% endblock %}"#;

/// The offering: memos and scraps, shareable; a page for memos; `front`
/// as the default share.
pub fn memos() -> Offering {
    Offering::new("memos", 1)
        .items(Scope::User, |r| {
            r.register::<Memo>().register::<Scrap>();
        })
        .shareable::<Memo>()
        .shareable::<Scrap>()
        .template("memos/shared.html", PAGE)
        .share_page::<Memo>("memos/shared.html")
        .default_share("front")
}

pub const ALICE: &str = "alice@example.com";
pub const MEMOS: &str = "/api/shoji/mine/memos_memo/";

/// Alice, who shares; Bob, who may read `plan`; Carol, who may edit it;
/// Dave, in Alice's group `friends`, which may delete it; Eve, a user it
/// is not shared with. Alice's `front` is shared with everyone.
pub struct World {
    pub h: Harness,
    pub alice: String,
    pub bob: String,
    pub carol: String,
    pub dave: String,
    pub eve: String,
    pub alice_id: Id<Account>,
    pub bob_id: Id<Account>,
    /// The memo shared as `plan`.
    pub plan: i64,
    /// The memo shared as `front`.
    pub front: i64,
}

impl World {
    pub async fn new() -> World {
        let h = Harness::build(Harness::config(), |b| b.offering(memos())).await;
        let alice = h.user("alice").await;
        let bob = h.user("bob").await;
        let carol = h.user("carol").await;
        let dave = h.user("dave").await;
        let eve = h.user("eve").await;
        h.give("alice", "memos").await;
        let id = |login: &'static str| {
            let site = h.site().clone();
            async move { site.accounts().get(login).await.unwrap().id }
        };
        let (alice_id, bob_id, carol_id, dave_id) = (
            id("alice").await,
            id("bob").await,
            id("carol").await,
            id("dave").await,
        );
        let plan = create(&h, &alice, json!({ "title": "The plan", "done": false })).await;
        let front = create(&h, &alice, json!({ "title": "Welcome", "done": true })).await;
        let store = h
            .site()
            .stores()
            .user_store_unchecked(alice_id)
            .await
            .unwrap();
        store
            .transact(move |tx| {
                let plan_id = Id::<Memo>::from_raw(plan);
                tx.share(plan_id, &Role::account(bob_id), &[], Some("plan"))?;
                tx.share(plan_id, &Role::account(carol_id), &["edit"], Some("plan"))?;
                tx.create_group("friends")?;
                tx.add_member("friends", &Role::account(dave_id))?;
                tx.share(plan_id, &Role::group("friends")?, &["delete"], Some("plan"))?;
                tx.share(
                    Id::<Memo>::from_raw(front),
                    &Role::Everyone,
                    &[],
                    Some("front"),
                )?;
                Ok::<_, mantle_site::SiteError>(())
            })
            .await
            .unwrap();
        World {
            h,
            alice,
            bob,
            carol,
            dave,
            eve,
            alice_id,
            bob_id,
            plan,
            front,
        }
    }
}

/// Makes a memo through the owner's catalog; its id.
pub async fn create(h: &Harness, token: &str, body: Value) -> i64 {
    let made = h.post(MEMOS).bearer(token).json(&body).await;
    made.assert_status(StatusCode::CREATED);
    let location = made.header("location").unwrap().to_string();
    let doc = made.json();
    assert_eq!(doc["element"], "shoji:entity");
    assert_eq!(doc["self"], location.as_str());
    location.rsplit('/').next().unwrap().parse().unwrap()
}
