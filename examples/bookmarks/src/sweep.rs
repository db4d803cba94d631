//! The sweep: the [`Sweeper`] item and its scheduled task, which trims
//! each user's list, and how the configuration reaches it
//! ([`configure_in`], the [`Refresh`] effect).

use mantle_site::{Site, SiteError};
use mantle_store::{Delivery, DispatchError, Effect, Filter, Id, Item, Stored, Tx};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::items::Bookmark;
use crate::live::delete_in;

/// The one item per user store that the sweep task runs on, with the
/// settings it sweeps by (copied from [`Config`]: a store task cannot read
/// the site's configuration, so [`configure_in`] keeps them here).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "bookmarks_sweeper", version = 1)]
pub struct Sweeper {
    /// The most bookmarks the user keeps; the sweep deletes the oldest
    /// beyond it.
    pub max_per_user: i64,
    /// The sweep's period, in minutes.
    pub every_minutes: i64,
}

/// The sweep task's name (on the user's [`Sweeper`]).
pub const SWEEP_TASK: &str = "sweep";

/// In a transaction: deletes the oldest bookmarks beyond `max` (with
/// their shares), publishing each removal; returns how many went.
pub fn trim_in(tx: &mut Tx, max: i64) -> Result<u64, SiteError> {
    let max = u64::try_from(max).unwrap_or(0);
    let n = tx.query::<Bookmark>().count()?;
    if n <= max {
        return Ok(0);
    }
    let oldest = tx
        .query::<Bookmark>()
        .order_by(Bookmark::CREATED.asc())
        .order_by(mantle_store::Order::by_id())
        .limit(n - max)
        .ids()?;
    let mut gone = 0;
    for id in oldest {
        if delete_in(tx, id)? {
            gone += 1;
        }
    }
    Ok(gone)
}

/// The sweep task: trims the user's list to the sweeper's
/// `max_per_user`, then asks for the configured settings again (so that a
/// changed `[offerings.bookmarks]` reaches every store within one period).
pub(crate) fn sweep(tx: &mut Tx<'_>, sweeper: Stored<Sweeper>) -> mantle_store::Result<()> {
    let gone = trim_in(tx, sweeper.max_per_user).map_err(store_error)?;
    if gone > 0 {
        tracing::info!(gone, max = sweeper.max_per_user, "bookmarks: swept");
    }
    tx.record(&Refresh {})?;
    Ok(())
}

/// A task fails with a store error only. Withdrawing shares and deleting
/// fail with nothing else; were it otherwise, the run would be rolled back
/// and retried, as after a failed commit.
fn store_error(e: SiteError) -> mantle_store::Error {
    match e {
        SiteError::Store(e) => e,
        e => mantle_store::Error::CommitFailed(e.to_string()),
    }
}

/// In a transaction: makes the store's [`Sweeper`] follow `config` (its
/// limit, and its schedule, re-timed by `ensure_schedule` when the period
/// changed); returns it.
pub fn configure_in(tx: &mut Tx, config: &Config) -> mantle_store::Result<Id<Sweeper>> {
    let (max, every) = (
        i64::from(config.max_per_user),
        i64::from(config.sweep_minutes),
    );
    let mut sweeper = tx.find_or_create(Filter::all(), || Sweeper {
        max_per_user: max,
        every_minutes: every,
    })?;
    if sweeper.max_per_user != max || sweeper.every_minutes != every {
        sweeper.max_per_user = max;
        sweeper.every_minutes = every;
        tx.update(&mut sweeper)?;
    }
    tx.ensure_schedule(sweeper.id(), SWEEP_TASK, config.sweep_every())?;
    Ok(sweeper.id())
}

/// An effect recorded by the `on_given` hook and by each sweep: "bring
/// this store's sweeper in line with the site's configuration". Its
/// handler runs after the commit, with the site at hand (a hook or a
/// task has only the transaction).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refresh {}

impl Effect for Refresh {
    const KIND: &'static str = "bookmarks.refresh";
}

/// Applies the site's `[offerings.bookmarks]` to each store that asked.
pub(crate) async fn refresh(
    site: Site,
    batch: Vec<(Delivery, Refresh)>,
) -> Vec<Result<(), DispatchError>> {
    let config = site.section::<Config>().clone();
    let mut results = Vec::with_capacity(batch.len());
    for (delivery, _) in batch {
        let config = config.clone();
        let done = delivery
            .store
            .transact(move |tx| configure_in(tx, &config))
            .await;
        results.push(
            done.map(|_| ())
                .map_err(|e| DispatchError::retry(e.to_string())),
        );
    }
    results
}
