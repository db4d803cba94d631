//! Typed queries: filters, ordering, paging, aggregates, batch writes,
//! streaming, optional attributes and attribute kinds.

mod common;

use std::ops::ControlFlow;

use mantle_store::{Error, Filter, Id, Item, Json, Order, Registry, Store, Stored, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    color: String,
    dims: Vec<u32>,
    extra: Option<Box<Meta>>,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "gadget", version = 1, index(rank, weight))]
struct Gadget {
    #[item(index)]
    name: String,
    rank: i64,
    weight: f64,
    active: bool,
    note: Option<String>,
    size: Option<i64>,
    made: Timestamp,
    blob: Vec<u8>,
    meta: Json<Meta>,
}

fn gadget(name: &str, rank: i64, weight: f64) -> Gadget {
    Gadget {
        name: name.to_string(),
        rank,
        weight,
        active: rank % 2 == 1,
        note: None,
        size: None,
        made: Timestamp::from_micros(rank * 1_000_000),
        blob: name.as_bytes().to_vec(),
        meta: Json(Meta {
            color: "grey".into(),
            dims: vec![],
            extra: None,
        }),
    }
}

/// Never written by any test: its table does not exist.
#[derive(Item, Debug, Clone)]
#[item(name = "ghost", version = 1)]
struct Ghost {
    label: String,
    amount: i64,
    share: f64,
}

/// Many small rows for streaming.
#[derive(Item, Debug, Clone)]
#[item(name = "row", version = 1)]
struct Row {
    #[item(index)]
    n: i64,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Gadget>().register::<Ghost>().register::<Row>();
    r
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.store"), &common::config(registry()))
        .await
        .unwrap();
    (dir, store)
}

/// alpha 3 1.5, beta 1 2.0, gamma 2 0.5, delta 3 4.0, epsilon 1 1.0, zeta 2 3.0
const DATA: [(&str, i64, f64); 6] = [
    ("alpha", 3, 1.5),
    ("beta", 1, 2.0),
    ("gamma", 2, 0.5),
    ("delta", 3, 4.0),
    ("epsilon", 1, 1.0),
    ("zeta", 2, 3.0),
];

async fn open_with_data() -> (tempfile::TempDir, Store, Vec<Id<Gadget>>) {
    let (dir, store) = open().await;
    let ids = store
        .transact(|tx| {
            DATA.iter()
                .map(|(n, r, w)| tx.insert(&gadget(n, *r, *w)))
                .collect::<Result<Vec<_>, Error>>()
        })
        .await
        .unwrap();
    (dir, store, ids)
}

/// Names of the gadgets matching `filter`, in id (insertion) order.
async fn names(store: &Store, filter: Filter<Gadget>) -> Vec<String> {
    store
        .read(move |r| {
            Ok::<_, Error>(
                r.query::<Gadget>()
                    .filter(filter)
                    .order_by(Order::by_id())
                    .all()?
                    .into_iter()
                    .map(|g| g.name.clone())
                    .collect(),
            )
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparison_operators_select_exactly_the_matching_items() {
    let (_dir, store, _) = open_with_data().await;
    assert_eq!(names(&store, Gadget::RANK.eq(2)).await, ["gamma", "zeta"]);
    assert_eq!(
        names(&store, Gadget::RANK.ne(2)).await,
        ["alpha", "beta", "delta", "epsilon"]
    );
    assert_eq!(names(&store, Gadget::RANK.lt(2)).await, ["beta", "epsilon"]);
    assert_eq!(
        names(&store, Gadget::RANK.le(2)).await,
        ["beta", "gamma", "epsilon", "zeta"]
    );
    assert_eq!(names(&store, Gadget::RANK.gt(2)).await, ["alpha", "delta"]);
    assert_eq!(
        names(&store, Gadget::RANK.ge(2)).await,
        ["alpha", "gamma", "delta", "zeta"]
    );
    assert_eq!(
        names(&store, Gadget::WEIGHT.gt(2.0)).await,
        ["delta", "zeta"]
    );
    assert_eq!(names(&store, Gadget::NAME.eq("beta")).await, ["beta"]);
    assert_eq!(
        names(&store, Gadget::NAME.lt("c")).await,
        ["alpha", "beta"],
        "text compares in byte order"
    );
    assert_eq!(
        names(&store, Gadget::ACTIVE.eq(true)).await,
        ["alpha", "beta", "delta", "epsilon"]
    );
    assert_eq!(
        names(&store, Gadget::MADE.ge(Timestamp::from_micros(3_000_000))).await,
        ["alpha", "delta"]
    );
    assert_eq!(
        names(&store, Gadget::BLOB.eq(b"zeta".as_slice())).await,
        ["zeta"]
    );
    assert!(names(&store, Gadget::RANK.gt(3)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_in_matches_listed_values_and_an_empty_list_matches_nothing() {
    let (_dir, store, ids) = open_with_data().await;
    assert_eq!(
        names(&store, Gadget::NAME.is_in(["zeta", "alpha", "nobody"])).await,
        ["alpha", "zeta"]
    );
    assert_eq!(
        names(&store, Gadget::RANK.is_in([1, 3])).await,
        ["alpha", "beta", "delta", "epsilon"]
    );
    assert!(
        names(&store, Gadget::RANK.is_in(Vec::<i64>::new()))
            .await
            .is_empty()
    );
    assert_eq!(
        names(&store, !Gadget::RANK.is_in(Vec::<i64>::new()))
            .await
            .len(),
        6,
        "the negation of an empty IN matches everything"
    );
    assert_eq!(
        names(&store, Filter::ids([ids[5], ids[1]])).await,
        ["beta", "zeta"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_matches_wildcards_and_escaped_wildcards_literally() {
    let (_dir, store, _) = open_with_data().await;
    store
        .transact(|tx| {
            tx.insert(&gadget("100%", 9, 0.0))?;
            tx.insert(&gadget("100x", 9, 0.0))?;
            tx.insert(&gadget("a_b", 9, 0.0))?;
            tx.insert(&gadget("axb", 9, 0.0))
        })
        .await
        .unwrap();
    assert_eq!(
        names(&store, Gadget::NAME.like("%ta")).await,
        ["beta", "delta", "zeta"]
    );
    assert_eq!(
        names(&store, Gadget::NAME.like("_eta")).await,
        ["beta", "zeta"]
    );
    assert_eq!(
        names(&store, Gadget::NAME.like("%l%a")).await,
        ["alpha", "delta"]
    );
    assert_eq!(
        names(&store, Gadget::NAME.like("100%")).await,
        ["100%", "100x"]
    );
    assert_eq!(names(&store, Gadget::NAME.like("100\\%")).await, ["100%"]);
    assert_eq!(names(&store, Gadget::NAME.like("a\\_b")).await, ["a_b"]);
    assert_eq!(
        names(&store, Gadget::NAME.like("a_b")).await,
        ["a_b", "axb"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn and_or_not_combine_filters_like_boolean_logic() {
    let (_dir, store, _) = open_with_data().await;
    assert_eq!(
        names(&store, Gadget::RANK.eq(3).and(Gadget::WEIGHT.gt(2.0))).await,
        ["delta"]
    );
    assert_eq!(
        names(&store, Gadget::RANK.eq(3).or(Gadget::WEIGHT.lt(1.0))).await,
        ["alpha", "gamma", "delta"]
    );
    assert_eq!(
        names(&store, !Gadget::RANK.eq(3)).await,
        ["beta", "gamma", "epsilon", "zeta"]
    );
    // (rank = 1 or rank = 3) and not (weight >= 2) -> alpha, epsilon
    assert_eq!(
        names(
            &store,
            Gadget::RANK
                .eq(1)
                .or(Gadget::RANK.eq(3))
                .and(!Gadget::WEIGHT.ge(2.0))
        )
        .await,
        ["alpha", "epsilon"]
    );
    // rank = 1 or (rank = 3 and weight >= 2) -> beta, delta, epsilon
    assert_eq!(
        names(
            &store,
            Gadget::RANK
                .eq(1)
                .or(Gadget::RANK.eq(3).and(Gadget::WEIGHT.ge(2.0)))
        )
        .await,
        ["beta", "delta", "epsilon"]
    );
    assert_eq!(names(&store, Filter::all()).await.len(), 6);
    assert!(names(&store, !Filter::all()).await.is_empty());
    assert_eq!(
        names(&store, Filter::all().and(Gadget::RANK.eq(2))).await,
        ["gamma", "zeta"]
    );
    // Several `filter` calls must all match.
    let both = store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Gadget>()
                    .filter(Gadget::RANK.ge(2))
                    .filter(Gadget::WEIGHT.lt(2.0))
                    .order_by(Order::by_id())
                    .all()?
                    .into_iter()
                    .map(|g| g.name.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap();
    assert_eq!(both, ["alpha", "gamma"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_two_attributes_honours_each_direction_and_breaks_ties_by_id() {
    let (_dir, store, _) = open_with_data().await;
    store
        .transact(|tx| tx.insert(&gadget("eta", 2, 3.0)))
        .await
        .unwrap();
    let ordered = |a: bool, b: bool| {
        let store = store.clone();
        async move {
            store
                .read(move |r| {
                    let rank = if a {
                        Gadget::RANK.asc()
                    } else {
                        Gadget::RANK.desc()
                    };
                    let weight = if b {
                        Gadget::WEIGHT.asc()
                    } else {
                        Gadget::WEIGHT.desc()
                    };
                    Ok::<_, Error>(
                        r.query::<Gadget>()
                            .order_by(rank)
                            .order_by(weight)
                            .all()?
                            .into_iter()
                            .map(|g| g.name.clone())
                            .collect::<Vec<_>>(),
                    )
                })
                .await
                .unwrap()
        }
    };
    // zeta and eta tie on (rank 2, weight 3.0): zeta was inserted first.
    assert_eq!(
        ordered(true, true).await,
        ["epsilon", "beta", "gamma", "zeta", "eta", "alpha", "delta"]
    );
    assert_eq!(
        ordered(true, false).await,
        ["beta", "epsilon", "zeta", "eta", "gamma", "delta", "alpha"]
    );
    assert_eq!(
        ordered(false, true).await,
        ["alpha", "delta", "gamma", "zeta", "eta", "epsilon", "beta"]
    );
    assert_eq!(
        ordered(false, false).await,
        ["delta", "alpha", "zeta", "eta", "gamma", "beta", "epsilon"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_offset_page_through_ordered_results_without_gaps() {
    let (_dir, store, _) = open_with_data().await;
    let page = |offset: u64, limit: Option<u64>| {
        let store = store.clone();
        async move {
            store
                .read(move |r| {
                    let mut q = r
                        .query::<Gadget>()
                        .order_by(Gadget::NAME.asc())
                        .offset(offset);
                    if let Some(l) = limit {
                        q = q.limit(l);
                    }
                    Ok::<_, Error>(
                        q.all()?
                            .into_iter()
                            .map(|g| g.name.clone())
                            .collect::<Vec<_>>(),
                    )
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(page(0, Some(2)).await, ["alpha", "beta"]);
    assert_eq!(page(2, Some(2)).await, ["delta", "epsilon"]);
    assert_eq!(page(4, Some(2)).await, ["gamma", "zeta"]);
    assert!(page(6, Some(2)).await.is_empty());
    assert_eq!(page(3, None).await, ["epsilon", "gamma", "zeta"]);
    assert!(page(0, Some(0)).await.is_empty());
    // count honours limit and offset too.
    let counted = store
        .read(|r| {
            Ok::<_, Error>((
                r.query::<Gadget>().limit(4).count()?,
                r.query::<Gadget>().offset(4).count()?,
                r.query::<Gadget>().offset(10).exists()?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(counted, (4, 2, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_sum_exists_and_first_summarise_matching_items() {
    let (_dir, store, _) = open_with_data().await;
    let (all, ranked_two, sum_rank, sum_weight, some, none, first, first_none) = store
        .read(|r| {
            Ok::<_, Error>((
                r.query::<Gadget>().count()?,
                r.query::<Gadget>().filter(Gadget::RANK.eq(2)).count()?,
                r.query::<Gadget>().sum(Gadget::RANK)?,
                r.query::<Gadget>()
                    .filter(Gadget::RANK.eq(3))
                    .sum(Gadget::WEIGHT)?,
                r.query::<Gadget>().filter(Gadget::RANK.eq(1)).exists()?,
                r.query::<Gadget>().filter(Gadget::RANK.eq(7)).exists()?,
                r.query::<Gadget>()
                    .order_by(Gadget::WEIGHT.desc())
                    .first()?
                    .map(|g| g.name.clone()),
                r.query::<Gadget>().filter(Gadget::RANK.eq(7)).first()?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(all, 6);
    assert_eq!(ranked_two, 2);
    assert_eq!(sum_rank, 12);
    assert_eq!(sum_weight, 5.5);
    assert!(some);
    assert!(!none);
    assert_eq!(first.as_deref(), Some("delta"));
    assert!(first_none.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sum_over_no_items_is_zero_for_integers_and_floats() {
    let (_dir, store, _) = open_with_data().await;
    let (i, f, oi) = store
        .read(|r| {
            let none = || r.query::<Gadget>().filter(Gadget::RANK.gt(100));
            Ok::<_, Error>((
                none().sum(Gadget::RANK)?,
                none().sum(Gadget::WEIGHT)?,
                // An optional attribute that is None everywhere.
                r.query::<Gadget>().sum(Gadget::SIZE)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(i, 0i64);
    assert_eq!(f, 0.0f64);
    assert_eq!(oi, 0i64);
    // An empty store (table exists but emptied).
    store
        .transact(|tx| tx.delete_where(Filter::<Gadget>::all()))
        .await
        .unwrap();
    let (i, f) = store
        .read(|r| {
            Ok::<_, Error>((
                r.query::<Gadget>().sum(Gadget::RANK)?,
                r.query::<Gadget>().sum(Gadget::WEIGHT)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((i, f), (0, 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_returns_the_single_match_none_or_not_unique() {
    let (_dir, store, ids) = open_with_data().await;
    let one = store
        .read(|r| {
            r.query::<Gadget>()
                .filter(Gadget::NAME.eq("gamma"))
                .unique()
        })
        .await
        .unwrap()
        .expect("gamma exists");
    assert_eq!(one.id(), ids[2]);
    assert_eq!(one.revision(), 1);
    let none = store
        .read(|r| {
            r.query::<Gadget>()
                .filter(Gadget::NAME.eq("omega"))
                .unique()
        })
        .await
        .unwrap();
    assert!(none.is_none());
    let err = store
        .read(|r| r.query::<Gadget>().filter(Gadget::RANK.eq(2)).unique())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotUnique {
                type_name: "gadget",
                count: 2
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_or_create_creates_once_and_finds_the_same_item_afterwards() {
    let (_dir, store) = open().await;
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let made = made.clone();
        let found = store
            .transact(move |tx| {
                tx.find_or_create(Gadget::NAME.eq("solo"), || {
                    made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    gadget("solo", 5, 5.0)
                })
            })
            .await
            .unwrap();
        assert_eq!(found.name, "solo");
        assert_eq!(found.revision(), 1);
        seen.push(found.id());
    }
    assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(seen.iter().all(|id| *id == seen[0]));
    assert_eq!(
        store.read(|r| r.query::<Gadget>().count()).await.unwrap(),
        1
    );
    // Several matches: NotUnique, nothing created.
    store
        .transact(|tx| tx.insert(&gadget("solo", 6, 6.0)))
        .await
        .unwrap();
    let err = store
        .transact(|tx| tx.find_or_create(Gadget::NAME.eq("solo"), || gadget("solo", 7, 7.0)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotUnique { .. }), "{err:?}");
    assert_eq!(
        store.read(|r| r.query::<Gadget>().count()).await.unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_lists_matching_ids_in_query_order() {
    let (_dir, store, ids) = open_with_data().await;
    let got = store
        .read(|r| {
            r.query::<Gadget>()
                .filter(Gadget::RANK.ge(2))
                .order_by(Gadget::WEIGHT.asc())
                .ids()
        })
        .await
        .unwrap();
    // gamma 0.5, alpha 1.5, zeta 3.0, delta 4.0
    assert_eq!(got, [ids[2], ids[0], ids[5], ids[3]]);
    let paged = store
        .read(|r| r.query::<Gadget>().offset(1).limit(2).ids())
        .await
        .unwrap();
    assert_eq!(paged, [ids[1], ids[2]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_streams_items_in_order_and_stops_at_break_over_50000_items() {
    let (_dir, store) = open().await;
    const N: i64 = 50_000;
    store
        .transact(|tx| {
            for n in 0..N {
                tx.insert(&Row { n })?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let (visited, last, total) = store
        .read(|r| {
            let mut visited = 0u64;
            let mut last = -1;
            r.query::<Row>()
                .filter(Row::N.ge(1000))
                .order_by(Row::N.asc())
                .for_each(|row| {
                    assert_eq!(row.n, last.max(999) + 1, "items come in order");
                    last = row.n;
                    visited += 1;
                    Ok(if visited == 25 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                })?;
            // And a full pass visits every item exactly once.
            let mut total = 0u64;
            let mut sum = 0i64;
            r.query::<Row>().for_each(|row| {
                total += 1;
                sum += row.n;
                Ok(ControlFlow::Continue(()))
            })?;
            assert_eq!(sum, N * (N - 1) / 2);
            Ok::<_, Error>((visited, last, total))
        })
        .await
        .unwrap();
    assert_eq!(visited, 25);
    assert_eq!(last, 1024);
    assert_eq!(total, N as u64);
    // An error from the callback stops the iteration and comes back.
    let err = store
        .read(|r| {
            r.query::<Row>().for_each(|row| {
                if row.n == 3 {
                    Err(Error::NoSuchItem {
                        type_name: "row",
                        id: row.id().raw(),
                    })
                } else {
                    Ok(ControlFlow::Continue(()))
                }
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchItem { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_where_sets_attributes_on_matches_and_advances_their_revisions() {
    let (_dir, store, ids) = open_with_data().await;
    let n = store
        .transact(|tx| {
            tx.update_where(
                Gadget::RANK.eq(2),
                [Gadget::NOTE.set("two"), Gadget::WEIGHT.set(9.0)],
            )
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    let all = store.read(|r| r.query::<Gadget>().all()).await.unwrap();
    for g in &all {
        if g.rank == 2 {
            assert_eq!(g.note.as_deref(), Some("two"));
            assert_eq!(g.weight, 9.0);
            assert_eq!(g.revision(), 2, "{}", g.name);
        } else {
            assert_eq!(g.note, None);
            assert_eq!(g.revision(), 1, "{}", g.name);
        }
    }
    // A copy read before a later batch update is stale: updating it conflicts.
    let mut copy: Stored<Gadget> = all.iter().find(|g| g.id() == ids[2]).unwrap().clone();
    assert_eq!(copy.revision(), 2);
    store
        .transact(|tx| tx.update_where(Gadget::NAME.eq("gamma"), [Gadget::SIZE.set(3)]))
        .await
        .unwrap();
    copy.weight = 1.0;
    let err = store
        .transact(move |tx| tx.update(&mut copy))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                type_name: "gadget",
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    // Setting an optional attribute to None.
    let n = store
        .transact(|tx| tx.update_where(Gadget::NOTE.is_some(), [Gadget::NOTE.set(None)]))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(
        names(&store, Gadget::NOTE.is_some()).await.is_empty(),
        "notes cleared"
    );
    // No match: nothing changes.
    let n = store
        .transact(|tx| tx.update_where(Gadget::RANK.eq(99), [Gadget::RANK.set(0)]))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_where_removes_exactly_the_matching_items() {
    let (_dir, store, ids) = open_with_data().await;
    let n = store
        .transact(|tx| tx.delete_where(Gadget::RANK.le(2).and(Gadget::WEIGHT.ge(2.0))))
        .await
        .unwrap();
    assert_eq!(n, 2); // beta, zeta
    assert_eq!(
        names(&store, Filter::all()).await,
        ["alpha", "gamma", "delta", "epsilon"]
    );
    let beta = ids[1];
    let gone = store.read(move |r| r.get(beta)).await.unwrap();
    assert!(gone.is_none());
    let n = store
        .transact(|tx| tx.delete_where(Gadget::RANK.eq(99)))
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Ids are never reused after a delete.
    let new = store
        .transact(|tx| tx.insert(&gadget("new", 1, 1.0)))
        .await
        .unwrap();
    assert!(new.raw() > ids[5].raw());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_attributes_filter_with_is_none_is_some_and_eq_none() {
    let (_dir, store, _) = open_with_data().await;
    store
        .transact(|tx| {
            tx.update_where(
                Gadget::NAME.is_in(["alpha", "beta"]),
                [Gadget::NOTE.set("hi")],
            )?;
            tx.update_where(Gadget::NAME.eq("gamma"), [Gadget::NOTE.set("")])?;
            tx.update_where(Gadget::NAME.eq("alpha"), [Gadget::SIZE.set(10)])?;
            tx.update_where(Gadget::NAME.eq("delta"), [Gadget::SIZE.set(0)])
        })
        .await
        .unwrap();
    assert_eq!(
        names(&store, Gadget::NOTE.is_some()).await,
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(
        names(&store, Gadget::NOTE.is_none()).await,
        ["delta", "epsilon", "zeta"]
    );
    // eq(None) means "holds no value", ne(None) "holds a value".
    assert_eq!(
        names(&store, Gadget::NOTE.eq(None)).await,
        ["delta", "epsilon", "zeta"]
    );
    assert_eq!(
        names(&store, Gadget::NOTE.ne(None::<String>)).await,
        ["alpha", "beta", "gamma"]
    );
    // A plain value compares with the optional attribute.
    assert_eq!(
        names(&store, Gadget::NOTE.eq("hi")).await,
        ["alpha", "beta"]
    );
    assert_eq!(
        names(&store, Gadget::NOTE.eq(Some("".to_string()))).await,
        ["gamma"]
    );
    assert_eq!(names(&store, Gadget::SIZE.ge(0)).await, ["alpha", "delta"]);
    assert_eq!(names(&store, Gadget::SIZE.eq(Some(0))).await, ["delta"]);
    assert_eq!(
        names(&store, Gadget::SIZE.is_none().or(Gadget::SIZE.lt(5))).await,
        ["beta", "gamma", "delta", "epsilon", "zeta"]
    );
    let sum = store
        .read(|r| r.query::<Gadget>().sum(Gadget::SIZE))
        .await
        .unwrap();
    assert_eq!(sum, 10);
}

/// `f` and `!f` should split the items in two, as they do in Rust, also
/// when an optional attribute holds no value. SQL's three-valued logic makes
/// `NOT (note = 'hi')` unknown (so false) for a NULL note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negated_filter_on_an_optional_attribute_matches_items_without_a_value() {
    let (_dir, store, _) = open_with_data().await;
    store
        .transact(|tx| tx.update_where(Gadget::NAME.eq("alpha"), [Gadget::NOTE.set("hi")]))
        .await
        .unwrap();
    let matching = names(&store, Gadget::NOTE.eq("hi")).await;
    let rest = names(&store, !Gadget::NOTE.eq("hi")).await;
    assert_eq!(matching, ["alpha"]);
    assert_eq!(
        rest,
        ["beta", "gamma", "delta", "epsilon", "zeta"],
        "!(note = \"hi\") should match the items whose note is None"
    );
    // `ne` likewise: None is not equal to "hi".
    assert_eq!(
        names(&store, Gadget::NOTE.ne("hi")).await,
        ["beta", "gamma", "delta", "epsilon", "zeta"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_kind_round_trips_unchanged() {
    let (_dir, store) = open().await;
    let rich = Gadget {
        name: "ünïcødé ✓ \u{0} nul inside".to_string(),
        rank: i64::MIN,
        weight: -1234.5e-7,
        active: true,
        note: Some("a note with 'quotes' and \"double\"".into()),
        size: Some(i64::MAX),
        made: Timestamp::from_micros(1_700_000_000_123_456),
        blob: (0u8..=255).collect(),
        meta: Json(Meta {
            color: "red".into(),
            dims: vec![1, 2, 3],
            extra: Some(Box::new(Meta {
                color: "inner".into(),
                dims: vec![],
                extra: None,
            })),
        }),
    };
    let plain = Gadget {
        name: String::new(),
        rank: 0,
        weight: f64::MAX,
        active: false,
        note: None,
        size: None,
        made: Timestamp::from_micros(-5),
        blob: Vec::new(),
        meta: Json(Meta {
            color: String::new(),
            dims: vec![u32::MAX],
            extra: None,
        }),
    };
    let (a, b) = {
        let (rich, plain) = (rich.clone(), plain.clone());
        store
            .transact(move |tx| Ok::<_, Error>((tx.insert(&rich)?, tx.insert(&plain)?)))
            .await
            .unwrap()
    };
    let (got_a, got_b) = store
        .read(move |r| Ok::<_, Error>((r.get(a)?.unwrap(), r.get(b)?.unwrap())))
        .await
        .unwrap();
    assert_eq!(got_a.id(), a);
    assert_eq!(got_a.into_inner(), rich);
    assert_eq!(got_b.into_inner(), plain);
    // Values also survive closing and reopening the file.
    let path = store.path().to_path_buf();
    common::close(store).await;
    let store = common::reopen(&path, &common::config(registry())).await;
    let again = store.read(move |r| r.get(a)).await.unwrap().unwrap();
    assert_eq!(again.into_inner(), rich);
    // And filters on them find them.
    let found = store
        .read(|r| {
            r.query::<Gadget>()
                .filter(Gadget::MADE.lt(Timestamp::from_micros(0)))
                .filter(Gadget::ACTIVE.eq(false))
                .filter(Gadget::BLOB.eq(Vec::new()))
                .ids()
        })
        .await
        .unwrap();
    assert_eq!(found, [b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_on_a_type_never_written_find_nothing() {
    let (_dir, store, _) = open_with_data().await;
    let out = store
        .read(|r| {
            let q = || r.query::<Ghost>().filter(Ghost::AMOUNT.gt(0));
            Ok::<_, Error>((
                q().all()?.len(),
                q().count()?,
                q().exists()?,
                q().first()?.is_none(),
                q().unique()?.is_none(),
                q().ids()?.len(),
                r.query::<Ghost>().sum(Ghost::AMOUNT)?,
                r.query::<Ghost>().sum(Ghost::SHARE)?,
                r.get(Id::<Ghost>::from_raw(1))?.is_none(),
                r.query::<Ghost>()
                    .order_by(Ghost::LABEL.desc())
                    .limit(3)
                    .all()?
                    .len(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(out, (0, 0, false, true, true, 0, 0, 0.0, true, 0));
    // Writes that find nothing to change succeed too.
    let (updated, deleted, deleted_one) = store
        .transact(|tx| {
            Ok::<_, Error>((
                tx.update_where(Ghost::AMOUNT.gt(0), [Ghost::LABEL.set("x")])?,
                tx.delete_where(Ghost::AMOUNT.gt(0))?,
                tx.delete(Id::<Ghost>::from_raw(1))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((updated, deleted, deleted_one), (0, 0, false));
    // Streaming visits nothing.
    store
        .read(|r| {
            r.query::<Ghost>()
                .for_each(|_| panic!("no ghost should be visited"))
        })
        .await
        .unwrap();
    let report = mantle_store::inspect(store.path()).unwrap();
    assert!(
        report.types.iter().all(|t| t.type_name != "ghost"),
        "reads and empty writes create no table: {:?}",
        report.types
    );
}
