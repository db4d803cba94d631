//! The writer stage: each store's transactions run one at a time, in order,
//! on a bounded pool of OS threads shared by all stores.
//!
//! A store's [`Writer`] owns its write connection and a queue of jobs. The
//! queue is bounded by a semaphore: `submit` waits for a slot, so a flood of
//! transactions waits in async tasks instead of growing memory. When a job is
//! queued on an idle writer, the writer itself is handed to the pool; a pool
//! thread then runs that writer's jobs (up to a fairness budget) before
//! moving on to another writer. Invariant: a writer is in the pool's channel
//! or being run by at most one thread at a time (`scheduled`), so its jobs
//! never run concurrently or out of order.
//!
//! **Group commit.** A turn takes every job waiting (up to [`GROUP_MAX`])
//! and runs them in one SQLite transaction, each in its own savepoint: a
//! job that fails or panics rolls back to its savepoint, undoing only its
//! own work. One COMMIT (one fsync) then covers the group, and only after
//! it does any job learn its outcome, so nothing is acknowledged before it
//! is durable. Jobs still run one at a time, in order, each seeing the
//! writes of those before it: the same result as committing each alone.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use std::panic::{AssertUnwindSafe, catch_unwind};

use parking_lot::Mutex;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::fence::Fence;
use crate::registry::Registry;
use crate::replica::{Following, Replica};
use crate::stats::{GroupTiming, StoreStats};
use crate::store::StoreConfig;
use crate::tx::Tx;
use crate::unregistered::Unknown;
use crate::{Error, Result};

/// A transaction waiting for the writer.
pub(crate) trait TxJob: Send {
    /// Runs the transaction's body; `true` keeps its work.
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Records a failure from outside the body (a panic).
    fn fail(&mut self, error: Error);
    /// Reports the outcome once the group's commit is decided.
    fn finish(self: Box<Self>, commit: Result<(), &Error>);
}

pub(crate) type Job = Box<dyn TxJob>;

/// Most transactions committed together (also a thread's turn on one
/// writer before others get theirs).
pub(crate) const GROUP_MAX: usize = 64;

/// A bounded pool of OS threads that run the writers of many stores.
///
/// ```
/// let pool = mantle_store::WriterPool::new(2);
/// assert_eq!(pool.threads(), 2);
/// ```
#[derive(Clone)]
pub struct WriterPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    ready: crossbeam_channel::Sender<Arc<Writer>>,
    threads: usize,
}

impl std::fmt::Debug for WriterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterPool")
            .field("threads", &self.inner.threads)
            .finish()
    }
}

impl WriterPool {
    /// A pool of `threads` writer threads (at least one). The threads end
    /// when the pool and every store using it are gone.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = crossbeam_channel::unbounded::<Arc<Writer>>();
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("mantle-writer-{i}"))
                .spawn(move || {
                    for writer in rx {
                        writer.run_turn();
                    }
                })
                .expect("cannot start a writer thread");
        }
        Self {
            inner: Arc::new(PoolInner { ready: tx, threads }),
        }
    }

    /// How many threads the pool runs.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }
}

struct Queue {
    /// Jobs with the queue slot each holds until it is finished.
    jobs: VecDeque<(Job, OwnedSemaphorePermit)>,
    scheduled: bool,
}

/// One store's write connection and job queue.
pub(crate) struct Writer {
    // Field order matters: the connection closes before the lock file is
    // released, so no other opener can see a half-closed store.
    conn: Mutex<Option<Connection>>,
    registry: Arc<Registry>,
    unknown: Arc<Unknown>,
    outbox_wake: Arc<Notify>,
    schedule_wake: Arc<Notify>,
    queue: Mutex<Queue>,
    slots: Arc<Semaphore>,
    depth: usize,
    pool: WriterPool,
    path: PathBuf,
    /// The writer lock (see `store::take_lock`); released after the
    /// connection closes.
    lock: Mutex<Option<File>>,
    stats: Option<Arc<StoreStats>>,
    /// The store's replica and where in the log it has been told of
    /// (locked while `conn` is held, after it).
    following: Mutex<Option<Following>>,
    replica: Option<Arc<dyn Replica>>,
    /// Asked before and after every commit (see `crate::fence`).
    fence: Option<Arc<dyn Fence>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A store dropped without `close` closes here.
        if let Some(conn) = self.conn.get_mut().take() {
            if let Some(s) = &self.stats {
                s.store_closed();
            }
            drop(conn);
            if let Some(r) = &self.replica {
                r.closed(&self.path);
            }
        }
    }
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        lock: File,
        path: PathBuf,
        config: &StoreConfig,
        unknown: Arc<Unknown>,
        wakes: (Arc<Notify>, Arc<Notify>),
        following: Option<Following>,
    ) -> Arc<Self> {
        let depth = config.queue_depth.max(1);
        if let Some(s) = &config.stats {
            s.store_opened();
        }
        Arc::new(Self {
            conn: Mutex::new(Some(conn)),
            registry: config.registry.clone(),
            unknown,
            outbox_wake: wakes.0,
            schedule_wake: wakes.1,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                scheduled: false,
            }),
            slots: Arc::new(Semaphore::new(depth)),
            depth,
            pool: config.pool.clone(),
            path,
            lock: Mutex::new(Some(lock)),
            stats: config.stats.clone(),
            replica: following.as_ref().map(|f| f.replica.clone()),
            following: Mutex::new(following),
            fence: config.fence.clone(),
        })
    }

    /// What an acknowledgement of a commit waits for (see
    /// [`Replica::acknowledged`]).
    pub(crate) fn acknowledged(&self) -> Option<crate::replica::ReplicaFuture> {
        self.replica.as_ref()?.acknowledged()
    }

    /// Queues a job, waiting for a free slot while the queue is full.
    pub(crate) async fn submit(self: &Arc<Self>, job: Job) -> Result<()> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed(self.path.clone()))?;
        let schedule = {
            let mut q = self.queue.lock();
            q.jobs.push_back((job, permit));
            !std::mem::replace(&mut q.scheduled, true)
        };
        if schedule {
            self.hand_to_pool();
        }
        Ok(())
    }

    fn hand_to_pool(self: &Arc<Self>) {
        // The channel is unbounded and its receivers live as long as any
        // sender (this writer holds one through `pool`), so this cannot fail.
        let _ = self.pool.inner.ready.send(self.clone());
    }

    /// Runs one group of queued jobs (called on a pool thread).
    fn run_turn(self: Arc<Self>) {
        let mut guard = self.conn.lock();
        let batch: Vec<(Job, OwnedSemaphorePermit)> = {
            let mut q = self.queue.lock();
            let n = q.jobs.len().min(GROUP_MAX);
            if n == 0 {
                q.scheduled = false;
                return;
            }
            q.jobs.drain(..n).collect()
        };
        let (jobs, permits): (Vec<Job>, Vec<OwnedSemaphorePermit>) = batch.into_iter().unzip();
        match guard.as_mut() {
            Some(conn) => {
                let mut timing = self
                    .stats
                    .as_ref()
                    .filter(|s| s.timing())
                    .map(|_| GroupTiming::default());
                let fence = self.fence.as_deref().map(|f| (f, self.path.as_path()));
                let (mut commit, jobs, flags) = run_group(
                    conn,
                    &self.registry,
                    &self.unknown,
                    jobs,
                    fence,
                    timing.as_mut(),
                );
                if commit.is_ok()
                    && let Some(f) = self.following.lock().as_mut()
                {
                    // Before anyone learns of the commit, and before the
                    // next write may restart the log.
                    f.committed();
                }
                // Asked again after the commit: a node paused between the
                // first question and the fsync (past its lease, say) must
                // not acknowledge what it wrote.
                if commit.is_ok()
                    && let Some((fence, path)) = fence
                    && let Err(why) = fence.check(path)
                {
                    commit = Err(Error::Fenced {
                        store: self.path.clone(),
                        why,
                    });
                }
                for job in jobs {
                    job.finish(commit.as_ref().map(|_| ()));
                }
                // After the answers, so statistics never delay them.
                if let (Some(s), Some(t)) = (&self.stats, &timing) {
                    s.group_done(&self.path, t, commit.is_ok());
                }
                if commit.is_ok() {
                    if flags.effects {
                        self.outbox_wake.notify_one();
                    }
                    if flags.schedule {
                        self.schedule_wake.notify_one();
                    }
                }
            }
            None => {
                let closed = Error::Closed(self.path.clone());
                for job in jobs {
                    job.finish(Err(&closed));
                }
            }
        }
        let more = {
            let mut q = self.queue.lock();
            if q.jobs.is_empty() {
                q.scheduled = false;
                false
            } else {
                true
            }
        };
        if !more && let Some(conn) = guard.as_ref() {
            // Idle: give the page cache back. A process with many open
            // stores would otherwise keep every one's pages; re-reading
            // them from the OS cache costs little next to a commit.
            let _ = conn.release_memory();
        }
        drop(guard);
        drop(permits);
        if more {
            self.hand_to_pool();
        }
    }

    /// Waits for queued work to finish, refuses new work, and closes the
    /// connection (checkpointing the WAL).
    pub(crate) async fn close(&self) {
        if let Ok(all) = self.slots.acquire_many(self.depth as u32).await {
            all.forget();
        }
        self.slots.close();
        if let Some(r) = &self.replica {
            // Before the connection closes: it must be the last one open
            // (not a snapshot being copied) to empty and remove the log.
            r.closing().await;
        }
        let conn = self.conn.lock().take();
        if let Some(conn) = conn {
            if let Some(s) = &self.stats {
                s.store_closed();
            }
            let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
            if let Some(r) = &self.replica {
                r.closed(&self.path);
            }
        }
        // Only now may another writer open the file.
        self.lock.lock().take();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }
}

/// What committed transactions asked the background tasks to do.
#[derive(Default)]
struct Wakes {
    effects: bool,
    schedule: bool,
}

/// Runs `jobs` in one transaction, each in its own savepoint when there
/// are several; commits if any succeeded. Returns the commit's result.
/// With `timing`, measures each job's body and the commit.
fn run_group(
    conn: &mut Connection,
    registry: &Registry,
    unknown: &Unknown,
    mut jobs: Vec<Job>,
    fence: Option<(&dyn Fence, &Path)>,
    mut timing: Option<&mut GroupTiming>,
) -> (Result<()>, Vec<Job>, Wakes) {
    let mut wakes = Wakes::default();
    let txn = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(t) => t,
        Err(e) => return (Err(e.into()), jobs, wakes),
    };
    let grouped = jobs.len() > 1;
    let mut kept = 0;
    let mut undone = false;
    for job in &mut jobs {
        if grouped && let Err(e) = txn.execute_batch("SAVEPOINT mantle_job") {
            return (Err(e.into()), jobs, wakes);
        }
        let mut tx = Tx::new(&txn, registry, unknown);
        let started = timing.is_some().then(Instant::now);
        let ok = match catch_unwind(AssertUnwindSafe(|| job.run(&mut tx))) {
            Ok(ok) => ok,
            Err(panic) => {
                job.fail(Error::Panicked(panic_message(&panic)));
                false
            }
        };
        if ok {
            kept += 1;
            wakes.effects |= tx.recorded_effects;
            wakes.schedule |= tx.schedule_changed;
        } else {
            undone = true;
        }
        if let (Some(t), Some(started)) = (timing.as_deref_mut(), started) {
            t.jobs.push((started.elapsed(), ok));
            if ok {
                t.effects += u64::from(tx.effects);
            }
        }
        let end = match (grouped, ok) {
            (false, _) => Ok(()),
            (true, true) => txn.execute_batch("RELEASE mantle_job"),
            (true, false) => txn.execute_batch("ROLLBACK TO mantle_job; RELEASE mantle_job"),
        };
        if let Err(e) = end {
            return (Err(e.into()), jobs, wakes);
        }
    }
    let committing = timing.is_some().then(Instant::now);
    let refused = match fence {
        Some((fence, path)) if kept > 0 => fence.check(path).err().map(|why| Error::Fenced {
            store: path.to_path_buf(),
            why,
        }),
        _ => None,
    };
    let commit = if let Some(refused) = refused {
        let _ = txn.rollback();
        undone = true;
        Err(refused)
    } else if kept > 0 {
        txn.commit().map_err(Error::from)
    } else {
        let _ = txn.rollback();
        Ok(())
    };
    if let (Some(t), Some(started)) = (timing, committing) {
        t.commit = started.elapsed();
    }
    if undone {
        // Tables created by undone work are gone again; statements cached
        // on them would fail with "no such table".
        conn.flush_prepared_statement_cache();
    }
    (commit, jobs, wakes)
}

/// The text of a caught panic, for the error that reports it.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A `transact` call waiting for the writer.
pub(crate) struct TransactJob<F, R, E> {
    pub(crate) body: Option<F>,
    pub(crate) result: Option<Result<R, E>>,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<R, E>>,
}

impl<F, R, E> TxJob for TransactJob<F, R, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send,
    R: Send,
    E: From<Error> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(body) = self.body.take() else {
            return false;
        };
        let r = body(tx);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn fail(&mut self, error: Error) {
        self.result = Some(Err(E::from(error)));
    }

    fn finish(self: Box<Self>, commit: Result<(), &Error>) {
        let outcome = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(Error::Fenced { store, why })) => Err(E::from(Error::Fenced {
                store: store.clone(),
                why: why.clone(),
            })),
            (_, Err(e)) => Err(E::from(Error::CommitFailed(e.to_string()))),
            (None, Ok(())) => Err(E::from(Error::CommitFailed(
                "transaction did not run".into(),
            ))),
        };
        // The caller may have stopped waiting; the outcome stands anyway.
        let _ = self.reply.send(outcome);
    }
}
