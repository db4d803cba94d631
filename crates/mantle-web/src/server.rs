//! The HTTP service: binds the configured address and serves the router
//! with connection caps and time-outs (see `connections`), header and body
//! time-outs, and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Extension, Router};
use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use mantle_site::{RunningService, Service, Site, SiteError};
use mantle_store::{Item, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::admin::{AdminRuntime, AdminSecret};
use crate::connections::{ConnectionLimits, Connections};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The HTTP front, installed in the site store as a [`Service`] powerup.
/// Its address and limits come from the site configuration (`[http]`).
///
/// Each start makes a new admin secret and writes it, with the bound
/// address, to the site's [`ADMIN_RUNTIME_FILE`](crate::ADMIN_RUNTIME_FILE)
/// (removed when the service stops), so that programs of the site's owner
/// on this machine reach the admin API.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_http_service", version = 1)]
pub struct HttpService {
    /// A label for operators.
    pub label: String,
}

impl Service for HttpService {
    fn start(&self, site: Site) -> BoxFuture<'static, mantle_site::Result<RunningService>> {
        Box::pin(async move {
            let addr = site.config().http.listen;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| SiteError::Config(format!("cannot listen on {addr}: {e}")))?;
            let local = listener
                .local_addr()
                .map_err(|e| SiteError::Config(format!("listener address: {e}")))?;
            let runtime = AdminRuntime {
                http: local,
                secret: mantle_site::new_secret()?,
                pid: std::process::id(),
                started: Timestamp::now(),
            };
            let (stop, stopped) = oneshot::channel();
            let router =
                crate::router(site.clone()).layer(Extension(AdminSecret::new(&runtime.secret)));
            let limits = connection_limits(&site.config().http);
            let dir = site.dir().to_path_buf();
            runtime.write(&dir)?;
            let done = tokio::spawn(async move {
                serve(listener, router, limits, async {
                    let _ = stopped.await;
                })
                .await;
                runtime.remove(&dir);
            });
            Ok(RunningService::new(
                "http",
                Some(format!("http://{local}")),
                stop,
                done,
            ))
        })
    }
}

/// The connection limits of `[http]`.
pub fn connection_limits(http: &mantle_site::HttpConfig) -> ConnectionLimits {
    ConnectionLimits {
        max: http.max_connections,
        per_address: http.max_connections_per_address,
        deadline: Duration::from_secs(http.header_timeout_secs.max(1)),
        idle: Duration::from_secs(http.idle_timeout_secs.max(1)),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish (up to a grace period).
///
/// Every connection is held to `limits` (see [`Connections`]): a new
/// connection has `limits.deadline` to send its first byte, and the
/// header time-out (the same duration) to finish its headers; after that
/// it may stay quiet for `limits.idle`, on HTTP/1 keep-alive, HTTP/2 or an
/// upgraded WebSocket alike.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut make = router.into_make_service_with_connect_info::<SocketAddr>();
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.deadline);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Streams one connection may open at once (hyper's default is
        // 200); each costs a request in flight.
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let place = match connections.admit(peer.ip()) {
            Ok(p) => p,
            Err(refusal) => {
                tracing::debug!(%peer, %refusal, "connection refused");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = place.guard(stream, true);
        let Ok(svc) = make.call_ready(peer).await;
        let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
}

trait CallReady<T> {
    type Svc;
    async fn call_ready(&mut self, target: T) -> Result<Self::Svc, std::convert::Infallible>;
}

impl<M, T> CallReady<T> for M
where
    M: tower::Service<T, Error = std::convert::Infallible>,
{
    type Svc = M::Response;
    async fn call_ready(&mut self, target: T) -> Result<M::Response, std::convert::Infallible> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.call(target).await
    }
}
