//! The lists' item types, kept in each owner's user store, and the checks
//! of what users type into them.

use mantle_store::{Id, Item, Registry};
use serde::{Deserialize, Serialize};

/// The longest list name, in characters (the longest share id).
pub const MAX_NAME: usize = 100;
/// The longest entry, in characters.
pub const MAX_TEXT: usize = 500;
/// The most entries a list holds (snapshots are sent whole).
pub const MAX_ENTRIES: i64 = 500;

/// A list, in its owner's store. Its name is unique among the owner's
/// lists: it is also the share id every share of the list is made under,
/// so `(owner, name)` names the list for everyone it is shared with.
#[derive(Item, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[item(name = "lists_list", version = 1)]
pub struct List {
    /// The list's name (see [`check_name`]).
    pub name: String,
}

/// One entry of a list, in the list owner's store. (Its type name is new
/// with owned lists: the entries of the shared app store of old,
/// `lists_entry` items in `apps/lists.store`, belonged to nobody and are
/// left where they are.)
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "lists_list_entry", version = 1, index(list, position))]
pub struct ListEntry {
    /// The list; deleting it deletes its entries.
    #[item(on_delete = "cascade")]
    pub list: Id<List>,
    /// What the entry says.
    pub text: String,
    /// Its place in the list (entries are shown by increasing position).
    pub position: i64,
}

/// Registers the lists' item types (in user stores).
pub fn register(registry: &mut Registry) {
    registry.register::<List>().register::<ListEntry>();
}

/// Whether `name` can name a list: 1 to [`MAX_NAME`] letters, digits and
/// `_ . - ~` (a list's name is its share id, and a segment of its URL
/// `/lists/OWNER/NAME` as it is), and neither `.` nor `..`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a list name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a list name has at most {MAX_NAME} characters"));
    }
    if mantle_site::sharing::check_share_id(name).is_err() {
        return Err(
            "a list name has only letters, digits and _ . - ~ (no spaces), and is not . or .."
                .into(),
        );
    }
    Ok(())
}

/// Whether `text` can be an entry: one line of 1 to [`MAX_TEXT`]
/// characters, not only blanks.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("an entry cannot be empty".into());
    }
    if text.chars().count() > MAX_TEXT {
        return Err(format!("an entry has at most {MAX_TEXT} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("an entry is one line, without control characters".into());
    }
    Ok(())
}
