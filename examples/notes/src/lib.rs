//! An example offering: notebooks holding notes.
//!
//! It shows what an application declares to Mantle's store: item types, a
//! reference with a delete policy, indexes, and an upgrade chain. `Note` is
//! at version 3; versions 1 and 2 live in [`legacy`] with the upgraders that
//! bring old items forward when a store opens.
//!
//! ```
//! use mantle_example_notes::{Note, Notebook, register};
//! use mantle_store::{Registry, Store, StoreConfig, Timestamp};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut registry = Registry::new();
//! register(&mut registry);
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path().join("alice.store"), &StoreConfig::new(registry)).await?;
//! store
//!     .transact(|tx| {
//!         let book = tx.insert(&Notebook { name: "ideas".into() })?;
//!         tx.insert(&Note::new(book, "A title", "some body text", Timestamp::now()))
//!     })
//!     .await?;
//! let words: i64 = store.read(|r| r.query::<Note>().sum(Note::WORDS)).await?;
//! assert_eq!(words, 3);
//! # mantle_store::ok(())
//! # }).unwrap();
//! ```

use mantle_store::{Id, Item, Registry, Timestamp};

/// A named collection of notes.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "notebook", version = 1)]
pub struct Notebook {
    /// What the notebook is called.
    #[item(index)]
    pub name: String,
}

/// A note (current version: 3).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "note", version = 3, index(notebook, created))]
pub struct Note {
    /// The notebook it belongs to, if filed; deleting the notebook deletes
    /// its notes.
    #[item(on_delete = "cascade")]
    pub notebook: Option<Id<Notebook>>,
    /// The title.
    #[item(index)]
    pub title: String,
    /// The text.
    pub body: String,
    /// Words in the body.
    pub words: i64,
    /// When it was written.
    pub created: Timestamp,
}

impl Note {
    /// A note in `notebook`, counting the body's words.
    pub fn new(notebook: Id<Notebook>, title: &str, body: &str, created: Timestamp) -> Self {
        Self {
            notebook: Some(notebook),
            title: title.to_string(),
            body: body.to_string(),
            words: count_words(body),
            created,
        }
    }
}

fn count_words(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}

/// Older versions of [`Note`], kept so stores written by older programs can
/// be upgraded.
pub mod legacy {
    use super::*;

    /// Version 1: a title and a body, in no notebook.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "note", version = 1)]
    pub struct NoteV1 {
        /// The title.
        pub title: String,
        /// The text.
        pub body: String,
    }

    /// Version 2: adds a word count and a creation time.
    #[derive(Item, Debug, Clone, PartialEq)]
    #[item(name = "note", version = 2)]
    pub struct NoteV2 {
        /// The title.
        pub title: String,
        /// The text.
        pub body: String,
        /// Words in the body.
        pub words: i64,
        /// When it was written (upgraded notes: the epoch).
        pub created: Timestamp,
    }

    /// v1 → v2: count words; old notes have no creation time.
    pub fn v1_to_v2(old: NoteV1) -> NoteV2 {
        NoteV2 {
            words: count_words(&old.body),
            title: old.title,
            body: old.body,
            created: Timestamp::from_micros(0),
        }
    }

    /// v2 → v3: notes can be filed in notebooks; old ones are unfiled.
    pub fn v2_to_v3(old: NoteV2) -> Note {
        Note {
            notebook: None,
            title: old.title,
            body: old.body,
            words: old.words,
            created: old.created,
        }
    }
}

/// The notes as an offering: item types with upgrades, nothing else.
pub fn offering() -> mantle_site::Offering {
    mantle_site::Offering::new(NAME, 3)
        .description("Notes in notebooks: an item type upgraded twice")
        .items(mantle_site::Scope::User, register)
        .on_given(|tx, _| {
            // A user given the notes finds a first notebook with a note
            // (once: a user given them again keeps what they made of it).
            let notebook = tx.insert(&Notebook {
                name: WELCOME.into(),
            })?;
            tx.insert(&Note::new(
                notebook,
                "Welcome",
                "Notes live in your own store.",
                Timestamp::now(),
            ))?;
            Ok(())
        })
}

/// The notes' name: the offering's, its configuration section's.
pub const NAME: &str = "notes";

/// The notebook a user given the notes starts with.
pub const WELCOME: &str = "Welcome";

/// Registers the offering's types and upgraders.
pub fn register(registry: &mut Registry) {
    registry
        .register::<Notebook>()
        .register::<Note>()
        .upgrader(legacy::v1_to_v2)
        .upgrader(legacy::v2_to_v3);
}
