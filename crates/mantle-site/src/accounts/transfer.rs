//! Moving an account to another site (a cluster's node): what the site
//! store holds of it travels beside its user store file.
//!
//! [`Accounts::export`] describes the account (password hash, logins,
//! token hashes, product grants); [`Accounts::import`] makes it on the
//! receiving site, whose user store file is already in place;
//! [`Accounts::retire`] removes it from the sending site once the
//! receiving one owns it. Tokens are kept by their hashes, so a client's
//! token goes on working wherever the account lives. The logins are not
//! released on retiring: they are the account's, wherever it is.

use std::path::PathBuf;

use mantle_store::{Stored, SubStore, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Accounts, describe};
use crate::items::{Account, AuthToken, LoginMethod};
use crate::offerings::{Product, ProductGrant};
use crate::{AccountInfo, Result, SiteError};

/// An account as it moves between sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountExport {
    /// Its user store file, relative to the site directory.
    pub store: String,
    /// The argon2id hash of its password.
    pub password_hash: String,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Whether it is an administrator.
    pub admin: bool,
    /// When it was made.
    pub created: Timestamp,
    /// Its logins, and which is primary.
    pub logins: Vec<(String, bool)>,
    /// Its tokens (hashes only).
    pub tokens: Vec<ExportedToken>,
    /// The products it holds.
    pub products: Vec<String>,
}

/// A token as it moves: its hash, never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedToken {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// When it was issued.
    pub created: Timestamp,
    /// When it stops working.
    pub expires: Timestamp,
    /// When it was last presented.
    pub last_used: Timestamp,
    /// What issued it.
    pub label: String,
}

impl Accounts {
    /// The account whose user store is the file `store` (relative to the
    /// site directory), as it would move to another site.
    pub async fn export(&self, store: &str) -> Result<AccountExport> {
        let store = store.to_string();
        self.stores
            .site_store()
            .read(move |r| {
                let sub = r
                    .query::<SubStore>()
                    .filter(SubStore::PATH.eq(store.as_str()))
                    .first()?
                    .ok_or_else(|| SiteError::NoSuchStore(store.clone()))?;
                let account = r
                    .query::<Account>()
                    .filter(Account::USER_STORE.eq(sub.id()))
                    .first()?
                    .ok_or_else(|| SiteError::NoSuchStore(store.clone()))?;
                let id = account.id();
                let logins = r
                    .query::<LoginMethod>()
                    .filter(LoginMethod::ACCOUNT.eq(id))
                    .all()?
                    .into_iter()
                    .map(|m| (m.address.clone(), m.primary))
                    .collect();
                let tokens = r
                    .query::<AuthToken>()
                    .filter(AuthToken::ACCOUNT.eq(id))
                    .all()?
                    .into_iter()
                    .map(|t| {
                        let t = t.into_inner();
                        ExportedToken {
                            hash: t.hash,
                            created: t.created,
                            expires: t.expires,
                            last_used: t.last_used,
                            label: t.label,
                        }
                    })
                    .collect();
                let products = r
                    .query::<ProductGrant>()
                    .filter(ProductGrant::ACCOUNT.eq(id))
                    .all()?
                    .into_iter()
                    .map(|g| g.into_inner().product)
                    .collect();
                let account = account.into_inner();
                Ok::<_, SiteError>(AccountExport {
                    store,
                    password_hash: account.password_hash,
                    disabled: account.disabled,
                    admin: account.admin,
                    created: account.created,
                    logins,
                    tokens,
                    products,
                })
            })
            .await
    }

    /// Makes the account `export` describes, moved here from another site;
    /// its user store file must already be in place. Refused when one of
    /// its logins, or its store's file, is in use here. Products this site
    /// does not define are left out (with a warning).
    pub async fn import(&self, export: AccountExport) -> Result<AccountInfo> {
        let info = self
            .stores
            .site_store()
            .transact(move |tx| {
                for (address, _) in &export.logins {
                    if tx
                        .query::<LoginMethod>()
                        .filter(LoginMethod::ADDRESS.eq(address.as_str()))
                        .exists()?
                    {
                        return Err(SiteError::AddressTaken(address.clone()));
                    }
                }
                if tx
                    .query::<SubStore>()
                    .filter(SubStore::PATH.eq(export.store.as_str()))
                    .exists()?
                {
                    return Err(SiteError::AddressTaken(export.store.clone()));
                }
                let user_store = tx.insert(&SubStore::new("", export.store.as_str()))?;
                let account = tx.insert(&Account {
                    password_hash: export.password_hash,
                    disabled: export.disabled,
                    admin: export.admin,
                    created: export.created,
                    user_store,
                })?;
                let mut sub = tx.get(user_store)?.expect("inserted above");
                sub.name = format!("account:{}", account.raw());
                tx.update(&mut sub)?;
                for (address, primary) in export.logins {
                    tx.insert(&LoginMethod {
                        account,
                        address,
                        primary,
                    })?;
                }
                for t in export.tokens {
                    tx.insert(&AuthToken {
                        account,
                        hash: t.hash,
                        created: t.created,
                        expires: t.expires,
                        last_used: t.last_used,
                        label: t.label,
                    })?;
                }
                for product in export.products {
                    if tx
                        .query::<Product>()
                        .filter(Product::NAME.eq(product.as_str()))
                        .exists()?
                    {
                        tx.insert(&ProductGrant {
                            account,
                            product,
                            granted: Timestamp::now(),
                        })?;
                    } else {
                        tracing::warn!(%product, "a moved account's product is not defined here; left out");
                    }
                }
                let account = tx.get(account)?.expect("inserted above");
                describe(tx, &account)
            })
            .await?;
        tracing::info!(login = %info.primary, store = %info.store, "account moved in");
        Ok(info)
    }

    /// Removes the account whose user store is the file `store`, which
    /// moved to another site: its rows here go (its logins stay claimed),
    /// its store is closed, and its file is set aside under `moved/`
    /// (kept, not deleted). Returns where the file went.
    pub async fn retire(&self, store: &str) -> Result<PathBuf> {
        let relative = store.to_string();
        let gone: Option<Stored<Account>> = self
            .stores
            .site_store()
            .transact(move |tx| {
                let Some(sub) = tx
                    .query::<SubStore>()
                    .filter(SubStore::PATH.eq(relative.as_str()))
                    .first()?
                else {
                    return Ok::<_, SiteError>(None);
                };
                let account = tx
                    .query::<Account>()
                    .filter(Account::USER_STORE.eq(sub.id()))
                    .first()?;
                if let Some(a) = &account {
                    tx.delete(a.id())?;
                }
                tx.delete(sub.id())?;
                Ok(account)
            })
            .await?;
        if let Some(account) = gone {
            self.stores.forget_account(account.id());
            self.auth.forget_account(account.id());
        }
        let file = self.stores.dir().join(store);
        if let Some(open) = self.stores.cache().remove(&file) {
            open.close().await;
        }
        let aside = self.stores.dir().join("moved").join(format!(
            "{}.{}",
            store.replace('/', "_"),
            Timestamp::now().as_micros()
        ));
        mantle_store::create_private_dir_all(&self.stores.dir().join("moved"))
            .map_err(|e| SiteError::io(self.stores.dir(), e))?;
        std::fs::rename(&file, &aside).map_err(|e| SiteError::io(&file, e))?;
        tracing::info!(%store, aside = %aside.display(), "account moved out");
        Ok(aside)
    }
}
