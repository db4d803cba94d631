//! The "Auth" statistics namespace.

use mantle_stats::{Counter, Gauge, StatsRegistry};

/// The name of the authentication statistics namespace, "Auth", and what
/// it holds:
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Logins` | counter | successful password logins |
/// | `Login Failures` | counter | logins refused: unknown login, wrong password, disabled account |
/// | `Login Refusals` | counter | attempts refused before any password work: over the address's allowance, during a login's back-off, password workers saturated |
/// | `Password Checks Waiting` | gauge | password checks queued for a worker, when the report was made |
/// | `Suspect Addresses` | gauge | client addresses with enough failed or refused logins lately to be served in turn, when the report was made |
/// | `Suspect Turns` | counter | times a suspect client's connection was given its turn to make progress |
/// | `Suspect Pauses` | counter | turns after which suspects had used their share of a core and the next waited |
/// | `Active Tokens` | gauge | unexpired tokens, counted when a report is made with [`Site::stats_snapshot`](crate::Site::stats_snapshot) |
pub const AUTH_NAMESPACE: &str = "Auth";

/// The authentication statistics' handles.
#[derive(Clone)]
pub(crate) struct AuthStats {
    pub(super) logins: Counter,
    pub(super) failures: Counter,
    pub(super) throttled: Counter,
    pub(super) suspect_turns: Counter,
    pub(super) suspect_pauses: Counter,
    suspects: Gauge,
    active_tokens: Gauge,
    waiting_checks: Gauge,
}

impl AuthStats {
    pub(crate) fn new(registry: &StatsRegistry) -> Self {
        let ns = registry.namespace(AUTH_NAMESPACE);
        Self {
            logins: ns.counter("Logins", "Successful password logins."),
            failures: ns.counter(
                "Login Failures",
                "Logins refused: unknown login, wrong password or disabled account.",
            ),
            throttled: ns.counter(
                "Login Refusals",
                "Login and signup attempts refused before any password work: over an address's allowance, during a login's back-off, or with the password workers saturated.",
            ),
            suspects: ns.gauge(
                "Suspect Addresses",
                "Client addresses with enough failed or refused logins lately to be served in turn, when the report was made.",
            ),
            suspect_turns: ns.counter(
                "Suspect Turns",
                "Times a suspect client's connection was given its turn to make progress.",
            ),
            suspect_pauses: ns.counter(
                "Suspect Pauses",
                "Turns after which suspects had used their share of a core, so that the next one waited.",
            ),
            active_tokens: ns.gauge(
                "Active Tokens",
                "Unexpired login tokens, counted when the report was made.",
            ),
            waiting_checks: ns.gauge(
                "Password Checks Waiting",
                "Password checks queued for a worker, when the report was made.",
            ),
        }
    }

    /// Whether active tokens are counted (a report is being kept).
    pub(super) fn counts_tokens(&self) -> bool {
        self.active_tokens.is_enabled()
    }

    /// Sets the gauges counted when a report is made.
    pub(super) fn refresh(&self, active_tokens: Option<u64>, suspects: usize, waiting: usize) {
        if let Some(n) = active_tokens {
            self.active_tokens.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.suspects
            .set(i64::try_from(suspects).unwrap_or(i64::MAX));
        self.waiting_checks
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }
}
