//! References between items and their delete policies: cascade, nullify,
//! forbid; and refusal of references to items that do not exist.

mod common;

use mantle_store::{Error, Filter, Id, Item, OnDelete, Order, Registry, Store};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "org", version = 1)]
struct Org {
    #[item(index)]
    name: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "team", version = 1)]
struct Team {
    name: String,
    #[item(on_delete = "cascade")]
    org: Id<Org>,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "member", version = 1)]
struct Member {
    name: String,
    #[item(on_delete = "cascade")]
    team: Id<Team>,
    /// Optional reference without a policy: nullify by default.
    mentor: Option<Id<Member>>,
}

/// Nullified when its lead goes (explicit policy).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "project", version = 1)]
struct Project {
    title: String,
    #[item(on_delete = "nullify")]
    lead: Option<Id<Member>>,
}

/// Required reference without a policy: forbid by default.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "invoice", version = 1)]
struct Invoice {
    amount: i64,
    org: Id<Org>,
}

/// Forbids deleting a member (so a cascade reaching it is refused).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "desk", version = 1)]
struct Desk {
    #[item(on_delete = "forbid")]
    member: Id<Member>,
}

/// A cascading optional self-reference, to make cycles.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "node", version = 1)]
struct Node {
    label: String,
    #[item(on_delete = "cascade")]
    next: Option<Id<Node>>,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Org>()
        .register::<Team>()
        .register::<Member>()
        .register::<Project>()
        .register::<Invoice>()
        .register::<Desk>()
        .register::<Node>();
    r
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("r.store"), &common::config(registry()))
        .await
        .unwrap();
    (dir, store)
}

struct World {
    acme: Id<Org>,
    other: Id<Org>,
    teams: Vec<Id<Team>>,
    members: Vec<Id<Member>>,
    outsider: Id<Member>,
}

/// acme has two teams with two members each; `other` has one team with one
/// member (the outsider), mentored by acme's first member.
async fn world(store: &Store) -> World {
    store
        .transact(|tx| {
            let acme = tx.insert(&Org {
                name: "acme".into(),
            })?;
            let other = tx.insert(&Org {
                name: "other".into(),
            })?;
            let mut teams = Vec::new();
            let mut members = Vec::new();
            for t in 0..2 {
                let team = tx.insert(&Team {
                    name: format!("team{t}"),
                    org: acme,
                })?;
                teams.push(team);
                for m in 0..2 {
                    members.push(tx.insert(&Member {
                        name: format!("m{t}{m}"),
                        team,
                        mentor: None,
                    })?);
                }
            }
            let other_team = tx.insert(&Team {
                name: "other team".into(),
                org: other,
            })?;
            let outsider = tx.insert(&Member {
                name: "outsider".into(),
                team: other_team,
                mentor: Some(members[0]),
            })?;
            Ok::<_, Error>(World {
                acme,
                other,
                teams,
                members,
                outsider,
            })
        })
        .await
        .unwrap()
}

async fn counts(store: &Store) -> (u64, u64, u64) {
    store
        .read(|r| {
            Ok::<_, Error>((
                r.query::<Org>().count()?,
                r.query::<Team>().count()?,
                r.query::<Member>().count()?,
            ))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_deletes_referrers_recursively_through_three_levels() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    assert_eq!(counts(&store).await, (2, 3, 5));
    let acme = w.acme;
    let existed = store.transact(move |tx| tx.delete(acme)).await.unwrap();
    assert!(existed);
    // acme, its two teams and their four members are gone.
    assert_eq!(counts(&store).await, (1, 1, 1));
    let (teams, members) = (w.teams.clone(), w.members.clone());
    let any_left = store
        .read(move |r| {
            for t in teams {
                assert!(r.get(t)?.is_none());
            }
            for m in members {
                assert!(r.get(m)?.is_none());
            }
            Ok::<_, Error>(r.get(acme)?.is_some())
        })
        .await
        .unwrap();
    assert!(!any_left);
    // The outsider stays; its mentor (deleted by the cascade) was nullified.
    let outsider = w.outsider;
    let o = store.read(move |r| r.get(outsider)).await.unwrap().unwrap();
    assert_eq!(o.mentor, None);
    assert_eq!(o.revision(), 2);
    // Deleting it again reports it did not exist.
    let again = store.transact(move |tx| tx.delete(acme)).await.unwrap();
    assert!(!again);
    let _ = w.other;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nullify_clears_optional_references_and_bumps_their_revision() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    let lead = w.members[1];
    let (p1, p2, p3) = store
        .transact(move |tx| {
            Ok::<_, Error>((
                tx.insert(&Project {
                    title: "led".into(),
                    lead: Some(lead),
                })?,
                tx.insert(&Project {
                    title: "also led".into(),
                    lead: Some(lead),
                })?,
                tx.insert(&Project {
                    title: "unled".into(),
                    lead: None,
                })?,
            ))
        })
        .await
        .unwrap();
    store.transact(move |tx| tx.delete(lead)).await.unwrap();
    let projects = store
        .read(|r| r.query::<Project>().order_by(Order::by_id()).all())
        .await
        .unwrap();
    let got: Vec<_> = projects
        .iter()
        .map(|p| (p.id(), p.title.as_str(), p.lead, p.revision()))
        .collect();
    assert_eq!(
        got,
        [
            (p1, "led", None, 2),
            (p2, "also led", None, 2),
            (p3, "unled", None, 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_refuses_the_delete_and_leaves_everything_intact() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    let acme = w.acme;
    store
        .transact(move |tx| {
            tx.insert(&Invoice {
                amount: 100,
                org: acme,
            })
        })
        .await
        .unwrap();
    let err = store.transact(move |tx| tx.delete(acme)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferencedBy {
                type_name: "org",
                id,
                referrer: "invoice",
                attribute: "org"
            } if id == acme.raw()
        ),
        "{err:?}"
    );
    assert_eq!(counts(&store).await, (2, 3, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_deep_in_a_cascade_undoes_only_the_delete_and_the_transaction_goes_on() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    let (acme, blocked) = (w.acme, w.members[3]);
    let outsider = w.outsider;
    // acme -> team1 -> m11 <- desk (forbid)
    store
        .transact(move |tx| tx.insert(&Desk { member: blocked }))
        .await
        .unwrap();
    let outcome = store
        .transact(move |tx| {
            let refused = tx.delete(acme);
            // The transaction carries on after the refused delete.
            let inside = (
                tx.query::<Org>().count()?,
                tx.query::<Team>().count()?,
                tx.query::<Member>().count()?,
                tx.get(outsider)?.unwrap().mentor,
            );
            tx.insert(&Org {
                name: "after".into(),
            })?;
            Ok::<_, Error>((refused, inside))
        })
        .await
        .unwrap();
    let (refused, inside) = outcome;
    let err = refused.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferencedBy {
                type_name: "member",
                id,
                referrer: "desk",
                attribute: "member"
            } if id == blocked.raw()
        ),
        "{err:?}"
    );
    // Nothing of the delete was applied: not the org, not the cascaded
    // teams and members, not the nullified mentor.
    assert_eq!(inside, (2, 3, 5, Some(w.members[0])));
    assert_eq!(counts(&store).await, (3, 3, 5));
    let o = store.read(move |r| r.get(outsider)).await.unwrap().unwrap();
    assert_eq!((o.mentor, o.revision()), (Some(w.members[0]), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_missing_items_are_refused_with_dangling_reference() {
    let (_dir, store) = open().await;
    // The target type has no table yet (no member was ever written).
    store
        .transact(|tx| {
            tx.insert(&Project {
                title: "first".into(),
                lead: None,
            })
        })
        .await
        .unwrap();
    let err = store
        .transact(|tx| {
            tx.insert(&Project {
                title: "orphan".into(),
                lead: Some(Id::from_raw(999)),
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DanglingReference {
                type_name: "project",
                attribute: "lead",
                target: "member",
                id: 999
            }
        ),
        "{err:?}"
    );
    let w = world(&store).await;
    // The target table exists but not that id.
    let err = store
        .transact(|tx| {
            tx.insert(&Team {
                name: "orphan".into(),
                org: Id::from_raw(12345),
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DanglingReference { id: 12345, .. }),
        "{err:?}"
    );
    // Optional references too; None is fine.
    let team = w.teams[0];
    let err = store
        .transact(move |tx| {
            tx.insert(&Member {
                name: "x".into(),
                team,
                mentor: Some(Id::from_raw(777)),
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DanglingReference {
                type_name: "member",
                attribute: "mentor",
                ..
            }
        ),
        "{err:?}"
    );
    // Updates, one by one and in batches.
    let m = w.members[0];
    let err = store
        .transact(move |tx| {
            let mut member = tx.get(m)?.unwrap();
            member.mentor = Some(Id::from_raw(888));
            tx.update(&mut member)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DanglingReference { id: 888, .. }),
        "{err:?}"
    );
    let err = store
        .transact(move |tx| {
            tx.update_where(
                Member::NAME.eq("m00"),
                [Member::MENTOR.set(Id::<Member>::from_raw(889))],
            )
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DanglingReference { id: 889, .. }),
        "{err:?}"
    );
    assert_eq!(counts(&store).await, (2, 3, 5));
    assert_eq!(
        store.read(|r| r.query::<Project>().count()).await.unwrap(),
        1
    );
    let member = store.read(move |r| r.get(m)).await.unwrap().unwrap();
    assert_eq!((member.mentor, member.revision()), (None, 1));
}

/// An insert refused with `DanglingReference` must not leave the item in
/// the transaction: a caller that handles the error and commits other work
/// would otherwise commit a dangling reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_insert_leaves_no_item_behind_when_the_transaction_goes_on() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    let acme = w.acme;
    let refused = store
        .transact(move |tx| {
            let refused = tx.insert(&Team {
                name: "dangling".into(),
                org: Id::from_raw(4242),
            });
            tx.insert(&Team {
                name: "fine".into(),
                org: acme,
            })?;
            Ok::<_, Error>(refused.is_err())
        })
        .await
        .unwrap();
    assert!(refused);
    let names: Vec<String> = store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Team>()
                    .order_by(Order::by_id())
                    .all()?
                    .into_iter()
                    .map(|t| t.name.clone())
                    .collect(),
            )
        })
        .await
        .unwrap();
    assert_eq!(names, ["team0", "team1", "other team", "fine"]);
    let problems = mantle_store::check(store.path(), None).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_where_applies_cascade_to_every_deleted_item() {
    let (_dir, store) = open().await;
    let w = world(&store).await;
    let n = store
        .transact(|tx| tx.delete_where(Team::NAME.like("team%")))
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Both acme teams and their four members are gone; the orgs stay.
    assert_eq!(counts(&store).await, (2, 1, 1));
    let outsider = w.outsider;
    let o = store.read(move |r| r.get(outsider)).await.unwrap().unwrap();
    assert_eq!(o.mentor, None);
    // delete_where refused by forbid deletes nothing at all.
    let acme_invoice_org = w.other;
    store
        .transact(move |tx| {
            tx.insert(&Invoice {
                amount: 1,
                org: acme_invoice_org,
            })
        })
        .await
        .unwrap();
    let err = store
        .transact(|tx| tx.delete_where(Filter::<Org>::all()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferencedBy {
                referrer: "invoice",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(counts(&store).await, (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_through_a_reference_cycle_ends_and_deletes_the_cycle() {
    let (_dir, store) = open().await;
    let (a, d) = store
        .transact(|tx| {
            let a = tx.insert(&Node {
                label: "a".into(),
                next: None,
            })?;
            let b = tx.insert(&Node {
                label: "b".into(),
                next: Some(a),
            })?;
            let c = tx.insert(&Node {
                label: "c".into(),
                next: Some(b),
            })?;
            let mut first = tx.get(a)?.unwrap();
            first.next = Some(c); // a -> c -> b -> a
            tx.update(&mut first)?;
            let d = tx.insert(&Node {
                label: "d".into(),
                next: None,
            })?;
            Ok::<_, Error>((a, d))
        })
        .await
        .unwrap();
    store.transact(move |tx| tx.delete(a)).await.unwrap();
    let left = store.read(|r| r.query::<Node>().ids()).await.unwrap();
    assert_eq!(left, [d]);
}

#[test]
fn default_policies_are_nullify_for_optional_and_forbid_for_required_references() {
    let policy = |attrs: Vec<mantle_store::AttributeDef>, name: &str| {
        attrs
            .into_iter()
            .find(|a| a.name == name)
            .unwrap()
            .on_delete
    };
    assert_eq!(policy(Member::attributes(), "mentor"), None);
    assert!(
        Member::attributes()
            .iter()
            .any(|a| a.name == "mentor" && a.nullable)
    );
    assert_eq!(policy(Invoice::attributes(), "org"), None);
    assert_eq!(policy(Team::attributes(), "org"), Some(OnDelete::Cascade));
    assert_eq!(policy(Desk::attributes(), "member"), Some(OnDelete::Forbid));
    assert_eq!(
        policy(Project::attributes(), "lead"),
        Some(OnDelete::Nullify)
    );
}
