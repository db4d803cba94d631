//! The bookmarks example in a real browser: headless Chromium driven over
//! the Chrome DevTools Protocol, one browser context per person (Alice,
//! Bob, an anonymous visitor), against a site served in this process (the
//! `mantle` binary does not include the bookmarks: they have a binary of
//! their own). Alice publishes one bookmark and shares another with Bob;
//! each sees what the sharing layer lets them see, and a withdrawn share
//! is gone at Bob's next reload.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package, which
//! `scripts/test` installs); without it the test fails and says so.

mod browser;
mod support;

use std::time::{Duration, Instant};

use browser::{Browser, Page, WAIT, js};
use mantle_site::{Site, SiteConfig};
use mantle_web::{HttpConfig, HttpService};
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

/// A bookmarks site served on a loopback port: Alice and Bob, each given
/// the bookmarks.
async fn serve(dir: &std::path::Path) -> (Site, String) {
    let mut config = SiteConfig::default();
    config
        .edit_section::<HttpConfig>(|h| h.listen = "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let program = mantle::Program::new(|site| site.offering(bookmarks::offering()));
    let site = program.site(dir).init(config).await.unwrap();
    site.services()
        .install(HttpService {
            label: "web".into(),
        })
        .await
        .unwrap();
    site.offerings().install(bookmarks::NAME).await.unwrap();
    site.products()
        .create(bookmarks::NAME, &[bookmarks::NAME])
        .await
        .unwrap();
    for who in ["alice", "bob"] {
        let account = site.accounts().create(who, PW, false).await.unwrap();
        site.products()
            .grant(bookmarks::NAME, account.id)
            .await
            .unwrap();
    }
    let started = site.start().await.unwrap();
    let base = started
        .iter()
        .find(|(name, _)| name == "http")
        .and_then(|(_, address)| address.clone())
        .expect("an http address");
    (site, base)
}

/// The bookmarks page's own helpers.
impl Page {
    /// Logs in through the JSON API (which sets the login cookie).
    async fn log_in_at(&self, base: &str, username: &str) {
        self.goto(&format!("{base}/login")).await;
        let status = self
            .eval(&format!(
                "fetch('/api/login', {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
                 body: JSON.stringify({{username: {}, password: {}}})}}).then(r => r.status)",
                js(username),
                js(PW)
            ))
            .await;
        assert_eq!(status, json!(200), "page {} logging in", self.name);
    }

    /// Waits until the page's script has set up its controls (a click
    /// before that would submit a form the browser's own way).
    async fn wait_ready(&self) {
        self.wait_for(
            "the page's controls",
            "document.querySelector('#bookmarks-app')?.dataset.ready === 'true'",
        )
        .await;
    }

    /// The expression finding the item of the caller's own bookmark
    /// titled `title`.
    fn mine(title: &str) -> String {
        format!(
            "Array.from(document.querySelectorAll('#mine > li[data-id]')).find(li => \
             li.querySelector('.title').textContent === {})",
            js(title)
        )
    }

    /// Adds a bookmark with the page's form; waits for it to be listed.
    async fn add(&self, url: &str, title: &str) {
        self.wait_ready().await;
        self.eval(&format!(
            "(() => {{ document.querySelector('#new-url').value = {}; \
             document.querySelector('#new-title').value = {}; \
             document.querySelector('#add-button').click(); return true; }})()",
            js(url),
            js(title)
        ))
        .await;
        self.wait_for(
            &format!("bookmark {title:?}"),
            &format!("!!({})", Self::mine(title)),
        )
        .await;
    }

    /// Runs `action` on the item `li` of the caller's bookmark `title`.
    async fn on_mine(&self, title: &str, action: &str) {
        self.wait_ready().await;
        self.eval(&format!(
            "(() => {{ const li = {}; {action}; return true; }})()",
            Self::mine(title)
        ))
        .await;
    }

    /// The titles of what others share with the caller, as the page shows
    /// them.
    async fn shared_titles(&self) -> Vec<String> {
        let v = self
            .eval("Array.from(document.querySelectorAll('#shared li .title')).map(a => a.textContent)")
            .await;
        serde_json::from_value(v).expect("titles")
    }

    /// Loads `url` again and again until `expr` holds there (what the
    /// page shows comes from the server: a reload is how it changes).
    async fn reload_until(&self, url: &str, what: &str, expr: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.goto(url).await;
            if self.try_eval(expr).await == Ok(Value::Bool(true)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "page {} did not show {what} within {WAIT:?}\n{}",
                    self.name,
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The status of a `GET` of `path` from this page.
    async fn status_of(&self, path: &str) -> Value {
        self.eval(&format!("fetch({}).then(r => r.status)", js(path)))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_publishes_one_bookmark_and_shares_another_with_bob_until_she_withdraws_it() {
    let dir = tempfile::tempdir().unwrap();
    let (site, base) = serve(&dir.path().join("site")).await;
    let browser = Browser::launch().await;
    let alice = browser.page("alice").await;
    let bob = browser.page("bob").await;
    let anon = browser.page("anonymous").await;
    alice.log_in_at(&base, "alice").await;
    bob.log_in_at(&base, "bob").await;

    // Alice adds two bookmarks, publishes one, shares the other with Bob.
    let page = format!("{base}/bookmarks");
    alice.goto(&page).await;
    alice.add("https://www.rust-lang.org/", "Rust").await;
    alice.add("https://example.com/plans", "Secret plans").await;
    alice
        .on_mine("Rust", "li.querySelector('button.publish').click()")
        .await;
    alice
        .wait_for(
            "Rust published",
            &format!("!!({}).querySelector('.public')", Page::mine("Rust")),
        )
        .await;
    alice
        .on_mine(
            "Secret plans",
            "li.querySelector('form.share input[name=to]').value = 'bob'; \
             li.querySelector('form.share').requestSubmit()",
        )
        .await;
    let shared_with_bob = format!(
        "!!({}).querySelector('.shared-with li[data-login=\"bob@localhost\"]')",
        Page::mine("Secret plans")
    );
    alice
        .wait_for("Secret plans shared with Bob", &shared_with_bob)
        .await;
    assert_eq!(
        alice
            .eval("document.querySelector('#message').textContent")
            .await,
        json!(""),
        "no error shown"
    );

    // Bob sees the shared one (once his store has heard of it), not the
    // published one, and not as a bookmark of his own.
    bob.reload_until(
        &page,
        "Secret plans shared with him",
        "Array.from(document.querySelectorAll('#shared li .title')).some(a => a.textContent === 'Secret plans')",
    )
    .await;
    assert_eq!(bob.shared_titles().await, ["Secret plans"]);
    assert_eq!(
        bob.eval("document.querySelector('#shared li .owner').textContent")
            .await,
        json!("alice@localhost")
    );
    assert_eq!(
        bob.eval("document.querySelectorAll('#mine > li').length")
            .await,
        json!(0)
    );
    let share_id = bob
        .eval("document.querySelector('#shared li').dataset.share")
        .await;
    let share_id = share_id.as_str().expect("a share id").to_string();
    let shared_api = format!("/api/bookmarks/shared/alice/{share_id}");
    assert_eq!(bob.status_of(&shared_api).await, json!(200));

    // An anonymous visitor sees only the published one on Alice's public
    // page, and never her address as a harvester would read it.
    let public = format!("{base}/bookmarks/public/alice");
    anon.goto(&public).await;
    let titles = anon
        .eval("Array.from(document.querySelectorAll('#published li a')).map(a => a.textContent)")
        .await;
    assert_eq!(titles, json!(["Rust"]));
    let html = anon
        .eval("document.documentElement.outerHTML")
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(!html.contains("alice@"), "{html}");
    assert!(!html.contains("mailto:"), "{html}");
    assert!(html.contains("alice (at) localhost"), "{html}");
    // Nor may it read what Alice shares with Bob: the same 404 as for a
    // share that does not exist.
    assert_eq!(anon.status_of(&shared_api).await, json!(404));
    assert_eq!(
        anon.status_of("/api/bookmarks/shared/alice/no-such-share")
            .await,
        json!(404)
    );

    // Alice withdraws Bob's share: gone from his page at his next reload,
    // and no longer readable by him.
    alice
        .on_mine(
            "Secret plans",
            "li.querySelector('.shared-with li[data-login=\"bob@localhost\"] button.withdraw').click()",
        )
        .await;
    alice
        .wait_for("the share withdrawn", &format!("!({shared_with_bob})"))
        .await;
    bob.goto(&page).await;
    assert!(bob.shared_titles().await.is_empty());
    assert_eq!(
        bob.eval("!!document.querySelector('#shared-none')").await,
        json!(true)
    );
    assert_eq!(bob.status_of(&shared_api).await, json!(404));

    // Alice unpublishes Rust: the public page is gone, as for anyone who
    // has published nothing.
    alice
        .on_mine("Rust", "li.querySelector('button.unpublish').click()")
        .await;
    alice
        .wait_for(
            "Rust unpublished",
            &format!("!({}).querySelector('.public')", Page::mine("Rust")),
        )
        .await;
    assert_eq!(anon.status_of("/bookmarks/public/alice").await, json!(404));

    let exceptions = browser.cdp.exceptions.lock().clone();
    assert!(
        exceptions.is_empty(),
        "uncaught exceptions in the pages: {exceptions:#?}"
    );
    drop(browser);
    site.close().await;
}
