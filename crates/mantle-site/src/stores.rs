//! The site's stores: the site store, and the user and app stores it
//! lists as substores, opened through one cache and known by their message
//! addresses (`site`, `account:ID`, `app:NAME`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use mantle_store::{Id, Store, StoreCache, SubStore};
use parking_lot::Mutex;

use crate::items::Account;
use crate::{Result, SiteError};

/// The stores of a site (see [`Site::stores`](crate::Site::stores)).
///
/// ```no_run
/// # async fn f(site: mantle_site::Site, account: mantle_store::Id<mantle_site::Account>) -> mantle_site::Result<()> {
/// let store = site.stores().user_store_unchecked(account).await?;
/// let slates = store.read(|r| r.count_items("mantle_slate")).await?;
/// # let _ = slates; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Stores(Arc<Inner>);

struct Inner {
    /// The site directory (absolute), where substores' paths start.
    dir: PathBuf,
    site: Store,
    cache: StoreCache,
    /// Account → user store file. A store's file never changes once the
    /// account exists, so this only grows, and shrinks on deletion; it
    /// saves a site store read on every request.
    files: Mutex<HashMap<Id<Account>, PathBuf>>,
    /// Store file → its message address (`account:ID`, `app:NAME`).
    addresses: Mutex<HashMap<PathBuf, String>>,
    /// App name → its substore (app stores are never removed).
    apps: Mutex<HashMap<String, SubStore>>,
}

impl Stores {
    pub(crate) fn new(dir: PathBuf, site: Store, cache: StoreCache) -> Self {
        Self(Arc::new(Inner {
            dir,
            site,
            cache,
            files: Mutex::default(),
            addresses: Mutex::default(),
            apps: Mutex::default(),
        }))
    }

    /// The site directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// The site store: accounts, logins, tokens, invites, services.
    pub fn site_store(&self) -> &Store {
        &self.0.site
    }

    /// The cache through which user and app stores are opened (and closed
    /// again when others are needed).
    pub fn cache(&self) -> &StoreCache {
        &self.0.cache
    }

    /// The user store of an account, **without any access check**: for the
    /// site itself, its owner's own requests and administration tools.
    /// Code acting for one user on another user's items goes through the
    /// sharing layer instead ([`Site::sharing`](crate::Site::sharing)),
    /// which checks the roles and shares of the store's owner.
    pub async fn user_store_unchecked(&self, account: Id<Account>) -> Result<Store> {
        let known = self.0.files.lock().get(&account).cloned();
        if let Some(file) = known {
            return Ok(self.0.cache.get(file).await?);
        }
        let sub = self
            .0
            .site
            .read(move |r| {
                let missing = || SiteError::NoSuchAccount(format!("#{}", account.raw()));
                let acc = r.get(account)?.ok_or_else(missing)?;
                r.get(acc.user_store)?.ok_or_else(missing)
            })
            .await?;
        let store = sub.open(&self.0.site, &self.0.cache).await?;
        let file = store.path().to_path_buf();
        self.0.files.lock().insert(account, file.clone());
        self.0
            .addresses
            .lock()
            .insert(file, format!("account:{}", account.raw()));
        Ok(store)
    }

    /// Forgets where an account's store is (it was deleted, or never made).
    pub(crate) fn forget_account(&self, account: Id<Account>) {
        self.0.files.lock().remove(&account);
    }

    /// The app store `name` declared with
    /// [`SiteBuilder::app`](crate::SiteBuilder::app) (addressed `app:NAME`),
    /// where an offering keeps what its users share.
    pub async fn app_store(&self, name: &str) -> Result<Store> {
        match self.app_substore(name).await? {
            Some(sub) => Ok(sub.open(&self.0.site, &self.0.cache).await?),
            None => Err(SiteError::NoSuchAppStore(name.to_string())),
        }
    }

    /// Makes the substores of the apps named (idempotent: an app's store
    /// is made on its first declaration and kept).
    pub(crate) async fn declare_apps(&self, apps: Vec<String>) -> Result<()> {
        self.0
            .site
            .transact(move |tx| {
                for app in apps {
                    ensure_app_substore(tx, &app)?;
                }
                Ok::<_, SiteError>(())
            })
            .await
    }

    /// The substore of app `name`, if declared (found once, then kept).
    pub(crate) async fn app_substore(&self, name: &str) -> Result<Option<SubStore>> {
        if let Some(sub) = self.0.apps.lock().get(name) {
            return Ok(Some(sub.clone()));
        }
        let found = self.substore_named(format!("app:{name}")).await?;
        if let Some(sub) = &found {
            self.0.apps.lock().insert(name.to_string(), sub.clone());
        }
        Ok(found)
    }

    /// The store whose message address is `address` (`site`,
    /// `account:ID`, `app:NAME`): [`SiteError::NoSuchStore`] if none is.
    pub async fn at_address(&self, address: &str) -> Result<Store> {
        if address == "site" {
            return Ok(self.0.site.clone());
        }
        if let Some(id) = address
            .strip_prefix("account:")
            .and_then(|i| i.parse().ok())
        {
            return self.user_store_unchecked(Id::from_raw(id)).await;
        }
        let sub = self
            .substore_named(address.to_string())
            .await?
            .ok_or_else(|| SiteError::NoSuchStore(address.to_string()))?;
        Ok(sub.open(&self.0.site, &self.0.cache).await?)
    }

    /// The substore whose message address is `name`, if any.
    async fn substore_named(&self, name: String) -> Result<Option<SubStore>> {
        Ok(self
            .0
            .site
            .read(move |r| {
                r.query::<SubStore>()
                    .filter(SubStore::NAME.eq(name.as_str()))
                    .first()
            })
            .await?
            .map(|s| s.into_inner()))
    }

    /// The message address of a store of this site;
    /// [`SiteError::NotInSite`] for any other store.
    pub async fn address_of(&self, store: &Store) -> Result<String> {
        if store.path() == self.0.site.path() {
            return Ok("site".into());
        }
        if let Some(a) = self.0.addresses.lock().get(store.path()) {
            return Ok(a.clone());
        }
        let relative = store
            .path()
            .strip_prefix(&self.0.dir)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| SiteError::NotInSite(store.path().to_path_buf()))?;
        let name = self
            .0
            .site
            .read(move |r| {
                r.query::<SubStore>()
                    .filter(SubStore::PATH.eq(relative.as_str()))
                    .first()
            })
            .await?
            .map(|s| s.into_inner().name)
            .ok_or_else(|| SiteError::NotInSite(store.path().to_path_buf()))?;
        self.0
            .addresses
            .lock()
            .insert(store.path().to_path_buf(), name.clone());
        Ok(name)
    }

    /// The message addresses of every user store (`account:ID`).
    pub(crate) async fn user_addresses(&self) -> Result<Vec<String>> {
        Ok(self
            .0
            .site
            .read(|r| r.query::<SubStore>().all())
            .await?
            .into_iter()
            .map(|s| s.into_inner().name)
            .filter(|n| n.starts_with("account:"))
            .collect())
    }

    /// Deletes app `name`'s store: its record in the site store and its
    /// files. Returns whether there was one.
    pub(crate) async fn remove_app_store(&self, name: &str) -> Result<bool> {
        let Some(sub) = self.app_substore(name).await? else {
            return Ok(false);
        };
        let file = sub.file(&self.0.site);
        if let Some(store) = self.0.cache.remove(&file) {
            store.close().await;
        }
        let key = format!("app:{name}");
        self.0
            .site
            .transact(move |tx| tx.delete_where(SubStore::NAME.eq(key.as_str())))
            .await?;
        self.0.apps.lock().remove(name);
        self.0.addresses.lock().remove(&file);
        remove_store_files(&file)?;
        Ok(true)
    }

    /// Opens every user and app store once, so work they were left with
    /// (messages to send, answers, due tasks) resumes after a restart;
    /// stores with nothing to do are closed again by the cache as others
    /// are needed. Returns how many could not be opened.
    pub(crate) async fn open_all(&self) -> usize {
        let subs = match self.0.site.read(|r| r.query::<SubStore>().all()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the site's stores");
                return 0;
            }
        };
        futures::stream::iter(subs)
            .map(|sub| async move { self.at_address(&sub.name).await.map(drop) })
            .buffer_unordered(8)
            .filter(|r| futures::future::ready(r.is_err()))
            .count()
            .await
    }

    /// Gives the site store's fresh effects (messages it sent and never
    /// tried yet: what a command just did, say) up to `patience` to be
    /// delivered, so that a short-lived process's work reaches its
    /// recipients before it exits. Whatever is left is delivered when
    /// the site next opens: nothing is lost either way.
    pub(crate) async fn settle(&self, patience: std::time::Duration) {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let fresh = match self.0.site.outbox().await {
                Ok(entries) => entries.iter().any(|e| !e.parked && e.attempts == 0),
                Err(_) => false,
            };
            if !fresh || std::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Closes every store, the site store last.
    pub(crate) async fn close(&self) {
        self.0.cache.close_all().await;
        self.0.site.close().await;
    }
}

/// Deletes a store's files (the database, its WAL and shared memory, its
/// lock, its backup position); files already gone are no error.
pub(crate) fn remove_store_files(file: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", ".lock", ".backup"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SiteError::io(p, e)),
        }
    }
    Ok(())
}

/// Makes the substore of app `name` (`app:NAME`, `apps/NAME.store`)
/// unless it exists.
pub(crate) fn ensure_app_substore(tx: &mut mantle_store::Tx<'_>, name: &str) -> Result<()> {
    let key = format!("app:{name}");
    if !tx
        .query::<SubStore>()
        .filter(SubStore::NAME.eq(key.as_str()))
        .exists()?
    {
        tx.insert(&SubStore::new(key, format!("apps/{name}.store")))?;
    }
    Ok(())
}

/// The longest part of a user store's file name taken from its login: a
/// login may be 320 bytes and more, far past what a file name may be
/// (255 bytes on most file systems), so the name is cut; the signup's
/// uniqueness check adds `-2`, `-3`, … where cut names collide.
const STORE_NAME_MAX: usize = 64;

/// Where an account's user store lives, relative to the site store: its
/// `n`th candidate name (`n` > 1 is added to the name, after the cut),
/// from the account's full address (`alice@example.com`). Tools that look
/// for a user's store without the site open (in a backup, say) start
/// from `n` = 1.
///
/// ```
/// assert_eq!(mantle_site::user_store_path("alice@example.com", 1), "users/alice_example.com.store");
/// ```
pub fn user_store_path(account_hint: &str, n: u32) -> String {
    // The file name is fixed at signup; it does not follow later renames.
    let safe: String = account_hint
        .chars()
        .take(STORE_NAME_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n > 1 {
        format!("users/{safe}-{n}.store")
    } else {
        format!("users/{safe}.store")
    }
}

#[cfg(test)]
mod tests {
    use mantle_store::{Registry, StoreConfig};

    use crate::{Site, SiteConfig, SiteError};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_is_not_the_sites_has_no_message_address() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::builder(dir.path().join("site"))
            .init(SiteConfig::default())
            .await
            .unwrap();
        let stores = site.stores();
        assert_eq!(
            stores.address_of(stores.site_store()).await.unwrap(),
            "site"
        );
        let mut registry = Registry::new();
        crate::register(&mut registry);
        let stray =
            mantle_store::Store::open(dir.path().join("stray.store"), &StoreConfig::new(registry))
                .await
                .unwrap();
        match stores.address_of(&stray).await {
            Err(SiteError::NotInSite(path)) => assert_eq!(path, stray.path()),
            other => panic!("{other:?}"),
        }
        // Inside the site's directory but not one of its stores.
        let inside = mantle_store::Store::open(
            dir.path().join("site/users/unlisted.store"),
            &StoreConfig::new(Registry::new()),
        )
        .await
        .unwrap();
        assert!(matches!(
            stores.address_of(&inside).await,
            Err(SiteError::NotInSite(_))
        ));
        site.close().await;
    }
}
