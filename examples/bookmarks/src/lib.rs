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

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use mantle_live::builtin::ObserveError;
use mantle_live::{NoError, arguments, command};
use mantle_live_server::{Failure, Live, LiveOffering};
use mantle_site::{
    Account, ConfigSection, Envelope, Message, MessageHandlers, Offering, Recipient, Refusal,
    Scope, SendMessage, Site, SiteConfig, SiteError,
};
use mantle_store::{
    Delivery, DispatchError, Effect, Filter, Id, Item, ReadTx, Registry, Stored, Timestamp, Tx,
};
use mantle_web::{ApiError, AppState, JsonBody, Member, WebOffering};
use serde::{Deserialize, Serialize};

/// The offering's name: it names its configuration section and its URLs.
pub const NAME: &str = "bookmarks";

/// The longest URL kept, in bytes.
pub const MAX_URL: usize = 2048;
/// The longest title kept, in characters.
pub const MAX_TITLE: usize = 200;
/// The longest sweep period, in minutes (a year).
pub const MAX_SWEEP_MINUTES: u32 = 525_600;

// ---------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------

/// A bookmark, in a user's store (version 2).
///
/// Version 1 ([`legacy::BookmarkV1`]) had only `url` and `created`;
/// stores holding it are upgraded as they open
/// ([`legacy::v1_to_v2`]).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bookmarks_bookmark", version = 2)]
pub struct Bookmark {
    /// Where it points: an `http` or `https` URL.
    pub url: String,
    /// What it is called.
    pub title: String,
    /// Whether it is shown on the owner's public page.
    pub public: bool,
    /// When it was made.
    #[item(index)]
    pub created: Timestamp,
}

/// Older versions of [`Bookmark`], kept so that stores written by older
/// programs can be upgraded.
pub mod legacy {
    use super::*;

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

/// The one item per user store that the sweep task runs on, with the
/// settings it sweeps by (copied from [`Config`]: a store task cannot read
/// the site's configuration, so [`configure_in`] keeps them here).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bookmarks_sweeper", version = 1)]
pub struct Sweeper {
    /// The most bookmarks the user keeps; the sweep deletes the oldest
    /// beyond it.
    pub max_per_user: i64,
    /// The sweep's period, in minutes.
    pub every_minutes: i64,
}

/// The sweep task's name (on the user's [`Sweeper`]).
pub const SWEEP_TASK: &str = "sweep";

/// Registers the offering's item types, the upgrader and the sweep task.
pub fn register(registry: &mut Registry) {
    registry
        .register::<Bookmark>()
        .upgrader(legacy::v1_to_v2)
        .register::<Sweeper>()
        .task::<Sweeper>(SWEEP_TASK, sweep);
}

// ---------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------

/// `[offerings.bookmarks]` in `mantle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How the page greets its user (`MANTLE_BOOKMARKS_GREETING` overrides it).
    pub greeting: String,
    /// The most bookmarks a user keeps: the sweep deletes the oldest
    /// beyond it (`MANTLE_BOOKMARKS_MAX_PER_USER`).
    pub max_per_user: u32,
    /// How often each user's list is swept, in minutes
    /// (`MANTLE_BOOKMARKS_SWEEP_MINUTES`).
    pub sweep_minutes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            greeting: "Hello".into(),
            max_per_user: 1000,
            sweep_minutes: 60,
        }
    }
}

impl Config {
    /// The sweep's period.
    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.sweep_minutes) * 60)
    }
}

impl ConfigSection for Config {
    const NAME: &'static str = NAME;

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> mantle_site::Result<()> {
        if let Some(v) = var("MANTLE_BOOKMARKS_GREETING") {
            self.greeting = v;
        }
        if let Some(v) = var("MANTLE_BOOKMARKS_MAX_PER_USER") {
            self.max_per_user = mantle_site::parse_env("MANTLE_BOOKMARKS_MAX_PER_USER", &v)?;
        }
        if let Some(v) = var("MANTLE_BOOKMARKS_SWEEP_MINUTES") {
            self.sweep_minutes = mantle_site::parse_env("MANTLE_BOOKMARKS_SWEEP_MINUTES", &v)?;
        }
        Ok(())
    }

    fn validate(&self, _: &SiteConfig) -> mantle_site::Result<()> {
        let bad = |text: String| Err(SiteError::Config(format!("offerings.{NAME}.{text}")));
        if self.greeting.trim().is_empty() {
            return bad("greeting must not be empty".into());
        }
        if self.max_per_user == 0 {
            return bad("max_per_user must be at least 1 (got 0)".into());
        }
        if self.sweep_minutes == 0 || self.sweep_minutes > MAX_SWEEP_MINUTES {
            return bad(format!(
                "sweep_minutes must be between 1 and {MAX_SWEEP_MINUTES} (got {})",
                self.sweep_minutes
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------
// The offering
// ---------------------------------------------------------------------

/// The offering: everything it brings, declared once.
pub fn offering() -> Offering {
    Offering::new(NAME, 2)
        .description("Bookmarks: links worth keeping, some public, shared between users")
        .requires(mantle_web::LAYER)
        .items(Scope::User, register)
        .config::<Config>()
        .messages(messages)
        .on_given(|tx, _| {
            // Runs once per user, in their store, when they are given it.
            // A hook cannot read the site's configuration: make the
            // sweeper with the defaults, and ask for the configured
            // settings right after the commit (see `Refresh`).
            if tx.query::<Sweeper>().first()?.is_none() {
                configure_in(tx, &Config::default())?;
            }
            tx.record(&Refresh {})?;
            Ok(())
        })
        .then(|b| b.on_effects::<Refresh, _, _>(refresh))
        .routes(routes)
        .nav("Bookmarks", "/bookmarks")
        .live(live)
}

// ---------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------

/// Why a bookmark change, or a share, was refused (before anything was
/// recorded).
#[derive(Debug, thiserror::Error)]
pub enum BookmarkError {
    /// The URL is not one to keep.
    #[error("url: {0}")]
    BadUrl(String),
    /// The title is not one to keep.
    #[error("title: {0}")]
    BadTitle(String),
    /// No bookmark with this id in the user's store.
    #[error("no bookmark {0}")]
    NotFound(String),
    /// The recipient of a share is the sender.
    #[error("'{0}' is your own account: cannot share with yourself")]
    ToSelf(String),
    /// The recipient of a share is not a user's account (`site`,
    /// `app:NAME`, or no address at all).
    #[error("'{0}' is not a user's account: share with a login or account:ID")]
    NotAnAccount(String),
    /// The recipient of a share names no account, or a disabled one, or
    /// one not given the bookmarks.
    #[error("'{0}' cannot receive bookmarks")]
    CannotReceive(String),
    /// The site or a store failed.
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl From<mantle_store::Error> for BookmarkError {
    fn from(e: mantle_store::Error) -> Self {
        BookmarkError::Site(e.into())
    }
}

/// Bad requests are 400, a missing bookmark 404.
impl From<BookmarkError> for ApiError {
    fn from(e: BookmarkError) -> Self {
        match e {
            BookmarkError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            BookmarkError::Site(e) => e.into(),
            e => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

/// Checks a URL to keep: `http://` or `https://` with a host, at most
/// [`MAX_URL`] bytes, no spaces or control characters. Returns it without
/// surrounding blanks.
pub fn check_url(url: &str) -> Result<String, BookmarkError> {
    let url = url.trim();
    let bad = |why: &str| Err(BookmarkError::BadUrl(why.to_string()));
    if url.is_empty() {
        return bad("a bookmark needs a URL");
    }
    if url.len() > MAX_URL {
        return bad(&format!("a URL has at most {MAX_URL} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a URL has no spaces or control characters");
    }
    if scheme_len(url).is_none() {
        return bad("only http:// and https:// URLs are kept");
    }
    if host(url).is_empty() {
        return bad("the URL has no host");
    }
    Ok(url.to_string())
}

/// The length of `http://` or `https://` at the start of `url` (any case).
fn scheme_len(url: &str) -> Option<usize> {
    ["http://", "https://"].into_iter().find_map(|s| {
        url.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| s.len())
    })
}

/// The host of an http(s) URL (empty if none).
fn host(url: &str) -> &str {
    let Some(n) = scheme_len(url) else {
        return "";
    };
    let rest = &url[n..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        // An IPv6 literal, brackets included.
        return hostport.find(']').map_or(hostport, |i| &hostport[..=i]);
    }
    hostport.split(':').next().unwrap_or("")
}

/// The title a bookmark gets when it is given none: the URL's host, or
/// the URL itself when it has none.
pub fn title_from_url(url: &str) -> String {
    match host(url) {
        "" => url.chars().take(MAX_TITLE).collect(),
        h => h.to_string(),
    }
}

/// Checks a title to keep: at most [`MAX_TITLE`] characters, one line.
/// A blank one means "the URL's host".
pub fn check_title(title: Option<&str>, url: &str) -> Result<String, BookmarkError> {
    let title = title.map(str::trim).unwrap_or("");
    if title.is_empty() {
        return Ok(title_from_url(url));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(BookmarkError::BadTitle(format!(
            "a title has at most {MAX_TITLE} characters"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(BookmarkError::BadTitle(
            "a title is one line, without control characters".into(),
        ));
    }
    Ok(title.to_string())
}

// ---------------------------------------------------------------------
// Changes (each publishes its delta to the live model)
// ---------------------------------------------------------------------

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
    /// Whether it is on the owner's public page.
    pub public: bool,
    /// When it was made (RFC 3339).
    pub created: String,
}

impl From<&Stored<Bookmark>> for BookmarkView {
    fn from(b: &Stored<Bookmark>) -> Self {
        BookmarkView {
            id: b.id().raw(),
            url: b.url.clone(),
            title: b.title.clone(),
            public: b.public,
            created: b.created.to_string(),
        }
    }
}

/// A change of the [`MODEL`], as published to its observers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum BookmarkDelta {
    /// A bookmark was added (by its owner, or received from another user).
    Add {
        /// The new bookmark.
        bookmark: BookmarkView,
    },
    /// A bookmark was deleted (by its owner, or by the sweep).
    Remove {
        /// The bookmark's id.
        id: i64,
    },
}

/// In a transaction: keeps `bookmark` and publishes the delta.
pub fn insert_in(tx: &mut Tx, bookmark: &Bookmark) -> mantle_store::Result<BookmarkView> {
    let id = tx.insert(bookmark)?;
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

/// In a transaction: deletes bookmark `id` and publishes the delta;
/// `false` if there was none.
pub fn delete_in(tx: &mut Tx, id: Id<Bookmark>) -> mantle_store::Result<bool> {
    let deleted = tx.delete(id)?;
    if deleted {
        mantle_live_server::publish(tx, MODEL, &BookmarkDelta::Remove { id: id.raw() })?;
    }
    Ok(deleted)
}

/// Every bookmark in a store, newest first.
pub fn list(r: &ReadTx) -> mantle_store::Result<Vec<BookmarkView>> {
    Ok(r.query::<Bookmark>()
        .order_by(Bookmark::CREATED.desc())
        .all()?
        .iter()
        .map(BookmarkView::from)
        .collect())
}

/// The public bookmarks in a store, newest first.
pub fn public(r: &ReadTx) -> mantle_store::Result<Vec<BookmarkView>> {
    Ok(r.query::<Bookmark>()
        .filter(Bookmark::PUBLIC.eq(true))
        .order_by(Bookmark::CREATED.desc())
        .all()?
        .iter()
        .map(BookmarkView::from)
        .collect())
}

// ---------------------------------------------------------------------
// The sweep (a scheduled task) and its settings
// ---------------------------------------------------------------------

/// In a transaction: deletes the oldest bookmarks beyond `max`, publishing
/// each removal; returns how many went.
pub fn trim_in(tx: &mut Tx, max: i64) -> mantle_store::Result<u64> {
    let max = u64::try_from(max).unwrap_or(0);
    let n = tx.query::<Bookmark>().count()?;
    if n <= max {
        return Ok(0);
    }
    let oldest = tx
        .query::<Bookmark>()
        .order_by(Bookmark::CREATED.asc())
        .order_by(mantle_store::Order::by_id())
        .limit(n - max)
        .ids()?;
    let mut gone = 0;
    for id in oldest {
        if delete_in(tx, id)? {
            gone += 1;
        }
    }
    Ok(gone)
}

/// The sweep task: trims the user's list to the sweeper's
/// `max_per_user`, then asks for the configured settings again (so that a
/// changed `[offerings.bookmarks]` reaches every store within one period).
fn sweep(tx: &mut Tx<'_>, sweeper: Stored<Sweeper>) -> mantle_store::Result<()> {
    let gone = trim_in(tx, sweeper.max_per_user)?;
    if gone > 0 {
        tracing::info!(gone, max = sweeper.max_per_user, "bookmarks: swept");
    }
    tx.record(&Refresh {})?;
    Ok(())
}

/// In a transaction: makes the store's [`Sweeper`] follow `config` (its
/// limit, and its schedule, re-timed by `ensure_schedule` when the period
/// changed); returns it.
pub fn configure_in(tx: &mut Tx, config: &Config) -> mantle_store::Result<Id<Sweeper>> {
    let (max, every) = (
        i64::from(config.max_per_user),
        i64::from(config.sweep_minutes),
    );
    let mut sweeper = tx.find_or_create(Filter::all(), || Sweeper {
        max_per_user: max,
        every_minutes: every,
    })?;
    if sweeper.max_per_user != max || sweeper.every_minutes != every {
        sweeper.max_per_user = max;
        sweeper.every_minutes = every;
        tx.update(&mut sweeper)?;
    }
    tx.ensure_schedule(sweeper.id(), SWEEP_TASK, config.sweep_every())?;
    Ok(sweeper.id())
}

/// An effect recorded by the `on_given` hook and by each sweep: "bring
/// this store's sweeper in line with the site's configuration". Its
/// handler runs after the commit, with the site at hand (a hook or a
/// task has only the transaction).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refresh {}

impl Effect for Refresh {
    const KIND: &'static str = "bookmarks.refresh";
}

/// Applies the site's `[offerings.bookmarks]` to each store that asked.
async fn refresh(site: Site, batch: Vec<(Delivery, Refresh)>) -> Vec<Result<(), DispatchError>> {
    let config = site.section::<Config>().clone();
    let mut results = Vec::with_capacity(batch.len());
    for (delivery, _) in batch {
        let config = config.clone();
        let done = delivery
            .store
            .transact(move |tx| configure_in(tx, &config))
            .await;
        results.push(
            done.map(|_| ())
                .map_err(|e| DispatchError::retry(e.to_string())),
        );
    }
    results
}

// ---------------------------------------------------------------------
// Sharing (an interstore message)
// ---------------------------------------------------------------------

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
                title: shared_title(&envelope.from, &title),
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
    let store = site.stores().user_store(from).await?;
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

// ---------------------------------------------------------------------
// Routes and pages
// ---------------------------------------------------------------------

fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/bookmarks", get(api_list).post(api_add))
        .route("/api/bookmarks/{id}", delete(api_delete))
        .route("/api/bookmarks/{id}/share", post(api_share))
        .route("/bookmarks", get(page))
        .route("/bookmarks/public/{login}", get(public_page))
}

/// `GET /api/bookmarks`: `{"bookmarks": [...]}`, newest first.
async fn api_list(member: Member) -> Result<Response, ApiError> {
    let bookmarks = member.store.read(list).await?;
    Ok(Json(serde_json::json!({ "bookmarks": bookmarks })).into_response())
}

/// `POST /api/bookmarks` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    public: bool,
}

/// `POST /api/bookmarks` `{url, title?, public?}`: 201 and the bookmark.
async fn api_add(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<AddBody>,
) -> Result<Response, ApiError> {
    let url = check_url(&body.url)?;
    let title = check_title(body.title.as_deref(), &url)?;
    let config = state.site.section::<Config>().clone();
    let bookmark = Bookmark {
        url,
        title,
        public: body.public,
        created: Timestamp::now(),
    };
    let view = member
        .store
        .transact(move |tx| {
            // The route knows the configuration: keep the sweeper in line.
            configure_in(tx, &config)?;
            insert_in(tx, &bookmark)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn bookmark_id(id: &str) -> Result<Id<Bookmark>, BookmarkError> {
    id.parse::<i64>()
        .map(Id::from_raw)
        .map_err(|_| BookmarkError::NotFound(id.to_string()))
}

/// `DELETE /api/bookmarks/{id}`: 204, or 404.
async fn api_delete(member: Member, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    if member.store.transact(move |tx| delete_in(tx, bid)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(BookmarkError::NotFound(id).into())
    }
}

/// `POST /api/bookmarks/{id}/share` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    to: String,
}

/// `POST /api/bookmarks/{id}/share` `{to}`: 202 once the message is
/// recorded; the copy reaches the recipient's store just after.
async fn api_share(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<Response, ApiError> {
    let bid = bookmark_id(&id)?;
    share(&state.site, member.avatar.account, bid, &body.to).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "shared": bid.raw(), "to": body.to.trim() })),
    )
        .into_response())
}

/// `GET /bookmarks`: the user's page (404 to users not given the offering).
async fn page(State(state): State<AppState>, member: Member) -> Result<Html<String>, ApiError> {
    let greeting = state.site.section::<Config>().greeting.clone();
    let bookmarks = member.store.read(list).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Bookmarks</title>\n\
         <h1>{}, {}</h1><p>You have {} bookmarks.</p>\n{}",
        escape(&greeting),
        escape(&member.avatar.address),
        bookmarks.len(),
        render_list(&bookmarks, true),
    )))
}

/// `GET /bookmarks/public/{login}`: anyone (no login needed) sees the
/// public bookmarks of `login`; 404 for a login that names no account,
/// a disabled one, or one not given the bookmarks.
async fn public_page(
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Result<Html<String>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not found");
    let account = match state.site.accounts().get(&login).await {
        Ok(a) => a,
        Err(SiteError::NoSuchAccount(_) | SiteError::InvalidAddress(_)) => {
            return Err(not_found());
        }
        Err(e) => return Err(e.into()),
    };
    if account.disabled || !state.site.products().holds(account.id, NAME).await? {
        return Err(not_found());
    }
    let store = state.site.stores().user_store(account.id).await?;
    let bookmarks = store.read(public).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Bookmarks of {who}</title>\n\
         <h1>Bookmarks of {who}</h1>\n{}",
        render_list(&bookmarks, false),
        who = escape(&account.primary),
    )))
}

/// The list as HTML, every text escaped.
fn render_list(bookmarks: &[BookmarkView], mark_public: bool) -> String {
    let mut html = String::from("<ul>\n");
    for b in bookmarks {
        html.push_str(&format!(
            "<li><a href=\"{}\" rel=\"nofollow noopener noreferrer\">{}</a>{}</li>\n",
            escape(&b.url),
            escape(&b.title),
            if mark_public && b.public {
                " (public)"
            } else {
                ""
            },
        ));
    }
    html.push_str("</ul>");
    html
}

/// Escapes text for HTML (in text and in quoted attributes).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

// ---------------------------------------------------------------------
// Live: a model and a command
// ---------------------------------------------------------------------

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

fn live(live: &mut Live) {
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
