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
