//! The cache of roles and grants: per (owner, viewer), each kept with the
//! sharing generation it was read at and used only while that generation
//! is the store's.

use std::collections::HashMap;
use std::sync::Arc;

use mantle_store::{Id, ReadTx};
use parking_lot::Mutex;

use super::read::{Grant, ReadShares, owner_grant};
use super::roles::{Role, Viewer};
use crate::items::Account;
use crate::{Result, SiteError};

/// How many (store, viewer) role sets are kept; past it the cache starts
/// afresh (roles are cheap to recompute; memory is not unbounded).
const ROLE_CACHE: usize = 10_000;

/// How many grants (viewer, share id) are kept in all; past it the cache
/// starts afresh.
const GRANT_CACHE: usize = 100_000;

type RoleKey = (Id<Account>, Viewer);

/// What is known of one viewer in one store at one sharing generation:
/// their roles, and their grants on the share ids asked about so far
/// (`None`: no grant). Both depend only on groups, members and shares,
/// which every change of advances the generation.
struct Viewed {
    generation: i64,
    roles: Arc<Vec<Role>>,
    grants: HashMap<String, Option<Grant>>,
}

/// [`Viewed`] by (owner, viewer), and how many grants they hold in all.
#[derive(Default)]
struct Cached {
    viewers: HashMap<RoleKey, Viewed>,
    grants: usize,
}

impl Cached {
    /// The entry of `key` at `generation`, made (with `roles`) if there
    /// is none or it was read at another generation (older or newer:
    /// either way this read replaces it; the next read at the store's
    /// current generation corrects it if need be). Starts afresh past the
    /// bounds.
    fn at(&mut self, key: RoleKey, generation: i64, roles: Arc<Vec<Role>>) -> &mut Viewed {
        if self.grants >= GRANT_CACHE
            || (self.viewers.len() >= ROLE_CACHE && !self.viewers.contains_key(&key))
        {
            *self = Cached::default();
        }
        let viewed = self.viewers.entry(key).or_insert_with(|| Viewed {
            generation,
            roles: roles.clone(),
            grants: HashMap::new(),
        });
        if viewed.generation != generation {
            self.grants -= viewed.grants.len();
            *viewed = Viewed {
                generation,
                roles,
                grants: HashMap::new(),
            };
        }
        viewed
    }
}

/// Roles and grants by (owner, viewer), each with the generation they
/// were read at, used only while it is the store's.
#[derive(Default)]
pub(super) struct RoleCache(Mutex<Cached>);

impl RoleCache {
    /// The roles of `viewer` in `owner`'s store read by `r`: cached while
    /// the store's generation is `generation`. Roles read where `r` may
    /// see uncommitted writes (`committed` false: a write transaction,
    /// which sees those of the transactions before it in its commit group)
    /// are not kept: if that group's commit failed, the generation they
    /// were read at would come again with other roles.
    pub(super) fn roles(
        &self,
        r: &ReadTx,
        owner: Id<Account>,
        viewer: Viewer,
        generation: i64,
        committed: bool,
    ) -> mantle_store::Result<Arc<Vec<Role>>> {
        if let Some(v) = self.0.lock().viewers.get(&(owner, viewer))
            && v.generation == generation
        {
            return Ok(v.roles.clone());
        }
        let roles = Arc::new(r.roles_of(viewer)?);
        if committed {
            self.0.lock().at((owner, viewer), generation, roles.clone());
        }
        Ok(roles)
    }

    /// The grant of `viewer` on `share_id` in `owner`'s store read by `r`,
    /// if it holds `access`; [`SiteError::NoSuchShare`] otherwise
    /// (`committed`: see [`roles`](Self::roles)).
    pub(super) fn require(
        &self,
        r: &ReadTx,
        owner: Id<Account>,
        viewer: Viewer,
        share_id: &str,
        access: &str,
        committed: bool,
    ) -> Result<Grant> {
        let grant = self
            .grant(r, owner, viewer, share_id, committed)?
            .ok_or_else(|| SiteError::NoSuchShare(share_id.to_string()))?;
        grant.require(access)?;
        Ok(grant)
    }

    /// The grant of `viewer` on `share_id` in `owner`'s store read by `r`
    /// (the owner's own: every access, if the share exists).
    ///
    /// Cached while the store's generation is the one read now. What is
    /// read where `r` may see uncommitted writes (`committed` false: a
    /// write transaction, which sees those of the transactions before it
    /// in its commit group) is used but not kept: if that group's commit
    /// failed, the generation it was read at would come again with other
    /// groups and shares.
    pub(super) fn grant(
        &self,
        r: &ReadTx,
        owner: Id<Account>,
        viewer: Viewer,
        share_id: &str,
        committed: bool,
    ) -> mantle_store::Result<Option<Grant>> {
        let generation = r.sharing_generation()?;
        let key = (owner, viewer);
        let known = match self.0.lock().viewers.get(&key) {
            Some(v) if v.generation == generation => {
                if let Some(grant) = v.grants.get(share_id) {
                    return Ok(grant.clone());
                }
                Some(v.roles.clone())
            }
            _ => None,
        };
        let roles = match known {
            Some(roles) => roles,
            // The owner's too (her grant does not depend on them, but an
            // entry's roles are always the viewer's).
            None => Arc::new(r.roles_of(viewer)?),
        };
        let grant = if viewer == Viewer::Account(owner) {
            owner_grant(r, share_id)?
        } else {
            r.grant_for(&roles, share_id)?
        };
        if committed {
            self.keep(key, generation, roles, share_id, &grant);
        }
        Ok(grant)
    }

    /// Keeps `grant` (and `roles`) of `key` at `generation`.
    fn keep(
        &self,
        key: RoleKey,
        generation: i64,
        roles: Arc<Vec<Role>>,
        share_id: &str,
        grant: &Option<Grant>,
    ) {
        let mut cache = self.0.lock();
        let viewed = cache.at(key, generation, roles);
        let new = viewed
            .grants
            .insert(share_id.to_string(), grant.clone())
            .is_none();
        if new {
            cache.grants += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use mantle_store::{Registry, Store, StoreConfig};

    use super::*;
    use crate::sharing::ShareItems;

    #[derive(mantle_store::Item, Debug, Clone)]
    #[item(name = "test_note", version = 1)]
    struct Note {
        text: String,
    }

    /// Roles and grants read in a write transaction are not kept: a transaction
    /// grouped after an uncommitted sharing change sees its generation,
    /// and if the group's commit failed, that generation would come back
    /// with other roles. (Here one transaction plays both parts and is
    /// rolled back.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roles_seen_before_a_commit_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::new();
        crate::register(&mut registry);
        registry.register::<Note>();
        let store = Store::open(dir.path().join("u.store"), &StoreConfig::new(registry))
            .await
            .unwrap();
        let cache = Arc::new(RoleCache::default());
        let (owner, bob) = (Id::<Account>::from_raw(1), Id::<Account>::from_raw(2));
        store
            .transact(|tx| {
                tx.create_group("friends")?;
                let note = tx.insert(&Note { text: "n".into() })?;
                tx.share(note, &Role::group("friends")?, &[], Some("n"))?;
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        let generation = store.read(|r| r.sharing_generation()).await.unwrap();

        // Bob is made a friend, his grant read in the same (write)
        // transaction, and the transaction undone.
        let c = cache.clone();
        let undone = store
            .transact(move |tx| {
                tx.add_member("friends", &Role::Account(bob))?;
                assert_eq!(tx.sharing_generation()?, generation + 1);
                let g = c.grant(tx, owner, Viewer::Account(bob), "n", false)?;
                assert!(g.is_some(), "he is a friend in this transaction");
                Err::<(), _>(SiteError::NoSuchShare("undo".into()))
            })
            .await;
        assert!(undone.is_err());
        assert!(
            cache.0.lock().viewers.is_empty(),
            "nothing kept from a write"
        );

        // Another change takes the store to that generation, without Bob.
        store
            .transact(|tx| tx.create_group("family"))
            .await
            .unwrap();
        let c = cache.clone();
        let (g, now) = store
            .read(move |r| {
                Ok::<_, mantle_store::Error>((
                    r.sharing_generation()?,
                    c.grant(r, owner, Viewer::Account(bob), "n", true)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(g, generation + 1);
        assert_eq!(now, None, "Bob is no friend");
        // Committed reads are kept.
        assert_eq!(cache.0.lock().viewers.len(), 1);
        assert_eq!(cache.0.lock().grants, 1);
        store.close().await;
    }

    /// An entry made by the owner's grant holds her roles, as any other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_owners_entry_holds_her_roles() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::new();
        crate::register(&mut registry);
        registry.register::<Note>();
        let store = Store::open(dir.path().join("u.store"), &StoreConfig::new(registry))
            .await
            .unwrap();
        let owner = Id::<Account>::from_raw(1);
        store
            .transact(move |tx| {
                tx.create_group("self")?;
                tx.add_member("self", &Role::Account(owner))?;
                let note = tx.insert(&Note { text: "n".into() })?;
                tx.share(note, &Role::Everyone, &[], Some("n"))?;
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        let cache = Arc::new(RoleCache::default());
        let c = cache.clone();
        let (grant, cached, read) = store
            .read(move |r| {
                let me = Viewer::Account(owner);
                let grant = c.grant(r, owner, me, "n", true)?;
                let generation = r.sharing_generation()?;
                let cached = c.roles(r, owner, me, generation, true)?;
                Ok::<_, mantle_store::Error>((grant, cached, r.roles_of(me)?))
            })
            .await
            .unwrap();
        assert!(grant.unwrap().access.is_owner());
        assert_eq!(*cached, read);
        assert!(read.contains(&Role::Group("self".into())));
        store.close().await;
    }

    /// The cache stays bounded, however many viewers and share ids are
    /// asked about.
    #[test]
    fn the_cache_is_bounded() {
        let cache = RoleCache::default();
        let roles = Arc::new(vec![Role::Everyone]);
        let owner = Id::<Account>::from_raw(1);
        for i in 0..GRANT_CACHE + 10 {
            let viewer = Viewer::Account(Id::from_raw(2 + (i % 5) as i64));
            cache.keep((owner, viewer), 7, roles.clone(), &i.to_string(), &None);
            let c = cache.0.lock();
            assert!(c.grants <= GRANT_CACHE);
            assert_eq!(
                c.grants,
                c.viewers.values().map(|v| v.grants.len()).sum::<usize>()
            );
        }
        // A new generation replaces a viewer's grants.
        let viewer = Viewer::Account(Id::from_raw(2));
        cache.keep((owner, viewer), 8, roles.clone(), "x", &None);
        let c = cache.0.lock();
        assert_eq!(c.viewers[&(owner, viewer)].grants.len(), 1);
        assert_eq!(
            c.grants,
            c.viewers.values().map(|v| v.grants.len()).sum::<usize>()
        );
        drop(c);
        for i in 0..ROLE_CACHE + 10 {
            let viewer = Viewer::Account(Id::from_raw(100 + i as i64));
            cache.keep((owner, viewer), 7, roles.clone(), "x", &None);
            assert!(cache.0.lock().viewers.len() <= ROLE_CACHE);
        }
    }
}
