//! `Site`: one node's site directory, its stores and its services.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mantle_store::{Id, Registry, Store, StoreCache, StoreConfig, Target, Timestamp};
use parking_lot::Mutex;

use futures::StreamExt;
use mantle_store::SubStore;

use crate::config::{CONFIG_FILE, SiteConfig};
use crate::items::{Account, AuthToken, Invite, LoginMethod, Slate, TokenSweeper};
use crate::messaging::{self, MessageHandlers, MessageRegistration, SiteLink};
use crate::service::{RunningService, Service};
use crate::stats::SiteStats;
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
    messages: Vec<MessageRegistration>,
    apps: Vec<String>,
    extensions: Extensions,
    config: Option<SiteConfig>,
    creating: bool,
    stats: Option<mantle_stats::StatsRegistry>,
    effects: Vec<EffectsHook>,
    sections: Vec<SectionCheck>,
}

/// A declared configuration section: its name, and how to parse and
/// check it.
type SectionCheck = (&'static str, fn(&SiteConfig) -> Result<ParsedSection>);

/// A parsed section, keyed by its type.
type ParsedSection = (std::any::TypeId, Box<dyn std::any::Any + Send + Sync>);

fn parse_section<T: crate::ConfigSection>(config: &SiteConfig) -> Result<ParsedSection> {
    Ok((
        std::any::TypeId::of::<T>(),
        Box::new(config.section::<T>()?),
    ))
}

/// Parses and checks every declared section of `config`; a section no
/// part of the program declared is an error (a misspelt one would be
/// silently ignored otherwise).
fn check_sections(
    config: &SiteConfig,
    declared: &[SectionCheck],
) -> Result<HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>> {
    if let Some(unknown) = config
        .sections
        .keys()
        .find(|k| !declared.iter().any(|(name, _)| name == k))
    {
        let known: Vec<String> = declared.iter().map(|(n, _)| format!("[{n}]")).collect();
        return Err(SiteError::Config(format!(
            "{CONFIG_FILE} has a section [{unknown}] that no part of this program reads (it reads {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    declared.iter().map(|(_, parse)| parse(config)).collect()
}

/// Adds an upper layer's effect dispatcher to the stores' configuration.
type EffectsHook = Box<dyn FnOnce(StoreConfig, SiteLink) -> StoreConfig + Send>;

/// Values that upper layers attach to a site (the web front's extra
/// routes, say), keyed by type, so the site need not know their types.
#[derive(Default)]
pub struct Extensions(HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>);

impl Extensions {
    /// The value of type `T`, if one was attached.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }
    /// The value of type `T`, attached now (default) if missing.
    pub fn get_or_default<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.0
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("keyed by its own type")
    }
}

impl SiteBuilder {
    /// Adds types to the registry shared by the site's stores.
    pub fn with(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// Adds message handlers (see [`MessageHandlers`]).
    pub fn messages(mut self, registration: MessageRegistration) -> Self {
        self.messages.push(registration);
        self
    }

    /// Declares an offering's app store, addressed as `app:NAME` (made on
    /// first open).
    pub fn app(mut self, name: &str) -> Self {
        self.apps.push(name.to_string());
        self
    }

    /// Attaches a value for upper layers; see [`Site::extension`].
    pub fn extension<T: Default + Send + Sync + 'static>(mut self, f: impl FnOnce(&mut T)) -> Self {
        f(self.extensions.get_or_default::<T>());
        self
    }

    /// Records the site's statistics in `registry` (to share one registry
    /// with other parts of a program) instead of a new one. See
    /// [`Site::stats`].
    pub fn stats(mut self, registry: mantle_stats::StatsRegistry) -> Self {
        self.stats = Some(registry);
        self
    }

    /// Dispatches the effects of type `E` that any of the site's stores
    /// records, after commit, in batches (see
    /// [`StoreConfig::on_effects`]); the handler gets the running site.
    /// Upper layers use it for their own effects (the live layer's model
    /// deltas, say). While the site is closing, effects are retried later.
    pub fn on_effects<E, F, Fut>(mut self, handler: F) -> Self
    where
        E: mantle_store::Effect,
        F: Fn(Site, Vec<(mantle_store::Delivery, E)>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<std::result::Result<(), mantle_store::DispatchError>>>
            + Send
            + 'static,
    {
        let handler = Arc::new(handler);
        self.effects
            .push(Box::new(move |config: StoreConfig, link: SiteLink| {
                config.on_effects::<E, _, _>(move |batch| {
                    let site = link.site();
                    let handler = handler.clone();
                    async move {
                        match site {
                            Some(site) => handler(site, batch).await,
                            None => batch
                                .iter()
                                .map(|_| Err(mantle_store::DispatchError::retry("site is closing")))
                                .collect(),
                        }
                    }
                })
            }));
        self
    }

    /// Declares that a layer of the program reads the configuration
    /// section `T` (see [`ConfigSection`](crate::ConfigSection)): it is
    /// parsed and checked when the site opens, and read with
    /// [`Site::section`]. Declaring it twice is harmless.
    pub fn section<T: crate::ConfigSection>(mut self) -> Self {
        if !self.sections.iter().any(|(name, _)| *name == T::NAME) {
            self.sections.push((T::NAME, parse_section::<T>));
        }
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
        check_sections(&config, &self.sections)?;
        let store_file = self.dir.join(SITE_STORE);
        if store_file.exists() {
            return Err(SiteError::AlreadyASite(self.dir.clone()));
        }
        mantle_store::create_private_dir_all(&self.dir.join("users"))
            .map_err(|e| SiteError::io(&self.dir, e))?;
        config.save(&self.dir)?;
        let mut builder = self.config(config);
        builder.creating = true;
        builder.open().await
    }

    /// Opens the site in the directory.
    pub async fn open(mut self) -> Result<Site> {
        let store_file = self.dir.join(SITE_STORE);
        if !self.creating && !store_file.exists() {
            return Err(SiteError::NotASite(self.dir.clone()));
        }
        let config = match &self.config {
            Some(c) => c.clone(),
            None => SiteConfig::load(&self.dir)?,
        };
        let sections = check_sections(&config, &self.sections)?;
        mantle_store::raise_open_file_limit().ok();
        let mut handlers = MessageHandlers::default();
        for m in &self.messages {
            m(&mut handlers);
        }
        let link = SiteLink::default();
        let stats = SiteStats::new(self.stats.clone().unwrap_or_default());
        let mut store_config = messaging::install(
            StoreConfig::new(self.registry())
                .durability(config.durability()?)
                .stats(stats.registry.clone()),
            link.clone(),
            Arc::new(handlers),
        );
        for hook in std::mem::take(&mut self.effects) {
            store_config = hook(store_config, link.clone());
        }
        let site_store = Store::open(&store_file, &store_config).await?;
        let users = StoreCache::new(store_config.clone(), config.stores.cache_capacity);
        let interval = Duration::from_secs(config.auth.sweep_interval_secs.max(1));
        site_store
            .transact(move |tx| {
                // The schedule is persistent, but its interval comes from
                // the configuration, which may have changed since: replace
                // the sweeper (deleting it drops its schedule) so the
                // configured interval is the one in force. A reopened site
                // sweeps at once, so restarts never postpone sweeping.
                let now = Timestamp::now();
                let mut swept = 0;
                let mut first = now + interval;
                for old in tx.query::<TokenSweeper>().all()? {
                    swept += old.swept;
                    first = now;
                    tx.delete(old.id())?;
                }
                let sweeper = tx.insert(&TokenSweeper { swept })?;
                tx.schedule(sweeper, "sweep", first, Some(interval))?;
                Ok::<_, SiteError>(())
            })
            .await?;
        let apps = self.apps.clone();
        site_store
            .transact(move |tx| {
                for app in apps {
                    let name = format!("app:{app}");
                    if !tx
                        .query::<SubStore>()
                        .filter(SubStore::NAME.eq(name.as_str()))
                        .exists()?
                    {
                        tx.insert(&SubStore::new(name, format!("apps/{app}.store")))?;
                    }
                }
                Ok::<_, SiteError>(())
            })
            .await?;
        let dir = std::path::absolute(&self.dir).map_err(|e| SiteError::io(&self.dir, e))?;
        let passwords = crate::passwords::PasswordWorkers::start(
            config.auth.workers(),
            config.auth.password_queue,
        )?;
        let suspects = crate::suspects::SuspectGate::counted(
            config.auth.failures_before_backoff,
            config.auth.suspect_cpu_share,
            Some((
                stats.auth.suspect_turns.clone(),
                stats.auth.suspect_pauses.clone(),
            )),
        );
        let guard =
            crate::login_guard::LoginGuard::new(&config.auth, config.signup.max_per_hour, suspects);
        let site = Site {
            inner: Arc::new(SiteInner {
                dir,
                config,
                site_store,
                users,
                services: Mutex::new(Vec::new()),
                store_files: Mutex::new(HashMap::new()),
                addresses: Mutex::new(HashMap::new()),
                apps: Mutex::new(HashMap::new()),
                tokens: crate::auth::TokenCache::default(),
                guard,
                passwords,
                extensions: self.extensions,
                sweep: Mutex::new(None),
                stats,
                sections,
            }),
        };
        link.set(&site);
        Ok(site)
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
    /// Tokens recently authenticated (see `auth::TokenCache`).
    pub(crate) tokens: crate::auth::TokenCache,
    /// Limits on guessing passwords, for every transport.
    pub(crate) guard: crate::login_guard::LoginGuard,
    /// The threads that hash and check passwords.
    pub(crate) passwords: crate::passwords::PasswordWorkers,
    /// Store file → its message address (`account:ID`, `app:NAME`).
    addresses: Mutex<HashMap<PathBuf, String>>,
    /// App name → its substore (app stores are never removed).
    apps: Mutex<HashMap<String, SubStore>>,
    extensions: Extensions,
    /// The start-up sweep that wakes stores with work left from before.
    sweep: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) stats: SiteStats,
    /// The declared configuration sections, parsed and checked.
    sections: HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
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
            messages: Vec::new(),
            apps: Vec::new(),
            extensions: Extensions::default(),
            config: None,
            creating: false,
            stats: None,
            effects: Vec::new(),
            sections: Vec::new(),
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

    /// The configuration section `T` in force, as parsed and checked when
    /// the site opened (see [`ConfigSection`](crate::ConfigSection)).
    ///
    /// # Panics
    /// If the program built the site without declaring `T` with
    /// [`SiteBuilder::section`]: a fault of the program, not of its
    /// configuration.
    pub fn section<T: crate::ConfigSection>(&self) -> &T {
        self.inner
            .sections
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.downcast_ref())
            .unwrap_or_else(|| {
                panic!(
                    "the site was built without declaring its [{}] section (SiteBuilder::section)",
                    T::NAME
                )
            })
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
        let known = self.inner.store_files.lock().get(&account).cloned();
        if let Some(file) = known {
            return Ok(self.inner.users.get(file).await?);
        }
        let sub = self
            .inner
            .site_store
            .read(move |r| {
                let missing = || SiteError::NoSuchAccount(format!("#{}", account.raw()));
                let acc = r.get(account)?.ok_or_else(missing)?;
                r.get(acc.user_store)?.ok_or_else(missing)
            })
            .await?;
        let store = sub.open(&self.inner.site_store, &self.inner.users).await?;
        let file = store.path().to_path_buf();
        self.inner.store_files.lock().insert(account, file.clone());
        self.inner
            .addresses
            .lock()
            .insert(file, format!("account:{}", account.raw()));
        Ok(store)
    }

    /// The app store `name` declared with [`SiteBuilder::app`] (addressed
    /// `app:NAME`), where an offering keeps what its users share.
    pub async fn app_store(&self, name: &str) -> Result<Store> {
        match self.app_substore(name).await? {
            Some(sub) => Ok(sub.open(&self.inner.site_store, &self.inner.users).await?),
            None => Err(SiteError::NoSuchAppStore(name.to_string())),
        }
    }

    /// The substore of app `name`, if declared (found once, then kept).
    pub(crate) async fn app_substore(&self, name: &str) -> Result<Option<SubStore>> {
        if let Some(sub) = self.inner.apps.lock().get(name) {
            return Ok(Some(sub.clone()));
        }
        let key = format!("app:{name}");
        let found = self
            .inner
            .site_store
            .read(move |r| {
                r.query::<SubStore>()
                    .filter(SubStore::NAME.eq(key.as_str()))
                    .first()
            })
            .await?
            .map(|s| s.into_inner());
        if let Some(sub) = &found {
            self.inner.apps.lock().insert(name.to_string(), sub.clone());
        }
        Ok(found)
    }

    /// The message address of a store of this site.
    pub(crate) async fn address_of(&self, store: &Store) -> Result<String> {
        if store.path() == self.inner.site_store.path() {
            return Ok("site".into());
        }
        if let Some(a) = self.inner.addresses.lock().get(store.path()) {
            return Ok(a.clone());
        }
        let relative = store
            .path()
            .strip_prefix(&self.inner.dir)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| SiteError::NotInSite(store.path().to_path_buf()))?;
        let name = self
            .inner
            .site_store
            .read(move |r| {
                r.query::<SubStore>()
                    .filter(SubStore::PATH.eq(relative.as_str()))
                    .first()
            })
            .await?
            .map(|s| s.into_inner().name)
            .ok_or_else(|| SiteError::NotInSite(store.path().to_path_buf()))?;
        self.inner
            .addresses
            .lock()
            .insert(store.path().to_path_buf(), name.clone());
        Ok(name)
    }

    /// A value an upper layer attached with [`SiteBuilder::extension`].
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
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
        self.start_sweep();
        let mut started = Vec::new();
        for s in services {
            let running = s.start(self.clone()).await?;
            tracing::info!(service = %running.name, address = ?running.address, "service started");
            started.push((running.name.clone(), running.address.clone()));
            self.inner.services.lock().push(running);
        }
        Ok(started)
    }

    /// Opens every user and app store once, in the background, so work
    /// they were left with (messages to send, answers, due tasks) resumes
    /// after a restart; stores with nothing to do are closed again by the
    /// cache as others are needed.
    fn start_sweep(&self) {
        let site = self.clone();
        let task = tokio::spawn(async move {
            let subs = match site
                .site_store()
                .read(|r| r.query::<SubStore>().all())
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "start-up sweep cannot list stores");
                    return;
                }
            };
            let opened = futures::stream::iter(subs)
                .map(|sub| {
                    let site = site.clone();
                    async move {
                        if let Some(id) = sub
                            .name
                            .strip_prefix("account:")
                            .and_then(|i| i.parse().ok())
                        {
                            site.user_store(Id::from_raw(id)).await.map(drop)
                        } else {
                            sub.open(site.site_store(), site.stores())
                                .await
                                .map(drop)
                                .map_err(Into::into)
                        }
                    }
                })
                .buffer_unordered(8)
                .filter(|r| futures::future::ready(r.is_err()))
                .count()
                .await;
            if opened > 0 {
                tracing::warn!(failed = opened, "start-up sweep could not open some stores");
            }
        });
        if let Some(old) = self.inner.sweep.lock().replace(task) {
            old.abort();
        }
    }

    /// Stops the running services gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        let sweep = self.inner.sweep.lock().take();
        if let Some(sweep) = sweep {
            sweep.abort();
            // Ended for real before the stores it opens are closed.
            let _ = sweep.await;
        }
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
        .register::<crate::messaging::Receipt>()
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

/// The longest part of a user store's file name taken from its login: a
/// login may be 320 bytes and more, far past what a file name may be
/// (255 bytes on most file systems), so the name is cut; the signup's
/// uniqueness check adds `-2`, `-3`, … where cut names collide.
const STORE_NAME_MAX: usize = 64;

/// Where an account's user store lives, relative to the site store: its
/// `n`th candidate name (`n` > 1 is added to the name, after the cut).
pub(crate) fn user_store_path(account_hint: &str, n: u32) -> String {
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
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_is_not_the_sites_has_no_message_address() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::builder(dir.path().join("site"))
            .init(SiteConfig::default())
            .await
            .unwrap();
        assert_eq!(site.address_of(site.site_store()).await.unwrap(), "site");
        let mut registry = Registry::new();
        crate::register(&mut registry);
        let stray = Store::open(dir.path().join("stray.store"), &StoreConfig::new(registry))
            .await
            .unwrap();
        match site.address_of(&stray).await {
            Err(SiteError::NotInSite(path)) => assert_eq!(path, stray.path()),
            other => panic!("{other:?}"),
        }
        // Inside the site's directory but not one of its stores.
        let inside = Store::open(
            dir.path().join("site/users/unlisted.store"),
            &StoreConfig::new(Registry::new()),
        )
        .await
        .unwrap();
        assert!(matches!(
            site.address_of(&inside).await,
            Err(SiteError::NotInSite(_))
        ));
        site.close().await;
    }
}
