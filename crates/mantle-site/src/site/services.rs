//! Services: what a site runs (an HTTP front, later AMP, SMTP). Each is an
//! item installed in the site store as a powerup of [`Service`]; the site
//! starts every installed service when it starts.

use futures::future::BoxFuture;
use mantle_store::{Interface, Target};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Site;
use crate::stores::Stores;
use crate::{Result, SiteError};

/// A service a site can run.
pub trait Service: Send + Sync {
    /// Starts the service for `site`; resolves once it is ready (for a
    /// listener: bound), with a handle to stop it.
    fn start(&self, site: Site) -> BoxFuture<'static, Result<RunningService>>;
}

impl Interface for dyn Service {
    const NAME: &'static str = "mantle.service";
}

/// A started service.
#[derive(Debug)]
pub struct RunningService {
    /// What it is ("http", …).
    pub name: String,
    /// Where it listens, if it does.
    pub address: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<()>,
}

impl RunningService {
    /// A running service: `stop` is signalled to stop it; `done` ends when
    /// it has stopped.
    pub fn new(
        name: impl Into<String>,
        address: Option<String>,
        stop: oneshot::Sender<()>,
        done: JoinHandle<()>,
    ) -> Self {
        Self {
            name: name.into(),
            address,
            stop: Some(stop),
            done,
        }
    }

    /// Asks the service to stop and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.done).await;
    }
}

/// The site's services: those installed in the site store, and those
/// running (see [`Site::services`]).
pub struct Services {
    stores: Stores,
    running: Mutex<Vec<RunningService>>,
    /// The start-up sweep that wakes stores with work left from before.
    sweep: Mutex<Option<JoinHandle<()>>>,
}

impl Services {
    pub(super) fn new(stores: Stores) -> Self {
        Self {
            stores,
            running: Mutex::default(),
            sweep: Mutex::default(),
        }
    }

    /// Installs a service (an item providing [`Service`]) in the site
    /// store; it starts with the site from then on.
    pub async fn install<T: mantle_store::Item + Clone>(&self, service: T) -> Result<()> {
        self.stores
            .site_store()
            .transact(move |tx| {
                let id = tx.insert(&service)?;
                tx.install::<dyn Service, T>(Target::STORE, id, 0)?;
                Ok::<_, SiteError>(())
            })
            .await
    }

    /// What is running now: each service's name and address.
    pub fn running(&self) -> Vec<(String, Option<String>)> {
        self.running
            .lock()
            .iter()
            .map(|r| (r.name.clone(), r.address.clone()))
            .collect()
    }

    pub(super) async fn start(&self, site: &Site) -> Result<Vec<(String, Option<String>)>> {
        let services = self
            .stores
            .site_store()
            .read(|r| r.powerups::<dyn Service>(Target::STORE))
            .await?;
        self.start_sweep();
        let mut started = Vec::new();
        for s in services {
            let running = s.start(site.clone()).await?;
            tracing::info!(service = %running.name, address = ?running.address, "service started");
            started.push((running.name.clone(), running.address.clone()));
            self.running.lock().push(running);
        }
        Ok(started)
    }

    /// Opens every user and app store once, in the background (see
    /// [`Stores::open_all`]).
    fn start_sweep(&self) {
        let stores = self.stores.clone();
        let task = tokio::spawn(async move {
            let failed = stores.open_all().await;
            if failed > 0 {
                tracing::warn!(failed, "start-up sweep could not open some stores");
            }
        });
        if let Some(old) = self.sweep.lock().replace(task) {
            old.abort();
        }
    }

    pub(super) async fn stop(&self) {
        let sweep = self.sweep.lock().take();
        if let Some(sweep) = sweep {
            sweep.abort();
            // Ended for real before the stores it opens are closed.
            let _ = sweep.await;
        }
        let running: Vec<RunningService> = std::mem::take(&mut *self.running.lock());
        for r in running {
            r.stop().await;
        }
    }
}
