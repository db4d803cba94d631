//! Assembling a site: its item types, message handlers, app stores,
//! configuration sections and upper layers' effect handlers, then the
//! components that serve it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mantle_store::{Registry, Store, StoreCache, StoreConfig};

use super::{SITE_STORE, Services, Site, SiteInner, SiteLink};
use crate::accounts::Accounts;
use crate::auth::{Auth, AuthStats};
use crate::config::{CONFIG_FILE, OFFERINGS_SECTION, SiteConfig};
use crate::messaging::{MessageHandlers, Messaging, MessagingLink, MessagingStats};
use crate::offerings::{Declared, Installed, Offerings, Products};
use crate::slates::Slates;
use crate::stores::Stores;
use crate::{Result, SiteError};

/// A function adding an offering's (or a front end's) types to the registry.
pub type Registration = fn(&mut Registry);

/// Adds item types to the registry (a closure: it may capture values).
type Register = Box<dyn Fn(&mut Registry) + Send + Sync>;

/// Adds message handlers.
type RegisterMessages = Box<dyn Fn(&mut MessageHandlers) + Send + Sync>;

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
    registrations: Vec<Register>,
    messages: Vec<RegisterMessages>,
    /// Offerings' message handlers, present only while it is installed.
    offering_messages: Vec<(String, RegisterMessages)>,
    offerings: Vec<Declared>,
    apps: Vec<String>,
    extensions: Extensions,
    config: Option<SiteConfig>,
    creating: bool,
    stats: Option<mantle_stats::StatsRegistry>,
    effects: Vec<EffectsHook>,
    sections: Vec<SectionCheck>,
    logins: Option<Arc<dyn crate::LoginDirectory>>,
    route_tokens: bool,
    remote_stores: Option<Arc<dyn crate::RemoteStores>>,
}

/// A declared configuration section: its name (`NAME` for `[NAME]`,
/// `offerings.NAME` for an offering's), and how to parse and check it.
type SectionCheck = (String, fn(&SiteConfig) -> Result<ParsedSection>);

/// A parsed section, keyed by its type.
type ParsedSection = (TypeId, Box<dyn Any + Send + Sync>);

fn parse_section<T: crate::ConfigSection>(config: &SiteConfig) -> Result<ParsedSection> {
    Ok((TypeId::of::<T>(), Box::new(config.section::<T>()?)))
}

fn parse_offering_section<T: crate::ConfigSection>(config: &SiteConfig) -> Result<ParsedSection> {
    let value: T = config.offering_section_with_env(&|k| std::env::var(k).ok())?;
    Ok((TypeId::of::<T>(), Box::new(value)))
}

/// Parses and checks every declared section of `config`; a section no
/// part of the program declared is an error (a misspelt one would be
/// silently ignored otherwise).
fn check_sections(
    config: &SiteConfig,
    declared: &[SectionCheck],
) -> Result<HashMap<TypeId, Box<dyn Any + Send + Sync>>> {
    let mut written: Vec<String> = Vec::new();
    for (key, value) in &config.sections {
        match (key.as_str(), value) {
            (OFFERINGS_SECTION, toml::Value::Table(t)) => {
                written.extend(t.keys().map(|k| format!("{OFFERINGS_SECTION}.{k}")));
            }
            _ => written.push(key.clone()),
        }
    }
    if let Some(unknown) = written
        .iter()
        .find(|k| !declared.iter().any(|(name, _)| name == *k))
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
pub struct Extensions(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl Extensions {
    /// The value of type `T`, if one was attached.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }
    /// The value of type `T`, attached now (default) if missing.
    pub fn get_or_default<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("keyed by its own type")
    }
}

impl SiteBuilder {
    pub(super) fn new(dir: &std::path::Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            registrations: Vec::new(),
            messages: Vec::new(),
            offering_messages: Vec::new(),
            offerings: Vec::new(),
            apps: Vec::new(),
            extensions: Extensions::default(),
            config: None,
            creating: false,
            stats: None,
            effects: Vec::new(),
            sections: Vec::new(),
            logins: None,
            route_tokens: false,
            remote_stores: None,
        }
    }

    /// Adds types to the registry shared by the site's stores.
    pub fn with(mut self, registration: impl Fn(&mut Registry) + Send + Sync + 'static) -> Self {
        self.registrations.push(Box::new(registration));
        self
    }

    /// Adds message handlers (see [`MessageHandlers`]), present whatever
    /// is installed. An offering's are added with
    /// [`Offering::messages`](crate::Offering::messages).
    pub fn messages(
        mut self,
        registration: impl Fn(&mut MessageHandlers) + Send + Sync + 'static,
    ) -> Self {
        self.messages.push(Box::new(registration));
        self
    }

    /// Includes an offering (see [`Offering`](crate::Offering)): its item
    /// types, handlers, sections and upper layers' parts join the program;
    /// whether it is present in a site is the site's record of
    /// installation. The order offerings are included in does not matter;
    /// a requirement the program does not include is refused when the
    /// site opens ([`SiteError::OfferingMissing`]).
    pub fn offering(mut self, offering: crate::Offering) -> Self {
        let (declared, attach) = offering.into_parts();
        self.offerings.push(declared);
        for a in attach {
            self = a(self);
        }
        self
    }

    /// Adds the message handlers of `offering`: while it is not installed,
    /// messages to them are refused with [`NO_HANDLER`](crate::NO_HANDLER).
    pub(crate) fn offering_messages(
        mut self,
        offering: &str,
        registration: impl Fn(&mut MessageHandlers) + Send + Sync + 'static,
    ) -> Self {
        self.offering_messages
            .push((offering.to_string(), Box::new(registration)));
        self
    }

    /// Declares an offering's section, `[offerings.NAME]` (`T::NAME`).
    pub(crate) fn offering_section<T: crate::ConfigSection>(mut self) -> Self {
        let name = format!("{OFFERINGS_SECTION}.{}", T::NAME);
        if !self.sections.iter().any(|(n, _)| *n == name) {
            self.sections.push((name, parse_offering_section::<T>));
        }
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

    /// Commits every store of the site (the site store first) through
    /// `fence`, which also sees each store before it opens: a cluster
    /// node's ownership and lease (see [`mantle_store::Fence`]).
    pub fn fence(mut self, fence: Arc<dyn mantle_store::Fence>) -> Self {
        self.effects
            .push(Box::new(move |config: StoreConfig, _| config.fence(fence)));
        self
    }

    /// Consults `logins`, a directory shared with other sites, whenever an
    /// account or a login is made or an account deleted, so that a login
    /// names one account across all of them (see [`crate::LoginDirectory`]).
    pub fn logins(mut self, logins: Arc<dyn crate::LoginDirectory>) -> Self {
        self.logins = Some(logins);
        self
    }

    /// Carries messages to stores of other sites serving as one, and
    /// applies theirs (see [`crate::RemoteStores`]).
    pub fn remote_stores(mut self, remote: Arc<dyn crate::RemoteStores>) -> Self {
        self.remote_stores = Some(remote);
        self
    }

    /// Issues tokens that name their account's store, so that any of
    /// several sites serving as one can route them
    /// ([`token_route`](crate::token_route)).
    pub fn route_tokens(mut self) -> Self {
        self.route_tokens = true;
        self
    }

    /// Declares that a layer of the program reads the configuration
    /// section `T` (see [`ConfigSection`](crate::ConfigSection)): it is
    /// parsed and checked when the site opens, and read with
    /// [`Site::section`]. Declaring it twice is harmless.
    pub fn section<T: crate::ConfigSection>(mut self) -> Self {
        if !self.sections.iter().any(|(name, _)| name == T::NAME) {
            self.sections
                .push((T::NAME.to_string(), parse_section::<T>));
        }
        self
    }

    /// Uses this configuration instead of reading `mantle.toml` (and the
    /// environment).
    pub fn config(mut self, config: SiteConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The names of the offerings included so far that a site can
    /// install (not the layers), in the order they were included.
    pub fn installable(&self) -> Vec<String> {
        crate::offerings::installable(&self.offerings)
    }

    /// The registry the site's stores use: the site's own item types and
    /// every one the program's offerings and layers register (what store
    /// tools need to read any store of the site).
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::new();
        super::register(&mut registry);
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
        crate::offerings::check_program(&self.offerings)?;
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
        let sections = crate::config::Settings::new(check_sections(&config, &self.sections)?);
        crate::offerings::check_program(&self.offerings)?;
        mantle_store::raise_open_file_limit().ok();
        let declared = Arc::new(std::mem::take(&mut self.offerings));
        let installed = Installed::default();
        let mut handlers = MessageHandlers::default();
        for m in &self.messages {
            m(&mut handlers);
        }
        for (offering, m) in &self.offering_messages {
            let mut own = MessageHandlers::default();
            m(&mut own);
            let present = installed.clone();
            let name = offering.clone();
            handlers.merge_gated(own, offering, move || present.contains(&name));
        }
        crate::offerings::register_gives(&mut handlers, declared.clone(), sections.clone());
        crate::sharing::register_notices(&mut handlers);
        // Committed changes of a store's sharing are announced, for what
        // holds access open (live observations) to check again.
        self = self.on_effects::<crate::sharing::SharingChanged, _, _>(|site, batch| async move {
            batch
                .into_iter()
                .map(|(d, _)| {
                    site.sharing().announce(d.store.path().to_path_buf());
                    Ok(())
                })
                .collect()
        });
        // Reports list namespaces in the order they were made: the store
        // layer's first (its handles are made later, with the store config).
        let stats = self.stats.clone().unwrap_or_default();
        let _ = stats.namespace(mantle_store::STATS_NAMESPACE);
        let messaging_stats = MessagingStats::new(&stats);
        let auth_stats = AuthStats::new(&stats);
        crate::process_stats::install(&stats);

        let (site_link, messaging_link) = (SiteLink::default(), MessagingLink::default());
        let handlers = Arc::new(handlers);
        let mut store_config = crate::messaging::install(
            StoreConfig::new(self.registry())
                .durability(config.durability()?)
                .stats(stats.clone()),
            messaging_link.clone(),
            handlers.clone(),
        );
        for hook in std::mem::take(&mut self.effects) {
            store_config = hook(store_config, site_link.clone());
        }
        // Every store opened from here on (the site store first) is backed
        // up, when the site has a target.
        let dir = std::path::absolute(&self.dir).map_err(|e| SiteError::io(&self.dir, e))?;
        let backup = if config.backup.enabled() {
            let b = mantle_backup::Backup::open(&dir, &config.backup, &stats)?;
            store_config = store_config.replicator(Arc::new(b.clone()));
            Some(b)
        } else {
            None
        };
        let site_store = Store::open(&store_file, &store_config).await?;
        let cache = StoreCache::new(store_config, config.stores.cache_capacity);
        let stores = Stores::new(dir.clone(), site_store.clone(), cache);
        stores.declare_apps(self.apps.clone()).await?;
        let auth = Auth::start(site_store, &config, auth_stats, self.route_tokens).await?;
        let offerings = Offerings::open(
            stores.clone(),
            declared.clone(),
            installed.clone(),
            sections.clone(),
        )
        .await?;
        let products = Products::new(stores.clone(), declared, installed.clone());
        let accounts = Accounts::new(stores.clone(), auth.clone(), &config, self.logins.clone());
        let messaging = Messaging::new(
            stores.clone(),
            config.domain.clone(),
            messaging_stats,
            &messaging_link,
            handlers,
            self.remote_stores.clone(),
        );
        let shareable = self
            .extensions
            .get::<crate::sharing::ShareableTypes>()
            .cloned()
            .unwrap_or_default();
        let sharing = crate::sharing::Sharing::new(stores.clone(), messaging.clone(), shareable);
        let site = Site {
            inner: Arc::new(SiteInner {
                sharing,
                backup,
                backup_chores: parking_lot::Mutex::new(None),
                dir,
                sections,
                extensions: self.extensions,
                stats,
                slates: Slates::new(stores.clone()),
                services: Services::new(stores.clone()),
                stores,
                auth,
                accounts,
                messaging,
                offerings,
                products,
                config,
            }),
        };
        site_link.set(&site);
        Ok(site)
    }
}
