//! Whether a store reopened is exactly as it was when its backup last
//! caught up with it, so that its generation can go on.
//!
//! When a store closes with everything shipped, a small file beside it
//! (`FILE.backup`) records the generation, its last commit and the closed
//! file's size, modification time and inode. At the next open the record
//! is read and removed at once: the generation goes on only if the file is
//! still exactly that one and nothing was written since (its log is
//! empty). A crash, a copy put in its place, or any write by another
//! program starts a new generation, with a new snapshot.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Caught {
    pub(crate) target: String,
    pub(crate) generation: String,
    pub(crate) seq: u64,
    len: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
}

fn record_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

fn identity(file: &Path) -> Option<(u64, i128, u64, u64)> {
    let m = std::fs::metadata(file).ok()?;
    let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    Some((m.len(), mtime_ns, m.ino(), m.dev()))
}

/// Records that `file` (closed) is backed up through `seq` of `generation`.
pub(crate) fn record(file: &Path, target: &str, generation: &str, seq: u64) {
    let Some((len, mtime_ns, ino, dev)) = identity(file) else {
        return;
    };
    let caught = Caught {
        target: target.into(),
        generation: generation.into(),
        seq,
        len,
        mtime_ns,
        ino,
        dev,
    };
    let path = record_path(file);
    let tmp = path.with_extension("backup.tmp");
    let text = serde_json::to_vec(&caught).expect("plain data serializes");
    let written = mantle_store::private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(store = %file.display(), "cannot record the backup's position: {e}");
    }
}

/// Takes the record of `file` (removing it): the generation to go on
/// with, if the file is still the one recorded for `target`.
pub(crate) fn take(file: &Path, target: &str) -> Option<Caught> {
    let path = record_path(file);
    let text = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    let caught: Caught = serde_json::from_slice(&text).ok()?;
    let same = identity(file)? == (caught.len, caught.mtime_ns, caught.ino, caught.dev);
    (same && caught.target == target).then_some(caught)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_only_for_the_same_file_and_target_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.store");
        std::fs::write(&f, b"x").unwrap();
        record(&f, "t", "g", 5);
        assert!(take(&f, "other").is_none(), "another target");
        record(&f, "t", "g", 5);
        assert_eq!(take(&f, "t").unwrap().seq, 5);
        assert!(take(&f, "t").is_none(), "taken once");
        record(&f, "t", "g", 5);
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&f, b"y").unwrap();
        assert!(take(&f, "t").is_none(), "the file changed");
    }
}
