//! Bookmarks: a Mantle offering, made with `mantle new offering bookmarks`.
//!
//! What it brings, all declared in [`offering`]:
//! - an item type, [`Entry`], kept in each user's own store;
//! - a page at `/bookmarks` for the users given the offering (404 to
//!   others), linked from their home page;
//! - a live command, [`CountEntries`], over AMP and WebSocket;
//! - its configuration, `[offerings.bookmarks]` in `mantle.toml` ([`Config`]);
//! - a hook that gives each new user a first entry.
//!
//! Serve it with `cargo run -- serve DIR` (see the README).

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use mantle_live::{NoError, arguments, command};
use mantle_live_server::{Failure, Live, LiveOffering};
use mantle_site::{ConfigSection, Offering, Scope, SiteConfig, SiteError};
use mantle_store::{Item, Registry, Timestamp};
use mantle_web::{ApiError, AppState, Member, WebOffering};
use serde::{Deserialize, Serialize};

/// The offering's name: it names its configuration section and its URLs.
pub const NAME: &str = "bookmarks";

/// One entry, in a user's store.
///
/// To change its fields later: copy this version into a `legacy` module
/// as `EntryV1` (same `name`, `version = 1`), raise `version` here, and
/// register an upgrader from the old to the new
/// (`registry.upgrader(legacy::v1_to_v2)`): stores upgrade themselves as
/// they open.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bookmarks_entry", version = 1)]
pub struct Entry {
    /// What it says.
    pub text: String,
    /// When it was made.
    pub created: Timestamp,
}

/// Registers the offering's item types (and, later, their upgraders).
pub fn register(registry: &mut Registry) {
    registry.register::<Entry>();
}

/// `[offerings.bookmarks]` in `mantle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How the page greets its user (`MANTLE_BOOKMARKS_GREETING` overrides it).
    pub greeting: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            greeting: "Hello".into(),
        }
    }
}

impl ConfigSection for Config {
    const NAME: &'static str = NAME;

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> mantle_site::Result<()> {
        if let Some(v) = var("MANTLE_BOOKMARKS_GREETING") {
            self.greeting = v;
        }
        Ok(())
    }

    fn validate(&self, _: &SiteConfig) -> mantle_site::Result<()> {
        if self.greeting.trim().is_empty() {
            return Err(SiteError::Config(format!(
                "offerings.{NAME}.greeting must not be empty"
            )));
        }
        Ok(())
    }
}

/// The offering: everything it brings, declared once.
pub fn offering() -> Offering {
    Offering::new(NAME, 1)
        .description("Bookmarks: entries of your own")
        .items(Scope::User, register)
        .config::<Config>()
        .on_given(|tx, _| {
            // Runs once per user, in their store, when they are given it.
            tx.insert(&Entry {
                text: "Welcome".into(),
                created: Timestamp::now(),
            })?;
            Ok(())
        })
        .routes(routes)
        .nav("Bookmarks", "/bookmarks")
        .live(live)
}

fn routes() -> Router<AppState> {
    Router::new().route("/bookmarks", get(page))
}

/// `GET /bookmarks`: the user's page (404 to users not given the offering).
async fn page(State(state): State<AppState>, member: Member) -> Result<Html<String>, ApiError> {
    let greeting = state.site.section::<Config>().greeting.clone();
    let entries = member.store.read(|r| r.query::<Entry>().count()).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Bookmarks</title>\n\
         <h1>{}, {}</h1><p>You have {entries} entries.</p>",
        escape(&greeting),
        escape(&member.avatar.address),
    )))
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

arguments! {
    /// `CountEntries` answer.
    pub struct CountEntriesAnswer {
        /// How many entries the caller has.
        pub entries: i64,
    }
}

command!(
    /// Counts the caller's entries.
    pub CountEntries, mantle_live::Empty, CountEntriesAnswer, NoError
);

fn live(live: &mut Live) {
    live.command::<CountEntries, _, _>(|caller, _| async move {
        let store = caller.store().await.map_err(Failure::internal)?;
        let n = store
            .read(|r| r.query::<Entry>().count())
            .await
            .map_err(Failure::internal)?;
        Ok(CountEntriesAnswer {
            entries: i64::try_from(n).unwrap_or(i64::MAX),
        })
    });
}
