//! Checks the Prometheus report with Prometheus's own parser, `promtool
//! check metrics`, when `promtool` is on the PATH (Debian: the `prometheus`
//! package). Without it, the checks print a note and pass.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use mantle_stats::{Record, StatsRegistry};

/// `promtool check metrics < file`: the exit code and combined output, or
/// `None` if promtool is not installed.
fn promtool_check(text: &str) -> Option<(i32, String)> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
    let output = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::from(file.reopen().unwrap()))
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: promtool not found on PATH; skipping the Prometheus parser check");
            return None;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    let code = output.status.code().unwrap_or(-1);
    eprintln!("promtool check metrics: exit {code}\n{said}");
    Some((code, said))
}

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
