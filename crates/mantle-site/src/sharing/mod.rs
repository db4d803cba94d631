//! Sharing: how one user's items reach other users, and anonymous
//! visitors, with only the access their owner granted.
//!
//! Each user store has **roles**: `everyone` (anonymous visitors
//! included), `authenticated` (anybody logged in), one per account
//! (`account:ID`, the user's primary role) and **groups** the owner makes
//! (`group:NAME`), whose members are roles (groups in groups; cycles are
//! refused). A viewer's roles in a store are the first three that apply
//! and every group they are in, transitively.
//!
//! An item is **shared** with a role, for a set of **access names**
//! (`read`, implied by every share; `edit`; `delete`; and names an
//! offering defines, such as `comment`), under a **share id** that names
//! the item in that store (`/users/alice@example.com/ID`). A viewer's
//! grant on a share id is the union of the shares of that id whose role
//! they have; the owner holds every access.
//!
//! **One enforcement point**: [`Sharing`] (`site.sharing()`) is how code
//! acting for one user reaches another user's items — HTTP handlers, live
//! commands and models, and messages addressed to shares
//! ([`SendToShare`], [`MessageHandlers::on_shared`](crate::MessageHandlers::on_shared)) — an avatar, an owner
//! and a share id in, the item or a refusal out. A missing share and a
//! share the viewer may not use are the same refusal,
//! [`SiteError::NoSuchShare`], so nobody learns what exists.
//!
//! Roles are computed once per (store, viewer), and grants once per
//! (store, viewer, share id), and cached with the store's sharing
//! generation, which every change of groups, members or shares advances in
//! the same transaction: a cached answer is used only while it is current,
//! so a revocation takes effect on the next check. Only what was read from
//! committed state is kept (not what a write transaction read: it may see
//! the uncommitted changes of its commit group).
//!
//! ```
//! use mantle_site::sharing::{Role, ShareItems, Viewer, EDIT};
//! use mantle_site::{Site, SiteConfig, SiteError};
//! # #[derive(mantle_store::Item, Debug, Clone, serde::Serialize, serde::Deserialize)]
//! # #[item(name = "doc_note", version = 1)]
//! # struct Note { text: String }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let site = Site::builder(dir.path())
//!     .with(|r| { r.register::<Note>(); })
//!     .init(SiteConfig { domain: "example.com".into(), ..SiteConfig::default() })
//!     .await?;
//! let alice = site.accounts().create("alice", "correct horse battery", false).await?;
//! let bob = site.accounts().create("bob", "correct horse battery", false).await?;
//! // Alice shares a note with Bob, for reading only.
//! let store = site.stores().user_store_unchecked(alice.id).await?;
//! let share_id = store
//!     .transact(move |tx| {
//!         let note = tx.insert(&Note { text: "hello".into() })?;
//!         tx.share(note, &Role::account(bob.id), &[], Some("hello"))
//!     })
//!     .await?;
//! let bob_sees = site.sharing().open::<Note>(Viewer::Account(bob.id), alice.id, &share_id).await?;
//! assert_eq!(bob_sees.text, "hello");
//! // He may not edit it; the refusal is the same as for a share that does not exist.
//! let edit = site.sharing().edit::<Note>(Viewer::Account(bob.id), alice.id, "hello", None, |n| {
//!     n.text = "mine now".into();
//!     Ok(())
//! }).await;
//! assert!(matches!(edit, Err(SiteError::NoSuchShare(_))));
//! // Anonymous visitors see nothing.
//! let anon = site.sharing().open::<Note>(Viewer::Anonymous, alice.id, "hello").await;
//! assert!(matches!(anon, Err(SiteError::NoSuchShare(_))));
//! # let _ = EDIT;
//! site.close().await;
//! # Ok::<_, SiteError>(())
//! # }).unwrap();
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use cache::RoleCache;
use mantle_store::{Effect, Id, Item, ReadTx, Store, Stored, Tx};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::items::Account;
use crate::messaging::Recipient;
use crate::stores::Stores;
use crate::{Messaging, Result, SiteError};

mod cache;
mod items;
mod messages;
mod notices;
mod read;
mod roles;
mod shareable;
#[cfg(test)]
mod tx_tests;
mod write;

pub use items::{Group, Membership, Share, SharedWithMe, SharingGeneration};
pub use messages::{Identifier, NO_SUCH_SHARE, SendToShare};
pub use read::{Grant, ReadShares, ShareInfo, check_access_name, check_share_id};
pub use roles::{Access, DELETE, EDIT, READ, Role, Viewer, roles_in};
pub use shareable::{Entity, Save, ShareableType, ShareableTypes};
pub use write::ShareItems;

pub(crate) use items::register;
pub(crate) use notices::register_notices;

/// The most hints [`Sharing::shared_with`] reads at once: another user
/// can share any number of items with someone, and a listing must stay
/// bounded (stale ones are pruned as they are found, making room).
pub const MAX_SHARED_WITH: u64 = 1_000;

/// The effect a change of a store's sharing records: after commit, the
/// site tells [`Sharing::subscribe`]rs which store changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharingChanged {}

impl Effect for SharingChanged {
    const KIND: &'static str = "mantle.sharing_changed";
}

/// A shared item as a viewer sees it: the item, read-only, with the
/// grant that let them see it. Changes go through [`Sharing::edit`] or
/// [`Sharing::transact`], which check the access they need.
#[derive(Debug, Clone)]
pub struct Shared<T> {
    /// Whose store it is in.
    pub owner: Id<Account>,
    /// What the viewer may do with it.
    pub grant: Grant,
    item: Stored<T>,
}

impl<T> Shared<T> {
    /// The item (its id and revision too).
    pub fn item(&self) -> &Stored<T> {
        &self.item
    }
    /// The item, as a value.
    pub fn into_item(self) -> Stored<T> {
        self.item
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

/// Something another user shares with a viewer (see
/// [`Sharing::shared_with`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedEntry {
    /// The owner's account.
    pub owner: i64,
    /// The owner's primary login.
    pub owner_login: String,
    /// The share id.
    pub share_id: String,
    /// The item's type name.
    pub item_type: String,
    /// What the viewer may do.
    pub access: Vec<String>,
}

/// The sharing layer of a site (see the [module](self) documentation):
/// the one way to reach another user's items.
#[derive(Clone)]
pub struct Sharing(Arc<Inner>);

struct Inner {
    stores: Stores,
    messaging: Messaging,
    cache: RoleCache,
    types: ShareableTypes,
    changes: broadcast::Sender<PathBuf>,
}

impl Sharing {
    pub(crate) fn new(stores: Stores, messaging: Messaging, types: ShareableTypes) -> Self {
        Sharing(Arc::new(Inner {
            stores,
            messaging,
            cache: RoleCache::default(),
            types,
            changes: broadcast::channel(1024).0,
        }))
    }

    /// The account whose items `login` (a login or `account:ID`) names,
    /// if it is an enabled account. For pages that take an owner from a
    /// URL: `None` must be answered as a missing share.
    pub async fn owner(&self, login: &str) -> Option<Id<Account>> {
        match self.0.messaging.recipient(login).await {
            Ok(Recipient::Account {
                id,
                disabled: false,
            }) => Some(id),
            _ => None,
        }
    }

    async fn store_of(&self, owner: Id<Account>, share_id: &str) -> Result<Store> {
        self.0
            .stores
            .user_store_unchecked(owner)
            .await
            .map_err(|e| match e {
                SiteError::NoSuchAccount(_) => SiteError::NoSuchShare(share_id.to_string()),
                e => e,
            })
    }

    /// What `viewer` may do with `owner`'s share `share_id`.
    /// [`SiteError::NoSuchShare`] if nothing.
    pub async fn grant(&self, viewer: Viewer, owner: Id<Account>, share_id: &str) -> Result<Grant> {
        // Every grant holds `read`.
        self.read(viewer, owner, share_id, READ, |_, grant| Ok(grant.clone()))
            .await
    }

    /// `owner`'s item shared as `share_id`, if `viewer` may read it and it
    /// is a `T`. [`SiteError::NoSuchShare`] otherwise (whatever the
    /// reason).
    pub async fn open<T: Item>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
    ) -> Result<Shared<T>> {
        self.read(viewer, owner, share_id, READ, move |r, grant| {
            let item = r
                .get(grant.item::<T>()?)?
                .ok_or_else(|| SiteError::NoSuchShare(grant.share_id.clone()))?;
            Ok(Shared {
                owner,
                grant: grant.clone(),
                item,
            })
        })
        .await
    }

    /// The items of type `T` in `owner`'s store that `viewer` may read,
    /// each as a [`Shared`] view, by share id (`asAccessibleTo`): what a
    /// public page lists for [`Viewer::Anonymous`], say. The owner sees
    /// every shared item of hers.
    pub async fn accessible<T: Item>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
    ) -> Result<Vec<Shared<T>>> {
        let store = self.store_of(owner, "").await?;
        let this = self.0.clone();
        store
            .read(move |r| {
                let listed = if viewer == Viewer::Account(owner) {
                    // Every share of hers, whoever it is made to.
                    let mut roles: Vec<Role> = r.shares()?.into_iter().map(|s| s.role).collect();
                    roles.sort();
                    roles.dedup();
                    let mut all = r.accessible::<T>(&roles)?;
                    for (g, _) in &mut all {
                        g.access = Access::owner();
                    }
                    all
                } else {
                    let generation = r.sharing_generation()?;
                    let roles = this.cache.roles(r, owner, viewer, generation, true)?;
                    r.accessible::<T>(&roles)?
                };
                Ok::<_, SiteError>(
                    listed
                        .into_iter()
                        .map(|(grant, item)| Shared { owner, grant, item })
                        .collect(),
                )
            })
            .await
    }

    /// Runs `f` in a read transaction of `owner`'s store if `viewer` holds
    /// `access` on `share_id` there, checked in that same transaction:
    /// what serves a shared item whose type is known only by name (see
    /// [`ShareableType`]). [`SiteError::NoSuchShare`] otherwise.
    /// (As [`transact`](Self::transact), `f` may answer its own error
    /// type.)
    ///
    /// ```no_run
    /// # async fn f(site: mantle_site::Site, owner: mantle_store::Id<mantle_site::Account>) -> mantle_site::Result<()> {
    /// use mantle_site::sharing::{Viewer, READ};
    /// let types = site.sharing().types().clone();
    /// let entity = site
    ///     .sharing()
    ///     .read(Viewer::Anonymous, owner, "front", READ, move |r, grant| {
    ///         match types.get(&grant.item_type) {
    ///             Some(t) => t.get(r, grant.item_id),
    ///             None => Ok(None),
    ///         }
    ///     })
    ///     .await?;
    /// # let _ = entity; Ok(()) }
    /// ```
    pub async fn read<R, E, F>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
        access: &str,
        f: F,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<SiteError> + From<mantle_store::Error> + Send + 'static,
        F: FnOnce(&ReadTx, &Grant) -> Result<R, E> + Send + 'static,
    {
        let store = self.store_of(owner, share_id).await?;
        let this = self.0.clone();
        let (id, access) = (share_id.to_string(), access.to_string());
        store
            .read(move |r| {
                let grant = this.cache.require(r, owner, viewer, &id, &access, true)?;
                f(r, &grant)
            })
            .await
    }

    /// Runs `f` in a transaction of `owner`'s store if `viewer` holds
    /// `access` on `share_id` there, checked in that same transaction.
    /// [`SiteError::NoSuchShare`] otherwise. `f`'s error undoes its work.
    pub async fn transact<R, E, F>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
        access: &str,
        f: F,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<SiteError> + From<mantle_store::Error> + Send + 'static,
        F: FnOnce(&mut Tx, &Grant) -> Result<R, E> + Send + 'static,
    {
        let store = self.store_of(owner, share_id).await?;
        let this = self.0.clone();
        let (id, access) = (share_id.to_string(), access.to_string());
        store
            .transact(move |tx| {
                // A write transaction may see the uncommitted sharing
                // changes of those before it in its commit group: what it
                // reads is not cached.
                let grant = this.cache.require(tx, owner, viewer, &id, &access, false)?;
                f(tx, &grant)
            })
            .await
    }

    /// A link to the sharing layer that does not keep the site open.
    pub fn downgrade(&self) -> WeakSharing {
        WeakSharing(Arc::downgrade(&self.0))
    }

    /// Changes `owner`'s item shared as `share_id` with `f`, if `viewer`
    /// holds [`EDIT`] on it and (given `revision`) it is still at that
    /// revision ([`mantle_store::Error::Conflict`] otherwise). Answers the
    /// item as saved.
    pub async fn edit<T: Item>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
        revision: Option<i64>,
        f: impl FnOnce(&mut T) -> Result<()> + Send + 'static,
    ) -> Result<Stored<T>> {
        self.transact(viewer, owner, share_id, EDIT, move |tx, grant| {
            let id = grant.item::<T>()?;
            let mut item: Stored<T> = tx
                .get(id)?
                .ok_or_else(|| SiteError::NoSuchShare(grant.share_id.clone()))?;
            shareable::check_revision(&item, revision)?;
            f(&mut item)?;
            tx.update(&mut item)?;
            Ok::<_, SiteError>(item)
        })
        .await
    }

    /// Deletes `owner`'s item shared as `share_id` (and its shares), if
    /// `viewer` holds [`DELETE`] on it.
    pub async fn delete<T: Item>(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
    ) -> Result<()> {
        self.transact(viewer, owner, share_id, DELETE, move |tx, grant| {
            let id = grant.item::<T>()?;
            tx.unshare_item(id)?;
            tx.delete(id)?;
            Ok::<_, SiteError>(())
        })
        .await
    }

    /// What other users share with `viewer` (directly, or through a group
    /// they are in) and `viewer` may still use, with the access held. Public
    /// shares (to `everyone`, `authenticated`) are not listed. At most
    /// [`MAX_SHARED_WITH`] are read, by owner.
    pub async fn shared_with(&self, viewer: Id<Account>) -> Result<Vec<SharedEntry>> {
        let store = self.0.stores.user_store_unchecked(viewer).await?;
        let hints = store
            .read(|r| {
                r.query::<SharedWithMe>()
                    .order_by(SharedWithMe::OWNER.asc())
                    .limit(MAX_SHARED_WITH)
                    .all()
            })
            .await?;
        // Grouped by owner: one read of each owner's store checks all of
        // her shares.
        let mut by_owner: Vec<(i64, Vec<Stored<SharedWithMe>>)> = Vec::new();
        for hint in hints {
            match by_owner.last_mut() {
                Some((owner, list)) if *owner == hint.owner => list.push(hint),
                _ => by_owner.push((hint.owner, vec![hint])),
            }
        }
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (owner, hints) in by_owner {
            let owner_id = Id::<Account>::from_raw(owner);
            let grants = match self.login_of(owner_id).await? {
                Some(login) => {
                    let ids: Vec<String> = hints.iter().map(|h| h.share_id.clone()).collect();
                    let this = self.0.clone();
                    let store = self.store_of(owner_id, "").await?;
                    let found = store
                        .read(move |r| {
                            ids.iter()
                                .map(|id| {
                                    this.cache
                                        .grant(r, owner_id, Viewer::Account(viewer), id, true)
                                })
                                .collect::<mantle_store::Result<Vec<_>>>()
                        })
                        .await?;
                    found
                        .into_iter()
                        .map(|g| g.map(|g| (g, login.clone())))
                        .collect()
                }
                // A deleted or disabled owner shares nothing.
                None => vec![None; hints.len()],
            };
            for (hint, grant) in hints.iter().zip(grants) {
                match grant {
                    Some((g, owner_login)) => out.push(SharedEntry {
                        owner,
                        owner_login,
                        share_id: g.share_id.clone(),
                        item_type: g.item_type.clone(),
                        access: g.access.names(),
                    }),
                    None => stale.push(hint.id()),
                }
            }
        }
        if !stale.is_empty() {
            store
                .transact(move |tx| {
                    for id in stale {
                        tx.delete(id)?;
                    }
                    mantle_store::ok(())
                })
                .await?;
        }
        Ok(out)
    }

    /// The primary login of an enabled account.
    async fn login_of(&self, account: Id<Account>) -> Result<Option<String>> {
        self.0
            .stores
            .site_store()
            .read(move |r| {
                let Some(a) = r.get(account)? else {
                    return mantle_store::ok(None);
                };
                if a.disabled {
                    return Ok(None);
                }
                Ok(r.query::<crate::items::LoginMethod>()
                    .filter(
                        crate::items::LoginMethod::ACCOUNT
                            .eq(account)
                            .and(crate::items::LoginMethod::PRIMARY.eq(true)),
                    )
                    .first()?
                    .map(|m| m.into_inner().address))
            })
            .await
            .map_err(Into::into)
    }

    /// The item types offerings declared shareable
    /// (`Offering::shareable`), for the web front's sharing pages and
    /// Shoji API.
    pub fn types(&self) -> &ShareableTypes {
        &self.0.types
    }

    /// Tells of every committed change of a store's sharing (the store's
    /// file), so what holds access open (a live observation) can check it
    /// again. A receiver that lags misses some: it should then check
    /// everything it holds.
    pub fn subscribe(&self) -> broadcast::Receiver<PathBuf> {
        self.0.changes.subscribe()
    }

    /// Announces a committed change of `store`'s sharing.
    pub(crate) fn announce(&self, store: PathBuf) {
        let _ = self.0.changes.send(store);
    }
}

/// A [`Sharing`] that does not keep its site open (see
/// [`Sharing::downgrade`]).
#[derive(Clone)]
pub struct WeakSharing(std::sync::Weak<Inner>);

impl WeakSharing {
    /// The sharing layer, if its site is still open.
    pub fn upgrade(&self) -> Option<Sharing> {
        self.0.upgrade().map(Sharing)
    }
}
