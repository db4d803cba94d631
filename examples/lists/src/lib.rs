//! A shared-list offering: lists of short text entries that every
//! logged-in user can open, read and change, live.
//!
//! Everything lives in one app store, `app:lists` (`apps/lists.store` in
//! the site directory): one [`ListEntry`] item per entry, indexed by list
//! name. There is no access control beyond being logged in: **any
//! logged-in user may open, read, add to, edit and empty any list** (that
//! is the example's point: shared state edited by several people at once).
//!
//! Over the live layer (`mantle_live_server`, AMP or JSON over WebSocket):
//!
//! * [`OpenList`] `{name}` answers `{handle, model}`: a referenceable for the
//!   list, on which [`AddEntry`] `{text}` → `{id, revision}`,
//!   [`EditEntry`] `{id, text, revision}` → `{revision}` and
//!   [`RemoveEntry`] `{id, revision}` → `{}` are called. Edits and removals
//!   name the revision they were made against; a stale one is refused with
//!   `SAVE_CONFLICT` (details `your_revision`, `current_revision`), a
//!   missing entry with `NOT_FOUND` (see [`EntryError`]).
//! * The model `list:NAME` (kind [`MODEL_KIND`]): its snapshot is
//!   `{"entries": [{"id", "text", "revision"}, ...]}` in list order, its
//!   deltas `{"op": "add" | "edit" | "remove", "entry": {...}}` (see
//!   [`ListDelta`]), each published in the transaction that makes the
//!   change.
//!
//! Over HTTP, `GET /lists/NAME` is a page (for logged-in browsers; others
//! are sent to `/login`) that shows the list live with the browser client
//! `/live.js`.
//!
//! ```
//! use mantle_example_lists as lists;
//! use mantle_site::{Site, SiteConfig};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let site = Site::builder(dir.path())
//!     .offering(mantle_web::offering())
//!     .offering(mantle_live_server::offering())
//!     .offering(lists::offering())
//!     .init(SiteConfig::default())
//!     .await?;
//! site.offerings().install(lists::APP).await?;
//! let store = lists::store(&site).await?;
//! let milk = lists::add(&store, "shopping", "milk").await.unwrap();
//! let edited = lists::edit(&store, "shopping", milk.id, "oat milk", milk.revision).await.unwrap();
//! // An edit against the old revision conflicts.
//! let stale = lists::edit(&store, "shopping", milk.id, "soy milk", milk.revision).await;
//! assert!(matches!(stale, Err(lists::Error::Entry(lists::EntryError::SaveConflict { .. }))));
//! let entries = store.read(|r| lists::entries(r, "shopping")).await?;
//! assert_eq!(entries, vec![edited]);
//! site.close().await;
//! # Ok::<_, mantle_site::SiteError>(())
//! # }).unwrap();
//! ```

mod web;

use std::sync::Arc;

use mantle_live::builtin::ObserveError;
use mantle_live::{CommandError, Empty, Handle, arguments, command};
use mantle_live_server::{Failure, Live, LiveOffering, ObjectCommands, OrFail};
use mantle_site::{Offering, Scope, Site, SiteBuilder, SiteError};
use mantle_store::{Id, Item, ReadTx, Registry, Store, Stored, Tx};
use mantle_web::WebOffering;
use serde::{Deserialize, Serialize};

pub use web::routes;

/// The app store's name (`app:lists`, file `apps/lists.store`).
pub const APP: &str = "lists";
/// The kind of the lists' models: list `NAME` is model `list:NAME`.
pub const MODEL_KIND: &str = "list";
/// The longest list name, in characters.
pub const MAX_NAME: usize = 100;
/// The longest entry, in characters.
pub const MAX_TEXT: usize = 500;
/// The most entries a list holds (snapshots are sent whole).
pub const MAX_ENTRIES: i64 = 500;

/// One entry of a list.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "lists_entry", version = 1, index(list, position))]
pub struct ListEntry {
    /// The list's name.
    pub list: String,
    /// What the entry says.
    pub text: String,
    /// Its place in the list (entries are shown by increasing position).
    pub position: i64,
}

/// An entry as clients see it (in snapshots, deltas and answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// The entry's id.
    pub id: i64,
    /// Its text.
    pub text: String,
    /// Its revision: 1 when added, one more at each edit.
    pub revision: i64,
}

impl From<&Stored<ListEntry>> for EntryView {
    fn from(e: &Stored<ListEntry>) -> Self {
        EntryView {
            id: e.id().raw(),
            text: e.text.clone(),
            revision: e.revision(),
        }
    }
}

/// A change of a list, as published to the observers of `list:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ListDelta {
    /// An entry was added at the end.
    Add {
        /// The new entry.
        entry: EntryView,
    },
    /// An entry's text changed.
    Edit {
        /// The entry as it is now.
        entry: EntryView,
    },
    /// An entry was removed.
    Remove {
        /// The entry as it was.
        entry: EntryView,
    },
}

/// The snapshot of a list model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSnapshot {
    /// The entries, in list order.
    pub entries: Vec<EntryView>,
}

arguments! {
    /// `OpenList` arguments.
    pub struct OpenListArgs {
        /// The list's name, shared by everyone who opens it.
        pub name: String,
    }
    /// `OpenList` answer: a handle to the list, and the model to observe.
    pub struct OpenListAnswer {
        /// The list, to call `AddEntry`, `EditEntry` and `RemoveEntry` on.
        pub handle: Handle,
        /// The model to `Observe` for its entries (`list:NAME`).
        pub model: String,
    }
    /// `AddEntry` arguments.
    pub struct AddEntryArgs {
        /// What the new entry says.
        pub text: String,
    }
    /// `AddEntry` answer.
    pub struct AddEntryAnswer {
        /// The new entry's id, for editing or removing it.
        pub id: i64,
        /// Its first revision, for the first edit to name.
        pub revision: i64,
    }
    /// `EditEntry` arguments: the revision the edit was made against.
    pub struct EditEntryArgs {
        /// The entry to change.
        pub id: i64,
        /// What it says from now on.
        pub text: String,
        /// The entry's revision the edit was made against.
        pub revision: i64,
    }
    /// `EditEntry` answer: the entry's new revision.
    pub struct EditEntryAnswer {
        /// The entry's revision after the edit.
        pub revision: i64,
    }
    /// `RemoveEntry` arguments: the revision the removal was decided on.
    pub struct RemoveEntryArgs {
        /// The entry to remove.
        pub id: i64,
        /// The entry's revision the removal was decided on.
        pub revision: i64,
    }
}

/// Why a list cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum OpenListError {
    /// The name is empty, too long, or has control characters.
    #[serde(rename = "BAD_NAME")]
    #[error("bad list name: {reason}")]
    BadName {
        /// What is wrong with it.
        reason: String,
    },
}
impl CommandError for OpenListError {}

/// Why a change of an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum EntryError {
    /// Someone changed the entry since the revision the change was made
    /// against (the same code and details as
    /// [`mantle_live::SaveConflict`]).
    #[serde(rename = "SAVE_CONFLICT")]
    #[error(
        "the entry was saved by someone else since revision {your_revision}; it is now at revision {current_revision}"
    )]
    SaveConflict {
        /// The revision the change was made against.
        your_revision: i64,
        /// The entry's revision now.
        current_revision: i64,
    },
    /// No such entry in this list (removed, say).
    #[serde(rename = "NOT_FOUND")]
    #[error("entry {id} is not in this list (removed?)")]
    NotFound {
        /// The id asked for.
        id: i64,
    },
    /// The text is empty or too long.
    #[serde(rename = "BAD_TEXT")]
    #[error("{reason}")]
    BadText {
        /// What is wrong with it.
        reason: String,
    },
    /// The list has [`MAX_ENTRIES`] entries already.
    #[serde(rename = "LIST_FULL")]
    #[error("the list is full ({max} entries)")]
    ListFull {
        /// The most entries a list holds.
        max: i64,
    },
}
impl CommandError for EntryError {}

impl From<mantle_live::SaveConflict> for EntryError {
    fn from(c: mantle_live::SaveConflict) -> Self {
        let mantle_live::SaveConflict::SaveConflict {
            your_revision,
            current_revision,
        } = c;
        EntryError::SaveConflict {
            your_revision,
            current_revision,
        }
    }
}

command!(
    /// Opens list `name` (made on its first entry): answers a handle for
    /// the entry commands and the model name to observe.
    pub OpenList, OpenListArgs, OpenListAnswer, OpenListError
);
command!(
    /// On a list handle: adds an entry at the end.
    pub AddEntry, AddEntryArgs, AddEntryAnswer, EntryError
);
command!(
    /// On a list handle: changes an entry's text, if it is still at the
    /// given revision.
    pub EditEntry, EditEntryArgs, EditEntryAnswer, EntryError
);
command!(
    /// On a list handle: removes an entry, if it is still at the given
    /// revision.
    pub RemoveEntry, RemoveEntryArgs, Empty, EntryError
);

/// What the store-level functions fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal to tell the caller.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantle_store::Error),
}

impl From<Error> for Failure<EntryError> {
    fn from(e: Error) -> Self {
        match e {
            Error::Entry(e) => Failure::Command(e),
            Error::Store(e) => match mantle_live_server::save_conflict(&e) {
                Some(c) => Failure::Command(c.into()),
                None => Failure::internal(e),
            },
        }
    }
}

/// Whether `name` can name a list.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a list name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a list name has at most {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a list name cannot have control characters".into());
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), EntryError> {
    let bad = |reason: String| EntryError::BadText { reason };
    if text.trim().is_empty() {
        return Err(bad("an entry cannot be empty".into()));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(bad(format!("an entry has at most {MAX_TEXT} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad(
            "an entry is one line, without control characters".into()
        ));
    }
    Ok(())
}

/// The model name of list `name`.
pub fn model(name: &str) -> String {
    format!("{MODEL_KIND}:{name}")
}

/// Registers the lists' item types.
pub fn register(registry: &mut Registry) {
    registry.register::<ListEntry>();
}

/// The app store holding every list (the site must have been built with
/// [`install`]).
pub async fn store(site: &Site) -> Result<Store, SiteError> {
    site.stores().app_store(APP).await
}

/// The entries of list `name`, in order.
pub fn entries(r: &ReadTx, name: &str) -> mantle_store::Result<Vec<EntryView>> {
    Ok(r.query::<ListEntry>()
        .filter(ListEntry::LIST.eq(name))
        .order_by(ListEntry::POSITION.asc())
        .all()?
        .iter()
        .map(EntryView::from)
        .collect())
}

/// The snapshot of list `name` (the model's value).
pub fn snapshot(r: &ReadTx, name: &str) -> mantle_store::Result<serde_json::Value> {
    let snapshot = ListSnapshot {
        entries: entries(r, name)?,
    };
    serde_json::to_value(snapshot).map_err(|e| mantle_store::Error::Encode {
        what: "list snapshot",
        reason: e.to_string(),
    })
}

/// The entry `id` of list `name`, if it is in that list.
fn find(tx: &Tx, name: &str, id: i64) -> Result<Stored<ListEntry>, Error> {
    tx.get(Id::<ListEntry>::from_raw(id))?
        .filter(|e| e.list == name)
        .ok_or(Error::Entry(EntryError::NotFound { id }))
}

fn check_revision(entry: &Stored<ListEntry>, revision: i64) -> Result<(), EntryError> {
    mantle_live_server::check_revision(entry, revision).map_err(EntryError::from)
}

/// In a transaction: adds `text` at the end of list `name` and publishes
/// the delta.
pub fn add_in(tx: &mut Tx, name: &str, text: &str) -> Result<EntryView, Error> {
    check_text(text)?;
    let in_list = ListEntry::LIST.eq(name);
    if tx.query::<ListEntry>().filter(in_list.clone()).count()? >= MAX_ENTRIES as u64 {
        return Err(EntryError::ListFull { max: MAX_ENTRIES }.into());
    }
    let last = tx
        .query::<ListEntry>()
        .filter(in_list)
        .order_by(ListEntry::POSITION.desc())
        .first()?
        .map_or(0, |e| e.position);
    let id = tx.insert(&ListEntry {
        list: name.to_string(),
        text: text.to_string(),
        position: last + 1,
    })?;
    let stored = tx.get(id)?.expect("inserted just now");
    let entry = EntryView::from(&stored);
    mantle_live_server::publish(
        tx,
        &model(name),
        &ListDelta::Add {
            entry: entry.clone(),
        },
    )?;
    Ok(entry)
}

/// In a transaction: sets the text of entry `id` of list `name`, if it is
/// still at `revision`, and publishes the delta.
pub fn edit_in(
    tx: &mut Tx,
    name: &str,
    id: i64,
    text: &str,
    revision: i64,
) -> Result<EntryView, Error> {
    check_text(text)?;
    let mut stored = find(tx, name, id)?;
    check_revision(&stored, revision)?;
    stored.text = text.to_string();
    tx.update(&mut stored)?;
    let entry = EntryView::from(&stored);
    mantle_live_server::publish(
        tx,
        &model(name),
        &ListDelta::Edit {
            entry: entry.clone(),
        },
    )?;
    Ok(entry)
}

/// In a transaction: removes entry `id` of list `name`, if it is still at
/// `revision`, and publishes the delta.
pub fn remove_in(tx: &mut Tx, name: &str, id: i64, revision: i64) -> Result<EntryView, Error> {
    let stored = find(tx, name, id)?;
    check_revision(&stored, revision)?;
    tx.delete(stored.id())?;
    let entry = EntryView::from(&stored);
    mantle_live_server::publish(
        tx,
        &model(name),
        &ListDelta::Remove {
            entry: entry.clone(),
        },
    )?;
    Ok(entry)
}

/// Adds `text` at the end of list `name` in `store` (the app store).
pub async fn add(store: &Store, name: &str, text: &str) -> Result<EntryView, Error> {
    let (name, text) = (name.to_string(), text.to_string());
    store.transact(move |tx| add_in(tx, &name, &text)).await
}

/// Edits entry `id` of list `name` against `revision`.
pub async fn edit(
    store: &Store,
    name: &str,
    id: i64,
    text: &str,
    revision: i64,
) -> Result<EntryView, Error> {
    let (name, text) = (name.to_string(), text.to_string());
    store
        .transact(move |tx| edit_in(tx, &name, id, &text, revision))
        .await
}

/// Removes entry `id` of list `name` against `revision`.
pub async fn remove(store: &Store, name: &str, id: i64, revision: i64) -> Result<EntryView, Error> {
    let name = name.to_string();
    store
        .transact(move |tx| remove_in(tx, &name, id, revision))
        .await
}

/// What a list handle refers to.
struct ListRef {
    name: String,
}

fn list_commands() -> ObjectCommands<ListRef> {
    ObjectCommands::<ListRef>::new()
        .command::<AddEntry, _, _>(|caller, list, args| async move {
            let store = store(caller.site()).await.or_fail()?;
            let e = add(&store, &list.name, &args.text).await?;
            Ok(AddEntryAnswer {
                id: e.id,
                revision: e.revision,
            })
        })
        .command::<EditEntry, _, _>(|caller, list, args| async move {
            let store = store(caller.site()).await.or_fail()?;
            let e = edit(&store, &list.name, args.id, &args.text, args.revision).await?;
            Ok(EditEntryAnswer {
                revision: e.revision,
            })
        })
        .command::<RemoveEntry, _, _>(|caller, list, args| async move {
            let store = store(caller.site()).await.or_fail()?;
            remove(&store, &list.name, args.id, args.revision).await?;
            Ok(Empty {})
        })
}

/// Adds the lists to the live layer: `OpenList` and the `list` models.
fn live(live: &mut Live) {
    let commands = Arc::new(list_commands());
    live.command::<OpenList, _, _>(move |caller, args| {
        let commands = commands.clone();
        async move {
            check_name(&args.name).map_err(|reason| OpenListError::BadName { reason })?;
            let model = model(&args.name);
            let handle = caller.publish(Arc::new(ListRef { name: args.name }), commands)?;
            Ok(OpenListAnswer { handle, model })
        }
    });
    live.model(
        MODEL_KIND,
        |caller, key| async move {
            if check_name(&key).is_err() {
                return Err(Failure::Command(ObserveError::NoSuchModel {
                    model: model(&key),
                }));
            }
            store(caller.site()).await.or_fail()
        },
        snapshot,
    );
}

/// The lists as an offering: the item type (in its app store, `app:lists`),
/// the live commands and models, and the page at `/lists/NAME`. It needs
/// the live layer (`mantle_live_server::offering`).
pub fn offering() -> Offering {
    Offering::new(APP, 1)
        .description("Shared lists, edited live by everyone who has them")
        .items(Scope::App, register)
        .app_store()
        .live(live)
        .routes(routes)
        .nav("Lists: groceries", "/lists/groceries")
}

/// Includes the lists ([`offering`]) in a site builder.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder.offering(offering())
}
