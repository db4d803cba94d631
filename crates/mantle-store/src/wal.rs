//! Following a store's write-ahead log: the pages each commit wrote.
//!
//! SQLite appends every commit to the `-wal` file as frames (a page and its
//! number); the last frame of a commit records the database's size in
//! pages. The writer reads a commit's frames right after it commits, before
//! the next write transaction may begin, so none is ever overwritten
//! unread: a checkpoint copies frames into the database but leaves them in
//! the log, and the log restarts from its beginning (with new salts) only
//! when the next write begins.
//!
//! Reading a log an earlier run left (perhaps cut short by a crash), frames
//! are taken only when SQLite itself would take them at recovery: their
//! salts match the log header's and their cumulative checksums chain from
//! it. Following the writer's own commits, the salts suffice, and the
//! checksums (a pass over every page, as costly as SQLite's own) are not
//! computed: the writer reads what it has just written, and frames of an
//! earlier pass through the log carry other salts. Frames past the last
//! commit (a rolled-back transaction that spilled pages) never end in a
//! commit frame, so they are never taken.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::replica::Commit;
use crate::{Error, Result};

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum: over 32-bit words in the byte order the header's
/// magic names, continuing from `(s0, s1)`.
fn checksum(big_endian: bool, data: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (be32(&pair[0..4]), be32(&pair[4..8]))
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s0 = s0.wrapping_add(a).wrapping_add(s1);
        s1 = s1.wrapping_add(b).wrapping_add(s0);
    }
    (s0, s1)
}

/// The log's header, once checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Header {
    big_endian: bool,
    page_size: u32,
    salts: (u32, u32),
    checksum: (u32, u32),
}

fn parse_header(b: &[u8]) -> Option<Header> {
    let magic = be32(&b[0..4]);
    let big_endian = match magic {
        MAGIC_LE => false,
        MAGIC_BE => true,
        _ => return None,
    };
    let page_size = be32(&b[8..12]);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let stored = (be32(&b[24..28]), be32(&b[28..32]));
    if checksum(big_endian, &b[..24], (0, 0)) != stored {
        return None;
    }
    Some(Header {
        big_endian,
        page_size,
        salts: (be32(&b[16..20]), be32(&b[20..24])),
        checksum: stored,
    })
}

/// Where the writer has read the log to: just past the last commit taken.
pub(crate) struct WalCursor {
    path: PathBuf,
    file: Option<File>,
    header: Option<Header>,
    /// Byte offset of the first frame not yet taken.
    pos: u64,
    /// The running checksum at `pos`, while `checked`: until the cursor
    /// has reached the end of the log it was opened on.
    running: (u32, u32),
    checked: bool,
    /// The last commit read. Its buffer is read into again for the next:
    /// commits are handed on borrowed, so following a store allocates
    /// nothing per commit.
    last: Commit,
}

impl WalCursor {
    /// A cursor at the end of the store's current log: every commit already
    /// in it counts as read. Also says whether the log holds any commit
    /// (something was written since the log was last emptied).
    pub(crate) fn at_end(db: &Path) -> Result<(Self, bool)> {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let mut cursor = WalCursor {
            path: PathBuf::from(path),
            file: None,
            header: None,
            pos: HEADER as u64,
            running: (0, 0),
            checked: true,
            last: Commit::new(4096, 0).expect("a page size"),
        };
        let mut any = false;
        while cursor.next_commit()?.is_some() {
            any = true;
        }
        cursor.checked = false;
        Ok((cursor, any))
    }

    fn open(&mut self) -> Result<bool> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        Ok(true)
    }

    /// The log's header, the cursor moved to its first frame if the log
    /// restarted since the last commit taken.
    fn header(&mut self) -> Result<Option<Header>> {
        if !self.open()? {
            return Ok(None);
        }
        let file = self.file.as_ref().expect("just opened");
        let mut head = [0u8; HEADER];
        match file.read_exact_at(&mut head, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let Some(header) = parse_header(&head) else {
            return Ok(None);
        };
        if self.header.map(|h| (h.salts, h.page_size)) != Some((header.salts, header.page_size)) {
            self.header = Some(header);
            self.pos = HEADER as u64;
            self.running = header.checksum;
        }
        Ok(Some(header))
    }

    /// The pages of the next commit in the log after the cursor, moving
    /// past it; `None` if there is none (a transaction that wrote nothing).
    ///
    /// Reads a few frames at a time: after a restart the file keeps its
    /// old length, and the frames past the commit are stale.
    pub(crate) fn next_commit(&mut self) -> Result<Option<&Commit>> {
        let Some(header) = self.header()? else {
            return Ok(None);
        };
        let file = self.file.as_ref().expect("opened by header");
        let frame = FRAME_HEADER + header.page_size as usize;
        // Frames are read straight into the commit's buffer, kept whole
        // (their headers name the pages): most commits write a few pages,
        // so that many are read first, then more at a time. The buffer
        // keeps its length (zeroed only where it grows); the commit is its
        // first `count` frames.
        let mut frames = std::mem::take(&mut self.last.frames);
        let mut start = 0;
        let mut at = self.pos;
        let mut running = self.running;
        let mut want = FIRST_READ_FRAMES;
        loop {
            let requested = frame * want;
            if frames.len() < start + requested {
                frames.resize(start + requested, 0);
            }
            let n = read_some(file, &mut frames[start..start + requested], at)
                .map_err(|e| Error::io(&self.path, e))?;
            want = READ_FRAMES;
            let whole = n / frame;
            for i in 0..whole {
                let f = &frames[start + i * frame..start + (i + 1) * frame];
                let (fh, page) = f.split_at(FRAME_HEADER);
                let valid = (be32(&fh[8..12]), be32(&fh[12..16])) == header.salts
                    && (!self.checked || {
                        running = checksum(header.big_endian, &fh[..8], running);
                        running = checksum(header.big_endian, page, running);
                        running == (be32(&fh[16..20]), be32(&fh[20..24]))
                    });
                if !valid {
                    self.last.frames = frames;
                    return Ok(None);
                }
                at += frame as u64;
                let db_pages = be32(&fh[4..8]);
                if db_pages != 0 {
                    let end = start + (i + 1) * frame;
                    self.pos = at;
                    self.running = running;
                    self.last = Commit {
                        page_size: header.page_size,
                        db_pages,
                        count: (end / frame) as u32,
                        frames,
                    };
                    return Ok(Some(&self.last));
                }
            }
            if n < requested {
                // The log ends before a commit frame.
                self.last.frames = frames;
                return Ok(None);
            }
            start += requested;
        }
    }
}

/// Frames read first (most commits write a few pages), then at a time.
const FIRST_READ_FRAMES: usize = 4;
const READ_FRAMES: usize = 16;

/// Fills as much of `buf` as the file holds from `at`.
fn read_some(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in WAL mode in `dir`, and a connection to it.
    fn wal_store(dir: &Path) -> (PathBuf, rusqlite::Connection) {
        let db = dir.join("t.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        (db, conn)
    }

    #[test]
    fn the_checksum_matches_sqlites_for_a_real_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conn) = wal_store(dir.path());
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x)")
            .unwrap();
        let (mut cursor, any) = WalCursor::at_end(&db).unwrap();
        assert!(any, "the CREATE TABLE is in the log");
        assert!(cursor.next_commit().unwrap().is_none());
        for i in 0..3 {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let c = cursor.next_commit().unwrap().expect("a commit");
            assert_eq!(c.page_size, 4096);
            assert!(c.count >= 1);
            assert_eq!(c.db_pages, 2);
            assert!(cursor.next_commit().unwrap().is_none());
        }
        // Read as a log left by an earlier run, every frame's checksum
        // chains as SQLite computed it: the end is where the follower got.
        let (fresh, _) = WalCursor::at_end(&db).unwrap();
        assert_eq!(fresh.pos, cursor.pos);
        // A restarted log is followed from its start.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        conn.execute("INSERT INTO t VALUES (9)", []).unwrap();
        let c = cursor
            .next_commit()
            .unwrap()
            .expect("a commit after restart");
        assert_eq!(c.pages().map(|(n, _)| n).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_small_commit_after_a_big_one_is_only_its_own_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conn) = wal_store(dir.path());
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x)")
            .unwrap();
        let (mut cursor, _) = WalCursor::at_end(&db).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200)
             INSERT INTO t SELECT randomblob(500) FROM n",
        )
        .unwrap();
        assert!(cursor.next_commit().unwrap().unwrap().page_count() > 10);
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        // The buffer still holds the big commit's frames past this one's.
        let c = cursor.next_commit().unwrap().unwrap().clone();
        assert!(c.page_count() <= 2, "{c:?}");
        assert_eq!(c.pages().count(), c.page_count() as usize);
        assert_eq!(
            c.to_bytes().len(),
            12 + c.page_count() as usize * (24 + 4096)
        );
        assert_eq!(Commit::from_bytes(&c.to_bytes()), Some(c));
    }

    #[test]
    fn a_rolled_back_transaction_is_not_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conn) = wal_store(dir.path());
        // A tiny cache makes the big transaction spill frames to the log.
        conn.execute_batch("PRAGMA cache_size = 2; CREATE TABLE t (x)")
            .unwrap();
        let (mut cursor, _) = WalCursor::at_end(&db).unwrap();
        conn.execute_batch(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT randomblob(500) FROM n; ROLLBACK;",
        )
        .unwrap();
        assert!(cursor.next_commit().unwrap().is_none());
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let c = cursor.next_commit().unwrap().expect("the insert");
        assert_eq!(c.db_pages, 2);
    }
}
