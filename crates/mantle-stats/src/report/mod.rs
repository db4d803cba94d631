//! Reports: HTML ([`HtmlReport`], [`Snapshot::to_html`](crate::Snapshot::to_html))
//! and the Prometheus text format
//! ([`Snapshot::to_prometheus`](crate::Snapshot::to_prometheus)). JSON is
//! [`Snapshot::to_json`](crate::Snapshot::to_json).

mod html;
mod prometheus;

pub use html::{HtmlReport, TOGGLE_ENABLED_FIELD, TOGGLE_NAMESPACE_FIELD};
pub use prometheus::DEFAULT_PREFIX;
