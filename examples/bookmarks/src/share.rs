//! Sharing: the one-way interstore message [`Share`], its handler in the
//! recipient's store, and [`share`], which checks the recipient and sends
//! it.

use mantle_site::{
    Account, Envelope, Message, MessageHandlers, Recipient, Refusal, SendMessage, Site, SiteError,
};
use mantle_store::{Id, Timestamp};
use serde::{Deserialize, Serialize};

use crate::NAME;
use crate::checks::{BookmarkError, MAX_TITLE, check_title, check_url};
use crate::items::Bookmark;
use crate::live::insert_in;

/// The one-way message that puts a copy of a bookmark in another user's
/// store. The copy is private, and its title says who shared it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Share {
    /// The bookmark's URL.
    pub url: String,
    /// Its title, as the sender has it.
    pub title: String,
}

impl Message for Share {
    const TYPE: &'static str = "bookmarks.share";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// The title of a received bookmark: `SENDER: TITLE`, cut to
/// [`MAX_TITLE`] characters.
pub fn shared_title(from: &str, title: &str) -> String {
    format!("{from}: {title}").chars().take(MAX_TITLE).collect()
}

/// Registers the message handlers: a user store receiving [`Share`].
pub fn messages(handlers: &mut MessageHandlers) {
    handlers.on::<Share>(|tx, envelope: &Envelope, share| {
        // A message body is input like any other: checked again here.
        let url = check_url(&share.url).map_err(|e| Refusal::new("BAD_BOOKMARK", e.to_string()))?;
        let title = check_title(Some(&share.title), &url)
            .map_err(|e| Refusal::new("BAD_BOOKMARK", e.to_string()))?;
        insert_in(
            tx,
            &Bookmark {
                // The sender's login, when a user sent it.
                title: shared_title(
                    envelope.sender_login.as_deref().unwrap_or(&envelope.from),
                    &title,
                ),
                url,
                public: false,
                created: Timestamp::now(),
            },
        )?;
        Ok(())
    });
}

/// Sends a copy of bookmark `id` of account `from` to `to` (a login or
/// `account:ID` of another account given the bookmarks). Returns once the
/// message is recorded in the sender's outbox; delivery follows.
pub async fn share(
    site: &Site,
    from: Id<Account>,
    id: Id<Bookmark>,
    to: &str,
) -> Result<(), BookmarkError> {
    let to = to.trim().to_string();
    match site.messaging().recipient(&to).await {
        Ok(Recipient::Account { id, .. }) if id == from => return Err(BookmarkError::ToSelf(to)),
        Ok(Recipient::Account {
            id,
            disabled: false,
        }) => {
            if !site.products().holds(id, NAME).await? {
                return Err(BookmarkError::CannotReceive(to));
            }
        }
        Ok(Recipient::Account { disabled: true, .. } | Recipient::NoAccount) => {
            return Err(BookmarkError::CannotReceive(to));
        }
        Ok(Recipient::Site | Recipient::App(_)) | Err(SiteError::InvalidRecipient(_)) => {
            return Err(BookmarkError::NotAnAccount(to));
        }
        Err(e) => return Err(e.into()),
    }
    let store = site.stores().user_store_unchecked(from).await?;
    store
        .transact(move |tx| {
            let b = tx
                .get(id)?
                .ok_or_else(|| BookmarkError::NotFound(id.raw().to_string()))?;
            tx.send(
                &to,
                &Share {
                    url: b.url.clone(),
                    title: b.title.clone(),
                },
            )?;
            Ok::<_, BookmarkError>(())
        })
        .await
}
