//! The live parts: the model [`MODEL`] (the caller's own bookmarks), the
//! changes that publish its deltas, the reads, and the command
//! [`CountBookmarks`].

use mantle_live::builtin::ObserveError;
use mantle_live::{NoError, arguments, command};
use mantle_live_server::{Failure, Live};
use mantle_site::SiteError;
use mantle_site::sharing::{Role, ShareItems};
use mantle_store::{Id, ReadTx, Stored, Tx};
use serde::{Deserialize, Serialize};

use crate::items::Bookmark;
use crate::publish::published;

/// The live model of the caller's own bookmarks (no key: `bookmarks`).
pub const MODEL: &str = "bookmarks";

/// A bookmark as clients see it (API answers, pages, the live model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkView {
    /// Its id, for deleting or sharing it.
    pub id: i64,
    /// Where it points.
    pub url: String,
    /// What it is called.
    pub title: String,
    /// Whether it is published: shared with everyone, so on the owner's
    /// public page.
    pub public: bool,
    /// When it was made (RFC 3339).
    pub created: String,
}

impl BookmarkView {
    /// The view of `b`, published or not (as its shares say: see
    /// [`published`]).
    pub fn new(b: &Stored<Bookmark>, public: bool) -> Self {
        BookmarkView {
            id: b.id().raw(),
            url: b.url.clone(),
            title: b.title.clone(),
            public,
            created: b.created.to_string(),
        }
    }
}

/// A change of the [`MODEL`], as published to its observers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum BookmarkDelta {
    /// A bookmark was added.
    Add {
        /// The new bookmark.
        bookmark: BookmarkView,
    },
    /// A bookmark was published or withdrawn from the public.
    Update {
        /// The bookmark as it is now.
        bookmark: BookmarkView,
    },
    /// A bookmark was deleted (by its owner, or by the sweep).
    Remove {
        /// The bookmark's id.
        id: i64,
    },
}

/// In a transaction: keeps `bookmark`, shares it with everyone
/// (read-only: [`Role::Everyone`]) if its `public` flag says so, and
/// publishes the delta to the live model.
pub fn insert_in(tx: &mut Tx, bookmark: &Bookmark) -> Result<BookmarkView, SiteError> {
    let id = tx.insert(bookmark)?;
    if bookmark.public {
        tx.share(id, &Role::Everyone, &[], None)?;
    }
    let view = BookmarkView {
        id: id.raw(),
        url: bookmark.url.clone(),
        title: bookmark.title.clone(),
        public: bookmark.public,
        created: bookmark.created.to_string(),
    };
    mantle_live_server::publish(
        tx,
        MODEL,
        &BookmarkDelta::Add {
            bookmark: view.clone(),
        },
    )?;
    Ok(view)
}

/// In a transaction: withdraws every share of bookmark `id` (from the
/// public, from every user), deletes it and publishes the delta; `false`
/// if there was none.
pub fn delete_in(tx: &mut Tx, id: Id<Bookmark>) -> Result<bool, SiteError> {
    tx.unshare_item(id)?;
    let deleted = tx.delete(id)?;
    if deleted {
        mantle_live_server::publish(tx, MODEL, &BookmarkDelta::Remove { id: id.raw() })?;
    }
    Ok(deleted)
}

/// Every bookmark in a store, newest first.
pub fn list(r: &ReadTx) -> mantle_store::Result<Vec<BookmarkView>> {
    let public = published(r)?;
    Ok(r.query::<Bookmark>()
        .order_by(Bookmark::CREATED.desc())
        .all()?
        .iter()
        .map(|b| BookmarkView::new(b, public.contains(&b.id().raw())))
        .collect())
}

// The command and the model, as the live layer serves them.

arguments! {
    /// `CountBookmarks` answer.
    pub struct CountBookmarksAnswer {
        /// How many bookmarks the caller has.
        pub bookmarks: i64,
    }
}

command!(
    /// Counts the caller's bookmarks.
    pub CountBookmarks, mantle_live::Empty, CountBookmarksAnswer, NoError
);

/// The snapshot of the [`MODEL`]: `{"bookmarks": [...]}`, newest first.
pub fn snapshot(r: &ReadTx, _key: &str) -> mantle_store::Result<serde_json::Value> {
    Ok(serde_json::json!({ "bookmarks": list(r)? }))
}

/// Registers the live parts: the command [`CountBookmarks`] and the
/// model [`MODEL`].
pub(crate) fn live(live: &mut Live) {
    live.command::<CountBookmarks, _, _>(|caller, _| async move {
        let store = caller.store().await.map_err(Failure::internal)?;
        let n = store
            .read(|r| r.query::<Bookmark>().count())
            .await
            .map_err(Failure::internal)?;
        Ok(CountBookmarksAnswer {
            bookmarks: i64::try_from(n).unwrap_or(i64::MAX),
        })
    });
    // `bookmarks`: the caller's own list, from the caller's own store (so
    // no one observes anyone else's). Deltas are published under the bare
    // name, so a keyed name (`bookmarks:KEY`) would never get any: refused.
    live.model(
        MODEL,
        |caller, key| async move {
            if !key.is_empty() {
                return Err(Failure::Command(ObserveError::NoSuchModel {
                    model: format!("{MODEL}:{key}"),
                }));
            }
            caller.store().await.map_err(Failure::internal)
        },
        snapshot,
    );
}
