//! Model test: random sequences of inserts, updates, deletes, batch writes
//! and queries run against a store and against an in-memory model; every
//! query must give the model's answer.

mod common;

use std::collections::BTreeMap;

use mantle_store::{Error, Filter, Id, Item, Order, Registry, Store, Stored};
use proptest::prelude::*;

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "rec", version = 1, index(tag, n))]
struct Rec {
    #[item(index)]
    n: i64,
    tag: String,
}

const TAGS: [&str; 3] = ["red", "green", "blue"];

#[derive(Debug, Clone)]
enum Op {
    Insert {
        n: i64,
        tag: usize,
    },
    Update {
        pick: usize,
        n: i64,
        tag: usize,
    },
    Delete {
        pick: usize,
    },
    /// Sets `tag` on every item with `n < below`.
    UpdateWhere {
        below: i64,
        tag: usize,
    },
    /// Deletes every item with `n > above` and tag `tag`.
    DeleteWhere {
        above: i64,
        tag: usize,
    },
    /// Inserts, updates and deletes, then fails: nothing may change.
    RolledBack {
        n: i64,
        pick: usize,
    },
    Query(QuerySpec),
}

#[derive(Debug, Clone)]
struct QuerySpec {
    /// `n > k`
    greater_than: Option<i64>,
    /// `tag = t`
    tag: Option<usize>,
    descending: bool,
    offset: u64,
    limit: Option<u64>,
}

fn op() -> impl Strategy<Value = Op> {
    let n = -20i64..20;
    let tag = 0..TAGS.len();
    let query = (
        proptest::option::of(-20i64..20),
        proptest::option::of(0..TAGS.len()),
        any::<bool>(),
        0u64..4,
        proptest::option::of(0u64..8),
    )
        .prop_map(|(greater_than, tag, descending, offset, limit)| QuerySpec {
            greater_than,
            tag,
            descending,
            offset,
            limit,
        });
    prop_oneof![
        4 => (n.clone(), tag.clone()).prop_map(|(n, tag)| Op::Insert { n, tag }),
        2 => (any::<usize>(), n.clone(), tag.clone())
            .prop_map(|(pick, n, tag)| Op::Update { pick, n, tag }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => (n.clone(), tag.clone()).prop_map(|(below, tag)| Op::UpdateWhere { below, tag }),
        1 => (n.clone(), tag).prop_map(|(above, tag)| Op::DeleteWhere { above, tag }),
        1 => (n, any::<usize>()).prop_map(|(n, pick)| Op::RolledBack { n, pick }),
        4 => query.prop_map(Op::Query),
    ]
}

/// id -> (n, tag, revision)
type Model = BTreeMap<i64, (i64, String, i64)>;

fn pick(model: &Model, pick: usize) -> Option<i64> {
    if model.is_empty() {
        return None;
    }
    model.keys().nth(pick % model.len()).copied()
}

/// The model's answer: (id, n, tag, revision) in query order, and the
/// count of all matches (ignoring paging).
fn model_query(model: &Model, q: &QuerySpec) -> (Vec<(i64, i64, String, i64)>, u64) {
    let mut rows: Vec<_> = model
        .iter()
        .filter(|(_, (n, tag, _))| {
            q.greater_than.is_none_or(|k| *n > k) && q.tag.is_none_or(|t| tag == TAGS[t])
        })
        .map(|(id, (n, tag, rev))| (*id, *n, tag.clone(), *rev))
        .collect();
    // By n (asc or desc), ties by id ascending.
    rows.sort_by(|a, b| {
        let by_n = if q.descending {
            b.1.cmp(&a.1)
        } else {
            a.1.cmp(&b.1)
        };
        by_n.then(a.0.cmp(&b.0))
    });
    let count = rows.len() as u64;
    let page = rows
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit.map_or(usize::MAX, |l| l as usize))
        .collect();
    (page, count)
}

fn filter(q: &QuerySpec) -> Filter<Rec> {
    let mut f = Filter::all();
    if let Some(k) = q.greater_than {
        f = f.and(Rec::N.gt(k));
    }
    if let Some(t) = q.tag {
        f = f.and(Rec::TAG.eq(TAGS[t]));
    }
    f
}

async fn store_query(store: &Store, q: QuerySpec) -> (Vec<(i64, i64, String, i64)>, u64) {
    store
        .read(move |r| {
            let mut query = r
                .query::<Rec>()
                .filter(filter(&q))
                .order_by(if q.descending {
                    Rec::N.desc()
                } else {
                    Rec::N.asc()
                })
                .offset(q.offset);
            if let Some(l) = q.limit {
                query = query.limit(l);
            }
            let rows = query
                .all()?
                .into_iter()
                .map(|s| (s.id().raw(), s.n, s.tag.clone(), s.revision()))
                .collect();
            let count = r.query::<Rec>().filter(filter(&q)).count()?;
            Ok::<_, Error>((rows, count))
        })
        .await
        .unwrap()
}

async fn everything(store: &Store) -> Model {
    store
        .read(|r| {
            Ok::<_, Error>(
                r.query::<Rec>()
                    .order_by(Order::by_id())
                    .all()?
                    .into_iter()
                    .map(|s: Stored<Rec>| (s.id().raw(), (s.n, s.tag.clone(), s.revision())))
                    .collect(),
            )
        })
        .await
        .unwrap()
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    registry.register::<Rec>();
    let store = Store::open(dir.path().join("model.store"), &common::config(registry))
        .await
        .unwrap();
    let mut model = Model::new();
    // Whether an insert has committed (so the type's table exists).
    let mut written = false;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Insert { n, tag } => {
                let tag = TAGS[tag].to_string();
                let t = tag.clone();
                let id = store
                    .transact(move |tx| tx.insert(&Rec { n, tag: t }))
                    .await
                    .unwrap();
                prop_assert!(!model.contains_key(&id.raw()), "id {} reused", id.raw());
                model.insert(id.raw(), (n, tag, 1));
                written = true;
            }
            Op::Update { pick: p, n, tag } => {
                let Some(id) = pick(&model, p) else { continue };
                let tag = TAGS[tag].to_string();
                let t = tag.clone();
                let rev = store
                    .transact(move |tx| {
                        let mut rec = tx.get(Id::<Rec>::from_raw(id))?.expect("exists");
                        rec.n = n;
                        rec.tag = t;
                        tx.update(&mut rec)?;
                        Ok::<_, Error>(rec.revision())
                    })
                    .await
                    .unwrap();
                let entry = model.get_mut(&id).unwrap();
                *entry = (n, tag, entry.2 + 1);
                prop_assert_eq!(rev, entry.2);
            }
            Op::Delete { pick: p } => {
                let Some(id) = pick(&model, p) else { continue };
                let existed = store
                    .transact(move |tx| tx.delete(Id::<Rec>::from_raw(id)))
                    .await
                    .unwrap();
                prop_assert!(existed);
                model.remove(&id);
            }
            Op::UpdateWhere { below, tag } => {
                let changed = store
                    .transact(move |tx| {
                        tx.update_where(Rec::N.lt(below), [Rec::TAG.set(TAGS[tag].to_string())])
                    })
                    .await
                    .unwrap();
                let mut expected = 0;
                for (n, t, rev) in model.values_mut() {
                    if *n < below {
                        *t = TAGS[tag].to_string();
                        *rev += 1;
                        expected += 1;
                    }
                }
                prop_assert_eq!(changed, expected);
            }
            Op::DeleteWhere { above, tag } => {
                let deleted = store
                    .transact(move |tx| {
                        tx.delete_where(Rec::N.gt(above).and(Rec::TAG.eq(TAGS[tag])))
                    })
                    .await
                    .unwrap();
                let before = model.len();
                model.retain(|_, (n, t, _)| !(*n > above && t == TAGS[tag]));
                prop_assert_eq!(deleted, before - model.len());
            }
            Op::RolledBack { n, pick: p } => {
                // Only once the table exists: a rolled-back first write of a
                // type is covered by transactions.rs.
                if !written {
                    continue;
                }
                let target = pick(&model, p);
                let err = store
                    .transact(move |tx| {
                        tx.insert(&Rec {
                            n,
                            tag: "doomed".into(),
                        })?;
                        if let Some(id) = target {
                            let mut rec = tx.get(Id::<Rec>::from_raw(id))?.expect("exists");
                            rec.n = n;
                            tx.update(&mut rec)?;
                            tx.delete(rec.id())?;
                        }
                        tx.update_where(Filter::all(), [Rec::N.set(n)])?;
                        Err::<(), _>(Error::Panicked("rolled back on purpose".into()))
                    })
                    .await
                    .unwrap_err();
                prop_assert!(matches!(err, Error::Panicked(_)));
            }
            Op::Query(q) => {
                let expected = model_query(&model, &q);
                let got = store_query(&store, q.clone()).await;
                prop_assert_eq!(got, expected, "step {}: query {:?}", step, q);
            }
        }
    }
    prop_assert_eq!(everything(&store).await, model);
    store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_answers_every_query_like_the_in_memory_model(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
