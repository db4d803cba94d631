//! Bookmarks: a Mantle offering, made with `mantle new offering bookmarks`
//! and grown into a small but complete application.
//!
//! What it brings, all declared in [`offering`]:
//! - an item type, [`Bookmark`] (version 2), kept in each user's own store,
//!   with version 1 in [`legacy`] and the upgrader that brings old stores
//!   forward as they open;
//! - a JSON API for the users given the offering (404 to others):
//!   `GET /api/bookmarks`, `POST /api/bookmarks` `{url, title?, public?}`,
//!   `DELETE /api/bookmarks/{id}` and `POST /api/bookmarks/{id}/share`
//!   `{to}`;
//! - a page at `/bookmarks` for those users, linked from their home page,
//!   and a **public** page at `/bookmarks/public/{login}` that answers
//!   anyone with that user's public bookmarks;
//! - an interstore message, [`Share`], that puts a copy of a bookmark in
//!   another user's store;
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
    list, public, snapshot,
};
pub use share::{Share, messages, share, shared_title};
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
    Offering::new(NAME, 2)
        .description("Bookmarks: links worth keeping, some public, shared between users")
        .requires(mantle_web::LAYER)
        .items(Scope::User, register)
        .config::<Config>()
        .messages(messages)
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
        .nav("Bookmarks", "/bookmarks")
        .live(live::live)
}
