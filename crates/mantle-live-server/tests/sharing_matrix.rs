//! The sharing matrix: every viewer × every operation × every transport,
//! each cell asserted against the answer it must get.
//!
//! Viewers: the owner (Alice), a user the item is shared with for read
//! (Bob), one shared with for edit (Carol), a member of a group shared
//! with for edit and delete (Dave), another user (Erin), and an anonymous
//! visitor. Operations: read, edit, delete, and an unknown share id.
//! Transports: HTTP (the Shoji API), a live command on a handle, a live
//! observation, and an interstore message. Every refusal must be the same
//! answer as for the unknown share id (the share id aside), so nobody
//! learns what exists.
//!
//! Over live connections anonymous visitors are not served at all
//! (`UNAUTHORIZED`); an anonymous message is one from the site store.

#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mantle_client::{CallError, Client, ModelEvent};
use mantle_live::{Empty, Handle, NoError, arguments, codes};
use mantle_live_server::{
    Failure, Live, LiveOffering, ObjectCommands, OrFail, SharedItem, item_model,
};
use mantle_site::sharing::{DELETE, EDIT, Identifier, READ, Role, SendToShare, ShareItems};
use mantle_site::{Account, Message, MessageHandlers, Offering, Refusal, Scope, SiteError};
use mantle_store::{Id, Item, Registry, Store, Tx};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(20);
const ALICE: &str = "alice@example.com";

/// The shared item.
#[derive(Item, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[item(name = "matrix_doc", version = 1)]
pub struct Doc {
    pub title: String,
}

/// What came back to a message's sender: `ok` or `refused:CODE:MESSAGE`.
#[derive(Item, Debug, Clone)]
#[item(name = "matrix_outcome", version = 1)]
pub struct Outcome {
    #[item(index)]
    pub key: String,
    pub result: String,
}

fn types(r: &mut Registry) {
    r.register::<Doc>().register::<Outcome>();
}

// --- live -----------------------------------------------------------------

arguments! {
    pub struct OpenArgs { pub owner: String, pub share_id: String }
    pub struct OpenAnswer { pub handle: Handle }
    pub struct Title { pub title: String }
}
mantle_live::command!(pub OpenDoc, OpenArgs, OpenAnswer, NoError);
mantle_live::command!(pub ReadDoc, Empty, Title, NoError);
mantle_live::command!(pub WriteDoc, Title, Empty, NoError);
mantle_live::command!(pub DeleteDoc, Empty, Empty, NoError);

fn doc_of(
    tx: &Tx,
    grant: &mantle_site::sharing::Grant,
) -> Result<mantle_store::Stored<Doc>, Failure<NoError>> {
    let id = grant.item::<Doc>().or_fail()?;
    tx.get(id)
        .or_fail()?
        .ok_or_else(|| Failure::internal("gone"))
}

fn live(live: &mut Live) {
    let commands = Arc::new(
        ObjectCommands::<SharedItem>::new()
            .on_share::<ReadDoc, _>(READ, |tx, grant, _| {
                Ok(Title {
                    title: doc_of(tx, grant)?.title.clone(),
                })
            })
            .on_share::<WriteDoc, _>(EDIT, |tx, grant, args| {
                let mut doc = doc_of(tx, grant)?;
                doc.title = args.title.clone();
                tx.update(&mut doc).or_fail()?;
                mantle_live_server::publish(tx, &item_model("doc", doc.id()), &args.title)
                    .or_fail()?;
                Ok(Empty {})
            })
            .on_share::<DeleteDoc, _>(DELETE, |tx, grant, _| {
                let id = grant.item::<Doc>().or_fail()?;
                tx.unshare_item(id).or_fail()?;
                tx.delete(id).or_fail()?;
                Ok(Empty {})
            }),
    );
    live.command::<OpenDoc, _, _>(move |caller, args| {
        let commands = commands.clone();
        async move {
            let item = caller.open_shared(&args.owner, &args.share_id).await?;
            Ok(OpenAnswer {
                handle: caller.publish(Arc::new(item), commands)?,
            })
        }
    })
    .shared_model::<Doc, _>("doc", |r, id| {
        Ok(serde_json::json!({ "title": r.get(id)?.map(|d| d.title.clone()) }))
    });
}

// --- messages -------------------------------------------------------------

#[derive(Serialize, Deserialize)]
pub struct DocMessage {
    pub key: String,
    pub op: String,
}
macro_rules! doc_message {
    ($name:ident, $type:literal) => {
        #[derive(Serialize, Deserialize)]
        pub struct $name(pub DocMessage);
        impl Message for $name {
            const TYPE: &'static str = $type;
            type Answer = ();
        }
    };
}
doc_message!(ReadMsg, "matrix.read");
doc_message!(EditMsg, "matrix.edit");
doc_message!(DeleteMsg, "matrix.delete");

fn answered(tx: &mut Tx, m: &DocMessage, result: Result<(), Refusal>) -> mantle_store::Result<()> {
    let result = match result {
        Ok(()) => "ok".to_string(),
        Err(r) => format!("refused:{}:{}", r.code, r.message),
    };
    tx.insert(&Outcome {
        key: m.key.clone(),
        result,
    })?;
    Ok(())
}

fn messages(h: &mut MessageHandlers) {
    h.on_shared::<ReadMsg>(READ, |tx, _, grant, _| {
        tx.get(grant.item::<Doc>()?)?;
        Ok(())
    })
    .on_shared::<EditMsg>(EDIT, |tx, _, grant, _| {
        let id = grant.item::<Doc>()?;
        let mut doc = tx.get(id)?.ok_or_else(|| Refusal::new("GONE", "gone"))?;
        doc.title = "edited by message".into();
        tx.update(&mut doc)?;
        Ok(())
    })
    .on_shared::<DeleteMsg>(DELETE, |tx, _, grant, _| {
        let id = grant.item::<Doc>()?;
        tx.unshare_item(id)?;
        tx.delete(id)?;
        Ok(())
    })
    .on_answer::<ReadMsg>(|tx, m, r| answered(tx, &m.0, r))
    .on_answer::<EditMsg>(|tx, m, r| answered(tx, &m.0, r))
    .on_answer::<DeleteMsg>(|tx, m, r| answered(tx, &m.0, r));
}

fn offering() -> Offering {
    Offering::new("docs", 1)
        .items(Scope::User, types)
        .shareable::<Doc>()
        .messages(messages)
        .live(live)
}

// --- the matrix -----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Reader,
    Editor,
    Member,
    Other,
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Edit,
    Delete,
    Unknown,
}

const WHO: [Who; 6] = [
    Who::Owner,
    Who::Reader,
    Who::Editor,
    Who::Member,
    Who::Other,
    Who::Anonymous,
];
const OPS: [Op; 4] = [Op::Read, Op::Edit, Op::Delete, Op::Unknown];

impl Who {
    fn login(self) -> Option<&'static str> {
        match self {
            Who::Owner => Some("alice"),
            Who::Reader => Some("bob"),
            Who::Editor => Some("carol"),
            Who::Member => Some("dave"),
            Who::Other => Some("erin"),
            Who::Anonymous => None,
        }
    }

    /// Whether `self` may do `op` on a cell's document.
    fn may(self, op: Op) -> bool {
        match (self, op) {
            (_, Op::Unknown) => false,
            (Who::Owner, _) => true,
            (Who::Reader, Op::Read) => true,
            (Who::Editor, Op::Read | Op::Edit) => true,
            (Who::Member, Op::Read | Op::Edit | Op::Delete) => true,
            _ => false,
        }
    }

    fn may_read(self) -> bool {
        self.may(Op::Read)
    }
}

struct World {
    t: TestSite,
    alice: Store,
    ids: std::collections::HashMap<&'static str, Id<Account>>,
    http: reqwest::Client,
    tokens: std::collections::HashMap<&'static str, String>,
    /// One live client per viewer (logging in for every cell would hit
    /// the login guard); anonymous's is not logged in.
    clients: Vec<(Who, Client)>,
    cell: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn new() -> World {
        let t = TestSite::start_program(|_| {}, |b| b.offering(offering())).await;
        t.site.offerings().install("docs").await.unwrap();
        let mut ids = std::collections::HashMap::new();
        let mut tokens = std::collections::HashMap::new();
        for who in ["carol", "dave", "erin"] {
            t.site
                .accounts()
                .create(who, PASSWORD, false)
                .await
                .unwrap();
        }
        for who in ["alice", "bob", "carol", "dave", "erin"] {
            ids.insert(who, t.site.accounts().get(who).await.unwrap().id);
            let token = t
                .site
                .auth()
                .login(&format!("{who}@example.com"), PASSWORD, "matrix")
                .await
                .unwrap();
            tokens.insert(who, token.token);
        }
        let alice = t.alice_store().await;
        let dave = ids["dave"];
        alice
            .transact(move |tx| {
                tx.create_group("team")?;
                tx.add_member("team", &Role::account(dave))?;
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        let mut clients = Vec::new();
        for who in WHO {
            let mut o = mantle_client::ClientOptions::new(t.amp_addr.to_string());
            if let Some(login) = who.login() {
                o = o.login(format!("{login}@example.com"), PASSWORD);
            }
            clients.push((who, Client::connect(o).await.unwrap()));
        }
        World {
            t,
            alice,
            ids,
            http: reqwest::Client::new(),
            tokens,
            clients,
            cell: Default::default(),
        }
    }

    /// A fresh document for one cell, shared as the matrix says: its share
    /// id and its id.
    async fn cell(&self) -> (String, Id<Doc>) {
        let n = self.cell.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sid = format!("doc{n}");
        let (bob, carol) = (self.ids["bob"], self.ids["carol"]);
        let s = sid.clone();
        self.alice
            .transact(move |tx| {
                let doc = tx.insert(&Doc {
                    title: format!("doc {n}"),
                })?;
                tx.share(doc, &Role::account(bob), &[], Some(&s))?;
                tx.share(doc, &Role::account(carol), &[EDIT], Some(&s))?;
                tx.share(doc, &Role::group("team")?, &[EDIT, DELETE], Some(&s))?;
                Ok::<_, SiteError>(doc)
            })
            .await
            .map(|doc| (sid, doc))
            .unwrap()
    }

    fn target(&self, op: Op, sid: &str) -> String {
        match op {
            Op::Unknown => format!("nope-{sid}"),
            _ => sid.to_string(),
        }
    }

    fn client(&self, who: Who) -> &Client {
        &self.clients.iter().find(|(w, _)| *w == who).unwrap().1
    }

    /// HTTP: what the Shoji API answers, as (allowed, normalised body).
    async fn http(&self, who: Who, op: Op) -> (bool, String) {
        let (sid, _) = self.cell().await;
        let target = self.target(op, &sid);
        let url = format!("http://{}/api/shoji/users/{ALICE}/{target}", self.t.http);
        let mut req = match op {
            Op::Read | Op::Unknown => self.http.get(&url),
            Op::Edit => self
                .http
                .put(&url)
                .json(&serde_json::json!({"element": "shoji:entity", "body": {"title": "edited"}})),
            Op::Delete => self.http.delete(&url),
        };
        if let Some(login) = who.login() {
            req = req.bearer_auth(&self.tokens[login]);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        match status {
            200 | 204 => (true, String::new()),
            404 => (false, body.replace(&target, "ID")),
            other => panic!("{who:?} {op:?} over HTTP: unexpected {other}: {body}"),
        }
    }

    /// A live command on a handle: (allowed, code of the refusal).
    async fn command(&self, who: Who, op: Op) -> (bool, String) {
        let (sid, _) = self.cell().await;
        let target = self.target(op, &sid);
        let c = self.client(who);
        let open = OpenArgs {
            owner: ALICE.into(),
            share_id: target,
        };
        let r = match c.reference::<OpenDoc>(open, "handle").await {
            Ok(r) => r,
            Err(e) => return (false, code::<(), _>(Err(e))),
        };
        let done = match op {
            Op::Read | Op::Unknown => r.call::<ReadDoc>(Empty {}).await.map(|_| ()),
            Op::Edit => r
                .call::<WriteDoc>(Title {
                    title: "edited live".into(),
                })
                .await
                .map(|_| ()),
            Op::Delete => r.call::<DeleteDoc>(Empty {}).await.map(|_| ()),
        };
        match done {
            Ok(()) => (true, String::new()),
            Err(e) => (false, code::<(), _>(Err(e))),
        }
    }

    /// A live observation: read = observing; edit = the owner's change
    /// reaches the observer; delete = withdrawing the share ends it.
    async fn observe(&self, who: Who, op: Op) -> (bool, String) {
        let (sid, id) = self.cell().await;
        let target = self.target(op, &sid);
        let model = format!("doc:{ALICE}/{target}");
        let c = self.client(who);
        let mut sub = match c.observe(&model).await {
            Ok(s) => s,
            Err(e) => return (false, code::<(), _>(Err(e))),
        };
        let ModelEvent::Snapshot { value, .. } = next(&mut sub).await else {
            panic!("{who:?}: a snapshot first")
        };
        assert!(value["title"].is_string());
        match op {
            Op::Read | Op::Unknown => (true, String::new()),
            Op::Edit => {
                self.alice
                    .transact(move |tx| {
                        let mut doc = tx.get(id)?.unwrap();
                        doc.title = "changed by alice".into();
                        tx.update(&mut doc)?;
                        mantle_live_server::publish(tx, &item_model("doc", id), &"changed")?;
                        mantle_store::ok(())
                    })
                    .await
                    .unwrap();
                match next(&mut sub).await {
                    ModelEvent::Delta { .. } => (true, String::new()),
                    other => panic!("{who:?}: expected the delta, got {other:?}"),
                }
            }
            Op::Delete => {
                let s = sid.clone();
                self.alice
                    .transact(move |tx| tx.unshare(&s, None))
                    .await
                    .unwrap();
                match next(&mut sub).await {
                    ModelEvent::Ended { code, .. } => (true, code),
                    other => panic!("{who:?}: expected the end, got {other:?}"),
                }
            }
        }
    }

    /// An interstore message to the share: (allowed, normalised refusal).
    async fn message(&self, who: Who, op: Op) -> (bool, String) {
        let (sid, _) = self.cell().await;
        let target = self.target(op, &sid);
        let store = match who.login() {
            Some(login) => self
                .t
                .site
                .stores()
                .user_store_unchecked(self.ids[login])
                .await
                .unwrap(),
            None => self.t.site.stores().site_store().clone(),
        };
        let key = format!("{who:?}-{op:?}-{sid}");
        let m = DocMessage {
            key: key.clone(),
            op: format!("{op:?}"),
        };
        let to = Identifier {
            owner: ALICE.into(),
            share_id: target.clone(),
        };
        store
            .transact(move |tx| match op {
                Op::Read | Op::Unknown => tx.send_to_share(&to, &ReadMsg(m)),
                Op::Edit => tx.send_to_share(&to, &EditMsg(m)),
                Op::Delete => tx.send_to_share(&to, &DeleteMsg(m)),
            })
            .await
            .unwrap();
        let result = tokio::time::timeout(WAIT, async {
            loop {
                let k = key.clone();
                let found = store
                    .read(move |r| {
                        r.query::<Outcome>()
                            .filter(Outcome::KEY.eq(k.as_str()))
                            .first()
                    })
                    .await
                    .unwrap();
                if let Some(o) = found {
                    return o.into_inner().result;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("an answer in time");
        if result == "ok" {
            (true, String::new())
        } else {
            (false, result.replace(&target, "ID"))
        }
    }
}

async fn next(sub: &mut mantle_client::Subscription) -> ModelEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("the client is alive")
}

fn code<T, E: Serialize + std::fmt::Debug>(r: Result<T, CallError<E>>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(CallError::Command(e)) => serde_json::to_value(&e).unwrap()["code"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        Err(e) => e.code().unwrap_or("?").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_viewer_operation_and_transport_gets_its_answer() {
    let w = World::new().await;
    let mut cells = 0;
    for via in ["http", "command", "observe", "message"] {
        // The refusal for the unknown share id, which every refusal on
        // this transport must equal.
        let mut refusals: Vec<(Who, Op, String)> = Vec::new();
        for who in WHO {
            for op in OPS {
                let (allowed, refusal) = match via {
                    "http" => w.http(who, op).await,
                    "command" => w.command(who, op).await,
                    "observe" => w.observe(who, op).await,
                    _ => w.message(who, op).await,
                };
                cells += 1;
                let live = via == "command" || via == "observe";
                let want = match (via, op) {
                    // An observation: read, see a change, or be ended by a
                    // withdrawal — whoever may read.
                    ("observe", Op::Read | Op::Edit | Op::Delete) => who.may_read(),
                    _ => who.may(op),
                };
                let want = want && !(live && who == Who::Anonymous);
                assert_eq!(allowed, want, "{who:?} × {op:?} × {via}: {refusal}");
                if live && who == Who::Anonymous {
                    assert_eq!(refusal, codes::UNAUTHORIZED, "anonymous × {op:?} × {via}");
                    continue;
                }
                if via == "observe" && op == Op::Delete && allowed {
                    assert_eq!(refusal, codes::NOT_FOUND, "{who:?}: the end's code");
                    continue;
                }
                if !allowed {
                    refusals.push((who, op, refusal));
                }
            }
        }
        let unknown = refusals
            .iter()
            .find(|(_, op, _)| *op == Op::Unknown)
            .map(|(_, _, r)| r.clone())
            .unwrap();
        for (who, op, r) in &refusals {
            assert_eq!(
                r, &unknown,
                "{who:?} × {op:?} × {via}: a refusal unlike the unknown share's"
            );
        }
    }
    assert_eq!(cells, 6 * 4 * 4);
}
