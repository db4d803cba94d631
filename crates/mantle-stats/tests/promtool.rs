//! Checks the Prometheus report with Prometheus's own parser, `promtool
//! check metrics`, when `promtool` is on the PATH (Debian: the `prometheus`
//! package). Without it, the checks print a note and pass.

mod support {
    pub mod promtool;
}

use std::time::{Duration, UNIX_EPOCH};

use mantle_stats::{Record, StatsRegistry};
use support::promtool::promtool_check;

#[test]
fn promtool_accepts_a_report_with_conventional_names_without_complaint() {
    let stats = StatsRegistry::new();
    let web = stats.namespace("Web");
    web.counter("Requests", "Requests served.").add(42);
    web.gauge("Open Connections", "Connections open now.")
        .set(3);
    web.float_gauge("Load Average", "One-minute load \\ average\nper core.")
        .set(0.75);
    web.text("Version", "The build.")
        .set("1.2.3 \"beta\"\nline two \\ ");
    web.timestamp("Start Time", "When the server started.")
        .set(UNIX_EPOCH + Duration::from_secs(1_714_564_800));
    web.function("Requests per Second", "Average since start.", |s| {
        s.get_f64("Requests").map(|r| r / 10.0)
    });
    web.function("Infinite", "", |_| f64::INFINITY);
    let workers = web.collection("Worker Threads", "One record per worker.", 4);
    workers.set("w1", Record::new().with("Busy", true));
    let mail = stats.namespace("Mail Relay");
    mail.counter("Messages Sent", "").add(7);
    mail.set_enabled(false);

    let text = stats.snapshot().to_prometheus();
    let Some((code, said)) = promtool_check(&text) else {
        return;
    };
    assert_eq!(code, 0, "promtool rejected or linted:\n{said}\n---\n{text}");
}

#[test]
fn promtool_parses_a_report_with_hostile_names() {
    let stats = StatsRegistry::new();
    let ns = stats.namespace("<script>\"Ünïcödé\" ns:1</script>");
    ns.counter("9 lives/sec", "help with \\ backslash\nand newline")
        .inc();
    ns.counter("9-lives sec", "").inc();
    ns.gauge("日本語", "").set(1);
    ns.gauge("中文", "").set(2);
    ns.text("Label", "")
        .set("quote \" backslash \\ newline \n end");
    ns.collection("::", "", 1).push(Record::new());
    let text = stats.snapshot().to_prometheus_with_prefix("");
    let Some((code, said)) = promtool_check(&text) else {
        return;
    };
    // Exit code 1 means the text did not parse; 3 means it parsed but the
    // linter disliked names (such as abbreviated units), which is fine here.
    assert!(
        code == 0 || code == 3,
        "promtool failed ({code}):\n{said}\n---\n{text}"
    );
    assert!(!said.contains("parsing error"), "{said}\n---\n{text}");
}
