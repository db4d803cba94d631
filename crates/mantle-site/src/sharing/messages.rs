//! Messages addressed to shared items: sent to an owner's share, checked
//! on arrival — in the receiving transaction — against the sender's
//! roles in the owner's store.

use mantle_store::{Id, Tx};
use serde::{Deserialize, Serialize};

use super::read::{Grant, ReadShares};
use super::roles::Viewer;
use crate::items::Account;
use crate::messaging::{Envelope, Message, MessageHandlers, MessageId, Refusal, send_in};

/// The refusal code of a message to a share the sender may not use for
/// what the message does — or that does not exist: the two are one
/// answer, so a sender learns nothing of what is there.
pub const NO_SUCH_SHARE: &str = "NOT_FOUND";

/// A shared item, as others name it: its owner (a login or `account:ID`)
/// and the share id in the owner's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// The owner: `alice@example.com` or `account:7`.
    pub owner: String,
    /// The share id.
    pub share_id: String,
}

/// Sending a message to a shared item from inside a transaction.
///
/// ```no_run
/// use mantle_site::sharing::{Identifier, SendToShare};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Comment { text: String }
/// # impl mantle_site::Message for Comment { const TYPE: &'static str = "doc.comment"; type Answer = (); }
/// # fn f(tx: &mut mantle_store::Tx) -> mantle_store::Result<()> {
/// let to = Identifier { owner: "alice@example.com".into(), share_id: "draft".into() };
/// tx.send_to_share(&to, &Comment { text: "nice".into() })?;
/// # Ok(()) }
/// ```
pub trait SendToShare {
    /// Queues `message` to the share `to`; it leaves only if this
    /// transaction commits, and takes effect once. The owner's store
    /// applies it only if the sender holds the access its handler needs
    /// ([`MessageHandlers::on_shared`]); otherwise the answer is a
    /// [`Refusal`] with code [`NO_SUCH_SHARE`].
    fn send_to_share<M: Message>(
        &mut self,
        to: &Identifier,
        message: &M,
    ) -> Result<MessageId, mantle_store::Error>;
}

impl SendToShare for Tx<'_> {
    fn send_to_share<M: Message>(
        &mut self,
        to: &Identifier,
        message: &M,
    ) -> Result<MessageId, mantle_store::Error> {
        send_in(self, &to.owner, Some(&to.share_id), message)
    }
}

/// The refusal for a share that is missing or not for this sender.
fn no_such_share(share_id: &str) -> Refusal {
    crate::SiteError::NoSuchShare(share_id.to_string()).into()
}

/// The grant of the sender of `env` on the share it is addressed to, if
/// it holds `access` there (checked in `tx`, the recipient's transaction).
fn share_of(tx: &Tx, env: &Envelope, access: &str) -> Result<Grant, Refusal> {
    let Some(share_id) = env.share.as_deref() else {
        return Err(Refusal::new(
            NO_SUCH_SHARE,
            "this message must be sent to a share (send_to_share)",
        ));
    };
    let Some(owner) = env
        .to
        .strip_prefix("account:")
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Err(no_such_share(share_id));
    };
    let viewer = Viewer::of_sender(&env.from);
    let grant = tx
        .grant(viewer, Id::<Account>::from_raw(owner), share_id)?
        .filter(|g| g.access.permits(access))
        .ok_or_else(|| no_such_share(share_id))?;
    Ok(grant)
}

impl MessageHandlers {
    /// Registers what a user store does with messages of type `M` sent to
    /// one of its shares ([`SendToShare`]): the handler runs only if the
    /// sender holds `access` on that share, checked in the receiving
    /// transaction, and gets the [`Grant`] (the item's id, what the sender
    /// may do). Otherwise — no such share, not permitted, or a message
    /// sent to the store rather than a share — the answer is a refusal with
    /// code [`NO_SUCH_SHARE`], applied once like any answer.
    ///
    /// ```
    /// use mantle_site::{Message, MessageHandlers};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Comment { text: String }
    /// impl Message for Comment {
    ///     const TYPE: &'static str = "doc.comment";
    ///     type Answer = ();
    /// }
    /// fn messages(h: &mut MessageHandlers) {
    ///     h.on_shared::<Comment>("comment", |_tx, _env, grant, c| {
    ///         let _ = (grant.item_id, c.text); // record the comment on the item
    ///         Ok(())
    ///     });
    /// }
    /// ```
    pub fn on_shared<M: Message>(
        &mut self,
        access: &'static str,
        handler: impl Fn(&mut Tx<'_>, &Envelope, Grant, M) -> Result<M::Answer, Refusal>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.on::<M>(move |tx, env, message| {
            let grant = share_of(tx, env, access)?;
            handler(tx, env, grant, message)
        })
    }
}
