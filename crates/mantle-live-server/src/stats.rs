//! The "Live" statistics namespace (see [`LIVE_NAMESPACE`]).

use std::sync::{Arc, Weak};

use mantle_stats::{Counter, Gauge, StatsRegistry};

use crate::hub::Hub;

/// The name of the live objects' statistics namespace, "Live", and what it
/// holds (both transports together). It appears in a site's reports once
/// the AMP listener starts or the first WebSocket connects.
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Connections` | gauge | open AMP and WebSocket connections |
/// | `Calls` | counter | requests run (built-ins included) |
/// | `Errors` | counter | requests answered with an error |
/// | `Deltas Pushed` | counter | `Delta` pushes queued to observers |
/// | `Resyncs` | counter | observations told to observe again |
/// | `Logins Refused For Rate` | counter | `Login`s refused with `TOO_MANY_ATTEMPTS` |
/// | `Observers` | function | observations open now |
pub const LIVE_NAMESPACE: &str = "Live";

/// The namespace's handles, shared by every connection.
pub(crate) struct LiveStats {
    pub connections: Gauge,
    pub calls: Counter,
    pub errors: Counter,
    pub deltas: Counter,
    pub resyncs: Counter,
    pub rate_refusals: Counter,
}

impl LiveStats {
    pub fn new(registry: &StatsRegistry, hub: Weak<Hub>) -> Self {
        let ns = registry.namespace(LIVE_NAMESPACE);
        ns.function("Observers", "Observations open now.", move |_| {
            hub.upgrade().map_or(0, |h| h.observers() as i64)
        });
        Self {
            connections: ns.gauge("Connections", "Open AMP and WebSocket connections."),
            calls: ns.counter("Calls", "Requests run, built-in commands included."),
            errors: ns.counter("Errors", "Requests answered with an error."),
            deltas: ns.counter("Deltas Pushed", "Delta pushes queued to observers."),
            resyncs: ns.counter("Resyncs", "Observations told to observe again."),
            rate_refusals: ns.counter(
                "Logins Refused For Rate",
                "Login commands refused with TOO_MANY_ATTEMPTS.",
            ),
        }
    }
}

/// Counts a connection for as long as it lives.
pub(crate) struct ConnectionCount(pub Arc<LiveStats>);

impl ConnectionCount {
    pub fn new(stats: Arc<LiveStats>) -> Self {
        stats.connections.inc();
        Self(stats)
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
