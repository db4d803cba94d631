//! Lists of short text entries, **owned by a user and shared** with the
//! users she chooses (to read, or to edit) or published read-only to
//! everyone, and edited live by everyone allowed.
//!
//! Alice's lists live in her own user store: one [`List`] item per list
//! (its name unique among hers) and one [`ListEntry`] per entry. Each list
//! is shared under its name: with Alice's own primary role when she makes
//! it (so the name is a share id from the start), then with `Role::account(bob)`
//! for Bob (`read`, or `read` and `edit`), or with `Role::Everyone` to
//! publish it. So every list, one's own or another's, is named by
//! `(owner, name)`, and **every access decision is the sharing layer's**
//! (`site.sharing()`): a list nobody shared with you, a list that does not
//! exist and a withdrawn share are one and the same refusal.
//!
//! Over the live layer (`mantle_live_server`, AMP or JSON over WebSocket):
//!
//! * [`OpenList`] `{owner?, name}` answers `{handle, model, owner, edit}`:
//!   the caller's own list (made on first opening) or another user's that
//!   she may read (`NOT_FOUND` otherwise). On the handle, [`AddEntry`]
//!   `{text}` → `{id, revision}`, [`EditEntry`] `{id, text, revision}` →
//!   `{revision}` and [`RemoveEntry`] `{id, revision}` → `{}` need edit
//!   access, checked by the sharing layer in the owner's transaction that
//!   runs each call (`NOT_FOUND` without it). Edits and removals name the
//!   revision they were made against; a stale one is refused with
//!   `SAVE_CONFLICT`, a missing entry with `NOT_FOUND` (see
//!   [`EntryError`]).
//! * The model `list:OWNER/NAME` (kind [`MODEL_KIND`], a shared model):
//!   its snapshot is `{"name", "entries": [{"id", "text", "revision"}, ...]}`
//!   in list order, its deltas `{"op": "add" | "edit" | "remove", "entry":
//!   {...}}` (see [`ListDelta`]), each published in the transaction that
//!   makes the change. Withdrawing the share an observation was granted
//!   through ends it (an `Ended` push, code `NOT_FOUND`).
//! * The owner's [`ShareList`] `{name, with, access}` (`with` a login or
//!   `everyone`; `access` `read` or `edit`, everyone only reads) and
//!   [`UnshareList`] `{name, with}`; [`MyLists`] (hers, with their shares)
//!   and [`SharedLists`] (what others share with her).
//!
//! Over HTTP: `GET /lists` (your lists and those shared with you),
//! `GET /lists/OWNER/NAME` (the live page for a logged-in viewer who may
//! read the list, read-only without edit access; for anonymous visitors a
//! read-only page of a list published to everyone, else 404), and
//! `GET /lists/NAME` (a redirect to your own list `NAME`).
//!
//! ```
//! use mantle_example_lists as lists;
//! use mantle_site::sharing::Viewer;
//! use mantle_site::{Site, SiteConfig, SiteError};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let site = Site::builder(dir.path())
//!     .offering(mantle_web::offering())
//!     .offering(mantle_live_server::offering())
//!     .offering(lists::offering())
//!     .init(SiteConfig::default())
//!     .await?;
//! site.offerings().install(lists::APP).await?;
//! let alice = site.accounts().create("alice", "correct horse battery", false).await?.id;
//! let bob = site.accounts().create("bob", "correct horse battery", false).await?.id;
//!
//! // Alice makes a list in her store and adds to it.
//! let groceries = lists::create(&site, alice, "groceries").await?;
//! let store = site.stores().user_store_unchecked(alice).await?;
//! let milk = lists::add(&store, groceries, "milk").await.unwrap();
//! let edited = lists::edit(&store, groceries, milk.id, "oat milk", milk.revision).await.unwrap();
//! // An edit against the old revision conflicts.
//! let stale = lists::edit(&store, groceries, milk.id, "soy milk", milk.revision).await;
//! assert!(matches!(stale, Err(lists::Error::Entry(lists::EntryError::SaveConflict { .. }))));
//!
//! // Bob sees it once she shares it with him; anonymous visitors once she
//! // publishes it. Before that, it is as if it did not exist.
//! let bob_reads = lists::read(&site, Viewer::Account(bob), alice, "groceries").await;
//! assert!(matches!(bob_reads, Err(SiteError::NoSuchShare(_))));
//! lists::share(&site, alice, "groceries", "bob", lists::ListAccess::Read).await.unwrap();
//! let seen = lists::read(&site, Viewer::Account(bob), alice, "groceries").await?;
//! assert_eq!(seen.entries, vec![edited]);
//! assert!(lists::read(&site, Viewer::Anonymous, alice, "groceries").await.is_err());
//! lists::share(&site, alice, "groceries", "everyone", lists::ListAccess::Read).await.unwrap();
//! assert_eq!(lists::read(&site, Viewer::Anonymous, alice, "groceries").await?.name, "groceries");
//! site.close().await;
//! # Ok::<_, SiteError>(())
//! # }).unwrap();
//! ```

mod entries;
mod items;
mod live;
mod share;
mod web;

use mantle_live_server::LiveOffering;
use mantle_site::{Offering, Scope, SiteBuilder};
use mantle_store::{Id, Store};
use mantle_web::WebOffering;

pub use entries::{
    EntryError, EntryView, Error, ListDelta, ListSnapshot, add_in, edit_in, entries,
    published_model, read_snapshot, remove_in, snapshot,
};
pub use items::{
    List, ListEntry, MAX_ENTRIES, MAX_NAME, MAX_TEXT, check_name, check_text, register,
};
pub use live::{
    AddEntry, AddEntryAnswer, AddEntryArgs, EditEntry, EditEntryAnswer, EditEntryArgs, MyLists,
    MyListsAnswer, OpenList, OpenListAnswer, OpenListArgs, OpenListError, RemoveEntry,
    RemoveEntryArgs, ShareList, ShareListArgs, SharedLists, SharedListsAnswer, UnshareList,
    UnshareListAnswer, UnshareListArgs,
};
pub use share::{
    EVERYONE, ListAccess, MyList, ShareError, ShareFailure, ShareView, SharedList, create,
    create_in, find_in, my_lists, read, share, shared_lists, unshare,
};

/// The offering's name (it names its routes' presence and its product).
pub const APP: &str = "lists";
/// The kind of the lists' models: `list:OWNER/NAME`.
pub const MODEL_KIND: &str = "list";

/// The model name of `owner`'s list `name` (`owner` her login).
pub fn model(owner: &str, name: &str) -> String {
    format!("{MODEL_KIND}:{owner}/{name}")
}

/// Adds `text` at the end of `list`, in its owner's `store`.
pub async fn add(store: &Store, list: Id<List>, text: &str) -> Result<EntryView, Error> {
    let text = text.to_string();
    store.transact(move |tx| add_in(tx, list, &text)).await
}

/// Edits entry `id` of `list` (in its owner's `store`) against `revision`.
pub async fn edit(
    store: &Store,
    list: Id<List>,
    id: i64,
    text: &str,
    revision: i64,
) -> Result<EntryView, Error> {
    let text = text.to_string();
    store
        .transact(move |tx| edit_in(tx, list, id, &text, revision))
        .await
}

/// Removes entry `id` of `list` (in its owner's `store`) against
/// `revision`.
pub async fn remove(
    store: &Store,
    list: Id<List>,
    id: i64,
    revision: i64,
) -> Result<EntryView, Error> {
    store
        .transact(move |tx| remove_in(tx, list, id, revision))
        .await
}

/// The lists as an offering: the item types (in each user's store; [`List`]
/// shareable), the live commands and models, and the pages under
/// `/lists`. It needs the live layer (`mantle_live_server::offering`).
pub fn offering() -> Offering {
    Offering::new(APP, 2)
        .description("Lists, shared with chosen users or published, edited live")
        .items(Scope::User, register)
        .shareable::<List>()
        .live(live::declare)
        .routes(web::routes)
        .template(web::INDEX, web::INDEX_TEMPLATE)
        .template(web::PAGE, web::PAGE_TEMPLATE)
        .template(web::PUBLIC, web::PUBLIC_TEMPLATE)
        .asset(
            web::SCRIPT_PATH,
            "text/javascript; charset=utf-8",
            web::SCRIPT,
        )
        .nav("Lists", "/lists")
}

/// Includes the lists ([`offering`]) in a site builder.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder.offering(offering())
}
