//! Items: the typed records a store holds.

use std::ops::{Deref, DerefMut};

use rusqlite::types::FromSqlError;
use serde::{Deserialize, Serialize};

use crate::value::{Attribute, Id, Kind};
use crate::{Error, Result};

/// What happens to an item that refers to an item being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Delete the referring item too (recursively).
    Cascade,
    /// Set the reference to `None` (the attribute must be an `Option<Id<_>>`).
    Nullify,
    /// Refuse the delete with [`Error::ReferencedBy`].
    Forbid,
}

/// The declaration of one attribute, written by `#[derive(Item)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDef {
    /// The field's name; also its column name.
    pub name: &'static str,
    /// What the column holds.
    pub kind: Kind,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Whether a single-column index is declared.
    pub indexed: bool,
    /// For references: the delete policy (default: nullify when optional,
    /// forbid otherwise).
    pub on_delete: Option<OnDelete>,
}

impl AttributeDef {
    /// The declaration for a field of type `A`.
    pub fn new<A: Attribute>(name: &'static str) -> Self {
        Self {
            name,
            kind: A::kind(),
            nullable: A::NULLABLE,
            indexed: false,
            on_delete: None,
        }
    }
    /// Declares a single-column index.
    pub fn indexed(mut self) -> Self {
        self.indexed = true;
        self
    }
    /// Sets the delete policy of a reference.
    pub fn on_delete(mut self, policy: OnDelete) -> Self {
        self.on_delete = Some(policy);
        self
    }
    /// The policy in force for a reference attribute.
    pub(crate) fn delete_policy(&self) -> OnDelete {
        self.on_delete.unwrap_or(if self.nullable {
            OnDelete::Nullify
        } else {
            OnDelete::Forbid
        })
    }
}

/// A type that a store can hold. Derive it; do not implement it by hand.
///
/// ```
/// use mantle_store::{Item, Id, Timestamp};
///
/// #[derive(Item, Debug, Clone)]
/// #[item(name = "person", version = 1)]
/// pub struct Person {
///     #[item(index)]
///     pub name: String,
/// }
///
/// #[derive(Item, Debug, Clone)]
/// #[item(name = "note", version = 1, index(author, created))]
/// pub struct Note {
///     pub title: String,
///     #[item(on_delete = "cascade")]
///     pub author: Id<Person>,
///     pub created: Timestamp,
/// }
///
/// assert_eq!(Note::TYPE_NAME, "note");
/// assert_eq!(Note::TITLE.name(), "title");
/// ```
pub trait Item: Sized + Send + 'static {
    /// The name items of this type are stored under; stable across versions.
    const TYPE_NAME: &'static str;
    /// The schema version this struct describes.
    const VERSION: u32;
    /// The attributes, in column order.
    fn attributes() -> Vec<AttributeDef>;
    /// Compound indexes (lists of attribute names).
    fn indexes() -> Vec<Vec<&'static str>>;
    #[doc(hidden)]
    fn bind(&self, out: &mut Binder<'_, '_>) -> Result<()>;
    #[doc(hidden)]
    fn decode(row: &mut Decoder<'_, '_>) -> Result<Self>;
}

/// Binds attribute values to a statement in column order (derive support).
#[doc(hidden)]
pub struct Binder<'s, 'c> {
    pub(crate) stmt: &'s mut rusqlite::Statement<'c>,
    pub(crate) next: usize,
}

impl Binder<'_, '_> {
    pub fn bind<A: Attribute>(&mut self, value: &A) -> Result<()> {
        let v = value.to_sql()?;
        self.stmt.raw_bind_parameter(self.next, v)?;
        self.next += 1;
        Ok(())
    }
}

/// Reads attribute values from a row in column order (derive support).
#[doc(hidden)]
pub struct Decoder<'r, 's> {
    pub(crate) row: &'r rusqlite::Row<'s>,
    pub(crate) next: usize,
    pub(crate) type_name: &'static str,
}

impl Decoder<'_, '_> {
    pub fn next<A: Attribute>(&mut self, name: &'static str) -> Result<A> {
        let v = self.row.get_ref(self.next)?;
        self.next += 1;
        A::from_sql(v).map_err(|e| Error::Decode {
            type_name: self.type_name,
            attribute: name,
            reason: match e {
                FromSqlError::InvalidType => "unexpected column type".to_string(),
                other => other.to_string(),
            },
        })
    }
}

/// An item as it is in the store: its id, its revision, and its value.
///
/// Derefs to the value, so fields read as `note.title`. Change the value and
/// pass it to [`Tx::update`](crate::Tx::update), which refuses the write with
/// [`Error::Conflict`] if the item changed since it was read.
///
/// **Serialization (opt-in).** When the item type derives (or implements)
/// [`Serialize`], so does `Stored<T>`: a map of `id` (the raw id, an
/// integer), `revision`, then the item's own fields, flattened. Types that
/// do not implement `Serialize` are unaffected. The item should be a struct
/// with named fields (a map when serialized) and no field called `id` or
/// `revision`, which would repeat those keys. There is no `Deserialize`:
/// items come from a store, not from their serialized form.
///
/// ```
/// use mantle_store::{Item, Registry, Store, StoreConfig};
///
/// #[derive(Item, serde::Serialize, Debug, Clone)]
/// #[item(name = "note", version = 1)]
/// struct Note {
///     title: String,
///     words: i64,
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut registry = Registry::new();
/// registry.register::<Note>();
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path().join("notes.store"), &StoreConfig::new(registry)).await?;
/// let note = store
///     .transact(|tx| {
///         let id = tx.insert(&Note { title: "Hello".into(), words: 2 })?;
///         tx.get(id)
///     })
///     .await?
///     .unwrap();
/// assert_eq!(
///     serde_json::to_value(&note).unwrap(),
///     serde_json::json!({"id": note.id().raw(), "revision": 1, "title": "Hello", "words": 2}),
/// );
/// # Ok::<_, mantle_store::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub(crate) id: Id<T>,
    pub(crate) revision: i64,
    pub(crate) value: T,
}

impl<T> Stored<T> {
    /// The item's id.
    pub fn id(&self) -> Id<T> {
        self.id
    }
    /// The revision read: 1 when inserted, one more at each update.
    pub fn revision(&self) -> i64 {
        self.revision
    }
    /// The value, without its identity.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Stored<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// `{"id", "revision", ...the item's fields}` (see [`Stored`]).
impl<T: Serialize> Serialize for Stored<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a, T> {
            id: i64,
            revision: i64,
            #[serde(flatten)]
            item: &'a T,
        }
        Flat {
            id: self.id.raw(),
            revision: self.revision,
            item: &self.value,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize)]
    struct Note {
        title: String,
        words: i64,
        tags: Vec<String>,
    }

    #[test]
    fn stored_items_serialize_flat_with_their_id_and_revision() {
        let stored = Stored {
            id: Id::<Note>::from_raw(7),
            revision: 3,
            value: Note {
                title: "Hello".into(),
                words: 2,
                tags: vec!["a".into()],
            },
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 7,
                "revision": 3,
                "title": "Hello",
                "words": 2,
                "tags": ["a"],
            })
        );
        // The id and revision come first, then the item's fields in order.
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            r#"{"id":7,"revision":3,"title":"Hello","words":2,"tags":["a"]}"#
        );
        // A list of them (a query's result) is a list of such objects.
        let list = serde_json::to_value(vec![stored.clone(), stored]).unwrap();
        assert_eq!(list[1]["revision"], 3);
    }

    #[test]
    fn an_item_that_is_not_a_map_is_an_error_not_a_panic() {
        let stored = Stored {
            id: Id::<i64>::from_raw(1),
            revision: 1,
            value: 5_i64,
        };
        assert!(serde_json::to_value(&stored).is_err());
    }
}
