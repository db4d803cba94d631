//! Reading backups back: what a target holds, and restoring a store to its
//! latest state or to any moment the target still covers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use mantle_store::PageFile;

/// Objects fetched ahead of the one being applied: restoring a store
/// whose log is many small segments costs a round trip each otherwise.
const FETCH_AHEAD: usize = 8;

use crate::names::{self, Object};
use crate::seal::Keyring;
use crate::target::Target;
use crate::{BackupError, Result, segment};

/// A snapshot as listed: its parts found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotInfo {
    pub(crate) seq: u64,
    pub(crate) time_us: u64,
    pub(crate) parts: u32,
    pub(crate) found: Vec<(u32, String, u64)>,
}

impl SnapshotInfo {
    fn complete(&self) -> bool {
        self.found.len() == self.parts as usize
    }
}

/// A log segment as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogInfo {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) first_us: u64,
    pub(crate) last_us: u64,
    pub(crate) name: String,
    pub(crate) size: u64,
}

/// One generation of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Generation {
    pub(crate) snapshots: BTreeMap<(u64, u64), SnapshotInfo>,
    pub(crate) logs: Vec<LogInfo>,
}

impl Generation {
    /// The log segments that carry on from commit `after`, in order,
    /// without a gap (the longest where compaction left overlaps).
    pub(crate) fn chain_after(&self, after: u64) -> Vec<&LogInfo> {
        let mut chain = Vec::new();
        let mut next = after + 1;
        loop {
            let best = self
                .logs
                .iter()
                .filter(|l| l.first <= next && l.last >= next)
                .max_by_key(|l| l.last);
            match best {
                Some(l) => {
                    chain.push(l);
                    next = l.last + 1;
                }
                None => return chain,
            }
        }
    }

    /// The latest complete snapshot at or before `at_us`.
    fn snapshot_before(&self, at_us: u64) -> Option<&SnapshotInfo> {
        self.snapshots
            .values()
            .filter(|s| s.complete() && s.time_us <= at_us)
            .max_by_key(|s| (s.time_us, s.seq))
    }
}

/// Everything a target holds of one store.
#[derive(Debug, Clone, Default)]
pub struct StoreBackups {
    pub(crate) generations: BTreeMap<String, Generation>,
}

/// What a target holds of one store, in brief.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreSummary {
    /// The store's path in the site.
    pub store: String,
    /// Generations held.
    pub generations: usize,
    /// Complete snapshots held.
    pub snapshots: usize,
    /// Log segments held.
    pub segments: usize,
    /// Bytes held.
    pub bytes: u64,
    /// The earliest moment it can be restored to (µs since 1970).
    pub earliest_us: Option<u64>,
    /// The latest commit held (µs since 1970).
    pub latest_us: Option<u64>,
}

impl StoreBackups {
    fn summary(&self, store: &str) -> StoreSummary {
        let mut s = StoreSummary {
            store: store.into(),
            generations: self.generations.len(),
            snapshots: 0,
            segments: 0,
            bytes: 0,
            earliest_us: None,
            latest_us: None,
        };
        for g in self.generations.values() {
            for snap in g.snapshots.values() {
                s.bytes += snap.found.iter().map(|f| f.2).sum::<u64>();
                if snap.complete() {
                    s.snapshots += 1;
                    s.earliest_us =
                        Some(s.earliest_us.map_or(snap.time_us, |e| e.min(snap.time_us)));
                    s.latest_us = Some(s.latest_us.map_or(snap.time_us, |e| e.max(snap.time_us)));
                    if let Some(last) = g.chain_after(snap.seq).last() {
                        s.latest_us = s.latest_us.map(|e| e.max(last.last_us));
                    }
                }
            }
            s.segments += g.logs.len();
            s.bytes += g.logs.iter().map(|l| l.size).sum::<u64>();
        }
        s
    }
}

/// What a target holds: every store's objects, by store.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) stores: BTreeMap<String, StoreBackups>,
    /// Objects under `stores/` whose names are not ours.
    pub(crate) strays: Vec<String>,
}

impl Catalog {
    /// Lists the target.
    pub async fn read(target: &Target) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        for (name, size) in target.list(names::STORES).await? {
            let Some(n) = names::parse(&name) else {
                catalog.strays.push(name);
                continue;
            };
            let g = catalog
                .stores
                .entry(n.store)
                .or_default()
                .generations
                .entry(n.generation)
                .or_default();
            match n.object {
                Object::Snapshot {
                    seq,
                    time_us,
                    part,
                    parts,
                } => {
                    let s = g.snapshots.entry((seq, time_us)).or_insert(SnapshotInfo {
                        seq,
                        time_us,
                        parts,
                        found: Vec::new(),
                    });
                    if s.parts == parts {
                        s.found.push((part, name, size));
                        s.found.sort();
                    }
                }
                Object::Log {
                    first,
                    last,
                    first_us,
                    last_us,
                } => g.logs.push(LogInfo {
                    first,
                    last,
                    first_us,
                    last_us,
                    name,
                    size,
                }),
            }
        }
        for s in catalog.stores.values_mut() {
            for g in s.generations.values_mut() {
                g.logs.sort_by_key(|l| (l.first, l.last));
            }
        }
        Ok(catalog)
    }

    /// The stores held, in order.
    pub fn stores(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// A summary of each store.
    pub fn summaries(&self) -> Vec<StoreSummary> {
        self.stores.iter().map(|(k, v)| v.summary(k)).collect()
    }

    /// Objects in the target that are not ours (or whose names were
    /// damaged).
    pub fn strays(&self) -> &[String] {
        &self.strays
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    /// The store.
    pub store: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The generation it came from.
    pub generation: String,
    /// The last commit applied (0: the snapshot alone).
    pub seq: u64,
    /// When that commit (or the snapshot) was made (µs since 1970).
    pub time_us: u64,
    /// Bytes read from the target.
    pub bytes_read: u64,
}

/// Restores `store` as of `at_us` (µs since 1970; `None`: the latest
/// state held) to the new file `dest`, then checks its integrity.
///
/// The file holds exactly the commits made at or before the moment:
/// whole transactions, none half-applied.
pub async fn restore_store(
    target: &Target,
    keys: &Keyring,
    catalog: &Catalog,
    store: &str,
    at_us: Option<u64>,
    dest: &Path,
) -> Result<Restored> {
    let at = at_us.unwrap_or(u64::MAX);
    let moment = at_us.map_or_else(|| "its latest state".to_string(), crate::format_us);
    let not = |reason: String| BackupError::NotRestorable {
        store: store.into(),
        moment: moment.clone(),
        reason,
    };
    let held = catalog
        .stores
        .get(store)
        .ok_or_else(|| not("the target holds no backup of it".into()))?;
    // The latest complete snapshot at or before the moment, in any
    // generation: later generations began after earlier ones ended.
    let (generation, held_gen, snap) = held
        .generations
        .iter()
        .filter_map(|(name, g)| g.snapshot_before(at).map(|s| (name, g, s)))
        .max_by_key(|(_, _, s)| (s.time_us, s.seq))
        .ok_or_else(|| not("no complete snapshot that early".into()))?;
    if dest.exists() {
        return Err(BackupError::io(
            dest,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "destination exists"),
        ));
    }
    if let Some(parent) = dest.parent() {
        mantle_store::create_private_dir_all(parent).map_err(|e| BackupError::io(parent, e))?;
    }
    let mut bytes_read = 0u64;
    let partial = dest.with_extension("restoring");
    let _ = std::fs::remove_file(&partial);
    let result = async {
        {
            let mut out = mantle_store::private_file_options()
                .write(true)
                .create_new(true)
                .open(&partial)
                .map_err(|e| BackupError::io(&partial, e))?;
            // Fetched a few at a time (a round trip each), written in order.
            let names: Vec<String> = snap.found.iter().map(|(_, n, _)| n.clone()).collect();
            let mut parts = fetch_ahead(target, names, |n| n.clone());
            while let Some(got) = parts.next().await {
                let (name, sealed) = got?;
                bytes_read += sealed.len() as u64;
                let part = keys.open(&name, &sealed)?;
                std::io::Write::write_all(&mut out, &part)
                    .map_err(|e| BackupError::io(&partial, e))?;
            }
        }
        let mut file = PageFile::open(&partial)?;
        let (mut seq, mut time_us) = (snap.seq, snap.time_us);
        let wanted: Vec<LogInfo> = held_gen
            .chain_after(snap.seq)
            .into_iter()
            .take_while(|log| log.first_us <= at)
            .cloned()
            .collect();
        let mut logs = fetch_ahead(target, wanted, |l| l.name.clone());
        'segments: while let Some(got) = logs.next().await {
            let (log, sealed) = got?;
            bytes_read += sealed.len() as u64;
            let plain = keys.open(&log.name, &sealed)?;
            let commits = segment::read(&plain).map_err(|r| BackupError::corrupt(&log.name, r))?;
            if commits.first().map(|c| c.seq) != Some(log.first)
                || commits.last().map(|c| c.seq) != Some(log.last)
            {
                return Err(BackupError::corrupt(
                    &log.name,
                    "its commits are not the ones its name lists",
                ));
            }
            for c in commits {
                if c.seq <= seq {
                    continue;
                }
                if c.time_us > at {
                    break 'segments;
                }
                let commit = c.resolve(&log.name, |n, page| Ok(file.read_page(n, page)?))?;
                file.apply(&commit)?;
                (seq, time_us) = (c.seq, c.time_us);
            }
        }
        file.finish()?;
        check_integrity(&partial, store)?;
        std::fs::rename(&partial, dest).map_err(|e| BackupError::io(dest, e))?;
        Ok::<_, BackupError>((seq, time_us))
    }
    .await;
    match result {
        Ok((seq, time_us)) => Ok(Restored {
            store: store.into(),
            path: dest.to_path_buf(),
            generation: generation.clone(),
            seq,
            time_us,
            bytes_read,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Fetches each of `items`' objects (named by `name`), up to
/// [`FETCH_AHEAD`] at a time, yielding them in order.
fn fetch_ahead<T: Send + 'static>(
    target: &Target,
    items: Vec<T>,
    name: fn(&T) -> String,
) -> impl futures::Stream<Item = Result<(T, Vec<u8>)>> + Send + 'static {
    let target = target.clone();
    futures::stream::iter(items)
        .map(move |item| {
            let target = target.clone();
            async move {
                let sealed = target.get(&name(&item)).await?;
                Ok((item, sealed))
            }
        })
        .buffered(FETCH_AHEAD)
}

/// Runs SQLite's integrity check on a restored file.
fn check_integrity(path: &Path, store: &str) -> Result<()> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| BackupError::Integrity {
                store: store.into(),
                reason: e.to_string(),
            })?;
    let report: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| BackupError::Integrity {
            store: store.into(),
            reason: e.to_string(),
        })?;
    drop(conn);
    // Opening in WAL mode leaves its side files; the copy is whole without them.
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    if report != "ok" {
        return Err(BackupError::Integrity {
            store: store.into(),
            reason: report,
        });
    }
    Ok(())
}

/// What a verification found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// Stores restored and found whole.
    pub ok: Vec<Restored>,
    /// Stores that failed, with why.
    pub failed: Vec<(String, String)>,
}

/// Restores each of `stores` (to their latest state) into a temporary
/// directory and checks it; every object read is checked on the way.
pub async fn verify(
    target: &Target,
    keys: &Keyring,
    catalog: &Catalog,
    stores: &[String],
) -> Result<Verified> {
    let dir = std::env::temp_dir().join(format!("mantle-verify-{}", crate::now_us()));
    mantle_store::create_private_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
    let mut out = Verified {
        ok: Vec::new(),
        failed: Vec::new(),
    };
    for (i, store) in stores.iter().enumerate() {
        let dest = dir.join(format!("{i}.store"));
        match restore_store(target, keys, catalog, store, None, &dest).await {
            Ok(r) => out.ok.push(r),
            Err(e) => out.failed.push((store.clone(), e.to_string())),
        }
        let _ = std::fs::remove_file(&dest);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}
