//! The runtime file: how a program on the same machine finds a served
//! site's admin API. The HTTP service writes it when it starts and removes
//! it when it stops.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mantle_site::SiteError;
use mantle_store::Timestamp;
use serde::{Deserialize, Serialize};

/// Where the runtime file lives, relative to the site directory. Its
/// directory is made with mode 0700 and the file with mode 0600: only the
/// site's owner reads the secret.
pub const ADMIN_RUNTIME_FILE: &str = "run/admin.json";

/// What the runtime file holds.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminRuntime {
    /// The address the HTTP service is bound to.
    pub http: SocketAddr,
    /// The secret of this run: `Authorization: Bearer SECRET` acts as the
    /// operator on the admin API. A new one at each start.
    pub secret: String,
    /// The serving process.
    pub pid: u32,
    /// When the service started.
    pub started: Timestamp,
}

impl std::fmt::Debug for AdminRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRuntime")
            .field("http", &self.http)
            .field("secret", &"…")
            .field("pid", &self.pid)
            .field("started", &self.started)
            .finish()
    }
}

/// Why the runtime file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeFileError {
    /// Its directory could not be made private.
    #[error("{path}: cannot make the runtime directory (mode 0700): {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("{path}: cannot write the admin runtime file: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("{path}: cannot read the admin runtime file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what a Mantle server writes.
    #[error("{path}: not an admin runtime file ({source})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
}

impl From<RuntimeFileError> for SiteError {
    fn from(e: RuntimeFileError) -> Self {
        match e {
            RuntimeFileError::Directory { path, source }
            | RuntimeFileError::Write { path, source }
            | RuntimeFileError::Read { path, source } => SiteError::Io { path, source },
            e @ RuntimeFileError::Malformed { .. } => SiteError::Service {
                service: "the admin runtime file",
                source: Box::new(e),
            },
        }
    }
}

impl AdminRuntime {
    /// The runtime file of the site in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(ADMIN_RUNTIME_FILE)
    }

    /// The runtime file of the site in `dir`; `None` if there is none (the
    /// site is not served, or its server is still starting).
    pub fn load(dir: &Path) -> Result<Option<AdminRuntime>, RuntimeFileError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RuntimeFileError::Read { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| RuntimeFileError::Malformed { path, source })
    }

    /// Writes the file for the site in `dir` (replacing a stale one at
    /// once: it is written aside, then renamed).
    pub(crate) fn write(&self, dir: &Path) -> Result<PathBuf, RuntimeFileError> {
        let path = Self::path(dir);
        let run = path.parent().expect("the runtime file is in a directory");
        let private_dir = |source| RuntimeFileError::Directory {
            path: run.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(run)
            .map_err(private_dir)?;
        // It may have existed with other permissions.
        std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700))
            .map_err(private_dir)?;
        let aside = run.join(format!(".admin.json.{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&aside)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&aside, &path)
        })();
        written.map_err(|source| {
            let _ = std::fs::remove_file(&aside);
            RuntimeFileError::Write {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// Removes the file of the site in `dir` if it is still this run's
    /// (same secret); a file of another run is left alone.
    pub(crate) fn remove(&self, dir: &Path) {
        let path = Self::path(dir);
        match Self::load(dir) {
            Ok(Some(found)) if found.secret == self.secret => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove the admin runtime file");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "admin runtime file left alone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(secret: &str) -> AdminRuntime {
        AdminRuntime {
            http: "127.0.0.1:8080".parse().unwrap(),
            secret: secret.into(),
            pid: 7,
            started: Timestamp::from_micros(1),
        }
    }

    #[test]
    fn written_privately_read_back_and_removed_only_by_its_run() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(AdminRuntime::load(dir.path()).unwrap(), None);
        let ours = runtime("ours");
        let path = ours.write(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(AdminRuntime::load(dir.path()).unwrap(), Some(ours.clone()));
        assert!(
            !format!("{ours:?}").contains("ours"),
            "the secret is not logged"
        );

        // A later run's file is not removed by an earlier run.
        let later = runtime("later");
        later.write(dir.path()).unwrap();
        ours.remove(dir.path());
        assert_eq!(AdminRuntime::load(dir.path()).unwrap(), Some(later.clone()));
        later.remove(dir.path());
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            0,
            "nothing left aside"
        );
    }

    #[test]
    fn a_malformed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(AdminRuntime::path(dir.path()), "not json").unwrap();
        let e = AdminRuntime::load(dir.path()).unwrap_err();
        assert!(matches!(e, RuntimeFileError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("run/admin.json"), "{e}");
    }
}
