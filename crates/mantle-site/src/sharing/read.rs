//! Reading what a store shares: grants, the items a set of roles may see
//! (`asAccessibleTo`), shares and groups.

use std::collections::BTreeMap;

use mantle_store::{Id, Item, ReadTx, Stored};
use serde::{Deserialize, Serialize};

use super::items::{Group, Membership, Share, SharingGeneration};
use super::roles::{Access, Role, Viewer, check_name, roles_in};
use crate::items::Account;
use crate::{Result, SiteError};

/// The longest share id, in bytes.
const MAX_SHARE_ID: usize = 100;

/// What one viewer may do with one shared item: found through the share
/// id, with the access of every share of that id whose role they have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The share id.
    pub share_id: String,
    /// The item's type name.
    pub item_type: String,
    /// The item's raw id.
    pub item_id: i64,
    /// What the viewer may do.
    pub access: Access,
}

impl Grant {
    /// The item's id as a `T`, if the share is of a `T`; a share of another
    /// type is, to a caller expecting a `T`, no such share.
    pub fn item<T: Item>(&self) -> Result<Id<T>> {
        if self.item_type == T::TYPE_NAME {
            Ok(Id::from_raw(self.item_id))
        } else {
            Err(SiteError::NoSuchShare(self.share_id.clone()))
        }
    }

    /// Refuses ([`SiteError::NoSuchShare`], as for a share that does not
    /// exist) unless the viewer holds `access`.
    pub fn require(&self, access: &str) -> Result<()> {
        if self.access.permits(access) {
            Ok(())
        } else {
            Err(SiteError::NoSuchShare(self.share_id.clone()))
        }
    }
}

/// One share as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    /// The share id.
    pub share_id: String,
    /// Who it is shared with.
    pub role: Role,
    /// The item's type name.
    pub item_type: String,
    /// The item's raw id.
    pub item_id: i64,
    /// The access names granted (`read` included).
    pub access: Vec<String>,
}

impl From<&Share> for ShareInfo {
    fn from(s: &Share) -> Self {
        ShareInfo {
            share_id: s.share_id.clone(),
            role: s.role.parse().unwrap_or(Role::Everyone),
            item_type: s.item_type.clone(),
            item_id: s.item_id,
            access: s.access.split(',').map(str::to_string).collect(),
        }
    }
}

/// Checks a share id: 1-100 of `A-Z a-z 0-9 _ . - ~` (it is a URL path
/// segment as it is).
pub fn check_share_id(share_id: &str) -> Result<()> {
    let ok = !share_id.is_empty()
        && share_id.len() <= MAX_SHARE_ID
        && share_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-~".contains(&b))
        && share_id != "."
        && share_id != "..";
    if ok {
        Ok(())
    } else {
        Err(SiteError::BadShareId(share_id.to_string()))
    }
}

pub(super) fn new_share_id() -> Result<String> {
    let mut bytes = [0u8; 9];
    getrandom::fill(&mut bytes).map_err(|e| SiteError::NoRandomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reading what a store shares, in any transaction of it.
pub trait ReadShares {
    /// The store's sharing generation (see [`SharingGeneration`]).
    fn sharing_generation(&self) -> mantle_store::Result<i64>;

    /// The roles `viewer` has in this store (groups included).
    fn roles_of(&self, viewer: Viewer) -> mantle_store::Result<Vec<Role>>;

    /// What `roles` may do with the share `share_id`: `None` if no share
    /// of that id applies to them (or none exists).
    fn grant_for(&self, roles: &[Role], share_id: &str) -> mantle_store::Result<Option<Grant>>;

    /// What `viewer` may do with the share `share_id` of this store, owned
    /// by `owner` (who may do everything): `None` if nothing.
    fn grant(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
    ) -> mantle_store::Result<Option<Grant>>;

    /// The items of type `T` that `roles` may see, each with its grant
    /// (`asAccessibleTo`), by share id. An item shared under several ids
    /// appears once per id.
    fn accessible<T: Item>(&self, roles: &[Role]) -> mantle_store::Result<Vec<(Grant, Stored<T>)>>;

    /// Every share of the item `item`.
    fn shares_of<T: Item>(&self, item: Id<T>) -> mantle_store::Result<Vec<ShareInfo>>;

    /// Every share of this store.
    fn shares(&self) -> mantle_store::Result<Vec<ShareInfo>>;

    /// The groups of this store, each with its members.
    fn groups(&self) -> mantle_store::Result<Vec<(String, Vec<Role>)>>;
}

impl ReadShares for ReadTx<'_> {
    fn sharing_generation(&self) -> mantle_store::Result<i64> {
        // There is at most one row (`changed` makes it when there is none,
        // nothing deletes it), nearly always the first ever made: read by
        // id first, the cheapest read (this is on every checked access).
        if let Some(g) = self.get(Id::<SharingGeneration>::from_raw(1))? {
            return Ok(g.generation);
        }
        Ok(self
            .query::<SharingGeneration>()
            .first()?
            .map_or(0, |g| g.generation))
    }

    fn roles_of(&self, viewer: Viewer) -> mantle_store::Result<Vec<Role>> {
        roles_in(self, viewer)
    }

    fn grant_for(&self, roles: &[Role], share_id: &str) -> mantle_store::Result<Option<Grant>> {
        let names: Vec<String> = roles.iter().map(Role::to_string).collect();
        let shares = self
            .query::<Share>()
            .filter(Share::SHARE_ID.eq(share_id).and(Share::ROLE.is_in(names)))
            .all()?;
        Ok(merge(shares.iter().map(|s| &**s), None))
    }

    fn grant(
        &self,
        viewer: Viewer,
        owner: Id<Account>,
        share_id: &str,
    ) -> mantle_store::Result<Option<Grant>> {
        if viewer == Viewer::Account(owner) {
            return owner_grant(self, share_id);
        }
        let roles = self.roles_of(viewer)?;
        self.grant_for(&roles, share_id)
    }

    fn accessible<T: Item>(&self, roles: &[Role]) -> mantle_store::Result<Vec<(Grant, Stored<T>)>> {
        let names: Vec<String> = roles.iter().map(Role::to_string).collect();
        let shares = self
            .query::<Share>()
            .filter(
                Share::ITEM_TYPE
                    .eq(T::TYPE_NAME)
                    .and(Share::ROLE.is_in(names)),
            )
            .all()?;
        let mut by_id: BTreeMap<&str, Vec<&Share>> = BTreeMap::new();
        for s in &shares {
            by_id.entry(&s.share_id).or_default().push(s);
        }
        let mut out = Vec::new();
        for list in by_id.values() {
            let Some(grant) = merge(list.iter().copied(), None) else {
                continue;
            };
            if let Some(item) = self.get(Id::<T>::from_raw(grant.item_id))? {
                out.push((grant, item));
            }
        }
        Ok(out)
    }

    fn shares_of<T: Item>(&self, item: Id<T>) -> mantle_store::Result<Vec<ShareInfo>> {
        Ok(self
            .query::<Share>()
            .filter(
                Share::ITEM_TYPE
                    .eq(T::TYPE_NAME)
                    .and(Share::ITEM_ID.eq(item.raw())),
            )
            .all()?
            .iter()
            .map(|s| ShareInfo::from(&**s))
            .collect())
    }

    fn shares(&self) -> mantle_store::Result<Vec<ShareInfo>> {
        Ok(self
            .query::<Share>()
            .all()?
            .iter()
            .map(|s| ShareInfo::from(&**s))
            .collect())
    }

    fn groups(&self) -> mantle_store::Result<Vec<(String, Vec<Role>)>> {
        let members = self.query::<Membership>().all()?;
        Ok(self
            .query::<Group>()
            .order_by(Group::NAME.asc())
            .all()?
            .into_iter()
            .map(|g| {
                let of: Vec<Role> = members
                    .iter()
                    .filter(|m| m.group == g.name)
                    .filter_map(|m| m.member.parse().ok())
                    .collect();
                (g.into_inner().name, of)
            })
            .collect())
    }
}

/// The owner's grant on `share_id`: every access, if any share of that
/// id exists.
pub(super) fn owner_grant(r: &ReadTx, share_id: &str) -> mantle_store::Result<Option<Grant>> {
    let shares = r
        .query::<Share>()
        .filter(Share::SHARE_ID.eq(share_id))
        .limit(1)
        .all()?;
    Ok(merge(shares.iter().map(|s| &**s), Some(Access::owner())))
}

/// The grant made of `shares` (all of one share id), if any.
fn merge<'a>(shares: impl Iterator<Item = &'a Share>, start: Option<Access>) -> Option<Grant> {
    let mut grant: Option<Grant> = None;
    for s in shares {
        match &mut grant {
            None => {
                let mut access = Access::stored(&s.access);
                if let Some(start) = &start {
                    access.extend(start.clone());
                }
                grant = Some(Grant {
                    share_id: s.share_id.clone(),
                    item_type: s.item_type.clone(),
                    item_id: s.item_id,
                    access,
                });
            }
            Some(g) => g.access.extend(Access::stored(&s.access)),
        }
    }
    grant
}

/// Checks that `name` may name an access (1-64 of `a-z 0-9 _ . -`).
pub fn check_access_name(name: &str) -> Result<()> {
    check_name("access", name)
}
