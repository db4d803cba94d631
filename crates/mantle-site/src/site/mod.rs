//! `Site`: one node's site directory, made of components — its stores,
//! accounts, authentication, slates, messaging and services — each with
//! its own state, reached through [`Site`]'s accessors.
//!
//! The components depend on one another in one direction only: the stores
//! at the bottom; authentication on the site store; accounts on both;
//! slates and messaging on the stores. This module assembles them
//! ([`SiteBuilder`]) and runs the site's life (start, stop, close).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use mantle_stats::{Snapshot, StatsRegistry};
use mantle_store::Registry;

use crate::Result;
use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::config::{Settings, SiteConfig};
use crate::messaging::Messaging;
use crate::offerings::{Offerings, Products};
use crate::sharing::Sharing;
use crate::slates::Slates;
use crate::stores::Stores;

mod builder;
mod services;

pub use builder::{Extensions, Registration, SiteBuilder};
pub use services::{RunningService, Service, Services};

/// How long [`Site::close`] waits for the site store's fresh messages.
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The site store's file name in a site directory.
pub const SITE_STORE: &str = "site.store";

/// A site: the site store (accounts, login methods, tokens, service
/// configuration), one user store per account, and the services started
/// from the site store's powerups. A value, not a global: two sites can run
/// in one process, and a site can be started, stopped and started again.
///
/// Its work is done by its components: [`stores`](Self::stores),
/// [`accounts`](Self::accounts), [`auth`](Self::auth),
/// [`slates`](Self::slates), [`messaging`](Self::messaging),
/// [`offerings`](Self::offerings), [`products`](Self::products) and
/// [`services`](Self::services).
#[derive(Clone)]
pub struct Site {
    inner: Arc<SiteInner>,
}

/// Invariant: the components are made once, when the site opens, and
/// never replaced; each keeps its own state private.
struct SiteInner {
    dir: PathBuf,
    config: SiteConfig,
    /// The declared configuration sections, parsed and checked.
    sections: Settings,
    extensions: Extensions,
    stats: StatsRegistry,
    stores: Stores,
    auth: Auth,
    accounts: Accounts,
    slates: Slates,
    messaging: Messaging,
    offerings: Offerings,
    products: Products,
    sharing: Sharing,
    services: Services,
    backup: Option<mantle_backup::Backup>,
    /// The backup chores (spool, status, pruning, verification) while
    /// the site is started.
    backup_chores: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        SiteBuilder::new(dir.as_ref())
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
        self.inner.sections.get::<T>().unwrap_or_else(|| {
            panic!(
                "the site was built without declaring its [{}] section (SiteBuilder::section)",
                T::NAME
            )
        })
    }

    /// Every configuration section in force (see [`Site::section`]).
    pub fn settings(&self) -> &Settings {
        &self.inner.sections
    }

    /// A value an upper layer attached with [`SiteBuilder::extension`].
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }

    /// The site's stores: the site store, user and app stores.
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    /// Logins, tokens and the limits on guessing passwords.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Accounts: signup, logins, disabling, deletion, fan-out over their
    /// stores.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// Every account's slates.
    pub fn slates(&self) -> &Slates {
        &self.inner.slates
    }

    /// Message addresses and parked messages.
    pub fn messaging(&self) -> &Messaging {
        &self.inner.messaging
    }

    /// The program's offerings and which the site has installed.
    pub fn offerings(&self) -> &Offerings {
        &self.inner.offerings
    }

    /// Products: named sets of offerings granted to users.
    pub fn products(&self) -> &Products {
        &self.inner.products
    }

    /// Sharing: the one way to reach another user's items, checked
    /// against the roles and shares of their store (see
    /// [`sharing`](crate::sharing)).
    pub fn sharing(&self) -> &Sharing {
        &self.inner.sharing
    }

    /// The services installed in the site store, and those running.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The site's statistics: the store layer's "Stores" namespace, the
    /// site's "Messaging" ([`MESSAGING_NAMESPACE`](crate::MESSAGING_NAMESPACE)),
    /// "Auth" ([`AUTH_NAMESPACE`](crate::AUTH_NAMESPACE)) and "Process"
    /// ([`PROCESS_NAMESPACE`](crate::PROCESS_NAMESPACE)) namespaces, and
    /// whatever upper layers add (the web front's "HTTP"). Clones share
    /// everything; use [`stats_snapshot`](Self::stats_snapshot) for a
    /// report.
    pub fn stats(&self) -> &StatsRegistry {
        &self.inner.stats
    }

    /// Refreshes the values counted at report time (active tokens: one
    /// indexed count in the site store), then takes a snapshot.
    pub async fn stats_snapshot(&self) -> Result<Snapshot> {
        self.inner.auth.refresh_stats().await?;
        Ok(self.inner.stats.snapshot())
    }

    /// Starts the services installed in the site store; returns what each
    /// is (with the address it listens on, if any). Stores left with work
    /// from before (messages to send, due tasks) are opened in the
    /// background so it resumes.
    pub async fn start(&self) -> Result<Vec<(String, Option<String>)>> {
        if let Some(product) = &self.inner.config.signup.product
            && self.inner.products.get(product).await.is_err()
        {
            tracing::warn!(
                product,
                "[signup] product names no product: new accounts cannot be made until it exists (mantle product create)"
            );
        }
        if let Some(b) = &self.inner.backup {
            let chores = tokio::spawn(b.clone().maintain(self.inner.config.backup.clone()));
            if let Some(old) = self.inner.backup_chores.lock().replace(chores) {
                old.abort();
            }
        }
        self.inner.services.start(self).await
    }

    /// Stops the running services gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        self.inner.services.stop().await;
        let chores = self.inner.backup_chores.lock().take();
        if let Some(chores) = chores {
            chores.abort();
            let _ = chores.await;
        }
    }

    /// The site's continuous backup, when `[backup] target` is set.
    pub fn backup(&self) -> Option<&mantle_backup::Backup> {
        self.inner.backup.as_ref()
    }

    /// Stops services and closes every store. Messages the site store
    /// sent just before (an account given its offerings, say) get a
    /// moment to be delivered first; any left are delivered at the next
    /// open.
    pub async fn close(&self) {
        self.stop().await;
        self.inner.stores.settle(CLOSE_PATIENCE).await;
        self.inner.stores.close().await;
        if let Some(b) = &self.inner.backup {
            // Closed stores spooled what the target would not take; a
            // snapshot still retrying gives up (the next open starts anew).
            b.shut_down();
        }
    }
}

/// A handle on a site that does not keep it open: what the stores' own
/// configuration holds (their effect dispatchers), which would otherwise
/// keep the site alive through a cycle.
#[derive(Clone, Default)]
pub(crate) struct SiteLink(Arc<std::sync::OnceLock<Weak<SiteInner>>>);

impl SiteLink {
    fn set(&self, site: &Site) {
        let _ = self.0.set(Arc::downgrade(&site.inner));
    }

    /// The site, unless it is gone (or not yet made).
    fn site(&self) -> Option<Site> {
        self.0.get()?.upgrade().map(|inner| Site { inner })
    }
}

/// Registers the site's own item types and tasks.
pub fn register(registry: &mut Registry) {
    crate::accounts::register(registry);
    crate::auth::register(registry);
    crate::slates::register(registry);
    crate::messaging::register(registry);
    crate::offerings::register(registry);
    crate::sharing::register(registry);
}
