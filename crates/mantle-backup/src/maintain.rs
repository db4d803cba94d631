//! The site-level backup chores: shipping the spool, pruning to the
//! retention window, verifying a sample of stores on a schedule, and
//! writing the status file `mantle backup status` reads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::BackupConfig;
use crate::follow::StoreStatus;
use crate::restore::{Catalog, verify};
use crate::retention::prune;
use crate::{Backup, Result, upload_site_files};

/// The status file, in the site directory.
pub const STATUS_FILE: &str = "backup-status.json";

/// How often the status file is rewritten and the spool shipped.
const TICK: Duration = Duration::from_secs(5);
/// Segments are merged once this old.
const COMPACT_AFTER: Duration = Duration::from_secs(600);
/// How often the target is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What the status file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupStatus {
    /// When it was written (µs since 1970).
    pub written_us: u64,
    /// The target.
    pub target: String,
    /// Each open store's state.
    pub stores: Vec<StoreStatusRecord>,
    /// Segments waiting in the spool.
    pub spooled: usize,
    /// The last prune: when, and what it removed (or its error).
    pub last_prune: Option<(u64, String)>,
    /// The last scheduled verification: when, and what it found.
    pub last_verify: Option<(u64, String)>,
}

/// One store in the status file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreStatusRecord {
    /// The store's path in the site.
    pub store: String,
    /// Its generation.
    pub generation: String,
    /// Its last commit.
    pub last_seq: u64,
    /// Bytes not yet stored.
    pub backlog_bytes: u64,
    /// Seconds the oldest of them has waited.
    pub lag_seconds: f64,
    /// The target's last refusal.
    pub last_error: Option<String>,
}

impl From<StoreStatus> for StoreStatusRecord {
    fn from(s: StoreStatus) -> Self {
        StoreStatusRecord {
            store: s.store,
            generation: s.generation,
            last_seq: s.last_seq,
            backlog_bytes: s.backlog_bytes,
            lag_seconds: s.lag_seconds,
            last_error: s.last_error,
        }
    }
}

impl BackupStatus {
    /// Reads the status file of the site at `site`.
    pub fn read(site: &Path) -> Result<Option<BackupStatus>> {
        let path = site.join(STATUS_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| crate::BackupError::corrupt(path.display(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::BackupError::io(path, e)),
        }
    }

    fn write(&self, site: &Path) {
        let path = site.join(STATUS_FILE);
        let tmp: PathBuf = site.join(format!("{STATUS_FILE}.tmp"));
        let body = serde_json::to_vec_pretty(self).expect("plain data serializes");
        if let Err(e) = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// `n` of `stores` chosen at random (all of them if there are no more).
pub fn choose(mut stores: Vec<String>, n: usize) -> Vec<String> {
    let mut chosen = Vec::with_capacity(n.min(stores.len()));
    while chosen.len() < n && !stores.is_empty() {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("the system's random source");
        let i = (u64::from_be_bytes(r) % stores.len() as u64) as usize;
        chosen.push(stores.swap_remove(i));
    }
    chosen
}

impl Backup {
    /// Runs the chores until the task is aborted: at once, stores the
    /// site's configuration and ships the spool; then every few seconds
    /// ships the spool and writes the status file, every hour prunes, and
    /// verifies a sample of stores as often as `config` says.
    pub async fn maintain(self, config: BackupConfig) {
        let keep = config.keep().unwrap_or(Duration::from_secs(30 * 86400));
        let verify_every = config.verify_every().ok().flatten();
        let mut status = BackupStatus {
            target: self.target().name().to_string(),
            ..BackupStatus::default()
        };
        if let Err(e) = upload_site_files(&self).await {
            tracing::warn!("cannot back up the site's configuration yet: {e}");
        }
        let started = Instant::now();
        let mut last_prune: Option<Instant> = None;
        let mut last_verify: Option<Instant> = None;
        loop {
            status.spooled = self.drain_spool().await;
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) && started.elapsed() >= TICK {
                last_prune = Some(Instant::now());
                let outcome = self.prune_and_compact(keep).await;
                status.last_prune = Some((
                    crate::now_us(),
                    outcome.unwrap_or_else(|e| format!("failed: {e}")),
                ));
            }
            if let Some(every) = verify_every
                && last_verify.map_or(started.elapsed() >= every, |t| t.elapsed() >= every)
            {
                last_verify = Some(Instant::now());
                let found = self.verify_sample(config.verify_sample).await;
                if found.contains("failed") {
                    tracing::error!("scheduled backup verification: {found}");
                }
                status.last_verify = Some((crate::now_us(), found));
            }
            status.stores = self.status().into_iter().map(Into::into).collect();
            status.written_us = crate::now_us();
            status.write(self.site());
            tokio::time::sleep(TICK).await;
        }
    }

    /// Prunes to the window, then merges small settled segments; a line
    /// saying what it did.
    pub async fn prune_and_compact(&self, keep: Duration) -> Result<String> {
        let catalog = Catalog::read(self.target()).await?;
        let p = prune(self.target(), &catalog, keep).await?;
        let catalog = Catalog::read(self.target()).await?;
        let c = crate::compact(self.target(), self.keys(), &catalog, COMPACT_AFTER).await?;
        Ok(format!(
            "{} objects ({} bytes) pruned, {} segments merged into {}",
            p.objects, p.bytes, c.merged, c.written
        ))
    }

    /// Restores `n` stores chosen at random into a temporary place and
    /// checks them; a line saying what was found.
    pub async fn verify_sample(&self, n: usize) -> String {
        let catalog = match Catalog::read(self.target()).await {
            Ok(c) => c,
            Err(e) => return format!("failed: {e}"),
        };
        let chosen = choose(catalog.stores().map(String::from).collect(), n);
        match verify(self.target(), self.keys(), &catalog, &chosen).await {
            Ok(v) if v.failed.is_empty() => format!("{} store(s) restored and whole", v.ok.len()),
            Ok(v) => format!(
                "failed: {}",
                v.failed
                    .iter()
                    .map(|(s, e)| format!("{s}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(e) => format!("failed: {e}"),
        }
    }
}
