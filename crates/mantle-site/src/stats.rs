//! The site's statistics: one [`StatsRegistry`] per site
//! ([`Site::stats`]), holding the store layer's "Stores" namespace and the
//! site's own "Auth", "Messaging" and "Process" namespaces. Upper layers
//! add theirs (the web front adds "HTTP"). What each holds is listed at
//! [`AUTH_NAMESPACE`], [`MESSAGING_NAMESPACE`] and
//! [`PROCESS_NAMESPACE`](crate::PROCESS_NAMESPACE).

use mantle_stats::{Counter, Gauge, Snapshot, StatsRegistry};
use mantle_store::{DispatchError, Timestamp};

use crate::items::AuthToken;
use crate::site::Site;
use crate::{Result, SiteError};

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
/// | `Active Tokens` | gauge | unexpired tokens, counted when a report is made with [`Site::stats_snapshot`] |
pub const AUTH_NAMESPACE: &str = "Auth";

/// The name of the messaging statistics namespace, "Messaging", and what
/// it holds (interstore messages, counted by the sending store's
/// dispatcher):
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Queued` | counter | messages sent by committed transactions, counted when first handed to delivery |
/// | `Delivered` | counter | messages applied (or found already applied) by their recipient |
/// | `Retried` | counter | delivery attempts that failed for now and will be retried |
/// | `Parked` | counter | messages given up on (refused for good, or too many attempts) |
pub const MESSAGING_NAMESPACE: &str = "Messaging";

/// The site's own statistics handles.
#[derive(Clone)]
pub(crate) struct SiteStats {
    pub(crate) registry: StatsRegistry,
    pub(crate) auth: AuthStats,
    pub(crate) messaging: MessagingStats,
}

impl SiteStats {
    pub(crate) fn new(registry: StatsRegistry) -> Self {
        // Reports list namespaces in the order they were made: the store
        // layer's first (its handles are made later, with the store config).
        let _ = registry.namespace(mantle_store::STATS_NAMESPACE);
        let messaging = MessagingStats::new(&registry);
        let auth = AuthStats::new(&registry);
        crate::process_stats::install(&registry);
        Self {
            registry,
            auth,
            messaging,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AuthStats {
    pub(crate) logins: Counter,
    pub(crate) failures: Counter,
    pub(crate) throttled: Counter,
    pub(crate) suspect_turns: Counter,
    pub(crate) suspect_pauses: Counter,
    suspects: Gauge,
    active_tokens: Gauge,
    waiting_checks: Gauge,
}

impl AuthStats {
    fn new(registry: &StatsRegistry) -> Self {
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
}

#[derive(Clone)]
pub(crate) struct MessagingStats {
    queued: Counter,
    delivered: Counter,
    retried: Counter,
    parked: Counter,
}

impl MessagingStats {
    fn new(registry: &StatsRegistry) -> Self {
        let ns = registry.namespace(MESSAGING_NAMESPACE);
        Self {
            queued: ns.counter(
                "Queued",
                "Messages sent by committed transactions, counted when first handed to delivery.",
            ),
            delivered: ns.counter(
                "Delivered",
                "Messages applied (or found already applied) by their recipient.",
            ),
            retried: ns.counter(
                "Retried",
                "Delivery attempts that failed for now and will be retried.",
            ),
            parked: ns.counter(
                "Parked",
                "Messages given up on: refused for good, or too many failed attempts.",
            ),
        }
    }

    /// Counts a batch about to be delivered: `first_attempts` of them are
    /// new.
    pub(crate) fn handing_over(&self, first_attempts: usize) {
        if first_attempts > 0 {
            self.queued.add(first_attempts as u64);
        }
    }

    /// Counts what became of a batch.
    pub(crate) fn outcomes(&self, results: &[std::result::Result<(), DispatchError>]) {
        if !self.queued.is_enabled() {
            return;
        }
        let (mut delivered, mut retried, mut parked) = (0, 0, 0);
        for r in results {
            match r {
                Ok(()) => delivered += 1,
                Err(e) if e.permanent => parked += 1,
                Err(_) => retried += 1,
            }
        }
        for (counter, n) in [
            (&self.delivered, delivered),
            (&self.retried, retried),
            (&self.parked, parked),
        ] {
            if n > 0 {
                counter.add(n);
            }
        }
    }
}

impl Site {
    /// The site's statistics: the "Stores", "Messaging", "Auth" and
    /// "Process" namespaces, and whatever upper layers add (the web front's
    /// "HTTP"). Clones share everything; use [`stats_snapshot`](Self::stats_snapshot)
    /// for a report.
    pub fn stats(&self) -> &StatsRegistry {
        &self.inner.stats.registry
    }

    /// Refreshes the values counted at report time (active tokens: one
    /// indexed count in the site store), then takes a snapshot.
    pub async fn stats_snapshot(&self) -> Result<Snapshot> {
        let auth = &self.inner.stats.auth;
        if auth.active_tokens.is_enabled() {
            let now = Timestamp::now();
            let active = self
                .site_store()
                .read(move |r| {
                    r.query::<AuthToken>()
                        .filter(AuthToken::EXPIRES.gt(now))
                        .count()
                })
                .await
                .map_err(SiteError::from)?;
            auth.active_tokens
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
        if auth.suspects.is_enabled() {
            let n = self.suspects().suspects();
            auth.suspects.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if auth.waiting_checks.is_enabled() {
            let waiting = self.inner.passwords.waiting();
            auth.waiting_checks
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        }
        Ok(self.stats().snapshot())
    }
}
