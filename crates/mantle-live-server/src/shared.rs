//! Other users' items over live connections, through the sharing layer
//! only: handles to shared items whose every call checks the access it
//! needs, and shared models whose observation ends when the share that
//! allowed it is withdrawn.
//!
//! - [`Caller::open_shared`] opens an owner's share for the caller (read
//!   access needed) as a [`SharedItem`], to publish as a handle;
//!   [`ObjectCommands::on_share`] declares a command on such handles with
//!   the access it needs (`edit`, `comment`, …), checked in the
//!   transaction that runs it. A withdrawn share refuses the next call
//!   with `NOT_FOUND`.
//! - [`Live::shared_model`] declares a model kind whose models are items:
//!   observed as `KIND:OWNER/SHARE_ID` by those a share allows (and as
//!   `KIND:OWNER/#ID` by the owner), published with [`item_model`]. When
//!   the owner's sharing changes, each such observation is checked again
//!   and ended with an `Ended` push (code `NOT_FOUND`) once its share no
//!   longer allows it.
//!
//! Every refusal — no such owner, share, item, or not permitted — is the
//! same answer (`NOT_FOUND` for calls, `NO_SUCH_MODEL` for observing).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mantle_live::builtin::ObserveError;
use mantle_live::{Command, codes};
use mantle_site::sharing::{Grant, READ, ReadShares, Sharing, Viewer};
use mantle_site::{Account, Site, SiteError};
use mantle_store::{Id, Item, ReadTx, Store, Tx};

use crate::hub::{Guard, Hub, ModelSpec, Observation, Source};
use crate::{Caller, Failure, Live, ObjectCommands};

/// An owner's share, opened by a caller (see [`Caller::open_shared`]):
/// what a handle to a shared item refers to.
#[derive(Debug, Clone)]
pub struct SharedItem {
    /// The owner's account.
    pub owner: Id<Account>,
    /// The share id in the owner's store.
    pub share_id: String,
    /// What the caller could do when it opened the share (each call
    /// checks again).
    pub grant: Grant,
    viewer: Viewer,
}

impl SharedItem {
    /// The shared item's id, if it is a `T`.
    pub fn item<T: Item>(&self) -> Option<Id<T>> {
        self.grant.item::<T>().ok()
    }
}

/// The message of every refusal to reach a share.
fn not_found(share_id: &str) -> String {
    format!("no share {share_id:?} is available to you")
}

/// A sharing-layer error as a live failure: a refused share is
/// `NOT_FOUND`, anything else internal.
fn share_failure<E>(e: SiteError) -> Failure<E> {
    match e {
        SiteError::NoSuchShare(id) => Failure::NotFound(not_found(&id)),
        e => Failure::internal(e),
    }
}

impl Caller {
    /// Opens `owner`'s share `share_id` (`owner`: a login or `account:ID`)
    /// for this caller, who must be allowed to read it. Refused with
    /// `NOT_FOUND` otherwise — the same answer whether the owner, the
    /// share or the permission is missing.
    pub async fn open_shared<E>(
        &self,
        owner: &str,
        share_id: &str,
    ) -> Result<SharedItem, Failure<E>> {
        let sharing = self.site().sharing();
        let Some(owner) = sharing.owner(owner).await else {
            return Err(Failure::NotFound(not_found(share_id)));
        };
        let viewer = Viewer::Account(self.avatar().account);
        let grant = sharing
            .grant(viewer, owner, share_id)
            .await
            .map_err(share_failure)?;
        Ok(SharedItem {
            owner,
            share_id: share_id.to_string(),
            grant,
            viewer,
        })
    }
}

/// A command handler's failure inside the owner's transaction: the
/// sharing layer's refusal, or the command's own.
enum InShare<E> {
    Site(SiteError),
    Command(Failure<E>),
}

impl<E> From<SiteError> for InShare<E> {
    fn from(e: SiteError) -> Self {
        InShare::Site(e)
    }
}

impl<E> From<mantle_store::Error> for InShare<E> {
    fn from(e: mantle_store::Error) -> Self {
        InShare::Site(e.into())
    }
}

impl ObjectCommands<SharedItem> {
    /// Adds command `C` on handles to shared items: `f` runs in a
    /// transaction of the owner's store, only if the caller holds `access`
    /// on the share then (checked in that transaction) and the share still
    /// names the item opened. Otherwise the caller gets `NOT_FOUND`. An
    /// error from `f` undoes its work.
    pub fn on_share<C, F>(self, access: &'static str, f: F) -> Self
    where
        C: Command,
        C::Error: Send,
        F: Fn(&mut Tx, &Grant, C::Args) -> Result<C::Answer, Failure<C::Error>>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        self.command::<C, _, _>(move |caller, item, args| {
            let f = f.clone();
            async move {
                let opened = item.grant.clone();
                caller
                    .site()
                    .sharing()
                    .transact(
                        item.viewer,
                        item.owner,
                        &item.share_id,
                        access,
                        move |tx, grant| {
                            if (grant.item_type.as_str(), grant.item_id)
                                != (opened.item_type.as_str(), opened.item_id)
                            {
                                return Err(SiteError::NoSuchShare(grant.share_id.clone()).into());
                            }
                            f(tx, grant, args).map_err(InShare::Command)
                        },
                    )
                    .await
                    .map_err(|e| match e {
                        InShare::Site(e) => share_failure(e),
                        InShare::Command(f) => f,
                    })
            }
        })
    }
}

/// The name under which changes of the item `id` are published, for a
/// model kind declared with [`Live::shared_model`]: `KIND:#ID`.
pub fn item_model<T>(kind: &str, id: Id<T>) -> String {
    format!("{kind}:#{}", id.raw())
}

impl Live {
    /// Declares the model kind `kind` whose models are items of type `T`,
    /// reached through the sharing layer: `KIND:OWNER/SHARE_ID` (`OWNER` a
    /// login or `account:ID`) for whoever the share lets read it,
    /// `KIND:OWNER/#ID` for the owner. `snapshot` reads one whole;
    /// controllers publish its changes under [`item_model`]. An
    /// observation through a share ends (an `Ended` push, code
    /// `NOT_FOUND`) when the share stops allowing it.
    pub fn shared_model<T, P>(&mut self, kind: &str, snapshot: P) -> &mut Self
    where
        T: Item,
        P: Fn(&ReadTx, Id<T>) -> mantle_store::Result<serde_json::Value> + Send + Sync + 'static,
    {
        let kind_name = kind.to_string();
        let source = Arc::new(move |caller: Caller, key: String| {
            let kind = kind_name.clone();
            let fut = shared_source::<T>(caller, kind, key);
            Box::pin(fut) as futures::future::BoxFuture<'static, _>
        });
        let snapshot = Arc::new(move |r: &ReadTx, key: &str| {
            let id = key.parse::<i64>().unwrap_or(0);
            snapshot(r, Id::<T>::from_raw(id))
        });
        self.models
            .insert(kind.to_string(), ModelSpec::with_source(source, snapshot));
        self.own(kind);
        self
    }
}

/// Finds the item model `KIND:KEY` for `caller`: the owner's store, the
/// item, and the share to keep checking.
async fn shared_source<T: Item>(
    caller: Caller,
    kind: String,
    key: String,
) -> Result<Source, Failure<ObserveError>> {
    {
        let missing = || {
            Failure::Command(ObserveError::NoSuchModel {
                model: format!("{kind}:{key}"),
            })
        };
        let (owner, share) = key.rsplit_once('/').ok_or_else(missing)?;
        let site = caller.site();
        let owner = site.sharing().owner(owner).await.ok_or_else(missing)?;
        let viewer = Viewer::Account(caller.avatar().account);
        let (id, guard) = match share.strip_prefix('#') {
            Some(raw) => {
                // The owner's own item, by id: nobody else names items so.
                let id = raw.parse::<i64>().map_err(|_| missing())?;
                if viewer != Viewer::Account(owner) {
                    return Err(missing());
                }
                (id, None)
            }
            None => {
                let grant = match site.sharing().grant(viewer, owner, share).await {
                    Ok(g) if g.access.permits(READ) && g.item::<T>().is_ok() => g,
                    Ok(_) | Err(SiteError::NoSuchShare(_)) => return Err(missing()),
                    Err(e) => return Err(Failure::internal(e)),
                };
                let guard = Guard {
                    owner,
                    viewer,
                    share_id: share.to_string(),
                    item_type: grant.item_type.clone(),
                    item_id: grant.item_id,
                };
                (grant.item_id, Some(guard))
            }
        };
        let store = site
            .stores()
            .user_store_unchecked(owner)
            .await
            .map_err(Failure::internal)?;
        let exists = store
            .read(move |r| r.get(Id::<T>::from_raw(id)).map(|i| i.is_some()))
            .await
            .map_err(Failure::internal)?;
        if !exists {
            return Err(missing());
        }
        Ok(Source {
            store,
            published: Some(item_model(&kind, Id::<T>::from_raw(id))),
            key: id.to_string(),
            guard,
        })
    }
}

/// Starts (once per site) the task that checks observations granted
/// through shares again whenever a store's sharing changes, and ends
/// those no longer allowed.
pub(crate) fn watch(site: &Site, live: &Live) {
    if live.watching.swap(true, Ordering::AcqRel) {
        return;
    }
    let sharing = site.sharing().downgrade();
    let mut changes = site.sharing().subscribe();
    let hub = Arc::downgrade(&live.hub);
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let store = match changes.recv().await {
                Ok(store) => Some(store),
                // Missed some: check every guarded observation.
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            };
            let (Some(hub), Some(sharing)) = (hub.upgrade(), sharing.upgrade()) else {
                return;
            };
            for (obs, guard) in hub.guarded(store.as_deref()) {
                recheck(&sharing, &obs, &guard).await;
            }
        }
    });
}

/// Checks `guard` again for `obs`: ends the observation (`NOT_FOUND`) if
/// its share no longer allows reading the same item.
async fn recheck(sharing: &Sharing, obs: &Observation, guard: &Guard) {
    let still = match sharing
        .grant(guard.viewer, guard.owner, &guard.share_id)
        .await
    {
        Ok(g) => g.item_type == guard.item_type && g.item_id == guard.item_id,
        Err(SiteError::NoSuchShare(_)) => false,
        Err(e) => {
            tracing::warn!(%e, share = %guard.share_id, "cannot check a shared observation");
            true
        }
    };
    if !still {
        obs.end(codes::NOT_FOUND, &not_found(&guard.share_id));
    }
}

/// Before deltas of `store` are delivered: checks again the observations
/// of it granted through shares, if its sharing changed since they were
/// last found allowed. Reads the generation after the deltas' commit, so
/// a withdrawal committed before them is seen.
pub(crate) async fn check_before_delivery(site: &Site, hub: &Hub, store: &Store) {
    let guarded = hub.guarded(Some(store.path()));
    if guarded.is_empty() {
        return;
    }
    let generation = match store.read(|r| r.sharing_generation()).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(%e, "cannot read a store's sharing generation");
            return;
        }
    };
    for (obs, guard) in guarded {
        if obs.checked_at() >= generation {
            continue;
        }
        recheck(site.sharing(), &obs, &guard).await;
        obs.allowed_at(generation);
    }
}
