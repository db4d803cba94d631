//! The browser client (`/live.js`) and the lists example in a real
//! browser: headless Chromium driven over the Chrome DevTools Protocol,
//! two users on two pages of one list, against the real `mantle` binary,
//! including a server restart.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package, which
//! `scripts/test` installs); without it the test fails and says so.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::SinkExt;
use futures::stream::{SplitSink, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PW: &str = "correct horse battery";
/// How long a page gets to show what another page did.
const WAIT: Duration = Duration::from_secs(20);
const CHROMIUM: &str = "/usr/bin/chromium";

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Reply = Result<Value, Value>;

/// One DevTools WebSocket to the browser; pages are flat sessions on it.
struct Cdp {
    sink: tokio::sync::Mutex<Sink>,
    next: AtomicU64,
    pending: sync::Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Console messages and uncaught exceptions, by session.
    logs: sync::Mutex<HashMap<String, Vec<String>>>,
    exceptions: sync::Mutex<Vec<String>>,
}

/// `std::sync::Mutex` that shrugs off poisoning (a failed assertion in one
/// place should not hide the diagnostics of another).
mod sync {
    pub struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Self(std::sync::Mutex::new(t))
        }
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

impl Cdp {
    async fn connect(url: &str) -> Arc<Cdp> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Chromium's DevTools at {url}: {e}"));
        let (sink, mut stream) = ws.split();
        let cdp = Arc::new(Cdp {
            sink: tokio::sync::Mutex::new(sink),
            next: AtomicU64::new(1),
            pending: sync::Mutex::new(HashMap::new()),
            logs: sync::Mutex::new(HashMap::new()),
            exceptions: sync::Mutex::new(Vec::new()),
        });
        let reader = cdp.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg
                    && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
                {
                    reader.received(v);
                }
            }
            // The browser went away: fail whoever waits.
            reader.pending.lock().clear();
        });
        cdp
    }

    fn received(&self, v: Value) {
        if let Some(id) = v["id"].as_u64() {
            if let Some(tx) = self.pending.lock().remove(&id) {
                let _ = tx.send(match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                });
            }
            return;
        }
        let session = v["sessionId"].as_str().unwrap_or("").to_string();
        let params = &v["params"];
        let line = match v["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| match (&a["value"], &a["description"]) {
                        (Value::String(s), _) => s.clone(),
                        (Value::Null, Value::String(d)) => d.clone(),
                        (v, _) => v.to_string(),
                    })
                    .collect();
                format!(
                    "console.{}: {}",
                    params["type"].as_str().unwrap_or("?"),
                    args.join(" ")
                )
            }
            Some("Runtime.exceptionThrown") => {
                let d = &params["exceptionDetails"];
                let line = format!(
                    "uncaught exception: {} {}",
                    d["text"].as_str().unwrap_or(""),
                    d["exception"]["description"].as_str().unwrap_or("")
                );
                self.exceptions.lock().push(format!("[{session}] {line}"));
                line
            }
            _ => return,
        };
        self.logs.lock().entry(session).or_default().push(line);
    }

    /// Sends a command (to a page's session, or to the browser) and waits
    /// for its result.
    async fn call(&self, method: &str, params: Value, session: Option<&str>) -> Reply {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        self.sink
            .lock()
            .await
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("DevTools connection failed sending {method}: {e}"));
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => panic!("the browser closed its DevTools connection during {method}"),
            Err(_) => panic!("no DevTools answer to {method} within 60 s"),
        }
    }

    fn log_of(&self, session: &str) -> String {
        self.logs
            .lock()
            .get(session)
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }
}

/// Headless Chromium with its own profile; killed and reaped on drop.
struct Browser {
    child: Option<Child>,
    /// Removed (with Chromium's profile) after the browser is killed.
    _profile: tempfile::TempDir,
    cdp: Arc<Cdp>,
}

impl Browser {
    async fn launch() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is not installed, and this test drives a real browser: \
             run scripts/test (it installs Debian's `chromium` package), \
             or `apt-get install chromium`"
        );
        let profile = tempfile::tempdir().expect("profile directory");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("data").display()
            ))
            .arg("about:blank")
            // With --disable-dev-shm-usage Chromium keeps its shared memory
            // files in TMPDIR, and a killed browser leaves them behind: keep
            // them in the profile directory, which the test removes.
            .env("TMPDIR", profile.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let mut browser_child = Some(child);
        // Chromium writes "PORT\n/devtools/browser/ID" once it listens.
        let port_file = profile.path().join("data").join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                }
            }
            let exited = browser_child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                if let Some(mut c) = browser_child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!(
                    "Chromium did not open its DevTools port (exit status {exited:?}); its log:\n{}",
                    std::fs::read_to_string(profile.path().join("chromium.log"))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let cdp = Cdp::connect(&url).await;
        Browser {
            child: browser_child,
            _profile: profile,
            cdp,
        }
    }

    /// A page in a browser context of its own (its own cookies, so each
    /// page can be another user).
    async fn page(&self, name: &'static str) -> Page {
        let cdp = self.cdp.clone();
        let ok = |r: Reply, what: &str| r.unwrap_or_else(|e| panic!("{what} failed: {e}"));
        let context = ok(
            cdp.call("Target.createBrowserContext", json!({}), None)
                .await,
            "Target.createBrowserContext",
        );
        let target = ok(
            cdp.call(
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context["browserContextId"]}),
                None,
            )
            .await,
            "Target.createTarget",
        );
        let attached = ok(
            cdp.call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
                None,
            )
            .await,
            "Target.attachToTarget",
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Runtime.enable", "Page.enable"] {
            ok(cdp.call(domain, json!({}), Some(&session)).await, domain);
        }
        Page { cdp, session, name }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One browser tab.
struct Page {
    cdp: Arc<Cdp>,
    session: String,
    name: &'static str,
}

impl Page {
    /// Evaluates `expr` (awaiting a promise); its JSON value, or why not.
    async fn try_eval(&self, expr: &str) -> Result<Value, String> {
        let r = self
            .cdp
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
                Some(&self.session),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(d) = r.get("exceptionDetails") {
            return Err(format!(
                "{} {}",
                d["text"].as_str().unwrap_or(""),
                d["exception"]["description"].as_str().unwrap_or("")
            ));
        }
        Ok(r["result"]["value"].clone())
    }

    async fn eval(&self, expr: &str) -> Value {
        match self.try_eval(expr).await {
            Ok(v) => v,
            Err(e) => panic!(
                "page {}: `{expr}` failed: {e}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// What a failure message should show: the page's text and log.
    async fn diagnostics(&self) -> String {
        let text = self
            .try_eval("location.href + '\\n' + document.body.innerText")
            .await
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_else(|e| format!("(cannot read the page: {e})"));
        format!(
            "--- page {} shows:\n{text}\n--- its console:\n{}",
            self.name,
            self.cdp.log_of(&self.session)
        )
    }

    /// Waits until `expr` is `true` on this page.
    async fn wait_for(&self, what: &str, expr: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = Err(String::new());
        while Instant::now() < deadline {
            last = self.try_eval(expr).await;
            if last == Ok(Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "page {} did not show {what} within {WAIT:?} (last: {last:?})\n{}",
            self.name,
            self.diagnostics().await
        );
    }

    /// Makes the page ignore content security policies (from its next
    /// navigation on).
    async fn bypass_csp(&self) {
        self.cdp
            .call(
                "Page.setBypassCSP",
                json!({"enabled": true}),
                Some(&self.session),
            )
            .await
            .unwrap_or_else(|e| panic!("Page.setBypassCSP: {e}"));
    }

    async fn goto(&self, url: &str) {
        self.cdp
            .call("Page.navigate", json!({"url": url}), Some(&self.session))
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
        let check = format!(
            "location.href === {} && document.readyState === 'complete'",
            js(url)
        );
        self.wait_for(&format!("{url} loaded"), &check).await;
    }

    /// Logs in through the JSON API (which sets the login cookie).
    async fn log_in(&self, server: &Server, username: &str) {
        self.goto(&server.url("/login")).await;
        let status = self
            .eval(&format!(
                "fetch('/api/login', {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
                 body: JSON.stringify({{username: {}, password: {}}})}}).then(r => r.status)",
                js(username),
                js(PW)
            ))
            .await;
        assert_eq!(
            status,
            json!(200),
            "page {} logging in as {username}",
            self.name
        );
    }

    async fn wait_online(&self, online: bool) {
        let state = if online { "online" } else { "offline" };
        self.wait_for(
            &format!("#status {state}"),
            &format!("document.querySelector('#status').dataset.state === '{state}'"),
        )
        .await;
    }

    async fn add(&self, text: &str) {
        self.eval(&format!(
            "(() => {{ document.querySelector('#new-text').value = {}; \
             document.querySelector('#add').click(); return true; }})()",
            js(text)
        ))
        .await;
    }

    /// Waits for an entry saying `text`; returns its id.
    async fn wait_entry(&self, text: &str) -> i64 {
        let find = format!(
            "Array.from(document.querySelectorAll('#entries li[data-id]')).find(li => \
             li.querySelector('.text').textContent === {})",
            js(text)
        );
        self.wait_for(&format!("entry {text:?}"), &format!("!!({find})"))
            .await;
        self.eval(&format!("Number(({find}).dataset.id)"))
            .await
            .as_i64()
            .expect("entry id")
    }

    async fn wait_no_entry(&self, id: i64) {
        self.wait_for(
            &format!("entry {id} gone"),
            &format!("document.querySelector('#entries li[data-id=\"{id}\"]') === null"),
        )
        .await;
    }

    /// Runs `action` on the entry's element `li`.
    async fn on_entry(&self, id: i64, action: &str) {
        self.eval(&format!(
            "(() => {{ const li = document.querySelector('#entries li[data-id=\"{id}\"]'); \
             {action}; return true; }})()"
        ))
        .await;
    }

    async fn start_edit(&self, id: i64) {
        self.on_entry(id, "li.querySelector('.edit').click()").await;
    }

    async fn save_edit(&self, id: i64, text: &str) {
        self.on_entry(
            id,
            &format!(
                "li.querySelector('.edit-text').value = {}; li.querySelector('.save').click()",
                js(text)
            ),
        )
        .await;
    }

    /// The entries shown, in order.
    async fn texts(&self) -> Vec<String> {
        let v = self
            .eval(
                "Array.from(document.querySelectorAll('#entries li[data-id] .text'))\
                 .map(e => e.textContent)",
            )
            .await;
        serde_json::from_value(v).expect("texts")
    }

    /// How many snapshots the page's observation received.
    async fn snapshots(&self) -> i64 {
        self.eval("listsPage.counts.snapshots")
            .await
            .as_i64()
            .expect("count")
    }
}

/// A JavaScript string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("JSON string")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_share_a_list_live_through_a_server_restart() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    site.add_user("bob", PW);
    let port = free_port();
    let mut server = site.serve_on(port, &[]);

    // Without a login the page sends the browser to the login page.
    let c = client();
    let r = c.get(server.url("/lists/shopping")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()[reqwest::header::LOCATION], "/login");
    let r = c.get(server.url("/live.js")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("class MantleLive"));

    let browser = Browser::launch().await;
    let a = browser.page("A (alice)").await;
    let b = browser.page("B (bob)").await;
    // A opens a socket to another host name for the same server below,
    // which the site's content security policy (connect-src 'self')
    // rightly forbids its pages: A ignores the policy; B keeps it, so the
    // lists page is also shown to work under it.
    a.bypass_csp().await;
    a.log_in(&server, "alice").await;
    b.log_in(&server, "bob").await;
    let list = server.url("/lists/shopping");
    for p in [&a, &b] {
        p.goto(&list).await;
        p.wait_online(true).await;
        p.wait_for("the list's snapshot", "listsPage.counts.snapshots === 1")
            .await;
    }
    assert_eq!(
        a.eval("document.querySelector('#user').textContent").await,
        json!("Logged in as alice@localhost. Every logged-in user can see and change this list.")
    );

    // A adds; B sees it without reloading.
    a.add("milk").await;
    let milk = b.wait_entry("milk").await;
    assert_eq!(a.wait_entry("milk").await, milk);
    a.wait_for(
        "the input cleared",
        "document.querySelector('#new-text').value === ''",
    )
    .await;

    // B edits; A sees the edit.
    b.start_edit(milk).await;
    b.save_edit(milk, "oat milk").await;
    a.wait_entry("oat milk").await;

    // A starts editing at revision 2; B saves revision 3 meanwhile; A's
    // save is refused as a conflict, shown, and nothing is overwritten.
    a.start_edit(milk).await;
    b.start_edit(milk).await;
    b.save_edit(milk, "soy milk").await;
    a.wait_for(
        "revision 3 of the entry",
        &format!(
            "document.querySelector('#entries li[data-id=\"{milk}\"]').dataset.revision === '3'"
        ),
    )
    .await;
    a.save_edit(milk, "almond milk").await;
    a.wait_for(
        "a conflict on the entry",
        &format!(
            "document.querySelector('#entries li[data-id=\"{milk}\"] .conflict').textContent.startsWith('Conflict') \
             && document.querySelector('#message').dataset.kind === 'conflict'"
        ),
    )
    .await;
    b.wait_entry("soy milk").await;
    assert_eq!(
        b.texts().await,
        ["soy milk"],
        "the stale edit changed nothing"
    );
    // Saving again, knowingly, replaces it.
    a.save_edit(milk, "almond milk").await;
    b.wait_entry("almond milk").await;
    a.wait_entry("almond milk").await;

    // B removes an entry A added.
    a.add("eggs").await;
    let eggs = b.wait_entry("eggs").await;
    b.on_entry(eggs, "li.querySelector('.remove').click()")
        .await;
    a.wait_no_entry(eggs).await;

    // A handle that died behind the reference's back (released here) is
    // obtained again, and the call goes through.
    let released = a
        .eval("listsPage.live.call('Release', {handle: listsPage.ref.handle}).then(() => true)")
        .await;
    assert_eq!(released, json!(true));
    a.add("cheese").await;
    b.wait_entry("cheese").await;

    // A client logged in with live.login (not by the cookie: another host
    // name for the same server, so the page's cookie does not apply).
    let other_host = format!("ws://localhost:{port}/live");
    let logged_in = a
        .eval(&format!(
            "(async () => {{ \
               window.other = new MantleLive({}); await other.whenOnline(); \
               const before = await other.call('Whoami', {{}}).then(() => 'logged in', e => e.code); \
               await other.login('bob', {}); \
               return [before, (await other.call('Whoami', {{}})).username]; }})()",
            js(&other_host),
            js(PW)
        ))
        .await;
    assert_eq!(logged_in, json!(["UNAUTHORIZED", "bob@localhost"]));
    let still_bob = "other.whenOnline().then(l => l.call('Whoami', {})).then(a => a.username === 'bob@localhost', () => false)";

    // A goes away; B changes the list; A comes back and resumes from the
    // last sequence it saw: the missed deltas, no new snapshot.
    let a_snapshots = a.snapshots().await;
    a.eval("listsPage.live.close(), true").await;
    a.wait_online(false).await;
    let e = a
        .eval("listsPage.ref.call('AddEntry', {text: 'x'}).then(() => 'added', e => e.code)")
        .await;
    assert_eq!(
        e,
        json!("CONNECTION_LOST"),
        "calls while offline fail at once"
    );
    b.add("butter").await;
    b.wait_entry("butter").await;
    a.eval("listsPage.live.open(), true").await;
    a.wait_online(true).await;
    a.wait_entry("butter").await;
    assert_eq!(
        a.snapshots().await,
        a_snapshots,
        "A resumed instead of re-reading"
    );

    // The server stops (gracefully, then killed outright) and comes back
    // on the same port: both pages notice, reconnect by themselves, re-open
    // the list and resume observing from their last sequence.
    let (a_snapshots, b_snapshots) = (a.snapshots().await, b.snapshots().await);
    for (how, from_b, from_a) in [("SIGTERM", "bread", "jam"), ("SIGKILL", "tea", "honey")] {
        if how == "SIGTERM" {
            let (status, _) = server.stop();
            assert!(status.success(), "mantle serve exited with {status:?}");
        } else {
            server.kill();
        }
        a.wait_online(false).await;
        b.wait_online(false).await;
        server = site.serve_on(port, &[]);
        a.wait_online(true).await;
        b.wait_online(true).await;
        b.add(from_b).await;
        a.wait_entry(from_b).await;
        a.add(from_a).await;
        b.wait_entry(from_a).await;
        a.wait_for("the other client logged in again", still_bob)
            .await;
        assert_eq!(
            (a.snapshots().await, b.snapshots().await),
            (a_snapshots, b_snapshots),
            "both pages resumed from their last sequence after the {how} restart"
        );
    }
    let expected = [
        "almond milk",
        "cheese",
        "butter",
        "bread",
        "jam",
        "tea",
        "honey",
    ];
    assert_eq!(a.texts().await, expected);
    assert_eq!(b.texts().await, expected);

    let exceptions = browser.cdp.exceptions.lock().clone();
    assert!(
        exceptions.is_empty(),
        "uncaught exceptions in the pages: {exceptions:#?}"
    );
    drop(browser);
    let (status, stderr) = server.stop();
    assert!(status.success(), "mantle serve exited with {status:?}");
    assert!(
        error_lines(&stderr).is_empty(),
        "errors logged: {:#?}",
        error_lines(&stderr)
    );
}
