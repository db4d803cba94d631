//! Fencing: who decides, at each commit, whether a store may still be
//! written here.
//!
//! One node with its own stores needs no fence. In a cluster a store has
//! one owner at a time, and a node that lost it (its lease ran out while
//! it was paused, say) must neither commit to it nor acknowledge a commit
//! it made. A store opened with
//! [`StoreConfig::fence`](crate::StoreConfig::fence) asks its [`Fence`]
//! twice for every group commit: before `COMMIT` (refused: the group is
//! rolled back) and after it, before any transaction learns its outcome
//! (refused: the transactions are told [`Error::Fenced`](crate::Error::Fenced),
//! never that they committed). It is also asked before a store opens
//! ([`Fence::opening`]), where a node claims the store. The store layer
//! knows nothing of what the fence consults.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

/// What [`Fence::opening`] hands back.
pub type FenceFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Decides whether the store at a path may commit now.
///
/// ```
/// use std::path::Path;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// struct Switch(AtomicBool);
/// impl mantle_store::Fence for Switch {
///     fn check(&self, store: &Path) -> Result<(), String> {
///         if self.0.load(Ordering::SeqCst) {
///             Ok(())
///         } else {
///             Err(format!("{} is switched off", store.display()))
///         }
///     }
/// }
/// let fence = Switch(AtomicBool::new(true));
/// assert!(mantle_store::Fence::check(&fence, Path::new("a.mantle")).is_ok());
/// ```
pub trait Fence: Send + Sync + 'static {
    /// `Ok` while `store` may commit and acknowledge commits; otherwise
    /// why not (it becomes the transactions' error).
    fn check(&self, store: &Path) -> Result<(), String>;

    /// Asked (with the store's absolute path) before a store opens: a
    /// cluster node claims the store here, or confirms that it owns it.
    /// Refused, the open fails with [`Error::Fenced`](crate::Error::Fenced).
    /// By default, yes.
    fn opening<'a>(&'a self, store: &'a Path) -> FenceFuture<'a> {
        let _ = store;
        Box::pin(async { Ok(()) })
    }
}
