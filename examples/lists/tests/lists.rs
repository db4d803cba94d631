//! The lists' store functions and their sharing functions, on an
//! in-process site.

mod common;

use common::*;
use mantle_example_lists as lists;
use mantle_example_lists::{EntryError, EntryView, Error, ListAccess, ListDelta};
use mantle_live_server::ModelDelta;
use mantle_site::SiteError;
use mantle_site::sharing::{Role, ShareItems, Viewer};
use serde_json::json;

fn conflict(r: Result<EntryView, Error>) -> (i64, i64) {
    match r {
        Err(Error::Entry(EntryError::SaveConflict {
            your_revision,
            current_revision,
        })) => (your_revision, current_revision),
        other => panic!("expected a save conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_added_edited_and_removed_against_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path()).await;
    let alice = site.accounts().create("alice", PW, false).await.unwrap();
    assert!(
        !dir.path().join("apps/lists.store").exists(),
        "no app store: lists live in their owners' stores"
    );
    let shopping = lists::create(&site, alice.id, "shopping").await.unwrap();
    let chores = lists::create(&site, alice.id, "chores").await.unwrap();
    assert_eq!(
        lists::create(&site, alice.id, "shopping").await.unwrap(),
        shopping,
        "a name names one list of hers"
    );
    let store = site.stores().user_store_unchecked(alice.id).await.unwrap();

    let milk = lists::add(&store, shopping, "milk").await.unwrap();
    let eggs = lists::add(&store, shopping, "eggs").await.unwrap();
    let other = lists::add(&store, chores, "dishes").await.unwrap();
    assert_eq!((milk.revision, milk.text.as_str()), (1, "milk"));

    let oat = lists::edit(&store, shopping, milk.id, "oat milk", 1)
        .await
        .unwrap();
    assert_eq!(oat.revision, 2);
    assert_eq!(
        conflict(lists::edit(&store, shopping, milk.id, "soy milk", 1).await),
        (1, 2)
    );
    assert_eq!(
        conflict(lists::remove(&store, shopping, milk.id, 1).await),
        (1, 2)
    );
    // An entry of another list is not found through this one.
    assert!(matches!(
        lists::edit(&store, shopping, other.id, "x", 1).await,
        Err(Error::Entry(EntryError::NotFound { .. }))
    ));
    for bad in ["", "   ", "two\nlines"] {
        assert!(matches!(
            lists::add(&store, shopping, bad).await,
            Err(Error::Entry(EntryError::BadText { .. }))
        ));
    }
    let long = "x".repeat(lists::MAX_TEXT + 1);
    assert!(lists::add(&store, shopping, &long).await.is_err());

    lists::remove(&store, shopping, eggs.id, 1).await.unwrap();
    assert!(matches!(
        lists::remove(&store, shopping, eggs.id, 1).await,
        Err(Error::Entry(EntryError::NotFound { id })) if id == eggs.id
    ));
    let bread = lists::add(&store, shopping, "bread").await.unwrap();

    let published = lists::published_model(shopping);
    assert_eq!(published, format!("list:#{}", shopping.raw()));
    let (snapshot, deltas) = store
        .read(move |r| {
            let s = lists::snapshot(r, shopping)?;
            let d = r
                .query::<ModelDelta>()
                .filter(ModelDelta::MODEL.eq(published.as_str()))
                .order_by(ModelDelta::SEQUENCE.asc())
                .all()?;
            let d: Vec<(i64, ListDelta)> = d
                .into_iter()
                .map(|d| (d.sequence, serde_json::from_str(&d.delta).unwrap()))
                .collect();
            mantle_store::ok((s, d))
        })
        .await
        .unwrap();
    assert_eq!(
        snapshot,
        json!({"name": "shopping", "entries": [
            {"id": milk.id, "text": "oat milk", "revision": 2},
            {"id": bread.id, "text": "bread", "revision": 1},
        ]})
    );
    // One delta per committed change, in order; refused changes publish
    // nothing.
    assert_eq!(
        deltas,
        vec![
            (1, ListDelta::Add { entry: milk }),
            (
                2,
                ListDelta::Add {
                    entry: eggs.clone()
                }
            ),
            (3, ListDelta::Edit { entry: oat }),
            (4, ListDelta::Remove { entry: eggs }),
            (5, ListDelta::Add { entry: bread }),
        ]
    );
    let wire = serde_json::to_value(&deltas[3].1).unwrap();
    assert_eq!(wire["op"], "remove");
    assert_eq!(wire["entry"]["text"], "eggs");

    // Deleting a list deletes its entries.
    store
        .transact(move |tx| {
            tx.delete(chores)?;
            mantle_store::ok(())
        })
        .await
        .unwrap();
    let left = store
        .read(move |r| r.query::<lists::ListEntry>().count())
        .await
        .unwrap();
    assert_eq!(left, 2, "the chores' entry went with its list");
    site.close().await;
}

#[test]
fn list_names_are_checked() {
    for good in ["shopping", "courses-a-faire", "v1.2", "A_b~c"] {
        assert!(lists::check_name(good).is_ok(), "{good}");
    }
    for bad in ["", "a b", "a/b", "courses à faire", "a\tb", ".", ".."] {
        assert!(lists::check_name(bad).is_err(), "{bad:?}");
    }
    assert!(lists::check_name(&"n".repeat(lists::MAX_NAME)).is_ok());
    assert!(lists::check_name(&"n".repeat(lists::MAX_NAME + 1)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_the_owner_shares_is_readable_and_only_by_whom() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path()).await;
    let alice = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob = site.accounts().create("bob", PW, false).await.unwrap().id;
    let list = lists::create(&site, alice, "groceries").await.unwrap();
    let store = site.stores().user_store_unchecked(alice).await.unwrap();
    let milk = lists::add(&store, list, "milk").await.unwrap();
    // A name she shares something else under names no list of hers.
    store
        .transact(move |tx| {
            let entry = mantle_store::Id::<lists::ListEntry>::from_raw(milk.id);
            tx.share(entry, &Role::account(alice), &[], Some("taken"))
        })
        .await
        .unwrap();
    assert!(matches!(
        lists::create(&site, alice, "taken").await,
        Err(SiteError::ShareIdTaken(_))
    ));

    let read = |viewer| lists::read(&site, viewer, alice, "groceries");
    assert!(matches!(
        read(Viewer::Account(bob)).await,
        Err(SiteError::NoSuchShare(_))
    ));
    assert_eq!(read(Viewer::Account(alice)).await.unwrap().entries.len(), 1);
    lists::share(&site, alice, "groceries", "bob", ListAccess::Edit)
        .await
        .unwrap();
    assert_eq!(read(Viewer::Account(bob)).await.unwrap().name, "groceries");
    assert!(matches!(
        read(Viewer::Anonymous).await,
        Err(SiteError::NoSuchShare(_))
    ));
    lists::share(&site, alice, "groceries", "everyone", ListAccess::Read)
        .await
        .unwrap();
    assert_eq!(
        read(Viewer::Anonymous).await.unwrap().entries[0].text,
        "milk"
    );

    // What the owner sees, and what she may not do.
    let mine = lists::my_lists(&site, alice).await.unwrap();
    assert_eq!(
        serde_json::to_value(&mine).unwrap(),
        json!([{"name": "groceries", "shares": [
            {"with": "bob@example.com", "access": "edit"},
            {"with": "everyone", "access": "read"},
        ]}])
    );
    let refused = |r: Result<(), lists::ShareFailure>| match r {
        Err(lists::ShareFailure::Refused(e)) => serde_json::to_value(e).unwrap()["code"].clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let share = |name: &'static str, with: &'static str, access| {
        lists::share(&site, alice, name, with, access)
    };
    assert_eq!(
        refused(share("groceries", "everyone", ListAccess::Edit).await),
        "BAD_ACCESS"
    );
    assert_eq!(
        refused(share("groceries", "alice", ListAccess::Read).await),
        "BAD_ACCESS"
    );
    assert_eq!(
        refused(share("groceries", "nobody", ListAccess::Read).await),
        "NO_SUCH_USER"
    );
    assert_eq!(
        refused(share("chores", "bob", ListAccess::Read).await),
        "NO_SUCH_LIST"
    );
    assert_eq!(
        refused(share("two words", "bob", ListAccess::Read).await),
        "BAD_NAME"
    );
    // Withdrawn: as if it never was.
    assert!(
        lists::unshare(&site, alice, "groceries", "everyone")
            .await
            .unwrap()
    );
    assert!(
        !lists::unshare(&site, alice, "groceries", "everyone")
            .await
            .unwrap()
    );
    assert!(matches!(
        read(Viewer::Anonymous).await,
        Err(SiteError::NoSuchShare(_))
    ));
    site.close().await;
}
