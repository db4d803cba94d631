//! `mantle stats DIR|URL [--json] [--disable NS] [--enable NS]`: a running
//! server's statistics, over HTTP (`GET /stats.json`, `POST /stats/enabled`).

use std::fmt::Write as _;
use std::path::Path;

use mantle_site::SiteConfig;
use mantle_stats::{CollectionSnapshot, NamespaceSnapshot, Snapshot, Value, ValueKind};
use mantle_web::Toggle;
use reqwest::StatusCode;

use super::http::{self, Failure, reachable};
use crate::error::CliError;

/// Where the server is, and how to speak of it in messages.
struct Target {
    base: String,
    /// The site directory, if one was given.
    dir: Option<String>,
}

pub async fn run(
    target: String,
    json: bool,
    disable: Vec<String>,
    enable: Vec<String>,
    token: Option<String>,
) -> Result<u8, CliError> {
    let target = resolve(&target)?;
    let client = http::client()?;
    let token = token.filter(|t| !t.is_empty());
    let toggles = disable
        .into_iter()
        .map(|ns| (ns, false))
        .chain(enable.into_iter().map(|ns| (ns, true)));
    for (namespace, enabled) in toggles {
        let req = client
            .post(format!("{}/stats/enabled", target.base))
            .json(&Toggle { namespace, enabled });
        let body = fetch(req, token.as_deref(), &target).await?;
        let done: Toggle = serde_json::from_str(&body).map_err(|e| {
            CliError::Message(format!("{} answered an unexpected body: {e}", target.base))
        })?;
        eprintln!(
            "mantle: statistics namespace {:?} {}",
            done.namespace,
            if done.enabled { "resumed" } else { "paused" }
        );
    }
    let req = client.get(format!("{}/stats.json", target.base));
    let body = fetch(req, token.as_deref(), &target).await?;
    let snapshot = Snapshot::from_json(&body).map_err(|e| {
        CliError::Message(format!(
            "{}/stats.json is not a statistics report: {e}",
            target.base
        ))
    })?;
    if json {
        println!("{}", snapshot.to_json_pretty());
    } else {
        print!("{}", render(&snapshot));
    }
    Ok(0)
}

/// A URL as given (without a trailing `/`, `/stats` or `/stats.json`), or
/// the address a site directory's configuration listens on.
fn resolve(target: &str) -> Result<Target, CliError> {
    if target.starts_with("https://") {
        return Err(CliError::Message(format!(
            "{target}: mantle stats speaks plain HTTP only; give the server's own address \
             (http://HOST:PORT), or the site directory"
        )));
    }
    if target.starts_with("http://") {
        let mut base = target.trim_end_matches('/');
        for suffix in ["/stats.json", "/stats", "/metrics"] {
            base = base.strip_suffix(suffix).unwrap_or(base);
        }
        return Ok(Target {
            base: base.to_string(),
            dir: None,
        });
    }
    let dir = Path::new(target);
    if !dir.join(mantle_site::SITE_STORE).exists() {
        return Err(CliError::Message(format!(
            "{target} is neither a URL (http://HOST:PORT) nor a site directory"
        )));
    }
    let http = SiteConfig::load(dir)?.section::<mantle_web::HttpConfig>()?;
    if http.tls() {
        return Err(CliError::Message(format!(
            "the site in {target} serves HTTPS (http.tls_cert) and mantle stats speaks plain \
             HTTP only; from loopback: curl --cacert CERT https://HOST:PORT/stats.json"
        )));
    }
    let addr = reachable(http.listen).ok_or_else(|| {
        CliError::Message(format!(
            "the site in {target} is configured to listen on {} (any free port): \
             give the URL `mantle serve` printed instead",
            http.listen
        ))
    })?;
    Ok(Target {
        base: format!("http://{addr}"),
        dir: Some(target.to_string()),
    })
}

/// Sends `req` (with the token, if any) and answers its body, or the
/// error to print when the server cannot be reached or refuses.
async fn fetch(
    req: reqwest::RequestBuilder,
    token: Option<&str>,
    target: &Target,
) -> Result<String, CliError> {
    http::fetch(req, token).await.map_err(|f| match f {
        Failure::Unreachable(e) => unreachable(target, &e),
        Failure::Refused { status, error } => refused(target, status, error, token.is_some()),
    })
}

fn unreachable(target: &Target, e: &reqwest::Error) -> CliError {
    match &target.dir {
        Some(dir) if e.is_connect() => CliError::Message(format!(
            "the site in {dir} is not running: nothing answers at {} (start it with `mantle serve {dir}`)",
            target.base
        )),
        None if e.is_connect() => CliError::Message(format!(
            "nothing answers at {}: is `mantle serve` running there?",
            target.base
        )),
        _ => CliError::Message(format!("cannot reach {}: {e}", target.base)),
    }
}

fn refused(target: &Target, status: StatusCode, said: Option<String>, had_token: bool) -> CliError {
    match (status, said) {
        (StatusCode::NOT_FOUND, None) => {
            let hint = if had_token {
                "the token given is not an admin's (or has expired)"
            } else {
                "from elsewhere, pass an admin's token with --token or MANTLE_TOKEN"
            };
            CliError::Message(format!(
                "{} does not show its statistics to this request (404): they are answered to \
                 requests from loopback and to admins; {hint}",
                target.base
            ))
        }
        (status, Some(error)) => CliError::Message(format!("{} ({status}): {error}", target.base)),
        (status, None) => CliError::Message(format!("{} answered {status}", target.base)),
    }
}

/// The snapshot as tables for people: per namespace its values, then its
/// collections.
fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for (i, ns) in snapshot.namespaces.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        namespace(&mut out, ns);
    }
    out
}

fn namespace(out: &mut String, ns: &NamespaceSnapshot) {
    let _ = writeln!(
        out,
        "{}{}",
        ns.name,
        if ns.enabled { "" } else { "  (paused)" }
    );
    let rows: Vec<(String, String)> = ns
        .values
        .iter()
        .map(|v| (v.name.clone(), shown(v.kind, &v.value)))
        .collect();
    let name_w = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let value_w = rows
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0);
    for ((name, value), v) in rows.iter().zip(&ns.values) {
        let line = format!("  {name:<name_w$}  {value:>value_w$}  {}", v.help);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for c in &ns.collections {
        collection(out, c);
    }
}

fn collection(out: &mut String, c: &CollectionSnapshot) {
    let _ = writeln!(out, "  {} ({} of {})", c.name, c.records.len(), c.capacity);
    if c.records.is_empty() {
        return;
    }
    let keyed = c.records.iter().any(|r| r.key.is_some());
    let mut columns: Vec<String> = Vec::new();
    if keyed {
        columns.push("key".into());
    }
    for r in &c.records {
        for k in r.values.keys() {
            if !columns.iter().any(|c| c == k) {
                columns.push(k.to_string());
            }
        }
    }
    let rows: Vec<Vec<String>> = c
        .records
        .iter()
        .map(|r| {
            columns
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    if keyed && i == 0 {
                        r.key.clone().unwrap_or_default()
                    } else {
                        r.values
                            .get(col)
                            .map(|v| shown(ValueKind::Gauge, v))
                            .unwrap_or_default()
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, col)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([col.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut l = String::from("   ");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(l, " {cell:<w$} ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&columns));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
}

/// A value for people: timestamps as UTC dates, floats to three decimals.
fn shown(kind: ValueKind, value: &Value) -> String {
    match (kind, value) {
        (ValueKind::Timestamp, Value::Float(t)) if t.is_finite() => {
            mantle_store::Timestamp::from_micros((t * 1e6).round() as i64).to_string()
        }
        (_, Value::Float(x)) if x.is_finite() => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" { "0".into() } else { s.into() }
        }
        (_, Value::Null) => "-".into(),
        (_, v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_trailing_report_paths() {
        for given in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/stats",
            "http://127.0.0.1:8080/stats.json",
        ] {
            assert_eq!(resolve(given).unwrap().base, "http://127.0.0.1:8080");
        }
    }

    #[test]
    fn renders_values_and_collections() {
        let stats = mantle_stats::StatsRegistry::new();
        let web = stats.namespace("Web");
        web.counter("Requests", "Requests answered.").add(3);
        web.float_gauge("Load", "").set(0.25);
        web.collection("Slow", "", 5).push(
            mantle_stats::Record::new()
                .with("path", "/a")
                .with("ms", 12.5),
        );
        web.set_enabled(false);
        let text = render(&stats.snapshot());
        assert!(text.starts_with("Web  (paused)\n"), "{text}");
        assert!(
            text.contains("  Requests     3  Requests answered.\n"),
            "{text}"
        );
        assert!(text.contains("  Load      0.25\n"), "{text}");
        assert!(text.contains("  Slow (1 of 5)\n"), "{text}");
        assert!(text.contains("path  ms"), "{text}");
        assert!(text.contains("/a    12.5"), "{text}");
    }
}
