//! The stores a node owns, and the [`Fence`](mantle_store::Fence) its
//! stores commit through: a store may commit while the node's lease is
//! valid by its own clock (see `lease.rs`) and the node confirmed its
//! ownership in the directory under the current lease generation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::directory::Owned;
use crate::{ClusterError, NodeLease, Result};

struct Held {
    owned: Owned,
    generation: u64,
}

/// The stores this node owns, by file: the [`Fence`](mantle_store::Fence)
/// its stores are opened with. A store may commit while the node's lease
/// is valid by its own clock and the node confirmed its ownership in the
/// directory under the current lease generation.
pub struct Ownership {
    lease: Arc<NodeLease>,
    /// The site directory (absolute): stores are named by their files'
    /// paths in it.
    dir: PathBuf,
    held: Mutex<HashMap<PathBuf, Held>>,
    /// Stores being moved away: neither opened nor written here until the
    /// move ends (see `moving.rs`).
    moving: Mutex<std::collections::HashSet<PathBuf>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("node", &self.lease.node())
            .field("stores", &self.held.lock().len())
            .finish()
    }
}

impl Ownership {
    /// No stores yet, under `lease`, for the site in `dir`. Whenever the
    /// node joins again with a new lease, a background task confirms in
    /// the directory that it still owns what it held (see
    /// [`Ownership::confirm`]).
    pub fn new(lease: Arc<NodeLease>, dir: &Path) -> Arc<Self> {
        let mut generations = lease.generations();
        let ownership = Arc::new(Self {
            lease,
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            held: Mutex::new(HashMap::new()),
            moving: Mutex::default(),
        });
        let weak = Arc::downgrade(&ownership);
        tokio::spawn(async move {
            while generations.changed().await.is_ok() {
                let Some(ownership) = weak.upgrade() else {
                    return;
                };
                // Until every store is confirmed or known lost (etcd may
                // still be coming back), or a newer generation arrives.
                while !ownership.confirm().await {
                    if generations.has_changed().unwrap_or(true) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        });
        ownership
    }

    /// Confirms, under the current lease generation, every store held
    /// under an earlier one: kept if the directory still names this node
    /// with the same epoch (no one took it meanwhile), dropped (fenced for
    /// good) otherwise. Whether every store was decided (`false`: etcd did
    /// not answer for some; try again).
    pub async fn confirm(&self) -> bool {
        let generation = self.lease.valid().1;
        let stale: Vec<(PathBuf, Owned)> = self
            .held
            .lock()
            .iter()
            .filter(|(_, h)| h.generation != generation)
            .map(|(p, h)| (p.clone(), h.owned.clone()))
            .collect();
        let mut decided = true;
        for (path, was) in stale {
            match self.lease.directory().owner(&was.store).await {
                Ok(now) => {
                    let mut held = self.held.lock();
                    match now {
                        Some(now) if now.owner == was.owner => {
                            held.insert(
                                path,
                                Held {
                                    owned: now,
                                    generation,
                                },
                            );
                        }
                        _ => {
                            tracing::warn!(store = %was.store, "store taken over while this node's lease was gone");
                            held.remove(&path);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(store = %was.store, error = %e, "cannot confirm ownership yet");
                    decided = false;
                }
            }
        }
        decided
    }

    /// The directory name of the store kept in the file `path`: its path
    /// in the site directory without the extension (`users/alice-1`), the
    /// node's own site store as `sites/NODE`. `None` for a file outside
    /// the site directory.
    pub fn store_name(&self, path: &Path) -> Option<String> {
        store_name(&self.dir, self.lease.node(), path)
    }

    /// The node's lease.
    pub fn lease(&self) -> &Arc<NodeLease> {
        &self.lease
    }

    /// Claims `store` (kept in the file `path`) for this node, or confirms
    /// that it still owns it: from now on the file may commit.
    pub async fn acquire(&self, store: &str, path: &Path) -> Result<Owned> {
        let (valid, generation) = self.lease.valid();
        if !valid {
            return Err(self.no_lease());
        }
        let owned = self
            .lease
            .directory()
            .claim(store, self.lease.node())
            .await?;
        self.held.lock().insert(
            path.to_path_buf(),
            Held {
                owned: owned.clone(),
                generation,
            },
        );
        Ok(owned)
    }

    /// Records `owned` (just taken by a transfer or a takeover to this
    /// node) for the file `path`.
    pub fn adopt(&self, owned: Owned, path: &Path) {
        let generation = self.lease.valid().1;
        self.held
            .lock()
            .insert(path.to_path_buf(), Held { owned, generation });
    }

    /// Stops writing the file `path` (before its store is given away);
    /// what it was held as.
    pub fn release(&self, path: &Path) -> Option<Owned> {
        self.held.lock().remove(path).map(|h| h.owned)
    }

    /// Stops writing the file `path` for a move: it is neither written nor
    /// opened again here until [`Ownership::moved`] (the move is over).
    pub fn quiesce(&self, path: &Path) -> Option<Owned> {
        self.moving.lock().insert(path.to_path_buf());
        self.release(path)
    }

    /// The move of the file `path` is over (done, or given up: then
    /// [`Ownership::acquire`] takes it back).
    pub fn moved(&self, path: &Path) {
        self.moving.lock().remove(path);
    }

    /// The store held as the file `path`, with its epoch.
    pub fn held(&self, path: &Path) -> Option<Owned> {
        self.held.lock().get(path).map(|h| h.owned.clone())
    }

    fn no_lease(&self) -> ClusterError {
        ClusterError::NoLease {
            node: self.lease.node().to_string(),
            why: "it may have run out by this node's clock".into(),
        }
    }
}

/// See [`Ownership::store_name`].
pub fn store_name(dir: &Path, node: &str, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(dir).ok()?.to_str()?;
    // App stores are each node's own, as the site store is: two nodes
    // with one offering each have an `apps/NAME` of their own.
    let name = mantle_site::node_store_name(node, relative);
    (!name.is_empty()).then_some(name)
}

impl mantle_store::Fence for Ownership {
    /// Claims the store for this node, or confirms it owns it.
    fn opening<'a>(&'a self, store: &'a Path) -> mantle_store::FenceFuture<'a> {
        Box::pin(async move {
            if self.moving.lock().contains(store) {
                return Err(format!(
                    "{} is being moved to another node",
                    self.store_name(store).unwrap_or_default()
                ));
            }
            let name = self.store_name(store).ok_or_else(|| {
                format!(
                    "{} is outside the site directory {}",
                    store.display(),
                    self.dir.display()
                )
            })?;
            self.acquire(&name, store)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn check(&self, store: &Path) -> std::result::Result<(), String> {
        let (valid, generation) = self.lease.valid();
        if !valid {
            return Err(self.no_lease().to_string());
        }
        match self.held.lock().get(store) {
            None => Err(format!(
                "node {} does not own this store",
                self.lease.node()
            )),
            Some(h) if h.generation != generation => Err(format!(
                "node {} has not confirmed its ownership of {} since it joined again",
                self.lease.node(),
                h.owned.store
            )),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store_name;
    use std::path::Path;

    #[test]
    fn stores_are_named_by_their_files_in_the_site() {
        let dir = Path::new("/srv/site");
        let name = |p: &str| store_name(dir, "n1", Path::new(p));
        assert_eq!(name("/srv/site/site.store").as_deref(), Some("sites/n1"));
        assert_eq!(
            name("/srv/site/apps/notes.store").as_deref(),
            Some("apps/n1/notes")
        );
        assert_eq!(
            name("/srv/site/users/alice-1.mantle").as_deref(),
            Some("users/alice-1")
        );
        assert_eq!(name("/srv/other/users/alice-1.mantle"), None);
        assert_eq!(name("/srv/site"), None);
    }
}
