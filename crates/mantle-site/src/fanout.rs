//! "Send the computation to the data": run a query or command in every user
//! store, a bounded number at a time, and collate the results.

use std::future::Future;

use futures::StreamExt;
use mantle_store::Store;

use crate::accounts::AccountInfo;
use crate::site::Site;
use crate::{Result, SiteError};

/// One store's part of a fan-out.
#[derive(Debug)]
pub struct FanoutResult<R> {
    /// The account whose store it ran in.
    pub account: AccountInfo,
    /// What it returned there.
    pub result: Result<R>,
}

impl Site {
    /// Runs `work` in every account's user store, at most `parallelism` at
    /// once, calling `progress(done, total)` as stores finish. Results come
    /// back in account order; a failure in one store does not stop the
    /// others.
    ///
    /// ```no_run
    /// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
    /// let counts = site
    ///     .fanout(8, |_, _| {}, |_account, store| async move {
    ///         Ok(store.read(|r| r.count_items("mantle_slate")).await?)
    ///     })
    ///     .await?;
    /// let total: u64 = counts.iter().filter_map(|c| c.result.as_ref().ok()).sum();
    /// # let _ = total; Ok(()) }
    /// ```
    pub async fn fanout<R, F, Fut>(
        &self,
        parallelism: usize,
        progress: impl Fn(usize, usize),
        work: F,
    ) -> Result<Vec<FanoutResult<R>>>
    where
        F: Fn(AccountInfo, Store) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let accounts = self.accounts().await?;
        let total = accounts.len();
        let work = &work;
        let mut results: Vec<(usize, FanoutResult<R>)> =
            futures::stream::iter(accounts.into_iter().enumerate())
                .map(|(i, account)| async move {
                    let result = match self.user_store(account.id).await {
                        Ok(store) => work(account.clone(), store).await,
                        Err(e) => Err(e),
                    };
                    (i, FanoutResult { account, result })
                })
                .buffer_unordered(parallelism.max(1))
                .enumerate()
                .map(|(done, r)| {
                    progress(done + 1, total);
                    r
                })
                .collect()
                .await;
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }
}

/// Sums the successful results of a fan-out; the first failure, if any,
/// is returned instead.
pub fn sum_results(results: &[FanoutResult<u64>]) -> Result<u64> {
    let mut total = 0u64;
    for r in results {
        match &r.result {
            Ok(n) => total += n,
            Err(e) => {
                return Err(SiteError::Config(format!(
                    "fan-out failed in the store of {}: {e}",
                    r.account.primary
                )));
            }
        }
    }
    Ok(total)
}
