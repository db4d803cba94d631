//! Giving offerings to users and taking them back: the site store sends
//! a message to the user's store in the transaction that grants or
//! revokes, so the user's store applies it exactly once, even across
//! crashes, and the offering's hook runs in the user's own transaction.

use std::sync::Arc;

use mantle_store::{Id, Timestamp, Tx};
use serde::{Deserialize, Serialize};

use super::{Declared, GivenOffering, Giving};
use crate::Settings;
use crate::items::Account;
use crate::messaging::{Envelope, Message, MessageHandlers, Refusal, SendMessage};

/// Whether an offering is given to a user or taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    /// The user is given it: its `on_given` hook runs (once).
    Give,
    /// It is taken back: its `on_taken` hook runs; the user's data stays.
    Take,
}

/// The site gives `offering` to (or takes it back from) the user whose
/// store receives this.
#[derive(Debug, Serialize, Deserialize)]
struct OfferingChange {
    offering: String,
    account: i64,
    change: Change,
}

impl Message for OfferingChange {
    const TYPE: &'static str = "mantle.offering_change";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// Sends (within `tx`, a site store transaction) the messages that give
/// `offerings` to `account`, or take them back.
pub(crate) fn send_changes(
    tx: &mut Tx<'_>,
    account: Id<Account>,
    offerings: &[String],
    change: Change,
) -> Result<(), mantle_store::Error> {
    for o in offerings {
        tx.send(
            &format!("account:{}", account.raw()),
            &OfferingChange {
                offering: o.clone(),
                account: account.raw(),
                change,
            },
        )?;
    }
    Ok(())
}

/// Registers the user stores' handler of gives and takes; `declared`
/// holds the hooks, told `settings`.
pub(crate) fn register(
    handlers: &mut MessageHandlers,
    declared: Arc<Vec<Declared>>,
    settings: Settings,
) {
    handlers.on::<OfferingChange>(move |tx, envelope: &Envelope, m| {
        // Only the site store gives and takes offerings.
        if envelope.from != "site" {
            return Err(Refusal::new(
                "FORBIDDEN",
                "only the site gives and takes offerings",
            ));
        }
        let given = tx
            .query::<GivenOffering>()
            .filter(GivenOffering::NAME.eq(m.offering.as_str()))
            .first()?;
        // Once each way: a give to a user who has it, or a take from one
        // who has not, changes nothing.
        if given.is_some() == (m.change == Change::Give) {
            return Ok(());
        }
        let hook = declared
            .iter()
            .find(|d| d.name == m.offering)
            .and_then(|d| match m.change {
                Change::Give => d.on_given.as_ref(),
                Change::Take => d.on_taken.as_ref(),
            });
        if let Some(hook) = hook {
            hook(
                tx,
                &Giving {
                    offering: m.offering.clone(),
                    account: Id::from_raw(m.account),
                    settings: settings.clone(),
                },
            )?;
        }
        match given {
            Some(g) => {
                tx.delete(g.id())?;
            }
            None => {
                tx.insert(&GivenOffering {
                    name: m.offering,
                    given: Timestamp::now(),
                })?;
            }
        }
        Ok(())
    });
}
