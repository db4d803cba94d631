//! `Store`: one open store file, its writer, readers and background tasks.

use std::collections::HashMap;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::outbox::DispatchFn;
use crate::registry::Registry;
use crate::schema::{self, FileState};
use crate::tx::{ReadTx, Tx};
use crate::unregistered::{Unknown, Unregistered};
use crate::upgrade::{self, UpgradeProgress};
use crate::writer::{TransactJob, Writer, WriterPool, panic_message};
use crate::{Error, Result};

/// How hard a commit tries to reach the disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is synced to disk (SQLite `synchronous = FULL`): an
    /// acknowledged transaction survives a power cut.
    #[default]
    Full,
    /// Commits survive the process being killed, not the machine losing
    /// power (`synchronous = NORMAL`). Faster on slow disks.
    Process,
}

/// How stores are opened: the registry, the writer pool, and settings.
/// Cheap to clone; one per application, shared by all its stores.
///
/// ```
/// use mantle_store::{Registry, StoreConfig, Durability};
/// let config = StoreConfig::new(Registry::new()).durability(Durability::Process);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    pub(crate) registry: Arc<Registry>,
    pub(crate) pool: WriterPool,
    pub(crate) durability: Durability,
    pub(crate) queue_depth: usize,
    pub(crate) max_idle_readers: usize,
    pub(crate) upgrade_batch: usize,
    pub(crate) allow_unknown_types: bool,
    pub(crate) cache_kib: i64,
    pub(crate) dispatchers: Arc<HashMap<&'static str, DispatchFn>>,
    pub(crate) max_attempts: u32,
    pub(crate) stats: Option<Arc<crate::stats::StoreStats>>,
    pub(crate) replicator: Option<Arc<dyn crate::replica::Replicator>>,
    pub(crate) fence: Option<Arc<dyn crate::fence::Fence>>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("registry", &self.registry)
            .field("pool", &self.pool)
            .field("durability", &self.durability)
            .field("queue_depth", &self.queue_depth)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// Settings with defaults: full durability, a writer pool of four
    /// threads per core (at least eight), a queue of 256 transactions a
    /// store.
    ///
    /// # Panics
    /// If a registered reference names a type that is not registered.
    pub fn new(registry: Registry) -> Self {
        if let Err(e) = registry.validate() {
            panic!("invalid registry: {e}");
        }
        // Commits wait on fsync, not the CPU: more threads than cores lets
        // many stores' commits overlap.
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .saturating_mul(4)
            .max(8);
        Self {
            registry: Arc::new(registry),
            pool: WriterPool::new(threads),
            durability: Durability::Full,
            queue_depth: 256,
            max_idle_readers: 4,
            upgrade_batch: 1000,
            allow_unknown_types: true,
            cache_kib: 2048,
            dispatchers: Arc::new(HashMap::new()),
            max_attempts: 20,
            stats: None,
            replicator: None,
            fence: None,
        }
    }
    /// Asks `fence` before and after every commit of every store opened
    /// with this config whether the store may be written here (a cluster
    /// node's ownership and lease): see [`Fence`](crate::Fence).
    pub fn fence(mut self, fence: Arc<dyn crate::fence::Fence>) -> Self {
        self.fence = Some(fence);
        self
    }
    /// Replicates every store opened with this config: each store's
    /// commits and snapshots go to the [`Replica`](crate::Replica) the
    /// replicator attaches to it (continuous backup, for one).
    pub fn replicator(mut self, replicator: Arc<dyn crate::replica::Replicator>) -> Self {
        self.replicator = Some(replicator);
        self
    }
    /// Records statistics in the registry's "Stores" namespace
    /// ([`STATS_NAMESPACE`](crate::STATS_NAMESPACE)): open stores, cache hits
    /// and misses, transactions and their times, the slowest transactions,
    /// the outbox backlog (the list is at [`STATS_NAMESPACE`](crate::STATS_NAMESPACE)).
    ///
    /// Every store opened with this config, or a clone of it, records into
    /// the same statistics. Give a registry to one config and clone that:
    /// a second config given the same registry takes over its report-time
    /// values (mean and maximum transaction times).
    ///
    /// ```
    /// use mantle_store::{Registry, StoreConfig};
    /// let stats = mantle_stats::StatsRegistry::new();
    /// let config = StoreConfig::new(Registry::new()).stats(stats.clone());
    /// assert!(stats.get(mantle_store::STATS_NAMESPACE).is_some());
    /// # let _ = config;
    /// ```
    pub fn stats(mut self, registry: mantle_stats::StatsRegistry) -> Self {
        self.stats = Some(Arc::new(crate::stats::StoreStats::new(&registry)));
        self
    }
    /// Sets the durability of commits.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Shares a writer pool (for example between several configs).
    pub fn writer_pool(mut self, pool: WriterPool) -> Self {
        self.pool = pool;
        self
    }
    /// How many transactions may wait for a store's writer before
    /// `transact` waits for room.
    pub fn queue_depth(mut self, depth: usize) -> Self {
        self.queue_depth = depth.max(1);
        self
    }
    /// Items moved per upgrade transaction.
    pub fn upgrade_batch(mut self, batch: usize) -> Self {
        self.upgrade_batch = batch.max(1);
        self
    }
    /// SQLite page cache per connection, in KiB. Small values suit
    /// processes that keep many stores open.
    pub fn page_cache_kib(mut self, kib: u32) -> Self {
        self.cache_kib = i64::from(kib.max(64));
        self
    }
    /// Whether stores holding items of types this program does not
    /// register open. They do by default (`true`): stores outlive code, and
    /// such items are left alone, untouched and unread, with their
    /// scheduled runs (see [`Store::unregistered`]). `false` makes such an
    /// open fail with [`Error::UnknownType`] instead, for a program that
    /// must hold everything its stores do.
    ///
    /// ```
    /// use mantle_store::{Registry, StoreConfig};
    /// let strict = StoreConfig::new(Registry::new()).allow_unknown_types(false);
    /// # let _ = strict;
    /// ```
    pub fn allow_unknown_types(mut self, allow: bool) -> Self {
        self.allow_unknown_types = allow;
        self
    }
    /// Failed dispatches of an effect before it is parked.
    pub fn max_dispatch_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Failed dispatches of an effect before it is parked.
    pub fn max_dispatch_attempts_value(&self) -> u32 {
        self.max_attempts
    }
    /// The registry stores opened with this config use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// An open store: one SQLite file holding typed items.
///
/// Cheap to clone (a handle). The file closes when the last handle is
/// dropped, or at [`close`](Store::close).
///
/// ```
/// use mantle_store::{Item, Registry, Store, StoreConfig};
///
/// #[derive(Item, Debug, Clone, PartialEq)]
/// #[item(name = "greeting", version = 1)]
/// struct Greeting { #[item(index)] text: String }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let mut registry = Registry::new();
/// registry.register::<Greeting>();
/// let config = StoreConfig::new(registry);
///
/// let store = Store::open(dir.path().join("site.store"), &config).await?;
/// let id = store.transact(|tx| tx.insert(&Greeting { text: "hello".into() })).await?;
/// let found = store
///     .read(move |r| r.query::<Greeting>().filter(Greeting::TEXT.eq("hello")).unique())
///     .await?
///     .expect("just inserted");
/// assert_eq!(found.id(), id);
/// # Ok::<_, mantle_store::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

pub(crate) struct StoreInner {
    pub(crate) path: PathBuf,
    pub(crate) config: StoreConfig,
    pub(crate) writer: Arc<Writer>,
    /// What the store holds of types its program does not register.
    unknown: Arc<Unknown>,
    readers: Mutex<Vec<Connection>>,
    pub(crate) outbox_wake: Arc<Notify>,
    pub(crate) schedule_wake: Arc<Notify>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // Readers close before the writer (a field dropped after this), so
        // the writer's connection is the last: it empties the log and
        // removes it, and a replica sees a clean close.
        self.readers.get_mut().clear();
        // Background tasks hold only weak handles; wake them so they see
        // the store is gone and end.
        self.outbox_wake.notify_one();
        self.schedule_wake.notify_one();
    }
}

/// How long an open waits for another holder's writer lock to go.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the store's writer lock: a `flock` on `FILE.lock`, held while the
/// store is open. A second writer (another process, or a second open in
/// this one) fails with `Error::Locked` instead of interleaving commits.
fn take_lock(path: &Path) -> Result<File> {
    let lp = lock_path(path);
    let file = crate::files::open_private(&lp).map_err(|e| Error::io(&lp, e))?;
    // A lock can outlive its holder for a moment: a store whose last handle
    // was just dropped is closed by a pool thread, and a child process
    // forked meanwhile holds the descriptor until it execs. Wait briefly
    // before calling the store locked.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(lp, e)),
        }
    }
}

/// Puts the complete store file `with` in the place of the store at
/// `path` (a restored copy, say), under the store's writer lock: fails
/// with [`Error::Locked`] while the store is open anywhere. Its old log
/// and shared-memory files go with it; `with` is moved, not copied.
pub fn replace_store(path: &Path, with: &Path) -> Result<()> {
    crate::schema::identify(
        &Connection::open_with_flags(with, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        with,
    )?;
    let _lock = take_lock(path)?;
    for suffix in ["-wal", "-shm", ".backup"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(&p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(PathBuf::from(p), e)),
        }
    }
    std::fs::rename(with, path).map_err(|e| Error::io(path, e))
}

/// Turns off SQLite's per-connection lookaside allocator (about 48 KB
/// reserved per connection): a process holding a thousand open stores
/// would otherwise spend ~50 MB on it. Must run before the connection is
/// first used.
fn no_lookaside(conn: &Connection) {
    // SAFETY: the handle is valid for the connection's lifetime; a null
    // buffer with zero slots asks SQLite to use no lookaside memory.
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as std::ffi::c_int,
            0 as std::ffi::c_int,
        );
    }
}

fn configure(conn: &Connection, config: &StoreConfig) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    let sync = match config.durability {
        Durability::Full => "FULL",
        Durability::Process => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA cache_size = -{}; PRAGMA foreign_keys = OFF;",
        config.cache_kib
    ))?;
    Ok(())
}

/// Opens (or creates) the write connection, checks and upgrades the schema;
/// also returns what the store holds of unregistered types.
fn open_writer(
    path: &Path,
    config: &StoreConfig,
    progress: &mut dyn FnMut(&UpgradeProgress),
) -> Result<(Connection, File, Unknown)> {
    if path.is_dir() {
        return Err(Error::NotAStore {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    let lock = take_lock(path)?;
    // Made by us with mode 0600 before SQLite opens it (see `files`).
    crate::files::create_private_file(path).map_err(|e| Error::io(path, e))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| Error::NotAStore {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    no_lookaside(&conn);
    // Nothing is written before the file is known to be a store (or empty).
    let state = schema::identify(&conn, path)?;
    configure(&conn, config)?;
    if matches!(state, FileState::Fresh) {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NotAStore {
                path: path.to_path_buf(),
                reason: format!("cannot use WAL journal (got {mode})"),
            });
        }
        schema::initialize(&conn)?;
    }
    let unknown = upgrade::check_and_upgrade(
        &mut conn,
        &config.registry,
        config.allow_unknown_types,
        config.upgrade_batch,
        progress,
    )?;
    for u in &unknown.types {
        tracing::debug!(store = %path.display(), "{u}: left alone");
    }
    Ok((conn, lock, unknown))
}

impl Store {
    /// Opens the store at `path`, creating it if the file does not exist,
    /// and upgrades items stored at older versions.
    ///
    /// Items of types the config's registry does not register do not stop
    /// the open: they are left alone (see [`Store::unregistered`]).
    ///
    /// Errors: [`Error::NotAStore`] for a file that is not a Mantle store,
    /// [`Error::Locked`] if it is open for writing elsewhere,
    /// [`Error::NewerSchema`] / [`Error::NewerFormat`] for a store written by
    /// a newer program, [`Error::NoUpgradePath`] / [`Error::SchemaMismatch`]
    /// for registered types it cannot bring to their current version,
    /// [`Error::UnknownType`] for items of unregistered types only with
    /// [`StoreConfig::allow_unknown_types(false)`](StoreConfig::allow_unknown_types).
    /// None of these writes to the file.
    pub async fn open(path: impl AsRef<Path>, config: &StoreConfig) -> Result<Store> {
        Self::open_with_progress(path, config, |_| {}).await
    }

    /// [`open`](Store::open), reporting upgrade progress to `progress`.
    pub async fn open_with_progress(
        path: impl AsRef<Path>,
        config: &StoreConfig,
        mut progress: impl FnMut(&UpgradeProgress) + Send + 'static,
    ) -> Result<Store> {
        let path = std::path::absolute(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))?;
        if let Some(fence) = &config.fence {
            fence.opening(&path).await.map_err(|why| Error::Fenced {
                store: path.clone(),
                why,
            })?;
        }
        let cfg = config.clone();
        let p = path.clone();
        let (conn, lock, unknown, following) = tokio::task::spawn_blocking(move || {
            let (conn, lock, unknown) = open_writer(&p, &cfg, &mut progress)?;
            // Before the writer takes any job: the replica starts from
            // exactly the state the open left.
            let following = match &cfg.replicator {
                Some(r) => crate::replica::Following::start(r.as_ref(), &p)?,
                None => None,
            };
            Ok::<_, Error>((conn, lock, unknown, following))
        })
        .await
        .map_err(|e| Error::Panicked(e.to_string()))??;
        let unknown = Arc::new(unknown);
        let outbox_wake = Arc::new(Notify::new());
        let schedule_wake = Arc::new(Notify::new());
        let writer = Writer::new(
            conn,
            lock,
            path.clone(),
            config,
            unknown.clone(),
            (outbox_wake.clone(), schedule_wake.clone()),
            following,
        );
        let store = Store {
            inner: Arc::new(StoreInner {
                path,
                config: config.clone(),
                writer,
                unknown,
                readers: Mutex::new(Vec::new()),
                outbox_wake,
                schedule_wake,
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let mut tasks = Vec::new();
        if !config.dispatchers.is_empty() {
            tasks.push(tokio::spawn(crate::outbox::run_dispatcher(
                Arc::downgrade(&store.inner),
                store.inner.outbox_wake.clone(),
            )));
        }
        if !config.registry.tasks.is_empty() {
            tasks.push(tokio::spawn(crate::scheduler::run_scheduler(
                Arc::downgrade(&store.inner),
                store.inner.schedule_wake.clone(),
            )));
        }
        *store.inner.tasks.lock() = tasks;
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The config the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The items this store holds of types its program does not register,
    /// one entry per (type, version), as found at open (they cannot change
    /// while it is open). They are left alone: never read, upgraded or
    /// deleted, their scheduled runs kept for the next program that
    /// registers them; an item they refer to cannot be deleted
    /// ([`Error::ReferencedByUnregistered`]).
    ///
    /// ```
    /// use mantle_store::{Item, Registry, Store, StoreConfig};
    ///
    /// #[derive(Item)]
    /// #[item(name = "todo", version = 1)]
    /// struct Todo { title: String }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("s.store");
    /// let mut with_todos = Registry::new();
    /// with_todos.register::<Todo>();
    /// let store = Store::open(&path, &StoreConfig::new(with_todos)).await?;
    /// store.transact(|tx| tx.insert(&Todo { title: "write docs".into() })).await?;
    /// store.close().await;
    ///
    /// // A program without todos opens the store all the same.
    /// let store = Store::open(&path, &StoreConfig::new(Registry::new())).await?;
    /// let left = store.unregistered();
    /// assert_eq!(left[0].to_string(), "1 item(s) of type todo v1, not registered by this program");
    /// # store.close().await;
    /// # Ok::<_, mantle_store::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn unregistered(&self) -> &[Unregistered] {
        &self.inner.unknown.types
    }

    /// Runs `f` as one transaction on the store's writer, off the async
    /// runtime. If `f` returns `Ok` the transaction commits before this
    /// returns; if it returns `Err` or panics, nothing it did is kept (a
    /// panic comes back as [`Error::Panicked`]) and the store stays usable.
    ///
    /// Transactions of one store run one at a time in the order submitted.
    /// When the store's queue is full, this waits for room. If the returned
    /// future is dropped after submitting, the transaction still runs.
    pub async fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(TransactJob {
            body: Some(f),
            result: None,
            reply,
        });
        self.inner.writer.submit(job).await.map_err(E::from)?;
        let outcome = match answer.await {
            Ok(r) => r,
            Err(_) => Err(E::from(Error::Closed(self.inner.path.clone()))),
        };
        // In a synchronous replication mode a commit is acknowledged only
        // once it is replicated.
        if outcome.is_ok()
            && let Some(replicated) = self.inner.writer.acknowledged()
        {
            replicated.await;
        }
        outcome
    }

    /// Runs a short read right here, on the calling thread, against a
    /// consistent snapshot: for a few indexed lookups (a token, a slate),
    /// where handing the work to another thread costs more than the read.
    /// It blocks the caller for its duration, so anything that scans or may
    /// take long belongs in [`read`](Store::read).
    pub fn read_now<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        if self.inner.writer.is_closed() {
            return Err(E::from(Error::Closed(self.inner.path.clone())));
        }
        self.inner.read_blocking(f)
    }

    /// Runs `f` against a consistent snapshot on a reader connection, off
    /// the async runtime, concurrently with the writer and other readers.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        if self.inner.writer.is_closed() {
            return Err(E::from(Error::Closed(self.inner.path.clone())));
        }
        // On a multi-threaded runtime a short read runs right here, with the
        // runtime moving other tasks off this thread (tens of microseconds
        // cheaper than a hop to the blocking pool); elsewhere it hops.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            return tokio::task::block_in_place(|| self.inner.read_blocking(f));
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_blocking(f))
            .await
            .map_err(|e| E::from(Error::Panicked(e.to_string())))?
    }

    /// Waits for queued transactions, stops background tasks and closes the
    /// file. Other handles then get [`Error::Closed`].
    pub async fn close(&self) {
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        // Wait until they have really ended: one may be mid-poll on another
        // thread (inside a read), and must not wake up later, for instance
        // while the runtime itself is shutting down.
        for t in tasks {
            let _ = t.await;
        }
        // Readers first, so that the writer's connection closes last and
        // empties and removes the log.
        self.inner.readers.lock().clear();
        self.inner.writer.close().await;
        self.inner.readers.lock().clear();
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<StoreInner> {
        Arc::downgrade(&self.inner)
    }
}

impl StoreInner {
    fn read_blocking<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader().map_err(E::from)?,
        };
        let result = (|| {
            // Cached: `execute_batch` would parse these on every read.
            conn.prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]))
                .map_err(|e| E::from(e.into()))?;
            let r = catch_unwind(AssertUnwindSafe(|| {
                f(&ReadTx {
                    conn: &conn,
                    registry: &self.config.registry,
                })
            }));
            let end = conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]));
            let r = match r {
                Ok(r) => r,
                Err(panic) => Err(E::from(Error::Panicked(panic_message(&panic)))),
            };
            end.map_err(|e| E::from(e.into()))?;
            r
        })();
        if conn.is_autocommit() {
            let mut readers = self.readers.lock();
            if readers.len() < self.config.max_idle_readers && !self.writer.is_closed() {
                readers.push(conn);
            }
        }
        result
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        no_lookaside(&conn);
        configure(&conn, &self.config)?;
        Ok(conn)
    }
}
