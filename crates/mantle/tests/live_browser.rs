//! The browser client (`/live.js`) and the lists example in a real
//! browser: headless Chromium driven over the Chrome DevTools Protocol,
//! against the real `mantle` binary. Two users on two pages of one list
//! (its owner shared it for editing), through server restarts; and an
//! owner sharing one list for editing, one for reading and publishing a
//! third, seen by another user and an anonymous visitor, then withdrawing
//! a share from under an open page. And the lists page of a user one
//! node of a cluster holds, used through another node.
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

    /// Goes to a list's page and waits for its first snapshot.
    async fn open_list(&self, url: &str) {
        self.goto(url).await;
        self.wait_online(true).await;
        self.wait_for("the list's snapshot", "listsPage.counts.snapshots === 1")
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

    /// On the owner's page: shares the list with `with` for `access`
    /// through the sharing form, and waits for the share to be listed.
    async fn share(&self, with: &str, access: &str, shown_as: &str) {
        self.eval(&format!(
            "(() => {{ document.querySelector('#share-with').value = {}; \
             document.querySelector('#share-access').value = {}; \
             document.querySelector('#share').click(); return true; }})()",
            js(with),
            js(access)
        ))
        .await;
        self.wait_for(
            &format!("{with} listed with {access} access"),
            &format!(
                "Array.from(document.querySelectorAll('#shares li')).some(li => \
                 li.dataset.with === {} && li.dataset.access === {})",
                js(shown_as),
                js(access)
            ),
        )
        .await;
    }

    /// Whether the page has any control to change the list.
    async fn edit_controls(&self) -> i64 {
        self.eval(
            "document.querySelectorAll('#add-form, #new-text, #add, #entries .edit, \
             #entries .remove, #entries .save, #entries .edit-text').length",
        )
        .await
        .as_i64()
        .expect("count")
    }

    /// The outcome of calling `command` on the page's list handle: `ok`,
    /// or the error code.
    async fn forced(&self, command: &str, args: &str) -> serde_json::Value {
        self.eval(&format!(
            "listsPage.ref.call({}, {args}).then(() => 'ok', e => e.code)",
            js(command)
        ))
        .await
    }

    /// How many snapshots the page's observation received.
    async fn snapshots(&self) -> i64 {
        self.eval("listsPage.counts.snapshots")
            .await
            .as_i64()
            .expect("count")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_share_a_list_live_through_a_server_restart() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    site.add_user("bob", PW);
    let port = free_port();
    let mut server = site.serve_on(port, &[]);

    // Without a login the pages send the browser to the login page.
    let c = client();
    let r = c.get(server.url("/lists/shopping")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()[reqwest::header::LOCATION], "/login");
    let r = c.get(server.url("/lists")).send().await.unwrap();
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
    // Alice's list is made as she first opens it; she lets Bob edit it.
    let list = server.url("/lists/alice@localhost/shopping");
    a.open_list(&list).await;
    a.share("bob", "edit", "bob@localhost").await;
    b.open_list(&list).await;
    assert_eq!(
        a.eval("document.querySelector('#user').textContent").await,
        json!("Logged in as alice@localhost. Your list: share it below.")
    );
    assert_eq!(
        b.eval("document.querySelector('#user').textContent").await,
        json!(
            "Logged in as bob@localhost. alice@localhost shares this list with you: you can change it."
        )
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

/// Where this test's screenshots go: `target/test-output/lists/`.
fn output_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-output")
        .join("lists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_shares_for_editing_for_reading_and_with_everyone_then_withdraws() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    site.add_user("bob", PW);
    let server = site.serve_on(free_port(), &[]);
    let shots = output_dir();
    let browser = Browser::launch().await;
    let a = browser.page("A (alice)").await;
    let b = browser.page("B (bob)").await;
    let anon = browser.page("C (anonymous)").await;
    a.log_in(&server, "alice", PW).await;
    b.log_in(&server, "bob", PW).await;
    let url = |name: &str| server.url(&format!("/lists/alice@localhost/{name}"));

    // A list Bob may read: his page has no control to change it, and the
    // server refuses a change forced through the page's handle.
    a.open_list(&url("recipes")).await;
    a.add("soup").await;
    a.wait_entry("soup").await;
    a.share("bob", "read", "bob@localhost").await;
    b.open_list(&url("recipes")).await;
    b.wait_entry("soup").await;
    assert_eq!(
        b.eval("document.querySelector('#lists-page').dataset.edit")
            .await,
        json!("false")
    );
    assert_eq!(
        b.edit_controls().await,
        0,
        "no add, edit or remove controls"
    );
    assert_eq!(
        b.forced("AddEntry", "{text: 'forced'}").await,
        json!("NOT_FOUND")
    );
    let soup = b.wait_entry("soup").await;
    assert_eq!(
        b.forced("RemoveEntry", &format!("{{id: {soup}, revision: 1}}"))
            .await,
        json!("NOT_FOUND")
    );
    assert_eq!(a.texts().await, ["soup"], "nothing changed");
    b.screenshot(&shots.join("read-only.png"), true).await;

    // A list published to everyone: an anonymous visitor reads it at the
    // address the owner's page gives, which does not show hers, and no
    // page of it shows her address in a form harvesters match.
    a.open_list(&url("menu")).await;
    a.add("cake").await;
    a.wait_entry("cake").await;
    a.share("everyone", "read", "everyone").await;
    a.wait_for(
        "the public link shown",
        "!document.querySelector('#public-link').hidden",
    )
    .await;
    let public = a
        .eval("document.querySelector('#public-link a').href")
        .await
        .as_str()
        .expect("a link")
        .to_string();
    assert!(
        public.contains("/lists/account:") && !public.contains("alice"),
        "{public}"
    );
    a.screenshot(&shots.join("owner.png"), true).await;
    for address in [public.clone(), url("menu")] {
        anon.goto(&address).await;
        assert_eq!(
            anon.eval("document.querySelector('#list-name').textContent")
                .await,
            json!("menu")
        );
        assert_eq!(
            anon.eval(
                "Array.from(document.querySelectorAll('#entries li .text')).map(e => e.textContent)"
            )
            .await,
            json!(["cake"])
        );
        assert_eq!(
            anon.eval("document.querySelector('#by').textContent").await,
            json!("A list by alice (at) localhost, published for anyone to read.")
        );
        let html = anon
            .eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .expect("the page")
            .to_string();
        assert!(!html.contains("alice@"), "harvestable address: {html}");
        assert!(
            !html.contains("<form") && !html.contains("page.js"),
            "{html}"
        );
    }
    anon.screenshot(&shots.join("public.png"), true).await;
    // What is not published is not found, as what does not exist.
    let c = client();
    let unpublished = c.get(url("recipes")).send().await.unwrap();
    assert_eq!(unpublished.status(), StatusCode::NOT_FOUND);
    let unpublished = unpublished.text().await.unwrap();
    let missing = c.get(url("nothing")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(unpublished, missing.text().await.unwrap());

    // A list Bob may edit: his entry shows on Alice's page at once.
    a.open_list(&url("groceries")).await;
    a.share("bob", "edit", "bob@localhost").await;
    b.open_list(&url("groceries")).await;
    b.add("apples").await;
    let apples = a.wait_entry("apples").await;
    assert_eq!(b.wait_entry("apples").await, apples);
    assert!(b.edit_controls().await > 0, "Bob's page may change it");

    // Alice withdraws his share: his page says the list is gone, shows
    // none of it, and the list refuses him; her page carries on.
    a.eval(
        "(() => { const li = Array.from(document.querySelectorAll('#shares li'))\
         .find(li => li.dataset.with === 'bob@localhost'); \
         li.querySelector('.unshare').click(); return true; })()",
    )
    .await;
    b.wait_for(
        "the list shown as no longer available",
        "document.querySelector('#lists-page').dataset.state === 'gone' \
         && document.querySelector('#message').textContent === 'This list is no longer available to you.'",
    )
    .await;
    assert!(b.texts().await.is_empty(), "nothing of it is shown");
    assert_eq!(b.edit_controls().await, 0);
    let reopened = b
        .eval(
            "listsPage.live.call('OpenList', {owner: 'alice@localhost', name: 'groceries'})\
             .then(() => 'opened', e => e.code)",
        )
        .await;
    assert_eq!(reopened, json!("NOT_FOUND"));
    b.screenshot(&shots.join("withdrawn.png"), true).await;
    a.wait_for(
        "bob no longer listed",
        "!Array.from(document.querySelectorAll('#shares li')).some(li => li.dataset.with === 'bob@localhost')",
    )
    .await;
    a.add("pears").await;
    a.wait_entry("pears").await;

    // The index pages: hers, with whom each list is shared; his, what is
    // still shared with him.
    a.goto(&server.url("/lists")).await;
    assert_eq!(
        a.eval("Array.from(document.querySelectorAll('#my-lists li[data-name]')).map(li => li.dataset.name)")
            .await,
        json!(["groceries", "menu", "recipes"])
    );
    a.screenshot(&shots.join("index.png"), true).await;
    b.goto(&server.url("/lists")).await;
    assert_eq!(
        b.eval(
            "Array.from(document.querySelectorAll('#shared-lists li[data-name]'))\
             .map(li => li.dataset.owner + '/' + li.dataset.name)"
        )
        .await,
        json!(["alice@localhost/recipes"])
    );

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

/// Two nodes of a cluster (three etcd members): Alice's store is on n1,
/// and one of her browser pages talks only to n2, which passes its
/// requests and its live socket on. A second page, on n1, sees what the
/// first added, and the first sees the second's change live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_page_works_through_a_node_that_does_not_hold_the_user() {
    use support::cluster::{envs, one_at_a_time, pairs};
    let _one = one_at_a_time().await;
    let Some(etcd) = mantle_cluster::harness::EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..2).map(|_| TestSite::init("admin")).collect();
    let envs = envs(&etcd, 2);
    let servers: Vec<Server> = sites
        .iter()
        .zip(&envs)
        .map(|(s, e)| s.serve(&pairs(e)))
        .collect();
    // Made through n1 while it serves: n1 holds Alice's store.
    sites[0].add_user("alice", PW);
    let browser = Browser::launch().await;
    let far = browser.page("alice through n2").await;
    far.log_in(&servers[1], "alice", PW).await;
    far.open_list(&servers[1].url("/lists/alice@localhost/groceries"))
        .await;
    far.add("milk").await;
    far.wait_entry("milk").await;
    let near = browser.page("alice on n1").await;
    near.log_in(&servers[0], "alice", PW).await;
    near.open_list(&servers[0].url("/lists/alice@localhost/groceries"))
        .await;
    near.wait_entry("milk").await;
    near.add("bread").await;
    far.wait_entry("bread").await;
    assert_eq!(far.texts().await, ["milk", "bread"]);
    // n2 holds nothing of Alice's.
    assert!(!sites[1].dir.join("users/alice_localhost.store").exists());
    assert!(sites[0].dir.join("users/alice_localhost.store").exists());
}
