//! Stores outlive code: items of types the opening program does not
//! register.
//!
//! A store can hold items that the program opening it does not register:
//! written by an offering since removed, by another program sharing the
//! file format, or by an older build. Such a store opens anyway, and those
//! items are left alone until a program that registers their type opens it
//! again:
//!
//! - their tables and catalog rows are never changed (no upgrade, no
//!   delete, no new column or index);
//! - their scheduled runs stay in `mantle_schedule`, untouched, however
//!   long past due: the scheduler only looks at (type, task) pairs this
//!   program registers, so they neither run, fail nor keep it awake. The
//!   next program that registers them runs each overdue one once;
//! - effects of kinds this program has no handler for stay in the outbox,
//!   waiting, and powerup installations whose provider type it does not
//!   register are skipped when powerups are listed;
//! - an item they refer to cannot be deleted
//!   ([`Error::ReferencedByUnregistered`](crate::Error::ReferencedByUnregistered)):
//!   their delete policy is not known here, and a reference left pointing
//!   at nothing would break them when their program comes back.
//!
//! Items of a type stored at a version newer than the one this program
//! registers still refuse the open ([`Error::NewerSchema`](crate::Error::NewerSchema)):
//! this program would otherwise write items its successor cannot read.
//! [`StoreConfig::allow_unknown_types(false)`](crate::StoreConfig::allow_unknown_types)
//! restores the strict open that refuses unregistered items too.

use std::collections::HashMap;

use serde::Serialize;

use crate::schema::{self, CatalogEntry};

/// Items of one (type, version) that the program does not register: what
/// [`Store::unregistered`](crate::Store::unregistered) and
/// [`check_report`](crate::check_report) tell about them.
///
/// Displays as "N item(s) of type T vX, not registered by this program",
/// the wording operators see everywhere (the CLI, the admin page).
///
/// ```
/// let u = mantle_store::Unregistered { type_name: "todo".into(), version: 2, items: 3 };
/// assert_eq!(u.to_string(), "3 item(s) of type todo v2, not registered by this program");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unregistered {
    /// The item type's stored name.
    pub type_name: String,
    /// The version its items are stored at.
    pub version: u32,
    /// How many items.
    pub items: i64,
}

impl std::fmt::Display for Unregistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} item(s) of type {} v{}, not registered by this program",
            self.items, self.type_name, self.version
        )
    }
}

/// A reference attribute of an unregistered type, pointing at items of a
/// (possibly registered) type.
#[derive(Debug, Clone)]
pub(crate) struct UnregisteredReferrer {
    pub type_name: String,
    pub version: u32,
    pub table: String,
    pub attribute: String,
}

/// What an open store holds that its program does not register, found at
/// open. It cannot change while the store is open: only a program that
/// registers those types writes their tables, and this one holds the
/// writer lock.
#[derive(Debug, Default)]
pub(crate) struct Unknown {
    /// Non-empty tables of unregistered types, in catalog order.
    pub types: Vec<Unregistered>,
    /// Their reference attributes, by target type.
    referrers: HashMap<String, Vec<UnregisteredReferrer>>,
}

impl Unknown {
    /// Records a non-empty table of an unregistered type.
    pub(crate) fn add(&mut self, entry: &CatalogEntry, items: i64) {
        for (attribute, target) in schema::references(&entry.columns) {
            self.referrers
                .entry(target.to_string())
                .or_default()
                .push(UnregisteredReferrer {
                    type_name: entry.type_name.clone(),
                    version: entry.version,
                    table: entry.table_name.clone(),
                    attribute: attribute.to_string(),
                });
        }
        self.types.push(Unregistered {
            type_name: entry.type_name.clone(),
            version: entry.version,
            items,
        });
    }

    /// Reference attributes of unregistered types that point at `target`
    /// items.
    pub(crate) fn referrers(&self, target: &str) -> &[UnregisteredReferrer] {
        self.referrers.get(target).map_or(&[], Vec::as_slice)
    }
}
