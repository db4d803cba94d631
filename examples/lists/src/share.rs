//! Owning and sharing lists. A list lives in its owner's store and is
//! shared under its name: first with the owner's own primary role (so the
//! name is a share id from the start, and every list, one's own or
//! another's, is reached the same way, as `(owner, name)` through the
//! sharing layer), then with whoever the owner chooses, for reading or
//! editing, or with everyone for reading. Every access decision is the
//! sharing layer's (`site.sharing()`).

use std::collections::HashMap;

use mantle_live::{CommandError, arguments};
use mantle_live_server::Failure;
use mantle_site::sharing::{EDIT, READ, ReadShares, Role, ShareItems, Viewer};
use mantle_site::{Account, Site, SiteError};
use mantle_store::{Id, Item, ReadTx, Tx};
use serde::{Deserialize, Serialize};

use crate::entries::{ListSnapshot, read_snapshot};
use crate::items::{List, check_name};

/// What `with` says to share a list with everyone (anonymous visitors
/// included), for reading only.
pub const EVERYONE: &str = "everyone";

/// How far a share lets others go with a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListAccess {
    /// See the list and follow its changes.
    Read,
    /// Read, and add, edit and remove entries.
    Edit,
}

impl ListAccess {
    /// `read` or `edit`.
    pub fn parse(access: &str) -> Result<ListAccess, ShareError> {
        match access {
            "read" => Ok(ListAccess::Read),
            "edit" => Ok(ListAccess::Edit),
            other => Err(ShareError::BadAccess {
                reason: format!("access is \"read\" or \"edit\", not {other:?}"),
            }),
        }
    }

    /// The access names a share of this access grants.
    fn names(self) -> &'static [&'static str] {
        match self {
            ListAccess::Read => &[],
            ListAccess::Edit => &[EDIT],
        }
    }

    /// The access shown for a set of access names (`edit` if it is one).
    fn of(names: &[String]) -> ListAccess {
        if names.iter().any(|n| n == EDIT || n == "owner") {
            ListAccess::Edit
        } else {
            ListAccess::Read
        }
    }

    /// `read` or `edit`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListAccess::Read => READ,
            ListAccess::Edit => EDIT,
        }
    }
}

/// Why an owner's sharing request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum ShareError {
    /// The name cannot name a list.
    #[serde(rename = "BAD_NAME")]
    #[error("bad list name: {reason}")]
    BadName {
        /// What is wrong with it.
        reason: String,
    },
    /// The owner has no list of that name.
    #[serde(rename = "NO_SUCH_LIST")]
    #[error("you have no list named {name:?}")]
    NoSuchList {
        /// The name asked for.
        name: String,
    },
    /// `with` names no account that can be shared with.
    #[serde(rename = "NO_SUCH_USER")]
    #[error("no user {login:?} to share with")]
    NoSuchUser {
        /// The login asked for.
        login: String,
    },
    /// The access asked for is unknown, or not for this sharee (everyone
    /// reads only; the owner herself holds every access already).
    #[serde(rename = "BAD_ACCESS")]
    #[error("{reason}")]
    BadAccess {
        /// What is wrong with it.
        reason: String,
    },
}
impl CommandError for ShareError {}

/// What sharing functions fail with: a refusal, or the site.
#[derive(Debug, thiserror::Error)]
pub enum ShareFailure {
    /// A refusal to tell the owner.
    #[error(transparent)]
    Refused(#[from] ShareError),
    /// The site or a store failed.
    #[error(transparent)]
    Site(#[from] SiteError),
}

impl From<mantle_store::Error> for ShareFailure {
    fn from(e: mantle_store::Error) -> Self {
        ShareFailure::Site(e.into())
    }
}

impl From<ShareFailure> for Failure<ShareError> {
    fn from(e: ShareFailure) -> Self {
        match e {
            ShareFailure::Refused(e) => Failure::Command(e),
            ShareFailure::Site(e) => Failure::internal(e),
        }
    }
}

arguments! {
    /// One share of a list, as its owner sees it.
    #[derive(PartialEq, Eq)]
    pub struct ShareView {
        /// Who it is shared with: a login, or `everyone`.
        pub with: String,
        /// `read` or `edit`.
        pub access: String,
    }
    /// One of the caller's own lists, with its shares.
    #[derive(PartialEq, Eq)]
    pub struct MyList {
        /// The list's name.
        pub name: String,
        /// Who else may see it (the owner is not listed), by login.
        pub shares: Vec<ShareView>,
    }
    /// A list another user shares with the caller.
    #[derive(PartialEq, Eq)]
    pub struct SharedList {
        /// The owner's login.
        pub owner: String,
        /// The list's name.
        pub name: String,
        /// `read` or `edit`.
        pub access: String,
    }
}

/// In a transaction of `owner`'s store: her list `name`, if she has one.
pub fn find_in(
    r: &ReadTx,
    owner: Id<Account>,
    name: &str,
) -> mantle_store::Result<Option<Id<List>>> {
    Ok(r.grant(Viewer::Account(owner), owner, name)?
        .and_then(|g| g.item::<List>().ok()))
}

/// In a transaction of `owner`'s store: her list `name`, made if she has
/// none, and shared with her own primary role under its name.
/// [`SiteError::ShareIdTaken`] if the name is the share id of another
/// kind of item of hers.
pub fn create_in(tx: &mut Tx, owner: Id<Account>, name: &str) -> Result<Id<List>, SiteError> {
    if let Some(grant) = tx.grant(Viewer::Account(owner), owner, name)? {
        return grant
            .item::<List>()
            .map_err(|_| SiteError::ShareIdTaken(name.to_string()));
    }
    let list = tx.insert(&List {
        name: name.to_string(),
    })?;
    tx.share(list, &Role::account(owner), &[], Some(name))?;
    Ok(list)
}

/// Makes `owner`'s list `name` unless she has it; its id.
pub async fn create(site: &Site, owner: Id<Account>, name: &str) -> Result<Id<List>, SiteError> {
    check_name(name).map_err(|_| SiteError::BadShareId(name.to_string()))?;
    let store = site.stores().user_store_unchecked(owner).await?;
    let name = name.to_string();
    store.transact(move |tx| create_in(tx, owner, &name)).await
}

/// The role `with` names for `owner`'s sharing: everyone, or another
/// user's primary role.
async fn sharee(site: &Site, owner: Id<Account>, with: &str) -> Result<Role, ShareError> {
    let with = with.trim();
    if with.eq_ignore_ascii_case(EVERYONE) {
        return Ok(Role::Everyone);
    }
    match site.sharing().owner(with).await {
        Some(id) if id == owner => Err(ShareError::BadAccess {
            reason: "a list's owner holds every access to it already".into(),
        }),
        Some(id) => Ok(Role::account(id)),
        None => Err(ShareError::NoSuchUser {
            login: with.to_string(),
        }),
    }
}

fn bad_name(name: &str) -> Result<(), ShareError> {
    check_name(name).map_err(|reason| ShareError::BadName { reason })
}

/// Shares `owner`'s list `name` with `with` (a login, or [`EVERYONE`],
/// who may only read) for `access`; sharing again with the same user
/// replaces the access.
pub async fn share(
    site: &Site,
    owner: Id<Account>,
    name: &str,
    with: &str,
    access: ListAccess,
) -> Result<(), ShareFailure> {
    bad_name(name)?;
    let role = sharee(site, owner, with).await?;
    if role == Role::Everyone && access != ListAccess::Read {
        return Err(ShareError::BadAccess {
            reason: "a list is published to everyone for reading only".into(),
        }
        .into());
    }
    let store = site.stores().user_store_unchecked(owner).await?;
    let name = name.to_string();
    store
        .transact(move |tx| {
            let list =
                find_in(tx, owner, &name)?.ok_or(ShareError::NoSuchList { name: name.clone() })?;
            tx.share(list, &role, access.names(), Some(&name))?;
            Ok(())
        })
        .await
}

/// Withdraws the share of `owner`'s list `name` with `with` (a login, or
/// [`EVERYONE`]); whether there was one. Whoever it reached loses the list
/// at once: their handles refuse, their observations end.
pub async fn unshare(
    site: &Site,
    owner: Id<Account>,
    name: &str,
    with: &str,
) -> Result<bool, ShareFailure> {
    bad_name(name)?;
    let role = sharee(site, owner, with).await?;
    let store = site.stores().user_store_unchecked(owner).await?;
    let name = name.to_string();
    store
        .transact(move |tx| {
            find_in(tx, owner, &name)?.ok_or(ShareError::NoSuchList { name: name.clone() })?;
            Ok(tx.unshare(&name, Some(&role))? > 0)
        })
        .await
}

/// How a role is shown to the owner: a login (looked up in `logins`),
/// `everyone`, or the role as written.
fn shown(role: &Role, logins: &HashMap<Id<Account>, String>) -> String {
    match role {
        Role::Everyone => EVERYONE.to_string(),
        Role::Account(id) => logins.get(id).cloned().unwrap_or_else(|| role.to_string()),
        other => other.to_string(),
    }
}

/// `owner`'s lists by name, each with the shares she made of it.
pub async fn my_lists(site: &Site, owner: Id<Account>) -> Result<Vec<MyList>, SiteError> {
    let mine = site
        .sharing()
        .accessible::<List>(Viewer::Account(owner), owner)
        .await?;
    let store = site.stores().user_store_unchecked(owner).await?;
    let shares = store.read(|r| r.shares()).await?;
    let mut logins = HashMap::new();
    for s in &shares {
        if let Role::Account(id) = s.role
            && id != owner
            && !logins.contains_key(&id)
        {
            // A deleted account's share is shown by its role.
            if let Ok(a) = site.accounts().by_id(id).await {
                logins.insert(id, a.primary);
            }
        }
    }
    let mut out: Vec<MyList> = mine
        .iter()
        .map(|list| MyList {
            name: list.grant.share_id.clone(),
            shares: shares
                .iter()
                .filter(|s| {
                    s.share_id == list.grant.share_id
                        && s.item_type == List::TYPE_NAME
                        && s.role != Role::account(owner)
                })
                .map(|s| ShareView {
                    with: shown(&s.role, &logins),
                    access: ListAccess::of(&s.access).as_str().to_string(),
                })
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for list in &mut out {
        list.shares.sort_by(|a, b| a.with.cmp(&b.with));
    }
    Ok(out)
}

/// The lists other users share with `account` (directly or through a
/// group; lists published to everyone are not listed), by owner.
pub async fn shared_lists(site: &Site, account: Id<Account>) -> Result<Vec<SharedList>, SiteError> {
    Ok(site
        .sharing()
        .shared_with(account)
        .await?
        .into_iter()
        .filter(|e| e.item_type == List::TYPE_NAME && e.owner != account.raw())
        .map(|e| SharedList {
            access: ListAccess::of(&e.access).as_str().to_string(),
            owner: e.owner_login,
            name: e.share_id,
        })
        .collect())
}

/// `owner`'s list `name` as `viewer` may read it: its name and entries,
/// read in the transaction that checks the viewer's access (through the
/// sharing layer). [`SiteError::NoSuchShare`] if the viewer may not read
/// it, whatever the reason.
pub async fn read(
    site: &Site,
    viewer: Viewer,
    owner: Id<Account>,
    name: &str,
) -> Result<ListSnapshot, SiteError> {
    site.sharing()
        .read(viewer, owner, name, READ, |r, grant| {
            Ok(read_snapshot(r, grant.item::<List>()?)?)
        })
        .await
}
