//! [`Backup`]: the replicator a site's stores are opened with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use mantle_store::{Replica, Replicator};
use parking_lot::Mutex;

use crate::config::{BackupConfig, Mode};
use crate::follow::{StoreBackup, StoreStatus};
use crate::seal::{BackupKey, Keyring};
use crate::target::Target;
use crate::{BackupError, Result, continuity};

/// The statistics namespace backups report in.
pub const STATS_NAMESPACE: &str = "Backup";

/// Counters in the "Backup" statistics namespace.
pub(crate) struct BackupStats {
    pub(crate) commits: mantle_stats::Counter,
    pub(crate) objects: mantle_stats::Counter,
    pub(crate) bytes: mantle_stats::Counter,
    pub(crate) failures: mantle_stats::Counter,
    pub(crate) snapshots: mantle_stats::Counter,
    pub(crate) snapshot_bytes: mantle_stats::Counter,
    pub(crate) generations: mantle_stats::Counter,
    pub(crate) last_error: mantle_stats::TextValue,
}

impl BackupStats {
    fn new(stats: &mantle_stats::StatsRegistry, shared: Weak<Shared>) -> Self {
        let ns = stats.namespace(STATS_NAMESPACE);
        let backlog = shared.clone();
        ns.function(
            "Backlog Bytes",
            "Bytes of commits not yet stored in the target.",
            move |_| {
                let s = backlog.upgrade()?;
                Some(
                    s.statuses()
                        .iter()
                        .map(|s| s.backlog_bytes as f64)
                        .sum::<f64>(),
                )
            },
        );
        ns.function(
            "Lag Seconds",
            "How long the oldest commit not yet stored has waited.",
            move |_| {
                let s = shared.upgrade()?;
                Some(
                    s.statuses()
                        .iter()
                        .map(|s| s.lag_seconds)
                        .fold(0.0, f64::max),
                )
            },
        );
        BackupStats {
            commits: ns.counter("Commits", "Commits logged for backup."),
            objects: ns.counter("Objects Stored", "Objects written to the target."),
            bytes: ns.counter("Bytes Stored", "Bytes written to the target."),
            failures: ns.counter(
                "Failed Writes",
                "Writes the target refused or failed (retried).",
            ),
            snapshots: ns.counter("Snapshots", "Snapshots stored."),
            snapshot_bytes: ns.counter("Snapshot Bytes", "Bytes of store files snapshotted."),
            generations: ns.counter(
                "Generations Started",
                "New generations (a fresh snapshot after an open that could not go on).",
            ),
            last_error: ns.text("Last Error", "The target's last refusal."),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) target_id: String,
    pub(crate) keys: Keyring,
    pub(crate) mode: Mode,
    pub(crate) snapshot_every: Duration,
    /// Set after the stats hold weak references to `Shared` (so not
    /// through `Arc::get_mut`): behind locks.
    close_patience: Mutex<Duration>,
    retry_max: Mutex<Duration>,
    pub(crate) root: PathBuf,
    pub(crate) spool: PathBuf,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) stats: BackupStats,
    stores: Mutex<HashMap<String, Weak<StoreBackup>>>,
    shut_down: AtomicBool,
}

impl Shared {
    pub(crate) fn count_put(&self, put: &Result<()>, len: u64) {
        match put {
            Ok(()) => {
                self.stats.objects.inc();
                self.stats.bytes.add(len);
            }
            Err(e) => {
                self.stats.failures.inc();
                self.stats.last_error.set(e.to_string());
                tracing::debug!("backup write failed: {e}");
            }
        }
    }

    /// How long a closing store waits for its last segments.
    pub(crate) fn close_patience(&self) -> Duration {
        *self.close_patience.lock()
    }

    /// The longest wait between retries of a refused write.
    pub(crate) fn retry_max(&self) -> Duration {
        *self.retry_max.lock()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// A new file name in the spool.
    pub(crate) fn spool_path(&self, kind: &str) -> PathBuf {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("the system's random source");
        self.spool.join(format!(
            "{:016}-{}-{kind}",
            crate::now_us(),
            u64::from_be_bytes(r)
        ))
    }

    /// Keeps a sealed object in the spool until it can be stored.
    pub(crate) fn spool_write(&self, name: &str, sealed: &[u8]) -> Result<PathBuf> {
        let path = self.spool_path("object");
        let mut body = Vec::with_capacity(4 + name.len() + sealed.len());
        body.extend_from_slice(&(name.len() as u32).to_be_bytes());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(sealed);
        let tmp = path.with_extension("tmp");
        mantle_store::private_file_options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &body).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| BackupError::io(&path, e))?;
        Ok(path)
    }

    fn statuses(&self) -> Vec<StoreStatus> {
        let stores: Vec<Arc<StoreBackup>> = self
            .stores
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        stores.iter().map(|s| s.status()).collect()
    }

    pub(crate) fn forget(&self, store: &str, which: &Arc<StoreBackup>) {
        let mut stores = self.stores.lock();
        if stores
            .get(store)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(which)))
        {
            stores.remove(store);
        }
    }
}

/// Reads a spooled object: its name and sealed bytes.
pub(crate) fn read_spooled(path: &Path) -> Result<(String, Vec<u8>)> {
    let body = std::fs::read(path).map_err(|e| BackupError::io(path, e))?;
    let bad = || BackupError::corrupt(path.display(), "not a spooled object");
    let len =
        u32::from_be_bytes(body.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
    let name = body.get(4..4 + len).ok_or_else(bad)?;
    let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
    Ok((name, body[4 + len..].to_vec()))
}

/// Continuous backup of a site's stores: give it to the stores' config
/// ([`StoreConfig::replicator`](mantle_store::StoreConfig::replicator)) and
/// every store opened with that config (site, app and user stores,
/// including ones created later) is backed up.
///
/// ```no_run
/// # async fn f() -> mantle_backup::Result<()> {
/// use std::sync::Arc;
/// let site = std::path::Path::new("/srv/site");
/// let config = mantle_backup::BackupConfig { target: "file:///srv/backups".into(), ..Default::default() };
/// let backup = mantle_backup::Backup::open(site, &config, &mantle_stats::StatsRegistry::new())?;
/// let stores = mantle_store::StoreConfig::new(mantle_store::Registry::new())
///     .replicator(Arc::new(backup.clone()));
/// # let _ = stores; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Backup {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("target", &self.shared.target.name)
            .finish()
    }
}

/// Reads the keyring `config` names (relative to `site`); with `create`,
/// makes the key file if it does not exist yet.
pub fn keyring(config: &BackupConfig, site: &Path, create: bool) -> Result<Keyring> {
    let path = site.join(&config.key_file);
    let key = if create && !path.exists() {
        BackupKey::create_file(&path)?
    } else {
        BackupKey::read_file(&path)?
    };
    let mut ring = Keyring::new(key);
    for old in &config.old_key_files {
        ring = ring.with_older(BackupKey::read_file(&site.join(old))?);
    }
    Ok(ring)
}

impl Backup {
    /// Starts backing up the site at `site` as `config` says (making its
    /// key on first use). Needs a tokio runtime; uploads run on it.
    pub fn open(
        site: &Path,
        config: &BackupConfig,
        stats: &mantle_stats::StatsRegistry,
    ) -> Result<Backup> {
        config.validate()?;
        let keys = keyring(config, site, true)?;
        let target = Target::open(config, site)?;
        Self::with_target(site, config, keys, target, stats)
    }

    /// [`open`](Self::open) with a given keyring and target.
    pub fn with_target(
        site: &Path,
        config: &BackupConfig,
        keys: Keyring,
        target: Target,
        stats: &mantle_stats::StatsRegistry,
    ) -> Result<Backup> {
        let root = std::path::absolute(site).map_err(|e| BackupError::io(site, e))?;
        let spool = root.join("backup-spool");
        mantle_store::create_private_dir_all(&spool).map_err(|e| BackupError::io(&spool, e))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| BackupError::Config("backup needs a tokio runtime".into()))?;
        let shared = Arc::new_cyclic(|me: &Weak<Shared>| Shared {
            target_id: target.name.clone(),
            target,
            keys,
            mode: config.mode().expect("validated"),
            snapshot_every: config.snapshot_every().expect("validated"),
            close_patience: Mutex::new(Duration::from_secs(5)),
            retry_max: Mutex::new(Duration::from_secs(30)),
            root,
            spool,
            handle,
            stats: BackupStats::new(stats, me.clone()),
            stores: Mutex::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
        });
        Ok(Backup { shared })
    }

    /// How long a closing store waits for its last segments before
    /// leaving them to the spool (5 s by default).
    pub fn close_patience(self, patience: Duration) -> Self {
        *self.shared.close_patience.lock() = patience;
        self
    }

    /// The longest wait between retries of a refused write (30 s by
    /// default).
    pub fn retry_max(self, max: Duration) -> Self {
        *self.shared.retry_max.lock() = max;
        self
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.shared.target
    }

    /// The keyring objects are sealed with.
    pub fn keys(&self) -> &Keyring {
        &self.shared.keys
    }

    /// The open stores' backup state.
    pub fn status(&self) -> Vec<StoreStatus> {
        let mut all = self.shared.statuses();
        all.sort_by(|a, b| a.store.cmp(&b.store));
        all
    }

    /// Waits until every open store's commits so far are stored, at most
    /// `patience`; whether they are.
    pub async fn flush(&self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let behind = self
                .status()
                .iter()
                .any(|s| s.backlog_bytes > 0 || !s.snapshot_stored);
            if !behind && self.spooled().is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn spooled(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.shared.spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("-object"))
            .collect();
        files.sort();
        files
    }

    /// Stores what waits in the spool (segments of stores closed while the
    /// target refused, or left by an earlier run), oldest first; returns
    /// how many are left.
    pub async fn drain_spool(&self) -> usize {
        let files = self.spooled();
        let mut left = files.len();
        for path in files {
            let Ok((name, bytes)) = read_spooled(&path) else {
                tracing::warn!(file = %path.display(), "unreadable spool file left alone");
                continue;
            };
            let len = bytes.len() as u64;
            let put = self.shared.target.put(&name, bytes).await;
            self.shared.count_put(&put, len);
            if put.is_err() {
                break;
            }
            let _ = std::fs::remove_file(&path);
            left -= 1;
        }
        left
    }

    /// Stops retrying snapshot uploads (the site is shutting down).
    pub fn shut_down(&self) {
        self.shared.shut_down.store(true, Ordering::Release);
    }

    /// The site directory.
    pub fn site(&self) -> &Path {
        &self.shared.root
    }
}

impl Replicator for Backup {
    fn attach(&self, store: &Path, written: bool) -> Option<Arc<dyn Replica>> {
        let key = match store.strip_prefix(&self.shared.root) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => {
                tracing::warn!(store = %store.display(), "store outside the site is not backed up");
                return None;
            }
        };
        let caught = continuity::take(store, &self.shared.target_id);
        let resume = caught.filter(|_| !written).map(|c| (c.generation, c.seq));
        let backup = StoreBackup::start(self.shared.clone(), key.clone(), resume);
        self.shared
            .stores
            .lock()
            .insert(key, Arc::downgrade(&backup));
        Some(backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_patience_and_retry_settings_take_effect() {
        let site = tempfile::tempdir().unwrap();
        let config = BackupConfig {
            target: "backups".into(),
            ..BackupConfig::default()
        };
        let backup = Backup::open(site.path(), &config, &mantle_stats::StatsRegistry::new())
            .unwrap()
            .retry_max(Duration::from_millis(200))
            .close_patience(Duration::from_secs(2));
        assert_eq!(backup.shared.retry_max(), Duration::from_millis(200));
        assert_eq!(backup.shared.close_patience(), Duration::from_secs(2));
    }
}
