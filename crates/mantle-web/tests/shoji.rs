//! The Shoji API of a user's own items: catalogs (paged, filtered),
//! entities with revisions, shares and groups.

mod sharing_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sharing_support::{ALICE, MEMOS, World, create};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_catalog_lists_what_the_user_holds_and_what_is_shared_with_them() {
    let w = World::new().await;
    let h = &w.h;
    h.get("/api/shoji/")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);

    let root = h.get("/api/shoji/").bearer(&w.alice).await;
    root.assert_status(StatusCode::OK);
    assert_eq!(root.header("content-type"), Some("application/json"));
    let doc = root.json();
    assert_eq!(doc["element"], "shoji:catalog");
    assert_eq!(doc["self"], "/api/shoji/");
    assert_eq!(doc["catalogs"]["memos_memo"], MEMOS);
    assert_eq!(
        doc["catalogs"]["memos_scrap"],
        "/api/shoji/mine/memos_scrap/"
    );
    assert_eq!(doc["catalogs"]["shared with me"], "/api/shoji/shared/");

    // Bob holds no memos: no catalog of his own, and none to open.
    let doc = h.get("/api/shoji/").bearer(&w.bob).await.json();
    assert!(doc["catalogs"].get("memos_memo").is_none(), "{doc}");
    h.get(MEMOS)
        .bearer(&w.bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.get("/api/shoji/mine/nosuchtype/")
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // What is shared with Bob (directly) and Dave (through a group); not
    // the public share.
    let plan = format!("/api/shoji/users/{ALICE}/plan");
    for (token, access) in [
        (&w.bob, json!(["read"])),
        (&w.dave, json!(["read", "delete"])),
    ] {
        // Told by a message, just after the share: wait for it.
        let mut doc = Value::Null;
        for _ in 0..100 {
            doc = h.get("/api/shoji/shared/").bearer(token).await.json();
            if doc["entities"] != json!([]) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(doc["element"], "shoji:catalog");
        assert_eq!(doc["entities"], json!([plan]), "{doc}");
        assert_eq!(doc["index"][&plan]["access"], access);
        assert_eq!(doc["index"][&plan]["owner"], ALICE);
        let entity = h.get(&plan).bearer(token).await;
        entity.assert_status(StatusCode::OK);
    }
    let doc = h.get("/api/shoji/shared/").bearer(&w.eve).await.json();
    assert_eq!(doc["entities"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_page_and_filter() {
    let w = World::new().await;
    let h = &w.h;
    // Two memos already (plan, front); five more.
    for i in 0..5 {
        create(
            h,
            &w.alice,
            json!({ "title": format!("memo {i}"), "done": i % 2 == 0 }),
        )
        .await;
    }
    let first = h.get(&format!("{MEMOS}?limit=3")).bearer(&w.alice).await;
    first.assert_status(StatusCode::OK);
    let doc = first.json();
    assert_eq!(doc["element"], "shoji:catalog");
    assert_eq!(doc["total"], 7);
    assert_eq!(doc["entities"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["entities"][0],
        format!("/api/shoji/mine/memos_memo/{}", w.plan)
    );
    assert_eq!(doc["catalogs"]["by title"], format!("{MEMOS}{{?title}}"));
    assert!(doc["views"].get("previous").is_none(), "{doc}");
    let mut seen: Vec<Value> = doc["entities"].as_array().unwrap().clone();
    let mut next = doc["views"]["next"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(url) = next {
        let doc = h.get(&url).bearer(&w.alice).await.json();
        assert!(doc["views"]["previous"].is_string(), "{doc}");
        seen.extend(doc["entities"].as_array().unwrap().iter().cloned());
        next = doc["views"]["next"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!((pages, seen.len()), (3, 7));

    // Filters: JSON values, or strings.
    let done = h
        .get(&format!("{MEMOS}?done=true"))
        .bearer(&w.alice)
        .await
        .json();
    assert_eq!(done["total"], 4, "{done}"); // front, memo 0, 2, 4
    let one = h
        .get(&format!("{MEMOS}?title=memo%203"))
        .bearer(&w.alice)
        .await
        .json();
    assert_eq!(one["total"], 1, "{one}");
    let both = h
        .get(&format!("{MEMOS}?title=memo%203&done=true"))
        .bearer(&w.alice)
        .await
        .json();
    assert_eq!(both["total"], 0);
    // Paging links keep the filters.
    let paged = h
        .get(&format!("{MEMOS}?done=true&limit=2"))
        .bearer(&w.alice)
        .await
        .json();
    let next = paged["views"]["next"].as_str().unwrap();
    assert!(next.contains("done=true"), "{next}");
    // Bad filters and bad numbers: 400, with the reason.
    h.get(&format!("{MEMOS}?nosuch=1"))
        .bearer(&w.alice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "cannot filter on nosuch");
    h.get(&format!("{MEMOS}?done=maybe"))
        .bearer(&w.alice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "cannot filter on done");
    // Past the end: an empty page that links back.
    let past = h
        .get(&format!("{MEMOS}?offset={}", i64::MAX))
        .bearer(&w.alice)
        .await;
    past.assert_status(StatusCode::OK);
    assert_eq!(past.json()["entities"], json!([]));
    h.get(&format!("{MEMOS}?offset={}", u64::MAX))
        .bearer(&w.alice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "offset");
    h.get(&format!("{MEMOS}?limit=lots"))
        .bearer(&w.alice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_carry_revisions_and_stale_saves_are_refused_with_the_current_one() {
    let w = World::new().await;
    let h = &w.h;
    let url = format!("{MEMOS}{}", w.plan);
    let got = h.get(&url).bearer(&w.alice).await;
    got.assert_status(StatusCode::OK);
    assert_eq!(got.header("etag"), Some("\"1\""));
    let doc = got.json();
    assert_eq!(doc["views"]["shares"], format!("{url}/shares"));

    let saved = h
        .put(&url)
        .bearer(&w.alice)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "Plan B", "done": false }))
        .await;
    saved.assert_status(StatusCode::OK);
    assert_eq!(saved.header("etag"), Some("\"2\""));
    // Stale: 412, and the entity as it is now.
    let stale = h
        .request(axum::http::Method::PATCH, &url)
        .bearer(&w.alice)
        .header("if-match", "\"1\"")
        .json(&json!({ "done": true }))
        .await;
    stale.assert_status(StatusCode::PRECONDITION_FAILED);
    let doc = stale.json();
    assert_eq!(doc["element"], "shoji:entity");
    assert_eq!(doc["current_revision"], 2);
    assert_eq!(doc["your_revision"], 1);
    assert_eq!(doc["body"], json!({ "title": "Plan B", "done": false }));
    // PATCH at the current revision changes what it names.
    let patched = h
        .request(axum::http::Method::PATCH, &url)
        .bearer(&w.alice)
        .header("if-match", "\"2\"")
        .json(&json!({ "done": true }))
        .await;
    patched.assert_status(StatusCode::OK);
    assert_eq!(
        patched.json()["body"],
        json!({ "title": "Plan B", "done": true })
    );
    // The editor's stale save through the share: 412 too.
    let shared = format!("/api/shoji/users/{ALICE}/plan");
    let stale = h
        .put(&shared)
        .bearer(&w.carol)
        .header("if-match", "\"2\"")
        .json(&json!({ "title": "x", "done": true }))
        .await;
    stale.assert_status(StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.json()["current_revision"], 3);

    // Bodies that do not decode; ids that name nothing.
    h.put(&url)
        .bearer(&w.alice)
        .json(&json!({ "title": "no done" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "does not fit");
    h.put(&url)
        .bearer(&w.alice)
        .body("application/json", "{not json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "not JSON");
    h.request(axum::http::Method::PATCH, &url)
        .bearer(&w.alice)
        .json(&json!({ "colour": "red" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "colour");
    // A whole entity document is taken for its body; one without a body
    // is refused.
    h.put(&url)
        .bearer(&w.alice)
        .json(&json!({ "element": "shoji:entity", "self": url }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "without a body");
    for bad in ["999999", "abc", "-1"] {
        h.get(&format!("{MEMOS}{bad}"))
            .bearer(&w.alice)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }

    // DELETE: 204, its shares with it; then 404.
    h.delete(&url)
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    h.get(&shared)
        .bearer(&w.bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.delete(&url)
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_made_listed_and_withdrawn_and_revocation_is_immediate() {
    let w = World::new().await;
    let h = &w.h;
    let id = create(h, &w.alice, json!({ "title": "Party", "done": false })).await;
    let shares = format!("{MEMOS}{id}/shares");
    let view = h.get(&shares).bearer(&w.alice).await.json();
    assert_eq!(view["element"], "shoji:view");
    assert_eq!(view["value"], json!([]));

    // With Bob by his login; with a new random id.
    let made = h
        .post(&shares)
        .bearer(&w.alice)
        .json(&json!({ "role": "bob@example.com", "access": ["edit"] }))
        .await;
    made.assert_status(StatusCode::CREATED);
    let share = made.json();
    let share_id = share["share_id"].as_str().unwrap().to_string();
    assert_eq!(share["role"], format!("account:{}", w.bob_id.raw()));
    assert_eq!(share["access"], json!(["edit", "read"]));
    let entity = format!("/api/shoji/users/{ALICE}/{share_id}");
    assert_eq!(made.header("location"), Some(entity.as_str()));
    h.put(&entity)
        .bearer(&w.bob)
        .json(&json!({ "title": "Party!", "done": false }))
        .await
        .assert_status(StatusCode::OK);

    // Refused: a role that is not one, a group that does not exist, a
    // share id another item has, an item that does not exist.
    for (body, status) in [
        (
            json!({ "role": "nobody@example.com" }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "role": "group:ghosts" }), StatusCode::NOT_FOUND),
        (
            json!({ "role": "everyone", "share_id": "plan" }),
            StatusCode::CONFLICT,
        ),
        (
            json!({ "role": "everyone", "access": ["Bad Name"] }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "role": "everyone", "extra": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = h.post(&shares).bearer(&w.alice).json(&body).await;
        assert_eq!(a.status, status, "{body}: {}", a.text());
    }
    h.post(&format!("{MEMOS}999999/shares"))
        .bearer(&w.alice)
        .json(&json!({ "role": "everyone" }))
        .await
        .assert_status(StatusCode::NOT_FOUND);

    let listed = h.get(&shares).bearer(&w.alice).await.json();
    assert_eq!(listed["value"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["value"][0]["entity"], entity.as_str());

    // Withdrawn: Bob's next request is refused. Another item's URL does
    // not withdraw it.
    h.delete(&format!("{MEMOS}{}/shares/{share_id}", w.plan))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.get(&entity)
        .bearer(&w.bob)
        .await
        .assert_status(StatusCode::OK);
    h.delete(&format!("{shares}/{share_id}?role=bob@example.com"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    h.get(&entity)
        .bearer(&w.bob)
        .await
        .assert_error(StatusCode::NOT_FOUND, "no share");
    h.delete(&format!("{shares}/{share_id}"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Nobody else can manage Alice's shares: Bob's own catalog has none.
    h.get(&shares)
        .bearer(&w.bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_made_filled_and_emptied_and_cycles_refused() {
    let w = World::new().await;
    let h = &w.h;
    let groups = "/api/shoji/groups";
    let view = h.get(groups).bearer(&w.alice).await.json();
    assert_eq!(view["element"], "shoji:view");
    assert_eq!(view["value"][0]["name"], "friends");

    for name in ["family", "close"] {
        let made = h
            .post(groups)
            .bearer(&w.alice)
            .json(&json!({ "name": name }))
            .await;
        made.assert_status(StatusCode::CREATED);
        assert_eq!(
            made.header("location"),
            Some(format!("{groups}/{name}").as_str())
        );
    }
    h.post(groups)
        .bearer(&w.alice)
        .json(&json!({ "name": "Not Valid" }))
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    // close ⊂ family ⊂ friends; Bob in close.
    let add = |group: &str, role: &str| {
        h.post(&format!("{groups}/{group}/members"))
            .bearer(&w.alice)
            .json(&json!({ "role": role }))
    };
    add("friends", "group:family")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    add("family", "group:close")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    add("close", "bob@example.com")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // friends in close would be a cycle.
    add("close", "group:friends")
        .await
        .assert_error(StatusCode::CONFLICT, "cycle");
    add("ghosts", "everyone")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    add("close", "not a role")
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    let close = h.get(&format!("{groups}/close")).bearer(&w.alice).await;
    close.assert_status(StatusCode::OK);
    let doc = close.json();
    assert_eq!(doc["element"], "shoji:entity");
    assert_eq!(
        doc["body"]["members"],
        json!([format!("account:{}", w.bob_id.raw())])
    );

    // Bob, through close ⊂ family ⊂ friends, may now delete `plan`.
    let plan = format!("/api/shoji/users/{ALICE}/plan");
    let doc = h.get(&plan).bearer(&w.bob).await.json();
    assert_eq!(doc["access"], json!(["read", "delete"]));
    // Out of the group: the next request says so.
    h.delete(&format!(
        "{groups}/close/members/account:{}",
        w.bob_id.raw()
    ))
    .bearer(&w.alice)
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let doc = h.get(&plan).bearer(&w.bob).await.json();
    assert_eq!(doc["access"], json!(["read"]));
    h.delete(&format!("{groups}/close/members/everyone"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);

    // Deleting friends withdraws its shares: Dave loses `plan`.
    h.get(&plan)
        .bearer(&w.dave)
        .await
        .assert_status(StatusCode::OK);
    h.delete(&format!("{groups}/friends"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    h.get(&plan)
        .bearer(&w.dave)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.delete(&format!("{groups}/friends"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    h.get(&format!("{groups}/friends"))
        .bearer(&w.alice)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Each user's groups are their own.
    let eve = h.get(groups).bearer(&w.eve).await.json();
    assert_eq!(eve["value"], json!([]));
    h.get(groups).await.assert_status(StatusCode::UNAUTHORIZED);
}
