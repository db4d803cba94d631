//! The "Messaging" statistics namespace.

use mantle_stats::{Counter, StatsRegistry};
use mantle_store::DispatchError;

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

/// The messaging statistics' handles.
#[derive(Clone)]
pub(crate) struct MessagingStats {
    queued: Counter,
    delivered: Counter,
    retried: Counter,
    parked: Counter,
}

impl MessagingStats {
    pub(crate) fn new(registry: &StatsRegistry) -> Self {
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
