//! The three reports: JSON, HTML and Prometheus text.

use std::time::{Duration, UNIX_EPOCH};

use mantle_stats::{HtmlReport, Record, Snapshot, StatsRegistry, Value, ValueKind};

/// A registry with one of everything, and hostile text where text goes.
fn populated() -> StatsRegistry {
    let stats = StatsRegistry::new();
    let web = stats.namespace("Web Server");
    web.counter("Requests", "Requests served.").add(42);
    web.gauge("Open Connections", "Connections open now.")
        .set(-3);
    web.float_gauge("Load Average", "").set(0.75);
    web.text("Version", "Build \"quoted\"\\ with\nnewline")
        .set("1.2.3 \"beta\"\n<b>");
    web.timestamp("Started", "When it started.")
        .set(UNIX_EPOCH + Duration::from_millis(1_714_564_800_250));
    let _never = web.timestamp("Never", "Not set yet.");
    web.function("Requests/Second", "", |s| {
        s.get_f64("Requests").map(|r| r / 2.0)
    });
    web.function("Status", "A text result.", |_| "fine");
    let workers = web.collection("Worker Threads", "One record per worker.", 8);
    workers.set("w-1", Record::new().with("Busy", true).with("Requests", 7));
    workers.set("w-2", Record::new().with("Requests", 3).with("URL", "/x"));
    let slow = web.collection("Slow <Requests>", "", 3);
    slow.keep_largest(
        Record::new().with("Path", "/a").with("Seconds", 1.5),
        "Seconds",
    );
    slow.keep_largest(
        Record::new().with("Path", "/b").with("Seconds", 2.5),
        "Seconds",
    );

    let evil = stats.namespace("<script>alert('ns')</script>");
    evil.counter("<script>alert(1)</script>", "<img src=x onerror=alert(2)>")
        .inc();
    evil.text("Banner", "")
        .set("</td><script>alert(3)</script>");
    evil.collection("Log", "", 2).push(
        Record::new()
            .with("<th>", "<script>alert(4)</script>")
            .with("&amp;", "\"'"),
    );
    evil.set_enabled(false);
    stats
}

#[test]
fn json_round_trip_gives_back_an_equal_snapshot() {
    let snap = populated().snapshot();
    for json in [snap.to_json(), snap.to_json_pretty()] {
        let back = Snapshot::from_json(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.to_json(), snap.to_json());
    }
}

#[test]
fn json_is_keyed_by_name_for_consumers() {
    let snap = populated().snapshot();
    let v: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    let web = &v["namespaces"]["Web Server"];
    assert_eq!(web["enabled"], true);
    assert_eq!(web["values"]["Requests"]["value"], 42);
    assert_eq!(web["values"]["Requests"]["kind"], "counter");
    assert_eq!(web["values"]["Requests/Second"]["value"], 21.0);
    assert_eq!(web["values"]["Started"]["value"], 1_714_564_800.25);
    assert_eq!(web["values"]["Never"]["value"], serde_json::Value::Null);
    let workers = &web["collections"]["Worker Threads"];
    assert_eq!(workers["capacity"], 8);
    assert_eq!(workers["records"][0]["key"], "w-1");
    assert_eq!(workers["records"][0]["values"]["Requests"], 7);
    let slow = &web["collections"]["Slow <Requests>"]["records"];
    assert_eq!(slow[0]["values"]["Path"], "/b", "largest first");
    // Registration order survives.
    let names: Vec<&String> = web["values"].as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 8);
}

#[test]
fn snapshot_kinds_are_recorded() {
    let snap = populated().snapshot();
    let web = snap.namespace("Web Server").unwrap();
    let kind = |n: &str| web.entry(n).unwrap().kind;
    assert_eq!(kind("Requests"), ValueKind::Counter);
    assert_eq!(kind("Load Average"), ValueKind::Gauge);
    assert_eq!(kind("Version"), ValueKind::Text);
    assert_eq!(kind("Started"), ValueKind::Timestamp);
    assert_eq!(kind("Status"), ValueKind::Function);
    assert_eq!(web.value("Status"), Some(&Value::from("fine")));
}

#[test]
fn html_escapes_hostile_text() {
    let snap = populated().snapshot();
    let html = HtmlReport::new()
        .title("<script>alert('title')</script>")
        .toggle_url("/stats?x=\"><script>alert(5)</script>")
        .csrf("csrf\"><script>", "tok\"en<script>")
        .render(&snap);
    assert!(
        !html.contains("<script"),
        "unescaped script tag in:\n{html}"
    );
    assert!(!html.contains("<img"));
    assert!(!html.contains("<th>\""));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;/td&gt;&lt;script&gt;alert(3)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("&quot;&#39;"));
    assert!(html.contains("&amp;amp;"));
    assert!(html.contains(r#"value="tok&quot;en&lt;script&gt;""#));
    // The default page escapes just the same.
    assert!(!snap.to_html().contains("<script"));
}

#[test]
fn html_has_one_table_per_namespace_and_per_collection() {
    let snap = populated().snapshot();
    let html = snap.to_html();
    assert_eq!(html.matches("<table").count(), 2 + 3);
    assert_eq!(html.matches("class=\"stats-values\"").count(), 2);
    assert_eq!(html.matches("class=\"stats-collection\"").count(), 3);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<time>2024-05-01T12:00:00.250Z</time>"));
    // Keyed collection: a Key column and the union of the fields.
    assert!(html.contains("<th scope=\"col\">Key</th><th scope=\"col\">Busy</th><th scope=\"col\">Requests</th><th scope=\"col\">URL</th>"));
    assert!(html.contains("<tr><th scope=\"row\">w-2</th><td></td><td>3</td><td>/x</td></tr>"));
    // No toggle forms unless asked for.
    assert!(!html.contains("<form"));
}

#[test]
fn html_toggle_forms_post_the_wanted_state() {
    let snap = populated().snapshot();
    let html = HtmlReport::new()
        .toggle_url("/admin/stats")
        .csrf("csrf", "abc")
        .render_fragment(&snap);
    assert!(!html.contains("<html"));
    assert_eq!(
        html.matches("<form class=\"stats-toggle\" method=\"post\" action=\"/admin/stats\">")
            .count(),
        2
    );
    // Web Server is enabled: its button pauses it.
    assert!(html.contains(
        "<input type=\"hidden\" name=\"csrf\" value=\"abc\"><input type=\"hidden\" name=\"namespace\" value=\"Web Server\"><input type=\"hidden\" name=\"enabled\" value=\"false\"><button type=\"submit\">Pause collection</button></form>"
    ));
    // The hostile namespace is disabled: its button resumes it.
    assert!(html.contains("value=\"true\"><button type=\"submit\">Resume collection</button>"));
}

#[test]
fn prometheus_output_shape() {
    let prom = populated().snapshot().to_prometheus();
    println!("{prom}");
    assert!(prom.ends_with('\n'));

    // Counters: _total, TYPE counter, HELP with the help text.
    assert!(prom.contains(
        "# HELP mantle_web_server_requests_total Requests served.\n\
         # TYPE mantle_web_server_requests_total counter\n\
         mantle_web_server_requests_total 42\n"
    ));
    // Gauges, integer and float.
    assert!(prom.contains(
        "# TYPE mantle_web_server_open_connections gauge\nmantle_web_server_open_connections -3\n"
    ));
    assert!(prom.contains("mantle_web_server_load_average 0.75\n"));
    // A HELP line is generated when there is no help.
    assert!(prom.contains("# HELP mantle_web_server_load_average Statistic \"Load Average\" of namespace \"Web Server\".\n"));
    // Enabled switch.
    assert!(prom.contains("# TYPE mantle_web_server_enabled gauge\nmantle_web_server_enabled 1\n"));
    assert!(prom.contains("mantle_script_alert_ns_script_enabled 0\n"));
    // Text as _info with an escaped label; HELP escaping of \ and newline.
    assert!(prom.contains(
        "# HELP mantle_web_server_version_info Build \"quoted\"\\\\ with\\nnewline\n\
         # TYPE mantle_web_server_version_info gauge\n\
         mantle_web_server_version_info{value=\"1.2.3 \\\"beta\\\"\\n<b>\"} 1\n"
    ));
    // Timestamps in Unix seconds; an unset one is left out.
    assert!(prom.contains("mantle_web_server_started_timestamp_seconds 1714564800.25\n"));
    assert!(!prom.contains("never"));
    // Numeric function results are gauges; text results are left out.
    assert!(prom.contains(
        "# TYPE mantle_web_server_requests_second gauge\nmantle_web_server_requests_second 21\n"
    ));
    assert!(!prom.contains("status"));
    // Collections as their length.
    assert!(prom.contains("# TYPE mantle_web_server_worker_threads_records gauge\nmantle_web_server_worker_threads_records 2\n"));
    assert!(prom.contains("mantle_web_server_slow_requests_records 2\n"));
    assert!(prom.contains("mantle_script_alert_ns_script_script_alert_1_script_total 1\n"));

    // Every family once, and every name legal.
    let mut families = std::collections::HashSet::new();
    for line in prom.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(families.insert(name.to_owned()), "family {name} twice");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    && !name.starts_with(|c: char| c.is_ascii_digit()),
                "bad name {name}"
            );
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(families.contains(name), "sample {name} before its TYPE");
        }
    }
    assert_eq!(prom.matches("# HELP ").count(), families.len());
}

#[test]
fn prometheus_names_that_sanitise_alike_stay_distinct() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("N");
    ns.counter("Hits Total", "").add(1);
    ns.counter("hits/total", "").add(2);
    ns.gauge("a b", "").set(3);
    ns.gauge("a-b", "").set(4);
    ns.gauge("Enabled?", "").set(5);
    let prom = stats.snapshot().to_prometheus_with_prefix("app");
    assert!(prom.contains("app_n_hits_total 1\n"));
    assert!(prom.contains("app_n_hits_2_total 2\n"));
    assert!(prom.contains("app_n_a_b 3\n"));
    assert!(prom.contains("app_n_a_b_2 4\n"));
    assert!(prom.contains("app_n_enabled 1\n"));
    assert!(prom.contains("app_n_enabled_2 5\n"));
}

#[test]
fn prometheus_spells_non_finite_floats_the_go_way() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("N");
    ns.float_gauge("inf", "").set(f64::INFINITY);
    ns.float_gauge("nan", "").set(f64::NAN);
    let prom = stats.snapshot().to_prometheus();
    assert!(prom.contains("mantle_n_inf +Inf\n"));
    assert!(prom.contains("mantle_n_nan NaN\n"));
}

#[test]
fn empty_registry_gives_empty_reports() {
    let snap = StatsRegistry::new().snapshot();
    assert_eq!(snap.to_prometheus(), "");
    assert!(snap.to_json().contains(r#""namespaces":{}"#));
    assert!(!snap.to_html().contains("<table"));
}
