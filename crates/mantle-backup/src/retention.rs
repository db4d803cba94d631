//! Pruning what the retention window no longer needs.

use crate::Result;
use crate::restore::Catalog;
use crate::target::Target;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Objects deleted.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// The objects of one store that restoring to any moment from `cutoff_us`
/// on does not need: everything before the newest complete snapshot taken
/// at or before the cutoff (which is kept, as the base of the window).
pub(crate) fn unneeded(store: &crate::restore::StoreBackups, cutoff_us: u64) -> Vec<(String, u64)> {
    let base = store
        .generations
        .iter()
        .flat_map(|(g, generation)| {
            generation
                .snapshots
                .values()
                .filter(|s| s.found.len() == s.parts as usize && s.time_us <= cutoff_us)
                .map(move |s| (s.time_us, s.seq, g.clone()))
        })
        .max();
    let Some((base_us, base_seq, base_gen)) = base else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (g, generation) in &store.generations {
        let older_generation = *g < base_gen;
        for s in generation.snapshots.values() {
            if older_generation || (*g == base_gen && s.time_us < base_us) {
                out.extend(s.found.iter().map(|(_, n, size)| (n.clone(), *size)));
            }
        }
        for l in &generation.logs {
            if older_generation || (*g == base_gen && l.last <= base_seq) {
                out.push((l.name.clone(), l.size));
            }
        }
    }
    out
}

/// Deletes what no restore within the window (`keep` back from now) needs.
pub async fn prune(
    target: &Target,
    catalog: &Catalog,
    keep: std::time::Duration,
) -> Result<Pruned> {
    let cutoff = crate::now_us().saturating_sub(keep.as_micros() as u64);
    let mut pruned = Pruned::default();
    for store in catalog.stores.values() {
        for (name, size) in unneeded(store, cutoff) {
            target.delete(&name).await?;
            pruned.objects += 1;
            pruned.bytes += size;
        }
    }
    Ok(pruned)
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Segments merged away.
    pub merged: usize,
    /// Segments written in their place.
    pub written: usize,
}

/// Segments smaller than this are merged with their neighbours.
const SMALL_SEGMENT: u64 = 4 << 20;
/// A merged segment grows to at most this (a restore holds up to eight
/// fetched ahead).
const MERGED_MAX: u64 = 16 << 20;

/// Whether a log segment of `size` bytes (sealed) is merged with its
/// neighbours once it has settled (and so compressed then: one that is
/// not is compressed when it is sealed).
pub(crate) fn merged_later(size: u64) -> bool {
    size < SMALL_SEGMENT
}

/// Merges runs of small consecutive log segments older than `settled`
/// into larger ones, so a restore reads a few objects, not one per
/// second of changes. A merged segment is stored before the ones it
/// replaces are deleted: a restore meanwhile sees both, and takes either.
pub async fn compact(
    target: &Target,
    keys: &crate::Keyring,
    catalog: &Catalog,
    settled: std::time::Duration,
) -> Result<Compacted> {
    let cutoff = crate::now_us().saturating_sub(settled.as_micros() as u64);
    let eligible = |l: &crate::restore::LogInfo| merged_later(l.size) && l.last_us <= cutoff;
    let mut done = Compacted::default();
    for (store, backups) in &catalog.stores {
        for (generation, held) in &backups.generations {
            let Some(first) = held.logs.first() else {
                continue;
            };
            let chain = held.chain_after(first.first - 1);
            let mut i = 0;
            while i < chain.len() {
                let (mut j, mut size) = (i, 0u64);
                while j < chain.len()
                    && eligible(chain[j])
                    && size + chain[j].size <= MERGED_MAX
                    && (j == i || chain[j - 1].last + 1 == chain[j].first)
                {
                    size += chain[j].size;
                    j += 1;
                }
                if j - i > 1 {
                    merge(target, keys, store, generation, &chain[i..j]).await?;
                    done.merged += j - i;
                    done.written += 1;
                }
                i = j.max(i + 1);
            }
        }
    }
    Ok(done)
}

async fn merge(
    target: &Target,
    keys: &crate::Keyring,
    store: &str,
    generation: &str,
    run: &[&crate::restore::LogInfo],
) -> Result<()> {
    let mut contents = Vec::new();
    for log in run {
        let sealed = target.get(&log.name).await?;
        contents.push((&log.name, keys.open(&log.name, &sealed)?));
    }
    let mut commits = Vec::new();
    for (name, c) in &contents {
        commits.extend(
            crate::segment::read(c).map_err(|r| crate::BackupError::corrupt(name.as_str(), r))?,
        );
    }
    let plain = crate::segment::merge(&commits);
    let (first, last) = (run[0], run[run.len() - 1]);
    let name = crate::canonical(&crate::names::log(
        store,
        generation,
        first.first,
        last.last,
        first.first_us,
        last.last_us,
    ));
    target.put(&name, keys.seal(&name, &plain)).await?;
    for log in run {
        target.delete(&log.name).await?;
    }
    Ok(())
}
