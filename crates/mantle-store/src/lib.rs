//! Mantle's object store: typed items in one SQLite file per store.
//!
//! This is the foundation of Mantle (the Axiom idea, in Rust). A [`Store`]
//! is one SQLite file in WAL mode. It holds *items*: Rust structs with
//! `#[derive(Item)]`, each with a type name and a schema version, each
//! (type, version) in its own table with one column per attribute, so
//! SQLite's indexes and query planner do the work.
//!
//! - **Typed queries**: filters (`eq`, `lt`, `is_in`, `like`, and/or/not),
//!   ordering, limit/offset, count, sum, exists, `unique`,
//!   `find_or_create`, batch update and delete, streaming iteration.
//! - **Whole transactions off the event loop**: `store.transact(|tx| …)`
//!   runs a plain closure on the store's writer (a bounded queue served by a
//!   shared thread pool); it commits entirely or not at all, even if it
//!   panics. Reads run concurrently on snapshot connections.
//! - **Effects on commit**: transactions record typed effects in the
//!   store's outbox; dispatchers receive them only after commit, and again
//!   after a restart if they were not done.
//! - **Schema upgrades**: bump a version, register an upgrader; stores
//!   upgrade on open, in batches, resumably.
//! - **Stores outlive code**: a store holding items of types the program
//!   does not register opens anyway and leaves them alone, with their
//!   scheduled runs, until a program that registers them opens it again
//!   ([`Store::unregistered`]). Only items at a version newer than the
//!   program's refuse the open.
//! - **Powerups**, **substores** with a bounded LRU cache of open stores,
//!   and a persistent **scheduler**.
//! - **Statistics**, optionally: give a config a `mantle_stats` registry
//!   ([`StoreConfig::stats`]) and its stores record open stores, cache hits,
//!   transactions and their times, slow transactions and the outbox backlog
//!   in a "Stores" namespace.
//!
//! What it is not: it knows nothing of users, HTTP or the network. Those
//! layers build on it.
//!
//! ```
//! use mantle_store::{Id, Item, OnDelete, Registry, Store, StoreConfig, Timestamp};
//!
//! #[derive(Item, Debug, Clone)]
//! #[item(name = "author", version = 1)]
//! struct Author {
//!     #[item(index)]
//!     name: String,
//! }
//!
//! #[derive(Item, Debug, Clone)]
//! #[item(name = "post", version = 1, index(author, published))]
//! struct Post {
//!     title: String,
//!     #[item(on_delete = "cascade")]
//!     author: Id<Author>,
//!     published: Timestamp,
//!     words: i64,
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut registry = Registry::new();
//! registry.register::<Author>().register::<Post>();
//! let config = StoreConfig::new(registry);
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path().join("blog.store"), &config).await?;
//!
//! let ada = store
//!     .transact(|tx| {
//!         let ada = tx.insert(&Author { name: "Ada".into() })?;
//!         for (i, words) in [120, 80, 300].into_iter().enumerate() {
//!             tx.insert(&Post {
//!                 title: format!("post {i}"),
//!                 author: ada,
//!                 published: Timestamp::from_micros(i as i64),
//!                 words,
//!             })?;
//!         }
//!         Ok::<_, mantle_store::Error>(ada)
//!     })
//!     .await?;
//!
//! let (long, total) = store
//!     .read(move |r| {
//!         let long = r
//!             .query::<Post>()
//!             .filter(Post::AUTHOR.eq(ada).and(Post::WORDS.ge(100)))
//!             .order_by(Post::PUBLISHED.desc())
//!             .all()?;
//!         Ok::<_, mantle_store::Error>((long, r.query::<Post>().sum(Post::WORDS)?))
//!     })
//!     .await?;
//! assert_eq!(long.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["post 2", "post 0"]);
//! assert_eq!(total, 500);
//!
//! // Deleting the author cascades to the posts.
//! store.transact(move |tx| tx.delete(ada)).await?;
//! assert_eq!(store.read(|r| r.query::<Post>().count()).await?, 0);
//! # Ok::<_, mantle_store::Error>(())
//! # }).unwrap();
//! ```
//!
//! The file format and its invariants are described in `docs/store.md`.

extern crate self as mantle_store;

mod backup;
mod cache;
mod error;
mod fence;
mod files;
mod inspect;
mod item;
mod outbox;
mod powerup;
mod query;
mod registry;
mod replica;
mod scheduler;
mod schema;
mod stats;
mod store;
mod substore;
mod tx;
mod unregistered;
mod upgrade;
mod value;
mod wal;
mod writer;

pub use backup::backup;
pub use cache::{CacheStats, StoreCache};
pub use error::{Error, Result};
pub use fence::{Fence, FenceFuture};
pub use files::{
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, create_private_dir_all, private_file_options,
};
pub use inspect::{CheckReport, Problem, StoreReport, TypeReport, check, check_report, inspect};
pub use item::{AttributeDef, Binder, Decoder, Item, OnDelete, Stored};
pub use mantle_store_derive::Item;
pub use outbox::{Delivery, DispatchError, Effect, EffectId, OutboxEntry};
pub use powerup::Target;
pub use query::{Assignment, Attr, Filter, Order, Query, Summable};
pub use registry::{Interface, Registry};
pub use replica::{Commit, PageFile, Replica, ReplicaFuture, Replicator, SnapshotView};
pub use scheduler::ScheduleId;
pub use schema::{APPLICATION_ID, FORMAT_VERSION};
pub use stats::STATS_NAMESPACE;
pub use store::{Durability, Store, StoreConfig, replace_store};
pub use substore::SubStore;
pub use tx::{ReadTx, Tx};
pub use unregistered::Unregistered;
pub use upgrade::UpgradeProgress;
pub use value::{Attribute, Id, Json, Kind, Operand, Timestamp};

/// `Ok(value)` as a [`Result`] of this crate's [`Error`]: what a closure
/// given to [`Store::read`] or [`Store::transact`] returns when nothing
/// else fixes its error type (they take any error type made from ours, so
/// that offerings may use their own). Without it, such a closure would end
/// in `Ok::<_, mantle_store::Error>(value)`.
///
/// ```
/// # use mantle_store::*;
/// # async fn f(store: Store) -> Result<()> {
/// let (subs, stores) = store
///     .read(|r| {
///         let n = r.query::<SubStore>().count()?;
///         mantle_store::ok((n, r.query::<SubStore>().all()?.len()))
///     })
///     .await?;
/// # let _ = (subs, stores); Ok(()) }
/// ```
pub fn ok<T>(value: T) -> Result<T> {
    Result::Ok(value)
}
pub use writer::WriterPool;

/// Raises this process's open-file limit to its hard limit, for processes
/// that keep many stores open (each open store uses about four file
/// descriptors). Returns the new soft limit.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Ok(lim.rlim_cur as u64)
    }
}
