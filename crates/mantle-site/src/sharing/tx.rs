//! Sharing inside a user store's transactions: groups and members,
//! sharing and unsharing items, and the queries that decide what a set of
//! roles may see (`asAccessibleTo`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mantle_store::{Id, Item, ReadTx, Stored, Tx};
use serde::{Deserialize, Serialize};

use super::items::{Group, Membership, Share, SharedWithMe, SharingGeneration};
use super::roles::{Access, Role, Viewer, check_name, roles_in, stored_access, would_cycle};
use crate::items::Account;
use crate::messaging::{Envelope, Message, MessageHandlers, Refusal, SendMessage};
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

fn new_share_id() -> Result<String> {
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

/// Changing what a store shares, in a write transaction of it. Every
/// change advances the store's sharing generation, so cached roles and
/// shares are re-read, and is announced to the site after commit (open
/// live observations are re-checked).
pub trait ShareItems {
    /// Shares `item` with `role` for `access` (`read` is implied: `&[]`
    /// shares for reading) under `share_id` (`None`: a new random one).
    /// Sharing again with the same role under the same id replaces the
    /// access. Answers the share id.
    ///
    /// Refused: a share id already naming another item
    /// ([`SiteError::ShareIdTaken`]), a missing item, a group that does
    /// not exist, a malformed id or access name.
    fn share<T: Item>(
        &mut self,
        item: Id<T>,
        role: &Role,
        access: &[&str],
        share_id: Option<&str>,
    ) -> Result<String>;

    /// Withdraws the share `share_id` from `role` (`None`: from every
    /// role). Answers how many shares went.
    fn unshare(&mut self, share_id: &str, role: Option<&Role>) -> Result<usize>;

    /// Withdraws every share of `item` (before deleting it, say).
    fn unshare_item<T: Item>(&mut self, item: Id<T>) -> Result<usize>;

    /// Makes the group `name` (no error if it exists).
    fn create_group(&mut self, name: &str) -> Result<Role>;

    /// Deletes the group `name`, its memberships (as a group and as a
    /// member) and the shares made to it. Answers whether it existed.
    fn delete_group(&mut self, name: &str) -> Result<bool>;

    /// Makes `member` a member of group `group`. Refused if it would make
    /// a cycle ([`SiteError::RoleCycle`]) or a group does not exist.
    fn add_member(&mut self, group: &str, member: &Role) -> Result<()>;

    /// Removes `member` from group `group`. Answers whether it was one.
    fn remove_member(&mut self, group: &str, member: &Role) -> Result<bool>;
}

impl ShareItems for Tx<'_> {
    fn share<T: Item>(
        &mut self,
        item: Id<T>,
        role: &Role,
        access: &[&str],
        share_id: Option<&str>,
    ) -> Result<String> {
        let access = stored_access(access)?;
        if self.get(item)?.is_none() {
            return Err(mantle_store::Error::NoSuchItem {
                type_name: T::TYPE_NAME,
                id: item.raw(),
            }
            .into());
        }
        require_role(self, role)?;
        let share_id = match share_id {
            Some(s) => {
                check_share_id(s)?;
                s.to_string()
            }
            None => new_share_id()?,
        };
        let same_id = self
            .query::<Share>()
            .filter(Share::SHARE_ID.eq(share_id.as_str()))
            .all()?;
        if same_id
            .iter()
            .any(|s| s.item_type != T::TYPE_NAME || s.item_id != item.raw())
        {
            return Err(SiteError::ShareIdTaken(share_id));
        }
        let role_name = role.to_string();
        match same_id.into_iter().find(|s| s.role == role_name) {
            Some(mut existing) => {
                existing.access = access;
                self.update(&mut existing)?;
            }
            None => {
                self.insert(&Share {
                    share_id: share_id.clone(),
                    role: role_name,
                    item_type: T::TYPE_NAME.to_string(),
                    item_id: item.raw(),
                    access,
                })?;
            }
        }
        for account in users_under(self, role)? {
            tell_shared(self, account, &share_id, T::TYPE_NAME)?;
        }
        changed(self)?;
        Ok(share_id)
    }

    fn unshare(&mut self, share_id: &str, role: Option<&Role>) -> Result<usize> {
        let mut filter = Share::SHARE_ID.eq(share_id);
        if let Some(role) = role {
            filter = filter.and(Share::ROLE.eq(role.to_string()));
        }
        let n = self.delete_where(filter)?;
        if n > 0 {
            changed(self)?;
        }
        Ok(n)
    }

    fn unshare_item<T: Item>(&mut self, item: Id<T>) -> Result<usize> {
        let n = self.delete_where(
            Share::ITEM_TYPE
                .eq(T::TYPE_NAME)
                .and(Share::ITEM_ID.eq(item.raw())),
        )?;
        if n > 0 {
            changed(self)?;
        }
        Ok(n)
    }

    fn create_group(&mut self, name: &str) -> Result<Role> {
        let role = Role::group(name)?;
        let name = name.to_string();
        if !self
            .query::<Group>()
            .filter(Group::NAME.eq(name.as_str()))
            .exists()?
        {
            self.insert(&Group { name })?;
            changed(self)?;
        }
        Ok(role)
    }

    fn delete_group(&mut self, name: &str) -> Result<bool> {
        let n = self.delete_where(Group::NAME.eq(name))?;
        if n == 0 {
            return Ok(false);
        }
        let role = format!("group:{name}");
        self.delete_where(Membership::GROUP.eq(name))?;
        self.delete_where(Membership::MEMBER.eq(role.as_str()))?;
        self.delete_where(Share::ROLE.eq(role.as_str()))?;
        changed(self)?;
        Ok(true)
    }

    fn add_member(&mut self, group: &str, member: &Role) -> Result<()> {
        require_role(self, &Role::group(group)?)?;
        require_role(self, member)?;
        if would_cycle(self, group, member)? {
            return Err(SiteError::RoleCycle {
                group: group.to_string(),
                member: member.to_string(),
            });
        }
        let member_name = member.to_string();
        let exists = self
            .query::<Membership>()
            .filter(
                Membership::GROUP
                    .eq(group)
                    .and(Membership::MEMBER.eq(member_name.as_str())),
            )
            .exists()?;
        if exists {
            return Ok(());
        }
        self.insert(&Membership {
            group: group.to_string(),
            member: member_name,
        })?;
        // Tell the users now under the group what its shares (and those
        // of the groups it is in) are.
        let mut above = vec![format!("group:{group}")];
        let mut i = 0;
        while i < above.len() {
            let containing = self
                .query::<Membership>()
                .filter(Membership::MEMBER.eq(above[i].as_str()))
                .all()?;
            for m in containing {
                let g = format!("group:{}", m.group);
                if !above.contains(&g) {
                    above.push(g);
                }
            }
            i += 1;
        }
        let shares = self
            .query::<Share>()
            .filter(Share::ROLE.is_in(above))
            .all()?;
        let users = users_under(self, member)?;
        for s in &shares {
            for account in &users {
                tell_shared(self, *account, &s.share_id, &s.item_type)?;
            }
        }
        changed(self)?;
        Ok(())
    }

    fn remove_member(&mut self, group: &str, member: &Role) -> Result<bool> {
        let n = self.delete_where(
            Membership::GROUP
                .eq(group)
                .and(Membership::MEMBER.eq(member.to_string())),
        )?;
        if n > 0 {
            changed(self)?;
        }
        Ok(n > 0)
    }
}

/// Refuses a group role whose group does not exist.
fn require_role(r: &ReadTx, role: &Role) -> Result<()> {
    if let Role::Group(name) = role
        && !r
            .query::<Group>()
            .filter(Group::NAME.eq(name.as_str()))
            .exists()?
    {
        return Err(SiteError::NoSuchGroup(name.clone()));
    }
    Ok(())
}

/// The accounts `role` stands for among the store's members: itself for
/// an account, the accounts (transitively) in a group; none for
/// `everyone` and `authenticated` (public shares are not announced).
fn users_under(r: &ReadTx, role: &Role) -> mantle_store::Result<BTreeSet<Id<Account>>> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([role.clone()]);
    while let Some(role) = queue.pop_front() {
        match role {
            Role::Account(id) => {
                out.insert(id);
            }
            Role::Group(name) if seen.insert(name.clone()) => {
                for m in r
                    .query::<Membership>()
                    .filter(Membership::GROUP.eq(name.as_str()))
                    .all()?
                {
                    if let Ok(role) = m.member.parse() {
                        queue.push_back(role);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Advances the sharing generation and records the change's effect.
fn changed(tx: &mut Tx) -> mantle_store::Result<()> {
    match tx.query::<SharingGeneration>().first()? {
        Some(mut g) => {
            g.generation += 1;
            tx.update(&mut g)?;
        }
        None => {
            tx.insert(&SharingGeneration { generation: 1 })?;
        }
    }
    tx.record(&super::SharingChanged {})?;
    Ok(())
}

/// "Something is shared with you": sent to a user a share now reaches,
/// so they can list it. A hint only: access is checked on use.
#[derive(Debug, Serialize, Deserialize)]
struct SharedNotice {
    share_id: String,
    item_type: String,
}

impl Message for SharedNotice {
    const TYPE: &'static str = "mantle.shared_notice";
    type Answer = ();
    const ONE_WAY: bool = true;
}

fn tell_shared(
    tx: &mut Tx,
    account: Id<Account>,
    share_id: &str,
    item_type: &str,
) -> mantle_store::Result<()> {
    tx.send(
        &format!("account:{}", account.raw()),
        &SharedNotice {
            share_id: share_id.to_string(),
            item_type: item_type.to_string(),
        },
    )?;
    Ok(())
}

/// Registers the handler of [`SharedNotice`] in user stores.
pub(crate) fn register_notices(handlers: &mut MessageHandlers) {
    handlers.on::<SharedNotice>(|tx, env: &Envelope, notice| {
        let Viewer::Account(owner) = Viewer::of_sender(&env.from) else {
            return Err(Refusal::new(
                "NOT_A_USER",
                "only users share items with users",
            ));
        };
        let known = tx
            .query::<SharedWithMe>()
            .filter(
                SharedWithMe::OWNER
                    .eq(owner.raw())
                    .and(SharedWithMe::SHARE_ID.eq(notice.share_id.as_str())),
            )
            .exists()?;
        if !known {
            tx.insert(&SharedWithMe {
                owner: owner.raw(),
                share_id: notice.share_id,
                item_type: notice.item_type,
            })?;
        }
        Ok(())
    });
}

/// Checks that `name` may name an access (1-64 of `a-z 0-9 _ . -`).
pub fn check_access_name(name: &str) -> Result<()> {
    check_name("access", name)
}
