//! The lists over the real live layer (JSON over WebSocket on an
//! in-process site): an owner, a user she lets edit, one she lets read, a
//! stranger, and an anonymous connection; the withdrawal of a share ends
//! an observation.

mod common;

use std::time::Duration;

use common::*;
use mantle_example_lists as lists;
use mantle_site::sharing::{Role, ShareItems};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_shares_a_list_for_editing_and_for_reading_over_the_live_layer() {
    let t = Started::new().await;
    // Logged out, nothing but logging in works.
    let mut anon = Client::connect(&t.addr, None).await;
    let e = anon
        .refused("OpenList", json!({"name": "shopping"}), None)
        .await;
    assert_eq!(e["code"], "UNAUTHORIZED");

    let (mut a, mut b, mut c, mut d) = (
        t.client("alice").await,
        t.client("bob").await,
        t.client("carol").await,
        t.client("dave").await,
    );
    const MODEL: &str = "list:alice@example.com/shopping";

    // Alice's list is made when she first opens it; nobody else sees it.
    let (ha, opened) = a.open(None, "shopping").await;
    assert_eq!(
        (&opened["model"], &opened["owner"], &opened["edit"]),
        (&json!(MODEL), &json!("alice@example.com"), &json!(true))
    );
    let e = a.refused("OpenList", json!({"name": ""}), None).await;
    assert_eq!(e["code"], "BAD_NAME");
    let before = b
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    assert_eq!(before["code"], "NOT_FOUND");

    // She lets bob edit and carol read.
    for (who, access) in [("bob@example.com", "edit"), ("carol", "read")] {
        a.ok(
            "ShareList",
            json!({"name": "shopping", "with": who, "access": access}),
            None,
        )
        .await;
    }
    let (hb, opened) = b.open(Some("alice"), "shopping").await;
    assert_eq!(
        (&opened["model"], &opened["edit"]),
        (&json!(MODEL), &json!(true))
    );
    let (hc, opened) = c.open(Some("alice@example.com"), "shopping").await;
    assert_eq!(opened["edit"], false);

    for client in [&mut a, &mut b, &mut c] {
        let o = client.ok("Observe", json!({"model": MODEL}), None).await;
        assert_eq!(o["resumed"], false);
        assert_eq!(o["sequence"], 0);
        assert_eq!(o["snapshot"], json!({"name": "shopping", "entries": []}));
    }

    // Alice adds; everyone sees the delta.
    let added = a.ok("AddEntry", json!({"text": "milk"}), Some(ha)).await;
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["revision"], 1);
    let entry = json!({"id": id, "text": "milk", "revision": 1});
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(
            client.delta(MODEL).await,
            (1, json!({"op": "add", "entry": entry}))
        );
    }

    // Bob edits; Alice's stale edit conflicts, with the revisions.
    let edited = b
        .ok(
            "EditEntry",
            json!({"id": id, "text": "oat milk", "revision": 1}),
            Some(hb),
        )
        .await;
    assert_eq!(edited, json!({"revision": 2}));
    let e = a
        .refused(
            "EditEntry",
            json!({"id": id, "text": "soy milk", "revision": 1}),
            Some(ha),
        )
        .await;
    assert_eq!(e["code"], "SAVE_CONFLICT", "{e}");
    assert_eq!(
        e["details"],
        json!({"your_revision": 1, "current_revision": 2})
    );
    let as_typed = serde_json::from_value::<mantle_live::RemoteError>(e).unwrap();
    assert_eq!(
        as_typed.to_typed::<mantle_live::SaveConflict>(),
        Some(mantle_live::SaveConflict::SaveConflict {
            your_revision: 1,
            current_revision: 2
        }),
        "the generic SaveConflict reads it too"
    );
    for client in [&mut a, &mut b, &mut c] {
        let (seq, d) = client.delta(MODEL).await;
        assert_eq!(
            (seq, &d["op"], &d["entry"]["text"]),
            (2, &json!("edit"), &json!("oat milk"))
        );
    }

    // Carol reads only: every change is refused as a missing list is, and
    // changes nothing.
    let add = c.refused("AddEntry", json!({"text": "x"}), Some(hc)).await;
    let edit = c
        .refused(
            "EditEntry",
            json!({"id": id, "text": "x", "revision": 2}),
            Some(hc),
        )
        .await;
    let remove = c
        .refused("RemoveEntry", json!({"id": id, "revision": 2}), Some(hc))
        .await;
    for e in [&add, &edit, &remove] {
        assert_eq!(e["code"], "NOT_FOUND", "{e}");
    }
    // Nor may she share what is not hers.
    let e = c
        .refused(
            "ShareList",
            json!({"name": "shopping", "with": "dave", "access": "read"}),
            None,
        )
        .await;
    assert_eq!(e["code"], "NO_SUCH_LIST");

    // Dave, a stranger, is refused exactly as for a list that does not
    // exist (erin has no "shopping") or an owner who does not.
    let stranger = d
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    for owner in ["erin@example.com", "nobody@example.com"] {
        let missing = d
            .refused(
                "OpenList",
                json!({"owner": owner, "name": "shopping"}),
                None,
            )
            .await;
        assert_eq!(stranger, missing, "the same refusal");
    }
    assert_eq!(stranger["code"], "NOT_FOUND");
    let stranger = d.refused("Observe", json!({"model": MODEL}), None).await;
    let missing = d
        .refused(
            "Observe",
            json!({"model": "list:erin@example.com/shopping"}),
            None,
        )
        .await;
    assert_eq!(stranger["code"], "NO_SUCH_MODEL");
    assert_eq!(
        stranger["description"]
            .as_str()
            .unwrap()
            .replace("alice", "erin"),
        missing["description"].as_str().unwrap(),
        "the same refusal, but for the name asked"
    );
    // Nobody but the owner observes it by its item id.
    let alice = t.site.accounts().get("alice").await.unwrap().id;
    let store = t.site.stores().user_store_unchecked(alice).await.unwrap();
    let list = store
        .read(move |r| lists::find_in(r, alice, "shopping"))
        .await
        .unwrap()
        .expect("her list");
    let by_id = format!("list:alice@example.com/#{}", list.raw());
    let e = d.refused("Observe", json!({"model": by_id}), None).await;
    assert_eq!(e["code"], "NO_SUCH_MODEL");

    // The lists each sees.
    let mine = a.ok("MyLists", json!({}), None).await;
    assert_eq!(
        mine,
        json!({"lists": [{"name": "shopping", "shares": [
            {"with": "bob@example.com", "access": "edit"},
            {"with": "carol@example.com", "access": "read"},
        ]}]})
    );
    // (Who a list is shared with is told by a message: wait for it.)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let shared = b.ok("SharedLists", json!({}), None).await;
        if shared["lists"].as_array().is_some_and(|l| !l.is_empty()) {
            assert_eq!(
                shared,
                json!({"lists": [
                    {"owner": "alice@example.com", "name": "shopping", "access": "edit"}
                ]})
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob was never told");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a.ok("SharedLists", json!({}), None).await,
        json!({"lists": []}),
        "her own lists are not shared with her"
    );

    // Alice withdraws Bob's share: his observation ends, his handle
    // refuses, observing again is refused; Carol carries on.
    let removed = a
        .ok(
            "UnshareList",
            json!({"name": "shopping", "with": "bob@example.com"}),
            None,
        )
        .await;
    assert_eq!(removed, json!({"removed": true}));
    let ended = b.push().await;
    assert_eq!(ended["command"], "Ended", "{ended}");
    assert_eq!(
        (&ended["args"]["model"], &ended["args"]["code"]),
        (&json!(MODEL), &json!("NOT_FOUND"))
    );
    let e = b.refused("AddEntry", json!({"text": "x"}), Some(hb)).await;
    assert_eq!(e["code"], "NOT_FOUND");
    let e = b.refused("Observe", json!({"model": MODEL}), None).await;
    assert_eq!(e["code"], "NO_SUCH_MODEL");
    let e = b
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    assert_eq!(e, stranger_open(&mut d).await, "as for a stranger");

    // Carol leaves; Alice adds and removes; Carol comes back and resumes.
    drop(c);
    a.ok("AddEntry", json!({"text": "bread"}), Some(ha)).await;
    a.ok("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await;
    let e = a
        .refused("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await;
    assert_eq!(e["code"], "NOT_FOUND");
    let mut c = t.client("carol").await;
    let o = c
        .ok("Observe", json!({"model": MODEL, "since": 2}), None)
        .await;
    assert_eq!((&o["resumed"], &o["sequence"]), (&json!(true), &json!(4)));
    assert_eq!(c.delta(MODEL).await.1["entry"]["text"], "bread");
    assert_eq!(c.delta(MODEL).await.1["op"], "remove");
    // The old handle died with the old connection.
    let e = c.refused("AddEntry", json!({"text": "x"}), Some(hc)).await;
    assert_eq!(e["code"], "NO_SUCH_HANDLE");

    // A name she shares something else under (an entry, here) names no
    // list of hers.
    let added = a
        .ok("AddEntry", json!({"text": "shared alone"}), Some(ha))
        .await;
    let entry = mantle_store::Id::<lists::ListEntry>::from_raw(added["id"].as_i64().unwrap());
    store
        .transact(move |tx| tx.share(entry, &Role::account(alice), &[], Some("taken")))
        .await
        .unwrap();
    let e = a.refused("OpenList", json!({"name": "taken"}), None).await;
    assert_eq!(e["code"], "NAME_TAKEN", "{e}");
    t.site.close().await;
}

/// Dave's refusal to open alice's "shopping".
async fn stranger_open(d: &mut Client) -> Value {
    d.refused(
        "OpenList",
        json!({"owner": "alice@example.com", "name": "shopping"}),
        None,
    )
    .await
}
