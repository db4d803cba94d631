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

#[cfg(test)]
mod tests {
    use mantle_store::{Registry, Store, StoreConfig};

    use super::*;
    use crate::sharing::{EDIT, READ};

    #[derive(mantle_store::Item, Debug, Clone)]
    #[item(name = "test_note", version = 1)]
    struct Note {
        text: String,
    }

    #[derive(mantle_store::Item, Debug, Clone)]
    #[item(name = "test_memo", version = 1)]
    struct Memo {
        text: String,
    }

    /// A user store as the site makes them, with two shareable types.
    async fn store(dir: &tempfile::TempDir) -> Store {
        let mut registry = Registry::new();
        crate::register(&mut registry);
        registry.register::<Note>().register::<Memo>();
        Store::open(dir.path().join("user.store"), &StoreConfig::new(registry))
            .await
            .unwrap()
    }

    fn bob() -> Role {
        Role::Account(Id::from_raw(2))
    }

    fn carol() -> Role {
        Role::Account(Id::from_raw(3))
    }

    async fn generation(store: &Store) -> i64 {
        store.read(|r| r.sharing_generation()).await.unwrap()
    }

    /// The access names `roles` hold on `share_id`, if any.
    async fn access(store: &Store, roles: &[Role], share_id: &str) -> Option<Vec<String>> {
        let (roles, id) = (roles.to_vec(), share_id.to_string());
        store
            .read(move |r| r.grant_for(&roles, &id))
            .await
            .unwrap()
            .map(|g| g.access.names())
    }

    #[test]
    fn share_ids_are_checked() {
        for ok in ["hello", "A-b_c.d~9", "...", ".x", &"x".repeat(100)] {
            assert!(check_share_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a%20b",
            "é",
            "a?b",
            "a#b",
            &"x".repeat(101),
        ] {
            match check_share_id(bad) {
                Err(SiteError::BadShareId(s)) => assert_eq!(s, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let id = new_share_id().unwrap();
        assert_eq!(id.len(), 18);
        assert!(check_share_id(&id).is_ok());
        assert!(check_access_name("comment").is_ok());
        assert!(check_access_name("Comment").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_share_id_names_one_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (a, b, memo) = store
            .transact(|tx| {
                let a = tx.insert(&Note { text: "a".into() })?;
                let b = tx.insert(&Note { text: "b".into() })?;
                let memo = tx.insert(&Memo { text: "m".into() })?;
                tx.share(a, &bob(), &[], Some("x"))?;
                // The same item under the same id, for another role: fine.
                tx.share(a, &carol(), &[EDIT], Some("x"))?;
                Ok::<_, SiteError>((a, b, memo))
            })
            .await
            .unwrap();
        let before = generation(&store).await;
        let taken = store
            .transact(move |tx| tx.share(b, &bob(), &[], Some("x")))
            .await;
        assert!(matches!(taken, Err(SiteError::ShareIdTaken(ref s)) if s == "x"));
        // Nor by an item of another type.
        let taken = store
            .transact(move |tx| tx.share(memo, &bob(), &[], Some("x")))
            .await;
        assert!(
            matches!(taken, Err(SiteError::ShareIdTaken(_))),
            "{taken:?}"
        );
        assert_eq!(
            generation(&store).await,
            before,
            "a refusal changes nothing"
        );
        // Once every share of the id is withdrawn, another item may take it.
        let n = store.transact(|tx| tx.unshare("x", None)).await.unwrap();
        assert_eq!(n, 2);
        store
            .transact(move |tx| tx.share(b, &bob(), &[], Some("x")))
            .await
            .unwrap();
        let grant = store
            .read(|r| r.grant_for(&[bob()], "x"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (grant.item_type.as_str(), grant.item_id),
            ("test_note", b.raw())
        );
        // A missing item is refused; a new id is made when none is given.
        let missing = store
            .transact(|tx| tx.share(Id::<Note>::from_raw(999), &bob(), &[], None))
            .await;
        assert!(matches!(
            missing,
            Err(SiteError::Store(mantle_store::Error::NoSuchItem { .. }))
        ));
        let fresh = store
            .transact(move |tx| tx.share(a, &bob(), &[], None))
            .await
            .unwrap();
        assert!(check_share_id(&fresh).is_ok() && fresh != "x");
        let bad = store
            .transact(move |tx| tx.share(a, &bob(), &["Edit"], Some("y")))
            .await;
        assert!(matches!(bad, Err(SiteError::BadSharingName { .. })));
        let bad = store
            .transact(move |tx| tx.share(a, &bob(), &[], Some("a/b")))
            .await;
        assert!(matches!(bad, Err(SiteError::BadShareId(_))));
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sharing_again_replaces_the_access() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let note = store
            .transact(|tx| {
                let note = tx.insert(&Note { text: "n".into() })?;
                tx.share(note, &bob(), &[EDIT, "comment"], Some("n"))?;
                Ok::<_, SiteError>(note)
            })
            .await
            .unwrap();
        assert_eq!(
            access(&store, &[bob()], "n").await.unwrap(),
            [READ, "comment", EDIT]
        );
        let g = generation(&store).await;
        store
            .transact(move |tx| tx.share(note, &bob(), &[], Some("n")))
            .await
            .unwrap();
        assert_eq!(access(&store, &[bob()], "n").await.unwrap(), [READ]);
        assert!(generation(&store).await > g);
        let shares = store.read(|r| r.shares()).await.unwrap();
        assert_eq!(shares.len(), 1, "{shares:?}");
        assert_eq!(shares[0].access, [READ]);
        // Another role's share of the id adds to what a viewer with both
        // roles holds.
        store
            .transact(move |tx| tx.share(note, &Role::Authenticated, &[EDIT], Some("n")))
            .await
            .unwrap();
        assert_eq!(
            access(&store, &[bob(), Role::Authenticated], "n")
                .await
                .unwrap(),
            [READ, EDIT]
        );
        assert_eq!(access(&store, &[bob()], "n").await.unwrap(), [READ]);
        assert_eq!(access(&store, &[Role::Everyone], "n").await, None);
        let of_note = store.read(move |r| r.shares_of(note)).await.unwrap();
        assert_eq!(of_note.len(), 2);
        // Withdrawn from one role only.
        let n = store
            .transact(|tx| tx.unshare("n", Some(&bob())))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(access(&store, &[bob()], "n").await, None);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_group_takes_its_memberships_and_shares() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let friends = Role::group("friends").unwrap();
        let family = Role::group("family").unwrap();
        let close = Role::group("close").unwrap();
        let (f, fa, c) = (friends.clone(), family.clone(), close.clone());
        store
            .transact(move |tx| {
                tx.create_group("friends")?;
                tx.create_group("family")?;
                tx.create_group("close")?;
                tx.add_member("friends", &bob())?;
                tx.add_member("friends", &c)?;
                tx.add_member("close", &carol())?;
                tx.add_member("family", &f)?;
                tx.add_member("family", &carol())?;
                let note = tx.insert(&Note { text: "n".into() })?;
                tx.share(note, &f, &[EDIT], Some("to-friends"))?;
                tx.share(note, &fa, &[], Some("to-family"))?;
                tx.share(note, &bob(), &[], Some("to-bob"))?;
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        let bob_viewer = Viewer::Account(Id::from_raw(2));
        let roles = store.read(move |r| r.roles_of(bob_viewer)).await.unwrap();
        assert!(roles.contains(&friends) && roles.contains(&family));
        assert!(!roles.contains(&close));

        let g = generation(&store).await;
        assert!(
            store
                .transact(|tx| tx.delete_group("friends"))
                .await
                .unwrap()
        );
        assert!(generation(&store).await > g);
        let groups = store.read(|r| r.groups()).await.unwrap();
        assert_eq!(
            groups,
            [
                ("close".to_string(), vec![carol()]),
                ("family".to_string(), vec![carol()]),
            ]
        );
        let shares: Vec<String> = store
            .read(|r| r.shares())
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.share_id)
            .collect();
        assert_eq!(shares.len(), 2);
        assert!(!shares.contains(&"to-friends".to_string()));
        let roles = store.read(move |r| r.roles_of(bob_viewer)).await.unwrap();
        assert!(!roles.contains(&friends) && !roles.contains(&family));
        assert_eq!(access(&store, &roles, "to-family").await, None);
        assert_eq!(access(&store, &roles, "to-bob").await.unwrap(), [READ]);
        // Made again, it starts empty: nothing of the old group comes back.
        store
            .transact(|tx| tx.create_group("friends"))
            .await
            .unwrap();
        let groups = store.read(|r| r.groups()).await.unwrap();
        assert!(groups.contains(&("friends".to_string(), vec![])));
        assert_eq!(access(&store, &[friends], "to-friends").await, None);
        // Deleting what does not exist changes nothing.
        let g = generation(&store).await;
        assert!(!store.transact(|tx| tx.delete_group("ghost")).await.unwrap());
        assert_eq!(generation(&store).await, g);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_groups_and_cycles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let note = store
            .transact(|tx| {
                tx.create_group("a")?;
                tx.create_group("b")?;
                tx.create_group("c")?;
                tx.add_member("b", &Role::group("a")?)?;
                tx.add_member("c", &Role::group("b")?)?;
                Ok::<_, SiteError>(tx.insert(&Note { text: "n".into() })?)
            })
            .await
            .unwrap();
        let g = generation(&store).await;
        let ghost = Role::Group("ghost".into());
        let gh = ghost.clone();
        let r = store
            .transact(move |tx| tx.share(note, &gh, &[], Some("x")))
            .await;
        assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
        let r = store.transact(|tx| tx.add_member("ghost", &bob())).await;
        assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
        let gh = ghost.clone();
        let r = store.transact(move |tx| tx.add_member("a", &gh)).await;
        assert!(matches!(r, Err(SiteError::NoSuchGroup(ref n)) if n == "ghost"));
        let r = store.transact(|tx| tx.add_member("Bad Name", &bob())).await;
        assert!(matches!(r, Err(SiteError::BadSharingName { .. })));
        for (group, member) in [("a", "c"), ("a", "b"), ("a", "a")] {
            let m = Role::group(member).unwrap();
            let r = store.transact(move |tx| tx.add_member(group, &m)).await;
            match r {
                Err(SiteError::RoleCycle {
                    group: gr,
                    member: m,
                }) => {
                    assert_eq!((gr.as_str(), m), (group, format!("group:{member}")));
                }
                other => panic!("{group} <- {member}: {other:?}"),
            }
        }
        // Not a cycle: the same group reached twice (a diamond).
        store
            .transact(|tx| tx.add_member("c", &Role::group("a")?))
            .await
            .unwrap();
        assert_eq!(
            generation(&store).await,
            g + 1,
            "only the diamond changed anything"
        );
        // Adding again, or removing what is not there, changes nothing.
        store
            .transact(|tx| {
                tx.add_member("c", &Role::group("a")?)?;
                tx.create_group("a")?;
                assert!(!tx.remove_member("a", &bob())?);
                assert_eq!(tx.unshare("nothing", None)?, 0);
                assert_eq!(tx.unshare_item(Id::<Note>::from_raw(12345))?, 0);
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        assert_eq!(generation(&store).await, g + 1);
        assert!(store.read(|r| r.shares()).await.unwrap().is_empty());
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_owner_holds_everything_on_shares_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let owner = Id::<Account>::from_raw(1);
        store
            .transact(|tx| {
                let note = tx.insert(&Note { text: "n".into() })?;
                tx.share(note, &bob(), &[], Some("n"))?;
                Ok::<_, SiteError>(())
            })
            .await
            .unwrap();
        let (mine, missing, bobs, anon) = store
            .read(move |r| {
                Ok::<_, mantle_store::Error>((
                    r.grant(Viewer::Account(owner), owner, "n")?,
                    r.grant(Viewer::Account(owner), owner, "nothing")?,
                    r.grant(Viewer::Account(Id::from_raw(2)), owner, "n")?,
                    r.grant(Viewer::Anonymous, owner, "n")?,
                ))
            })
            .await
            .unwrap();
        let mine = mine.unwrap();
        assert!(mine.access.is_owner() && mine.access.permits(EDIT));
        assert!(mine.require("anything").is_ok());
        assert!(missing.is_none() && anon.is_none());
        let bobs = bobs.unwrap();
        assert!(bobs.require(READ).is_ok());
        assert!(matches!(bobs.require(EDIT), Err(SiteError::NoSuchShare(ref s)) if s == "n"));
        assert!(bobs.item::<Note>().is_ok());
        assert!(matches!(
            bobs.item::<Memo>(),
            Err(SiteError::NoSuchShare(_))
        ));
        store.close().await;
    }
}
