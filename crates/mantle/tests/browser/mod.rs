//! Headless Chromium driven over the Chrome DevTools Protocol, for tests
//! that check pages in a real browser: pages in browser contexts of their
//! own (each its own cookies), JavaScript evaluated in them, screenshots.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package, which
//! `scripts/test` installs); without it a test fails and says so.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::SinkExt;
use futures::stream::{SplitSink, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::Server;

/// How long a page gets to show what is expected of it.
pub const WAIT: Duration = Duration::from_secs(20);
const CHROMIUM: &str = "/usr/bin/chromium";

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Reply = Result<Value, Value>;

/// One DevTools WebSocket to the browser; pages are flat sessions on it.
pub struct Cdp {
    sink: tokio::sync::Mutex<Sink>,
    next: AtomicU64,
    pending: sync::Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Console messages and uncaught exceptions, by session.
    logs: sync::Mutex<HashMap<String, Vec<String>>>,
    /// Uncaught exceptions in any page.
    pub exceptions: sync::Mutex<Vec<String>>,
}

/// `std::sync::Mutex` that shrugs off poisoning (a failed assertion in one
/// place should not hide the diagnostics of another).
pub mod sync {
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
pub struct Browser {
    child: Option<Child>,
    /// Removed (with Chromium's profile) after the browser is killed.
    _profile: tempfile::TempDir,
    pub cdp: Arc<Cdp>,
}

impl Browser {
    pub async fn launch() -> Browser {
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
    pub async fn page(&self, name: &'static str) -> Page {
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
pub struct Page {
    pub cdp: Arc<Cdp>,
    pub session: String,
    pub name: &'static str,
}

impl Page {
    /// Evaluates `expr` (awaiting a promise); its JSON value, or why not.
    pub async fn try_eval(&self, expr: &str) -> Result<Value, String> {
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

    pub async fn eval(&self, expr: &str) -> Value {
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
    pub async fn diagnostics(&self) -> String {
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
    pub async fn wait_for(&self, what: &str, expr: &str) {
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
    pub async fn bypass_csp(&self) {
        self.cdp
            .call(
                "Page.setBypassCSP",
                json!({"enabled": true}),
                Some(&self.session),
            )
            .await
            .unwrap_or_else(|e| panic!("Page.setBypassCSP: {e}"));
    }

    pub async fn goto(&self, url: &str) {
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
    pub async fn log_in(&self, server: &Server, username: &str, password: &str) {
        self.goto(&server.url("/login")).await;
        let status = self
            .eval(&format!(
                "fetch('/api/login', {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
                 body: JSON.stringify({{username: {}, password: {}}})}}).then(r => r.status)",
                js(username),
                js(password)
            ))
            .await;
        assert_eq!(
            status,
            json!(200),
            "page {} logging in as {username}",
            self.name
        );
    }
}

/// What a page is shown on.
#[derive(Debug, Clone, Copy)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// A phone: touch, a mobile viewport, two device pixels per CSS pixel.
    pub mobile: bool,
}

impl Viewport {
    /// A desktop browser window.
    pub const DESKTOP: Viewport = Viewport {
        width: 1280,
        height: 900,
        mobile: false,
    };
    /// A phone held upright (an iPhone 12 to 15's CSS size).
    pub const PHONE: Viewport = Viewport {
        width: 390,
        height: 844,
        mobile: true,
    };
}

impl Page {
    /// Shows the page on `viewport` from now on (reload to lay it out
    /// afresh).
    pub async fn set_viewport(&self, viewport: Viewport) {
        let scale = if viewport.mobile { 2 } else { 1 };
        let calls = [
            (
                "Emulation.setDeviceMetricsOverride",
                json!({
                    "width": viewport.width,
                    "height": viewport.height,
                    "deviceScaleFactor": scale,
                    "mobile": viewport.mobile,
                }),
            ),
            (
                "Emulation.setTouchEmulationEnabled",
                json!({ "enabled": viewport.mobile }),
            ),
        ];
        for (method, params) in calls {
            self.cdp
                .call(method, params, Some(&self.session))
                .await
                .unwrap_or_else(|e| panic!("page {}: {method} failed: {e}", self.name));
        }
    }

    /// Writes a PNG of what the page shows (the viewport, or the whole
    /// page when `full_page`) to `path`, making its directory.
    pub async fn screenshot(&self, path: &Path, full_page: bool) {
        use base64::Engine;
        let call = |method: &'static str, params: Value| async move {
            self.cdp
                .call(method, params, Some(&self.session))
                .await
                .unwrap_or_else(|e| panic!("page {}: {method} failed: {e}", self.name))
        };
        let mut params = json!({ "format": "png" });
        if full_page {
            let size = &call("Page.getLayoutMetrics", json!({})).await["cssContentSize"];
            params["captureBeyondViewport"] = json!(true);
            params["clip"] = json!({
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1,
            });
        }
        let shot = call("Page.captureScreenshot", params).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// A JavaScript string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).expect("JSON string")
}
