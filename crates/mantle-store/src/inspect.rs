//! Reports on a store file for operators: what it holds, and whether it is
//! sound. Both read the file without the writer lock, so they work while
//! the store is open elsewhere, and neither needs the program's registry.
//! Given one, they tell which items it does not register: not a problem
//! (the store opens, and leaves them alone), but worth a warning.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::registry::Registry;
use crate::schema::{self, CatalogEntry};
use crate::unregistered::Unregistered;
use crate::{Error, Result};

/// One (type, version) table in a store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypeReport {
    /// The item type.
    pub type_name: String,
    /// The stored version.
    pub version: u32,
    /// How many items.
    pub items: i64,
    /// The column signature.
    pub columns: String,
}

/// Installed powerups of one interface and type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PowerupReport {
    /// The interface.
    pub interface: String,
    /// The type of the installed items.
    pub powerup_type: String,
    /// How many installations.
    pub count: i64,
}

/// What a store file holds.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// The file.
    pub path: PathBuf,
    /// The store format version.
    pub format_version: i64,
    /// File size (without WAL) in bytes.
    pub file_bytes: u64,
    /// SQLite page size and count.
    pub page_size: i64,
    /// Pages in the database.
    pub page_count: i64,
    /// The journal mode (always `wal` for a store).
    pub journal_mode: String,
    /// Item tables.
    pub types: Vec<TypeReport>,
    /// Powerup installations.
    pub powerups: Vec<PowerupReport>,
    /// Effects waiting to be dispatched.
    pub outbox_pending: i64,
    /// Effects parked after failing.
    pub outbox_parked: i64,
    /// Scheduled task runs.
    pub scheduled: i64,
}

fn open_read_only(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such store file"),
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::NotAStore {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    match schema::identify(&conn, path)? {
        schema::FileState::Store => Ok(conn),
        schema::FileState::Fresh => Err(Error::NotAStore {
            path: path.to_path_buf(),
            reason: "empty file".into(),
        }),
    }
}

/// Describes the store at `path`: types, versions, counts, powerups,
/// outbox and schedule.
pub fn inspect(path: &Path) -> Result<StoreReport> {
    let conn = open_read_only(path)?;
    conn.execute_batch("BEGIN")?;
    let mut types = Vec::new();
    for e in schema::catalog(&conn)? {
        types.push(TypeReport {
            items: schema::count_rows(&conn, &e.table_name)?,
            type_name: e.type_name,
            version: e.version,
            columns: e.columns,
        });
    }
    let powerups = conn
        .prepare(
            "SELECT interface, powerup_type, count(*) FROM mantle_powerups
             GROUP BY interface, powerup_type ORDER BY interface, powerup_type",
        )?
        .query_map([], |r| {
            Ok(PowerupReport {
                interface: r.get(0)?,
                powerup_type: r.get(1)?,
                count: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let report = StoreReport {
        path: path.to_path_buf(),
        format_version: one("PRAGMA user_version")?,
        file_bytes: std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len(),
        page_size: one("PRAGMA page_size")?,
        page_count: one("PRAGMA page_count")?,
        journal_mode: conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
        types,
        powerups,
        outbox_pending: one("SELECT count(*) FROM mantle_outbox WHERE parked = 0")?,
        outbox_parked: one("SELECT count(*) FROM mantle_outbox WHERE parked = 1")?,
        scheduled: one("SELECT count(*) FROM mantle_schedule")?,
    };
    conn.execute_batch("COMMIT")?;
    Ok(report)
}

impl StoreReport {
    /// The non-empty item tables of types `registry` does not register:
    /// what a program with that registry leaves alone when it opens the
    /// store.
    pub fn unregistered(&self, registry: &Registry) -> Vec<Unregistered> {
        self.types
            .iter()
            .filter(|t| t.items > 0 && !registry.knows(&t.type_name))
            .map(|t| Unregistered {
                type_name: t.type_name.clone(),
                version: t.version,
                items: t.items,
            })
            .collect()
    }
}

/// A problem found by [`check`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, for a person.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// What [`check_report`] found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    /// What is wrong: a sound store has none.
    pub problems: Vec<Problem>,
    /// Warnings, not problems: items of types the program does not
    /// register (only with a registry). Stores outlive code: the program
    /// opens the store all the same and leaves these items alone.
    pub unregistered: Vec<Unregistered>,
}

/// Checks the store at `path`: SQLite's integrity check, the catalog
/// against the tables, references that point at nothing, and — given the
/// program's registry — versions it cannot open. An empty list means sound.
///
/// Items of types the registry does not register are not problems (see
/// [`check_report`], which tells them as warnings).
pub fn check(path: &Path, registry: Option<&Registry>) -> Result<Vec<Problem>> {
    Ok(check_report(path, registry)?.problems)
}

/// [`check`], with the warnings too: given the program's registry, the
/// items of types it does not register.
pub fn check_report(path: &Path, registry: Option<&Registry>) -> Result<CheckReport> {
    let conn = open_read_only(path)?;
    conn.execute_batch("BEGIN")?;
    let mut problems = Vec::new();
    let mut unregistered = Vec::new();
    let mut say = |what: String| problems.push(Problem { what });

    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    for line in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let line = line?;
        if line != "ok" {
            say(format!("integrity: {line}"));
        }
    }
    drop(stmt);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if mode != "wal" {
        say(format!("journal mode is {mode}, expected wal"));
    }

    let catalog = schema::catalog(&conn)?;
    for CatalogEntry {
        type_name,
        version,
        table_name,
        columns,
    } in &catalog
    {
        let actual: Vec<(String, String, bool)> = conn
            .prepare(&format!("PRAGMA table_info(\"{table_name}\")"))?
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, bool>(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if actual.is_empty() {
            say(format!(
                "{type_name} v{version}: table {table_name} is missing"
            ));
            continue;
        }
        let actual_sig: Vec<String> = actual
            .iter()
            .filter(|(n, _, _)| !n.starts_with('_'))
            .map(|(n, t, notnull)| format!("{n} {t}{}", if *notnull { "" } else { " NULL" }))
            .collect();
        let declared_sig: Vec<String> = columns
            .split(", ")
            .filter(|c| !c.is_empty())
            .map(|c| c.split(" -> ").next().unwrap_or(c).to_string())
            .collect();
        if actual_sig != declared_sig {
            say(format!(
                "{type_name} v{version}: table columns ({}) differ from the catalog ({})",
                actual_sig.join(", "),
                declared_sig.join(", ")
            ));
        }
        // References that point at nothing.
        for (attr, target) in schema::references(columns) {
            let targets: Vec<&CatalogEntry> =
                catalog.iter().filter(|c| c.type_name == target).collect();
            let exists = targets
                .iter()
                .map(|t| {
                    format!(
                        "EXISTS (SELECT 1 FROM \"{}\" t WHERE t._id = x.\"{attr}\")",
                        t.table_name
                    )
                })
                .collect::<Vec<_>>();
            let cond = if exists.is_empty() {
                "1".to_string()
            } else {
                format!("NOT ({})", exists.join(" OR "))
            };
            let dangling: i64 = conn.query_row(
                &format!(
                    "SELECT count(*) FROM \"{table_name}\" x WHERE x.\"{attr}\" IS NOT NULL AND {cond}"
                ),
                [],
                |r| r.get(0),
            )?;
            if dangling > 0 {
                say(format!(
                    "{type_name}.{attr}: {dangling} reference(s) to missing {target} items"
                ));
            }
        }
        if let Some(reg) = registry {
            match reg.types.get(type_name.as_str()) {
                None => {
                    let items = schema::count_rows(&conn, table_name)?;
                    if items > 0 {
                        unregistered.push(Unregistered {
                            type_name: type_name.clone(),
                            version: *version,
                            items,
                        });
                    }
                }
                Some(cur) if *version > cur.version => say(format!(
                    "{type_name}: stored at version {version}, newer than this program's {}",
                    cur.version
                )),
                Some(cur) if *version == cur.version && cur.columns != *columns => say(format!(
                    "{type_name} v{version}: stored columns differ from this program's ({})",
                    cur.columns
                )),
                Some(cur) if *version < cur.version => {
                    if !reg.legacy.contains_key(&(cur.type_name, *version)) {
                        say(format!(
                            "{type_name}: no upgrader from version {version} to {}",
                            cur.version
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(CheckReport {
        problems,
        unregistered,
    })
}
