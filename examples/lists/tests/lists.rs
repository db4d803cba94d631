//! The lists offering: its store functions, its sharing (an owner, a
//! user she lets edit, one she lets read, a stranger, anonymous visitors)
//! through the real live layer (JSON over WebSocket on an in-process
//! site), and its pages.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use mantle_example_lists as lists;
use mantle_example_lists::{EntryError, EntryView, Error, ListAccess, ListDelta};
use mantle_live_server::ModelDelta;
use mantle_site::sharing::Viewer;
use mantle_site::{Site, SiteConfig, SiteError};
use mantle_web::HttpConfig;
use mantle_web::harness::Harness;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PW: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(20);

fn builder(dir: &std::path::Path) -> mantle_site::SiteBuilder {
    let b = mantle_web::install(Site::builder(dir));
    lists::install(mantle_live_server::install(b))
}

/// A site whose new accounts are given the lists; domain `example.com`.
async fn new_site(dir: &std::path::Path) -> Site {
    let mut config = SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    };
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
    let alice = site.accounts().create("alice", PW, false).await.unwrap();
    assert!(
        !dir.path().join("apps/lists.store").exists(),
        "no app store: lists live in their owners' stores"
    );
    let shopping = lists::create(&site, alice.id, "shopping").await.unwrap();
    let chores = lists::create(&site, alice.id, "chores").await.unwrap();
    assert_eq!(
        lists::create(&site, alice.id, "shopping").await.unwrap(),
        shopping,
        "a name names one list of hers"
    );
    let store = site.stores().user_store_unchecked(alice.id).await.unwrap();

    let milk = lists::add(&store, shopping, "milk").await.unwrap();
    let eggs = lists::add(&store, shopping, "eggs").await.unwrap();
    let other = lists::add(&store, chores, "dishes").await.unwrap();
    assert_eq!((milk.revision, milk.text.as_str()), (1, "milk"));

    let oat = lists::edit(&store, shopping, milk.id, "oat milk", 1)
        .await
        .unwrap();
    assert_eq!(oat.revision, 2);
    assert_eq!(
        conflict(lists::edit(&store, shopping, milk.id, "soy milk", 1).await),
        (1, 2)
    );
    assert_eq!(
        conflict(lists::remove(&store, shopping, milk.id, 1).await),
        (1, 2)
    );
    // An entry of another list is not found through this one.
    assert!(matches!(
        lists::edit(&store, shopping, other.id, "x", 1).await,
        Err(Error::Entry(EntryError::NotFound { .. }))
    ));
    for bad in ["", "   ", "two\nlines"] {
        assert!(matches!(
            lists::add(&store, shopping, bad).await,
            Err(Error::Entry(EntryError::BadText { .. }))
        ));
    }
    let long = "x".repeat(lists::MAX_TEXT + 1);
    assert!(lists::add(&store, shopping, &long).await.is_err());

    lists::remove(&store, shopping, eggs.id, 1).await.unwrap();
    assert!(matches!(
        lists::remove(&store, shopping, eggs.id, 1).await,
        Err(Error::Entry(EntryError::NotFound { id })) if id == eggs.id
    ));
    let bread = lists::add(&store, shopping, "bread").await.unwrap();

    let published = lists::published_model(shopping);
    assert_eq!(published, format!("list:#{}", shopping.raw()));
    let (snapshot, deltas) = store
        .read(move |r| {
            let s = lists::snapshot(r, shopping)?;
            let d = r
                .query::<ModelDelta>()
                .filter(ModelDelta::MODEL.eq(published.as_str()))
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
        json!({"name": "shopping", "entries": [
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

    // Deleting a list deletes its entries.
    store
        .transact(move |tx| {
            tx.delete(chores)?;
            mantle_store::ok(())
        })
        .await
        .unwrap();
    let left = store
        .read(move |r| r.query::<lists::ListEntry>().count())
        .await
        .unwrap();
    assert_eq!(left, 2, "the chores' entry went with its list");
    site.close().await;
}

#[test]
fn list_names_are_checked() {
    for good in ["shopping", "courses-a-faire", "v1.2", "A_b~c"] {
        assert!(lists::check_name(good).is_ok(), "{good}");
    }
    for bad in ["", "a b", "a/b", "courses à faire", "a\tb", ".", ".."] {
        assert!(lists::check_name(bad).is_err(), "{bad:?}");
    }
    assert!(lists::check_name(&"n".repeat(lists::MAX_NAME)).is_ok());
    assert!(lists::check_name(&"n".repeat(lists::MAX_NAME + 1)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_the_owner_shares_is_readable_and_only_by_whom() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path()).await;
    let alice = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob = site.accounts().create("bob", PW, false).await.unwrap().id;
    let list = lists::create(&site, alice, "groceries").await.unwrap();
    let store = site.stores().user_store_unchecked(alice).await.unwrap();
    lists::add(&store, list, "milk").await.unwrap();

    let read = |viewer| lists::read(&site, viewer, alice, "groceries");
    assert!(matches!(
        read(Viewer::Account(bob)).await,
        Err(SiteError::NoSuchShare(_))
    ));
    assert_eq!(read(Viewer::Account(alice)).await.unwrap().entries.len(), 1);
    lists::share(&site, alice, "groceries", "bob", ListAccess::Edit)
        .await
        .unwrap();
    assert_eq!(read(Viewer::Account(bob)).await.unwrap().name, "groceries");
    assert!(matches!(
        read(Viewer::Anonymous).await,
        Err(SiteError::NoSuchShare(_))
    ));
    lists::share(&site, alice, "groceries", "everyone", ListAccess::Read)
        .await
        .unwrap();
    assert_eq!(
        read(Viewer::Anonymous).await.unwrap().entries[0].text,
        "milk"
    );

    // What the owner sees, and what she may not do.
    let mine = lists::my_lists(&site, alice).await.unwrap();
    assert_eq!(
        serde_json::to_value(&mine).unwrap(),
        json!([{"name": "groceries", "shares": [
            {"with": "bob@example.com", "access": "edit"},
            {"with": "everyone", "access": "read"},
        ]}])
    );
    let refused = |r: Result<(), lists::ShareFailure>| match r {
        Err(lists::ShareFailure::Refused(e)) => serde_json::to_value(e).unwrap()["code"].clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let share = |name: &'static str, with: &'static str, access| {
        lists::share(&site, alice, name, with, access)
    };
    assert_eq!(
        refused(share("groceries", "everyone", ListAccess::Edit).await),
        "BAD_ACCESS"
    );
    assert_eq!(
        refused(share("groceries", "alice", ListAccess::Read).await),
        "BAD_ACCESS"
    );
    assert_eq!(
        refused(share("groceries", "nobody", ListAccess::Read).await),
        "NO_SUCH_USER"
    );
    assert_eq!(
        refused(share("chores", "bob", ListAccess::Read).await),
        "NO_SUCH_LIST"
    );
    assert_eq!(
        refused(share("two words", "bob", ListAccess::Read).await),
        "BAD_NAME"
    );
    // Withdrawn: as if it never was.
    assert!(
        lists::unshare(&site, alice, "groceries", "everyone")
            .await
            .unwrap()
    );
    assert!(
        !lists::unshare(&site, alice, "groceries", "everyone")
            .await
            .unwrap()
    );
    assert!(matches!(
        read(Viewer::Anonymous).await,
        Err(SiteError::NoSuchShare(_))
    ));
    site.close().await;
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

    /// The error code `command` is refused with.
    async fn refused(&mut self, command: &str, args: Value, handle: Option<i64>) -> Value {
        match self.call(command, args, handle).await {
            Err(e) => e,
            Ok(a) => panic!("{command} should have been refused, answered {a}"),
        }
    }

    async fn push(&mut self) -> Value {
        match self.pushes.pop_front() {
            Some(p) => p,
            None => self.frame().await,
        }
    }

    /// The next Delta push of `model`: (sequence, delta).
    async fn delta(&mut self, model: &str) -> (i64, Value) {
        let p = self.push().await;
        assert_eq!(p["command"], "Delta", "{p}");
        assert_eq!(p["args"]["model"], model, "{p}");
        (
            p["args"]["sequence"].as_i64().unwrap(),
            p["args"]["delta"].clone(),
        )
    }

    /// Opens `owner`'s list `name` (the caller's own with `None`): the
    /// handle and the answer.
    async fn open(&mut self, owner: Option<&str>, name: &str) -> (i64, Value) {
        let mut args = json!({ "name": name });
        if let Some(o) = owner {
            args["owner"] = json!(o);
        }
        let a = self.ok("OpenList", args, None).await;
        (a["handle"].as_i64().unwrap(), a)
    }
}

/// A started site (HTTP and WebSocket on a free port) with five users:
/// alice (the owner), bob (she lets him edit), carol (she lets her read),
/// dave (a stranger) and erin (who has lists of her own).
struct Started {
    _dir: tempfile::TempDir,
    site: Site,
    addr: String,
    tokens: std::collections::HashMap<&'static str, String>,
}

impl Started {
    async fn new() -> Started {
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
        let mut tokens = std::collections::HashMap::new();
        for user in ["alice", "bob", "carol", "dave", "erin"] {
            site.accounts().create(user, PW, false).await.unwrap();
            let token = site.auth().login(user, PW, "test").await.unwrap().token;
            tokens.insert(user, token);
        }
        Started {
            _dir: dir,
            site,
            addr,
            tokens,
        }
    }

    async fn client(&self, user: &str) -> Client {
        Client::connect(&self.addr, Some(&self.tokens[user])).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_shares_a_list_for_editing_and_for_reading_over_the_live_layer() {
    let t = Started::new().await;
    // Logged out, nothing but logging in works.
    let mut anon = Client::connect(&t.addr, None).await;
    let e = anon
        .refused("OpenList", json!({"name": "shopping"}), None)
        .await;
    assert_eq!(e["code"], "UNAUTHORIZED");

    let (mut a, mut b, mut c, mut d) = (
        t.client("alice").await,
        t.client("bob").await,
        t.client("carol").await,
        t.client("dave").await,
    );
    const MODEL: &str = "list:alice@example.com/shopping";

    // Alice's list is made when she first opens it; nobody else sees it.
    let (ha, opened) = a.open(None, "shopping").await;
    assert_eq!(
        (&opened["model"], &opened["owner"], &opened["edit"]),
        (&json!(MODEL), &json!("alice@example.com"), &json!(true))
    );
    let e = a.refused("OpenList", json!({"name": ""}), None).await;
    assert_eq!(e["code"], "BAD_NAME");
    let before = b
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    assert_eq!(before["code"], "NOT_FOUND");

    // She lets bob edit and carol read.
    for (who, access) in [("bob@example.com", "edit"), ("carol", "read")] {
        a.ok(
            "ShareList",
            json!({"name": "shopping", "with": who, "access": access}),
            None,
        )
        .await;
    }
    let (hb, opened) = b.open(Some("alice"), "shopping").await;
    assert_eq!(
        (&opened["model"], &opened["edit"]),
        (&json!(MODEL), &json!(true))
    );
    let (hc, opened) = c.open(Some("alice@example.com"), "shopping").await;
    assert_eq!(opened["edit"], false);

    for client in [&mut a, &mut b, &mut c] {
        let o = client.ok("Observe", json!({"model": MODEL}), None).await;
        assert_eq!(o["resumed"], false);
        assert_eq!(o["sequence"], 0);
        assert_eq!(o["snapshot"], json!({"name": "shopping", "entries": []}));
    }

    // Alice adds; everyone sees the delta.
    let added = a.ok("AddEntry", json!({"text": "milk"}), Some(ha)).await;
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["revision"], 1);
    let entry = json!({"id": id, "text": "milk", "revision": 1});
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(
            client.delta(MODEL).await,
            (1, json!({"op": "add", "entry": entry}))
        );
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
        .refused(
            "EditEntry",
            json!({"id": id, "text": "soy milk", "revision": 1}),
            Some(ha),
        )
        .await;
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
    for client in [&mut a, &mut b, &mut c] {
        let (seq, d) = client.delta(MODEL).await;
        assert_eq!(
            (seq, &d["op"], &d["entry"]["text"]),
            (2, &json!("edit"), &json!("oat milk"))
        );
    }

    // Carol reads only: every change is refused as a missing list is, and
    // changes nothing.
    let add = c.refused("AddEntry", json!({"text": "x"}), Some(hc)).await;
    let edit = c
        .refused(
            "EditEntry",
            json!({"id": id, "text": "x", "revision": 2}),
            Some(hc),
        )
        .await;
    let remove = c
        .refused("RemoveEntry", json!({"id": id, "revision": 2}), Some(hc))
        .await;
    for e in [&add, &edit, &remove] {
        assert_eq!(e["code"], "NOT_FOUND", "{e}");
    }
    // Nor may she share what is not hers.
    let e = c
        .refused(
            "ShareList",
            json!({"name": "shopping", "with": "dave", "access": "read"}),
            None,
        )
        .await;
    assert_eq!(e["code"], "NO_SUCH_LIST");

    // Dave, a stranger, is refused exactly as for a list that does not
    // exist (erin has no "shopping") or an owner who does not.
    let stranger = d
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    for owner in ["erin@example.com", "nobody@example.com"] {
        let missing = d
            .refused(
                "OpenList",
                json!({"owner": owner, "name": "shopping"}),
                None,
            )
            .await;
        assert_eq!(stranger, missing, "the same refusal");
    }
    assert_eq!(stranger["code"], "NOT_FOUND");
    let stranger = d.refused("Observe", json!({"model": MODEL}), None).await;
    let missing = d
        .refused(
            "Observe",
            json!({"model": "list:erin@example.com/shopping"}),
            None,
        )
        .await;
    assert_eq!(stranger["code"], "NO_SUCH_MODEL");
    assert_eq!(
        stranger["description"]
            .as_str()
            .unwrap()
            .replace("alice", "erin"),
        missing["description"].as_str().unwrap(),
        "the same refusal, but for the name asked"
    );
    // Nobody but the owner observes it by its item id.
    let alice = t.site.accounts().get("alice").await.unwrap().id;
    let store = t.site.stores().user_store_unchecked(alice).await.unwrap();
    let list = store
        .read(move |r| lists::find_in(r, alice, "shopping"))
        .await
        .unwrap()
        .expect("her list");
    let by_id = format!("list:alice@example.com/#{}", list.raw());
    let e = d.refused("Observe", json!({"model": by_id}), None).await;
    assert_eq!(e["code"], "NO_SUCH_MODEL");

    // The lists each sees.
    let mine = a.ok("MyLists", json!({}), None).await;
    assert_eq!(
        mine,
        json!({"lists": [{"name": "shopping", "shares": [
            {"with": "bob@example.com", "access": "edit"},
            {"with": "carol@example.com", "access": "read"},
        ]}]})
    );
    // (Who a list is shared with is told by a message: wait for it.)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let shared = b.ok("SharedLists", json!({}), None).await;
        if shared["lists"].as_array().is_some_and(|l| !l.is_empty()) {
            assert_eq!(
                shared,
                json!({"lists": [
                    {"owner": "alice@example.com", "name": "shopping", "access": "edit"}
                ]})
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob was never told");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a.ok("SharedLists", json!({}), None).await,
        json!({"lists": []}),
        "her own lists are not shared with her"
    );

    // Alice withdraws Bob's share: his observation ends, his handle
    // refuses, observing again is refused; Carol carries on.
    let removed = a
        .ok(
            "UnshareList",
            json!({"name": "shopping", "with": "bob@example.com"}),
            None,
        )
        .await;
    assert_eq!(removed, json!({"removed": true}));
    let ended = b.push().await;
    assert_eq!(ended["command"], "Ended", "{ended}");
    assert_eq!(
        (&ended["args"]["model"], &ended["args"]["code"]),
        (&json!(MODEL), &json!("NOT_FOUND"))
    );
    let e = b.refused("AddEntry", json!({"text": "x"}), Some(hb)).await;
    assert_eq!(e["code"], "NOT_FOUND");
    let e = b.refused("Observe", json!({"model": MODEL}), None).await;
    assert_eq!(e["code"], "NO_SUCH_MODEL");
    let e = b
        .refused(
            "OpenList",
            json!({"owner": "alice@example.com", "name": "shopping"}),
            None,
        )
        .await;
    assert_eq!(e, stranger_open(&mut d).await, "as for a stranger");

    // Carol leaves; Alice adds and removes; Carol comes back and resumes.
    drop(c);
    a.ok("AddEntry", json!({"text": "bread"}), Some(ha)).await;
    a.ok("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await;
    let e = a
        .refused("RemoveEntry", json!({"id": id, "revision": 2}), Some(ha))
        .await;
    assert_eq!(e["code"], "NOT_FOUND");
    let mut c = t.client("carol").await;
    let o = c
        .ok("Observe", json!({"model": MODEL, "since": 2}), None)
        .await;
    assert_eq!((&o["resumed"], &o["sequence"]), (&json!(true), &json!(4)));
    assert_eq!(c.delta(MODEL).await.1["entry"]["text"], "bread");
    assert_eq!(c.delta(MODEL).await.1["op"], "remove");
    // The old handle died with the old connection.
    let e = c.refused("AddEntry", json!({"text": "x"}), Some(hc)).await;
    assert_eq!(e["code"], "NO_SUCH_HANDLE");
    t.site.close().await;
}

/// Dave's refusal to open alice's "shopping".
async fn stranger_open(d: &mut Client) -> Value {
    d.refused(
        "OpenList",
        json!({"owner": "alice@example.com", "name": "shopping"}),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_each_viewer_what_the_shares_allow() {
    let t = Started::new().await;
    let h = Harness::for_site(t.site.clone());
    let token = |u: &str| t.tokens[u].clone();
    let mut a = t.client("alice").await;
    let (ha, _) = a.open(None, "groceries").await;
    a.ok("AddEntry", json!({"text": "milk <b>&</b>"}), Some(ha))
        .await;
    for (who, access) in [("bob", "edit"), ("carol", "read")] {
        a.ok(
            "ShareList",
            json!({"name": "groceries", "with": who, "access": access}),
            None,
        )
        .await;
    }
    let page = "/lists/alice@example.com/groceries";

    // Anonymous visitors: to the login page for the index, 404 for a list
    // not published.
    let r = h.get("/lists").send().await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/login"));
    let unpublished = h.get(page).send().await;
    assert_eq!(unpublished.status, StatusCode::NOT_FOUND);
    let missing = h.get("/lists/alice@example.com/nothing").send().await;
    assert_eq!(
        (missing.status, missing.text()),
        (unpublished.status, unpublished.text()),
        "an unpublished list is answered as a missing one"
    );

    // The owner's page: live, editable, with the sharing panel.
    let r = h.get(page).bearer(&token("alice")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains(r#"data-owner="alice@example.com""#), "{html}");
    assert!(html.contains(r#"data-edit="true""#) && html.contains(r#"data-mine="true""#));
    assert!(html.contains(r#"id="add-form""#) && html.contains(r#"id="share-form""#));
    assert!(html.contains(r#"src="/lists/page.js""#) && !html.contains("<script>"));
    let account = t.site.accounts().get("alice").await.unwrap().id.raw();
    let public_path = format!("/lists/account:{account}/groceries");
    assert!(
        html.replace("&#x2f;", "/").contains(&public_path),
        "the public link names no address: {html}"
    );
    // Bob may edit; Carol may read; neither gets the sharing panel.
    let html = h
        .get(page)
        .bearer(&token("bob"))
        .send()
        .await
        .text()
        .to_string();
    assert!(html.contains(r#"data-edit="true""#) && html.contains(r#"data-mine="false""#));
    assert!(html.contains(r#"id="add-form""#) && !html.contains(r#"id="share-form""#));
    let r = h.get(page).bearer(&token("carol")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains(r#"data-edit="false""#), "{html}");
    assert!(!html.contains(r#"id="add-form""#) && !html.contains(r#"id="share-form""#));
    // Dave is refused as for a missing list.
    let stranger = h.get(page).bearer(&token("dave")).send().await;
    let missing = h
        .get("/lists/alice@example.com/nothing")
        .bearer(&token("dave"))
        .send()
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.text(), missing.text());
    assert_eq!(stranger.text(), unpublished.text());

    // The index: her lists with their shares; his, what is shared with him.
    let html = h.get("/lists").bearer(&token("alice")).send().await;
    let html = html.text();
    assert!(html.contains(r#"data-name="groceries""#), "{html}");
    assert!(html.contains("bob@example.com (edit)") && html.contains("carol@example.com (read)"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = h.get("/lists").bearer(&token("bob")).send().await;
        if r.text().contains(r#"data-owner="alice@example.com""#) {
            assert!(
                r.text().contains("by alice@example.com (edit)"),
                "{}",
                r.text()
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The form's query, and the old address of a list, lead to a list.
    let r = h
        .get("/lists?name=groceries&owner=alice")
        .bearer(&token("bob"))
        .send()
        .await;
    assert_eq!(r.header("location"), Some("/lists/alice/groceries"));
    let r = h.get("/lists/groceries").bearer(&token("bob")).send().await;
    assert!(r.status.is_redirection());
    assert_eq!(
        r.header("location"),
        Some("/lists/bob@example.com/groceries")
    );
    let r = h.get("/lists?name=a+b").bearer(&token("bob")).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("class=\"error\""), "{}", r.text());

    // Published: anonymous visitors read it, without the owner's address
    // in a form harvesters find, and with no way to change it.
    a.ok(
        "ShareList",
        json!({"name": "groceries", "with": "everyone", "access": "read"}),
        None,
    )
    .await;
    for path in [page.to_string(), public_path] {
        let r = h.get(&path).send().await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let html = r.text();
        assert!(
            html.contains("milk &lt;b&gt;&amp;&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(html.contains("alice (at) example (dot) com"), "{html}");
        assert!(!html.contains("alice@"), "no harvestable address: {html}");
        assert!(!html.contains("<form") || !html.contains("add-form"));
        assert!(!html.contains("page.js"), "no live page for visitors");
    }
    // Dave, logged in, reads it live (and read-only) now.
    let html = h
        .get(page)
        .bearer(&token("dave"))
        .send()
        .await
        .text()
        .to_string();
    assert!(html.contains(r#"data-edit="false""#), "{html}");
    let mut d = t.client("dave").await;
    let (hd, opened) = d.open(Some("alice@example.com"), "groceries").await;
    assert_eq!(opened["edit"], false);
    let e = d.refused("AddEntry", json!({"text": "x"}), Some(hd)).await;
    assert_eq!(e["code"], "NOT_FOUND");
    t.site.close().await;
}
