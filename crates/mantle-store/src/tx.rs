//! Transactions: what a closure passed to `Store::read` / `Store::transact`
//! can do.

use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::item::{Binder, Item, Stored};
use crate::outbox::{Effect, EffectId};
use crate::powerup::Target;
use crate::query::{Assignment, Filter, Query, decode_stored};
use crate::registry::{Interface, Loader, Registry, TypeInfo};
use crate::scheduler::ScheduleId;
use crate::schema::{create_type_table, is_missing_table};
use crate::unregistered::Unknown;
use crate::value::{Id, Kind, Timestamp};
use crate::{Error, Result};

/// A read-only view of the store, consistent for its whole duration
/// (a SQLite snapshot). [`Tx`] derefs to it, so every read works in a write
/// transaction too.
pub struct ReadTx<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) registry: &'a Registry,
}

impl<'a> ReadTx<'a> {
    /// The item with this id, if it exists.
    pub fn get<T: Item>(&self, id: Id<T>) -> Result<Option<Stored<T>>> {
        let info = self.registry.info::<T>()?;
        let sql = format!("{} WHERE _id = ?1", info.sql.select);
        let mut stmt = match self.conn.prepare_cached(&sql) {
            Ok(s) => s,
            Err(e) if is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut rows = stmt.query([id.raw()])?;
        match rows.next()? {
            Some(row) => Ok(Some(decode_stored(row)?)),
            None => Ok(None),
        }
    }

    /// How many items of the named type the store holds (0 for a type it
    /// never held), whether or not this program registers the type. For
    /// tools that know types only by name: "does any store still hold
    /// items of the type I am about to drop?"
    pub fn count_items(&self, type_name: &str) -> Result<u64> {
        if let Some(info) = self.registry.types.get(type_name) {
            return Ok(crate::schema::count_rows(self.conn, &info.sql.table)? as u64);
        }
        // Not registered: counted table by table (every stored version),
        // never decoded.
        let mut total = 0;
        for entry in crate::schema::catalog(self.conn)? {
            if entry.type_name == type_name {
                total += crate::schema::count_rows(self.conn, &entry.table_name)?;
            }
        }
        Ok(total as u64)
    }

    /// Whether the store holds the item `id` of the named type (a
    /// registered type; `false` for one this program does not register).
    /// For code that knows items by type name and raw id: a reference
    /// kept as text, say.
    ///
    /// ```
    /// # use mantle_store::*;
    /// # #[derive(Item)] #[item(name = "note", version = 1)] struct Note { text: String }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let mut registry = Registry::new();
    /// # registry.register::<Note>();
    /// # let store = Store::open(dir.path().join("s.store"), &StoreConfig::new(registry)).await?;
    /// let id = store.transact(|tx| tx.insert(&Note { text: "hi".into() })).await?;
    /// assert!(store.read(move |r| r.contains("note", id.raw())).await?);
    /// store.transact(move |tx| tx.delete(id)).await?;
    /// assert!(!store.read(move |r| r.contains("note", id.raw())).await?);
    /// assert!(!store.read(|r| r.contains("nothing", 1)).await?);
    /// # Ok::<_, Error>(())
    /// # }).unwrap();
    /// ```
    pub fn contains(&self, type_name: &str, id: i64) -> Result<bool> {
        let Some(info) = self.registry.types.get(type_name) else {
            return Ok(false);
        };
        let sql = format!("SELECT 1 FROM \"{}\" WHERE _id = ?1", info.sql.table);
        match self.conn.prepare_cached(&sql) {
            Ok(mut stmt) => Ok(stmt.exists([id])?),
            Err(e) if is_missing_table(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A query over items of type `T`.
    ///
    /// ```no_run
    /// # use mantle_store::*;
    /// # #[derive(Item)] #[item(name = "note", version = 1)] struct Note { #[item(index)] words: i64, title: String }
    /// # fn f(tx: &ReadTx<'_>) -> Result<()> {
    /// let long = tx.query::<Note>().filter(Note::WORDS.gt(100)).order_by(Note::TITLE.asc()).limit(10).all()?;
    /// let total: i64 = tx.query::<Note>().sum(Note::WORDS)?;
    /// # Ok(()) }
    /// ```
    pub fn query<T: Item>(&self) -> Query<'_, T> {
        Query::new(self)
    }

    /// The providers of interface `I` installed on `target`, highest priority
    /// first (ties: first installed first).
    pub fn powerups<I: ?Sized + Interface>(
        &self,
        target: impl Into<Target>,
    ) -> Result<Vec<Box<I>>> {
        let target = target.into();
        let mut stmt = self.conn.prepare_cached(
            "SELECT powerup_type, powerup_id FROM mantle_powerups
             WHERE target_type = ?1 AND target_id = ?2 AND interface = ?3
             ORDER BY priority DESC, rowid",
        )?;
        let rows: Vec<(String, i64)> = stmt
            .query_map(
                rusqlite::params![target.type_name, target.id, I::NAME],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (type_name, id) in rows {
            let loader = self
                .registry
                .providers
                .get(&(I::NAME, type_name.as_str()))
                .and_then(|l| l.downcast_ref::<Loader<I>>())
                .filter(|_| self.registry.knows(&type_name));
            let Some(loader) = loader else {
                // Installed by a program that registered more types or
                // providers than this one: the installation stays, for
                // that program, and this lookup goes on without it. (A
                // store outliving its code does this on every lookup,
                // hence not a warning.)
                tracing::debug!(
                    interface = I::NAME,
                    type_name,
                    "powerup type not registered as provider; skipped"
                );
                continue;
            };
            if let Some(p) = (loader.0)(self, id)? {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// A write transaction, run whole on the store's writer. Everything it does
/// commits together when the closure returns `Ok`, or not at all.
pub struct Tx<'a> {
    pub(crate) read: ReadTx<'a>,
    /// What the store holds of unregistered types (deletes respect their
    /// references).
    unknown: &'a Unknown,
    pub(crate) recorded_effects: bool,
    /// How many effects it recorded (for statistics).
    pub(crate) effects: u32,
    pub(crate) schedule_changed: bool,
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = ReadTx<'a>;
    fn deref(&self) -> &ReadTx<'a> {
        &self.read
    }
}

impl<'a> Tx<'a> {
    pub(crate) fn new(conn: &'a Connection, registry: &'a Registry, unknown: &'a Unknown) -> Self {
        Self {
            read: ReadTx { conn, registry },
            unknown,
            recorded_effects: false,
            effects: 0,
            schedule_changed: false,
        }
    }

    fn conn(&self) -> &'a Connection {
        self.read.conn
    }

    /// Runs `f` with the type's table created if it is missing.
    fn with_table<R>(&self, info: &TypeInfo, f: impl Fn() -> rusqlite::Result<R>) -> Result<R> {
        match f() {
            Err(e) if is_missing_table(&e) => {
                create_type_table(
                    self.conn(),
                    info.type_name,
                    info.version,
                    &info.sql,
                    &info.columns,
                )?;
                Ok(f()?)
            }
            other => Ok(other?),
        }
    }

    /// Stores a new item and returns its id.
    pub fn insert<T: Item>(&mut self, item: &T) -> Result<Id<T>> {
        let registry: &'a Registry = self.read.registry;
        let info = registry.info::<T>()?;
        self.checked(info, |tx| {
            let mut stmt = tx.with_table(info, || tx.conn().prepare_cached(&info.sql.insert))?;
            item.bind(&mut Binder {
                stmt: &mut stmt,
                next: 1,
            })?;
            stmt.raw_execute()?;
            Ok(tx.conn().last_insert_rowid())
        })
        .map(Id::from_raw)
    }

    /// Runs a write of one item of `info`'s type, then checks its
    /// references. A refused write leaves nothing behind (a savepoint),
    /// even if the caller handles the error and commits. Types without
    /// references skip the savepoint: there is nothing to refuse.
    fn checked(
        &mut self,
        info: &TypeInfo,
        write: impl FnOnce(&mut Self) -> Result<i64>,
    ) -> Result<i64> {
        if !info.has_references {
            return write(self);
        }
        self.savepoint(|tx| {
            let id = write(tx)?;
            tx.check_references(info, id)?;
            Ok(id)
        })
    }

    /// Writes back a changed item. Fails with [`Error::Conflict`] if it
    /// changed since `item` was read; on success `item`'s revision advances.
    pub fn update<T: Item>(&mut self, item: &mut Stored<T>) -> Result<()> {
        let registry: &'a Registry = self.read.registry;
        let info = registry.info::<T>()?;
        let n = info.attrs.len();
        let (id, revision) = (item.id.raw(), item.revision);
        let value = &item.value;
        self.checked(info, |tx| {
            let changed = {
                let mut stmt = match tx.conn().prepare_cached(&info.sql.update) {
                    Ok(s) => s,
                    Err(e) if is_missing_table(&e) => {
                        return Err(Error::NoSuchItem {
                            type_name: T::TYPE_NAME,
                            id,
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
                value.bind(&mut Binder {
                    stmt: &mut stmt,
                    next: 1,
                })?;
                stmt.raw_bind_parameter(n + 1, id)?;
                stmt.raw_bind_parameter(n + 2, revision)?;
                stmt.raw_execute()?
            };
            if changed == 0 {
                return Err(match tx.revision_of(info, id)? {
                    Some(actual) => Error::Conflict {
                        type_name: T::TYPE_NAME,
                        id,
                        expected: revision,
                        actual,
                    },
                    None => Error::NoSuchItem {
                        type_name: T::TYPE_NAME,
                        id,
                    },
                });
            }
            Ok(id)
        })?;
        item.revision += 1;
        Ok(())
    }

    fn revision_of(&self, info: &TypeInfo, id: i64) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT _rev FROM \"{}\" WHERE _id = ?1",
                info.sql.table
            ))?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// Refuses a write that left a reference pointing at nothing.
    fn check_references(&self, info: &TypeInfo, id: i64) -> Result<()> {
        for a in &info.attrs {
            let Kind::Reference(target) = a.kind else {
                continue;
            };
            let target_info = self
                .registry
                .types
                .get(target)
                .ok_or(Error::NotRegistered(target))?;
            let sql = format!(
                "SELECT x.\"{col}\" FROM \"{table}\" x WHERE x._id = ?1 AND x.\"{col}\" IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM \"{target_table}\" t WHERE t._id = x.\"{col}\")",
                col = a.name,
                table = info.sql.table,
                target_table = target_info.sql.table,
            );
            let dangling: Option<i64> = match self.conn().prepare_cached(&sql) {
                Ok(mut s) => {
                    use rusqlite::OptionalExtension;
                    s.query_row([id], |r| r.get(0)).optional()?
                }
                // No target table: any non-null reference dangles.
                Err(e) if is_missing_table(&e) => {
                    use rusqlite::OptionalExtension;
                    self.conn()
                        .query_row(
                            &format!(
                                "SELECT \"{}\" FROM \"{}\" WHERE _id = ?1 AND \"{}\" IS NOT NULL",
                                a.name, info.sql.table, a.name
                            ),
                            [id],
                            |r| r.get(0),
                        )
                        .optional()?
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(target_id) = dangling {
                return Err(Error::DanglingReference {
                    type_name: info.type_name,
                    attribute: a.name,
                    target,
                    id: target_id,
                });
            }
        }
        Ok(())
    }

    /// Deletes an item, applying the delete policies of references to it
    /// (cascade, nullify, forbid) and removing its powerup installations and
    /// scheduled runs. Returns whether it existed. If the delete is refused,
    /// nothing of it is applied.
    pub fn delete<T: Item>(&mut self, id: Id<T>) -> Result<bool> {
        self.registry.info::<T>()?;
        self.savepoint(|tx| tx.delete_raw(T::TYPE_NAME, id.raw()))
    }

    /// Deletes every item matching `filter` (with the same policies as
    /// [`delete`](Tx::delete)); returns how many were deleted.
    pub fn delete_where<T: Item>(&mut self, filter: Filter<T>) -> Result<usize> {
        let info = self.registry.info::<T>()?;
        if self.registry.referrers(T::TYPE_NAME).is_empty()
            && self.unknown.referrers(T::TYPE_NAME).is_empty()
        {
            // Nothing can refer to these items: one statement does it.
            let ids = self.query::<T>().filter(filter).ids()?;
            let mut n = 0;
            for chunk in ids.chunks(500) {
                let placeholders = vec!["?"; chunk.len()].join(",");
                n += self.conn().execute(
                    &format!(
                        "DELETE FROM \"{}\" WHERE _id IN ({placeholders})",
                        info.sql.table
                    ),
                    rusqlite::params_from_iter(chunk.iter().map(|i| i.raw())),
                )?;
                self.forget_items(T::TYPE_NAME, chunk.iter().map(|i| i.raw()))?;
            }
            return Ok(n);
        }
        let ids = self.query::<T>().filter(filter).ids()?;
        self.savepoint(|tx| {
            let mut n = 0;
            for id in ids {
                n += usize::from(tx.delete_raw(T::TYPE_NAME, id.raw())?);
            }
            Ok(n)
        })
    }

    /// Deletes every item of the registered type named `type_name`, with
    /// the same policies as [`delete`](Tx::delete) (references, schedules,
    /// powerups); returns how many were deleted. For tools that know a
    /// type by its name only (purging an uninstalled offering's data);
    /// [`Error::NotRegisteredName`] if this program does not register it.
    pub fn delete_all_of_type(&mut self, type_name: &str) -> Result<u64> {
        let registry = self.read.registry;
        let (name, info) = registry
            .types
            .get_key_value(type_name)
            .ok_or_else(|| Error::NotRegisteredName(type_name.to_string()))?;
        let ids: Vec<i64> = match self
            .conn()
            .prepare(&format!("SELECT _id FROM \"{}\"", info.sql.table))
        {
            Ok(mut s) => s
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            Err(e) if is_missing_table(&e) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        self.savepoint(|tx| {
            let mut n = 0;
            for id in ids {
                n += u64::from(tx.delete_raw(name, id)?);
            }
            Ok(n)
        })
    }

    /// Sets attributes on every item matching `filter`; returns how many
    /// changed. Each changed item's revision advances.
    pub fn update_where<T: Item>(
        &mut self,
        filter: Filter<T>,
        set: impl IntoIterator<Item = Assignment<T>>,
    ) -> Result<usize> {
        let registry: &'a Registry = self.read.registry;
        let info = registry.info::<T>()?;
        let mut params: Vec<Value> = Vec::new();
        let mut sets = vec!["_rev = _rev + 1".to_string()];
        let mut reference_changed = false;
        for a in set {
            let value = a.value.map_err(|reason| Error::Encode {
                what: "assignment",
                reason,
            })?;
            params.push(value);
            sets.push(format!("\"{}\" = ?{}", a.column, params.len()));
            reference_changed |= info
                .attrs
                .iter()
                .any(|d| d.name == a.column && matches!(d.kind, Kind::Reference(_)));
        }
        let cond = filter.to_sql(&mut params)?;
        let sql = format!(
            "UPDATE \"{}\" SET {} WHERE {cond}",
            info.sql.table,
            sets.join(", ")
        );
        let run = |tx: &mut Self| -> Result<usize> {
            match tx.conn().execute(&sql, rusqlite::params_from_iter(params)) {
                Ok(n) => Ok(n),
                Err(e) if is_missing_table(&e) => Ok(0),
                Err(e) => Err(e.into()),
            }
        };
        if !reference_changed {
            return run(self);
        }
        // A new reference value may dangle: check each changed item, and
        // undo the whole update if one does.
        let ids = self.query::<T>().filter(filter).ids()?;
        self.savepoint(|tx| {
            let n = run(tx)?;
            for id in ids {
                tx.check_references(info, id.raw())?;
            }
            Ok(n)
        })
    }

    /// The one item matching `filter`, or a new one made by `make` and
    /// inserted. [`Error::NotUnique`] if several match.
    pub fn find_or_create<T: Item>(
        &mut self,
        filter: Filter<T>,
        make: impl FnOnce() -> T,
    ) -> Result<Stored<T>> {
        if let Some(found) = self.query::<T>().filter(filter).unique()? {
            return Ok(found);
        }
        let value = make();
        let id = self.insert(&value)?;
        Ok(Stored {
            id,
            revision: 1,
            value,
        })
    }

    /// Runs `f` inside a savepoint: if it returns `Err`, what it did is
    /// undone, and only that; the transaction goes on and can still commit.
    ///
    /// ```no_run
    /// # use mantle_store::*;
    /// # #[derive(Item)] #[item(name = "n", version = 1)] struct N { v: i64 }
    /// # fn f(tx: &mut Tx<'_>) -> Result<()> {
    /// let tried: Result<()> = tx.attempt(|tx| {
    ///     tx.insert(&N { v: 1 })?;
    ///     Err(Error::NotRegistered("changed my mind"))
    /// });
    /// assert!(tried.is_err()); // and the insert is undone
    /// # Ok(()) }
    /// ```
    pub fn attempt<R, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, E>,
    ) -> Result<R, E> {
        // Cached statements: `execute_batch` would parse them on every call.
        self.conn()
            .prepare_cached("SAVEPOINT mantle_op")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| E::from(e.into()))?;
        match f(self) {
            Ok(r) => {
                self.conn()
                    .prepare_cached("RELEASE mantle_op")
                    .and_then(|mut s| s.execute([]))
                    .map_err(|e| E::from(e.into()))?;
                Ok(r)
            }
            Err(e) => {
                self.conn()
                    .execute_batch("ROLLBACK TO mantle_op; RELEASE mantle_op")
                    .map_err(|e| E::from(e.into()))?;
                // A table made inside the savepoint is gone again; cached
                // statements on it would fail with "no such table".
                self.conn().flush_prepared_statement_cache();
                Err(e)
            }
        }
    }

    fn savepoint<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.attempt(f)
    }

    /// Deletes by type name and id. The row goes first, so reference cycles
    /// under `cascade` end.
    fn delete_raw(&mut self, type_name: &'static str, id: i64) -> Result<bool> {
        let registry = self.read.registry;
        let info = registry
            .types
            .get(type_name)
            .ok_or(Error::NotRegistered(type_name))?;
        let deleted = match self.conn().prepare_cached(&format!(
            "DELETE FROM \"{}\" WHERE _id = ?1",
            info.sql.table
        )) {
            Ok(mut s) => s.execute([id])?,
            Err(e) if is_missing_table(&e) => 0,
            Err(e) => return Err(e.into()),
        };
        if deleted == 0 {
            return Ok(false);
        }
        self.refuse_if_unregistered_refer(type_name, id)?;
        for r in registry.referrers(type_name) {
            let table = &registry.types[r.type_name].sql.table;
            let referring: Vec<i64> = match self.conn().prepare_cached(&format!(
                "SELECT _id FROM \"{table}\" WHERE \"{}\" = ?1",
                r.attribute
            )) {
                Ok(mut s) => s
                    .query_map([id], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
                Err(e) if is_missing_table(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            if referring.is_empty() {
                continue;
            }
            match r.policy {
                crate::OnDelete::Forbid => {
                    return Err(Error::ReferencedBy {
                        type_name,
                        id,
                        referrer: r.type_name,
                        attribute: r.attribute,
                    });
                }
                crate::OnDelete::Nullify => {
                    self.conn()
                        .prepare_cached(&format!(
                            "UPDATE \"{table}\" SET \"{a}\" = NULL, _rev = _rev + 1 WHERE \"{a}\" = ?1",
                            a = r.attribute
                        ))?
                        .execute([id])?;
                }
                crate::OnDelete::Cascade => {
                    for rid in referring {
                        self.delete_raw(r.type_name, rid)?;
                    }
                }
            }
        }
        self.forget_items(type_name, std::iter::once(id))?;
        Ok(true)
    }

    /// Refuses to delete an item that items of an unregistered type refer
    /// to: they are left alone, and their delete policy is not known here.
    fn refuse_if_unregistered_refer(&self, type_name: &'static str, id: i64) -> Result<()> {
        use rusqlite::OptionalExtension;
        for r in self.unknown.referrers(type_name) {
            let referred: Option<i64> = self
                .conn()
                .prepare_cached(&format!(
                    "SELECT 1 FROM \"{}\" WHERE \"{}\" = ?1 LIMIT 1",
                    r.table, r.attribute
                ))?
                .query_row([id], |row| row.get(0))
                .optional()?;
            if referred.is_some() {
                return Err(Error::ReferencedByUnregistered {
                    type_name,
                    id,
                    referrer: r.type_name.clone(),
                    version: r.version,
                    attribute: r.attribute.clone(),
                });
            }
        }
        Ok(())
    }

    /// Removes powerup installations and schedules of deleted items.
    fn forget_items(&mut self, type_name: &str, ids: impl Iterator<Item = i64>) -> Result<()> {
        let conn = self.conn();
        let mut by_target = conn.prepare_cached(
            "DELETE FROM mantle_powerups WHERE target_type = ?1 AND target_id = ?2",
        )?;
        let mut by_powerup = conn.prepare_cached(
            "DELETE FROM mantle_powerups WHERE powerup_type = ?1 AND powerup_id = ?2",
        )?;
        let mut schedules = conn
            .prepare_cached("DELETE FROM mantle_schedule WHERE item_type = ?1 AND item_id = ?2")?;
        for id in ids {
            by_target.execute(rusqlite::params![type_name, id])?;
            by_powerup.execute(rusqlite::params![type_name, id])?;
            if schedules.execute(rusqlite::params![type_name, id])? > 0 {
                self.schedule_changed = true;
            }
        }
        Ok(())
    }

    /// Records an effect in the outbox. It is handed to its dispatcher only
    /// after this transaction commits; if the transaction rolls back, it
    /// never happened.
    pub fn record<E: Effect>(&mut self, effect: &E) -> Result<EffectId> {
        let payload = serde_json::to_string(effect).map_err(|e| Error::Encode {
            what: E::KIND,
            reason: e.to_string(),
        })?;
        let now = Timestamp::now().as_micros();
        self.conn()
            .prepare_cached(
                "INSERT INTO mantle_outbox (kind, payload, created, next_attempt) VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(rusqlite::params![E::KIND, payload, now])?;
        self.recorded_effects = true;
        self.effects = self.effects.saturating_add(1);
        Ok(EffectId(self.conn().last_insert_rowid()))
    }

    /// Installs `powerup` on `target` as a provider of interface `I`, with a
    /// priority (higher comes first). Installing again updates the priority.
    pub fn install<I: ?Sized + Interface, T: Item>(
        &mut self,
        target: impl Into<Target>,
        powerup: Id<T>,
        priority: i64,
    ) -> Result<()> {
        if !self
            .registry
            .providers
            .contains_key(&(I::NAME, T::TYPE_NAME))
        {
            return Err(Error::NotAProvider {
                type_name: T::TYPE_NAME,
                interface: I::NAME,
            });
        }
        if self.get::<T>(powerup)?.is_none() {
            return Err(Error::NoSuchItem {
                type_name: T::TYPE_NAME,
                id: powerup.raw(),
            });
        }
        let target = target.into();
        self.conn().prepare_cached(
            "INSERT INTO mantle_powerups (target_type, target_id, interface, powerup_type, powerup_id, priority)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO UPDATE SET priority = excluded.priority",
        )?
        .execute(rusqlite::params![target.type_name, target.id, I::NAME, T::TYPE_NAME, powerup.raw(), priority])?;
        Ok(())
    }

    /// Removes an installation; returns whether there was one.
    pub fn uninstall<I: ?Sized + Interface, T: Item>(
        &mut self,
        target: impl Into<Target>,
        powerup: Id<T>,
    ) -> Result<bool> {
        let target = target.into();
        let n = self
            .conn()
            .prepare_cached(
                "DELETE FROM mantle_powerups WHERE target_type = ?1 AND target_id = ?2
                 AND interface = ?3 AND powerup_type = ?4 AND powerup_id = ?5",
            )?
            .execute(rusqlite::params![
                target.type_name,
                target.id,
                I::NAME,
                T::TYPE_NAME,
                powerup.raw()
            ])?;
        Ok(n > 0)
    }

    /// Schedules the registered task `task` to run on `item` at `at`, and
    /// then every `every` if given. Runs that fall due while the store is
    /// closed run when it next opens.
    pub fn schedule<T: Item>(
        &mut self,
        item: Id<T>,
        task: &str,
        at: Timestamp,
        every: Option<Duration>,
    ) -> Result<ScheduleId> {
        self.check_task::<T>(task)?;
        let every_us = every.map(|d| i64::try_from(d.as_micros().max(1)).unwrap_or(i64::MAX));
        self.conn()
            .prepare_cached(
                "INSERT INTO mantle_schedule (item_type, item_id, task, run_at, every_us) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(rusqlite::params![T::TYPE_NAME, item.raw(), task, at.as_micros(), every_us])?;
        self.schedule_changed = true;
        Ok(ScheduleId(self.conn().last_insert_rowid()))
    }

    /// Makes sure the registered task `task` runs on `item` every `every`,
    /// however often this is called (at each start, say): the first call
    /// schedules it, due one period from now; later calls with the same
    /// period change nothing; a call with another period (the
    /// configuration changed) re-times it, due one new period from now.
    /// Other schedules of the same task on the item (from
    /// [`schedule`](Self::schedule), or left by an older program) are
    /// removed, so one remains.
    ///
    /// ```no_run
    /// # use mantle_store::*;
    /// # fn f(tx: &mut Tx, sweeper: Id<impl Item>) -> Result<()> {
    /// tx.ensure_schedule(sweeper, "sweep", std::time::Duration::from_secs(600))?;
    /// # Ok(()) }
    /// ```
    pub fn ensure_schedule<T: Item>(
        &mut self,
        item: Id<T>,
        task: &str,
        every: Duration,
    ) -> Result<ScheduleId> {
        self.check_task::<T>(task)?;
        let every_us = i64::try_from(every.as_micros().max(1)).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Option<i64>)> = self
            .conn()
            .prepare_cached(
                "SELECT id, every_us FROM mantle_schedule
                 WHERE item_type = ?1 AND item_id = ?2 AND task = ?3 ORDER BY id",
            )?
            .query_map(rusqlite::params![T::TYPE_NAME, item.raw(), task], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        // Keep one repeating row (the first); the rest go.
        let keep = rows.iter().find(|(_, e)| e.is_some()).copied();
        for (id, _) in &rows {
            if keep.map(|(k, _)| k) != Some(*id) {
                self.unschedule(ScheduleId(*id))?;
            }
        }
        match keep {
            Some((id, Some(current))) if current == every_us => Ok(ScheduleId(id)),
            Some((id, _)) => {
                let at = Timestamp::now() + every;
                self.conn()
                    .prepare_cached(
                        "UPDATE mantle_schedule SET every_us = ?2, run_at = ?3, attempts = 0,
                         last_error = NULL WHERE id = ?1",
                    )?
                    .execute(rusqlite::params![id, every_us, at.as_micros()])?;
                self.schedule_changed = true;
                Ok(ScheduleId(id))
            }
            None => self.schedule(item, task, Timestamp::now() + every, Some(every)),
        }
    }

    /// Refuses a task that is not registered for `T`.
    fn check_task<T: Item>(&self, task: &str) -> Result<()> {
        if self
            .registry
            .tasks
            .contains_key(&(T::TYPE_NAME, task.to_string()))
        {
            return Ok(());
        }
        Err(Error::UnknownTask {
            type_name: T::TYPE_NAME,
            task: task.to_string(),
        })
    }

    /// Cancels a scheduled run; returns whether it was still scheduled.
    pub fn unschedule(&mut self, id: ScheduleId) -> Result<bool> {
        let n = self
            .conn()
            .prepare_cached("DELETE FROM mantle_schedule WHERE id = ?1")?
            .execute([id.0])?;
        self.schedule_changed |= n > 0;
        Ok(n > 0)
    }
}
