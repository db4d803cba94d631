//! Live objects end to end over AMP: the real `Site`, the real listener on
//! loopback, and the Rust client.

mod common;

use std::time::Duration;

use common::*;
use mantle_client::{CallError, Client, ModelEvent, Status, Subscription};
use mantle_live::builtin::{ObserveError, Unauthorized, Whoami};
use mantle_live::{Empty, SaveConflict, codes};

const WAIT: Duration = Duration::from_secs(20);

async fn next(sub: &mut Subscription) -> ModelEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event within the time limit")
        .expect("the subscription is open")
}

async fn wait_status(client: &Client, want: Status) {
    let mut rx = client.status();
    tokio::time::timeout(WAIT, rx.wait_for(|s| *s == want))
        .await
        .expect("status change within the time limit")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_login_and_errors() {
    let t = TestSite::start().await;
    // Not logged in: the built-in answers UNAUTHORIZED.
    let mut opts = t.client_options();
    opts.credentials = None;
    let anon = Client::connect(opts).await.unwrap();
    match anon.call::<Whoami>(Empty {}).await {
        Err(CallError::Command(Unauthorized::Unauthorized)) => {}
        other => panic!("{other:?}"),
    }
    let e = anon.call::<Sum>(SumArgs { a: 1, b: 2 }).await.unwrap_err();
    assert_eq!(e.code(), Some(codes::UNAUTHORIZED), "{e:?}");

    // A wrong password fails the connection's login.
    let mut opts = t.client_options();
    opts.credentials = Some(mantle_client::Credentials::Password {
        username: t.user.clone(),
        password: "wrong".into(),
    });
    assert!(matches!(
        Client::connect(opts).await,
        Err(mantle_client::ConnectError::Login(CallError::Command(
            Unauthorized::Unauthorized
        )))
    ));

    let c = Client::connect(t.client_options()).await.unwrap();
    assert_eq!(c.call::<Whoami>(Empty {}).await.unwrap().username, t.user);
    assert_eq!(
        c.call::<Sum>(SumArgs { a: 13, b: 81 }).await.unwrap().total,
        94
    );

    // Unknown command, wrong argument type, missing argument.
    let e = c.call_box("Nope", Default::default()).await.unwrap_err();
    assert_eq!(e.code(), Some(codes::UNHANDLED));
    let bad = mantle_amp::AmpBox::new().with("a", "seven").with("b", "1");
    let e = c.call_box("Sum", bad).await.unwrap_err();
    assert_eq!(e.code(), Some(codes::BAD_ARGUMENTS), "{e:?}");
    let e = c
        .call_box("Sum", mantle_amp::AmpBox::new().with("a", "1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::BAD_ARGUMENTS), "{e:?}");

    // A token from an HTTP login works too.
    let issued = t
        .site
        .auth()
        .login("alice", PASSWORD, "test")
        .await
        .unwrap();
    let mut opts = t.client_options();
    opts.credentials = Some(mantle_client::Credentials::Token(issued.token));
    let by_token = Client::connect(opts).await.unwrap();
    assert_eq!(
        by_token.call::<Whoami>(Empty {}).await.unwrap().username,
        t.user
    );

    // No such model.
    match c.observe("nothing").await {
        Err(CallError::Command(ObserveError::NoSuchModel { model })) => {
            assert_eq!(model, "nothing")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("observed a model that does not exist"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight_all_answer() {
    let t = TestSite::start().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let calls = (0..500).map(|i| {
        let c = c.clone();
        async move { c.call::<Sum>(SumArgs { a: i, b: 1 }).await.unwrap().total }
    });
    let totals = futures::future::join_all(calls).await;
    assert_eq!(totals, (1..=500).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_get_a_snapshot_then_only_committed_deltas_in_order() {
    let t = TestSite::start().await;
    let store = t.alice_store().await;
    add_note(&store, "before").await;
    let a = Client::connect(t.client_options()).await.unwrap();
    let b = Client::connect(t.client_options()).await.unwrap();
    let mut sub = a.observe("notes").await.unwrap();
    let ModelEvent::Snapshot { sequence, value } = next(&mut sub).await else {
        panic!("first a snapshot");
    };
    assert_eq!(sequence, 1);
    assert_eq!(value["notes"][0]["text"], "before");

    // A rolled-back change publishes nothing.
    let e = b
        .call::<AddNote>(AddNoteArgs {
            text: "rolled back".into(),
            fail: true,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(codes::UNKNOWN));
    for i in 0..20 {
        b.call::<AddNote>(AddNoteArgs {
            text: format!("n{i}"),
            fail: false,
        })
        .await
        .unwrap();
    }
    for i in 0..20 {
        match next(&mut sub).await {
            ModelEvent::Delta { sequence, value } => {
                assert_eq!(sequence, 2 + i);
                assert_eq!(
                    value["text"],
                    format!("n{i}"),
                    "in commit order, none rolled back"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // Unobserved (dropped): the server forgets the observation.
    drop(sub);
    let live = t.site.extension::<mantle_live_server::Live>().unwrap();
    tokio::time::timeout(WAIT, async {
        while live.observers() > 0 {
            add_note(&store, "poke").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the observation ends when the subscription is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_save_is_a_typed_save_conflict() {
    let t = TestSite::start().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let n = c
        .call::<AddNote>(AddNoteArgs {
            text: "v1".into(),
            fail: false,
        })
        .await
        .unwrap();
    let edited = c
        .call::<EditNote>(EditNoteArgs {
            id: n.id,
            text: "v2".into(),
            revision: n.revision,
        })
        .await
        .unwrap();
    assert!(edited.revision > n.revision);
    match c
        .call::<EditNote>(EditNoteArgs {
            id: n.id,
            text: "stale".into(),
            revision: n.revision,
        })
        .await
    {
        Err(CallError::Command(SaveConflict::SaveConflict {
            your_revision,
            current_revision,
        })) => {
            assert_eq!(your_revision, n.revision);
            assert_eq!(current_revision, edited.revision);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_reobtains_references_and_resumes() {
    let mut t = TestSite::start().await;
    let store = t.alice_store().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let counter = c
        .reference::<OpenCounter>(OpenCounterArgs { start: 10 }, "handle")
        .await
        .unwrap();
    assert_eq!(counter.call::<Increment>(Empty {}).await.unwrap().value, 11);
    let mut sub = c.observe("notes").await.unwrap();
    let ModelEvent::Snapshot { sequence: s0, .. } = next(&mut sub).await else {
        panic!("snapshot first");
    };
    add_note(&store, "online").await;
    assert!(
        matches!(next(&mut sub).await, ModelEvent::Delta { sequence, .. } if sequence == s0 + 1)
    );

    t.stop_amp().await;
    wait_status(&c, Status::Offline).await;
    // Offline: calls fail at once, with a typed error.
    let started = std::time::Instant::now();
    assert_eq!(
        c.call::<Sum>(SumArgs { a: 1, b: 1 }).await.unwrap_err(),
        CallError::ConnectionLost
    );
    assert!(matches!(
        counter.call::<Increment>(Empty {}).await,
        Err(CallError::ConnectionLost)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Changes committed meanwhile are kept in the model's history.
    for i in 0..5 {
        add_note(&store, &format!("offline {i}")).await;
    }
    t.restart_amp().await;
    wait_status(&c, Status::Online).await;
    // Resumed: the missed deltas, not a snapshot.
    for i in 0..5 {
        match next(&mut sub).await {
            ModelEvent::Delta { sequence, value } => {
                assert_eq!(sequence, s0 + 2 + i);
                assert_eq!(value["text"], format!("offline {i}"));
            }
            other => panic!("expected the missed delta, got {other:?}"),
        }
    }
    // The reference was re-obtained: a new counter on the new connection.
    assert_eq!(counter.call::<Increment>(Empty {}).await.unwrap().value, 11);
    assert_eq!(c.call::<Whoami>(Empty {}).await.unwrap().username, t.user);

    // Away for longer than the history: a fresh snapshot instead.
    t.stop_amp().await;
    wait_status(&c, Status::Offline).await;
    let before = sub.last_sequence().unwrap();
    for i in 0..(mantle_live_server::HISTORY + 5) {
        add_note(&store, &format!("far {i}")).await;
    }
    t.restart_amp().await;
    match next(&mut sub).await {
        ModelEvent::Snapshot { sequence, value } => {
            assert_eq!(sequence, before + mantle_live_server::HISTORY + 5);
            let notes = value["notes"].as_array().unwrap();
            assert_eq!(
                notes.last().unwrap()["text"],
                format!("far {}", mantle_live_server::HISTORY + 4)
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_deltas_too_large_for_amp_are_replaced_by_a_snapshot() {
    let mut t = TestSite::start().await;
    let store = t.alice_store().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let mut sub = c.observe("notes").await.unwrap();
    let ModelEvent::Snapshot { sequence: s0, .. } = next(&mut sub).await else {
        panic!("snapshot first");
    };
    t.stop_amp().await;
    wait_status(&c, Status::Offline).await;
    // A delta over AMP's 65,535-byte value limit, then one that removes
    // the note again, so the model itself is small.
    let big = "x".repeat(70_000);
    let id = add_note(&store, &big).await;
    store
        .transact(move |tx| {
            tx.delete(mantle_store::Id::<Note>::from_raw(id))?;
            mantle_live_server::publish(tx, "notes", &serde_json::json!({ "removed": id }))
        })
        .await
        .unwrap();
    t.restart_amp().await;
    match next(&mut sub).await {
        ModelEvent::Snapshot { sequence, value } => {
            assert_eq!(sequence, s0 + 2);
            assert_eq!(value["notes"].as_array().unwrap().len(), 0);
        }
        other => panic!("expected a snapshot instead of the oversized delta, got {other:?}"),
    }
    // And the observation goes on.
    add_note(&store, "small").await;
    assert!(
        matches!(next(&mut sub).await, ModelEvent::Delta { sequence, .. } if sequence == s0 + 3)
    );
}

/// Adds `n` notes of `text` in one transaction, publishing each.
async fn add_notes(store: &mantle_store::Store, n: usize, text: &str) {
    let text = text.to_string();
    store
        .transact(move |tx| {
            for _ in 0..n {
                let id = tx.insert(&Note { text: text.clone() })?;
                let delta = NoteDelta {
                    id: id.raw(),
                    text: text.clone(),
                };
                mantle_live_server::publish(tx, "notes", &delta)?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_too_long_for_one_amp_value_arrives_in_parts() {
    let mut t = TestSite::start().await;
    let store = t.alice_store().await;
    // About 200 KB of JSON, with 3-byte characters across the cuts.
    let text = "€uro ".repeat(1_000);
    add_notes(&store, 40, &text).await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let mut sub = c.observe("notes").await.unwrap();
    let s0 = match next(&mut sub).await {
        ModelEvent::Snapshot { sequence, value } => {
            let notes = value["notes"].as_array().unwrap();
            assert_eq!(notes.len(), 40);
            assert!(notes.iter().all(|n| n["text"] == text.as_str()));
            sequence
        }
        other => panic!("expected the snapshot, got {other:?}"),
    };
    assert_eq!(s0, 40);
    // Deltas follow the parts.
    add_note(&store, "after").await;
    assert!(matches!(
        next(&mut sub).await,
        ModelEvent::Delta { sequence: 41, .. }
    ));

    // Away for longer than the history: a fresh snapshot, in parts again.
    t.stop_amp().await;
    wait_status(&c, Status::Offline).await;
    add_notes(&store, 300, "while away").await;
    t.restart_amp().await;
    match next(&mut sub).await {
        ModelEvent::Snapshot { sequence, value } => {
            assert_eq!(sequence, 341);
            assert_eq!(value["notes"].as_array().unwrap().len(), 341);
        }
        other => panic!("expected a fresh snapshot, got {other:?}"),
    }
    add_note(&store, "later").await;
    assert!(matches!(
        next(&mut sub).await,
        ModelEvent::Delta { sequence: 342, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_statistics_count_connections_calls_errors_and_deltas() {
    let t = TestSite::start().await;
    let c = Client::connect(t.client_options()).await.unwrap();
    let mut sub = c.observe("notes").await.unwrap();
    next(&mut sub).await;
    c.call::<Sum>(SumArgs { a: 1, b: 1 }).await.unwrap();
    c.call_box("Nope", Default::default()).await.unwrap_err();
    add_note(&t.alice_store().await, "counted").await;
    next(&mut sub).await;
    // Counted just after the push is queued: the client may be quicker.
    let live_value = |name: &'static str| {
        let site = t.site.clone();
        async move {
            let snap = site.stats_snapshot().await.unwrap();
            snap.namespace(mantle_live_server::LIVE_NAMESPACE)
                .and_then(|ns| ns.value(name).cloned())
        }
    };
    tokio::time::timeout(WAIT, async {
        while live_value("Deltas Pushed").await != Some(mantle_stats::Value::Int(1)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the delta is counted");
    let snap = t.site.stats_snapshot().await.unwrap();
    let live = snap
        .namespace(mantle_live_server::LIVE_NAMESPACE)
        .expect("the Live namespace");
    let int = |name: &str| match live.value(name) {
        Some(mantle_stats::Value::Int(n)) => *n,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(int("Connections"), 1);
    assert_eq!(int("Observers"), 1);
    assert_eq!(int("Calls"), 4, "Login, Observe, Sum, Nope");
    assert_eq!(int("Errors"), 1);
    assert_eq!(int("Deltas Pushed"), 1);
    drop(sub);
    c.close();
    tokio::time::timeout(WAIT, async {
        while live_value("Connections").await != Some(mantle_stats::Value::Int(0)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a closed connection is no longer counted");
}
