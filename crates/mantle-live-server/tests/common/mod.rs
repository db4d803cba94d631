//! A real site with the live layer and a small test offering, served on
//! loopback ports.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use mantle_live::{CommandError, Empty, Handle, NoError, SaveConflict, arguments};
use mantle_live_server::LiveConfig;
use mantle_live_server::{Failure, Live, ObjectCommands, OrFail};
use mantle_site::{RunningService, Site, SiteConfig};
use mantle_store::{Id, Item, ReadTx, Registry};
use mantle_web::HttpConfig;
use serde::{Deserialize, Serialize};

pub const PASSWORD: &str = "correct horse battery";

/// A note in a user's store (the observed model `notes`).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "test_note", version = 1)]
pub struct Note {
    pub text: String,
}

/// An item type the test site never registers: reading it is a store
/// error (`NotRegistered`).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "test_ghost", version = 1)]
pub struct Ghost {
    pub text: String,
}

arguments! {
    pub struct SumArgs { pub a: i64, pub b: i64 }
    pub struct SumAnswer { pub total: i64 }
    pub struct AddNoteArgs { pub text: String, pub fail: bool }
    pub struct NoteAnswer { pub id: i64, pub revision: i64 }
    pub struct EditNoteArgs { pub id: i64, pub text: String, pub revision: i64 }
    pub struct OpenCounterArgs { pub start: i64 }
    pub struct OpenCounterAnswer { pub handle: Handle }
    pub struct CounterValue { pub value: i64 }
    pub struct CountGhostsArgs { pub refuse: bool }
    pub struct CountGhostsAnswer { pub ghosts: u64 }
}

/// `CountGhosts`'s typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum GhostError {
    #[serde(rename = "REFUSED")]
    #[error("refused, as asked")]
    Refused,
}
impl CommandError for GhostError {}

mantle_live::command!(pub Sum, SumArgs, SumAnswer, NoError);
mantle_live::command!(pub AddNote, AddNoteArgs, NoteAnswer, NoError);
mantle_live::command!(pub EditNote, EditNoteArgs, NoteAnswer, SaveConflict);
mantle_live::command!(pub OpenCounter, OpenCounterArgs, OpenCounterAnswer, NoError);
mantle_live::command!(pub Increment, Empty, CounterValue, NoError);
// Counts `Ghost`s, which always fails with a store error (unless refused
// first with its typed error).
mantle_live::command!(pub CountGhosts, CountGhostsArgs, CountGhostsAnswer, GhostError);

fn refuse(refuse: bool) -> Result<(), GhostError> {
    if refuse {
        return Err(GhostError::Refused);
    }
    Ok(())
}

/// The delta published for each change of `notes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoteDelta {
    pub id: i64,
    pub text: String,
}

pub struct Counter(AtomicI64);

#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error(transparent)]
    Store(#[from] mantle_store::Error),
    #[error(transparent)]
    Conflict(#[from] SaveConflict),
    #[error("asked to fail")]
    Failed,
    #[error("no such note")]
    Missing,
}

fn register(r: &mut Registry) {
    r.register::<Note>();
}

pub fn snapshot(r: &ReadTx, _key: &str) -> mantle_store::Result<serde_json::Value> {
    let notes: Vec<_> = r
        .query::<Note>()
        .all()?
        .into_iter()
        .map(|n| serde_json::json!({"id": n.id().raw(), "text": n.text}))
        .collect();
    Ok(serde_json::json!({ "notes": notes }))
}

/// Adds a note and publishes it, in one transaction.
pub async fn add_note(store: &mantle_store::Store, text: &str) -> i64 {
    let text = text.to_string();
    store
        .transact(move |tx| {
            let id = tx.insert(&Note { text: text.clone() })?;
            mantle_live_server::publish(tx, "notes", &NoteDelta { id: id.raw(), text })?;
            mantle_store::ok(id.raw())
        })
        .await
        .unwrap()
}

fn offering(live: &mut Live) {
    let counter_commands = Arc::new(ObjectCommands::<Counter>::new().command::<Increment, _, _>(
        |_caller, counter, _args| async move {
            Ok(CounterValue {
                value: counter.0.fetch_add(1, Ordering::SeqCst) + 1,
            })
        },
    ));
    live.command::<Sum, _, _>(|_c, a| async move { Ok(SumAnswer { total: a.a + a.b }) })
        .command::<CountGhosts, _, _>(|caller, a| async move {
            // `?` on the command's own error type...
            refuse(a.refuse)?;
            // ... and, with `or_fail`, on a site error and a store error.
            let store = caller.store().await.or_fail()?;
            let ghosts = store.read(|r| r.query::<Ghost>().count()).await.or_fail()?;
            Ok(CountGhostsAnswer { ghosts })
        })
        .command::<AddNote, _, _>(|caller, a| async move {
            let store = caller.store().await.or_fail()?;
            store
                .transact(move |tx| {
                    let id = tx.insert(&Note {
                        text: a.text.clone(),
                    })?;
                    mantle_live_server::publish(
                        tx,
                        "notes",
                        &NoteDelta {
                            id: id.raw(),
                            text: a.text,
                        },
                    )?;
                    if a.fail {
                        // Rolls back: the delta must never be seen.
                        return Err(NoteError::Failed);
                    }
                    Ok(NoteAnswer {
                        id: id.raw(),
                        revision: tx.get(id)?.map_or(0, |n| n.revision()),
                    })
                })
                .await
                .or_fail()
        })
        .command::<EditNote, _, _>(|caller, a| async move {
            let store = caller.store().await.or_fail()?;
            store
                .transact(move |tx| {
                    let id = Id::<Note>::from_raw(a.id);
                    let mut note = tx.get(id)?.ok_or(NoteError::Missing)?;
                    mantle_live_server::check_revision(&note, a.revision)?;
                    note.text = a.text.clone();
                    tx.update(&mut note)?;
                    mantle_live_server::publish(
                        tx,
                        "notes",
                        &NoteDelta {
                            id: a.id,
                            text: a.text,
                        },
                    )?;
                    Ok(NoteAnswer {
                        id: a.id,
                        revision: note.revision(),
                    })
                })
                .await
                .map_err(|e| match e {
                    NoteError::Conflict(c) => Failure::Command(c),
                    e => Failure::internal(e),
                })
        })
        .command::<OpenCounter, _, _>(move |caller, a| {
            let commands = counter_commands.clone();
            async move {
                let handle =
                    caller.publish(Arc::new(Counter(AtomicI64::new(a.start))), commands)?;
                Ok(OpenCounterAnswer { handle })
            }
        })
        .model(
            "notes",
            |caller, _key| async move { caller.store().await.or_fail() },
            snapshot,
        );
}

/// A running test site.
pub struct TestSite {
    pub site: Site,
    pub amp: Option<RunningService>,
    pub amp_addr: SocketAddr,
    pub http: SocketAddr,
    pub user: String,
    _dir: tempfile::TempDir,
}

impl TestSite {
    pub async fn start() -> TestSite {
        Self::start_with(|_| {}).await
    }

    /// A test site whose configuration `edit` changes first.
    pub async fn start_with(edit: impl FnOnce(&mut SiteConfig)) -> TestSite {
        Self::start_program(edit, |b| b).await
    }

    /// A test site whose builder `prepare` completes (with an offering,
    /// say) and whose configuration `edit` changes first.
    pub async fn start_program(
        edit: impl FnOnce(&mut SiteConfig),
        prepare: impl FnOnce(mantle_site::SiteBuilder) -> mantle_site::SiteBuilder,
    ) -> TestSite {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        };
        config
            .edit_section::<HttpConfig>(|s| s.listen = "127.0.0.1:0".parse().unwrap())
            .unwrap();
        config
            .edit_section::<LiveConfig>(|s| s.amp = Some("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        edit(&mut config);
        let site = prepare(
            mantle_live_server::install(mantle_web::install(
                Site::builder(dir.path()).with(register),
            ))
            .extension::<Live>(offering),
        )
        .init(config)
        .await
        .unwrap();
        site.services()
            .install(mantle_web::HttpService {
                label: "http".into(),
            })
            .await
            .unwrap();
        site.accounts()
            .create("alice", PASSWORD, false)
            .await
            .unwrap();
        site.accounts()
            .create("bob", PASSWORD, false)
            .await
            .unwrap();
        let started = site.start().await.unwrap();
        let http = started
            .iter()
            .find(|(n, _)| n == "http")
            .and_then(|(_, a)| a.clone())
            .unwrap()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let amp = mantle_live_server::amp::start(&site)
            .await
            .unwrap()
            .unwrap();
        let amp_addr = amp
            .address
            .clone()
            .unwrap()
            .trim_start_matches("amp://")
            .parse()
            .unwrap();
        TestSite {
            site,
            amp: Some(amp),
            amp_addr,
            http,
            user: "alice@example.com".into(),
            _dir: dir,
        }
    }

    /// Stops the AMP listener (its connections drop).
    pub async fn stop_amp(&mut self) {
        if let Some(a) = self.amp.take() {
            a.stop().await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart_amp(&mut self) {
        self.amp = Some(
            mantle_live_server::amp::start_on(&self.site, self.amp_addr)
                .await
                .unwrap(),
        );
    }

    pub async fn alice_store(&self) -> mantle_store::Store {
        let acc = self.site.accounts().get("alice").await.unwrap();
        self.site
            .stores()
            .user_store_unchecked(acc.id)
            .await
            .unwrap()
    }

    pub fn client_options(&self) -> mantle_client::ClientOptions {
        let mut o = mantle_client::ClientOptions::new(self.amp_addr.to_string())
            .login(self.user.clone(), PASSWORD);
        o.min_backoff = std::time::Duration::from_millis(20);
        o.max_backoff = std::time::Duration::from_millis(200);
        o
    }
}

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket upgrade request carrying `Authorization: Bearer TOKEN`.
pub fn with_bearer(
    url: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut r = url.into_client_request().unwrap();
    r.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Sends `text` and returns the next text message's JSON.
pub async fn ws_ask(ws: &mut Ws, text: &str) -> serde_json::Value {
    futures::SinkExt::send(
        ws,
        tokio_tungstenite::tungstenite::Message::Text(text.into()),
    )
    .await
    .unwrap();
    loop {
        let m = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            futures::StreamExt::next(ws),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Logs a WebSocket connection in as `user` with `Login` (request id 0).
pub async fn ws_login(ws: &mut Ws, user: &str) {
    let r = ws_ask(
        ws,
        &format!(
            r#"{{"id":0,"command":"Login","args":{{"username":"{user}","password":"{PASSWORD}"}}}}"#
        ),
    )
    .await;
    assert_eq!(r["id"], 0, "{r}");
    assert!(r["answer"]["token"].is_string(), "{r}");
}
