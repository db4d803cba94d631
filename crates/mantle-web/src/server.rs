//! The HTTP service: binds the configured address and serves the router
//! with connection caps and time-outs (see `connections`), header and body
//! time-outs, and graceful shutdown; over TLS when `[http] tls_cert` is
//! set (see `tls`), with an optional plain-HTTP listener redirecting to it
//! (see `redirect`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use futures::FutureExt;
use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use mantle_site::{RunningService, Service, Site, SiteError, SuspectGate};
use mantle_store::{Item, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
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
            let http = site.section::<crate::HttpConfig>();
            warn_if_descriptors_short(&site, &[("http.max_connections", http.max_connections)]);
            let tls = crate::tls::acceptor(http, site.dir(), &crate::tls::HTTP_ALPN)?;
            let (listener, local) = bind(http.listen, "").await?;
            let redirect = match http.redirect_listen {
                Some(addr) => Some(bind(addr, "for the redirect to HTTPS ").await?),
                None => None,
            };
            // The local CLI reaches the admin API in plain HTTP: over TLS,
            // on a loopback port of its own (never reachable from another
            // machine; the runtime file, readable by the site's owner only,
            // says where).
            let local_admin = match &tls {
                Some(_) => Some(
                    bind(
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        "for the local admin API ",
                    )
                    .await?,
                ),
                None => None,
            };
            let runtime = AdminRuntime {
                http: local_admin.as_ref().map_or(local, |(_, at)| *at),
                secret: mantle_site::new_secret()?,
                pid: std::process::id(),
                started: Timestamp::now(),
            };
            let (stop, stopped) = oneshot::channel();
            let stopped = stopped.map(|_| ()).shared();
            let router =
                crate::router(site.clone()).layer(Extension(AdminSecret::new(&runtime.secret)));
            let limits = connection_limits(http);
            let main = serve_with(
                listener,
                router.clone(),
                limits,
                Options {
                    tls: tls.clone(),
                    suspects: Some(site.auth().suspects().clone()),
                    forwarding: site
                        .extension::<crate::Forwarder>()
                        .and_then(|f| f.0.clone()),
                },
                stopped.clone(),
            );
            let redirect = redirect.map(|(listener, at)| {
                tracing::info!("http redirect to https listening on http://{at}");
                serve(
                    listener,
                    crate::redirect::router(local.port()),
                    limits,
                    stopped.clone(),
                )
            });
            let local_admin = local_admin.map(|(listener, at)| {
                tracing::info!("local admin API listening on http://{at}");
                serve(listener, router, limits, stopped)
            });
            let dir = site.dir().to_path_buf();
            runtime.write(&dir)?;
            let done = tokio::spawn(async move {
                let optional = |f: Option<_>| async move {
                    if let Some(f) = f {
                        f.await;
                    }
                };
                tokio::join!(main, optional(redirect), optional(local_admin));
                runtime.remove(&dir);
            });
            let scheme = if tls.is_some() { "https" } else { "http" };
            Ok(RunningService::new(
                "http",
                Some(format!("{scheme}://{local}")),
                stop,
                done,
            ))
        })
    }
}

/// Binds `addr`; returns the listener and the address bound (`what`
/// completes the error message "cannot listen {what}on {addr}").
pub async fn bind(addr: SocketAddr, what: &str) -> mantle_site::Result<(TcpListener, SocketAddr)> {
    // Tokio's listen backlog. A deeper one (4096) was measured to make a
    // new client wait behind thousands of queued attackers (real logins
    // up to 7.7 s during `mantle bench hostile`'s idle flood, 3 of 31
    // failed): worse than the kernel dropping its first SYN.
    let failed = |source| SiteError::Listen {
        what: what.to_string(),
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    Ok((listener, local))
}

/// Says so at start when the process may open fewer files than the
/// connection caps (each named by its setting) and the store cache add
/// up to: past the limit, accepts fail ("Too many open files") instead of
/// the caps holding.
pub fn warn_if_descriptors_short(site: &Site, caps: &[(&str, usize)]) {
    let wanted = caps.iter().map(|(_, n)| *n as u64).sum::<u64>()
        + 3 * site.config().stores.cache_capacity as u64
        + 256;
    let names: Vec<&str> = caps.iter().map(|(name, _)| *name).collect();
    match mantle_store::raise_open_file_limit() {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open file limit is below {} + the store cache; raise it (ulimit -n, LimitNOFILE) or lower the caps",
            names.join(" + ")
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "cannot read the open file limit"),
    }
}

/// The connection limits of `[http]`.
pub fn connection_limits(http: &crate::HttpConfig) -> ConnectionLimits {
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
    serve_with(listener, router, limits, Options::default(), shutdown).await;
}

/// [`serve`] over TLS: each connection's handshake runs under its
/// deadline (a client that connects and never says hello is closed by
/// it), then HTTP/2 or HTTP/1.1 as chosen by ALPN; the deadline ends when
/// the first request's header has come.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let options = Options {
        tls: Some(tls),
        ..Options::default()
    };
    serve_with(listener, router, limits, options, shutdown).await;
}

/// The builders of a connection's protocol: either HTTP version as the
/// client's first bytes say, or the one ALPN chose.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn for_alpn(&self, protocol: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Some(b"h2") => &self.http2,
            Some(b"http/1.1") => &self.http1,
            _ => &self.auto,
        }
    }
}

/// For a cluster node whose HTTP front speaks TLS: a plain HTTP listener
/// on `addr` (a private address) where the other nodes reach it, serving
/// the same routes as the front (see `docs/cluster.md`).
pub async fn start_node_listener(
    site: &Site,
    addr: SocketAddr,
) -> mantle_site::Result<RunningService> {
    let (listener, local) = bind(addr, "for the other nodes ").await?;
    let options = Options {
        suspects: Some(site.auth().suspects().clone()),
        forwarding: site
            .extension::<crate::Forwarder>()
            .and_then(|f| f.0.clone()),
        ..Options::default()
    };
    let limits = connection_limits(site.section::<crate::HttpConfig>());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_with(
        listener,
        crate::router(site.clone()),
        limits,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    Ok(RunningService::new(
        "http for the other nodes",
        Some(format!("http://{local}")),
        stop,
        done,
    ))
}

/// [`serve`] for a cluster node: a plain connection whose first request
/// is for a user another node serves (`forwarding` says where) is passed
/// on to that node whole.
pub async fn serve_node(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    forwarding: Arc<dyn crate::Forwarding>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let options = Options {
        forwarding: Some(forwarding),
        ..Options::default()
    };
    serve_with(listener, router, limits, options, shutdown).await;
}

/// How [`serve_with`] serves, beyond the router and limits.
#[derive(Default)]
struct Options {
    /// Serve TLS sessions.
    tls: Option<TlsAcceptor>,
    /// Run suspect clients' connections through this gate (see
    /// [`SuspectGate`]).
    suspects: Option<SuspectGate>,
    /// A cluster node's routing: plain connections whose first request is
    /// for a user of another node are passed on whole (see `splice`).
    forwarding: Option<Arc<dyn crate::Forwarding>>,
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    Options {
        tls,
        suspects,
        forwarding,
    }: Options,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let suspects = suspects.unwrap_or_default();
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
    let builders = Arc::new(Builders {
        http1: builder.clone().http1_only(),
        http2: builder.clone().http2_only(),
        auto: builder,
    });
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
        let Some(acceptor) = &tls else {
            // A cluster node reads a plain connection's first request
            // first: one for a user another node serves is passed on
            // whole (see `splice`).
            let stream = place.guard(stream, true);
            let (forwarding, mut make) = (forwarding.clone(), make.clone());
            let (builders, watcher) = (builders.clone(), graceful.watcher());
            tokio::spawn(suspects.serve(Some(peer.ip()), async move {
                let (io, client) = match &forwarding {
                    None => (crate::splice::Prefixed::plain(stream), peer),
                    Some(forwarding) => {
                        let wait = limits.deadline;
                        match crate::splice::first_request(forwarding, stream, peer, wait).await {
                            crate::splice::First::Serve(io, client) => (io, client),
                            crate::splice::First::Done => return,
                        }
                    }
                };
                let Ok(svc) = make.call_ready(client).await;
                let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
                let conn = builders
                    .auto
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }));
            continue;
        };
        let Ok(svc) = make.call_ready(peer).await;
        let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
        // The deadline holds through the handshake until a request has
        // come: bytes rustls reads for the handshake, and any request
        // bytes it reads with them, do not end it.
        let stream = place.guard(stream, false);
        let deadline = stream.deadline();
        let svc = hyper::service::service_fn(move |req| {
            deadline.proved(limits.idle);
            hyper::service::Service::call(&svc, req)
        });
        let handshake = acceptor.accept(stream);
        let (builders, watcher) = (builders.clone(), graceful.watcher());
        let gate = suspects.clone();
        tokio::spawn(gate.serve(Some(peer.ip()), async move {
            let stream = match handshake.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let builder = builders.for_alpn(stream.get_ref().1.alpn_protocol());
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_says_which_listener_and_where() {
        let (_held, at) = bind(SocketAddr::from(([127, 0, 0, 1], 0)), "")
            .await
            .unwrap();
        match bind(at, "for AMP ").await {
            Err(SiteError::Listen { what, addr, source }) => {
                assert_eq!((what.as_str(), addr), ("for AMP ", at));
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("{other:?}"),
        }
    }
}
