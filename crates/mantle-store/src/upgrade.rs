//! Opening checks and schema upgrades.
//!
//! When a store opens, every catalog entry is compared with the registry:
//! current versions must have the columns the program declares; newer
//! versions refuse the open; older versions are upgraded; types the
//! program does not register are left alone (see `unregistered`), unless
//! the config asks for a strict open. An upgrade moves items one batch per transaction from the
//! old version's table to the next version's (same id, same revision), and
//! drops the old table in the transaction that empties it. A kill at any
//! moment leaves every item in exactly one table, so the next open simply
//! carries on.

use std::collections::BTreeMap;

use rusqlite::{Connection, TransactionBehavior};

use crate::registry::Registry;
use crate::schema::{self, CatalogEntry, TableSql};
use crate::unregistered::Unknown;
use crate::{Error, Result};

/// Progress of an upgrade, reported to the callback given at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeProgress {
    /// The type being upgraded.
    pub type_name: String,
    /// The version items are moving from.
    pub from_version: u32,
    /// Items upgraded so far in this run (all versions of this type).
    pub done: u64,
    /// Items that needed upgrading when this run started.
    pub total: u64,
}

/// One type with items at old versions.
struct Pending {
    type_name: String,
    /// Old versions still holding items, ascending, with their counts.
    versions: Vec<(u32, u64)>,
    /// Item moves needed: an item n versions behind moves n times.
    total: u64,
}

/// Compares the catalog with the registry; returns the types to upgrade
/// and what the store holds of types the registry does not know.
fn plan(
    conn: &Connection,
    registry: &Registry,
    allow_unknown: bool,
) -> Result<(Vec<Pending>, Unknown)> {
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut unknown = Unknown::default();
    for entry in schema::catalog(conn)? {
        let Some(current) = registry.types.get(entry.type_name.as_str()) else {
            let count = schema::count_rows(conn, &entry.table_name)?;
            if count > 0 {
                if !allow_unknown {
                    return Err(Error::UnknownType {
                        type_name: entry.type_name,
                        version: entry.version,
                        count,
                    });
                }
                unknown.add(&entry, count);
            }
            continue;
        };
        let CatalogEntry {
            type_name,
            version,
            table_name,
            columns,
        } = entry;
        if version > current.version {
            return Err(Error::NewerSchema {
                type_name,
                stored: version,
                known: current.version,
            });
        }
        let declared = if version == current.version {
            &current.columns
        } else {
            match registry.legacy.get(&(current.type_name, version)) {
                Some(l) => &l.columns,
                None => {
                    if schema::count_rows(conn, &table_name)? == 0 {
                        continue;
                    }
                    return Err(Error::NoUpgradePath {
                        type_name,
                        from: version,
                        to: current.version,
                    });
                }
            }
        };
        if *declared != columns {
            return Err(Error::SchemaMismatch {
                type_name,
                version,
                stored: columns,
                declared: declared.clone(),
            });
        }
        if version < current.version {
            let n = schema::count_rows(conn, &table_name)? as u64;
            let p = pending.entry(type_name.clone()).or_insert(Pending {
                type_name,
                versions: Vec::new(),
                total: 0,
            });
            p.versions.push((version, n));
        }
    }
    // Every step of every chain must exist before any item moves.
    for p in pending.values_mut() {
        let current = registry.types[p.type_name.as_str()].version;
        let mut v = p.versions[0].0;
        while v < current {
            match registry
                .legacy
                .get(&(registry.types[p.type_name.as_str()].type_name, v))
            {
                Some(l) => {
                    // Every item at this version or older makes this move.
                    p.total += p
                        .versions
                        .iter()
                        .filter(|(ver, _)| *ver <= v)
                        .map(|(_, n)| n)
                        .sum::<u64>();
                    v = l.to_version;
                }
                None => {
                    return Err(Error::NoUpgradePath {
                        type_name: p.type_name.clone(),
                        from: v,
                        to: current,
                    });
                }
            }
        }
    }
    Ok((pending.into_values().collect(), unknown))
}

/// The SQL of a version's table, current or legacy.
fn sql_of<'r>(
    registry: &'r Registry,
    type_name: &str,
    version: u32,
) -> Option<(&'r TableSql, &'r str)> {
    let current = registry.types.get(type_name)?;
    if current.version == version {
        return Some((&current.sql, &current.columns));
    }
    registry
        .legacy
        .get(&(current.type_name, version))
        .map(|l| (&l.sql, l.columns.as_str()))
}

/// Checks the store against the registry and upgrades old items of
/// registered types; returns what it holds of unregistered types (left
/// alone).
pub(crate) fn check_and_upgrade(
    conn: &mut Connection,
    registry: &Registry,
    allow_unknown: bool,
    batch: usize,
    progress: &mut dyn FnMut(&UpgradeProgress),
) -> Result<Unknown> {
    let (pending, unknown) = plan(conn, registry, allow_unknown)?;
    for p in pending {
        let type_name = registry.types[p.type_name.as_str()].type_name;
        let mut done = 0u64;
        let mut version = p.versions[0].0;
        let current = registry.types[type_name].version;
        while version < current {
            let legacy = &registry.legacy[&(type_name, version)];
            let (to_sql, to_columns) =
                sql_of(registry, type_name, legacy.to_version).ok_or(Error::NoUpgradePath {
                    type_name: type_name.to_string(),
                    from: legacy.to_version,
                    to: current,
                })?;
            loop {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let target_exists = tx
                    .prepare_cached("SELECT 1 FROM mantle_types WHERE table_name = ?1")?
                    .exists([&to_sql.table])?;
                if !target_exists {
                    schema::create_type_table(
                        &tx,
                        type_name,
                        legacy.to_version,
                        to_sql,
                        to_columns,
                    )?;
                }
                let moved = match (legacy.step)(&tx, batch) {
                    Ok(n) => n,
                    Err(Error::Sqlite(e)) if schema::is_missing_table(&e) => 0,
                    Err(e) => return Err(e),
                };
                let finished = moved < batch;
                if finished {
                    // Ids are never reused: the next version's table takes
                    // over the old table's AUTOINCREMENT counter, which also
                    // counts items deleted before the upgrade.
                    // (sqlite_sequence has no key on name: update, else insert.)
                    let carried = tx.execute(
                        "UPDATE sqlite_sequence SET seq = max(seq,
                            coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0))
                         WHERE name = ?2",
                        rusqlite::params![legacy.sql.table, to_sql.table],
                    )?;
                    if carried == 0 {
                        tx.execute(
                            "INSERT INTO sqlite_sequence (name, seq)
                             SELECT ?2, seq FROM sqlite_sequence WHERE name = ?1",
                            rusqlite::params![legacy.sql.table, to_sql.table],
                        )?;
                    }
                    tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{}\"", legacy.sql.table))?;
                    tx.execute(
                        "DELETE FROM mantle_types WHERE type_name = ?1 AND version = ?2",
                        rusqlite::params![type_name, version],
                    )?;
                }
                tx.commit()?;
                done += moved as u64;
                progress(&UpgradeProgress {
                    type_name: type_name.to_string(),
                    from_version: version,
                    done,
                    total: p.total.max(done),
                });
                if finished {
                    break;
                }
            }
            version = legacy.to_version;
        }
    }
    Ok(unknown)
}
