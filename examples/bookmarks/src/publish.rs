//! Publishing: a published bookmark is one shared with
//! [`Role::Everyone`], read-only, so the sharing layer shows it to anyone
//! (the public page lists what it lets an anonymous visitor read).
//!
//! The bookmark's `public` flag mirrors the share, changed with it in one
//! transaction ([`publish_in`]). Before sharing (offering version 2) the
//! flag alone published a bookmark, and an item upgrader cannot write
//! shares: so when a site's bookmarks offering is upgraded from version 2,
//! its upgrade hook ([`upgrade`]) sends every user's store
//! [`PublishFlagged`], whose handler shares each flagged bookmark with
//! everyone ([`publish_flagged_in`]), once.

use std::collections::BTreeSet;

use mantle_live_server::publish;
use mantle_site::sharing::{ReadShares, Role, ShareItems};
use mantle_site::{
    Account, Envelope, Installing, Message, MessageHandlers, Refusal, SendMessage, SiteError,
};
use mantle_store::{Id, Item, ReadTx, Tx};
use serde::{Deserialize, Serialize};

use crate::items::Bookmark;
use crate::live::{BookmarkDelta, BookmarkView, MODEL};

/// The offering's version that brought sharing: sites upgraded from an
/// older one have their flagged bookmarks published.
pub const SHARING_VERSION: u32 = 3;

/// The ids of the bookmarks in a store that are published (shared with
/// everyone).
pub fn published(r: &ReadTx) -> mantle_store::Result<BTreeSet<i64>> {
    Ok(r.shares()?
        .into_iter()
        .filter(|s| s.role == Role::Everyone && s.item_type == Bookmark::TYPE_NAME)
        .map(|s| s.item_id)
        .collect())
}

/// In a transaction: publishes bookmark `id` (shares it with everyone,
/// read-only) or withdraws it from the public (every share of it to
/// everyone), sets its `public` flag to match, and publishes the delta
/// when that changed anything. Publishing a published bookmark changes
/// nothing. `None` if there is no such bookmark.
pub fn publish_in(
    tx: &mut Tx,
    id: Id<Bookmark>,
    public: bool,
) -> Result<Option<BookmarkView>, SiteError> {
    let Some(mut bookmark) = tx.get(id)? else {
        return Ok(None);
    };
    let to_everyone: Vec<String> = tx
        .shares_of(id)?
        .into_iter()
        .filter(|s| s.role == Role::Everyone)
        .map(|s| s.share_id)
        .collect();
    let mut changed = false;
    if public && to_everyone.is_empty() {
        tx.share(id, &Role::Everyone, &[], None)?;
        changed = true;
    }
    if !public {
        for share_id in &to_everyone {
            changed |= tx.unshare(share_id, Some(&Role::Everyone))? > 0;
        }
    }
    if bookmark.public != public {
        bookmark.public = public;
        tx.update(&mut bookmark)?;
        changed = true;
    }
    let view = BookmarkView::new(&bookmark, public);
    if changed {
        publish(
            tx,
            MODEL,
            &BookmarkDelta::Update {
                bookmark: view.clone(),
            },
        )?;
    }
    Ok(Some(view))
}

/// In a transaction: publishes every bookmark whose `public` flag is set
/// but that is not shared with everyone (what version 2 of the offering
/// left: see the [module](self) documentation). Answers how many.
pub fn publish_flagged_in(tx: &mut Tx) -> Result<usize, SiteError> {
    let already = published(tx)?;
    let flagged = tx
        .query::<Bookmark>()
        .filter(Bookmark::PUBLIC.eq(true))
        .ids()?;
    let mut n = 0;
    for id in flagged
        .into_iter()
        .filter(|id| !already.contains(&id.raw()))
    {
        publish_in(tx, id, true)?;
        n += 1;
    }
    Ok(n)
}

/// The one-way message the upgrade hook sends each user's store: "publish
/// the bookmarks flagged public" ([`publish_flagged_in`]). Only the site
/// store sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishFlagged {}

impl Message for PublishFlagged {
    const TYPE: &'static str = "bookmarks.publish_flagged";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// Registers the message handlers: a user store receiving
/// [`PublishFlagged`].
pub fn messages(handlers: &mut MessageHandlers) {
    handlers.on::<PublishFlagged>(|tx, envelope: &Envelope, _| {
        if envelope.from != "site" {
            return Err(Refusal::new(
                "NOT_FROM_SITE",
                "only the site publishes flagged bookmarks",
            ));
        }
        let n = publish_flagged_in(tx).map_err(|e| match e {
            SiteError::Store(e) => Refusal::from(e),
            // A fault of ours (no randomness for a share id): retry.
            e => Refusal::retry("PUBLISH_FAILED", e.to_string()),
        })?;
        if n > 0 {
            tracing::info!(published = n, "bookmarks: flagged bookmarks published");
        }
        Ok(())
    });
}

/// The offering's upgrade hook: from a version before
/// [`SHARING_VERSION`], tells every user's store to publish its flagged
/// bookmarks (a no-op for a store with none).
pub fn upgrade(tx: &mut Tx<'_>, installing: &Installing) -> mantle_store::Result<()> {
    if installing.from.is_some_and(|v| v < SHARING_VERSION) {
        for account in tx.query::<Account>().ids()? {
            tx.send(&format!("account:{}", account.raw()), &PublishFlagged {})?;
        }
    }
    Ok(())
}
