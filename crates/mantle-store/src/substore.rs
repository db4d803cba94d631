//! Substores: a parent store (the site store) keeps a [`SubStore`] item
//! per child store file (a user store, an app store), opened through a
//! [`StoreCache`].

use std::path::{Path, PathBuf};

use crate::cache::StoreCache;
use crate::store::Store;
use crate::{Error, Item, Result};

/// An item naming a child store file, relative to its parent's directory.
///
/// ```no_run
/// # use mantle_store::*;
/// # async fn f(site: Store, cache: StoreCache) -> Result<()> {
/// let id = site
///     .transact(|tx| tx.insert(&SubStore::new("alice@example.com", "users/alice.store")))
///     .await?;
/// let alice = site.read(move |r| r.get(id)).await?.expect("just made");
/// let store = alice.open(&site, &cache).await?;
/// # Ok(()) }
/// ```
#[derive(Item, Debug, Clone, PartialEq, Eq)]
#[item(name = "mantle_substore", version = 1)]
pub struct SubStore {
    /// A name to find it by (a user's login, `app:NAME`).
    #[item(index)]
    pub name: String,
    /// The file, relative to the parent store's directory.
    pub path: String,
}

impl SubStore {
    /// A substore item for `path` (relative to the parent's directory).
    pub fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
        }
    }

    /// The child's file, given its parent store.
    pub fn file(&self, parent: &Store) -> PathBuf {
        parent
            .path()
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.path)
    }

    /// Opens the child store through `cache` (creating its directory and
    /// file if needed).
    pub async fn open(&self, parent: &Store, cache: &StoreCache) -> Result<Store> {
        let file = self.file(parent);
        if let Some(dir) = file.parent() {
            crate::files::create_private_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        cache.get(file).await
    }
}
