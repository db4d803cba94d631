//! Files and directories only the server's user may read.
//!
//! Stores hold users' data, and the site store holds password hashes: they
//! are created with mode 0600 (SQLite gives a store's `-wal` and `-shm`
//! files the mode of the store file itself), and the directories Mantle
//! makes for them with 0700, whatever the process's umask.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of the files Mantle creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the directories Mantle creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with mode 0700 (existing ones
/// are left as they are).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Options that create a file with mode 0600.
pub fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(PRIVATE_FILE_MODE);
    o
}

/// Creates `path` empty with mode 0600 unless it exists.
pub(crate) fn create_private_file(path: &Path) -> io::Result<()> {
    match private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens (creating with mode 0600) a file for writing without truncating.
pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    private_file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_directories_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir_all(&dir).unwrap();
        let file = dir.join("f");
        create_private_file(&file).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&file), 0o600);
        // An existing file is left alone.
        std::fs::write(&file, b"x").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
