//! End-to-end tests of the statistics: the real `mantle` binary serving a
//! site on loopback, driven over HTTP; its reports (`/stats`,
//! `/stats.json`, `/metrics`), who may see them, and `mantle stats`.

mod support;

use mantle_stats::{NamespaceSnapshot, Snapshot, Value};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use serde_json::json;
use support::*;

const PW: &str = "correct horse battery";

/// A loopback port that was free a moment ago.
fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

async fn stats_json(c: &reqwest::Client, server: &Server) -> Snapshot {
    let r = c.get(server.url("/stats.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    Snapshot::from_json(&r.text().await.unwrap()).expect("a statistics snapshot")
}

fn ns<'a>(snap: &'a Snapshot, name: &str) -> &'a NamespaceSnapshot {
    snap.namespace(name)
        .unwrap_or_else(|| panic!("no namespace {name} in {}", snap.to_json_pretty()))
}

fn num(snap: &Snapshot, namespace: &str, name: &str) -> f64 {
    ns(snap, namespace)
        .value(name)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{namespace}/{name} is not a number"))
}

#[path = "../../mantle-stats/tests/support/promtool.rs"]
mod promtool;
use mantle_web::HttpConfig;
use promtool::promtool_check;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reflect_activity_and_a_paused_namespace_freezes() {
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let port = free_loopback_port();
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.listen = ([127, 0, 0, 1], port).into())
            .unwrap()
    });
    // No --http: `mantle stats DIR` finds the server through mantle.toml.
    let server = Server::spawn(&["serve", site.path()], &[]);
    let c = client();

    // Activity: two logins, one failure, a slate written and read, a 404,
    // a query string.
    let t = token(&c, &server, "alice", PW).await;
    token(&c, &server, "alice", PW).await;
    let r = login(&c, &server, "alice", "wrong password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .put(server.url("/api/slates/prefs"))
        .bearer_auth(&t)
        .json(&json!({ "theme": "dark" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get_auth(&c, &server, "/api/slates/prefs", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.get(server.url("/no-such-page")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(server.url("/health?probe=1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let snap = stats_json(&c, &server).await;
    assert!(num(&snap, "HTTP", "Requests") >= 7.0);
    assert!(num(&snap, "HTTP", "Responses 2xx") >= 5.0);
    assert!(num(&snap, "HTTP", "Responses 4xx") >= 2.0);
    assert_eq!(num(&snap, "HTTP", "Responses 5xx"), 0.0);
    assert!(num(&snap, "HTTP", "Bytes Out") > 0.0);
    assert!(num(&snap, "HTTP", "In Flight") >= 1.0, "this request");
    assert!(num(&snap, "HTTP", "Requests/Second") > 0.0);
    let slowest = ns(&snap, "HTTP").collection("Slowest Requests").unwrap();
    assert!(!slowest.records.is_empty());
    for r in &slowest.records {
        let path = r.values.get("path").unwrap().to_string();
        assert!(path.starts_with('/') && !path.contains('?'), "{path}");
        assert!(r.values.get("method").is_some() && r.values.get("status").is_some());
    }
    assert_eq!(num(&snap, "Auth", "Logins"), 2.0);
    assert_eq!(num(&snap, "Auth", "Login Failures"), 1.0);
    assert_eq!(num(&snap, "Auth", "Active Tokens"), 2.0);
    assert!(num(&snap, "Stores", "Transactions") > 0.0);
    assert!(num(&snap, "Stores", "Open Stores") >= 2.0, "site and alice");
    assert!(num(&snap, "Stores", "Max Transaction Seconds") > 0.0);
    assert!(num(&snap, "Process", "Resident Memory Bytes") > 0.0);
    assert!(num(&snap, "Process", "Threads") >= 2.0);
    assert!(num(&snap, "Process", "Uptime Seconds") >= 0.0);
    assert!(snap.namespace("Messaging").is_some());

    // A relayed request does not count as loopback.
    let r = c
        .get(server.url("/stats.json"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // `mantle stats DIR` prints tables; `mantle stats URL --json` JSON.
    let table = ok(mantle(&["stats", site.path()]));
    for want in [
        "HTTP\n",
        "  Requests ",
        "Auth\n",
        "  Logins ",
        "Stores\n",
        "Process\n",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
    let printed = ok(mantle(&["stats", &server.base, "--json"]));
    let from_cli = Snapshot::from_json(&printed).expect("JSON from mantle stats --json");
    assert!(num(&from_cli, "Auth", "Logins") == 2.0);

    // Paused: HTTP counters freeze, reports (and other namespaces) go on.
    let out = mantle(&["stats", &server.base, "--disable", "HTTP"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = stats_json(&c, &server).await;
    assert!(!ns(&before, "HTTP").enabled);
    for _ in 0..5 {
        c.get(server.url("/health")).send().await.unwrap();
        c.get(server.url("/no-such-page")).send().await.unwrap();
    }
    token(&c, &server, "alice", PW).await;
    for path in ["/stats", "/metrics"] {
        let r = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} while paused");
    }
    let after = stats_json(&c, &server).await;
    for name in [
        "Requests",
        "Responses 2xx",
        "Responses 4xx",
        "Bytes Out",
        "Start Time",
    ] {
        assert_eq!(
            num(&after, "HTTP", name),
            num(&before, "HTTP", name),
            "HTTP/{name} moved while paused"
        );
    }
    assert_eq!(
        ns(&after, "HTTP").collection("Slowest Requests"),
        ns(&before, "HTTP").collection("Slowest Requests")
    );
    assert_eq!(num(&after, "Auth", "Logins"), 3.0, "Auth kept counting");

    let out = mantle(&["stats", site.path(), "--enable", "HTTP"]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.get(server.url("/health")).send().await.unwrap();
    let resumed = stats_json(&c, &server).await;
    assert!(ns(&resumed, "HTTP").enabled);
    assert!(num(&resumed, "HTTP", "Requests") > num(&before, "HTTP", "Requests"));

    let out = mantle(&["stats", &server.base, "--disable", "No Such Namespace"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No Such Namespace"),
        "{}",
        stderr(&out)
    );

    // /metrics: the Prometheus text format, accepted by Prometheus's parser.
    let r = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let metrics = r.text().await.unwrap();
    for want in [
        "# TYPE mantle_http_requests_total counter\n",
        "# TYPE mantle_http_responses_2xx_total counter\n",
        "# TYPE mantle_auth_logins_total counter\n",
        "# TYPE mantle_stores_transactions_total counter\n",
        "# TYPE mantle_process_resident_memory_bytes gauge\n",
        "# HELP mantle_http_requests_total ",
    ] {
        assert!(metrics.contains(want), "{want:?} missing from:\n{metrics}");
    }
    if let Some((code, said)) = promtool_check(&metrics) {
        assert_eq!(code, 0, "promtool check metrics: {said}\n---\n{metrics}");
    }

    // /stats: one table per namespace, one more per collection.
    let r = c.get(server.url("/stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let snap = stats_json(&c, &server).await;
    let collections: usize = snap.namespaces.iter().map(|n| n.collections.len()).sum();
    assert_eq!(
        html.matches("<table class=\"stats-values\">").count(),
        snap.namespaces.len()
    );
    assert_eq!(
        html.matches("<table class=\"stats-collection\">").count(),
        collections
    );
    assert_eq!(
        html.matches("<table").count(),
        snap.namespaces.len() + collections
    );
    for name in ["HTTP", "Stores", "Messaging", "Auth", "Process"] {
        assert!(html.contains(&format!("<h2>{name}</h2>")), "{name}");
    }
    assert!(html.contains(r#"action="/stats/enabled""#));

    let (status, _) = server.stop();
    assert!(status.success());
    let out = mantle(&["stats", site.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_loopback_trust_only_admins_see_the_statistics() {
    let site = TestSite::init("admin");
    site.add_user("bob", PW);
    ok(mantle_with_stdin(
        &["user", "add", site.path(), "root", "--admin"],
        &format!("{PW}\n"),
    ));
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.stats_from_loopback = false)
            .unwrap()
    });
    let server = site.serve(&[]);
    let c = client();
    let bob = token(&c, &server, "bob", PW).await;
    let root = token(&c, &server, "root", PW).await;

    let missing = c.get(server.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing_body = missing.bytes().await.unwrap();
    for path in ["/stats", "/stats.json", "/metrics"] {
        let r = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} without a token");
        let r = get_auth(&c, &server, path, &bob).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} for a non-admin");
        assert_eq!(
            r.bytes().await.unwrap(),
            missing_body,
            "like a missing page"
        );
        let r = c
            .get(server.url(path))
            .header(COOKIE, format!("mantle_token={bob}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "{path} for a non-admin cookie"
        );
        let r = get_auth(&c, &server, path, &root).await;
        assert_eq!(r.status(), StatusCode::OK, "{path} for an admin");
    }
    let toggle = json!({ "namespace": "Auth", "enabled": false });
    let r = c
        .post(server.url("/stats/enabled"))
        .bearer_auth(&bob)
        .json(&toggle)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .post(server.url("/stats/enabled"))
        .bearer_auth(&root)
        .json(&toggle)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), toggle);

    // The page's buttons: a form post with the CSRF cookie repeated.
    let r = c
        .get(server.url("/stats"))
        .header(COOKIE, format!("mantle_token={root}"))
        .send()
        .await
        .unwrap();
    let (csrf, _) = set_cookie(&r, "mantle_csrf").expect("a CSRF cookie");
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!(r#"name="csrf" value="{csrf}""#)));
    assert!(html.contains("Resume collection"), "Auth is paused");
    let cookies = format!("mantle_token={root}; mantle_csrf={csrf}");
    let form = |csrf: &str| format!("csrf={csrf}&namespace=Auth&enabled=true");
    let r = c
        .post(server.url("/stats/enabled"))
        .header(COOKIE, &cookies)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(server.url("/stats/enabled"))
        .header(COOKIE, &cookies)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/stats");
    let r = get_auth(&c, &server, "/stats.json", &root).await;
    let snap = Snapshot::from_json(&r.text().await.unwrap()).unwrap();
    assert!(ns(&snap, "Auth").enabled);

    // The command line needs an admin's token here.
    let out = mantle(&["stats", &server.base]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    let out = mantle(&["stats", &server.base, "--token", &bob]);
    assert_eq!(out.status.code(), Some(1));
    let out = ok(mantle(&[
        "stats",
        &server.base,
        "--token",
        &root,
        "--disable",
        "Messaging",
    ]));
    assert!(out.contains("Messaging  (paused)"), "{out}");
}
