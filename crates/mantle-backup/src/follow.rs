//! One store's continuous backup: its commits gathered into log segments
//! and shipped in order, its snapshots copied and shipped in parts.
//!
//! The writer thread only appends each commit's record to the open batch
//! ([`Replica::commit`]: its pages as what changed, see `segment`); a task
//! per store seals batches into segments (encrypting them, and
//! compressing them where that pays: see [`PackingChoice`]) and
//! uploads them one at a time, in order, retrying with back-off. While the
//! target refuses, sealed segments wait in memory up to a bound, then in
//! the spool directory; the site's commits never wait for them (except in
//! the synchronous mode, whose acknowledgements do).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mantle_store::{Commit, Replica, ReplicaFuture, SnapshotView};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::backup::Shared;
use crate::config::Mode;
use crate::seal::{self, Packing};
use crate::segment::{PageCache, Segment};
use crate::{continuity, names, retention};

/// A segment is sealed early once its commits reach this size.
const SEGMENT_MAX: usize = 16 << 20;
/// Sealed segments kept in memory per store while the target refuses;
/// more go to the spool directory.
const QUEUE_MEMORY: usize = 8 << 20;
/// How long a closing store waits for its uploader to spool what it
/// holds.
const SPILL_PATIENCE: Duration = Duration::from_secs(10);
/// How long a segment is taken to take from due to stored until one has
/// been stored (see `State::ship_time`).
const FIRST_SHIP_GUESS: Duration = Duration::from_millis(50);
/// Snapshot parts: the most of a snapshot held in memory at once.
pub(crate) const SNAPSHOT_PART: usize = 8 << 20;

/// Commits gathered for one segment.
#[derive(Default)]
struct Batch {
    generation: String,
    first: Option<(u64, u64, Instant)>,
    last: (u64, u64),
    /// The commits' records, written as the writer hands them over.
    segment: Segment,
    /// The count of commits passed through this batch's last.
    upto: u64,
    /// When it fell due (set as it is taken to be sealed).
    due: Option<Instant>,
}

struct State {
    generation: String,
    next_seq: u64,
    last_time_us: u64,
    open: Batch,
    /// Batches of earlier generations, to seal before the open one.
    closed: VecDeque<Batch>,
    /// Commits passed when the generation began (all in its snapshot).
    generation_start: u64,
    /// Commits whose segments are stored.
    shipped: u64,
    base_stored: bool,
    snapshot_wanted: bool,
    snapshot_running: bool,
    last_snapshot: Instant,
    logged_since_snapshot: u64,
    ending: bool,
    /// The store closed while the target refused: spool the rest.
    spill: bool,
    /// How long a segment has lately taken from falling due to being
    /// stored (the longest of the last dozen or so, decaying): waiting for a
    /// thread to seal it on a busy machine, sealing, storing. In the lag
    /// mode a batch falls due that much twice over before its first
    /// commit's lag is up (see [`seal_margin`]), so that it is stored
    /// within the lag.
    ship_time: Duration,
    /// Bytes sealed or gathered and not yet stored, and since when.
    backlog_bytes: u64,
    oldest_unshipped: Option<Instant>,
    last_error: Option<String>,
    /// The last version of pages logged, to log the next as what changed
    /// (used on the writer thread, as commits are handed over).
    cache: PageCache,
    /// A sealed batch's buffer to write the next batch's contents in, and
    /// a stored segment's buffer to seal the next in.
    spare_contents: Vec<u8>,
    spare_sealed: Vec<u8>,
    /// Whether the next segment is compressed.
    packing: PackingChoice,
}

/// Chooses how a store's segments are packed. Compaction merges small
/// segments and compresses what it merges, so compressing them when they
/// are sealed as well is work done twice, on the site's busy cores, for
/// bytes kept an hour at most. It is done when it at least halves them
/// (small transactions' records: about a fourth), not when it saves less
/// (`messages_one_way`'s: about a third): every
/// [`PROBE_EVERY`](PackingChoice::PROBE_EVERY)th segment is compressed to
/// see, the first among them. A segment too big for compaction to merge
/// is always compressed.
#[derive(Debug)]
struct PackingChoice {
    /// The last compressed segment was at most half its plain size.
    pays: bool,
    /// Segments sealed plain since the last compressed one.
    plain_since: u32,
}

impl Default for PackingChoice {
    /// The first segment is compressed, to see.
    fn default() -> Self {
        PackingChoice {
            pays: false,
            plain_since: Self::PROBE_EVERY - 1,
        }
    }
}

impl PackingChoice {
    const PROBE_EVERY: u32 = 16;

    /// How to pack a segment of `plain_len` bytes sealed plain.
    fn next(&self, plain_len: usize) -> Packing {
        if self.pays
            || self.plain_since + 1 >= Self::PROBE_EVERY
            || !retention::merged_later(plain_len as u64)
        {
            Packing::Compressed
        } else {
            Packing::Plain
        }
    }

    /// Notes a segment sealed as `packing`, `sealed_len` bytes (of
    /// `plain_len` plain).
    fn sealed(&mut self, packing: Packing, plain_len: usize, sealed_len: usize) {
        match packing {
            Packing::Compressed => {
                self.pays = sealed_len * 2 <= plain_len;
                self.plain_since = 0;
            }
            Packing::Plain => self.plain_since += 1,
        }
    }
}

/// What `status` reports of one store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    /// The store's path in the site.
    pub store: String,
    /// Its current generation.
    pub generation: String,
    /// Its last commit numbered in that generation.
    pub last_seq: u64,
    /// Whether the generation's first snapshot is stored.
    pub snapshot_stored: bool,
    /// Bytes waiting to be stored.
    pub backlog_bytes: u64,
    /// How long the oldest commit not stored has waited, in seconds.
    pub lag_seconds: f64,
    /// The last failure, if the target is refusing.
    pub last_error: Option<String>,
}

/// A sealed segment waiting for upload.
struct Sealed {
    name: String,
    body: Body,
    upto: u64,
    /// Sealed bytes.
    len: u64,
    /// The commits' bytes as gathered (what the backlog counts).
    plain: u64,
    /// How long it took from falling due to sealed.
    since_due: Duration,
    /// When its first commit was passed.
    first: Instant,
}

enum Body {
    Memory(bytes::Bytes),
    Spooled(PathBuf),
}

/// One store's replica.
pub(crate) struct StoreBackup {
    shared: Arc<Shared>,
    store: String,
    state: Mutex<State>,
    wake: Notify,
    passed: AtomicU64,
    replicated: watch::Sender<u64>,
    /// Told when everything passed is stored (or the task gives up).
    settled: Notify,
    /// Asks the uploader to spool what it holds and end.
    spill_now: Notify,
    /// Set when the uploader has ended.
    finished: watch::Sender<bool>,
    me: std::sync::Weak<StoreBackup>,
}

impl StoreBackup {
    /// Starts following `store`: going on with `generation` after `seq`,
    /// or (`None`) a new generation from a snapshot.
    pub(crate) fn start(
        shared: Arc<Shared>,
        store: String,
        resume: Option<(String, u64)>,
    ) -> Arc<Self> {
        let fresh = resume.is_none();
        let (generation, seq) = resume.unwrap_or_else(|| (names::new_generation(), 0));
        let now = Instant::now();
        let this = Arc::new_cyclic(|me| StoreBackup {
            me: me.clone(),
            shared: shared.clone(),
            store,
            state: Mutex::new(State {
                generation,
                next_seq: seq + 1,
                last_time_us: 0,
                open: Batch::default(),
                closed: VecDeque::new(),
                generation_start: 0,
                shipped: 0,
                base_stored: !fresh,
                snapshot_wanted: fresh,
                snapshot_running: false,
                last_snapshot: now,
                logged_since_snapshot: 0,
                ending: false,
                spill: false,
                ship_time: FIRST_SHIP_GUESS,
                backlog_bytes: 0,
                oldest_unshipped: None,
                last_error: None,
                cache: PageCache::default(),
                spare_contents: Vec::new(),
                spare_sealed: Vec::new(),
                packing: PackingChoice::default(),
            }),
            wake: Notify::new(),
            passed: AtomicU64::new(0),
            replicated: watch::Sender::new(0),
            settled: Notify::new(),
            spill_now: Notify::new(),
            finished: watch::Sender::new(false),
        });
        if fresh {
            shared.stats.generations.inc();
        }
        shared.handle.spawn(this.clone().ship());
        this
    }

    pub(crate) fn status(&self) -> StoreStatus {
        let st = self.state.lock();
        StoreStatus {
            store: self.store.clone(),
            generation: st.generation.clone(),
            last_seq: st.next_seq - 1,
            snapshot_stored: st.base_stored,
            backlog_bytes: st.backlog_bytes,
            lag_seconds: st
                .oldest_unshipped
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            last_error: st.last_error.clone(),
        }
    }

    /// Everything passed is stored, with the generation's snapshot.
    fn caught_up(&self, st: &State) -> bool {
        st.base_stored
            && !st.snapshot_running
            && st.shipped == self.passed.load(Ordering::Acquire)
            && st.open.first.is_none()
            && st.closed.is_empty()
    }

    /// Tells waiting acknowledgements how far commits are safe.
    fn publish(&self, st: &State) {
        let safe = if st.base_stored {
            st.shipped
        } else {
            st.shipped.min(st.generation_start)
        };
        self.replicated.send_if_modified(|v| {
            let moved = safe > *v;
            *v = (*v).max(safe);
            moved
        });
        if self.caught_up(st) {
            self.settled.notify_waiters();
        }
    }

    /// The uploader: seals due batches and ships them in order, until the
    /// store has ended and everything is stored (or spooled).
    async fn ship(self: Arc<Self>) {
        let mut queue: VecDeque<Sealed> = VecDeque::new();
        let mut queued_memory = 0usize;
        let mut backoff = Duration::from_millis(100);
        loop {
            // Seal what is due.
            let (batches, due, ending) = self.take_due();
            if !batches.is_empty() {
                // Encrypting a second of commits (and compressing a big
                // one) takes milliseconds: off the async workers, which
                // serve the site's requests.
                let this = self.clone();
                let sealed = tokio::task::spawn_blocking(move || {
                    batches
                        .into_iter()
                        .map(|b| this.seal(b))
                        .collect::<Vec<_>>()
                })
                .await
                .expect("sealing does not panic");
                for s in sealed {
                    queued_memory += s.len as usize;
                    queue.push_back(s);
                }
            }
            if self.state.lock().spill {
                // The store has closed and the target still refuses:
                // leave the rest to the spool.
                self.spill(&mut queue, true);
                break;
            }
            if queued_memory > QUEUE_MEMORY {
                queued_memory = self.spill(&mut queue, false);
            }
            // Ship the oldest.
            if let Some(front) = queue.front() {
                let started = Instant::now();
                let outcome = tokio::select! {
                    r = self.upload(front) => Some(r),
                    _ = self.spill_now.notified() => None,
                };
                match outcome {
                    None => continue,
                    Some(Ok(())) => {
                        let done = queue.pop_front().expect("front exists");
                        let took = done.since_due + started.elapsed();
                        if let Body::Memory(_) = done.body {
                            queued_memory -= done.len as usize;
                        }
                        backoff = Duration::from_millis(100);
                        let mut st = self.state.lock();
                        // Its buffer seals the next (unless the target
                        // still holds on to it).
                        if let Body::Memory(bytes) = done.body
                            && let Ok(buffer) = bytes.try_into_mut()
                        {
                            keep_spare(&mut st.spare_sealed, buffer.into());
                        }
                        st.ship_time = took.max(st.ship_time * 7 / 8);
                        st.shipped = st.shipped.max(done.upto);
                        st.backlog_bytes = st.backlog_bytes.saturating_sub(done.plain);
                        // The lag is the oldest commit still waiting's.
                        st.oldest_unshipped = queue
                            .front()
                            .map(|s| s.first)
                            .or_else(|| st.closed.front().and_then(|b| b.first.map(|f| f.2)))
                            .or_else(|| st.open.first.map(|f| f.2));
                        st.last_error = None;
                        self.publish(&st);
                    }
                    Some(Err(e)) => {
                        self.state.lock().last_error = Some(e.to_string());
                        tokio::select! {
                            _ = tokio::time::sleep(backoff.min(self.shared.retry_max())) => {}
                            _ = self.spill_now.notified() => {}
                        }
                        backoff = (backoff * 2).min(self.shared.retry_max());
                    }
                }
                continue;
            }
            if ending {
                let (drained, snapshotting) = {
                    let st = self.state.lock();
                    (
                        st.open.first.is_none() && st.closed.is_empty(),
                        st.snapshot_running,
                    )
                };
                if drained && !snapshotting {
                    break;
                }
                if drained {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = self.spill_now.notified() => {}
                    }
                    continue;
                }
            }
            let until = due.map(tokio::time::Instant::from);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.spill_now.notified() => {}
                _ = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        self.finished.send_replace(true);
        self.settled.notify_waiters();
    }

    /// Batches to seal now, when the open one is next due, and whether the
    /// store has ended.
    fn take_due(&self) -> (Vec<Batch>, Option<Instant>, bool) {
        let mut st = self.state.lock();
        let mut out: Vec<Batch> = st.closed.drain(..).collect();
        let mut due = None;
        if let Some((_, _, since)) = st.open.first {
            let at = match self.shared.mode {
                Mode::Synchronous => since,
                // Sealed early enough to be stored within the lag.
                Mode::Lag(lag) => since + lag - seal_margin(st.ship_time, lag),
            };
            let now = Instant::now();
            if st.ending || at <= now || st.open.segment.len() >= SEGMENT_MAX {
                let generation = st.generation.clone();
                let mut open = std::mem::take(&mut st.open);
                open.due = Some(at.min(now));
                st.open.generation = generation;
                out.push(open);
            } else {
                due = Some(at);
            }
        }
        (out, due, st.ending)
    }

    fn seal(&self, b: Batch) -> Sealed {
        let due = b.due.unwrap_or_else(Instant::now);
        let (first_seq, first_us, first) = b.first.expect("a sealed batch has commits");
        let name = names::log(
            &self.store,
            &b.generation,
            first_seq,
            b.last.0,
            first_us,
            b.last.1,
        );
        let name = crate::canonical(&name);
        let contents = b.segment.into_contents();
        let plain = contents.len() as u64;
        let plain_len = seal::plain_sealed_len(contents.len());
        let (mut body, packing) = {
            let mut st = self.state.lock();
            let packing = st.packing.next(plain_len);
            (std::mem::take(&mut st.spare_sealed), packing)
        };
        self.shared
            .keys
            .seal_into(&name, &contents, packing, &mut body);
        let mut st = self.state.lock();
        st.packing.sealed(packing, plain_len, body.len());
        keep_spare(&mut st.spare_contents, contents);
        drop(st);
        Sealed {
            len: body.len() as u64,
            plain,
            name,
            body: Body::Memory(body.into()),
            upto: b.upto,
            since_due: due.elapsed(),
            first,
        }
    }

    /// Moves queued segments from memory to the spool (all of them when
    /// `all`, else all but the oldest); returns the bytes left in memory.
    fn spill(&self, queue: &mut VecDeque<Sealed>, all: bool) -> usize {
        let mut kept = 0;
        for (i, s) in queue.iter_mut().enumerate() {
            if let Body::Memory(bytes) = &s.body {
                if i == 0 && !all {
                    kept += bytes.len();
                    continue;
                }
                match self.shared.spool_write(&s.name, bytes) {
                    Ok(path) => s.body = Body::Spooled(path),
                    Err(e) => {
                        tracing::warn!(store = %self.store, "cannot spool a backup segment: {e}");
                        kept += bytes.len();
                    }
                }
            }
        }
        kept
    }

    async fn upload(&self, s: &Sealed) -> crate::Result<()> {
        let bytes = match &s.body {
            Body::Memory(b) => b.clone(),
            Body::Spooled(path) => crate::backup::read_spooled(path)?.1.into(),
        };
        let put = self.shared.target.put(&s.name, bytes).await;
        self.shared.count_put(&put, s.len);
        put?;
        if let Body::Spooled(path) = &s.body {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Copies and ships the snapshot `view` is of (taken after commit
    /// `seq` of `generation`).
    async fn snapshot_task(
        self: Arc<Self>,
        view: SnapshotView,
        generation: String,
        seq: u64,
        time_us: u64,
    ) {
        let result = self
            .clone()
            .store_snapshot(view, &generation, seq, time_us)
            .await;
        let mut st = self.state.lock();
        st.snapshot_running = false;
        match result {
            Ok(bytes) => {
                self.shared.stats.snapshots.inc();
                self.shared.stats.snapshot_bytes.add(bytes);
                if st.generation == generation {
                    st.base_stored = true;
                    st.last_snapshot = Instant::now();
                }
                self.publish(&st);
            }
            Err(e) => {
                tracing::warn!(store = %self.store, "snapshot failed: {e}");
                st.last_error = Some(e.to_string());
                if st.generation == generation && !st.base_stored {
                    st.snapshot_wanted = true;
                }
                if st.ending {
                    self.settled.notify_waiters();
                }
            }
        }
    }

    async fn store_snapshot(
        self: Arc<Self>,
        view: SnapshotView,
        generation: &str,
        seq: u64,
        time_us: u64,
    ) -> crate::Result<u64> {
        let copy = self.shared.spool_path("snapshot");
        let c = copy.clone();
        let copied = tokio::task::spawn_blocking(move || view.copy_to(&c))
            .await
            .map_err(|e| crate::BackupError::Config(format!("snapshot copy panicked: {e}")))?;
        let cleanup = RemoveOnDrop(copy.clone());
        copied?;
        let len = std::fs::metadata(&copy)
            .map_err(|e| crate::BackupError::io(&copy, e))?
            .len();
        let parts = len.div_ceil(SNAPSHOT_PART as u64).max(1) as u32;
        let file = std::fs::File::open(&copy).map_err(|e| crate::BackupError::io(&copy, e))?;
        for part in 0..parts {
            let at = u64::from(part) * SNAPSHOT_PART as u64;
            let n = (len - at).min(SNAPSHOT_PART as u64) as usize;
            let mut buf = vec![0u8; n];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, at)
                .map_err(|e| crate::BackupError::io(&copy, e))?;
            let name = crate::canonical(&names::snapshot(
                &self.store,
                generation,
                seq,
                time_us,
                part,
                parts,
            ));
            let sealed = bytes::Bytes::from(self.shared.keys.seal(&name, &buf));
            let size = sealed.len() as u64;
            let mut backoff = Duration::from_millis(100);
            loop {
                let put = self.shared.target.put(&name, sealed.clone()).await;
                self.shared.count_put(&put, size);
                match put {
                    Ok(()) => break,
                    Err(e) => {
                        self.state.lock().last_error = Some(e.to_string());
                        if self.shared.is_shut_down() {
                            return Err(e);
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.shared.retry_max());
                    }
                }
            }
        }
        drop(cleanup);
        Ok(len)
    }

    /// Waits (at most `patience`) until everything is stored.
    async fn settle(&self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let waiter = self.settled.notified();
            tokio::pin!(waiter);
            waiter.as_mut().enable();
            if self.caught_up(&self.state.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, waiter).await.is_err() {
                return self.caught_up(&self.state.lock());
            }
        }
    }

    fn end(&self) {
        self.state.lock().ending = true;
        self.wake.notify_one();
    }

    /// The generation and last commit, for the continuity record.
    fn position(&self) -> (String, u64) {
        let st = self.state.lock();
        (st.generation.clone(), st.next_seq - 1)
    }
}

/// How long before a batch's first commit has waited out the `lag` the
/// batch falls due: twice what segments lately took from due to stored,
/// and at least a fifth of the lag, at most half. The floor is for what
/// `ship_time` has not seen yet: a busy machine's stores tend to fall due
/// together (their first commits follow the same burst) and then wait
/// for each other's sealing.
fn seal_margin(ship_time: Duration, lag: Duration) -> Duration {
    (ship_time * 2).max(lag / 5).min(lag / 2)
}

/// Keeps `buffer` in `spare` for the next segment, unless the load has
/// fallen (a small segment in a big buffer: then it is freed).
fn keep_spare(spare: &mut Vec<u8>, buffer: Vec<u8>) {
    if buffer.len() >= buffer.capacity() / 4 && buffer.capacity() > spare.capacity() {
        *spare = buffer;
    }
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Replica for StoreBackup {
    fn wants_snapshot(&self) -> bool {
        let st = self.state.lock();
        !st.snapshot_running
            && (st.snapshot_wanted
                || (st.logged_since_snapshot > 0
                    && st.last_snapshot.elapsed() >= self.shared.snapshot_every))
    }

    fn snapshot(&self, view: SnapshotView) {
        let mut st = self.state.lock();
        st.snapshot_running = true;
        st.snapshot_wanted = false;
        st.logged_since_snapshot = 0;
        let time_us = crate::now_us().max(st.last_time_us + 1);
        st.last_time_us = time_us;
        let (generation, seq) = (st.generation.clone(), st.next_seq - 1);
        drop(st);
        let Some(this) = self.me.upgrade() else {
            return;
        };
        self.shared
            .handle
            .spawn(this.snapshot_task(view, generation, seq, time_us));
    }

    fn commit(&self, commit: &Commit) {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let time_us = crate::now_us().max(st.last_time_us + 1);
        st.last_time_us = time_us;
        let first = st.open.first.is_none();
        if first {
            st.open.first = Some((seq, time_us, Instant::now()));
            st.open.generation = st.generation.clone();
            let buffer = std::mem::take(&mut st.spare_contents);
            st.open.segment = Segment::new(buffer);
        }
        let before = st.open.segment.len();
        let State { open, cache, .. } = &mut *st;
        open.segment
            .push((seq, time_us), commit, cache, &open.generation);
        let added = (st.open.segment.len() - before) as u64;
        st.backlog_bytes += added;
        st.logged_since_snapshot += added;
        st.oldest_unshipped.get_or_insert_with(Instant::now);
        st.open.last = (seq, time_us);
        st.open.upto = self.passed.fetch_add(1, Ordering::AcqRel) + 1;
        let wake = first
            || matches!(self.shared.mode, Mode::Synchronous)
            || st.open.segment.len() >= SEGMENT_MAX;
        drop(st);
        self.shared.stats.commits.inc();
        if wake {
            self.wake.notify_one();
        }
    }

    fn lost(&self, reason: String) {
        let mut st = self.state.lock();
        if st.open.first.is_some() {
            let generation = st.generation.clone();
            let mut open = std::mem::take(&mut st.open);
            open.due = Some(Instant::now());
            st.open.generation = generation;
            st.closed.push_back(open);
        }
        st.generation = names::new_generation();
        st.next_seq = 1;
        st.base_stored = false;
        st.snapshot_wanted = true;
        st.generation_start = self.passed.load(Ordering::Acquire);
        st.last_error = Some(format!("log lost, new generation: {reason}"));
        drop(st);
        self.shared.stats.generations.inc();
        self.wake.notify_one();
    }

    fn acknowledged(&self) -> Option<ReplicaFuture> {
        if !matches!(self.shared.mode, Mode::Synchronous) {
            return None;
        }
        let target = self.passed.load(Ordering::Acquire);
        let mut rx = self.replicated.subscribe();
        Some(Box::pin(async move {
            let _ = rx.wait_for(|&n| n >= target).await;
        }))
    }

    fn closing(&self) -> ReplicaFuture {
        self.end();
        let this = self.me.upgrade();
        Box::pin(async move {
            let Some(this) = this else { return };
            if this.settle(this.shared.close_patience()).await {
                return;
            }
            // Still not stored: have the rest written to the spool before
            // the store closes, so it outlives the process.
            this.state.lock().spill = true;
            this.spill_now.notify_one();
            let mut finished = this.finished.subscribe();
            let _ = tokio::time::timeout(SPILL_PATIENCE, finished.wait_for(|f| *f)).await;
        })
    }

    fn closed(&self, file: &Path) {
        self.end();
        if self.caught_up(&self.state.lock()) {
            let (generation, seq) = self.position();
            continuity::record(file, &self.shared.target_id, &generation, seq);
        }
        if let Some(this) = self.me.upgrade() {
            self.shared.forget(&self.store, &this);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_compressed_where_it_halves_them_and_probed_now_and_then() {
        let small = 1 << 20;
        let mut p = PackingChoice::default();
        // The first is compressed, to see; compressing saves a third: not
        // worth it, so the next fifteen are plain, then one is compressed.
        let mut seen = Vec::new();
        for _ in 0..=PackingChoice::PROBE_EVERY {
            let packing = p.next(small);
            seen.push(packing);
            p.sealed(packing, small, small * 2 / 3);
        }
        assert_eq!(seen.first(), Some(&Packing::Compressed));
        assert_eq!(seen.iter().filter(|&&k| k == Packing::Plain).count(), 15);
        assert_eq!(seen.last(), Some(&Packing::Compressed));
        // It saves three fourths: every segment is compressed.
        let mut p = PackingChoice::default();
        for _ in 0..PackingChoice::PROBE_EVERY {
            let packing = p.next(small);
            p.sealed(packing, small, small / 4);
        }
        assert_eq!(p.next(small), Packing::Compressed);
        p.sealed(Packing::Compressed, small, small / 4);
        assert_eq!(p.next(small), Packing::Compressed);
        // One compaction will not merge: compressed whatever it saves.
        let p = PackingChoice {
            pays: false,
            plain_since: 0,
        };
        assert_eq!(p.next(small), Packing::Plain);
        assert_eq!(p.next(64 << 20), Packing::Compressed);
    }

    #[test]
    fn a_batch_falls_due_ahead_of_its_lag_by_a_bounded_margin() {
        let (lag, ms) = (Duration::from_secs(1), Duration::from_millis);
        // Quick stores: the floor, for stalls not seen yet.
        assert_eq!(seal_margin(ms(5), lag), ms(200));
        // Slow ones: twice what they took.
        assert_eq!(seal_margin(ms(150), lag), ms(300));
        // A refusing target: never more than half the lag.
        assert_eq!(seal_margin(Duration::from_secs(30), lag), ms(500));
    }
}
