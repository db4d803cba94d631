//! The HTML report: one table per namespace, one more per collection.

use std::fmt::Write as _;

use crate::registry::ENABLED;
use crate::snapshot::{CollectionSnapshot, NamespaceSnapshot, Snapshot, ValueKind};
use crate::time::iso8601;
use crate::value::Value;

/// The form field naming the namespace in a toggle request.
pub const TOGGLE_NAMESPACE_FIELD: &str = "namespace";
/// The form field carrying the wanted state (`"true"` or `"false"`) in a
/// toggle request.
pub const TOGGLE_ENABLED_FIELD: &str = "enabled";

impl Snapshot {
    /// The snapshot as a complete HTML page, without toggle buttons; use
    /// [`HtmlReport`] for those, a title, or a fragment.
    #[must_use]
    pub fn to_html(&self) -> String {
        HtmlReport::new().render(self)
    }
}

/// Renders a [`Snapshot`] as HTML, optionally with a button per namespace
/// to pause or resume collection.
///
/// Every piece of text from the snapshot is escaped. Each namespace is a
/// `<section>` with a heading and a table of its values (the first row is
/// `Enabled`), then one table per collection whose columns are the union of
/// its records' fields.
///
/// With a [`toggle_url`](Self::toggle_url), each namespace gets a form that
/// POSTs (`application/x-www-form-urlencoded`) to it the fields
/// [`TOGGLE_NAMESPACE_FIELD`] (the namespace's name),
/// [`TOGGLE_ENABLED_FIELD`] (`"true"` or `"false"`: the state wanted) and,
/// if set with [`csrf`](Self::csrf), the CSRF field. The handler should check
/// the CSRF value and call
/// [`StatsRegistry::set_enabled`](crate::StatsRegistry::set_enabled).
///
/// ```
/// use mantle_stats::{HtmlReport, StatsRegistry};
///
/// let stats = StatsRegistry::new();
/// stats.namespace("Web").counter("Requests", "Requests served.").inc();
/// let html = HtmlReport::new()
///     .title("Node statistics")
///     .toggle_url("/admin/stats/enabled")
///     .csrf("csrf_token", "s3cr3t")
///     .render(&stats.snapshot());
/// assert!(html.contains(r#"method="post" action="/admin/stats/enabled""#));
/// assert!(html.contains(r#"name="csrf_token" value="s3cr3t""#));
/// ```
#[derive(Debug, Clone)]
pub struct HtmlReport {
    title: String,
    toggle_url: Option<String>,
    csrf: Option<(String, String)>,
}

impl Default for HtmlReport {
    fn default() -> Self {
        Self {
            title: "Statistics".to_owned(),
            toggle_url: None,
            csrf: None,
        }
    }
}

impl HtmlReport {
    /// A report titled "Statistics", without toggle buttons.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the page title (and top heading).
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Adds, per namespace, a form that POSTs to `url` to flip `Enabled`.
    #[must_use]
    pub fn toggle_url(mut self, url: impl Into<String>) -> Self {
        self.toggle_url = Some(url.into());
        self
    }

    /// Adds a hidden CSRF field named `field` with `value` to each toggle
    /// form.
    #[must_use]
    pub fn csrf(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.csrf = Some((field.into(), value.into()));
        self
    }

    /// A complete HTML document.
    #[must_use]
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        let _ = writeln!(out, "<title>{}</title>", escape(&self.title));
        out.push_str(STYLE);
        out.push_str("</head>\n<body>\n");
        let _ = writeln!(out, "<h1>{}</h1>", escape(&self.title));
        out.push_str(&self.render_fragment(snapshot));
        out.push_str("</body>\n</html>\n");
        out
    }

    /// The report without `<html>`, `<head>` or `<body>`, to embed in a
    /// page of one's own. Classes: `stats-namespace`, `stats-values`,
    /// `stats-collection`, `stats-toggle`, `stats-taken-at`.
    #[must_use]
    pub fn render_fragment(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "<p class=\"stats-taken-at\">Taken at <time>{}</time></p>",
            iso8601(snapshot.taken_at)
        );
        for ns in &snapshot.namespaces {
            self.namespace(&mut out, ns);
        }
        out
    }

    fn namespace(&self, out: &mut String, ns: &NamespaceSnapshot) {
        let name = escape(&ns.name);
        out.push_str("<section class=\"stats-namespace\">\n");
        let _ = writeln!(out, "<h2>{name}</h2>");
        if let Some(url) = &self.toggle_url {
            let _ = write!(
                out,
                "<form class=\"stats-toggle\" method=\"post\" action=\"{}\">",
                escape(url)
            );
            if let Some((field, value)) = &self.csrf {
                hidden(out, field, value);
            }
            hidden(out, TOGGLE_NAMESPACE_FIELD, &ns.name);
            hidden(
                out,
                TOGGLE_ENABLED_FIELD,
                if ns.enabled { "false" } else { "true" },
            );
            let _ = writeln!(
                out,
                "<button type=\"submit\">{} collection</button></form>",
                if ns.enabled { "Pause" } else { "Resume" }
            );
        }
        let _ = writeln!(
            out,
            "<table class=\"stats-values\">\n<caption>{name}</caption>\n\
             <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Value</th>\
             <th scope=\"col\">Description</th></tr></thead>\n<tbody>"
        );
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{ENABLED}</th><td>{}</td><td>Whether collection is on; reports work either way.</td></tr>",
            ns.enabled
        );
        for v in &ns.values {
            let shown = match (&v.kind, &v.value) {
                (ValueKind::Timestamp, Value::Float(t)) => {
                    format!("<time>{}</time>", iso8601(*t))
                }
                (_, value) => escape(&format_value(value)),
            };
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{shown}</td><td>{}</td></tr>",
                escape(&v.name),
                escape(&v.help)
            );
        }
        out.push_str("</tbody>\n</table>\n");
        for c in &ns.collections {
            collection(out, &ns.name, c);
        }
        out.push_str("</section>\n");
    }
}

fn collection(out: &mut String, namespace: &str, c: &CollectionSnapshot) {
    let mut columns: Vec<&str> = Vec::new();
    for r in &c.records {
        for k in r.values.keys() {
            if !columns.contains(&k) {
                columns.push(k);
            }
        }
    }
    let keyed = c.records.iter().any(|r| r.key.is_some());
    let _ = write!(
        out,
        "<table class=\"stats-collection\">\n<caption>{} — {} ({} of {})",
        escape(namespace),
        escape(&c.name),
        c.records.len(),
        c.capacity
    );
    if !c.help.is_empty() {
        let _ = write!(out, "<br><small>{}</small>", escape(&c.help));
    }
    out.push_str("</caption>\n<thead><tr>");
    if keyed {
        out.push_str("<th scope=\"col\">Key</th>");
    }
    for col in &columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(col));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &c.records {
        out.push_str("<tr>");
        if keyed {
            let _ = write!(
                out,
                "<th scope=\"row\">{}</th>",
                escape(r.key.as_deref().unwrap_or(""))
            );
        }
        for col in &columns {
            let cell = r.values.get(col).map(format_value).unwrap_or_default();
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn hidden(out: &mut String, name: &str, value: &str) {
    let _ = write!(
        out,
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    );
}

/// A value as text for people: floats to three decimals (trailing zeros
/// dropped), tiny ones in scientific notation.
fn format_value(v: &Value) -> String {
    match v {
        Value::Float(x) if x.is_finite() && *x != 0.0 && x.abs() < 1e-3 => format!("{x:.3e}"),
        Value::Float(x) if x.is_finite() && x.abs() < 1e15 => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_owned()
            } else {
                s.to_owned()
            }
        }
        other => other.to_string(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "<style>\n\
body{font-family:system-ui,sans-serif;margin:1.5rem}\n\
table{border-collapse:collapse;margin:0 0 1.5rem}\n\
caption{text-align:left;font-weight:bold;padding:.25rem 0}\n\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\n\
thead th{background:#f3f3f3}\n\
.stats-toggle{margin:.5rem 0}\n\
</style>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn formats_floats_for_people() {
        assert_eq!(format_value(&Value::Float(2.0)), "2");
        assert_eq!(format_value(&Value::Float(0.1 + 0.2)), "0.3");
        assert_eq!(format_value(&Value::Float(1.23456)), "1.235");
        assert_eq!(format_value(&Value::Float(0.00012)), "1.200e-4");
        assert_eq!(format_value(&Value::Float(-0.0001)), "-1.000e-4");
        assert_eq!(format_value(&Value::Float(-0.0)), "0");
        assert_eq!(format_value(&Value::Float(f64::NAN)), "NaN");
        assert_eq!(format_value(&Value::Int(7)), "7");
        assert_eq!(format_value(&Value::Null), "");
    }
}
