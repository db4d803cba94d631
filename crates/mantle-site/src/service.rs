//! Services: what a site runs (an HTTP front, later AMP, SMTP). Each is an
//! item installed in the site store as a powerup of [`Service`]; the site
//! starts every installed service when it starts.

use futures::future::BoxFuture;
use mantle_store::Interface;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Result;
use crate::site::Site;

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
