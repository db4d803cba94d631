//! What the lists' tests share: a site given the lists, a JSON client
//! of `/live`, and a started site with its users.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mantle_example_lists as lists;
use mantle_site::{Site, SiteConfig};
use mantle_web::HttpConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub const PW: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(20);

pub fn builder(dir: &std::path::Path) -> mantle_site::SiteBuilder {
    let b = mantle_web::install(Site::builder(dir));
    lists::install(mantle_live_server::install(b))
}

/// A site whose new accounts are given the lists; domain `example.com`.
pub async fn new_site(dir: &std::path::Path) -> Site {
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

/// A JSON-over-WebSocket client of `/live`, for the tests.
pub struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: i64,
    pushes: VecDeque<Value>,
}

impl Client {
    pub async fn connect(addr: &str, token: Option<&str>) -> Client {
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

    pub async fn frame(&mut self) -> Value {
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
    pub async fn call(
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

    pub async fn ok(&mut self, command: &str, args: Value, handle: Option<i64>) -> Value {
        self.call(command, args, handle)
            .await
            .unwrap_or_else(|e| panic!("{command} failed: {e}"))
    }

    /// The error code `command` is refused with.
    pub async fn refused(&mut self, command: &str, args: Value, handle: Option<i64>) -> Value {
        match self.call(command, args, handle).await {
            Err(e) => e,
            Ok(a) => panic!("{command} should have been refused, answered {a}"),
        }
    }

    pub async fn push(&mut self) -> Value {
        match self.pushes.pop_front() {
            Some(p) => p,
            None => self.frame().await,
        }
    }

    /// The next Delta push of `model`: (sequence, delta).
    pub async fn delta(&mut self, model: &str) -> (i64, Value) {
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
    pub async fn open(&mut self, owner: Option<&str>, name: &str) -> (i64, Value) {
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
pub struct Started {
    _dir: tempfile::TempDir,
    pub site: Site,
    pub addr: String,
    pub tokens: HashMap<&'static str, String>,
}

impl Started {
    pub async fn new() -> Started {
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
        let mut tokens = HashMap::new();
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

    pub async fn client(&self, user: &str) -> Client {
        Client::connect(&self.addr, Some(&self.tokens[user])).await
    }
}
