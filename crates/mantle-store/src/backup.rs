//! Consistent online copies of a store file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::schema;
use crate::{Error, Result};

/// Copies the store at `src` to a new file `dest` while other connections
/// (in this or another process) keep writing to it. The copy is one
/// consistent snapshot: every transaction committed before the copy began
/// is in it, none that committed later is, and nothing half-done.
///
/// Refuses to overwrite an existing `dest`. Returns the number of pages
/// copied.
pub fn backup(src: &Path, dest: &Path) -> Result<u64> {
    if dest.exists() {
        return Err(Error::io(
            dest,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "destination exists"),
        ));
    }
    if !src.is_file() {
        return Err(Error::io(
            src,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such store file"),
        ));
    }
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    schema::identify(&source, src)?;
    // A copy is as private as its store (see `files`).
    crate::files::create_private_file(dest).map_err(|e| Error::io(dest, e))?;
    let mut target = Connection::open(dest)?;
    {
        let copy = rusqlite::backup::Backup::new(&source, &mut target)?;
        // One step of all pages: the whole copy is read in one snapshot.
        // (Copying in several steps would restart whenever the source
        // changed in between, never finishing under steady writes.)
        loop {
            match copy.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => {}
            }
        }
    }
    let pages: i64 = target.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let ok: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(Error::NotAStore {
            path: dest.to_path_buf(),
            reason: format!("copy failed its integrity check: {ok}"),
        });
    }
    Ok(pages as u64)
}
