//! Bookmarks: a Mantle offering, made with `mantle new offering bookmarks`
//! and grown into a small but complete application.
//!
//! What it brings, all declared in [`offering`]:
//! - an item type, [`Bookmark`] (version 2), kept in each user's own store,
//!   with version 1 in [`legacy`] and the upgrader that brings old stores
//!   forward as they open; it is **shareable** (`Offering::shareable`), so
//!   what decides who sees a bookmark is the site's sharing layer;
//! - **publishing**: a published bookmark is shared with
//!   [`Role::Everyone`](mantle_site::sharing::Role::Everyone), read-only
//!   ([`publish_in`]); the public page at `/bookmarks/public/{login}`
//!   lists what the sharing layer lets an anonymous visitor read there
//!   ([`published_by`]), and answers one and the same 404 for a login with
//!   nothing published, a disabled one, or none at all;
//! - **sharing with one user**: a read-only share to their account
//!   ([`share`], [`unshare`]): they see the owner's live bookmark, not a
//!   copy, until the owner withdraws it ([`shared_with`], [`open_shared`]);
//! - a JSON API for the users given the offering (404 to others):
//!   `GET /api/bookmarks`, `POST /api/bookmarks` `{url, title?, public?}`,
//!   `DELETE /api/bookmarks/{id}`, `POST`/`DELETE
//!   /api/bookmarks/{id}/publish`, `POST /api/bookmarks/{id}/share`
//!   `{to}`, `DELETE /api/bookmarks/{id}/share/{login}`,
//!   `GET /api/bookmarks/{id}/shares` and `GET /api/bookmarks/shared`
//!   (what others share with the caller); and, for anyone the sharing
//!   layer lets read it, `GET /api/bookmarks/shared/{owner}/{share_id}`;
//! - a page at `/bookmarks` for those users, linked from their home page,
//!   with its script (`/bookmarks/app.js`): add, publish, share, withdraw,
//!   delete, and a "Shared with you" section; and the page the web front
//!   shows a shared bookmark with, at `/users/{login}/{share_id}`;
//! - an upgrade hook ([`publish::upgrade`]) and its interstore message,
//!   [`PublishFlagged`]: a site upgraded from version 2 of the offering,
//!   when the `public` flag alone published a bookmark, has its flagged
//!   bookmarks shared with everyone;
//! - a live model, [`MODEL`] (the caller's own bookmarks, with a delta
//!   published in every transaction that changes them), and a live
//!   command, [`CountBookmarks`], over AMP and WebSocket;
//! - a scheduled task, [`SWEEP_TASK`], that trims each user's list to
//!   `max_per_user` bookmarks, oldest first;
//! - its configuration, `[offerings.bookmarks]` in `mantle.toml` ([`Config`]);
//! - a hook that sets up each new user's [`Sweeper`].
//!
//! Serve it with `cargo run -p mantle-example-bookmarks -- serve DIR` (see
//! the README).
//!
//! ```
//! use bookmarks::{check_url, title_from_url};
//! assert_eq!(check_url(" https://example.com/a ").unwrap(), "https://example.com/a");
//! assert!(check_url("ftp://example.com/").is_err());
//! assert_eq!(title_from_url("https://user@Example.com:8080/x?y"), "Example.com");
//! ```

mod checks;
mod config;
mod items;
mod live;
pub mod publish;
mod share;
mod sweep;
mod web;

use mantle_live_server::LiveOffering;
use mantle_site::{Offering, Scope};
use mantle_store::Registry;
use mantle_web::WebOffering;

pub use checks::{BookmarkError, MAX_TITLE, MAX_URL, check_title, check_url, title_from_url};
pub use config::{Config, MAX_SWEEP_MINUTES};
pub use items::{Bookmark, legacy};
pub use live::{
    BookmarkDelta, BookmarkView, CountBookmarks, CountBookmarksAnswer, MODEL, delete_in, insert_in,
    list, snapshot,
};
pub use publish::{
    PublishFlagged, SHARING_VERSION, messages, publish_flagged_in, publish_in, published,
};
pub use share::{
    ShareView, SharedBookmark, open_shared, published_by, share, shared_by_bookmark, shared_with,
    shares, unshare,
};
pub use sweep::{Refresh, SWEEP_TASK, Sweeper, configure_in, trim_in};

/// The offering's name: it names its configuration section and its URLs.
pub const NAME: &str = "bookmarks";

/// Registers the offering's item types, the upgrader and the sweep task.
pub fn register(registry: &mut Registry) {
    registry
        .register::<Bookmark>()
        .upgrader(legacy::v1_to_v2)
        .register::<Sweeper>()
        .task::<Sweeper>(SWEEP_TASK, sweep::sweep);
}

/// The offering: everything it brings, declared once.
pub fn offering() -> Offering {
    Offering::new(NAME, SHARING_VERSION)
        .description("Bookmarks: links worth keeping, some public, shared between users")
        .requires(mantle_web::LAYER)
        .items(Scope::User, register)
        .shareable::<Bookmark>()
        .config::<Config>()
        .messages(messages)
        .on_upgrade(publish::upgrade)
        .on_given(|tx, giving| {
            // Runs once per user, in their store, when they are given it:
            // the sweeper, on the configured period.
            let config = giving.settings.get::<Config>().cloned().unwrap_or_default();
            configure_in(tx, &config)?;
            Ok(())
        })
        .then(|b| b.on_effects::<Refresh, _, _>(sweep::refresh))
        .routes(web::routes)
        .template(web::PAGE, web::PAGE_TEMPLATE)
        .template(web::PUBLIC, web::PUBLIC_TEMPLATE)
        .template(web::SHARED, web::SHARED_TEMPLATE)
        .share_page::<Bookmark>(web::SHARED)
        .asset(web::SCRIPT, "text/javascript", web::SCRIPT_SOURCE)
        .nav("Bookmarks", "/bookmarks")
        .live(live::live)
}
