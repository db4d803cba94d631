//! The registry: which item types, upgraders, powerup providers and tasks a
//! program knows. Built explicitly by the application and shared by its
//! stores; there is no global registration.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rusqlite::Connection;

use crate::item::{AttributeDef, Item, OnDelete, Stored};
use crate::schema::{self, TableSql};
use crate::tx::Tx;
use crate::value::Kind;
use crate::{Error, Result};

/// A named interface that items can provide as powerups.
///
/// Implement it for the trait object type of your interface:
///
/// ```
/// use mantle_store::Interface;
/// pub trait Greeter: Send { fn greet(&self) -> String; }
/// impl Interface for dyn Greeter { const NAME: &'static str = "greeter"; }
/// ```
pub trait Interface: 'static {
    /// The name installations are stored under.
    const NAME: &'static str;
}

/// A registered current version of an item type.
#[derive(Debug)]
pub(crate) struct TypeInfo {
    pub type_name: &'static str,
    pub version: u32,
    pub attrs: Vec<AttributeDef>,
    pub sql: TableSql,
    pub columns: String,
    /// Whether any attribute is a reference (writes then check targets).
    pub has_references: bool,
}

impl TypeInfo {
    fn of<T: Item>() -> Self {
        let attrs = T::attributes();
        let indexes = T::indexes();
        assert!(
            schema::valid_type_name(T::TYPE_NAME),
            "item type name '{}' must be ASCII letters, digits and '_', starting with a letter",
            T::TYPE_NAME
        );
        for a in &attrs {
            assert!(
                !a.name.starts_with('_'),
                "{}.{}: attribute names may not start with '_'",
                T::TYPE_NAME,
                a.name
            );
            if a.on_delete == Some(OnDelete::Nullify) {
                assert!(
                    a.nullable,
                    "{}.{}: on_delete = nullify needs an Option<Id<_>> attribute",
                    T::TYPE_NAME,
                    a.name
                );
            }
        }
        for idx in &indexes {
            for col in idx {
                assert!(
                    attrs.iter().any(|a| a.name == *col),
                    "{}: index names unknown attribute '{col}'",
                    T::TYPE_NAME
                );
            }
        }
        Self {
            type_name: T::TYPE_NAME,
            version: T::VERSION,
            sql: TableSql::new(T::TYPE_NAME, T::VERSION, &attrs, &indexes),
            columns: schema::column_signature(&attrs),
            has_references: attrs.iter().any(|a| matches!(a.kind, Kind::Reference(_))),
            attrs,
        }
    }
}

/// Moves one batch of items from an old version's table to the next
/// version's table; returns how many moved.
type UpgradeStep = Box<dyn Fn(&Connection, usize) -> Result<usize> + Send + Sync>;

/// A registered old version of a type, with the step to the next version.
pub(crate) struct LegacyInfo {
    pub to_version: u32,
    pub sql: TableSql,
    pub columns: String,
    pub step: UpgradeStep,
}

/// An attribute of some type that refers to items of another type.
#[derive(Debug, Clone)]
pub(crate) struct Referrer {
    pub type_name: &'static str,
    pub attribute: &'static str,
    pub policy: OnDelete,
}

type TaskFn = Arc<dyn Fn(&mut Tx<'_>, i64) -> Result<()> + Send + Sync>;

/// Loads an item by id as a provider of interface `I`.
pub(crate) struct Loader<I: ?Sized>(
    #[allow(clippy::type_complexity)]
    pub  Box<dyn Fn(&crate::tx::ReadTx<'_>, i64) -> Result<Option<Box<I>>> + Send + Sync>,
);

/// The types and behaviours a program registers.
///
/// ```
/// use mantle_store::{Item, Registry};
/// #[derive(Item)]
/// #[item(name = "counter", version = 1)]
/// struct Counter { n: i64 }
///
/// let mut registry = Registry::new();
/// registry.register::<Counter>();
/// assert!(registry.knows("counter"));
/// ```
///
/// # Panics
/// Registration panics on programming errors (a type registered twice, an
/// invalid name, an upgrader between unrelated types): they are found the
/// first time the program starts.
pub struct Registry {
    pub(crate) types: HashMap<&'static str, TypeInfo>,
    pub(crate) legacy: HashMap<(&'static str, u32), LegacyInfo>,
    pub(crate) providers: HashMap<(&'static str, &'static str), Box<dyn Any + Send + Sync>>,
    pub(crate) tasks: HashMap<(&'static str, String), TaskFn>,
    /// Derived from `types` on first use, after registration is over.
    referrers: OnceLock<HashMap<&'static str, Vec<Referrer>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.types.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("types", &names).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry holding the store's built-in types ([`SubStore`](crate::SubStore)).
    pub fn new() -> Self {
        let mut r = Self {
            types: HashMap::new(),
            legacy: HashMap::new(),
            providers: HashMap::new(),
            tasks: HashMap::new(),
            referrers: OnceLock::new(),
        };
        r.register::<crate::substore::SubStore>();
        r
    }

    /// Registers `T` as the current version of its type.
    pub fn register<T: Item>(&mut self) -> &mut Self {
        let info = TypeInfo::of::<T>();
        if let Some(prev) = self.types.get(T::TYPE_NAME) {
            panic!(
                "item type '{}' registered twice (versions {} and {})",
                T::TYPE_NAME,
                prev.version,
                T::VERSION
            );
        }
        self.types.insert(T::TYPE_NAME, info);
        self
    }

    /// Registers `Old` as an older version of `New`'s type and how to turn
    /// one into the other. Chains of upgraders (v1 → v2 → v3) run in order.
    pub fn upgrader<Old: Item, New: Item>(
        &mut self,
        upgrade: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> &mut Self {
        assert_eq!(
            Old::TYPE_NAME,
            New::TYPE_NAME,
            "an upgrader must stay within one item type"
        );
        assert!(
            Old::VERSION < New::VERSION,
            "upgrader for '{}' must go from an older to a newer version ({} -> {})",
            Old::TYPE_NAME,
            Old::VERSION,
            New::VERSION
        );
        let old = TypeInfo::of::<Old>();
        let new_sql = TableSql::new(
            New::TYPE_NAME,
            New::VERSION,
            &New::attributes(),
            &New::indexes(),
        );
        let old_select = format!("{} ORDER BY _id LIMIT ?1", old.sql.select);
        let old_delete = format!("DELETE FROM \"{}\" WHERE _id = ?1", old.sql.table);
        let insert = new_sql.insert_with_id.clone();
        let n_new = New::attributes().len();
        let step: UpgradeStep = Box::new(move |conn: &Connection, batch: usize| {
            let mut select = conn.prepare_cached(&old_select)?;
            let mut rows = select.query([batch as i64])?;
            let mut moved = 0;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let rev: i64 = row.get(1)?;
                let value = Old::decode(&mut crate::item::Decoder {
                    row,
                    next: 2,
                    type_name: Old::TYPE_NAME,
                })?;
                let new = upgrade(value);
                let mut ins = conn.prepare_cached(&insert)?;
                let mut b = crate::item::Binder {
                    stmt: &mut ins,
                    next: 1,
                };
                new.bind(&mut b)?;
                ins.raw_bind_parameter(n_new + 1, id)?;
                ins.raw_bind_parameter(n_new + 2, rev)?;
                ins.raw_execute()?;
                conn.prepare_cached(&old_delete)?.execute([id])?;
                moved += 1;
            }
            Ok(moved)
        });
        let key = (Old::TYPE_NAME, Old::VERSION);
        assert!(
            !self.legacy.contains_key(&key),
            "two upgraders from '{}' version {}",
            Old::TYPE_NAME,
            Old::VERSION
        );
        self.legacy.insert(
            key,
            LegacyInfo {
                to_version: New::VERSION,
                sql: old.sql,
                columns: old.columns,
                step,
            },
        );
        self
    }

    /// Registers `T` as a provider of interface `I`, with how to view a `T`
    /// as an `I` (usually `|t| Box::new(t)`).
    pub fn provide<T: Item, I: ?Sized + Interface>(
        &mut self,
        view: impl Fn(T) -> Box<I> + Send + Sync + 'static,
    ) -> &mut Self {
        let loader: Loader<I> = Loader(Box::new(move |r, id| {
            Ok(r.get::<T>(crate::Id::from_raw(id))?
                .map(|s| view(s.into_inner())))
        }));
        self.providers
            .insert((I::NAME, T::TYPE_NAME), Box::new(loader));
        self
    }

    /// Registers a task that the scheduler can run on items of type `T`.
    /// It runs in its own transaction; an error rolls it back and the run is
    /// retried later with back-off.
    pub fn task<T: Item>(
        &mut self,
        name: &str,
        run: impl Fn(&mut Tx<'_>, Stored<T>) -> Result<()> + Send + Sync + 'static,
    ) -> &mut Self {
        let f: TaskFn = Arc::new(move |tx, id| match tx.get::<T>(crate::Id::from_raw(id))? {
            Some(item) => run(tx, item),
            None => Ok(()),
        });
        self.tasks.insert((T::TYPE_NAME, name.to_string()), f);
        self
    }

    /// The names of the registered types (current versions), sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.types.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Whether a type of that name is registered (current version).
    pub fn knows(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    /// The version this registry knows a type at (its current version),
    /// if the type is registered.
    ///
    /// ```
    /// use mantle_store::{Item, Registry};
    /// #[derive(Item)]
    /// #[item(name = "counter", version = 3)]
    /// struct Counter { n: i64 }
    ///
    /// let mut registry = Registry::new();
    /// registry.register::<Counter>();
    /// assert_eq!(registry.current_version("counter"), Some(3));
    /// assert_eq!(registry.current_version("nothing"), None);
    /// ```
    pub fn current_version(&self, type_name: &str) -> Option<u32> {
        self.types.get(type_name).map(|t| t.version)
    }

    pub(crate) fn info<T: Item>(&self) -> Result<&TypeInfo> {
        match self.types.get(T::TYPE_NAME) {
            Some(info) if info.version == T::VERSION => Ok(info),
            _ => Err(Error::NotRegistered(T::TYPE_NAME)),
        }
    }

    /// Attributes of registered types that refer to `target` items.
    pub(crate) fn referrers(&self, target: &str) -> &[Referrer] {
        let map = self.referrers.get_or_init(|| {
            let mut map: HashMap<&'static str, Vec<Referrer>> = HashMap::new();
            for info in self.types.values() {
                for a in &info.attrs {
                    if let Kind::Reference(t) = a.kind {
                        map.entry(t).or_default().push(Referrer {
                            type_name: info.type_name,
                            attribute: a.name,
                            policy: a.delete_policy(),
                        });
                    }
                }
            }
            map
        });
        map.get(target).map_or(&[], Vec::as_slice)
    }

    /// Checks what registration alone cannot: every reference names a
    /// registered type.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for info in self.types.values() {
            for a in &info.attrs {
                if let Kind::Reference(target) = a.kind
                    && !self.types.contains_key(target)
                {
                    return Err(format!(
                        "{}.{} refers to type '{target}', which is not registered",
                        info.type_name, a.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn task_names(&self) -> Vec<(&'static str, String)> {
        self.tasks.keys().cloned().collect()
    }
}
