//! Powerups: items installed on other items (or on the store itself) as
//! providers of a named [`Interface`](crate::Interface).
//!
//! Installations live in the `mantle_powerups` table, keyed by target and
//! interface, with a priority. Looking them up loads each provider item and
//! views it as the interface's trait object, through the view function the
//! registry was given for that (type, interface) pair.

use crate::item::{Item, Stored};
use crate::value::Id;

/// What a powerup is installed on: the store as a whole, or one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub(crate) type_name: &'static str,
    pub(crate) id: i64,
}

impl Target {
    /// The store itself (Axiom's "powerup on the store").
    pub const STORE: Target = Target {
        type_name: "",
        id: 0,
    };
}

impl<T: Item> From<Id<T>> for Target {
    fn from(id: Id<T>) -> Self {
        Target {
            type_name: T::TYPE_NAME,
            id: id.raw(),
        }
    }
}

impl<T: Item> From<&Stored<T>> for Target {
    fn from(item: &Stored<T>) -> Self {
        item.id().into()
    }
}
