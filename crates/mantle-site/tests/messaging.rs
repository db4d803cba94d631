//! Interstore messages: delivered after commit, applied once, answered,
//! refused and parked when they cannot be delivered.

use std::time::Duration;

use mantle_site::{
    Envelope, Message, MessageHandlers, NO_HANDLER, Receipt, Refusal, SendMessage, SignupPolicy,
    Site, SiteConfig, SiteError, StoreKind,
};
use mantle_store::{Item, Registry, Store, Tx};
use serde::{Deserialize, Serialize};

const PW: &str = "correct horse battery";

/// Counts what a store received and what answers came back.
#[derive(Item, Debug, Clone)]
#[item(name = "tally", version = 1)]
struct Tally {
    #[item(index)]
    what: String,
    n: i64,
}

#[derive(Serialize, Deserialize)]
struct Ping {
    n: i64,
}
impl Message for Ping {
    const TYPE: &'static str = "test.ping";
    type Answer = i64;
}

#[derive(Serialize, Deserialize)]
struct Note {
    text: String,
}
impl Message for Note {
    const TYPE: &'static str = "test.note";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// Two programs' ideas of one message type: sent as `ShapeA`, received as
/// `ShapeB`, so the body does not decode at the recipient.
#[derive(Serialize, Deserialize)]
struct ShapeA {
    text: String,
}
impl Message for ShapeA {
    const TYPE: &'static str = "test.shape";
    type Answer = ();
}
#[derive(Serialize, Deserialize)]
struct ShapeB {
    number: i64,
}
impl Message for ShapeB {
    const TYPE: &'static str = "test.shape";
    type Answer = ();
}

/// A type only the app store `app:things` handles.
#[derive(Serialize, Deserialize)]
struct Vote {
    choice: String,
}
impl Message for Vote {
    const TYPE: &'static str = "test.vote";
    type Answer = ();
}

/// A type no store handles.
#[derive(Serialize, Deserialize)]
struct Stray;
impl Message for Stray {
    const TYPE: &'static str = "test.stray";
    type Answer = ();
}

fn bump(tx: &mut Tx<'_>, what: &str, by: i64) -> mantle_store::Result<i64> {
    let mut t = tx.find_or_create(Tally::WHAT.eq(what), || Tally {
        what: what.to_string(),
        n: 0,
    })?;
    t.n += by;
    tx.update(&mut t)?;
    Ok(t.n)
}

fn types(r: &mut Registry) {
    r.register::<Tally>();
}

fn handlers(h: &mut MessageHandlers) {
    h.on::<Ping>(|tx, _env: &Envelope, ping| {
        if ping.n < 0 {
            return Err(Refusal::new("NEGATIVE", "pings must be positive"));
        }
        Ok(bump(tx, "pinged", ping.n)?)
    })
    .on_answer::<Ping>(|tx, ping, answer| {
        match answer {
            Ok(total) => {
                bump(tx, "answered", 1)?;
                bump(tx, "last_total", total - tally(tx, "last_total")?)?;
            }
            Err(r) => {
                bump(tx, &format!("refused:{}", r.code), 1)?;
                bump(tx, "refused_amount", ping.n)?;
            }
        }
        Ok(())
    })
    .on::<Note>(|tx, env, note| {
        bump(tx, &format!("note:{}", note.text), 1)?;
        // Who sent it: `note_from:FROM:LOGIN` (`-` for no login).
        let login = env.sender_login.as_deref().unwrap_or("-");
        bump(tx, &format!("note_from:{}:{login}", env.from), 1)?;
        Ok(())
    })
    .on::<Stray>(|_, _, _| Err(Refusal::new("NEVER", "unused")));
}

/// Like `handlers`, without a handler for `Stray`.
fn handlers_without_stray(h: &mut MessageHandlers) {
    handlers(h);
    *h = {
        let mut fresh = MessageHandlers::default();
        fresh
            .on::<Ping>(|tx, _, ping| Ok(bump(tx, "pinged", ping.n)?))
            .on::<ShapeB>(|_, _, _| Ok(()))
            .on_answer::<ShapeA>(|tx, _, answer| {
                if let Err(r) = answer {
                    bump(tx, &format!("refused:{}", r.code), 1)?;
                }
                Ok(())
            })
            .on_answer::<Stray>(|tx, _, answer| {
                if let Err(r) = answer {
                    bump(tx, &format!("refused:{}", r.code), 1)?;
                }
                Ok(())
            })
            .on_answer::<Ping>(|tx, ping, answer| {
                if let Err(r) = answer {
                    bump(tx, &format!("refused:{}", r.code), 1)?;
                    bump(tx, "refused_amount", ping.n)?;
                }
                Ok(())
            });
        fresh
    };
}

/// Like `handlers`, plus votes taken by the app store `app:things` (and
/// by no user store).
fn handlers_with_votes(h: &mut MessageHandlers) {
    handlers(h);
    h.on_in::<Vote>(StoreKind::App("things".into()), |tx, env, vote| {
        bump(tx, &format!("vote:{}:{}", env.from, vote.choice), 1)?;
        Ok(())
    })
    .on_answer::<Vote>(|tx, _, answer| {
        match answer {
            Ok(()) => bump(tx, "vote_counted", 1)?,
            Err(r) => bump(tx, &format!("vote_refused:{}", r.code), 1)?,
        };
        Ok(())
    });
}

fn tally(tx: &Tx<'_>, what: &str) -> mantle_store::Result<i64> {
    Ok(tx
        .query::<Tally>()
        .filter(Tally::WHAT.eq(what))
        .first()?
        .map_or(0, |t| t.n))
}

async fn read_tally(store: &Store, what: &str) -> i64 {
    let what = what.to_string();
    store
        .read(move |r| {
            mantle_store::ok(
                r.query::<Tally>()
                    .filter(Tally::WHAT.eq(what.as_str()))
                    .first()?
                    .map_or(0, |t| t.n),
            )
        })
        .await
        .unwrap()
}

async fn eventually(store: &Store, what: &str, want: i64) {
    for _ in 0..400 {
        if read_tally(store, what).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{what} never reached {want} (is {})",
        read_tally(store, what).await
    );
}

/// Waits until `store` has `want` parked messages; returns them.
async fn parked_eventually(store: &Store, want: usize) -> Vec<mantle_store::OutboxEntry> {
    for _ in 0..400 {
        let parked: Vec<_> = store
            .outbox()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.parked)
            .collect();
        if parked.len() == want {
            return parked;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never {want} parked messages: {:?}", store.outbox().await);
}

async fn site(dir: &std::path::Path, h: mantle_site::MessageRegistration) -> Site {
    let config = SiteConfig {
        domain: "example.com".into(),
        signup: mantle_site::SignupConfig {
            policy: SignupPolicy::Admin,
            ..Default::default()
        },
        ..SiteConfig::default()
    };
    let site = Site::builder(dir)
        .with(types)
        .messages(h)
        .init(config)
        .await
        .unwrap();
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();
    site
}

/// A site with the app store `app:things` and the users alice and bob.
async fn site_with_things(dir: &std::path::Path, h: mantle_site::MessageRegistration) -> Site {
    let site = Site::builder(dir)
        .with(types)
        .messages(h)
        .app("things")
        .init(SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        })
        .await
        .unwrap();
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();
    site
}

async fn store_of(site: &Site, login: &str) -> Store {
    let id = site.accounts().get(login).await.unwrap().id;
    site.stores().user_store_unchecked(id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_applied_once_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let alice = store_of(&site, "alice").await;
    let bob = store_of(&site, "bob").await;
    for n in 1..=20 {
        alice
            .transact(move |tx| {
                tx.send("bob@example.com", &Ping { n })?;
                tx.send("bob", &Note { text: "hi".into() })
            })
            .await
            .unwrap();
    }
    eventually(&bob, "pinged", (1..=20).sum()).await;
    eventually(&alice, "answered", 20).await;
    eventually(&bob, "note:hi", 20).await;
    assert_eq!(read_tally(&alice, "last_total").await, 210);
    // Nothing is left waiting in either outbox.
    for _ in 0..200 {
        if alice.outbox().await.unwrap().is_empty() && bob.outbox().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(alice.outbox().await.unwrap().is_empty());
    assert!(bob.outbox().await.unwrap().is_empty());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_a_rolled_back_transaction_is_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let alice = store_of(&site, "alice").await;
    let bob = store_of(&site, "bob").await;
    let refused: Result<(), mantle_store::Error> = alice
        .transact(|tx| {
            tx.send("bob", &Ping { n: 1000 })?;
            Err(mantle_store::Error::NotRegistered("rolled back on purpose"))
        })
        .await;
    assert!(refused.is_err());
    // A later message overtakes nothing: once it has arrived, the first
    // would have too.
    alice
        .transact(|tx| tx.send("bob", &Ping { n: 1 }))
        .await
        .unwrap();
    eventually(&alice, "answered", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read_tally(&bob, "pinged").await, 1);
    assert!(alice.outbox().await.unwrap().is_empty());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_undeliverable_messages_come_back_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers_without_stray).await;
    let alice = store_of(&site, "alice").await;
    site.accounts().create("carol", PW, false).await.unwrap();
    site.accounts().set_disabled("carol", true).await.unwrap();
    alice
        .transact(|tx| {
            tx.send("nobody@example.com", &Ping { n: 5 })?;
            tx.send("carol", &Ping { n: 7 })?;
            tx.send("bob", &Stray)?;
            tx.send("bob", &ShapeA { text: "x".into() })?;
            tx.send("not an address!", &Ping { n: 11 })
        })
        .await
        .unwrap();
    eventually(&alice, "refused:NO_SUCH_RECIPIENT", 2).await;
    eventually(&alice, "refused:RECIPIENT_DISABLED", 1).await;
    eventually(&alice, "refused:NO_HANDLER", 1).await;
    eventually(&alice, "refused:UNDECODABLE", 1).await;
    assert_eq!(read_tally(&alice, "refused_amount").await, 5 + 7 + 11);
    // Each is parked in alice's outbox with its reason.
    let parked = alice.outbox().await.unwrap();
    assert_eq!(parked.len(), 5, "{parked:?}");
    assert!(parked.iter().all(|e| e.parked));
    assert!(
        parked
            .iter()
            .any(|e| e.last_error.as_deref().unwrap_or("").contains("NO_HANDLER"))
    );
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_refusals_are_answered_and_undo_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let alice = store_of(&site, "alice").await;
    let bob = store_of(&site, "bob").await;
    alice
        .transact(|tx| tx.send("bob", &Ping { n: -3 }))
        .await
        .unwrap();
    eventually(&alice, "refused:NEGATIVE", 1).await;
    assert_eq!(read_tally(&bob, "pinged").await, 0);
    // Answered, not parked: the outbox empties.
    for _ in 0..200 {
        if alice.outbox().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(alice.outbox().await.unwrap().is_empty());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_at_a_restart_are_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let alice = store_of(&site, "alice").await;
    // Queue messages, then close before they can all go.
    for n in 1..=10 {
        alice
            .transact(move |tx| tx.send("bob", &Ping { n }))
            .await
            .unwrap();
    }
    site.close().await;
    drop(alice);
    let site = Site::builder(dir.path())
        .with(types)
        .messages(handlers)
        .open()
        .await
        .unwrap();
    site.start().await.unwrap(); // starts the sweep that wakes stores with work
    let alice = store_of(&site, "alice").await;
    let bob = store_of(&site, "bob").await;
    eventually(&bob, "pinged", 55).await;
    eventually(&alice, "answered", 10).await;
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_collates_one_answer_per_user_store() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    for i in 0..40 {
        let acc = site
            .accounts()
            .create(&format!("user{i}"), PW, false)
            .await
            .unwrap();
        let store = site.stores().user_store_unchecked(acc.id).await.unwrap();
        store
            .transact(move |tx| bump(tx, "items", i))
            .await
            .unwrap();
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = site
        .accounts()
        .fanout(
            8,
            |n, total| {
                assert!(n <= total);
                done.store(n, std::sync::atomic::Ordering::Relaxed);
            },
            |_, store| async move { Ok(read_tally(&store, "items").await as u64) },
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 42, "40 users plus alice and bob");
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 42);
    assert_eq!(
        mantle_site::sum_results(&results).unwrap(),
        (0..40).sum::<i64>() as u64
    );
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_and_app_stores_take_only_messages_declared_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with_things(dir.path(), handlers_with_votes).await;
    let alice = site.accounts().get("alice").await.unwrap();
    let bob = store_of(&site, "bob").await;
    let alice_store = site.stores().user_store_unchecked(alice.id).await.unwrap();
    let app = site.stores().app_store("things").await.unwrap();
    match site.stores().app_store("undeclared").await {
        Err(SiteError::NoSuchAppStore(name)) => assert_eq!(name, "undeclared"),
        other => panic!("{other:?}"),
    }

    // Pings are handled in user stores only: refused at the site and the
    // app, answered as refusals (alice undoes her side), parked.
    alice_store
        .transact(|tx| {
            tx.send("site", &Ping { n: 5 })?;
            tx.send("app:things", &Ping { n: 7 })?;
            tx.send("site", &Note { text: "hi".into() })?;
            tx.send("app:things", &Note { text: "hi".into() })?;
            // Votes go to the app store only.
            tx.send(
                "app:things",
                &Vote {
                    choice: "yes".into(),
                },
            )?;
            tx.send(
                "bob",
                &Vote {
                    choice: "no".into(),
                },
            )?;
            tx.send(
                "site",
                &Vote {
                    choice: "no".into(),
                },
            )
        })
        .await
        .unwrap();
    let code = |what: &str| format!("{what}:{NO_HANDLER}");
    eventually(&alice_store, &code("refused"), 2).await;
    eventually(&alice_store, &code("vote_refused"), 2).await;
    eventually(&alice_store, "vote_counted", 1).await;
    assert_eq!(read_tally(&alice_store, "refused_amount").await, 5 + 7);
    let from = format!("account:{}", alice.id.raw());
    assert_eq!(read_tally(&app, &format!("vote:{from}:yes")).await, 1);
    assert_eq!(read_tally(&bob, &format!("vote:{from}:no")).await, 0);
    // Two pings, two notes (one-way: parked without an answer), two votes.
    let parked = parked_eventually(&alice_store, 6).await;
    assert_eq!(parked.len(), 6, "{parked:?}");
    assert!(
        parked
            .iter()
            .all(|e| e.last_error.as_deref().unwrap_or("").contains(NO_HANDLER)),
        "{parked:?}"
    );
    assert!(
        parked.iter().any(|e| e
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("test.ping in the site store")),
        "{parked:?}"
    );

    // Nothing was written where the messages were refused: no tally, no
    // receipt at the site; at the app, only the vote's.
    let written = |store: Store| async move {
        store
            .read(|r| {
                mantle_store::ok((r.query::<Tally>().count()?, r.query::<Receipt>().count()?))
            })
            .await
            .unwrap()
    };
    assert_eq!(written(site.stores().site_store().clone()).await, (0, 0));
    assert_eq!(written(app.clone()).await, (1, 1));
    assert_eq!(written(bob.clone()).await, (0, 0));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_that_no_longer_decodes_is_reported_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let alice = store_of(&site, "alice").await;
    alice
        .transact(|tx| tx.send("nobody@example.com", &Ping { n: 1 }))
        .await
        .unwrap();
    let parked = parked_eventually(&alice, 1).await;
    let id = site.messaging().parked().await.unwrap()[0].id.clone();
    // The row's payload damaged on disk (a bad restore, say).
    let conn = rusqlite::Connection::open(alice.path()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute(
        "UPDATE mantle_outbox SET payload = 'not json' WHERE id = ?1",
        [parked[0].id.raw()],
    )
    .unwrap();
    match site.messaging().retry(&id).await {
        Err(SiteError::Damaged { what, .. }) => assert!(what.contains(&id), "{what}"),
        other => panic!("{other:?}"),
    }
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_failure_names_the_store_it_happened_in() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path(), handlers).await;
    let results = vec![
        mantle_site::FanoutResult {
            account: site.accounts().get("alice").await.unwrap(),
            result: Ok(2u64),
        },
        mantle_site::FanoutResult {
            account: site.accounts().get("bob").await.unwrap(),
            result: Err(SiteError::NoSuchSlate("x".into())),
        },
    ];
    match mantle_site::sum_results(&results) {
        Err(SiteError::FanoutFailed { account, reason }) => {
            assert_eq!(account, "bob@example.com");
            assert!(reason.contains("no slate 'x'"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_carries_the_sending_accounts_primary_login() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with_things(dir.path(), handlers).await;
    // A second login is not the primary one: the envelope names the primary.
    site.accounts()
        .add_login("alice", "ally@example.com")
        .await
        .unwrap();
    let alice = site.accounts().get("alice").await.unwrap();
    let alice_store = store_of(&site, "alice").await;
    let bob = store_of(&site, "bob").await;
    let app = site.stores().app_store("things").await.unwrap();
    for from in [&alice_store, site.stores().site_store(), &app] {
        from.transact(|tx| tx.send("bob", &Note { text: "hi".into() }).map(|_| ()))
            .await
            .unwrap();
    }
    let alice_from = format!("account:{}", alice.id.raw());
    eventually(
        &bob,
        &format!("note_from:{alice_from}:alice@example.com"),
        1,
    )
    .await;
    eventually(&bob, "note_from:site:-", 1).await;
    eventually(&bob, "note_from:app:things:-", 1).await;
    site.close().await;
}
