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

/// The site gives `offering` to the user whose store receives this.
#[derive(Debug, Serialize, Deserialize)]
struct GiveOffering {
    offering: String,
    account: i64,
}

impl Message for GiveOffering {
    const TYPE: &'static str = "mantle.give_offering";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// The site takes `offering` back from the user whose store receives this.
#[derive(Debug, Serialize, Deserialize)]
struct TakeOffering {
    offering: String,
    account: i64,
}

impl Message for TakeOffering {
    const TYPE: &'static str = "mantle.take_offering";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// Sends (within `tx`, a site store transaction) the messages that give
/// `offerings` to `account`.
pub(crate) fn send_gives(
    tx: &mut Tx<'_>,
    account: Id<Account>,
    offerings: &[String],
) -> Result<(), mantle_store::Error> {
    for o in offerings {
        tx.send(
            &format!("account:{}", account.raw()),
            &GiveOffering {
                offering: o.clone(),
                account: account.raw(),
            },
        )?;
    }
    Ok(())
}

/// Sends (within `tx`) the messages that take `offerings` back from
/// `account`.
pub(crate) fn send_takes(
    tx: &mut Tx<'_>,
    account: Id<Account>,
    offerings: &[String],
) -> Result<(), mantle_store::Error> {
    for o in offerings {
        tx.send(
            &format!("account:{}", account.raw()),
            &TakeOffering {
                offering: o.clone(),
                account: account.raw(),
            },
        )?;
    }
    Ok(())
}

/// Only the site store gives and takes offerings.
fn from_site(envelope: &Envelope) -> Result<(), Refusal> {
    if envelope.from == "site" {
        Ok(())
    } else {
        Err(Refusal::new(
            "FORBIDDEN",
            "only the site gives and takes offerings",
        ))
    }
}

/// Registers the user stores' handlers of gives and takes; `declared`
/// holds the hooks.
pub(crate) fn register(
    handlers: &mut MessageHandlers,
    declared: Arc<Vec<Declared>>,
    settings: Settings,
) {
    let (on_take, take_settings) = (declared.clone(), settings.clone());
    handlers
        .on::<GiveOffering>(move |tx, envelope, give| {
            from_site(envelope)?;
            let name = give.offering;
            if tx
                .query::<GivenOffering>()
                .filter(GivenOffering::NAME.eq(name.as_str()))
                .exists()?
            {
                return Ok(());
            }
            if let Some(hook) = declared
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.on_given.as_ref())
            {
                hook(
                    tx,
                    &Giving {
                        offering: name.clone(),
                        account: Id::from_raw(give.account),
                        settings: settings.clone(),
                    },
                )?;
            }
            tx.insert(&GivenOffering {
                name,
                given: Timestamp::now(),
            })?;
            Ok(())
        })
        .on::<TakeOffering>(move |tx, envelope, take| {
            from_site(envelope)?;
            let name = take.offering;
            let Some(given) = tx
                .query::<GivenOffering>()
                .filter(GivenOffering::NAME.eq(name.as_str()))
                .first()?
            else {
                return Ok(());
            };
            if let Some(hook) = on_take
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.on_taken.as_ref())
            {
                hook(
                    tx,
                    &Giving {
                        offering: name.clone(),
                        account: Id::from_raw(take.account),
                        settings: take_settings.clone(),
                    },
                )?;
            }
            tx.delete(given.id())?;
            Ok(())
        });
}
