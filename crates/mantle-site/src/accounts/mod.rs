//! Accounts and login methods.

mod transfer;

use mantle_store::{Id, ReadTx, Stored, SubStore, Timestamp};

use serde::{Deserialize, Serialize};
pub use transfer::{AccountExport, ExportedToken};

use crate::address::Address;
use crate::auth::{Auth, digest, new_secret};
use crate::config::{SignupPolicy, SiteConfig};
use crate::items::{Account, AuthToken, Invite, LoginMethod};
use crate::logins::{LoginDirectory, LoginRefusal};
use crate::offerings::grant_in;
use crate::stores::{Stores, user_store_path};
use crate::{Result, SiteError};
use std::sync::Arc;

mod fanout;

pub use fanout::{FanoutResult, ItemCount, sum_results};

/// An account as listed to operators and its owner (and, as JSON, by the
/// admin API: it reads back as what was written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The account's id.
    #[serde(serialize_with = "raw_id")]
    pub id: Id<Account>,
    /// Its primary login.
    pub primary: String,
    /// Every login, primary first.
    pub logins: Vec<String>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Whether it is an administrator.
    pub admin: bool,
    /// When it was created.
    pub created: Timestamp,
    /// Its user store file, relative to the site directory.
    pub store: String,
}

fn raw_id<S: serde::Serializer>(id: &Id<Account>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(id.raw())
}

/// Reads an account's full description.
fn describe(r: &ReadTx<'_>, account: &Stored<Account>) -> Result<AccountInfo> {
    let mut logins = r
        .query::<LoginMethod>()
        .filter(LoginMethod::ACCOUNT.eq(account.id()))
        .order_by(LoginMethod::PRIMARY.desc())
        .all()?;
    let store = r
        .get(account.user_store)?
        .map(|s| s.into_inner().path)
        .unwrap_or_default();
    let primary = logins
        .first()
        .map(|m| m.address.clone())
        .unwrap_or_default();
    Ok(AccountInfo {
        id: account.id(),
        primary,
        logins: logins.drain(..).map(|m| m.into_inner().address).collect(),
        disabled: account.disabled,
        admin: account.admin,
        created: account.created,
        store,
    })
}

/// The account holding a login.
fn find(r: &ReadTx<'_>, address: &str) -> Result<Stored<Account>> {
    let m = r
        .query::<LoginMethod>()
        .filter(LoginMethod::ADDRESS.eq(address))
        .first()?
        .ok_or_else(|| SiteError::NoSuchAccount(address.to_string()))?;
    r.get(m.account)?
        .ok_or_else(|| SiteError::NoSuchAccount(address.to_string()))
}

/// The site's accounts: signup, logins, disabling, deletion (see
/// [`Site::accounts`](crate::Site::accounts)).
///
/// ```no_run
/// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
/// let alice = site.accounts().create("alice", "correct horse battery", false).await?;
/// assert_eq!(site.accounts().get("alice").await?.id, alice.id);
/// # Ok(()) }
/// ```
pub struct Accounts {
    stores: Stores,
    auth: Auth,
    domain: String,
    policy: SignupPolicy,
    /// The product new accounts are granted, if any.
    product: Option<String>,
    /// Logins shared with other sites (a cluster's), if any.
    logins: Option<Arc<dyn LoginDirectory>>,
}

impl Accounts {
    pub(crate) fn new(
        stores: Stores,
        auth: Auth,
        config: &SiteConfig,
        logins: Option<Arc<dyn LoginDirectory>>,
    ) -> Self {
        Self {
            stores,
            auth,
            domain: config.domain.clone(),
            policy: config.signup.policy,
            product: config.signup.product.clone(),
            logins,
        }
    }

    /// Reserves `address` for the account whose user store is the file
    /// `store` in the shared login directory, if the site has one.
    async fn claim_login(&self, address: &str, store: &str) -> Result<()> {
        let Some(logins) = &self.logins else {
            return Ok(());
        };
        let name = crate::logins::store_name(store);
        logins
            .claim(address, &name)
            .await
            .map_err(|refusal| match refusal {
                LoginRefusal::Taken(elsewhere) => {
                    tracing::info!(login = address, %elsewhere, "login taken on another node");
                    SiteError::AddressTaken(address.to_string())
                }
                LoginRefusal::Unavailable(why) => SiteError::DirectoryUnavailable(why),
            })
    }

    /// Gives `address` up in the shared login directory, if any (a failure
    /// is logged: the login then stays reserved for nobody until an
    /// operator releases it).
    async fn release_login(&self, address: &str, store: &str) {
        if let Some(logins) = &self.logins
            && let Err(e) = logins
                .release(address, &crate::logins::store_name(store))
                .await
        {
            tracing::warn!(login = address, error = ?e, "could not release a login in the cluster directory");
        }
    }

    fn address(&self, text: &str) -> Result<String> {
        Ok(Address::parse(text, &self.domain)?.to_string())
    }

    /// Creates an account with its login and user store, whatever the
    /// signup policy (the administrator's path).
    pub async fn create(&self, login: &str, password: &str, admin: bool) -> Result<AccountInfo> {
        self.make(login, password, admin, None).await
    }

    /// Signs up under the site's policy: `open` accepts anyone, `invite`
    /// needs an unused invite code, `admin` refuses. At most
    /// `signup.max_per_hour` signups are attempted per hour, site-wide
    /// ([`SiteError::SignupsPaused`] past it).
    pub async fn signup(
        &self,
        login: &str,
        password: &str,
        invite: Option<&str>,
    ) -> Result<AccountInfo> {
        match self.policy {
            SignupPolicy::Open => {
                self.auth.count_signup()?;
                self.make(login, password, false, None).await
            }
            SignupPolicy::Invite => {
                let code = invite.ok_or(SiteError::BadInvite)?;
                self.auth.count_signup()?;
                self.make(login, password, false, Some(digest(code))).await
            }
            SignupPolicy::Admin => Err(SiteError::SignupClosed(
                "accounts are made by an administrator",
            )),
        }
    }

    async fn make(
        &self,
        login: &str,
        password: &str,
        admin: bool,
        invite: Option<Vec<u8>>,
    ) -> Result<AccountInfo> {
        let address = self.address(login)?;
        let password_hash = self.auth.hash_password(password).await?;
        let site_dir = self.stores.dir().to_path_buf();
        let product = self.product.clone();
        let info = self
            .stores
            .site_store()
            .transact(move |tx| {
                if tx
                    .query::<LoginMethod>()
                    .filter(LoginMethod::ADDRESS.eq(address.as_str()))
                    .exists()?
                {
                    return Err(SiteError::AddressTaken(address));
                }
                let invite = match invite {
                    Some(hash) => Some(
                        tx.query::<Invite>()
                            .filter(Invite::HASH.eq(hash).and(Invite::USED_BY.is_none()))
                            .first()?
                            .ok_or(SiteError::BadInvite)?,
                    ),
                    None => None,
                };
                // A fresh file name: an old account's kept store is never reused.
                let mut path = user_store_path(&address, 1);
                let mut n = 1;
                while site_dir.join(&path).exists()
                    || tx
                        .query::<SubStore>()
                        .filter(SubStore::PATH.eq(path.as_str()))
                        .exists()?
                {
                    n += 1;
                    path = user_store_path(&address, n);
                }
                let user_store = tx.insert(&SubStore::new("", path))?;
                let account = tx.insert(&Account {
                    password_hash,
                    disabled: false,
                    admin,
                    created: Timestamp::now(),
                    user_store,
                })?;
                // The store's message address: stable across login changes.
                let mut sub = tx.get(user_store)?.expect("inserted above");
                sub.name = format!("account:{}", account.raw());
                tx.update(&mut sub)?;
                tx.insert(&LoginMethod {
                    account,
                    address,
                    primary: true,
                })?;
                if let Some(mut invite) = invite {
                    invite.used_by = Some(account);
                    tx.update(&mut invite)?;
                }
                // New users get the signup product, with the account.
                if let Some(product) = &product {
                    grant_in(tx, account, product)?;
                }
                let account = tx.get(account)?.expect("inserted above");
                describe(tx, &account)
            })
            .await?;
        // The login is claimed among the sites sharing a directory, then
        // the user store made, so an account always has one; if either
        // fails, the account is taken back (nothing half-made stays).
        let made = match self.claim_login(&info.primary, &info.store).await {
            Ok(()) => {
                let store = self.stores.user_store_unchecked(info.id).await.map(|_| ());
                if store.is_err() {
                    self.release_login(&info.primary, &info.store).await;
                }
                store
            }
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            let id = info.id;
            let undone = self
                .stores
                .site_store()
                .transact(move |tx| {
                    let acc = tx.get(id)?;
                    if let Some(acc) = acc {
                        tx.delete(id)?;
                        tx.delete(acc.user_store)?;
                    }
                    Ok::<_, SiteError>(())
                })
                .await;
            self.stores.forget_account(id);
            if let Err(undo) = undone {
                tracing::error!(login = %info.primary, error = %undo, "could not take back an account whose store failed");
            }
            return Err(e);
        }
        tracing::info!(login = %info.primary, "account created");
        Ok(info)
    }

    /// Makes an invite code for signup under the `invite` policy. The code
    /// is shown once; only its hash is kept.
    pub async fn create_invite(&self) -> Result<String> {
        let code = new_secret()?;
        let hash = digest(&code);
        self.stores
            .site_store()
            .transact(move |tx| {
                tx.insert(&Invite {
                    hash,
                    created: Timestamp::now(),
                    used_by: None,
                })
            })
            .await?;
        Ok(code)
    }

    /// The account holding `login`.
    pub async fn get(&self, login: &str) -> Result<AccountInfo> {
        let address = self.address(login)?;
        // A few indexed lookups: here rather than on another thread.
        self.stores
            .site_store()
            .read_now(move |r| describe(r, &find(r, &address)?))
    }

    /// The account with this id.
    pub async fn by_id(&self, id: Id<Account>) -> Result<AccountInfo> {
        // A few indexed lookups: here rather than on another thread.
        self.stores.site_store().read_now(move |r| {
            let acc = r
                .get(id)?
                .ok_or_else(|| SiteError::NoSuchAccount(format!("#{}", id.raw())))?;
            describe(r, &acc)
        })
    }

    /// Every account, oldest first.
    pub async fn list(&self) -> Result<Vec<AccountInfo>> {
        self.stores
            .site_store()
            .read(|r| {
                r.query::<Account>()
                    .all()?
                    .iter()
                    .map(|a| describe(r, a))
                    .collect()
            })
            .await
    }

    /// Disables or enables an account. Disabling takes effect at once: its
    /// tokens are revoked (enabling it later does not revive them).
    pub async fn set_disabled(&self, login: &str, disabled: bool) -> Result<()> {
        let address = self.address(login)?;
        let account = self
            .stores
            .site_store()
            .transact(move |tx| {
                let mut acc = find(tx, &address)?;
                if acc.disabled != disabled {
                    acc.disabled = disabled;
                    tx.update(&mut acc)?;
                }
                if disabled {
                    // Re-enabling must not revive old logins.
                    tx.delete_where(AuthToken::ACCOUNT.eq(acc.id()))?;
                }
                Ok::<_, SiteError>(acc.id())
            })
            .await?;
        self.auth.forget_account(account);
        Ok(())
    }

    /// Sets a new password and revokes the account's tokens.
    pub async fn set_password(&self, login: &str, password: &str) -> Result<()> {
        let address = self.address(login)?;
        let hash = self.auth.hash_password(password).await?;
        let account = self
            .stores
            .site_store()
            .transact(move |tx| {
                let mut acc = find(tx, &address)?;
                acc.password_hash = hash;
                tx.update(&mut acc)?;
                tx.delete_where(AuthToken::ACCOUNT.eq(acc.id()))?;
                Ok::<_, SiteError>(acc.id())
            })
            .await?;
        self.auth.forget_account(account);
        Ok(())
    }

    /// Adds another login to the account holding `login`.
    pub async fn add_login(&self, login: &str, new_login: &str) -> Result<()> {
        let address = self.address(login)?;
        let new_address = self.address(new_login)?;
        let store = match self.logins {
            Some(_) => {
                let store = self.get(&address).await?.store;
                self.claim_login(&new_address, &store).await?;
                store
            }
            None => String::new(),
        };
        let claimed = new_address.clone();
        let added = self
            .stores
            .site_store()
            .transact(move |tx| {
                let acc = find(tx, &address)?;
                if tx
                    .query::<LoginMethod>()
                    .filter(LoginMethod::ADDRESS.eq(new_address.as_str()))
                    .exists()?
                {
                    return Err(SiteError::AddressTaken(new_address));
                }
                tx.insert(&LoginMethod {
                    account: acc.id(),
                    address: new_address,
                    primary: false,
                })?;
                Ok(())
            })
            .await;
        if added.is_err() {
            self.release_login(&claimed, &store).await;
        }
        added
    }

    /// Deletes an account: its login methods and tokens go with it. Its
    /// user store file is kept unless `delete_store` is set (the caller's
    /// explicit confirmation); returns the store file's path either way.
    pub async fn delete(&self, login: &str, delete_store: bool) -> Result<std::path::PathBuf> {
        let address = self.address(login)?;
        let (account, sub, logins) = self
            .stores
            .site_store()
            .transact(move |tx| {
                let acc = find(tx, &address)?;
                let logins: Vec<String> = tx
                    .query::<LoginMethod>()
                    .filter(LoginMethod::ACCOUNT.eq(acc.id()))
                    .all()?
                    .into_iter()
                    .map(|m| m.into_inner().address)
                    .collect();
                let sub = tx.get(acc.user_store)?;
                tx.delete(acc.id())?;
                if let Some(s) = &sub {
                    tx.delete(s.id())?;
                }
                Ok::<_, SiteError>((acc.id(), sub.map(Stored::into_inner), logins))
            })
            .await?;
        self.stores.forget_account(account);
        self.auth.forget_account(account);
        if let Some(sub) = &sub {
            for login in &logins {
                self.release_login(login, &sub.path).await;
            }
        }
        let Some(sub) = sub else {
            return Ok(std::path::PathBuf::new());
        };
        let file = sub.file(self.stores.site_store());
        if delete_store {
            if let Some(store) = self.stores.cache().remove(&file) {
                store.close().await;
            }
            crate::stores::remove_store_files(&file)?;
        }
        tracing::info!(login, delete_store, "account deleted");
        Ok(file)
    }
}

/// Registers the account items.
pub(crate) fn register(registry: &mut mantle_store::Registry) {
    registry
        .register::<Account>()
        .register::<LoginMethod>()
        .register::<Invite>();
}
