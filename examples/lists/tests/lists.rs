//! The lists offering: its store functions, and its commands and model
//! through the real live layer (JSON over WebSocket on an in-process
//! site).

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mantle_example_lists as lists;
use mantle_example_lists::{EntryError, EntryView, Error, ListDelta};
use mantle_live_server::ModelDelta;
use mantle_site::{Site, SiteConfig};
use mantle_web::HttpConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PW: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);

fn builder(dir: &std::path::Path) -> mantle_site::SiteBuilder {
    let b = mantle_web::install(Site::builder(dir));
    lists::install(mantle_live_server::install(b))
}

async fn new_site(dir: &std::path::Path) -> Site {
    let mut config = SiteConfig::default();
    config
        .edit_section::<HttpConfig>(|s| s.listen = "127.0.0.1:0".parse().unwrap())
        .unwrap();
    config.signup.product = Some("all".into());
    let site = builder(dir).init(config).await.expect("init site");
    site.offerings().install(lists::APP).await.expect("install");
    site.products()
        .create("all", &[lists::APP])
        .await
        .expect("product");
    site
}

fn conflict(r: Result<EntryView, Error>) -> (i64, i64) {
    match r {
        Err(Error::Entry(EntryError::SaveConflict {
            your_revision,
            current_revision,
        })) => (your_revision, current_revision),
        other => panic!("expected a save conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_added_edited_and_removed_against_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path()).await;
    let store = lists::store(&site).await.unwrap();
    assert!(dir.path().join("apps/lists.store").exists());

    let milk = lists::add(&store, "shopping", "milk").await.unwrap();
    let eggs = lists::add(&store, "shopping", "eggs").await.unwrap();
    let other = lists::add(&store, "chores", "dishes").await.unwrap();
    assert_eq!((milk.revision, milk.text.as_str()), (1, "milk"));

    let oat = lists::edit(&store, "shopping", milk.id, "oat milk", 1)
        .await
        .unwrap();
    assert_eq!(oat.revision, 2);
    assert_eq!(
        conflict(lists::edit(&store, "shopping", milk.id, "soy milk", 1).await),
        (1, 2)
    );
    assert_eq!(
        conflict(lists::remove(&store, "shopping", milk.id, 1).await),
        (1, 2)
    );
    // An entry of another list is not found through this one.
    assert!(matches!(
        lists::edit(&store, "shopping", other.id, "x", 1).await,
        Err(Error::Entry(EntryError::NotFound { .. }))
    ));
    for bad in ["", "   ", "two\nlines"] {
        assert!(matches!(
            lists::add(&store, "shopping", bad).await,
            Err(Error::Entry(EntryError::BadText { .. }))
        ));
    }
    let long = "x".repeat(lists::MAX_TEXT + 1);
    assert!(lists::add(&store, "shopping", &long).await.is_err());

    lists::remove(&store, "shopping", eggs.id, 1).await.unwrap();
    assert!(matches!(
        lists::remove(&store, "shopping", eggs.id, 1).await,
        Err(Error::Entry(EntryError::NotFound { id })) if id == eggs.id
    ));
    let bread = lists::add(&store, "shopping", "bread").await.unwrap();

    let (snapshot, deltas) = store
        .read(|r| {
            let s = lists::snapshot(r, "shopping")?;
            let d = r
                .query::<ModelDelta>()
                .filter(ModelDelta::MODEL.eq("list:shopping"))
                .order_by(ModelDelta::SEQUENCE.asc())
                .all()?;
            let d: Vec<(i64, ListDelta)> = d
                .into_iter()
                .map(|d| (d.sequence, serde_json::from_str(&d.delta).unwrap()))
                .collect();
            mantle_store::ok((s, d))
        })
        .await
        .unwrap();
    assert_eq!(
        snapshot,
        json!({"entries": [
            {"id": milk.id, "text": "oat milk", "revision": 2},
            {"id": bread.id, "text": "bread", "revision": 1},
        ]})
    );
    // One delta per committed change, in order; refused changes publish
    // nothing.
    assert_eq!(
        deltas,
        vec![
            (1, ListDelta::Add { entry: milk }),
            (
                2,
                ListDelta::Add {
                    entry: eggs.clone()
                }
            ),
            (3, ListDelta::Edit { entry: oat }),
            (4, ListDelta::Remove { entry: eggs }),
            (5, ListDelta::Add { entry: bread }),
        ]
    );
    let wire = serde_json::to_value(&deltas[3].1).unwrap();
    assert_eq!(wire["op"], "remove");
    assert_eq!(wire["entry"]["text"], "eggs");
    site.close().await;
}

#[test]
fn list_names_are_checked() {
    assert!(lists::check_name("shopping").is_ok());
    assert!(lists::check_name("courses à faire").is_ok());
    assert!(lists::check_name("").is_err());
    assert!(lists::check_name("a\tb").is_err());
    assert!(lists::check_name(&"n".repeat(lists::MAX_NAME + 1)).is_err());
}

/// A JSON-over-WebSocket client of `/live`, for the tests.
struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: i64,
    pushes: VecDeque<Value>,
}

impl Client {
    async fn connect(addr: &str, token: Option<&str>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}/live").into_client_request().unwrap();
        if let Some(t) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket upgrade");
        Client {
            ws,
            next: 1,
            pushes: VecDeque::new(),
        }
    }

    async fn frame(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message within the time-out")
                .expect("the connection is open")
                .expect("a good frame");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).expect("JSON");
            }
        }
    }

    /// Calls `command`; the answer, or the error object.
    async fn call(
        &mut self,
        command: &str,
        args: Value,
        handle: Option<i64>,
    ) -> Result<Value, Value> {
        let id = self.next;
        self.next += 1;
        let mut req = json!({"id": id, "command": command, "args": args});
        if let Some(h) = handle {
            req["handle"] = json!(h);
        }
        self.ws
            .send(Message::Text(req.to_string().into()))
            .await
            .expect("send");
        loop {
            let f = self.frame().await;
            if f["id"] == json!(id) {
                return match f.get("answer") {
                    Some(a) => Ok(a.clone()),
                    None => Err(f["error"].clone()),
                };
            }
            assert!(f.get("command").is_some(), "unexpected frame {f}");
            self.pushes.push_back(f);
        }
    }

    async fn ok(&mut self, command: &str, args: Value, handle: Option<i64>) -> Value {
        self.call(command, args, handle)
            .await
            .unwrap_or_else(|e| panic!("{command} failed: {e}"))
    }

    async fn push(&mut self) -> Value {
        match self.pushes.pop_front() {
            Some(p) => p,
            None => self.frame().await,
        }
    }

    /// The next Delta push: (sequence, delta).
    async fn delta(&mut self) -> (i64, Value) {
        let p = self.push().await;
        assert_eq!(p["command"], "Delta", "{p}");
        assert_eq!(p["args"]["model"], "list:shopping", "{p}");
        (
            p["args"]["sequence"].as_i64().unwrap(),
            p["args"]["delta"].clone(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_share_a_list_over_the_live_layer() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path()).await;
    site.services()
        .install(mantle_web::HttpService {
            label: "web".into(),
        })
        .await
        .unwrap();
    let started = site.start().await.unwrap();
    let base = started
        .iter()
        .find_map(|(_, a)| a.clone())
        .expect("the HTTP service listens");
    let addr = base.strip_prefix("http://").unwrap().to_string();
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();
    let alice_token = site.auth().login("alice", PW, "test").await.unwrap().token;
    let bob_token = site.auth().login("bob", PW, "test").await.unwrap().token;

    // Logged out, nothing but logging in works.
    let mut anon = Client::connect(&addr, None).await;
    let e = anon
        .call("OpenList", json!({"name": "shopping"}), None)
        .await
        .unwrap_err();
    assert_eq!(e["code"], "UNAUTHORIZED");

    let mut a = Client::connect(&addr, Some(&alice_token)).await;
    let mut b = Client::connect(&addr, Some(&bob_token)).await;
    let opened = a.ok("OpenList", json!({"name": "shopping"}), None).await;
    assert_eq!(opened["model"], "list:shopping");
    let ha = opened["handle"].as_i64().unwrap();
    let hb = b.ok("OpenList", json!({"name": "shopping"}), None).await["handle"]
        .as_i64()
        .unwrap();
    let e = a
        .call("OpenList", json!({"name": ""}), None)
        .await
        .unwrap_err();
    assert_eq!(e["code"], "BAD_NAME");

    let e = a
        .call("Observe", json!({"model": "list:"}), None)
        .await
        .unwrap_err();
    assert_eq!(e["code"], "NO_SUCH_MODEL");
    for c in [&mut a, &mut b] {
        let o = c
            .ok("Observe", json!({"model": "list:shopping"}), None)
            .await;
        assert_eq!(o["resumed"], false);
        assert_eq!(o["sequence"], 0);
        assert_eq!(o["snapshot"], json!({"entries": []}));
    }

    // Alice adds; both see the delta.
    let added = a.ok("AddEntry", json!({"text": "milk"}), Some(ha)).await;
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["revision"], 1);
    let entry = json!({"id": id, "text": "milk", "revision": 1});
    for c in [&mut a, &mut b] {
        assert_eq!(c.delta().await, (1, json!({"op": "add", "entry": entry})));
    }

    // Bob edits; Alice's stale edit conflicts, with the revisions.
    let edited = b
        .ok(
            "EditEntry",
            json!({"id": id, "text": "oat milk", "revision": 1}),
            Some(hb),
        )
        .await;
    assert_eq!(edited, json!({"revision": 2}));
    let e = a
        .call(
            "EditEntry",
            json!({"id": id, "text": "soy milk", "revision": 1}),
            Some(ha),
        )
        .await
        .unwrap_err();
    assert_eq!(e["code"], "SAVE_CONFLICT", "{e}");
    assert_eq!(
        e["details"],
        json!({"your_revision": 1, "current_revision": 2})
    );
    let as_typed = serde_json::from_value::<mantle_live::RemoteError>(e).unwrap();
    assert_eq!(
        as_typed.to_typed::<mantle_live::SaveConflict>(),
        Some(mantle_live::SaveConflict::SaveConflict {
            your_revision: 1,
            current_revision: 2
        }),
        "the generic SaveConflict reads it too"
    );
    let (seq, d) = a.delta().await;
    assert_eq!(
        (seq, &d["op"], &d["entry"]["text"]),
        (2, &json!("edit"), &json!("oat milk"))
    );

    // Bob leaves; Alice adds and removes; Bob comes back and resumes.
    drop(b);
    let bread = a.ok("AddEntry", json!({"text": "bread"}), Some(ha)).await;
    a.ok("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await;
    let e = a
        .call("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "NOT_FOUND");
    let mut b = Client::connect(&addr, Some(&bob_token)).await;
    let o = b
        .ok(
            "Observe",
            json!({"model": "list:shopping", "since": 2}),
            None,
        )
        .await;
    assert_eq!((&o["resumed"], &o["sequence"]), (&json!(true), &json!(4)));
    assert_eq!(b.delta().await.1["entry"]["text"], "bread");
    assert_eq!(b.delta().await.1["op"], "remove");
    // The old handle died with the old connection.
    let e = b
        .call("AddEntry", json!({"text": "x"}), Some(hb))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "NO_SUCH_HANDLE");
    let o = b.ok("Observe", json!({"model": "list:other"}), None).await;
    assert_eq!(o["snapshot"], json!({"entries": []}));
    let _ = bread;
    site.close().await;
}
