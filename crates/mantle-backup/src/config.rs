//! The `[backup]` section of a site's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{BackupError, Result};

/// How much committed work may be at risk if the machine is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commits are acknowledged at once and shipped within this long
    /// (while the target accepts writes).
    Lag(Duration),
    /// A commit is acknowledged only once the log segment holding it is
    /// stored in the target.
    Synchronous,
}

/// Continuous backup settings (`[backup]` in `mantle.toml`).
///
/// ```
/// let c: mantle_backup::BackupConfig = toml::from_str(r#"
///     target = "s3://backups/site-a"
///     endpoint = "http://127.0.0.1:9000"
///     keep = "30d"
/// "#).unwrap();
/// assert_eq!(c.mode().unwrap(), mantle_backup::Mode::Lag(std::time::Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Where backups go: `file:///abs/dir`, a directory relative to the
    /// site, or `s3://BUCKET[/PREFIX]`. Empty: no backup.
    pub target: String,
    /// `"1s"` (the default): at most that long of committed transactions
    /// at risk; `"sync"`: acknowledged only once stored.
    pub point_of_loss: String,
    /// How long back a store can be restored to (`"30d"`).
    pub keep: String,
    /// A fresh snapshot of a store at least this often while it changes
    /// (`"24h"`), so a restore applies at most that much log.
    pub snapshot_every: String,
    /// How often a sample of stores is restored and checked (`"24h"`;
    /// `"off"` for never).
    pub verify_every: String,
    /// How many stores each verification restores.
    pub verify_sample: usize,
    /// The key file, relative to the site (`backup.key`).
    pub key_file: String,
    /// Keys of earlier rotations, to read objects they sealed.
    pub old_key_files: Vec<String>,
    /// S3: the endpoint of an S3-compatible service (AWS when empty).
    pub endpoint: String,
    /// S3: the region.
    pub region: String,
    /// S3: the access key id (or `AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// S3: the secret key (or `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            target: String::new(),
            point_of_loss: "1s".into(),
            keep: "30d".into(),
            snapshot_every: "24h".into(),
            verify_every: "24h".into(),
            verify_sample: 3,
            key_file: "backup.key".into(),
            old_key_files: Vec::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        }
    }
}

/// Parses `"30d"`, `"1s"`, `"250ms"`.
pub fn parse_duration(text: &str, field: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| BackupError::Config(format!("{field} = {text:?}: {e}")))
}

impl BackupConfig {
    /// Whether backup is on.
    pub fn enabled(&self) -> bool {
        !self.target.trim().is_empty()
    }

    /// The point of loss.
    pub fn mode(&self) -> Result<Mode> {
        match self.point_of_loss.trim() {
            "sync" | "synchronous" => Ok(Mode::Synchronous),
            other => {
                let d = parse_duration(other, "point_of_loss")?;
                if d.is_zero() {
                    return Err(BackupError::Config(
                        "point_of_loss must be more than 0 (or \"sync\")".into(),
                    ));
                }
                Ok(Mode::Lag(d))
            }
        }
    }

    /// The retention window.
    pub fn keep(&self) -> Result<Duration> {
        parse_duration(&self.keep, "keep")
    }

    /// How often a changing store gets a fresh snapshot.
    pub fn snapshot_every(&self) -> Result<Duration> {
        parse_duration(&self.snapshot_every, "snapshot_every")
    }

    /// How often a sample is verified; `None` for never.
    pub fn verify_every(&self) -> Result<Option<Duration>> {
        match self.verify_every.trim() {
            "off" | "never" => Ok(None),
            other => parse_duration(other, "verify_every").map(Some),
        }
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        self.mode()?;
        self.keep()?;
        self.snapshot_every()?;
        self.verify_every()?;
        crate::target::TargetSpec::parse(&self.target)?;
        Ok(())
    }
}
