//! The store benches: `mantle_store` against raw `rusqlite`.
//!
//! Both sides use the same data (seeded, so every run is the same), the
//! same pragmas (WAL, `synchronous = FULL`, `cache_size = -2048`) and the
//! same index (on `key`). The reference table is the plain
//! `t (id INTEGER PRIMARY KEY, key, name, score, payload)`; the store's
//! table is what `#[derive(Item)]` makes of [`Row`] (a STRICT table with an
//! `AUTOINCREMENT` id and a revision column): that difference is part of
//! what is measured. Each bench works in fresh files in its own
//! subdirectory and deletes them afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use mantle_store::{Item, Registry, Store, StoreCache, StoreConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::BenchError;
use crate::report::BenchRecord;
use crate::rss::PeakRss;

/// The benches [`run_store`] runs, in order; each emits one record of its
/// name.
pub const STORE_BENCHES: &[&str] = &[
    "bulk_insert",
    "small_tx",
    "point_query",
    "point_query_single",
    "range_query",
    "many_stores",
];

/// Options of the store benches (see [`BenchOptions`](crate::BenchOptions)).
pub type StoreBenchOptions = crate::BenchOptions;

// Sizes at scale 1.0.
const BULK_ROWS: u64 = 100_000;
const SMALL_TXS: u64 = 10_000;
const QUERY_ROWS: u64 = 100_000;
const POINT_LOOKUPS: u64 = 100_000;
const LOOKUPS_PER_READ: u64 = 1_000;
const RANGE_QUERIES: u64 = 10_000;
const RANGE_LEN: i64 = 100;
const RANGES_PER_READ: u64 = 100;
const STORES: u64 = 10_000;
const ITEMS_PER_STORE: i64 = 50;
const CACHE_CAPACITY: usize = 1_000;
const STORE_CONCURRENCY: usize = 16;

/// Runs the store benches (all, or `opts.only`), calling `emit` with each
/// record as soon as it is measured.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `bulk_insert` | 100,000 inserts in one transaction | insert |
/// | `small_tx` | 10,000 transactions of one insert, one after another | transaction |
/// | `point_query` | 100,000 lookups by indexed key in a 100,000-row table, 1,000 per `store.read` | lookup |
/// | `point_query_single` | the same lookups, one per `store.read` | lookup |
/// | `range_query` | 10,000 queries for 100 rows by key range, ordered, 100 per `store.read` | query |
/// | `many_stores` | 10,000 new stores through a `StoreCache` of 1,000, 16 in flight, each one transaction of 50 inserts | store |
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`; store,
/// SQLite and file errors; [`BenchError::Check`] if a bench reads back
/// something other than what it wrote.
pub async fn run_store(
    opts: &StoreBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(STORE_BENCHES)?;
    let workspace = opts.workspace()?;
    let base = workspace.path();
    let wants = |name: &str| opts.wants(name);
    let scale = opts.scale;
    if wants("bulk_insert") {
        emit(bulk_insert(scale, base).await?);
    }
    if wants("small_tx") {
        emit(small_tx(scale, base).await?);
    }
    if wants("point_query") || wants("point_query_single") {
        point_query(
            scale,
            base,
            wants("point_query"),
            wants("point_query_single"),
            emit,
        )
        .await?;
    }
    if wants("range_query") {
        emit(range_query(scale, base).await?);
    }
    if wants("many_stores") {
        emit(many_stores(scale, base).await?);
    }
    Ok(())
}

/// The item every bench writes.
#[derive(Item, Debug, Clone)]
#[item(name = "bench_row", version = 1)]
pub(crate) struct Row {
    #[item(index)]
    key: i64,
    name: String,
    score: f64,
    /// 32 bytes.
    payload: Vec<u8>,
}

/// The row with key `key` (every bench's data is a function of the key).
pub(crate) fn make_row(key: i64) -> Row {
    let payload = (0..32u8)
        .map(|i| (key as u8).wrapping_mul(31).wrapping_add(i))
        .collect();
    Row {
        key,
        name: format!("row-{key:08}"),
        score: key as f64 * 0.25,
        payload,
    }
}

/// `base * scale`, at least 1.
pub(crate) fn scaled(base: u64, scale: f64) -> u64 {
    let n = (base as f64 * scale).round();
    if n >= 1.0 { n as u64 } else { 1 }
}

/// Keys `0..n` in a seeded random order (so index inserts are not
/// append-only).
fn shuffled_keys(n: u64, seed: u64) -> Vec<i64> {
    let mut keys: Vec<i64> = (0..n as i64).collect();
    keys.shuffle(&mut StdRng::seed_from_u64(seed));
    keys
}

fn rows_for(keys: Vec<i64>) -> Arc<Vec<Row>> {
    Arc::new(keys.into_iter().map(make_row).collect())
}

pub(crate) fn store_config() -> StoreConfig {
    let mut registry = Registry::new();
    registry.register::<Row>();
    StoreConfig::new(registry)
}

/// A bench's fresh subdirectory, removed when dropped (also on error).
pub(crate) struct BenchDir(PathBuf);

impl BenchDir {
    pub(crate) fn new(base: &Path, name: &str) -> std::io::Result<Self> {
        let path = base.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs blocking reference work off the async runtime.
pub(crate) async fn blocking<R, F>(f: F) -> Result<R, BenchError>
where
    F: FnOnce() -> Result<R, BenchError> + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BenchError::Task(e.to_string()))?
}

pub(crate) fn check(
    bench: &'static str,
    ok: bool,
    reason: impl FnOnce() -> String,
) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Check {
            bench,
            reason: reason(),
        })
    }
}

// ---- The reference: raw rusqlite -------------------------------------------

const REF_CREATE: &str = "BEGIN;
CREATE TABLE t (id INTEGER PRIMARY KEY, key INTEGER NOT NULL, name TEXT NOT NULL, score REAL NOT NULL, payload BLOB NOT NULL);
CREATE INDEX t_key ON t (key);
COMMIT;";
const REF_INSERT: &str = "INSERT INTO t (key, name, score, payload) VALUES (?1, ?2, ?3, ?4)";
const REF_POINT: &str = "SELECT id, key, name, score, payload FROM t WHERE key = ?1 LIMIT 1";
const REF_RANGE: &str =
    "SELECT id, key, name, score, payload FROM t WHERE key >= ?1 AND key < ?2 ORDER BY key, id";

/// Opens a reference database with the store's pragmas.
pub(crate) fn ref_open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA cache_size = -2048; PRAGMA foreign_keys = OFF;",
    )?;
    Ok(conn)
}

/// Opens a reference database and creates its table.
fn ref_create(path: &Path) -> Result<Connection, BenchError> {
    let conn = ref_open(path)?;
    conn.execute_batch(REF_CREATE)?;
    Ok(conn)
}

/// Inserts `rows` in one transaction with one prepared statement.
fn ref_insert_all(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(REF_INSERT)?;
        for row in rows {
            insert.execute(params![row.key, row.name, row.score, row.payload])?;
        }
    }
    tx.commit()
}

fn ref_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Row)> {
    Ok((
        r.get(0)?,
        Row {
            key: r.get(1)?,
            name: r.get(2)?,
            score: r.get(3)?,
            payload: r.get(4)?,
        },
    ))
}

fn ref_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// The reference connection, handed to the blocking pool for each slice of
/// work and handed back. Its work is timed inside the blocking closure, so
/// the hop itself is not charged to it.
struct Reference(Option<Connection>);

impl Reference {
    async fn run<R, F>(&mut self, f: F) -> Result<R, BenchError>
    where
        F: FnOnce(&mut Connection) -> Result<R, BenchError> + Send + 'static,
        R: Send + 'static,
    {
        let mut conn = self
            .0
            .take()
            .ok_or_else(|| BenchError::Task("reference connection lost".into()))?;
        let (conn, r) = blocking(move || {
            let r = f(&mut conn)?;
            Ok((conn, r))
        })
        .await?;
        self.0 = Some(conn);
        Ok(r)
    }
}

// ---- Ours -------------------------------------------------------------------

pub(crate) async fn our_insert_all(store: &Store, rows: Arc<Vec<Row>>) -> Result<(), BenchError> {
    store
        .transact(move |tx| {
            for row in rows.iter() {
                tx.insert(row)?;
            }
            mantle_store::ok(())
        })
        .await?;
    Ok(())
}

pub(crate) async fn our_count(store: &Store) -> Result<u64, BenchError> {
    Ok(store.read(|r| r.query::<Row>().count()).await?)
}

/// Both sides hold `rows`, written and closed (so the WAL is checkpointed
/// away) before reading starts. Returns our store and the reference
/// connection, reopened and warmed up the same way (the query behind
/// `count()`; on our side this also opens the reader connection).
async fn load_both(dir: &BenchDir, rows: Arc<Vec<Row>>) -> Result<(Store, Reference), BenchError> {
    let path = dir.join("reference.db");
    let r = rows.clone();
    let conn = blocking(move || {
        let mut conn = ref_create(&path)?;
        ref_insert_all(&mut conn, &r)?;
        drop(conn);
        let conn = ref_open(&path)?;
        conn.query_row("SELECT count(*) FROM (SELECT * FROM t)", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(conn)
    })
    .await?;
    let config = store_config();
    let ours = dir.join("ours.store");
    let store = Store::open(&ours, &config).await?;
    our_insert_all(&store, rows).await?;
    store.close().await;
    drop(store);
    let store = Store::open(&ours, &config).await?;
    our_count(&store).await?;
    Ok((store, Reference(Some(conn))))
}

/// `0..n` in consecutive ranges of `size` (the last may be shorter).
fn slices(n: u64, size: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    let size = size.max(1) as usize;
    let n = n as usize;
    (0..n).step_by(size).map(move |s| s..(s + size).min(n))
}

// ---- The benches ------------------------------------------------------------

/// Rounds of `bulk_insert`, alternating sides; each side's best counts.
const BULK_ROUNDS: usize = 3;
/// Slices `small_tx` and `point_query_single` alternate in, so that both
/// sides see the same background load (other processes' disk writes change
/// fsync times a lot).
const SLICES: u64 = 10;

async fn bulk_insert(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "bulk_insert";
    let n = scaled(BULK_ROWS, scale);
    let dir = BenchDir::new(base, NAME)?;
    let rows = rows_for(shuffled_keys(n, 1));
    let (mut reference, mut ours) = (Duration::MAX, Duration::MAX);
    for round in 0..BULK_ROUNDS {
        let (path, r) = (dir.join(format!("reference{round}.db")), rows.clone());
        let (took, ref_rows) = blocking(move || {
            let mut conn = ref_create(&path)?;
            // Warm-up transaction, as on our side.
            ref_insert_all(&mut conn, &[make_row(-1)])?;
            let t = Instant::now();
            ref_insert_all(&mut conn, &r)?;
            let took = t.elapsed();
            Ok((took, ref_count(&conn)?))
        })
        .await?;
        reference = reference.min(took);

        let store = Store::open(dir.join(format!("ours{round}.store")), &store_config()).await?;
        // Warm-up transaction: creates the type's table outside the timing.
        our_insert_all(&store, Arc::new(vec![make_row(-1)])).await?;
        let t = Instant::now();
        our_insert_all(&store, rows.clone()).await?;
        ours = ours.min(t.elapsed());
        let our_rows = our_count(&store).await?;
        store.close().await;

        check(NAME, our_rows == n + 1 && ref_rows == n + 1, || {
            format!(
                "expected {} rows, ours {our_rows}, reference {ref_rows}",
                n + 1
            )
        })?;
    }
    let mut rec = BenchRecord::new(NAME, "insert", n, scale, ours, reference);
    rec.items = Some(n);
    rec.note = Some(format!(
        "one transaction of inserts in random key order into an indexed table created \
         beforehand, committed; reference: one prepared statement; best of {BULK_ROUNDS} \
         alternating rounds, fresh files each"
    ));
    Ok(rec)
}

async fn small_tx(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "small_tx";
    let n = scaled(SMALL_TXS, scale);
    let dir = BenchDir::new(base, NAME)?;

    let path = dir.join("reference.db");
    let mut reference = Reference(Some(
        blocking(move || {
            let mut conn = ref_create(&path)?;
            ref_insert_all(&mut conn, &[make_row(-1)])?;
            Ok(conn)
        })
        .await?,
    ));
    let store = Store::open(dir.join("ours.store"), &store_config()).await?;
    our_insert_all(&store, Arc::new(vec![make_row(-1)])).await?;

    let (mut ref_time, mut our_time) = (Duration::ZERO, Duration::ZERO);
    let (mut ref_lat, mut lat) = (Vec::new(), Vec::new());
    for slice in slices(n, n.div_ceil(SLICES)) {
        let s = slice.clone();
        let (took, l) = reference
            .run(move |conn| {
                let mut lat = Vec::with_capacity(s.len());
                let t = Instant::now();
                for key in s {
                    let row = make_row(key as i64);
                    let t0 = Instant::now();
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    tx.prepare_cached(REF_INSERT)?.execute(params![
                        row.key,
                        row.name,
                        row.score,
                        row.payload
                    ])?;
                    tx.commit()?;
                    lat.push(t0.elapsed());
                }
                Ok((t.elapsed(), lat))
            })
            .await?;
        ref_time += took;
        ref_lat.extend(l);

        let t = Instant::now();
        for key in slice {
            let row = make_row(key as i64);
            let t0 = Instant::now();
            store.transact(move |tx| tx.insert(&row)).await?;
            lat.push(t0.elapsed());
        }
        our_time += t.elapsed();
    }
    let our_rows = our_count(&store).await?;
    store.close().await;
    let ref_rows = reference.run(|conn| Ok(ref_count(conn)?)).await?;

    check(NAME, our_rows == n + 1 && ref_rows == n + 1, || {
        format!(
            "expected {} rows, ours {our_rows}, reference {ref_rows}",
            n + 1
        )
    })?;
    let mut rec = BenchRecord::new(NAME, "transaction", n, scale, our_time, ref_time).p99(
        "one transaction (submit to commit acknowledged)",
        &mut lat,
        &mut ref_lat,
    );
    rec.items = Some(n);
    rec.concurrency = Some(1);
    rec.note = Some(format!(
        "one-insert transactions awaited one after another, each synced (synchronous=FULL); \
         reference: BEGIN IMMEDIATE / insert / COMMIT on one connection; the sides alternate \
         in {SLICES} slices"
    ));
    Ok(rec)
}

async fn point_query(
    scale: f64,
    base: &Path,
    batched: bool,
    single: bool,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    const NAME: &str = "point_query";
    const SINGLE: &str = "point_query_single";
    let n = scaled(QUERY_ROWS, scale);
    let lookups = scaled(POINT_LOOKUPS, scale);
    let per_read = LOOKUPS_PER_READ.min(lookups);
    let dir = BenchDir::new(base, NAME)?;
    let (store, mut reference) = load_both(&dir, rows_for(shuffled_keys(n, 2))).await?;
    let mut rng = StdRng::seed_from_u64(3);
    let keys: Arc<Vec<i64>> = Arc::new(
        (0..lookups)
            .map(|_| rng.random_range(0..n as i64))
            .collect(),
    );

    if batched {
        let (mut ref_time, mut our_time) = (Duration::ZERO, Duration::ZERO);
        let (mut ref_lat, mut lat) = (Vec::new(), Vec::new());
        let (mut ref_found, mut found) = (0u64, 0u64);
        for batch in slices(lookups, per_read) {
            let (k, b) = (keys.clone(), batch.clone());
            let (took, hits) = reference
                .run(move |conn| {
                    let t = Instant::now();
                    // One read transaction per batch, like one `store.read`.
                    conn.execute_batch("BEGIN")?;
                    let mut hits = 0u64;
                    {
                        let mut select = conn.prepare_cached(REF_POINT)?;
                        for &key in &k[b] {
                            if let Some((_, row)) = select.query_row([key], ref_row).optional()? {
                                hits += u64::from(row.key == key);
                            }
                        }
                    }
                    conn.execute_batch("COMMIT")?;
                    Ok((t.elapsed(), hits))
                })
                .await?;
            ref_time += took;
            ref_lat.push(took);
            ref_found += hits;

            let k = keys.clone();
            let t = Instant::now();
            found += store
                .read(move |r| {
                    let mut hits = 0u64;
                    for &key in &k[batch] {
                        if let Some(row) = r.query::<Row>().filter(Row::KEY.eq(key)).first()? {
                            hits += u64::from(row.key == key);
                        }
                    }
                    mantle_store::ok(hits)
                })
                .await?;
            let took = t.elapsed();
            our_time += took;
            lat.push(took);
        }

        check(NAME, found == lookups && ref_found == lookups, || {
            format!("expected {lookups} hits, ours {found}, reference {ref_found}")
        })?;
        let mut rec = BenchRecord::new(NAME, "lookup", lookups, scale, our_time, ref_time).p99(
            &format!("one read call of {per_read} lookups"),
            &mut lat,
            &mut ref_lat,
        );
        rec.items = Some(lookups);
        rec.table_rows = Some(n);
        rec.lookups_per_read = Some(per_read);
        rec.note = Some(
            "random existing keys, indexed; ours: query().filter(KEY.eq(k)).first() inside \
             store.read, batched; reference: one prepared SELECT, one read transaction per \
             batch; the sides alternate batch by batch"
                .into(),
        );
        emit(rec);
    }

    if single {
        let (mut ref_time, mut our_time) = (Duration::ZERO, Duration::ZERO);
        let (mut ref_lat, mut lat) = (Vec::new(), Vec::new());
        let (mut ref_found, mut found) = (0u64, 0u64);
        for slice in slices(lookups, lookups.div_ceil(SLICES)) {
            let (k, s) = (keys.clone(), slice.clone());
            let (took, l, hits) = reference
                .run(move |conn| {
                    let mut select = conn.prepare_cached(REF_POINT)?;
                    let mut lat = Vec::with_capacity(s.len());
                    let mut hits = 0u64;
                    let t = Instant::now();
                    for &key in &k[s] {
                        let t0 = Instant::now();
                        if let Some((_, row)) = select.query_row([key], ref_row).optional()? {
                            hits += u64::from(row.key == key);
                        }
                        lat.push(t0.elapsed());
                    }
                    Ok((t.elapsed(), lat, hits))
                })
                .await?;
            ref_time += took;
            ref_lat.extend(l);
            ref_found += hits;

            let t = Instant::now();
            for &key in &keys[slice] {
                let t0 = Instant::now();
                let row = store
                    .read(move |r| r.query::<Row>().filter(Row::KEY.eq(key)).first())
                    .await?;
                lat.push(t0.elapsed());
                if let Some(row) = row {
                    found += u64::from(row.key == key);
                }
            }
            our_time += t.elapsed();
        }

        check(SINGLE, found == lookups && ref_found == lookups, || {
            format!("expected {lookups} hits, ours {found}, reference {ref_found}")
        })?;
        let mut rec = BenchRecord::new(SINGLE, "lookup", lookups, scale, our_time, ref_time).p99(
            "one lookup (one read call)",
            &mut lat,
            &mut ref_lat,
        );
        rec.items = Some(lookups);
        rec.table_rows = Some(n);
        rec.lookups_per_read = Some(1);
        rec.note = Some(format!(
            "the point_query keys, one store.read call each (shows the per-call cost: a hop \
             to the blocking pool and a read transaction); reference: one autocommit SELECT \
             each; the sides alternate in {SLICES} slices"
        ));
        emit(rec);
    }
    store.close().await;
    Ok(())
}

/// Whether `keys` are `start, start + 1, …` (a range read in order).
fn in_order(start: i64, keys: impl Iterator<Item = i64>) -> bool {
    keys.enumerate().all(|(i, k)| k == start + i as i64)
}

async fn range_query(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "range_query";
    let n = scaled(QUERY_ROWS, scale);
    let queries = scaled(RANGE_QUERIES, scale);
    let per_read = RANGES_PER_READ.min(queries);
    let dir = BenchDir::new(base, NAME)?;
    let (store, mut reference) = load_both(&dir, rows_for(shuffled_keys(n, 4))).await?;
    let highest_start = (n as i64 - RANGE_LEN).max(0);
    let mut rng = StdRng::seed_from_u64(5);
    let starts: Arc<Vec<i64>> = Arc::new(
        (0..queries)
            .map(|_| rng.random_range(0..=highest_start))
            .collect(),
    );
    // Keys are exactly 0..n: a range holds this many rows.
    let expected: u64 = starts
        .iter()
        .map(|&k| ((k + RANGE_LEN).min(n as i64) - k) as u64)
        .sum();

    let (mut ref_time, mut our_time) = (Duration::ZERO, Duration::ZERO);
    let (mut ref_lat, mut lat) = (Vec::new(), Vec::new());
    let (mut ref_rows, mut rows) = (0u64, 0u64);
    for batch in slices(queries, per_read) {
        let (s, b) = (starts.clone(), batch.clone());
        let (took, got_rows) = reference
            .run(move |conn| {
                let t = Instant::now();
                conn.execute_batch("BEGIN")?;
                let mut rows = 0u64;
                {
                    let mut select = conn.prepare_cached(REF_RANGE)?;
                    for &start in &s[b] {
                        let got: Vec<(i64, Row)> = select
                            .query_map([start, start + RANGE_LEN], ref_row)?
                            .collect::<rusqlite::Result<_>>()?;
                        if in_order(start, got.iter().map(|(_, r)| r.key)) {
                            rows += got.len() as u64;
                        }
                    }
                }
                conn.execute_batch("COMMIT")?;
                Ok((t.elapsed(), rows))
            })
            .await?;
        ref_time += took;
        ref_lat.push(took);
        ref_rows += got_rows;

        let s = starts.clone();
        let t = Instant::now();
        rows += store
            .read(move |r| {
                let mut rows = 0u64;
                for &start in &s[batch] {
                    let got = r
                        .query::<Row>()
                        .filter(Row::KEY.ge(start).and(Row::KEY.lt(start + RANGE_LEN)))
                        .order_by(Row::KEY.asc())
                        .all()?;
                    if in_order(start, got.iter().map(|r| r.key)) {
                        rows += got.len() as u64;
                    }
                }
                mantle_store::ok(rows)
            })
            .await?;
        let took = t.elapsed();
        our_time += took;
        lat.push(took);
    }
    store.close().await;

    check(NAME, rows == expected && ref_rows == expected, || {
        format!("expected {expected} rows in order, ours {rows}, reference {ref_rows}")
    })?;
    let mut rec = BenchRecord::new(NAME, "query", queries, scale, our_time, ref_time).p99(
        &format!("one read call of {per_read} queries"),
        &mut lat,
        &mut ref_lat,
    );
    rec.items = Some(expected);
    rec.table_rows = Some(n);
    rec.lookups_per_read = Some(per_read);
    rec.note = Some(format!(
        "each query: {RANGE_LEN} rows by indexed key range, ordered by key, all decoded; \
         reference: one prepared SELECT, one read transaction per batch; the sides \
         alternate batch by batch"
    ));
    Ok(rec)
}

/// The reference's version of one user store: create, one transaction of
/// `ITEMS_PER_STORE` inserts, close.
fn ref_one_store(path: &Path) -> Result<(), BenchError> {
    let mut conn = ref_create(path)?;
    let rows: Vec<Row> = (0..ITEMS_PER_STORE).map(make_row).collect();
    ref_insert_all(&mut conn, &rows)?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Open file descriptors of this process (Linux), to wait for stores the
/// cache closes in the background.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

async fn many_stores(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "many_stores";
    mantle_store::raise_open_file_limit()?;
    let stores = scaled(STORES, scale);
    let dir = BenchDir::new(base, NAME)?;
    let (ref_dir, our_dir) = (dir.join("reference"), dir.join("ours"));
    std::fs::create_dir_all(&ref_dir)?;
    std::fs::create_dir_all(&our_dir)?;
    let file = |i: u64| format!("u{i:05}.store");

    // The reference first, so that its peak is not raised by what our
    // phase leaves in the allocator.
    let rd = ref_dir.clone();
    let (reference, mut ref_lat, ref_peak) = blocking(move || {
        let next = AtomicU64::new(0);
        let phase = PeakRss::start();
        let t = Instant::now();
        let lat = std::thread::scope(|s| {
            let workers: Vec<_> = (0..STORE_CONCURRENCY)
                .map(|_| {
                    s.spawn(|| {
                        let mut lat = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= stores {
                                return Ok::<_, BenchError>(lat);
                            }
                            let t0 = Instant::now();
                            ref_one_store(&rd.join(file(i)))?;
                            lat.push(t0.elapsed());
                        }
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(
                    w.join()
                        .map_err(|_| BenchError::Task("reference thread panicked".into()))??,
                );
            }
            Ok::<_, BenchError>(all)
        })?;
        Ok((t.elapsed(), lat, phase.finish()))
    })
    .await?;

    let cache = StoreCache::new(store_config(), CACHE_CAPACITY);
    let fds_before = open_fds();
    let phase = PeakRss::start();
    let t = Instant::now();
    let mut lat: Vec<Duration> = futures::stream::iter(0..stores)
        .map(|i| {
            let cache = cache.clone();
            let path = our_dir.join(file(i));
            async move {
                let t0 = Instant::now();
                let store = cache.get(&path).await?;
                store
                    .transact(|tx| {
                        for key in 0..ITEMS_PER_STORE {
                            tx.insert(&make_row(key))?;
                        }
                        mantle_store::ok(())
                    })
                    .await?;
                Ok::<_, BenchError>(t0.elapsed())
            }
        })
        .buffer_unordered(STORE_CONCURRENCY)
        .try_collect()
        .await?;
    cache.close_all().await;
    // Stores evicted earlier close on the blocking pool; wait for the last
    // of them, so both sides' times include closing every store.
    if let Some(before) = fds_before {
        let deadline = Instant::now() + Duration::from_secs(60);
        while open_fds().is_some_and(|n| n > before + 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let ours = t.elapsed();
    let peak = phase.finish();
    let stats = cache.stats();
    drop(cache);

    // Spot checks: the first and last stores hold their items.
    for i in [0, stores - 1] {
        let our_file = our_dir.join(file(i));
        let store = Store::open(&our_file, &store_config()).await?;
        let ours_n = our_count(&store).await?;
        store.close().await;
        let ref_file = ref_dir.join(file(i));
        let ref_n = blocking(move || Ok(ref_count(&ref_open(&ref_file)?)?)).await?;
        check(
            NAME,
            ours_n == ITEMS_PER_STORE as u64 && ref_n == ITEMS_PER_STORE as u64,
            || {
                format!(
                    "store {i}: expected {ITEMS_PER_STORE} items, ours {ours_n}, reference {ref_n}"
                )
            },
        )?;
    }
    check(NAME, stats.misses == stores, || {
        format!(
            "expected {stores} cache misses (new stores), got {}",
            stats.misses
        )
    })?;

    let mut rec = BenchRecord::new(NAME, "store", stores, scale, ours, reference).p99(
        "one store (ours: open through the cache + transaction; reference: open, create, transaction, close)",
        &mut lat,
        &mut ref_lat,
    );
    rec.items = Some(stores * ITEMS_PER_STORE as u64);
    rec.concurrency = Some(STORE_CONCURRENCY as u64);
    rec.peak_rss_mb = peak.mb;
    rec.reference_peak_rss_mb = ref_peak.mb;
    rec.rss_baseline_mb = peak.baseline_mb;
    rec.rss_method = Some(peak.method.to_string());
    rec.note = Some(format!(
        "new stores, each one transaction of {ITEMS_PER_STORE} inserts; ours: StoreCache of \
         {CACHE_CAPACITY} (evicted stores close in the background; the time includes closing \
         all), {STORE_CONCURRENCY} stores in flight; reference: {STORE_CONCURRENCY} threads, \
         each opening, creating, writing and closing one file at a time"
    ));
    Ok(rec)
}
