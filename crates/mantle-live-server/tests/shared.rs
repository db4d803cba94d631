//! Other users' items over live connections: a handle to a shared item
//! does only what the share grants, a shared model is observed through
//! its share, and withdrawing the share refuses the handle's next call
//! and ends the observation with `NOT_FOUND`.

#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mantle_client::{CallError, Client, ModelEvent};
use mantle_live::{Handle, NoError, arguments, codes};
use mantle_live_server::{Failure, Live, ObjectCommands, OrFail, SharedItem, item_model};
use mantle_site::sharing::{EDIT, READ, Role, ShareItems};
use mantle_store::Id;

const WAIT: Duration = Duration::from_secs(20);

arguments! {
    pub struct OpenArgs { pub owner: String, pub share_id: String }
    pub struct OpenAnswer { pub handle: Handle }
    pub struct Text { pub text: String, pub revision: i64 }
    pub struct Revision { pub revision: i64 }
}

mantle_live::command!(pub OpenSharedNote, OpenArgs, OpenAnswer, NoError);
mantle_live::command!(pub ReadNote, mantle_live::Empty, Text, NoError);
mantle_live::command!(pub WriteNote, Text, Revision, NoError);

fn declare(live: &mut Live) {
    let commands = Arc::new(
        ObjectCommands::<SharedItem>::new()
            .on_share::<ReadNote, _>(READ, |tx, grant, _| {
                let note = tx
                    .get(grant.item::<Note>().or_fail()?)
                    .or_fail()?
                    .ok_or_else(|| Failure::internal("gone"))?;
                Ok(Text {
                    text: note.text.clone(),
                    revision: note.revision(),
                })
            })
            .on_share::<WriteNote, _>(EDIT, |tx, grant, args| {
                let id = grant.item::<Note>().or_fail()?;
                let mut note = tx
                    .get(id)
                    .or_fail()?
                    .ok_or_else(|| Failure::internal("gone"))?;
                note.text = args.text.clone();
                tx.update(&mut note).or_fail()?;
                mantle_live_server::publish(tx, &item_model("note", id), &args.text).or_fail()?;
                Ok(Revision {
                    revision: note.revision(),
                })
            }),
    );
    live.command::<OpenSharedNote, _, _>(move |caller, args| {
        let commands = commands.clone();
        async move {
            let item = caller.open_shared(&args.owner, &args.share_id).await?;
            let handle = caller.publish(Arc::new(item), commands)?;
            Ok(OpenAnswer { handle })
        }
    })
    .shared_model::<Note, _>("note", |r, id| {
        Ok(serde_json::json!({ "text": r.get(id)?.map(|n| n.text.clone()) }))
    });
}

async fn bob(t: &TestSite) -> Client {
    let mut o = t.client_options();
    o = o.login("bob@example.com", PASSWORD);
    Client::connect(o).await.unwrap()
}

async fn next(sub: &mut mantle_client::Subscription) -> ModelEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("the client is alive")
}

fn code<E: serde::Serialize + std::fmt::Debug>(
    r: Result<impl std::fmt::Debug, CallError<E>>,
) -> String {
    match r {
        Err(CallError::Command(e)) => serde_json::to_value(&e).unwrap()["code"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        Err(e) => e.code().unwrap_or("?").to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[tokio::test]
async fn a_share_limits_a_handle_and_its_withdrawal_ends_the_observation() {
    let t = TestSite::start_program(|_| {}, |b| b.extension::<Live>(declare)).await;
    let bob_id = t.site.accounts().get("bob").await.unwrap().id;
    let store = t.alice_store().await;
    let note = store
        .transact(move |tx| {
            let id = tx.insert(&Note {
                text: "hello".into(),
            })?;
            tx.share(id, &Role::account(bob_id), &[], Some("n1"))?;
            tx.insert(&Note {
                text: "private".into(),
            })?;
            Ok::<_, mantle_site::SiteError>(id)
        })
        .await
        .unwrap();
    let c = bob(&t).await;
    let open = |share: &str| OpenArgs {
        owner: "alice@example.com".into(),
        share_id: share.into(),
    };

    // Read through the share; writing is refused, as an unknown share is.
    let r = c
        .reference::<OpenSharedNote>(open("n1"), "handle")
        .await
        .unwrap();
    let text = r.call::<ReadNote>(mantle_live::Empty {}).await.unwrap();
    assert_eq!(text.text, "hello");
    let denied = r
        .call::<WriteNote>(Text {
            text: "bob was here".into(),
            revision: 1,
        })
        .await;
    assert_eq!(code(denied), codes::NOT_FOUND);
    let unknown = c.call::<OpenSharedNote>(open("nope")).await;
    assert_eq!(code(unknown), codes::NOT_FOUND);
    let nobody = c
        .call::<OpenSharedNote>(OpenArgs {
            owner: "nobody@example.com".into(),
            share_id: "n1".into(),
        })
        .await;
    assert_eq!(code(nobody), codes::NOT_FOUND);

    // Observed through the share; the owner's own name for it is hers only.
    let mut sub = c.observe("note:alice@example.com/n1").await.unwrap();
    let ModelEvent::Snapshot { value, .. } = next(&mut sub).await else {
        panic!("a snapshot first")
    };
    assert_eq!(value["text"], "hello");
    let by_id = c
        .observe(&format!("note:alice@example.com/#{}", note.raw()))
        .await;
    assert_eq!(code(by_id.map(|_| ())), codes::NO_SUCH_MODEL);
    let unknown = c.observe("note:alice@example.com/nope").await;
    assert_eq!(code(unknown.map(|_| ())), codes::NO_SUCH_MODEL);

    // Granted edit: the write goes through and the observer sees it.
    store
        .transact(move |tx| tx.share(note, &Role::account(bob_id), &[EDIT], Some("n1")))
        .await
        .unwrap();
    let saved = r
        .call::<WriteNote>(Text {
            text: "edited by bob".into(),
            revision: 1,
        })
        .await
        .unwrap();
    assert_eq!(saved.revision, 2);
    let ModelEvent::Delta { value, .. } = next(&mut sub).await else {
        panic!("a delta")
    };
    assert_eq!(value, "edited by bob");

    // Withdrawn: the observation ends — before any change committed after
    // the withdrawal could reach it — the handle refuses, observing again
    // is refused.
    store
        .transact(move |tx| {
            // In one transaction: the change is committed with the
            // withdrawal, and must not reach Bob.
            tx.unshare("n1", None)?;
            let mut n = tx.get(note)?.unwrap();
            n.text = "after the withdrawal".into();
            tx.update(&mut n)?;
            mantle_live_server::publish(tx, &item_model("note", note), &"after the withdrawal")?;
            Ok::<_, mantle_site::SiteError>(())
        })
        .await
        .unwrap();
    match next(&mut sub).await {
        ModelEvent::Ended { code, .. } => assert_eq!(code, codes::NOT_FOUND),
        other => panic!("expected the end, got {other:?}"),
    }
    let after = r.call::<ReadNote>(mantle_live::Empty {}).await;
    assert_eq!(code(after), codes::NOT_FOUND);
    let again = c.observe("note:alice@example.com/n1").await;
    assert_eq!(code(again.map(|_| ())), codes::NO_SUCH_MODEL);

    // The owner observes her own item by id.
    let a = Client::connect(t.client_options()).await.unwrap();
    let mut own = a
        .observe(&format!("note:alice@example.com/#{}", note.raw()))
        .await
        .unwrap();
    assert!(matches!(next(&mut own).await, ModelEvent::Snapshot { .. }));
    let _ = Id::<Note>::from_raw(0);
}
