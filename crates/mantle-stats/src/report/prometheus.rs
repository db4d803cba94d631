//! The Prometheus text exposition format (version 0.0.4).

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::snapshot::{NamespaceSnapshot, Snapshot, ValueKind, ValueSnapshot};
use crate::value::Value;

/// The metric name prefix [`Snapshot::to_prometheus`] uses.
pub const DEFAULT_PREFIX: &str = "mantle";

impl Snapshot {
    /// The snapshot in the Prometheus text format, metric names starting
    /// with `mantle_`. See [`to_prometheus_with_prefix`](Self::to_prometheus_with_prefix).
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        self.to_prometheus_with_prefix(DEFAULT_PREFIX)
    }

    /// The snapshot in the Prometheus text format (version 0.0.4), metric
    /// names `<prefix>_<namespace>_<name>`.
    ///
    /// Names are sanitised: lower case, `camelCase` split with `_`, and each
    /// run of anything but ASCII letters and digits becomes one `_`
    /// ("Requests/Second" → `requests_second`). Every family has a `# HELP`
    /// line (the statistic's help, or one naming it) and a `# TYPE` line,
    /// and appears once: should two names sanitise alike, the later gets
    /// `_2`, `_3`, … before its suffix.
    ///
    /// | statistic | metric |
    /// |---|---|
    /// | `Enabled` switch | gauge `…_enabled`, 1 or 0 |
    /// | counter | counter `…_total` |
    /// | gauge | gauge |
    /// | timestamp | gauge `…_timestamp_seconds` (Unix seconds; omitted until set) |
    /// | text | gauge `…_info{value="<text>"} 1` |
    /// | function | gauge, if it returned a number or flag; omitted otherwise |
    /// | collection | gauge `…_records`: how many records it holds |
    ///
    /// The output ends with a newline (it is empty for an empty snapshot).
    #[must_use]
    pub fn to_prometheus_with_prefix(&self, prefix: &str) -> String {
        let mut out = Exposition {
            out: String::with_capacity(4096),
            used: HashSet::new(),
            prefix: sanitize(prefix),
        };
        for ns in &self.namespaces {
            out.namespace(ns);
        }
        out.out
    }
}

struct Exposition {
    out: String,
    used: HashSet<String>,
    prefix: String,
}

impl Exposition {
    fn namespace(&mut self, ns: &NamespaceSnapshot) {
        let nsp = sanitize_or(&ns.name, "namespace");
        let help = format!(
            "Whether namespace \"{}\" is collecting (1) or paused (0).",
            ns.name
        );
        let name = self.family(&nsp, "enabled", "", &help, "gauge");
        self.sample(&name, "", &Value::Bool(ns.enabled));

        for v in &ns.values {
            self.value(&nsp, &ns.name, v);
        }
        for c in &ns.collections {
            let help = if c.help.is_empty() {
                format!(
                    "Records held by collection \"{}\" of namespace \"{}\".",
                    c.name, ns.name
                )
            } else {
                format!("Records held: {}", c.help)
            };
            let name = self.family(
                &nsp,
                &sanitize_or(&c.name, "collection"),
                "_records",
                &help,
                "gauge",
            );
            self.sample(&name, "", &Value::from(c.records.len()));
        }
    }

    fn value(&mut self, nsp: &str, ns_name: &str, v: &ValueSnapshot) {
        let (suffix, kind) = match (v.kind, &v.value) {
            (ValueKind::Counter, _) => ("_total", "counter"),
            (ValueKind::Timestamp, Value::Float(_)) => ("_timestamp_seconds", "gauge"),
            (ValueKind::Text, Value::Text(_)) => ("_info", "gauge"),
            (ValueKind::Gauge | ValueKind::Function, value) if value.as_f64().is_some() => {
                ("", "gauge")
            }
            _ => return, // An unset timestamp, a non-numeric function result.
        };
        let help = if v.help.is_empty() {
            format!("Statistic \"{}\" of namespace \"{ns_name}\".", v.name)
        } else {
            v.help.clone()
        };
        let base = sanitize_or(&v.name, "value");
        let name = self.family(nsp, &base, suffix, &help, kind);
        match &v.value {
            Value::Text(text) => {
                let labels = format!("{{value=\"{}\"}}", escape_label(text));
                self.sample(&name, &labels, &Value::Int(1));
            }
            value => self.sample(&name, "", value),
        }
    }

    /// Writes the HELP and TYPE lines of a new family and returns its name,
    /// `<prefix>_<namespace>_<base>[_n]<suffix>`, unique in this output.
    fn family(&mut self, nsp: &str, base: &str, suffix: &str, help: &str, kind: &str) -> String {
        let mut stem: String = [self.prefix.as_str(), nsp, base]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("_");
        if stem.starts_with(|c: char| c.is_ascii_digit()) {
            stem.insert(0, '_');
        }
        if !suffix.is_empty() && stem.len() > suffix.len() && stem.ends_with(suffix) {
            stem.truncate(stem.len() - suffix.len());
        }
        let mut name = format!("{stem}{suffix}");
        let mut n = 2;
        while self.used.contains(&name) {
            name = format!("{stem}_{n}{suffix}");
            n += 1;
        }
        self.used.insert(name.clone());
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        name
    }

    fn sample(&mut self, name: &str, labels: &str, value: &Value) {
        let _ = writeln!(self.out, "{name}{labels} {}", number(value));
    }
}

/// A sample value: integers as written, floats in Go's spelling of the
/// non-finite ones.
fn number(v: &Value) -> String {
    match *v {
        Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(x) if x.is_nan() => "NaN".to_owned(),
        Value::Float(x) if x.is_infinite() => if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned(),
        Value::Float(x) => x.to_string(),
        Value::Null | Value::Text(_) => "NaN".to_owned(),
    }
}

/// `name` sanitised, or `fallback` if nothing is left of it.
fn sanitize_or(name: &str, fallback: &str) -> String {
    let s = sanitize(name);
    if s.is_empty() { fallback.to_owned() } else { s }
}

/// Lower-case snake case of ASCII letters and digits: `camelCase` is split,
/// every other run of characters becomes one `_`, and no `_` leads or
/// trails.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            let split_camel = ch.is_ascii_uppercase()
                && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            if split_camel && !out.ends_with('_') {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        prev = Some(ch);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// HELP text escaping: backslash and line feed.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label value escaping: backslash, double quote and line feed.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises_names() {
        assert_eq!(sanitize("Requests/Second"), "requests_second");
        assert_eq!(sanitize("SQLAlchemy ORM"), "sqlalchemy_orm");
        assert_eq!(sanitize("bytesRead"), "bytes_read");
        assert_eq!(sanitize("  --a::b--  "), "a_b");
        assert_eq!(sanitize("http2Streams"), "http2_streams");
        assert_eq!(sanitize("Temps (°C)"), "temps_c");
        assert_eq!(sanitize("日本"), "");
    }

    #[test]
    fn escapes_help_and_labels() {
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
        assert_eq!(escape_label("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
    }

    #[test]
    fn numbers_in_go_spelling() {
        assert_eq!(number(&Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(number(&Value::Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(number(&Value::Float(f64::NAN)), "NaN");
        assert_eq!(number(&Value::Float(0.5)), "0.5");
        assert_eq!(number(&Value::Float(1e21)), "1000000000000000000000");
        assert_eq!(number(&Value::from(u64::MAX)), "18446744073709551615");
        assert_eq!(number(&Value::Bool(true)), "1");
    }
}
