//! Continuous backup of Mantle stores to object storage, and
//! point-in-time restore.
//!
//! Every store of a site is backed up as it changes: a base snapshot of
//! its file, then the pages each commit wrote, gathered into log segments
//! and shipped (by default) within a second of committing. Both are read
//! off SQLite's own write-ahead log and backup mechanism, so a restore is
//! the file itself as of any commit: a snapshot with the pages of every
//! later commit up to the moment asked for written over it, in order.
//!
//! - [`Backup`] is the [`Replicator`](mantle_store::Replicator) a site's
//!   stores are opened with; it ships to a [`Target`] (a local directory
//!   or S3-compatible storage, through the `object_store` crate).
//! - Every object is sealed ([`Keyring`]): encrypted and authenticated
//!   with the site's backup key, its name included, so damage is caught
//!   at restore and names the object.
//! - [`Catalog`] lists what a target holds; [`restore_store`] restores a
//!   store to its latest state or a moment; [`verify`] restores a sample
//!   and checks it; [`prune`] applies the retention window.
//!
//! The point of loss is [`Mode::Lag`] (commits acknowledged at once,
//! shipped within the lag) or [`Mode::Synchronous`] (acknowledged once
//! stored). A target that refuses writes never holds up commits in the
//! first mode: segments wait, in memory and then in a spool directory, and
//! are retried with back-off.

mod backup;
mod config;
mod continuity;
mod error;
mod follow;
mod maintain;
mod names;
mod restore;
mod retention;
mod seal;
mod segment;
mod site;
mod target;

pub use backup::{Backup, STATS_NAMESPACE, keyring};
pub use config::{BackupConfig, Mode, parse_duration};
pub use error::{BackupError, Result};
pub use follow::StoreStatus;
pub use maintain::{BackupStatus, STATUS_FILE, StoreStatusRecord, choose};
pub use restore::{Catalog, Restored, StoreSummary, Verified, restore_store, verify};
pub use retention::{Compacted, Pruned, compact, prune};
pub use seal::{BackupKey, Keyring, Packing};
pub use site::{restore_site, upload_site_files};
pub use target::Target;

/// Now, in microseconds since 1970: the clock moments are given in.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A moment (µs since 1970) as RFC 3339 text.
pub fn format_us(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Reads a moment: RFC 3339 (`2026-12-01T10:00:00Z`, fractions allowed)
/// or seconds since 1970 (`1764583200.5`); µs since 1970.
pub fn parse_moment(text: &str) -> Result<u64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>()
        && secs >= 0.0
    {
        return Ok((secs * 1e6) as u64);
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        BackupError::Config(format!(
            "moment {text:?}: {e} (use RFC 3339, e.g. 2026-12-01T10:00:00Z)"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64))
}

/// The form an object's name takes in the target (it percent-encodes
/// what object names may not hold), which seals and opens it.
pub(crate) fn canonical(name: &str) -> String {
    object_store::path::Path::from(name).to_string()
}

/// Entry points for the fuzz targets (`fuzz/`): what a restore parses from
/// objects a target hands back. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses an object name, a segment's contents and a sealed object;
    /// must never panic.
    pub fn parse_object(name: &str, contents: &[u8]) {
        if let Some(n) = crate::names::parse(name) {
            let _ = (n.store, n.generation, n.object);
        }
        if let Ok(commits) = crate::segment::read(contents) {
            for c in commits {
                let _ = c.resolve(name, |_, page| {
                    page.fill(0);
                    Ok(true)
                });
            }
        }
        let _ = mantle_store::Commit::from_bytes(contents);
        let key = crate::BackupKey::from_text_for_fuzzing();
        let _ = crate::Keyring::new(key).open(name, contents);
    }
}
