//! The item types of a bookmark: [`Bookmark`] (version 2) and, in
//! [`legacy`], version 1 and its upgrader.

use mantle_store::{Item, Timestamp};
use serde::{Deserialize, Serialize};

/// A bookmark, in a user's store (version 2). Shareable
/// (`Offering::shareable`): others see it through the sharing layer,
/// as JSON too.
///
/// Version 1 ([`legacy::BookmarkV1`]) had only `url` and `created`;
/// stores holding it are upgraded as they open
/// ([`legacy::v1_to_v2`]).
#[derive(Item, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[item(name = "bookmarks_bookmark", version = 2)]
pub struct Bookmark {
    /// Where it points: an `http` or `https` URL.
    pub url: String,
    /// What it is called.
    pub title: String,
    /// Whether it is published. What decides is its share to
    /// [`Role::Everyone`](mantle_site::sharing::Role::Everyone): this flag
    /// mirrors it, changed with it in the same transaction
    /// ([`publish_in`](crate::publish_in)). Before sharing (offering
    /// version 2) the flag alone published a bookmark; upgrading the
    /// offering turns such flags into shares
    /// ([`publish_flagged_in`](crate::publish_flagged_in)).
    pub public: bool,
    /// When it was made.
    #[item(index)]
    pub created: Timestamp,
}

/// Older versions of [`Bookmark`], kept so that stores written by older
/// programs can be upgraded.
pub mod legacy {
    use mantle_store::{Item, Timestamp};

    use super::Bookmark;
    use crate::checks::title_from_url;

    /// Version 1: a URL and when it was saved.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "bookmarks_bookmark", version = 1)]
    pub struct BookmarkV1 {
        /// Where it points.
        pub url: String,
        /// When it was made.
        pub created: Timestamp,
    }

    /// v1 → v2: the title is the URL's host (or the URL), and old
    /// bookmarks are private.
    pub fn v1_to_v2(old: BookmarkV1) -> Bookmark {
        Bookmark {
            title: title_from_url(&old.url),
            url: old.url,
            public: false,
            created: old.created,
        }
    }
}
