//! Sharing a bookmark with one user: a read-only share to their account
//! in the owner's store, so they see the owner's live bookmark (not a
//! copy) until the owner withdraws it. Everything another user reads goes
//! through the sharing layer (`site.sharing()`), which answers a missing
//! share and one the viewer may not read alike.

use std::collections::HashMap;

use mantle_site::sharing::{READ, ReadShares, Role, ShareInfo, ShareItems, Shared, Viewer};
use mantle_site::{Account, Recipient, Site, SiteError};
use mantle_store::{Id, Item};
use serde::{Deserialize, Serialize};

use crate::NAME;
use crate::checks::BookmarkError;
use crate::items::Bookmark;

/// One share of a bookmark, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareView {
    /// Who it is shared with: a user's primary login (`account:ID` for an
    /// account that is gone), or `everyone` when it is published.
    pub with: String,
    /// The share id: how others name the bookmark.
    pub share_id: String,
    /// What they may do (`read`).
    pub access: Vec<String>,
}

/// Another user's bookmark, as the sharing layer shows it to a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedBookmark {
    /// The owner: their primary login (for an anonymous visitor, as the
    /// visitor named them: see [`open_shared`]).
    pub owner: String,
    /// The share id in the owner's store.
    pub share_id: String,
    /// Where it points.
    pub url: String,
    /// What the owner calls it.
    pub title: String,
    /// When the owner made it (RFC 3339).
    pub created: String,
}

impl SharedBookmark {
    fn new(owner: String, shared: &Shared<Bookmark>) -> Self {
        SharedBookmark {
            owner,
            share_id: shared.grant.share_id.clone(),
            url: shared.url.clone(),
            title: shared.title.clone(),
            created: shared.created.to_string(),
        }
    }
}

/// The account `to` (a login or `account:ID`) names, if `from` may share
/// bookmarks with it: another user's enabled account, given the
/// bookmarks. Refused otherwise, saying why (the owner asked).
async fn recipient(site: &Site, from: Id<Account>, to: &str) -> Result<Id<Account>, BookmarkError> {
    match site.messaging().recipient(to).await {
        Ok(Recipient::Account { id, .. }) if id == from => Err(BookmarkError::ToSelf(to.into())),
        Ok(Recipient::Account {
            id,
            disabled: false,
        }) => {
            if site.products().holds(id, NAME).await? {
                Ok(id)
            } else {
                Err(BookmarkError::CannotReceive(to.into()))
            }
        }
        Ok(Recipient::Account { disabled: true, .. } | Recipient::NoAccount) => {
            Err(BookmarkError::CannotReceive(to.into()))
        }
        Ok(Recipient::Site | Recipient::App(_)) | Err(SiteError::InvalidRecipient(_)) => {
            Err(BookmarkError::NotAnAccount(to.into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The primary login of `account`, or `account:ID` if it is gone.
async fn login_of(site: &Site, account: Id<Account>) -> Result<String, BookmarkError> {
    match site.accounts().by_id(account).await {
        Ok(a) => Ok(a.primary),
        Err(SiteError::NoSuchAccount(_)) => Ok(format!("account:{}", account.raw())),
        Err(e) => Err(e.into()),
    }
}

/// Shares bookmark `id` of `owner` with `to` (a login or `account:ID` of
/// another user given the bookmarks), for reading. Sharing it again with
/// the same user answers the same share. Answers the share, `with` the
/// recipient's primary login.
pub async fn share(
    site: &Site,
    owner: Id<Account>,
    id: Id<Bookmark>,
    to: &str,
) -> Result<ShareView, BookmarkError> {
    let to = to.trim();
    let account = recipient(site, owner, to).await?;
    let role = Role::account(account);
    let store = site.stores().user_store_unchecked(owner).await?;
    let (share_id, access) = store
        .transact(move |tx| {
            if tx.get(id)?.is_none() {
                return Err(BookmarkError::NotFound(id.raw().to_string()));
            }
            if let Some(s) = tx.shares_of(id)?.into_iter().find(|s| s.role == role) {
                return Ok((s.share_id, s.access));
            }
            let share_id = tx.share(id, &role, &[], None)?;
            Ok((share_id, vec![READ.to_string()]))
        })
        .await?;
    Ok(ShareView {
        with: login_of(site, account).await?,
        share_id,
        access,
    })
}

/// The role `with` (a login or `account:ID`) names, to withdraw a share
/// from: `None` if it names no account (nothing can be shared with it).
async fn role_of(site: &Site, with: &str) -> Result<Option<Role>, BookmarkError> {
    if let Ok(role @ Role::Account(_)) = with.parse::<Role>() {
        // Even an account that is gone: its shares can still be withdrawn.
        return Ok(Some(role));
    }
    match site.messaging().recipient(with).await {
        Ok(Recipient::Account { id, .. }) => Ok(Some(Role::account(id))),
        Ok(_) | Err(SiteError::InvalidRecipient(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Withdraws `owner`'s share of bookmark `id` with `with` (a login or
/// `account:ID`): from then on they no longer see it. Refused
/// ([`BookmarkError::NotShared`]) if it is not shared with them.
pub async fn unshare(
    site: &Site,
    owner: Id<Account>,
    id: Id<Bookmark>,
    with: &str,
) -> Result<(), BookmarkError> {
    let with = with.trim().to_string();
    let not_shared = {
        let with = with.clone();
        move || BookmarkError::NotShared { id: id.raw(), with }
    };
    let Some(role) = role_of(site, &with).await? else {
        return Err(not_shared());
    };
    let store = site.stores().user_store_unchecked(owner).await?;
    store
        .transact(move |tx| {
            if tx.get(id)?.is_none() {
                return Err(BookmarkError::NotFound(id.raw().to_string()));
            }
            let mut withdrawn = 0;
            for s in tx.shares_of(id)?.into_iter().filter(|s| s.role == role) {
                withdrawn += tx.unshare(&s.share_id, Some(&role))?;
            }
            if withdrawn == 0 {
                return Err(not_shared());
            }
            Ok(())
        })
        .await
}

/// Who `owner`'s bookmark `id` is shared with (`everyone` when it is
/// published).
pub async fn shares(
    site: &Site,
    owner: Id<Account>,
    id: Id<Bookmark>,
) -> Result<Vec<ShareView>, BookmarkError> {
    let store = site.stores().user_store_unchecked(owner).await?;
    let list = store
        .read(move |r| {
            if r.get(id)?.is_none() {
                return Err(BookmarkError::NotFound(id.raw().to_string()));
            }
            Ok(r.shares_of(id)?)
        })
        .await?;
    let mut logins = Logins::default();
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        out.push(ShareView {
            with: logins.name(site, &s.role).await?,
            share_id: s.share_id,
            access: s.access,
        });
    }
    Ok(out)
}

/// The users each of `owner`'s bookmarks is shared with (their logins),
/// by bookmark id: for the owner's page.
pub async fn shared_by_bookmark(
    site: &Site,
    owner: Id<Account>,
) -> Result<HashMap<i64, Vec<String>>, BookmarkError> {
    let store = site.stores().user_store_unchecked(owner).await?;
    let all: Vec<ShareInfo> = store.read(|r| r.shares()).await?;
    let mut logins = Logins::default();
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for s in all {
        if s.item_type == Bookmark::TYPE_NAME && matches!(s.role, Role::Account(_)) {
            let login = logins.name(site, &s.role).await?;
            out.entry(s.item_id).or_default().push(login);
        }
    }
    for with in out.values_mut() {
        with.sort();
        with.dedup();
    }
    Ok(out)
}

/// Names of roles, each account looked up once.
#[derive(Default)]
struct Logins(HashMap<Id<Account>, String>);

impl Logins {
    async fn name(&mut self, site: &Site, role: &Role) -> Result<String, BookmarkError> {
        let Role::Account(id) = role else {
            return Ok(role.to_string());
        };
        if let Some(login) = self.0.get(id) {
            return Ok(login.clone());
        }
        let login = login_of(site, *id).await?;
        self.0.insert(*id, login.clone());
        Ok(login)
    }
}

/// The bookmarks other users share with `viewer` (not the published ones
/// of everyone), each opened through the sharing layer as `viewer`: a
/// share withdrawn is gone from the list at once.
pub async fn shared_with(
    site: &Site,
    viewer: Id<Account>,
) -> Result<Vec<SharedBookmark>, BookmarkError> {
    let sharing = site.sharing();
    let mut out = Vec::new();
    for entry in sharing.shared_with(viewer).await? {
        if entry.item_type != Bookmark::TYPE_NAME {
            continue;
        }
        let owner = Id::<Account>::from_raw(entry.owner);
        match sharing
            .open::<Bookmark>(Viewer::Account(viewer), owner, &entry.share_id)
            .await
        {
            Ok(shared) => out.push(SharedBookmark::new(entry.owner_login, &shared)),
            // Withdrawn since it was listed.
            Err(SiteError::NoSuchShare(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// `owner`'s bookmark shared as `share_id` (`owner` a login or
/// `account:ID`), if `viewer` may read it. [`BookmarkError::NoSuchShare`]
/// otherwise, whatever the reason: no such owner, a disabled one, no such
/// share, a share of something else, or one not for this viewer. A user
/// is told the owner's primary login; an anonymous visitor only the owner
/// as they named them (no address to harvest).
pub async fn open_shared(
    site: &Site,
    viewer: Viewer,
    owner: &str,
    share_id: &str,
) -> Result<SharedBookmark, BookmarkError> {
    let sharing = site.sharing();
    let Some(account) = sharing.owner(owner).await else {
        return Err(BookmarkError::NoSuchShare);
    };
    let shared = sharing
        .open::<Bookmark>(viewer, account, share_id)
        .await
        .map_err(|e| match e {
            SiteError::NoSuchShare(_) => BookmarkError::NoSuchShare,
            e => e.into(),
        })?;
    let owner = match viewer {
        Viewer::Account(_) => login_of(site, account).await?,
        Viewer::Anonymous => owner.to_string(),
    };
    Ok(SharedBookmark::new(owner, &shared))
}

/// The bookmarks `owner` (a login or `account:ID`) has published, newest
/// first, as an anonymous visitor may read them: `None` when there are
/// none to show, whether or not the owner exists (so the answer says
/// nothing of who has an account). With the owner's primary login.
pub async fn published_by(
    site: &Site,
    owner: &str,
) -> Result<Option<(String, Vec<SharedBookmark>)>, BookmarkError> {
    let sharing = site.sharing();
    let Some(owner) = sharing.owner(owner).await else {
        return Ok(None);
    };
    let mut list = match sharing
        .accessible::<Bookmark>(Viewer::Anonymous, owner)
        .await
    {
        Ok(list) => list,
        Err(SiteError::NoSuchShare(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if list.is_empty() {
        return Ok(None);
    }
    // Newest first; a bookmark published under several share ids once.
    list.sort_by_key(|s| (std::cmp::Reverse(s.created), s.item().id().raw()));
    list.dedup_by_key(|s| s.item().id().raw());
    let login = login_of(site, owner).await?;
    let shown = list
        .iter()
        .map(|s| SharedBookmark::new(login.clone(), s))
        .collect();
    Ok(Some((login, shown)))
}
