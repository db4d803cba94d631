//! "Send the computation to the data": run a query or command in every user
//! store, a bounded number at a time, and collate the results.

use std::future::Future;

use futures::StreamExt;
use mantle_store::Store;

use super::{AccountInfo, Accounts};
use crate::{Result, SiteError};

/// One store's part of a fan-out.
#[derive(Debug)]
pub struct FanoutResult<R> {
    /// The account whose store it ran in.
    pub account: AccountInfo,
    /// What it returned there.
    pub result: Result<R>,
}

impl Accounts {
    /// Runs `work` in every account's user store, at most `parallelism` at
    /// once, calling `progress(done, total)` as stores finish. Results come
    /// back in account order; a failure in one store does not stop the
    /// others.
    ///
    /// ```no_run
    /// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
    /// let counts = site
    ///     .accounts()
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
        let accounts = self.list().await?;
        let total = accounts.len();
        let work = &work;
        let mut results: Vec<(usize, FanoutResult<R>)> =
            futures::stream::iter(accounts.into_iter().enumerate())
                .map(|(i, account)| async move {
                    let result = match self.stores.user_store_unchecked(account.id).await {
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

/// How many items of a type the user stores hold (see
/// [`Accounts::count_items`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemCount {
    /// The item type's stored name.
    pub type_name: String,
    /// Items in all user stores together.
    pub items: u64,
    /// User stores counted in.
    pub stores: usize,
    /// User stores holding at least one.
    pub holding: usize,
}

impl Accounts {
    /// Counts the items of type `type_name` (its stored name: a type no
    /// store holds counts as none) in every user store, as [`Accounts::fanout`]
    /// does its work; the first store that fails fails the count.
    pub async fn count_items(
        &self,
        type_name: &str,
        parallelism: usize,
        progress: impl Fn(usize, usize),
    ) -> Result<ItemCount> {
        let results = self
            .fanout(parallelism, progress, |_, store| {
                let type_name = type_name.to_string();
                async move { Ok(store.read(move |r| r.count_items(&type_name)).await?) }
            })
            .await?;
        Ok(ItemCount {
            type_name: type_name.to_string(),
            items: sum_results(&results)?,
            stores: results.len(),
            holding: results
                .iter()
                .filter(|r| matches!(r.result, Ok(n) if n > 0))
                .count(),
        })
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
                return Err(SiteError::FanoutFailed {
                    account: r.account.primary.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(total)
}
