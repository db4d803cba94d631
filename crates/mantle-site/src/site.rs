//! `Site`: one node's site directory, its stores and its services.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mantle_store::{Id, Registry, Store, StoreCache, StoreConfig, Target, Timestamp};
use parking_lot::Mutex;

use crate::config::SiteConfig;
use crate::items::{Account, AuthToken, Invite, LoginMethod, Slate, TokenSweeper};
use crate::service::{RunningService, Service};
use crate::{Result, SiteError};

/// The site store's file name in a site directory.
pub const SITE_STORE: &str = "site.store";

/// A function adding an offering's (or a front end's) types to the registry.
pub type Registration = fn(&mut Registry);

/// Opens or creates a [`Site`].
///
/// ```no_run
/// # async fn f() -> mantle_site::Result<()> {
/// let site = mantle_site::Site::builder("/srv/mantle")
///     .with(|registry| { /* register an offering's item types */ let _ = registry; })
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
pub struct SiteBuilder {
    dir: PathBuf,
    registrations: Vec<Registration>,
    config: Option<SiteConfig>,
    creating: bool,
}

impl SiteBuilder {
    /// Adds types to the registry shared by the site's stores.
    pub fn with(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// Uses this configuration instead of reading `mantle.toml` (and the
    /// environment).
    pub fn config(mut self, config: SiteConfig) -> Self {
        self.config = Some(config);
        self
    }

    fn registry(&self) -> Registry {
        let mut registry = Registry::new();
        crate::register(&mut registry);
        for r in &self.registrations {
            r(&mut registry);
        }
        registry
    }

    /// Creates a new site in the directory (which may exist but must not
    /// hold a site): writes `mantle.toml` with `config` and makes the site
    /// store.
    pub async fn init(self, config: SiteConfig) -> Result<Site> {
        config.validate()?;
        let store_file = self.dir.join(SITE_STORE);
        if store_file.exists() {
            return Err(SiteError::AlreadyASite(self.dir.clone()));
        }
        std::fs::create_dir_all(self.dir.join("users")).map_err(|e| SiteError::io(&self.dir, e))?;
        config.save(&self.dir)?;
        let mut builder = self.config(config);
        builder.creating = true;
        builder.open().await
    }

    /// Opens the site in the directory.
    pub async fn open(self) -> Result<Site> {
        let store_file = self.dir.join(SITE_STORE);
        if !self.creating && !store_file.exists() {
            return Err(SiteError::NotASite(self.dir.clone()));
        }
        let config = match &self.config {
            Some(c) => c.clone(),
            None => SiteConfig::load(&self.dir)?,
        };
        mantle_store::raise_open_file_limit().ok();
        let store_config = StoreConfig::new(self.registry()).durability(config.durability()?);
        let site_store = Store::open(&store_file, &store_config).await?;
        let users = StoreCache::new(store_config.clone(), config.stores.cache_capacity);
        let interval = Duration::from_secs(config.auth.sweep_interval_secs.max(1));
        site_store
            .transact(move |tx| {
                if tx.query::<TokenSweeper>().exists()? {
                    return Ok(());
                }
                let sweeper = tx.insert(&TokenSweeper { swept: 0 })?;
                tx.schedule(
                    sweeper,
                    "sweep",
                    Timestamp::now() + interval,
                    Some(interval),
                )?;
                Ok::<_, SiteError>(())
            })
            .await?;
        let dir = std::path::absolute(&self.dir).map_err(|e| SiteError::io(&self.dir, e))?;
        Ok(Site {
            inner: Arc::new(SiteInner {
                dir,
                config,
                site_store,
                users,
                services: Mutex::new(Vec::new()),
                store_files: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// A site: the site store (accounts, login methods, tokens, service
/// configuration), one user store per account, and the services started
/// from the site store's powerups. A value, not a global: two sites can run
/// in one process, and a site can be started, stopped and started again.
#[derive(Clone)]
pub struct Site {
    pub(crate) inner: Arc<SiteInner>,
}

pub(crate) struct SiteInner {
    pub(crate) dir: PathBuf,
    pub(crate) config: SiteConfig,
    pub(crate) site_store: Store,
    pub(crate) users: StoreCache,
    services: Mutex<Vec<RunningService>>,
    /// Account → user store file. A store's file never changes once the
    /// account exists, so this only grows, and shrinks on deletion; it
    /// saves a site store read on every request.
    pub(crate) store_files: Mutex<HashMap<Id<Account>, PathBuf>>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Site {
    /// A builder for the site in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> SiteBuilder {
        SiteBuilder {
            dir: dir.as_ref().to_path_buf(),
            registrations: Vec::new(),
            config: None,
            creating: false,
        }
    }

    /// The site directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &SiteConfig {
        &self.inner.config
    }

    /// The site store.
    pub fn site_store(&self) -> &Store {
        &self.inner.site_store
    }

    /// The cache of open user and app stores.
    pub fn stores(&self) -> &StoreCache {
        &self.inner.users
    }

    /// The user store of an account.
    pub async fn user_store(&self, account: Id<Account>) -> Result<Store> {
        let sub = self
            .inner
            .site_store
            .read(move |r| {
                let acc = r
                    .get(account)?
                    .ok_or(SiteError::NoSuchAccount(format!("#{}", account.raw())))?;
                r.get(acc.user_store)?
                    .ok_or_else(|| SiteError::NoSuchAccount(format!("#{}", account.raw())))
            })
            .await?;
        Ok(sub.open(&self.inner.site_store, &self.inner.users).await?)
    }

    /// Installs a service (an item providing [`Service`]) in the site
    /// store; it starts with the site from then on.
    pub async fn install_service<T: mantle_store::Item + Clone>(&self, service: T) -> Result<()> {
        self.inner
            .site_store
            .transact(move |tx| {
                let id = tx.insert(&service)?;
                tx.install::<dyn Service, T>(Target::STORE, id, 0)?;
                Ok::<_, SiteError>(())
            })
            .await
    }

    /// Starts the services installed in the site store; returns what each
    /// is (with the address it listens on, if any).
    pub async fn start(&self) -> Result<Vec<(String, Option<String>)>> {
        let services = self
            .inner
            .site_store
            .read(|r| r.powerups::<dyn Service>(Target::STORE))
            .await?;
        let mut started = Vec::new();
        for s in services {
            let running = s.start(self.clone()).await?;
            tracing::info!(service = %running.name, address = ?running.address, "service started");
            started.push((running.name.clone(), running.address.clone()));
            self.inner.services.lock().push(running);
        }
        Ok(started)
    }

    /// Stops the running services gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        let running: Vec<RunningService> = std::mem::take(&mut *self.inner.services.lock());
        for r in running {
            r.stop().await;
        }
    }

    /// Stops services and closes every store.
    pub async fn close(&self) {
        self.stop().await;
        self.inner.users.close_all().await;
        self.inner.site_store.close().await;
    }
}

/// Registers the site's own item types and tasks.
pub fn register(registry: &mut Registry) {
    registry
        .register::<Account>()
        .register::<LoginMethod>()
        .register::<AuthToken>()
        .register::<Invite>()
        .register::<TokenSweeper>()
        .register::<Slate>()
        .task::<TokenSweeper>("sweep", |tx, mut sweeper| {
            let now = Timestamp::now();
            let n = tx.delete_where(AuthToken::EXPIRES.le(now))?;
            if n > 0 {
                sweeper.swept += n as i64;
                tx.update(&mut sweeper)?;
                tracing::info!(swept = n, "expired tokens swept");
            }
            Ok(())
        })
        .task::<Slate>("expire", |tx, slate| {
            if slate.expires.is_some_and(|t| t <= Timestamp::now()) {
                tx.delete(slate.id())?;
            }
            Ok(())
        });
}

/// Where an account's user store lives, relative to the site store.
pub(crate) fn user_store_path(account_hint: &str) -> String {
    // The file name is fixed at signup; it does not follow later renames.
    let safe: String = account_hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("users/{safe}.store")
}

/// The SubStore name of a user store.
pub(crate) fn user_store_name(address: &str) -> String {
    format!("user:{address}")
}
