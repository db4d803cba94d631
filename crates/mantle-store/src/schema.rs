//! The file format: system tables, the type catalog, and per-type tables.
//!
//! A store is one SQLite file in WAL mode whose `application_id` is
//! [`APPLICATION_ID`] and whose `user_version` is the format version
//! [`FORMAT_VERSION`]. Each (type, version) has its own STRICT table
//! `item_{type}_v{version}` with `_id` (never reused: AUTOINCREMENT), `_rev`
//! and one column per attribute, listed in `mantle_types` with its column
//! list. Tables are created the first time an item of the type is written,
//! so a store only holds tables for types it has used.

use rusqlite::{Connection, OptionalExtension};

use crate::item::AttributeDef;
use crate::{Error, Result};

/// "MNTL": marks a SQLite file as a Mantle store.
pub const APPLICATION_ID: i32 = 0x4D4E_544C;
/// The file format this program writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// System tables, created with the store.
const SYSTEM_TABLES: &str = "
CREATE TABLE mantle_types (
    type_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    table_name TEXT NOT NULL UNIQUE,
    columns TEXT NOT NULL,
    PRIMARY KEY (type_name, version)
) STRICT;
CREATE TABLE mantle_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    parked INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
) STRICT;
CREATE INDEX mantle_outbox_due ON mantle_outbox (parked, next_attempt);
CREATE TABLE mantle_powerups (
    target_type TEXT NOT NULL,
    target_id INTEGER NOT NULL,
    interface TEXT NOT NULL,
    powerup_type TEXT NOT NULL,
    powerup_id INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    PRIMARY KEY (target_type, target_id, interface, powerup_type, powerup_id)
) STRICT;
CREATE INDEX mantle_powerups_by_powerup ON mantle_powerups (powerup_type, powerup_id);
CREATE TABLE mantle_schedule (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_type TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    run_at INTEGER NOT NULL,
    every_us INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
) STRICT;
CREATE INDEX mantle_schedule_due ON mantle_schedule (run_at);
CREATE INDEX mantle_schedule_by_item ON mantle_schedule (item_type, item_id);
";

/// The table name of a (type, version).
pub(crate) fn table_name(type_name: &str, version: u32) -> String {
    format!("item_{type_name}_v{version}")
}

/// Checks a type name: it becomes part of a table name.
pub(crate) fn valid_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// The column list as stored in the catalog: `name TYPE [NULL] [-> target]`,
/// comma-joined. Tools read reference targets from it without a registry.
pub(crate) fn column_signature(attrs: &[AttributeDef]) -> String {
    attrs
        .iter()
        .map(|a| {
            let target = match a.kind {
                crate::Kind::Reference(t) => format!(" -> {t}"),
                _ => String::new(),
            };
            format!(
                "{} {}{}{target}",
                a.name,
                a.kind.sql_type(),
                if a.nullable { " NULL" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reference attributes in a column signature (see
/// [`column_signature`]): `(attribute, target type)` pairs.
pub(crate) fn references(columns: &str) -> impl Iterator<Item = (&str, &str)> {
    columns.split(", ").filter_map(|col| {
        let (head, target) = col.split_once(" -> ")?;
        Some((head.split(' ').next().unwrap_or(head), target))
    })
}

/// The SQL text for one (type, version), built once at registration.
#[derive(Debug, Clone)]
pub(crate) struct TableSql {
    pub table: String,
    pub create: String,
    pub insert: String,
    pub insert_with_id: String,
    pub select: String,
    pub update: String,
}

impl TableSql {
    pub fn new(
        type_name: &str,
        version: u32,
        attrs: &[AttributeDef],
        indexes: &[Vec<&'static str>],
    ) -> Self {
        let table = table_name(type_name, version);
        let cols: Vec<String> = attrs.iter().map(|a| format!("\"{}\"", a.name)).collect();
        let mut create = format!(
            "CREATE TABLE \"{table}\" (_id INTEGER PRIMARY KEY AUTOINCREMENT, _rev INTEGER NOT NULL"
        );
        for a in attrs {
            create.push_str(&format!(
                ", \"{}\" {}{}",
                a.name,
                a.kind.sql_type(),
                if a.nullable { "" } else { " NOT NULL" }
            ));
        }
        create.push_str(") STRICT;\n");
        // Single-column indexes: declared ones, plus every reference (deletes
        // look referrers up by the reference column).
        for a in attrs {
            if a.indexed || matches!(a.kind, crate::Kind::Reference(_)) {
                create.push_str(&format!(
                    "CREATE INDEX \"{table}__{n}\" ON \"{table}\" (\"{n}\");\n",
                    n = a.name
                ));
            }
        }
        for idx in indexes {
            let name = idx.join("_");
            let list: Vec<String> = idx.iter().map(|c| format!("\"{c}\"")).collect();
            create.push_str(&format!(
                "CREATE INDEX \"{table}__{name}\" ON \"{table}\" ({});\n",
                list.join(", ")
            ));
        }
        let placeholders: Vec<String> = (0..attrs.len()).map(|i| format!("?{}", i + 1)).collect();
        let insert = if attrs.is_empty() {
            format!("INSERT INTO \"{table}\" (_rev) VALUES (1)")
        } else {
            format!(
                "INSERT INTO \"{table}\" (_rev, {}) VALUES (1, {})",
                cols.join(", "),
                placeholders.join(", ")
            )
        };
        let n = attrs.len();
        let insert_with_id = format!(
            "INSERT INTO \"{table}\" (_id, _rev{}{}) VALUES (?{}, ?{}{}{})",
            if n == 0 { "" } else { ", " },
            cols.join(", "),
            n + 1,
            n + 2,
            if n == 0 { "" } else { ", " },
            placeholders.join(", ")
        );
        let select = if cols.is_empty() {
            format!("SELECT _id, _rev FROM \"{table}\"")
        } else {
            format!("SELECT _id, _rev, {} FROM \"{table}\"", cols.join(", "))
        };
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect();
        let update = format!(
            "UPDATE \"{table}\" SET _rev = _rev + 1{}{} WHERE _id = ?{} AND _rev = ?{}",
            if n == 0 { "" } else { ", " },
            sets.join(", "),
            n + 1,
            n + 2
        );
        Self {
            table,
            create,
            insert,
            insert_with_id,
            select,
            update,
        }
    }
}

/// Whether a SQLite error means "the table is not there" (the type was never
/// written): such reads find nothing.
pub(crate) fn is_missing_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(msg)) if msg.starts_with("no such table"))
}

/// One row of the catalog.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The item type's name.
    pub type_name: String,
    /// Its schema version.
    pub version: u32,
    /// The table holding its items.
    pub table_name: String,
    /// The column signature recorded when the table was made.
    pub columns: String,
}

/// Reads the catalog.
pub(crate) fn catalog(conn: &Connection) -> Result<Vec<CatalogEntry>> {
    let mut stmt = conn.prepare(
        "SELECT type_name, version, table_name, columns FROM mantle_types ORDER BY type_name, version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CatalogEntry {
            type_name: r.get(0)?,
            version: r.get(1)?,
            table_name: r.get(2)?,
            columns: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Creates a type's table and catalog row (inside the caller's transaction).
pub(crate) fn create_type_table(
    conn: &Connection,
    type_name: &str,
    version: u32,
    sql: &TableSql,
    columns: &str,
) -> Result<()> {
    conn.execute_batch(&sql.create)?;
    conn.execute(
        "INSERT INTO mantle_types (type_name, version, table_name, columns) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![type_name, version, sql.table, columns],
    )?;
    Ok(())
}

/// How a file looked when opened.
pub(crate) enum FileState {
    /// Empty or new: make it a store.
    Fresh,
    /// A Mantle store of a format this program reads.
    Store,
}

/// Checks that an opened file is a Mantle store (or empty), without writing.
pub(crate) fn identify(conn: &Connection, path: &std::path::Path) -> Result<FileState> {
    let not_a_store = |reason: String| Error::NotAStore {
        path: path.to_path_buf(),
        reason,
    };
    // Reading the header is the first thing that touches the file: SQLite
    // reports "file is not a database" here.
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| not_a_store(e.to_string()))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| not_a_store(e.to_string()))?;
    if app_id == 0 && tables == 0 {
        return Ok(FileState::Fresh);
    }
    if app_id != APPLICATION_ID {
        return Err(not_a_store(format!(
            "SQLite database with application_id {app_id:#x}, not a Mantle store"
        )));
    }
    let format: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if format > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    let has_catalog: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE name = 'mantle_types'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if has_catalog.is_none() {
        return Err(not_a_store("missing the mantle_types catalog".into()));
    }
    Ok(FileState::Store)
}

/// Makes a fresh file a store (one transaction).
pub(crate) fn initialize(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {SYSTEM_TABLES}
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {FORMAT_VERSION};
         COMMIT;"
    ))?;
    Ok(())
}

/// Counts the rows of a table (0 if missing).
pub(crate) fn count_rows(conn: &Connection, table: &str) -> Result<i64> {
    match conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get(0)
    }) {
        Ok(n) => Ok(n),
        Err(e) if is_missing_table(&e) => Ok(0),
        Err(e) => Err(e.into()),
    }
}
