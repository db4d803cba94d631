//! The bounded cache of open stores.
//!
//! Child stores (see [`SubStore`](crate::SubStore)) are opened lazily
//! through a [`StoreCache`], which keeps at most `capacity` stores open and
//! closes the least recently used, so a process can serve many more stores
//! than it has file handles.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures::StreamExt;
use lru::LruCache;
use parking_lot::Mutex;

use crate::store::{Store, StoreConfig, StoreInner};
use crate::{Error, Result};

/// Drops an evicted handle off the async runtime: if it was the last one,
/// closing the file checkpoints the WAL, which blocks.
fn close_in_background(evicted: Option<Store>) {
    if let Some(store) = evicted {
        tokio::task::spawn_blocking(move || drop(store));
    }
}

/// How a cache has been used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered by an open store.
    pub hits: u64,
    /// Lookups that had to open the file.
    pub misses: u64,
    /// Stores currently held open by the cache.
    pub open: usize,
}

/// A bounded set of open stores, least recently used closed first.
///
/// A store evicted while someone still holds a handle stays open for them;
/// asking the cache for it again returns that same store rather than
/// opening the file a second time.
#[derive(Clone)]
pub struct StoreCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    config: StoreConfig,
    capacity: NonZeroUsize,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct CacheState {
    open: LruCache<PathBuf, Store>,
    /// Evicted but possibly still in use elsewhere.
    evicted: HashMap<PathBuf, Weak<StoreInner>>,
    /// One gate per path being opened, so a file is opened once.
    opening: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>,
    /// Set by `close_all`: from then on nothing is opened. (A background
    /// task still running while its store closes, delivering to another
    /// store, say, would otherwise reopen a store already closed, and hold
    /// its writer lock past the close.)
    closed: bool,
}

impl StoreCache {
    /// A cache keeping at most `capacity` stores open, opened with `config`.
    pub fn new(config: StoreConfig, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("max(1) is non-zero");
        Self {
            inner: Arc::new(CacheInner {
                config,
                capacity,
                state: Mutex::new(CacheState {
                    open: LruCache::new(capacity),
                    evicted: HashMap::new(),
                    opening: HashMap::new(),
                    closed: false,
                }),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// The config stores are opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    fn lookup(&self, path: &Path) -> Option<Store> {
        let mut st = self.inner.state.lock();
        if st.closed {
            return None;
        }
        if let Some(s) = st.open.get(path) {
            return Some(s.clone());
        }
        let revived = st
            .evicted
            .get(path)
            .and_then(Weak::upgrade)
            .map(|inner| Store { inner })?;
        st.evicted.remove(path);
        let evicted = self.insert(&mut st, path.to_path_buf(), revived.clone());
        drop(st);
        close_in_background(evicted);
        Some(revived)
    }

    /// Adds a store; returns the one evicted to make room, to be dropped
    /// outside the lock.
    fn insert(&self, st: &mut CacheState, path: PathBuf, store: Store) -> Option<Store> {
        let (old_path, old) = st.open.push(path, store)?;
        st.evicted.insert(old_path, old.downgrade());
        if st.evicted.len() > 2 * self.inner.capacity.get() {
            st.evicted.retain(|_, w| w.strong_count() > 0);
        }
        Some(old)
    }

    /// The open store for `path`, opening (or creating) it if needed.
    /// After [`close_all`](Self::close_all), [`Error::Closed`].
    pub async fn get(&self, path: impl AsRef<Path>) -> Result<Store> {
        let path = std::path::absolute(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))?;
        if let Some(s) = self.lookup(&path) {
            self.hit();
            return Ok(s);
        }
        let gate = self
            .inner
            .state
            .lock()
            .opening
            .entry(path.clone())
            .or_default()
            .clone();
        let _opening = gate.lock().await;
        if self.inner.state.lock().closed {
            return Err(Error::Closed(path));
        }
        if let Some(s) = self.lookup(&path) {
            self.hit();
            return Ok(s);
        }
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
        if let Some(stats) = &self.inner.config.stats {
            stats.cache_miss();
        }
        let opened = Store::open(&path, &self.inner.config).await;
        let added = {
            let mut st = self.inner.state.lock();
            st.opening.remove(&path);
            let store = opened?;
            if st.closed {
                Err(store)
            } else {
                let evicted = self.insert(&mut st, path.clone(), store.clone());
                Ok((store, evicted))
            }
        };
        match added {
            Ok((store, evicted)) => {
                close_in_background(evicted);
                Ok(store)
            }
            Err(store) => {
                // `close_all` ran while the file was being opened.
                store.close().await;
                Err(Error::Closed(path))
            }
        }
    }

    fn hit(&self) {
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        if let Some(stats) = &self.inner.config.stats {
            stats.cache_hit();
        }
    }

    /// Takes the store for `path` out of the cache (for example to close
    /// it before deleting its file); returns it if it was open.
    pub fn remove(&self, path: impl AsRef<Path>) -> Option<Store> {
        let path = std::path::absolute(path.as_ref()).ok()?;
        let mut st = self.inner.state.lock();
        let open = st.open.pop(&path);
        let evicted = st.evicted.remove(&path).and_then(|w| w.upgrade());
        open.or(evicted.map(|inner| Store { inner }))
    }

    /// Hit, miss and open counts.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            open: self.inner.state.lock().open.len(),
        }
    }

    /// Closes every store the cache holds open (waiting for their queued
    /// transactions), and those it evicted that are still held elsewhere.
    /// The cache opens nothing afterwards.
    pub async fn close_all(&self) {
        let stores: Vec<Store> = {
            let mut st = self.inner.state.lock();
            st.closed = true;
            let mut v = Vec::new();
            while let Some((_, s)) = st.open.pop_lru() {
                v.push(s);
            }
            v.extend(
                st.evicted
                    .drain()
                    .filter_map(|(_, w)| w.upgrade())
                    .map(|inner| Store { inner }),
            );
            v
        };
        // Each close checkpoints and syncs its WAL: overlap them.
        futures::stream::iter(stores)
            .for_each_concurrent(16, |s| async move { s.close().await })
            .await;
    }
}
