//! The browser client (`/live.js`) and the lists example in a real
//! browser: headless Chromium driven over the Chrome DevTools Protocol,
//! two users on two pages of one list, against the real `mantle` binary,
//! including a server restart.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package, which
//! `scripts/test` installs); without it the test fails and says so.

mod browser;
mod support;

use browser::{Browser, Page, js};
use reqwest::StatusCode;
use serde_json::json;
use support::*;

const PW: &str = "correct horse battery";

/// The lists page's own helpers.
impl Page {
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
    a.log_in(&server, "alice", PW).await;
    b.log_in(&server, "bob", PW).await;
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
