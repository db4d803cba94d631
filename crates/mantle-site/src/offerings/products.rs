//! [`Products`]: named sets of offerings that users are given together.

use std::collections::HashMap;
use std::sync::Arc;

use mantle_store::{Id, Timestamp, Tx};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Declared;
use super::component::Installed;
use super::give::{Change, send_changes};
use super::items::{InstalledOffering, Product, ProductGrant};
use crate::items::Account;
use crate::stores::Stores;
use crate::{Result, SiteError};

/// A product as listed to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// Its name.
    pub name: String,
    /// Its offerings.
    pub offerings: Vec<String>,
    /// How many accounts hold it.
    pub holders: usize,
}

/// The site's products (see [`Site::products`](crate::Site::products)):
/// a product names offerings; granting it to a user gives the user each
/// of them (each offering's [`on_given`](crate::Offering::on_given) hook
/// runs in the user's store, once), and revoking it takes back what no
/// other product of the user's still gives, keeping the user's data.
///
/// ```no_run
/// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
/// site.products().create("basic", &["ledger", "lists"]).await?;
/// let alice = site.accounts().get("alice").await?;
/// site.products().grant("basic", alice.id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Products(Arc<Inner>);

struct Inner {
    stores: Stores,
    declared: Arc<Vec<Declared>>,
    installed: Installed,
    /// Account → the offerings its products name (installed or not).
    given: Mutex<HashMap<Id<Account>, Arc<Vec<String>>>>,
}

/// Most accounts whose offerings are remembered; past it the cache
/// starts over (it only saves reads).
const GIVEN_CACHE_MAX: usize = 10_000;

impl Products {
    pub(crate) fn new(stores: Stores, declared: Arc<Vec<Declared>>, installed: Installed) -> Self {
        Self(Arc::new(Inner {
            stores,
            declared,
            installed,
            given: Mutex::default(),
        }))
    }

    /// Makes a product of `offerings` (each one the program has, and not
    /// a layer).
    pub async fn create(&self, name: &str, offerings: &[&str]) -> Result<ProductInfo> {
        super::check_name(name).map_err(|_| SiteError::BadProductName(name.to_string()))?;
        for o in offerings {
            match self.0.declared.iter().find(|d| d.name == *o) {
                None => return Err(SiteError::NoSuchOffering(o.to_string())),
                Some(d) if d.layer => return Err(SiteError::OfferingIsLayer(o.to_string())),
                Some(_) => {}
            }
        }
        let product = Product {
            name: name.to_string(),
            offerings: offerings.join(","),
        };
        self.0
            .stores
            .site_store()
            .transact(move |tx| {
                if tx
                    .query::<Product>()
                    .filter(Product::NAME.eq(product.name.as_str()))
                    .exists()?
                {
                    return Err(SiteError::ProductExists(product.name));
                }
                tx.insert(&product)?;
                Ok(())
            })
            .await?;
        self.get(name).await
    }

    /// Every product, by name.
    pub async fn list(&self) -> Result<Vec<ProductInfo>> {
        self.0
            .stores
            .site_store()
            .read(|r| {
                let mut out = Vec::new();
                for p in r.query::<Product>().order_by(Product::NAME.asc()).all()? {
                    let holders = r
                        .query::<ProductGrant>()
                        .filter(ProductGrant::PRODUCT.eq(p.name.as_str()))
                        .count()?;
                    out.push(ProductInfo {
                        name: p.name.clone(),
                        offerings: p.offering_names(),
                        holders: usize::try_from(holders).unwrap_or(usize::MAX),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// One product.
    pub async fn get(&self, name: &str) -> Result<ProductInfo> {
        self.list()
            .await?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| SiteError::NoSuchProduct(name.to_string()))
    }

    /// Deletes a product nobody holds ([`SiteError::ProductHeld`]
    /// otherwise: revoke it first).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let key = name.to_string();
        self.0
            .stores
            .site_store()
            .transact(move |tx| {
                let held = tx
                    .query::<ProductGrant>()
                    .filter(ProductGrant::PRODUCT.eq(key.as_str()))
                    .count()?;
                if held > 0 {
                    return Err(SiteError::ProductHeld {
                        product: key,
                        holders: held,
                    });
                }
                if tx.delete_where(Product::NAME.eq(key.as_str()))? == 0 {
                    return Err(SiteError::NoSuchProduct(key));
                }
                Ok(())
            })
            .await?;
        self.0.given.lock().clear();
        Ok(())
    }

    /// Grants `product` to `account`: recorded in the site store, and the
    /// product's installed offerings given to the user (the rest when they
    /// are installed). Returns whether the account did not hold it yet.
    pub async fn grant(&self, product: &str, account: Id<Account>) -> Result<bool> {
        let product = product.to_string();
        let granted = self
            .0
            .stores
            .site_store()
            .transact(move |tx| {
                if tx.get(account)?.is_none() {
                    return Err(SiteError::NoSuchAccount(format!("#{}", account.raw())));
                }
                grant_in(tx, account, &product)
            })
            .await?;
        self.0.given.lock().remove(&account);
        Ok(granted)
    }

    /// Revokes `product` from `account`: the offerings no other product
    /// of the account's gives are taken back (the user's data stays).
    /// Returns whether the account held it.
    pub async fn revoke(&self, product: &str, account: Id<Account>) -> Result<bool> {
        let product = product.to_string();
        let revoked = self
            .0
            .stores
            .site_store()
            .transact(move |tx| {
                let removed = tx.delete_where(
                    ProductGrant::ACCOUNT
                        .eq(account)
                        .and(ProductGrant::PRODUCT.eq(product.as_str())),
                )?;
                if removed == 0 {
                    return Ok(false);
                }
                let still = offerings_of(tx, account)?;
                let gone: Vec<String> = product_offerings(tx, &product)?
                    .into_iter()
                    .filter(|o| !still.contains(o))
                    .collect();
                send_changes(tx, account, &gone, Change::Take)?;
                Ok::<_, SiteError>(true)
            })
            .await?;
        self.0.given.lock().remove(&account);
        Ok(revoked)
    }

    /// The installed offerings `account` holds through its products.
    pub async fn given(&self, account: Id<Account>) -> Result<Vec<String>> {
        let names = self.given_names(account).await?;
        Ok(names
            .iter()
            .filter(|o| self.0.installed.contains(o))
            .cloned()
            .collect())
    }

    /// Whether `account` holds the installed offering `offering`.
    pub async fn holds(&self, account: Id<Account>, offering: &str) -> Result<bool> {
        Ok(self.0.installed.contains(offering)
            && self
                .given_names(account)
                .await?
                .iter()
                .any(|o| o == offering))
    }

    async fn given_names(&self, account: Id<Account>) -> Result<Arc<Vec<String>>> {
        if let Some(names) = self.0.given.lock().get(&account) {
            return Ok(names.clone());
        }
        // A few indexed lookups: here rather than on another thread.
        let names = Arc::new(
            self.0
                .stores
                .site_store()
                .read_now(move |r| offerings_of(r, account))?,
        );
        let mut cache = self.0.given.lock();
        if cache.len() >= GIVEN_CACHE_MAX {
            cache.clear();
        }
        cache.insert(account, names.clone());
        Ok(names)
    }
}

/// Grants `product` to `account` within `tx` (a site store transaction):
/// records the grant and sends the gives of its installed offerings.
/// Returns whether the account did not hold it yet.
pub(crate) fn grant_in(tx: &mut Tx<'_>, account: Id<Account>, product: &str) -> Result<bool> {
    if !tx
        .query::<Product>()
        .filter(Product::NAME.eq(product))
        .exists()?
    {
        return Err(SiteError::NoSuchProduct(product.to_string()));
    }
    if tx
        .query::<ProductGrant>()
        .filter(
            ProductGrant::ACCOUNT
                .eq(account)
                .and(ProductGrant::PRODUCT.eq(product)),
        )
        .exists()?
    {
        return Ok(false);
    }
    tx.insert(&ProductGrant {
        account,
        product: product.to_string(),
        granted: Timestamp::now(),
    })?;
    // Installed per the site store as this transaction sees it: an
    // install committing meanwhile either sees this grant or is seen here.
    let mut now = Vec::new();
    for o in product_offerings(tx, product)? {
        if tx
            .query::<InstalledOffering>()
            .filter(InstalledOffering::NAME.eq(o.as_str()))
            .exists()?
        {
            now.push(o);
        }
    }
    send_changes(tx, account, &now, Change::Give)?;
    Ok(true)
}

/// The offerings a product names (none if it does not exist).
fn product_offerings(r: &mantle_store::ReadTx<'_>, product: &str) -> Result<Vec<String>> {
    Ok(r.query::<Product>()
        .filter(Product::NAME.eq(product))
        .first()?
        .map(|p| p.offering_names())
        .unwrap_or_default())
}

/// Every offering `account`'s products name.
fn offerings_of(r: &mantle_store::ReadTx<'_>, account: Id<Account>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for g in r
        .query::<ProductGrant>()
        .filter(ProductGrant::ACCOUNT.eq(account))
        .all()?
    {
        for o in product_offerings(r, &g.product)? {
            if !out.contains(&o) {
                out.push(o);
            }
        }
    }
    Ok(out)
}
