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

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// Work for a writer: runs with exclusive use of the write connection.
pub(crate) type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Jobs a thread runs for one writer before letting others have a turn.
const FAIRNESS_BUDGET: usize = 64;

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
    jobs: VecDeque<Job>,
    scheduled: bool,
}

/// One store's write connection and job queue.
pub(crate) struct Writer {
    // Field order matters: the connection closes before the lock file is
    // released, so no other opener can see a half-closed store.
    conn: Mutex<Option<Connection>>,
    queue: Mutex<Queue>,
    slots: Arc<Semaphore>,
    depth: usize,
    pool: WriterPool,
    path: PathBuf,
    /// The writer lock (see `store::take_lock`); released after the
    /// connection closes.
    lock: Mutex<Option<File>>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        lock: File,
        path: PathBuf,
        pool: WriterPool,
        depth: usize,
    ) -> Arc<Self> {
        let depth = depth.max(1);
        Arc::new(Self {
            conn: Mutex::new(Some(conn)),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                scheduled: false,
            }),
            slots: Arc::new(Semaphore::new(depth)),
            depth,
            pool,
            path,
            lock: Mutex::new(Some(lock)),
        })
    }

    /// Queues a job, waiting for a free slot while the queue is full.
    pub(crate) async fn submit(self: &Arc<Self>, job: Job) -> Result<()> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed(self.path.clone()))?;
        let job: Job = Box::new(move |conn| {
            job(conn);
            drop(permit);
        });
        let schedule = {
            let mut q = self.queue.lock();
            q.jobs.push_back(job);
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

    /// Runs queued jobs (called on a pool thread).
    fn run_turn(self: Arc<Self>) {
        let mut guard = self.conn.lock();
        for _ in 0..FAIRNESS_BUDGET {
            let job = {
                let mut q = self.queue.lock();
                match q.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        q.scheduled = false;
                        return;
                    }
                }
            };
            match guard.as_mut() {
                Some(conn) => job(conn),
                // Closed: dropping the job drops its reply channel, which
                // the waiting caller reports as `Error::Closed`.
                None => drop(job),
            }
        }
        drop(guard);
        let more = {
            let mut q = self.queue.lock();
            if q.jobs.is_empty() {
                q.scheduled = false;
                false
            } else {
                true
            }
        };
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
        let conn = self.conn.lock().take();
        if let Some(conn) = conn {
            let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
        }
        // Only now may another writer open the file.
        self.lock.lock().take();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }
}
