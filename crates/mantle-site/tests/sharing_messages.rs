//! Messages addressed to shared items: applied once if the sender holds
//! the access the handler needs, checked in the receiving transaction;
//! otherwise answered with one refusal, `NOT_FOUND`, whether the share is
//! missing or merely not the sender's.

use std::time::Duration;

use mantle_site::sharing::{Identifier, NO_SUCH_SHARE, Role, SendToShare, ShareItems};
use mantle_site::{Message, MessageHandlers, SendMessage, Site, SiteConfig, SiteError};
use mantle_store::{Id, Item, Registry, Store};
use serde::{Deserialize, Serialize};

const PW: &str = "correct horse battery";

/// A document in Alice's store.
#[derive(Item, Debug, Clone)]
#[item(name = "doc", version = 1)]
struct Doc {
    title: String,
}

/// A comment on a document, made by a message.
#[derive(Item, Debug, Clone)]
#[item(name = "doc_comment", version = 1)]
struct DocComment {
    doc: i64,
    by: String,
    text: String,
}

/// What came back to a sender: `ok:TEXT` or `refused:CODE:MESSAGE`.
#[derive(Item, Debug, Clone)]
#[item(name = "outcome", version = 1)]
struct Outcome {
    text: String,
    result: String,
}

#[derive(Serialize, Deserialize)]
struct Comment {
    text: String,
}
impl Message for Comment {
    const TYPE: &'static str = "test.comment";
    type Answer = u64;
}

fn types(r: &mut Registry) {
    r.register::<Doc>()
        .register::<DocComment>()
        .register::<Outcome>();
}

fn handlers(h: &mut MessageHandlers) {
    h.on_shared::<Comment>("comment", |tx, env, grant, c| {
        tx.insert(&DocComment {
            doc: grant
                .item::<Doc>()
                .map_err(|e| mantle_site::Refusal::new("TYPE", e.to_string()))?
                .raw(),
            by: env.from.clone(),
            text: c.text,
        })?;
        Ok(tx.query::<DocComment>().count()?)
    })
    .on_answer::<Comment>(|tx, c, result| {
        let result = match result {
            Ok(n) => format!("ok:{n}"),
            Err(r) => format!("refused:{}:{}", r.code, r.message),
        };
        tx.insert(&Outcome {
            text: c.text,
            result,
        })?;
        Ok(())
    });
}

async fn store_of(site: &Site, login: &str) -> (Id<mantle_site::Account>, Store) {
    let id = site.accounts().get(login).await.unwrap().id;
    (id, site.stores().user_store_unchecked(id).await.unwrap())
}

/// Waits for the outcome of the comment `text` in `store`.
async fn outcome(store: &Store, text: &str) -> String {
    let text = text.to_string();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let t = text.clone();
            let found = store
                .read(move |r| {
                    Ok::<_, mantle_store::Error>(
                        r.query::<Outcome>()
                            .all()?
                            .into_iter()
                            .find(|o| o.text == t)
                            .map(|o| o.result.clone()),
                    )
                })
                .await
                .unwrap();
            if let Some(f) = found {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("an answer in time")
}

async fn comment(store: &Store, to: Identifier, text: &str) {
    let text = text.to_string();
    store
        .transact(move |tx| tx.send_to_share(&to, &Comment { text }))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_to_a_share_is_applied_only_with_the_access_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::builder(dir.path())
        .with(types)
        .messages(handlers)
        .init(SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        })
        .await
        .unwrap();
    for who in ["alice", "bob", "carol", "dave"] {
        site.accounts().create(who, PW, false).await.unwrap();
    }
    let (_, alice) = store_of(&site, "alice").await;
    let (bob_id, bob) = store_of(&site, "bob").await;
    let (carol_id, carol) = store_of(&site, "carol").await;
    let (dave_id, dave) = store_of(&site, "dave").await;
    // Bob may comment; Carol may only read; Dave comments through a group.
    alice
        .transact(move |tx| {
            let doc = tx.insert(&Doc {
                title: "plan".into(),
            })?;
            tx.share(doc, &Role::account(bob_id), &["comment"], Some("plan"))?;
            tx.share(doc, &Role::account(carol_id), &[], Some("plan"))?;
            let team = tx.create_group("team")?;
            tx.add_member("team", &Role::account(dave_id))?;
            tx.share(doc, &team, &["comment"], Some("plan"))?;
            Ok::<_, SiteError>(())
        })
        .await
        .unwrap();
    let plan = || Identifier {
        owner: "alice@example.com".into(),
        share_id: "plan".into(),
    };
    let nothing = || Identifier {
        owner: "alice@example.com".into(),
        share_id: "nothing".into(),
    };

    comment(&bob, plan(), "from bob").await;
    assert_eq!(outcome(&bob, "from bob").await, "ok:1");
    comment(&dave, plan(), "from dave").await;
    assert_eq!(outcome(&dave, "from dave").await, "ok:2");

    // Not permitted, and no such share: the same answer.
    comment(&carol, plan(), "from carol").await;
    let denied = outcome(&carol, "from carol").await;
    assert!(
        denied.starts_with(&format!("refused:{NO_SUCH_SHARE}:")),
        "{denied}"
    );
    comment(&bob, nothing(), "to nothing").await;
    let missing = outcome(&bob, "to nothing").await;
    assert_eq!(
        denied.replace("plan", "X"),
        missing.replace("nothing", "X"),
        "a missing share and a forbidden one answer alike"
    );
    // A message for a share, sent to the store itself: refused too.
    bob.transact(|tx| {
        tx.send(
            "alice@example.com",
            &Comment {
                text: "not to a share".into(),
            },
        )
    })
    .await
    .unwrap();
    assert!(
        outcome(&bob, "not to a share")
            .await
            .starts_with("refused:NOT_FOUND:")
    );

    // Withdrawn from the group: Dave's next comment is refused.
    alice
        .transact(move |tx| tx.remove_member("team", &Role::account(dave_id)))
        .await
        .unwrap();
    comment(&dave, plan(), "dave again").await;
    assert!(
        outcome(&dave, "dave again")
            .await
            .starts_with("refused:NOT_FOUND:")
    );

    // Exactly the two permitted comments were applied, by their senders.
    let comments = alice.read(|r| r.query::<DocComment>().all()).await.unwrap();
    let mut by: Vec<_> = comments
        .iter()
        .map(|c| (c.by.clone(), c.text.clone()))
        .collect();
    by.sort();
    assert_eq!(
        by,
        [
            (format!("account:{}", bob_id.raw()), "from bob".to_string()),
            (
                format!("account:{}", dave_id.raw()),
                "from dave".to_string()
            ),
        ]
    );
    let _ = carol_id;
    site.close().await;
}
