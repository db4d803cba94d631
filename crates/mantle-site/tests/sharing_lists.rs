//! What a viewer is shown: the items of a type they may read in an
//! owner's store (`asAccessibleTo`), and what others share with them.

use std::time::Duration;

use mantle_site::sharing::{EDIT, Role, ShareItems, Viewer};
use mantle_site::{Site, SiteConfig, SiteError};
use mantle_store::Item;
use serde::{Deserialize, Serialize};

const PW: &str = "correct horse battery";

#[derive(Item, Debug, Clone, Serialize, Deserialize)]
#[item(name = "pic", version = 1)]
struct Pic {
    title: String,
}

#[tokio::test]
async fn viewers_see_what_their_roles_allow_and_hear_of_shares_made_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::builder(dir.path())
        .with(|r| {
            r.register::<Pic>();
        })
        .init(SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        })
        .await
        .unwrap();
    let alice = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob = site.accounts().create("bob", PW, false).await.unwrap().id;
    let carol = site.accounts().create("carol", PW, false).await.unwrap().id;
    let store = site.stores().user_store_unchecked(alice).await.unwrap();
    store
        .transact(move |tx| {
            let public = tx.insert(&Pic {
                title: "public".into(),
            })?;
            let for_bob = tx.insert(&Pic {
                title: "for bob".into(),
            })?;
            let family = tx.insert(&Pic {
                title: "family".into(),
            })?;
            tx.insert(&Pic {
                title: "private".into(),
            })?;
            tx.share(public, &Role::Everyone, &[], Some("public"))?;
            tx.share(for_bob, &Role::account(bob), &[EDIT], Some("for-bob"))?;
            let fam = tx.create_group("family")?;
            tx.add_member("family", &Role::account(carol))?;
            tx.share(family, &fam, &[], Some("family"))?;
            Ok::<_, SiteError>(())
        })
        .await
        .unwrap();

    let titles = |v: Vec<mantle_site::sharing::Shared<Pic>>| {
        let mut t: Vec<String> = v.iter().map(|s| s.title.clone()).collect();
        t.sort();
        t
    };
    let sharing = site.sharing();
    let anon = sharing
        .accessible::<Pic>(Viewer::Anonymous, alice)
        .await
        .unwrap();
    assert_eq!(titles(anon), ["public"]);
    let as_bob = sharing
        .accessible::<Pic>(Viewer::Account(bob), alice)
        .await
        .unwrap();
    assert_eq!(titles(as_bob), ["for bob", "public"]);
    let as_carol = sharing
        .accessible::<Pic>(Viewer::Account(carol), alice)
        .await
        .unwrap();
    assert_eq!(titles(as_carol), ["family", "public"]);
    let own = sharing
        .accessible::<Pic>(Viewer::Account(alice), alice)
        .await
        .unwrap();
    assert_eq!(titles(own.clone()), ["family", "for bob", "public"]);
    assert!(own.iter().all(|s| s.grant.access.is_owner()));

    // Bob and Carol are told what reaches them (not of public shares).
    let told = |who| {
        let site = site.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    let list = site.sharing().shared_with(who).await.unwrap();
                    if !list.is_empty() {
                        return list;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("told in time")
        }
    };
    let bobs = told(bob).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        (bobs[0].owner_login.as_str(), bobs[0].share_id.as_str()),
        ("alice@example.com", "for-bob")
    );
    assert_eq!(bobs[0].access, ["read", "edit"]);
    assert_eq!(told(carol).await[0].share_id, "family");

    // Withdrawn: no longer listed.
    store
        .transact(|tx| tx.unshare("for-bob", None))
        .await
        .unwrap();
    assert!(site.sharing().shared_with(bob).await.unwrap().is_empty());
    site.close().await;
}

#[tokio::test]
async fn a_listing_of_what_is_shared_reads_a_bounded_number_of_hints() {
    use mantle_site::sharing::{MAX_SHARED_WITH, SharedWithMe};
    let dir = tempfile::tempdir().unwrap();
    let site = Site::builder(dir.path())
        .init(SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        })
        .await
        .unwrap();
    let alice = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob = site.accounts().create("bob", PW, false).await.unwrap().id;
    // More hints than a listing reads, none of them a real share (as a
    // user who shared, then withdrew, many items would leave).
    let store = site.stores().user_store_unchecked(bob).await.unwrap();
    let n = MAX_SHARED_WITH as usize + 1;
    store
        .transact(move |tx| {
            for i in 0..n {
                tx.insert(&SharedWithMe {
                    owner: alice.raw(),
                    share_id: format!("gone{i}"),
                    item_type: "pic".into(),
                })?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    let count = || async {
        store
            .read(|r| r.query::<SharedWithMe>().count())
            .await
            .unwrap()
    };
    assert!(site.sharing().shared_with(bob).await.unwrap().is_empty());
    assert_eq!(
        count().await,
        1,
        "one listing read and pruned at most the cap"
    );
    assert!(site.sharing().shared_with(bob).await.unwrap().is_empty());
    assert_eq!(count().await, 0);
    site.close().await;
}
