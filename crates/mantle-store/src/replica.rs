//! Continuous replication: each commit's pages and consistent snapshots,
//! handed to a [`Replicator`] (continuous backup is one).
//!
//! A store opened with [`StoreConfig::replicator`](crate::StoreConfig::replicator)
//! gets a [`Replica`] from it. Its writer then passes the replica, on the
//! writer thread and in commit order, the pages every commit wrote
//! ([`Commit`]); when the replica asks for one, it hands it a consistent
//! view of the store as of the last commit passed ([`SnapshotView`]).
//! A snapshot copied from that view with the pages of every later commit
//! written over it, in order ([`PageFile`]), is the store as of any of those
//! commits: the file itself, page for page.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// A future a replica hands back.
pub type ReplicaFuture = Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// The pages one commit wrote, as SQLite logged them.
#[derive(Clone)]
pub struct Commit {
    pub(crate) page_size: u32,
    pub(crate) db_pages: u32,
    pub(crate) count: u32,
    /// The log's frames, whole: a 24-byte header (the page's number in its
    /// first 4 bytes, big-endian) and the page, as read off the log. Only
    /// the first `count` frames are the commit's: the log's reader keeps
    /// the buffer's length between commits, so that it is not zeroed
    /// again before every read.
    pub(crate) frames: Vec<u8>,
}

impl PartialEq for Commit {
    fn eq(&self, other: &Self) -> bool {
        (self.page_size, self.db_pages, self.count)
            == (other.page_size, other.db_pages, other.count)
            && self.frames() == other.frames()
    }
}

impl Eq for Commit {}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("page_size", &self.page_size)
            .field("db_pages", &self.db_pages)
            .field("pages", &self.pages().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

/// Bytes before each page in a frame.
const FRAME_HEADER: usize = 24;

impl Commit {
    /// The store's page size.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The store's size in pages after this commit.
    pub fn db_pages(&self) -> u32 {
        self.db_pages
    }

    /// How many pages the commit wrote (a page written twice counts twice).
    pub fn page_count(&self) -> u32 {
        self.count
    }

    /// The pages, each as its number (from 1) and its bytes, in the order
    /// written: a page written twice counts as its last version.
    pub fn pages(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.frames()
            .chunks_exact(FRAME_HEADER + self.page_size as usize)
            .map(|c| {
                (
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    &c[FRAME_HEADER..],
                )
            })
    }

    /// The commit's frames.
    fn frames(&self) -> &[u8] {
        &self.frames[..self.count as usize * (FRAME_HEADER + self.page_size as usize)]
    }

    /// A commit with no pages yet, of a store with `page_size`-byte pages
    /// that is `db_pages` long after it; `None` if SQLite uses no such page
    /// size. Pages are added with [`push_page`](Self::push_page).
    ///
    /// ```
    /// let mut c = mantle_store::Commit::new(512, 3).unwrap();
    /// c.push_page(2, &[7u8; 512]);
    /// assert_eq!(c.pages().map(|(n, p)| (n, p[0])).collect::<Vec<_>>(), [(2, 7)]);
    /// ```
    pub fn new(page_size: u32, db_pages: u32) -> Option<Commit> {
        ((512..=65536).contains(&page_size) && page_size.is_power_of_two()).then_some(Commit {
            page_size,
            db_pages,
            count: 0,
            frames: Vec::new(),
        })
    }

    /// Adds a page the commit wrote, after those added before.
    ///
    /// # Panics
    /// If `number` is 0 (pages are numbered from 1) or `page` is not
    /// [`page_size`](Self::page_size) bytes.
    pub fn push_page(&mut self, number: u32, page: &[u8]) {
        assert!(number != 0, "pages are numbered from 1");
        assert_eq!(
            page.len(),
            self.page_size as usize,
            "a page of another size"
        );
        // (A commit read off the log holds stale frames past its own.)
        let len = self.frames().len();
        self.frames.truncate(len);
        self.frames.extend_from_slice(&number.to_be_bytes());
        self.frames.extend_from_slice(&[0u8; FRAME_HEADER - 4]);
        self.frames.extend_from_slice(page);
        self.count += 1;
    }

    /// The commit as bytes ([`from_bytes`](Self::from_bytes) reads them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.frames().len());
        out.extend_from_slice(&self.page_size.to_be_bytes());
        out.extend_from_slice(&self.db_pages.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.frames());
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote; `None` if it is not
    /// one whole commit.
    pub fn from_bytes(b: &[u8]) -> Option<Commit> {
        if b.len() < 12 {
            return None;
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (page_size, db_pages, count) = (word(0), word(4), word(8));
        let mut commit = Commit::new(page_size, db_pages)?;
        let frames = &b[12..];
        if frames.len() as u64 != u64::from(count) * (FRAME_HEADER as u64 + u64::from(page_size)) {
            return None;
        }
        commit.count = count;
        commit.frames = frames.to_vec();
        if commit.pages().any(|(n, _)| n == 0) {
            return None;
        }
        Some(commit)
    }
}

/// Makes each store's [`Replica`] when the store opens for writing.
pub trait Replicator: Send + Sync + 'static {
    /// `store` (an absolute path) was opened for writing. `written` says
    /// whether its log held commits at open (it was not closed cleanly, or
    /// opening it wrote: an upgrade), so that what was replicated before
    /// may not be all there is. `None` leaves this store unreplicated.
    fn attach(&self, store: &Path, written: bool) -> Option<Arc<dyn Replica>>;
}

/// One store's replica: told of every commit, asked for snapshots.
///
/// Called on the store's writer thread (never concurrently for one store):
/// every method must return quickly, handing slow work (uploads, copies) to
/// other threads.
pub trait Replica: Send + Sync + 'static {
    /// Whether it wants a snapshot at this point (after the commits passed
    /// so far).
    fn wants_snapshot(&self) -> bool;

    /// The view to copy the wanted snapshot from.
    fn snapshot(&self, view: SnapshotView);

    /// One commit's pages, right after it committed and before any of its
    /// transactions learn the outcome. Borrowed: the writer reads the next
    /// commit into the same buffer, so a replica copies what it keeps
    /// (into buffers of its own, which it can reuse in turn).
    fn commit(&self, commit: &Commit);

    /// A commit's pages could not be read: the replica cannot follow the
    /// store from its last snapshot any longer. The writer asks for a new
    /// one at once if it wants one.
    fn lost(&self, reason: String);

    /// What an acknowledgement waits for: `Some` (in a synchronous mode)
    /// resolves once every commit passed so far is replicated.
    fn acknowledged(&self) -> Option<ReplicaFuture>;

    /// The store is closing: no commit follows. Resolves when the replica
    /// is ready for its file to close (it may wait for a snapshot copy and
    /// its last commits to be replicated); the file stays open and locked
    /// until then.
    fn closing(&self) -> ReplicaFuture;

    /// The store's file is closed (cleanly, or dropped without
    /// [`Store::close`](crate::Store::close)) and complete; still locked.
    /// Must not wait.
    fn closed(&self, file: &Path);
}

/// A consistent, read-only view of a store as of one commit, to copy a
/// snapshot from. Holding it open keeps that state readable; commits go on
/// meanwhile.
pub struct SnapshotView {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SnapshotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("path", &self.path)
            .finish()
    }
}

impl SnapshotView {
    /// Opens a read transaction on `path` now.
    pub(crate) fn begin(path: &Path) -> Result<SnapshotView> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A deferred BEGIN takes its snapshot at the first read.
        conn.execute_batch("BEGIN")?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Ok(SnapshotView {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The store the view is of.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the view, page for page, to the new file `dest` (blocking:
    /// call it off the async runtime). Returns the number of pages.
    pub fn copy_to(self, dest: &Path) -> Result<u64> {
        if dest.exists() {
            return Err(Error::io(
                dest,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "destination exists"),
            ));
        }
        crate::files::create_private_file(dest).map_err(|e| Error::io(dest, e))?;
        let mut target = Connection::open(dest)?;
        {
            // The backup runs inside the view's open read transaction, so
            // it copies exactly that state, however long it takes.
            let copy = rusqlite::backup::Backup::new(&self.conn, &mut target)?;
            loop {
                match copy.step(1024)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
        let src: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let (size, pages): (i64, i64) = target.query_row(
            "SELECT (SELECT page_size FROM pragma_page_size), (SELECT page_count FROM pragma_page_count)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if size != src {
            return Err(Error::NotAStore {
                path: dest.to_path_buf(),
                reason: format!("snapshot page size {size} differs from the store's {src}"),
            });
        }
        Ok(pages as u64)
    }
}

/// A store file being rebuilt from a snapshot and the commits after it.
///
/// ```
/// # fn main() -> mantle_store::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("copy.store");
/// # std::fs::write(&path, vec![0u8; 8192]).unwrap();
/// let mut file = mantle_store::PageFile::open(&path)?;
/// // for commit in commits { file.apply(&commit)?; }
/// file.finish()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PageFile {
    file: File,
    path: PathBuf,
    db_pages: Option<u32>,
    page_size: Option<u32>,
}

impl PageFile {
    /// Opens the snapshot at `path` to write commits over.
    pub fn open(path: &Path) -> Result<PageFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(PageFile {
            file,
            path: path.to_path_buf(),
            db_pages: None,
            page_size: None,
        })
    }

    /// Writes one commit's pages.
    pub fn apply(&mut self, commit: &Commit) -> Result<()> {
        let size = u64::from(commit.page_size);
        if let Some(p) = self.page_size
            && p != commit.page_size
        {
            return Err(Error::NotAStore {
                path: self.path.clone(),
                reason: format!(
                    "a commit of {} byte pages over {p} byte pages",
                    commit.page_size
                ),
            });
        }
        self.page_size = Some(commit.page_size);
        for (n, page) in commit.pages() {
            self.file
                .write_all_at(page, (u64::from(n) - 1) * size)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        self.db_pages = Some(commit.db_pages);
        Ok(())
    }

    /// Reads page `number` (from 1) as it stands into `page` (a page's
    /// size); `false` if the file ends before it.
    pub fn read_page(&self, number: u32, page: &mut [u8]) -> Result<bool> {
        let at = (u64::from(number).max(1) - 1) * page.len() as u64;
        match self.file.read_exact_at(page, at) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// Cuts the file to the size of the last commit applied and syncs it.
    pub fn finish(self) -> Result<()> {
        if let (Some(n), Some(size)) = (self.db_pages, self.page_size) {
            self.file
                .set_len(u64::from(n) * u64::from(size))
                .map_err(|e| Error::io(&self.path, e))?;
        }
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

/// The state a replica follows from: the writer's position in the log.
pub(crate) struct Following {
    pub(crate) replica: Arc<dyn Replica>,
    pub(crate) cursor: crate::wal::WalCursor,
    pub(crate) path: PathBuf,
}

impl Following {
    /// Attaches the store at `path` (just opened, nothing else writing) to
    /// `replicator`, and takes the snapshot its replica wants.
    pub(crate) fn start(replicator: &dyn Replicator, path: &Path) -> Result<Option<Following>> {
        let (cursor, written) = crate::wal::WalCursor::at_end(path)?;
        let Some(replica) = replicator.attach(path, written) else {
            return Ok(None);
        };
        let following = Following {
            replica,
            cursor,
            path: path.to_path_buf(),
        };
        following.snapshot_if_wanted();
        Ok(Some(following))
    }

    fn snapshot_if_wanted(&self) {
        if self.replica.wants_snapshot() {
            match SnapshotView::begin(&self.path) {
                Ok(view) => self.replica.snapshot(view),
                Err(e) => {
                    tracing::warn!(store = %self.path.display(), "cannot take a snapshot: {e}")
                }
            }
        }
    }

    /// After a commit (on the writer thread): hands its pages on.
    pub(crate) fn committed(&mut self) {
        match self.cursor.next_commit() {
            Ok(Some(commit)) => self.replica.commit(commit),
            Ok(None) => {}
            Err(e) => self.lose(e.to_string()),
        }
        self.snapshot_if_wanted();
    }

    fn lose(&mut self, reason: String) {
        tracing::warn!(store = %self.path.display(), "replication lost the log: {reason}");
        self.replica.lost(reason);
        match crate::wal::WalCursor::at_end(&self.path) {
            Ok((cursor, _)) => self.cursor = cursor,
            Err(e) => tracing::warn!(store = %self.path.display(), "cannot read the log: {e}"),
        }
    }
}
