//! Changing what a store shares, in its transactions: groups and
//! members, sharing and unsharing items.

use std::collections::{BTreeSet, VecDeque};

use mantle_store::{Id, Item, ReadTx, Tx};

use super::items::{Group, Membership, Share, SharingGeneration};
use super::notices::tell_shared;
use super::read::{check_share_id, new_share_id};
use super::roles::{Role, stored_access, would_cycle};
use crate::items::Account;
use crate::{Result, SiteError};

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
        let mut same_id = self
            .query::<Share>()
            .filter(Share::SHARE_ID.eq(share_id.as_str()))
            .all()?;
        if let Some(other) = same_id
            .iter()
            .find(|s| s.item_type != T::TYPE_NAME || s.item_id != item.raw())
        {
            // Taken by an item that still exists. The shares of an item
            // deleted without `unshare_item` are left over: withdrawn now,
            // and the id is free.
            if self.contains(&other.item_type, other.item_id)? {
                return Err(SiteError::ShareIdTaken(share_id));
            }
            self.delete_where(Share::SHARE_ID.eq(share_id.as_str()))?;
            same_id.clear();
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
