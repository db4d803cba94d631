//! Unit tests of sharing inside transactions.

use mantle_store::{Registry, Store, StoreConfig};

use super::read::new_share_id;
use crate::sharing::*;

#[derive(mantle_store::Item, Debug, Clone)]
#[item(name = "test_note", version = 1)]
struct Note {
    text: String,
}

#[derive(mantle_store::Item, Debug, Clone)]
#[item(name = "test_memo", version = 1)]
struct Memo {
    text: String,
}

/// A user store as the site makes them, with two shareable types.
async fn store(dir: &tempfile::TempDir) -> Store {
    let mut registry = Registry::new();
    crate::register(&mut registry);
    registry.register::<Note>().register::<Memo>();
    Store::open(dir.path().join("user.store"), &StoreConfig::new(registry))
        .await
        .unwrap()
}

fn bob() -> Role {
    Role::Account(Id::from_raw(2))
}

fn carol() -> Role {
    Role::Account(Id::from_raw(3))
}

async fn generation(store: &Store) -> i64 {
    store.read(|r| r.sharing_generation()).await.unwrap()
}

/// The access names `roles` hold on `share_id`, if any.
async fn access(store: &Store, roles: &[Role], share_id: &str) -> Option<Vec<String>> {
    let (roles, id) = (roles.to_vec(), share_id.to_string());
    store
        .read(move |r| r.grant_for(&roles, &id))
        .await
        .unwrap()
        .map(|g| g.access.names())
}

#[test]
fn share_ids_are_checked() {
    for ok in ["hello", "A-b_c.d~9", "...", ".x", &"x".repeat(100)] {
        assert!(check_share_id(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "a%20b",
        "é",
        "a?b",
        "a#b",
        &"x".repeat(101),
    ] {
        match check_share_id(bad) {
            Err(SiteError::BadShareId(s)) => assert_eq!(s, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let id = new_share_id().unwrap();
    assert_eq!(id.len(), 18);
    assert!(check_share_id(&id).is_ok());
    assert!(check_access_name("comment").is_ok());
    assert!(check_access_name("Comment").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_id_names_one_item() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (a, b, memo) = store
        .transact(|tx| {
            let a = tx.insert(&Note { text: "a".into() })?;
            let b = tx.insert(&Note { text: "b".into() })?;
            let memo = tx.insert(&Memo { text: "m".into() })?;
            tx.share(a, &bob(), &[], Some("x"))?;
            // The same item under the same id, for another role: fine.
            tx.share(a, &carol(), &[EDIT], Some("x"))?;
            Ok::<_, SiteError>((a, b, memo))
        })
        .await
        .unwrap();
    let before = generation(&store).await;
    let taken = store
        .transact(move |tx| tx.share(b, &bob(), &[], Some("x")))
        .await;
    assert!(matches!(taken, Err(SiteError::ShareIdTaken(ref s)) if s == "x"));
    // Nor by an item of another type.
    let taken = store
        .transact(move |tx| tx.share(memo, &bob(), &[], Some("x")))
        .await;
    assert!(
        matches!(taken, Err(SiteError::ShareIdTaken(_))),
        "{taken:?}"
    );
    assert_eq!(
        generation(&store).await,
        before,
        "a refusal changes nothing"
    );
    // Once every share of the id is withdrawn, another item may take it.
    let n = store.transact(|tx| tx.unshare("x", None)).await.unwrap();
    assert_eq!(n, 2);
    store
        .transact(move |tx| tx.share(b, &bob(), &[], Some("x")))
        .await
        .unwrap();
    let grant = store
        .read(|r| r.grant_for(&[bob()], "x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (grant.item_type.as_str(), grant.item_id),
        ("test_note", b.raw())
    );
    // An item deleted without unsharing leaves its shares behind; its id
    // is free again for another item, which takes it whole.
    store
        .transact(move |tx| {
            tx.delete(b)?;
            tx.share(memo, &carol(), &[], Some("x"))
        })
        .await
        .unwrap();
    let shares = store.read(|r| r.shares()).await.unwrap();
    let x: Vec<_> = shares.iter().filter(|s| s.share_id == "x").collect();
    assert_eq!(x.len(), 1, "{x:?}");
    assert_eq!(
        (x[0].item_type.as_str(), x[0].item_id),
        ("test_memo", memo.raw())
    );
    // A missing item is refused; a new id is made when none is given.
    let missing = store
        .transact(|tx| tx.share(Id::<Note>::from_raw(999), &bob(), &[], None))
        .await;
    assert!(matches!(
        missing,
        Err(SiteError::Store(mantle_store::Error::NoSuchItem { .. }))
    ));
    let fresh = store
        .transact(move |tx| tx.share(a, &bob(), &[], None))
        .await
        .unwrap();
    assert!(check_share_id(&fresh).is_ok() && fresh != "x");
    let bad = store
        .transact(move |tx| tx.share(a, &bob(), &["Edit"], Some("y")))
        .await;
    assert!(matches!(bad, Err(SiteError::BadSharingName { .. })));
    let bad = store
        .transact(move |tx| tx.share(a, &bob(), &[], Some("a/b")))
        .await;
    assert!(matches!(bad, Err(SiteError::BadShareId(_))));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_again_replaces_the_access() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let note = store
        .transact(|tx| {
            let note = tx.insert(&Note { text: "n".into() })?;
            tx.share(note, &bob(), &[EDIT, "comment"], Some("n"))?;
            Ok::<_, SiteError>(note)
        })
        .await
        .unwrap();
    assert_eq!(
        access(&store, &[bob()], "n").await.unwrap(),
        [READ, "comment", EDIT]
    );
    let g = generation(&store).await;
    store
        .transact(move |tx| tx.share(note, &bob(), &[], Some("n")))
        .await
        .unwrap();
    assert_eq!(access(&store, &[bob()], "n").await.unwrap(), [READ]);
    assert!(generation(&store).await > g);
    let shares = store.read(|r| r.shares()).await.unwrap();
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert_eq!(shares[0].access, [READ]);
    // Another role's share of the id adds to what a viewer with both
    // roles holds.
    store
        .transact(move |tx| tx.share(note, &Role::Authenticated, &[EDIT], Some("n")))
        .await
        .unwrap();
    assert_eq!(
        access(&store, &[bob(), Role::Authenticated], "n")
            .await
            .unwrap(),
        [READ, EDIT]
    );
    assert_eq!(access(&store, &[bob()], "n").await.unwrap(), [READ]);
    assert_eq!(access(&store, &[Role::Everyone], "n").await, None);
    let of_note = store.read(move |r| r.shares_of(note)).await.unwrap();
    assert_eq!(of_note.len(), 2);
    // Withdrawn from one role only.
    let n = store
        .transact(|tx| tx.unshare("n", Some(&bob())))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(access(&store, &[bob()], "n").await, None);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_takes_its_memberships_and_shares() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let friends = Role::group("friends").unwrap();
    let family = Role::group("family").unwrap();
    let close = Role::group("close").unwrap();
    let (f, fa, c) = (friends.clone(), family.clone(), close.clone());
    store
        .transact(move |tx| {
            tx.create_group("friends")?;
            tx.create_group("family")?;
            tx.create_group("close")?;
            tx.add_member("friends", &bob())?;
            tx.add_member("friends", &c)?;
            tx.add_member("close", &carol())?;
            tx.add_member("family", &f)?;
            tx.add_member("family", &carol())?;
            let note = tx.insert(&Note { text: "n".into() })?;
            tx.share(note, &f, &[EDIT], Some("to-friends"))?;
            tx.share(note, &fa, &[], Some("to-family"))?;
            tx.share(note, &bob(), &[], Some("to-bob"))?;
            Ok::<_, SiteError>(())
        })
        .await
        .unwrap();
    let bob_viewer = Viewer::Account(Id::from_raw(2));
    let roles = store.read(move |r| r.roles_of(bob_viewer)).await.unwrap();
    assert!(roles.contains(&friends) && roles.contains(&family));
    assert!(!roles.contains(&close));

    let g = generation(&store).await;
    assert!(
        store
            .transact(|tx| tx.delete_group("friends"))
            .await
            .unwrap()
    );
    assert!(generation(&store).await > g);
    let groups = store.read(|r| r.groups()).await.unwrap();
    assert_eq!(
        groups,
        [
            ("close".to_string(), vec![carol()]),
            ("family".to_string(), vec![carol()]),
        ]
    );
    let shares: Vec<String> = store
        .read(|r| r.shares())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.share_id)
        .collect();
    assert_eq!(shares.len(), 2);
    assert!(!shares.contains(&"to-friends".to_string()));
    let roles = store.read(move |r| r.roles_of(bob_viewer)).await.unwrap();
    assert!(!roles.contains(&friends) && !roles.contains(&family));
    assert_eq!(access(&store, &roles, "to-family").await, None);
    assert_eq!(access(&store, &roles, "to-bob").await.unwrap(), [READ]);
    // Made again, it starts empty: nothing of the old group comes back.
    store
        .transact(|tx| tx.create_group("friends"))
        .await
        .unwrap();
    let groups = store.read(|r| r.groups()).await.unwrap();
    assert!(groups.contains(&("friends".to_string(), vec![])));
    assert_eq!(access(&store, &[friends], "to-friends").await, None);
    // Deleting what does not exist changes nothing.
    let g = generation(&store).await;
    assert!(!store.transact(|tx| tx.delete_group("ghost")).await.unwrap());
    assert_eq!(generation(&store).await, g);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_groups_and_cycles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let note = store
        .transact(|tx| {
            tx.create_group("a")?;
            tx.create_group("b")?;
            tx.create_group("c")?;
            tx.add_member("b", &Role::group("a")?)?;
            tx.add_member("c", &Role::group("b")?)?;
            Ok::<_, SiteError>(tx.insert(&Note { text: "n".into() })?)
        })
        .await
        .unwrap();
    let g = generation(&store).await;
    let ghost = Role::Group("ghost".into());
    let gh = ghost.clone();
    let r = store
        .transact(move |tx| tx.share(note, &gh, &[], Some("x")))
        .await;
    assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
    let r = store.transact(|tx| tx.add_member("ghost", &bob())).await;
    assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
    let gh = ghost.clone();
    let r = store.transact(move |tx| tx.add_member("a", &gh)).await;
    assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
    let r = store.transact(|tx| tx.add_member("Bad Name", &bob())).await;
    assert!(matches!(r, Err(SiteError::BadSharingName { .. })));
    for (group, member) in [("a", "c"), ("a", "b"), ("a", "a")] {
        let m = Role::group(member).unwrap();
        let r = store.transact(move |tx| tx.add_member(group, &m)).await;
        match r {
            Err(SiteError::RoleCycle {
                group: gr,
                member: m,
            }) => {
                assert_eq!((gr.as_str(), m), (group, format!("group:{member}")));
            }
            other => panic!("{group} <- {member}: {other:?}"),
        }
    }
    // Not a cycle: the same group reached twice (a diamond).
    store
        .transact(|tx| tx.add_member("c", &Role::group("a")?))
        .await
        .unwrap();
    assert_eq!(
        generation(&store).await,
        g + 1,
        "only the diamond changed anything"
    );
    // Adding again, or removing what is not there, changes nothing.
    store
        .transact(|tx| {
            tx.add_member("c", &Role::group("a")?)?;
            tx.create_group("a")?;
            assert!(!tx.remove_member("a", &bob())?);
            assert_eq!(tx.unshare("nothing", None)?, 0);
            assert_eq!(tx.unshare_item(Id::<Note>::from_raw(12345))?, 0);
            Ok::<_, SiteError>(())
        })
        .await
        .unwrap();
    assert_eq!(generation(&store).await, g + 1);
    assert!(store.read(|r| r.shares()).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_holds_everything_on_shares_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let owner = Id::<Account>::from_raw(1);
    store
        .transact(|tx| {
            let note = tx.insert(&Note { text: "n".into() })?;
            tx.share(note, &bob(), &[], Some("n"))?;
            Ok::<_, SiteError>(())
        })
        .await
        .unwrap();
    let (mine, missing, bobs, anon) = store
        .read(move |r| {
            Ok::<_, mantle_store::Error>((
                r.grant(Viewer::Account(owner), owner, "n")?,
                r.grant(Viewer::Account(owner), owner, "nothing")?,
                r.grant(Viewer::Account(Id::from_raw(2)), owner, "n")?,
                r.grant(Viewer::Anonymous, owner, "n")?,
            ))
        })
        .await
        .unwrap();
    let mine = mine.unwrap();
    assert!(mine.access.is_owner() && mine.access.permits(EDIT));
    assert!(mine.require("anything").is_ok());
    assert!(missing.is_none() && anon.is_none());
    let bobs = bobs.unwrap();
    assert!(bobs.require(READ).is_ok());
    assert!(matches!(bobs.require(EDIT), Err(SiteError::NoSuchShare(ref s)) if s == "n"));
    assert!(bobs.item::<Note>().is_ok());
    assert!(matches!(
        bobs.item::<Memo>(),
        Err(SiteError::NoSuchShare(_))
    ));
    store.close().await;
}
