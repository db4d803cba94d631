//! A list's entries: reading them, and the changes that publish the
//! list's model deltas in the transaction that makes them. Everything
//! here runs in a transaction of the list owner's store, which the caller
//! reached through the sharing layer (or is the owner's own).

use mantle_live::CommandError;
use mantle_live_server::{Failure, item_model};
use mantle_store::{Id, ReadTx, Stored, Tx};
use serde::{Deserialize, Serialize};

use crate::MODEL_KIND;
use crate::items::{List, ListEntry, MAX_ENTRIES, check_text};

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

/// A change of a list, as published to the observers of its model.
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

/// The snapshot of a list's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSnapshot {
    /// The list's name.
    pub name: String,
    /// The entries, in list order.
    pub entries: Vec<EntryView>,
}

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

/// What the entry functions fail with.
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

/// The name under which the changes of `list` are published (whatever
/// name its observers observe it under: `list:OWNER/NAME`).
pub fn published_model(list: Id<List>) -> String {
    item_model(MODEL_KIND, list)
}

/// The entries of `list`, in order.
pub fn entries(r: &ReadTx, list: Id<List>) -> mantle_store::Result<Vec<EntryView>> {
    Ok(r.query::<ListEntry>()
        .filter(ListEntry::LIST.eq(list))
        .order_by(ListEntry::POSITION.asc())
        .all()?
        .iter()
        .map(EntryView::from)
        .collect())
}

/// The snapshot of `list` (its model's value): its name and entries.
pub fn read_snapshot(r: &ReadTx, list: Id<List>) -> mantle_store::Result<ListSnapshot> {
    let name = r.get(list)?.map(|l| l.name.clone()).unwrap_or_default();
    Ok(ListSnapshot {
        name,
        entries: entries(r, list)?,
    })
}

/// The snapshot of `list` as JSON, for the live layer.
pub fn snapshot(r: &ReadTx, list: Id<List>) -> mantle_store::Result<serde_json::Value> {
    serde_json::to_value(read_snapshot(r, list)?).map_err(|e| mantle_store::Error::Encode {
        what: "list snapshot",
        reason: e.to_string(),
    })
}

/// The entry `id` of `list`, if it is in that list.
fn find(tx: &Tx, list: Id<List>, id: i64) -> Result<Stored<ListEntry>, Error> {
    tx.get(Id::<ListEntry>::from_raw(id))?
        .filter(|e| e.list == list)
        .ok_or(Error::Entry(EntryError::NotFound { id }))
}

fn check_revision(entry: &Stored<ListEntry>, revision: i64) -> Result<(), EntryError> {
    mantle_live_server::check_revision(entry, revision).map_err(EntryError::from)
}

fn bad_text(text: &str) -> Result<(), EntryError> {
    check_text(text).map_err(|reason| EntryError::BadText { reason })
}

/// In a transaction of the owner's store: adds `text` at the end of
/// `list` and publishes the delta.
pub fn add_in(tx: &mut Tx, list: Id<List>, text: &str) -> Result<EntryView, Error> {
    bad_text(text)?;
    let in_list = ListEntry::LIST.eq(list);
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
        list,
        text: text.to_string(),
        position: last + 1,
    })?;
    let stored = tx.get(id)?.expect("inserted just now");
    let entry = EntryView::from(&stored);
    let delta = ListDelta::Add {
        entry: entry.clone(),
    };
    mantle_live_server::publish(tx, &published_model(list), &delta)?;
    Ok(entry)
}

/// In a transaction of the owner's store: sets the text of entry `id` of
/// `list`, if it is still at `revision`, and publishes the delta.
pub fn edit_in(
    tx: &mut Tx,
    list: Id<List>,
    id: i64,
    text: &str,
    revision: i64,
) -> Result<EntryView, Error> {
    bad_text(text)?;
    let mut stored = find(tx, list, id)?;
    check_revision(&stored, revision)?;
    stored.text = text.to_string();
    tx.update(&mut stored)?;
    let entry = EntryView::from(&stored);
    let delta = ListDelta::Edit {
        entry: entry.clone(),
    };
    mantle_live_server::publish(tx, &published_model(list), &delta)?;
    Ok(entry)
}

/// In a transaction of the owner's store: removes entry `id` of `list`,
/// if it is still at `revision`, and publishes the delta.
pub fn remove_in(tx: &mut Tx, list: Id<List>, id: i64, revision: i64) -> Result<EntryView, Error> {
    let stored = find(tx, list, id)?;
    check_revision(&stored, revision)?;
    tx.delete(stored.id())?;
    let entry = EntryView::from(&stored);
    let delta = ListDelta::Remove {
        entry: entry.clone(),
    };
    mantle_live_server::publish(tx, &published_model(list), &delta)?;
    Ok(entry)
}
