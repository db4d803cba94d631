//! Telling users what is shared with them: a one-way message to each
//! user a share reaches, kept in their store as a hint for listing.

use mantle_store::{Id, Tx};
use serde::{Deserialize, Serialize};

use super::items::SharedWithMe;
use super::roles::Viewer;
use crate::items::Account;
use crate::messaging::{Envelope, Message, MessageHandlers, Refusal, SendMessage};

/// "Something is shared with you": sent to a user a share now reaches,
/// so they can list it. A hint only: access is checked on use.
#[derive(Debug, Serialize, Deserialize)]
struct SharedNotice {
    share_id: String,
    item_type: String,
}

impl Message for SharedNotice {
    const TYPE: &'static str = "mantle.shared_notice";
    type Answer = ();
    const ONE_WAY: bool = true;
}

pub(super) fn tell_shared(
    tx: &mut Tx,
    account: Id<Account>,
    share_id: &str,
    item_type: &str,
) -> mantle_store::Result<()> {
    tx.send(
        &format!("account:{}", account.raw()),
        &SharedNotice {
            share_id: share_id.to_string(),
            item_type: item_type.to_string(),
        },
    )?;
    Ok(())
}

/// Registers the handler of [`SharedNotice`] in user stores.
pub(crate) fn register_notices(handlers: &mut MessageHandlers) {
    handlers.on::<SharedNotice>(|tx, env: &Envelope, notice| {
        let Viewer::Account(owner) = Viewer::of_sender(&env.from) else {
            return Err(Refusal::new(
                "NOT_A_USER",
                "only users share items with users",
            ));
        };
        let known = tx
            .query::<SharedWithMe>()
            .filter(
                SharedWithMe::OWNER
                    .eq(owner.raw())
                    .and(SharedWithMe::SHARE_ID.eq(notice.share_id.as_str())),
            )
            .exists()?;
        if !known {
            tx.insert(&SharedWithMe {
                owner: owner.raw(),
                share_id: notice.share_id,
                item_type: notice.item_type,
            })?;
        }
        Ok(())
    });
}
