//! The AMP transport: Mantle's commands over TCP, byte-compatible with
//! Twisted's `twisted.protocols.amp`.
//!
//! Each connection has a reader (this task) and a writer task joined by an
//! ordered channel. Requests run concurrently (up to
//! `live.max_in_flight`), except `Login` and `Authenticate`, which run
//! before the next box is read so that a client may pipeline its first
//! calls after them. A box that cannot be read (a key over 255 bytes, a
//! length past the end, a box over `live.max_box_bytes`) closes the
//! connection, as AMP has no way to answer it; everything readable gets an
//! answer or an error box.
//!
//! What a stranger can hold is bounded (see `mantle_web::connections`):
//! connections in all and per address (`live.max_connections`,
//! `live.max_connections_per_address`; when full, the quietest connection
//! makes room), `live.login_timeout_secs` to log in however much is sent
//! meanwhile, boxes of at most [`PRE_LOGIN_MAX_BOX`] bytes until then, and
//! `live.idle_timeout_secs` of silence after.
//!
//! With `[live] tls = true` the listener speaks TLS, with the HTTP front's
//! certificate (`[http] tls_cert`, `tls_key`); the handshake runs under
//! the login deadline.

use std::future::Future;

use mantle_amp::{AmpBox, BoxDecoder, Message, frame};
use mantle_live::builtin::HANDLE_KEY;
use mantle_live::{RemoteError, codec, codes};
use mantle_site::{RunningService, Site, SiteError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::FramedRead;

use std::time::Duration;

use mantle_web::connections::{Admitted, ConnectionLimits, Connections, DeadlineHandle, Recount};

use crate::session::{Out, RawArgs, Request, Requests};

/// The largest box a connection may send before it logs in: a `Login` is
/// a few hundred bytes; nobody unknown gets to make the server buffer a
/// megabyte.
pub const PRE_LOGIN_MAX_BOX: usize = 16 * 1024;

/// The connection limits of `[live]`.
pub fn connection_limits(live: &crate::LiveConfig) -> ConnectionLimits {
    ConnectionLimits {
        max: live.max_connections,
        per_address: live.max_connections_per_address,
        deadline: Duration::from_secs(live.login_timeout_secs.max(1)),
        idle: Duration::from_secs(live.idle_timeout_secs.max(1)),
    }
}

/// Accepts AMP connections on `listener` for `site` until `shutdown`
/// completes; open connections are then closed. With `tls`, each
/// connection is a TLS session.
pub async fn serve(
    site: Site,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    let limits = Connections::new(connection_limits(site.section::<crate::LiveConfig>()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        tracing::warn!(%e, "AMP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let place = match limits.admit(peer.ip()) {
                    Ok(p) => p,
                    Err(refusal) => {
                        tracing::debug!(%peer, %refusal, "AMP connection refused");
                        continue;
                    }
                };
                tracing::debug!(%peer, "AMP connection");
                // A suspect client's connection is served in turn (see
                // `SuspectGate`).
                let gate = site.auth().suspects();
                let peer = Some(peer.ip());
                match &tls {
                    None => connections.spawn(gate.serve(peer, connection(site.clone(), stream, place))),
                    Some(tls) => connections.spawn(gate.serve(
                        peer,
                        tls_connection(site.clone(), stream, place, tls.clone()),
                    )),
                };
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves one AMP connection, admitted to its listener's table as
/// `place`, until the peer closes it, sends a box that cannot be read, or
/// runs out of time (see the module docs).
pub async fn connection(site: Site, stream: TcpStream, place: Admitted) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let (rd, wr) = stream.into_split();
    let rd = place.guard(rd, false);
    let (deadline, recount) = (rd.deadline(), rd.recount());
    session(site, peer, rd, wr, (deadline, recount)).await;
}

/// [`connection`] over TLS: the handshake first, under the connection's
/// deadline (a client that never says hello is closed by it).
pub async fn tls_connection(site: Site, stream: TcpStream, place: Admitted, tls: TlsAcceptor) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let stream = place.guard(stream, false);
    let (deadline, recount) = (stream.deadline(), stream.recount());
    let stream = match tls.accept(stream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(?peer, %e, "AMP TLS handshake failed");
            return;
        }
    };
    let (rd, wr) = tokio::io::split(stream);
    session(site, peer, rd, wr, (deadline, recount)).await;
}

/// The AMP session on a connection's two halves, `deadline` ending at
/// login (`recount`: the connection counted as a forwarded client's).
async fn session<R, W>(
    site: Site,
    mut peer: Option<std::net::IpAddr>,
    rd: R,
    wr: W,
    (deadline, recount): (DeadlineHandle, Recount),
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = site.section::<crate::LiveConfig>().clone();
    let mut boxes = FramedRead::new(
        rd,
        BoxDecoder::with_max_box_size(PRE_LOGIN_MAX_BOX.min(config.max_box_bytes)),
    );
    // In a cluster the first box decides: a peer passing its client's
    // connection on says so first; a login for a user another node
    // serves is passed on to that node.
    let mut first = None;
    if let Some(forwarding) = site
        .extension::<mantle_web::Forwarder>()
        .and_then(|f| f.0.clone())
    {
        use futures::StreamExt;
        let Some(Ok(b)) = boxes.next().await else {
            return;
        };
        if b.get(frame::COMMAND) == Some(NODE_COMMAND) {
            // Another node's own connection (messages between stores):
            // the cluster's layer serves it, checking its voucher first.
            if let Some(links) = site.extension::<NodeLinkServer>().and_then(|l| l.0.clone()) {
                deadline.proved(Duration::from_secs(config.idle_timeout_secs.max(1)));
                let io = NodeLinkIo {
                    buffered: boxes.read_buffer().clone(),
                    rd: Box::new(boxes.into_inner()),
                    wr: Box::new(wr),
                };
                links.serve(site.clone(), b, io).await;
            }
            return;
        }
        if b.get(frame::COMMAND) == Some(FORWARDED_COMMAND) {
            let client = b
                .get(VOUCHER_KEY)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| forwarding.verify(v, "AMP", AMP_VOUCHER_PATH));
            match client {
                // The client's connection: counted as the client's.
                Some(c) => match recount.count_as(c) {
                    Ok(()) => peer = Some(c),
                    Err(refusal) => {
                        tracing::debug!(client = %c, %refusal, "closing a passed-on AMP connection");
                        return;
                    }
                },
                None => {
                    tracing::debug!(
                        ?peer,
                        "closing AMP connection: a voucher that does not check out"
                    );
                    return;
                }
            }
        } else {
            match passed_on(&*forwarding, &b).await {
                Some(owner) => {
                    let tls = site.extension::<NodeTls>().and_then(|t| t.0.clone());
                    pass_on(&*forwarding, tls.as_deref(), peer, owner, b, boxes, wr).await;
                    return;
                }
                None => first = Some(b),
            }
        }
    }
    let mut proved = false;
    let (tx, rx) = mpsc::channel::<Out<Vec<u8>>>(1024);
    let (done_tx, done_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(wr, rx, done_rx));
    let mut requests = Requests::new(site, peer, None, tx.clone());
    loop {
        let next = match first.take() {
            Some(b) => Ok(b),
            None => match requests.next(&mut boxes).await {
                Some(next) => next,
                None => break,
            },
        };
        let b = match next {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%e, "closing AMP connection: unreadable box");
                break;
            }
        };
        match request(b, &requests).await {
            None => break,
            Some(None) => {}
            Some(Some(req)) => requests.submit(req).await,
        }
        // Logging in (which `submit` finishes before returning) is what
        // lifts the connection's deadline and its small box limit.
        if !proved && requests.conn.logged_in() {
            proved = true;
            deadline.proved(Duration::from_secs(config.idle_timeout_secs.max(1)));
            boxes.decoder_mut().set_max_box_size(config.max_box_bytes);
        }
    }
    // Let the calls in flight answer, then stop the writer once it has
    // sent everything queued.
    drop(tx);
    requests.finish().await;
    let _ = done_tx.send(());
    let _ = writer.await;
}

/// The command a node sends first on a connection of its own to another
/// node (see [`NodeLinks`]).
pub const NODE_COMMAND: &[u8] = b"MantleNode";

/// A connection another node of a cluster opened to this node's AMP
/// listener for its own requests, once its first box said so.
pub struct NodeLinkIo {
    /// Bytes read after the first box, not yet decoded.
    pub buffered: bytes::BytesMut,
    /// The rest of what the node sends.
    pub rd: Box<dyn AsyncRead + Send + Unpin>,
    /// Where answers go.
    pub wr: Box<dyn AsyncWrite + Send + Unpin>,
}

/// Serves connections other nodes open with a [`NODE_COMMAND`] box: the
/// cluster's layer, as a site extension ([`NodeLinkServer`]). Without one,
/// such a connection is closed.
pub trait NodeLinks: Send + Sync + 'static {
    /// Serves the connection whose first box was `hello` until it closes
    /// (refusing it at once if `hello` does not check out).
    fn serve(
        &self,
        site: Site,
        hello: AmpBox,
        io: NodeLinkIo,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The site extension holding the [`NodeLinks`] in force.
#[derive(Default, Clone)]
pub struct NodeLinkServer(pub Option<std::sync::Arc<dyn NodeLinks>>);

/// The site extension holding what a cluster node trusts when it passes
/// an AMP connection on to another node's listener over TLS (none: such
/// connections are closed).
#[derive(Default, Clone)]
pub struct NodeTls(pub Option<std::sync::Arc<mantle_client::ClientTls>>);

/// The command a node sends first on a connection it passes on, with its
/// voucher for the client (see `mantle_web::Forwarding`).
pub const FORWARDED_COMMAND: &[u8] = b"MantleForwarded";
/// The voucher's key in that box.
const VOUCHER_KEY: &str = "voucher";
/// What a voucher for an AMP connection names as its "path".
const AMP_VOUCHER_PATH: &str = "/amp";

/// The AMP listener (`host:port`) of the node serving the user a first
/// box logs in as, if that is another node.
async fn passed_on(forwarding: &dyn mantle_web::Forwarding, b: &AmpBox) -> Option<String> {
    let text = |key: &str| b.get(key).and_then(|v| std::str::from_utf8(v).ok());
    let route = match b.get(frame::COMMAND)? {
        b"Login" => forwarding.amp_for_login(text("username")?).await,
        b"Authenticate" => {
            let store = mantle_site::token_route(text("token")?)?;
            forwarding.amp_for_store(&store).await
        }
        _ => return None,
    };
    match route {
        mantle_web::Route::There(addr) => Some(addr),
        _ => None,
    }
}

/// Passes the connection on to the node at `owner` (`host:port`, or
/// `amps://host:port` over TLS with `tls`): this node's voucher for the
/// client first, then the first box and whatever followed it, then both
/// ways byte for byte until either side closes. If the owner cannot be
/// reached, the connection is closed (the client connects again).
async fn pass_on<R, W>(
    forwarding: &dyn mantle_web::Forwarding,
    tls: Option<&mantle_client::ClientTls>,
    peer: Option<std::net::IpAddr>,
    owner: String,
    first: AmpBox,
    boxes: FramedRead<R, BoxDecoder>,
    wr: W,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client = peer.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let voucher = forwarding.vouch(client, "AMP", AMP_VOUCHER_PATH);
    let hello = AmpBox::new()
        .with(frame::COMMAND, FORWARDED_COMMAND)
        .with(VOUCHER_KEY, voucher.into_bytes());
    let mut opening = Vec::new();
    let encoded = mantle_amp::encode_into(&hello, &mut opening)
        .and_then(|()| mantle_amp::encode_into(&first, &mut opening));
    if encoded.is_err() {
        return;
    }
    opening.extend_from_slice(boxes.read_buffer());
    let (addr, over_tls) = match owner.strip_prefix("amps://") {
        Some(addr) => (addr, true),
        None => (owner.as_str(), false),
    };
    let connect = TcpStream::connect(addr);
    let to_owner = match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(s)) => s,
        _ => {
            tracing::warn!(%owner, "cannot pass an AMP connection on: no connection");
            return;
        }
    };
    let _ = to_owner.set_nodelay(true);
    let rd = boxes.into_inner();
    if !over_tls {
        return join_owner(to_owner, &opening, rd, wr).await;
    }
    let Some(tls) = tls else {
        tracing::warn!(%owner, "cannot pass an AMP connection on over TLS: no certificates to trust");
        return;
    };
    match tokio::time::timeout(Duration::from_secs(5), tls.connect(addr, to_owner)).await {
        Ok(Ok(s)) => join_owner(s, &opening, rd, wr).await,
        Ok(Err(e)) => tracing::warn!(%owner, error = %e, "cannot pass an AMP connection on: TLS"),
        Err(_) => tracing::warn!(%owner, "cannot pass an AMP connection on: no TLS handshake"),
    }
}

/// Sends `opening` to the owner, then copies both ways until either side
/// closes.
async fn join_owner<S, R, W>(to_owner: S, opening: &[u8], mut rd: R, mut wr: W)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut owner_rd, mut owner_wr) = tokio::io::split(to_owner);
    if owner_wr.write_all(opening).await.is_err() {
        return;
    }
    let up = async {
        let _ = tokio::io::copy(&mut rd, &mut owner_wr).await;
        let _ = owner_wr.shutdown().await;
    };
    let down = tokio::io::copy(&mut owner_rd, &mut wr);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    let _ = wr.shutdown().await;
}

/// Turns a box into a request. `None`: close the connection;
/// `Some(None)`: nothing to run (answered already, or not a request).
async fn request(b: AmpBox, requests: &Requests<Vec<u8>>) -> Option<Option<Request<Vec<u8>>>> {
    let ask = b.get(frame::ASK).map(<[u8]>::to_vec);
    match Message::classify(b) {
        Some(Message::Request {
            command,
            tag,
            mut args,
        }) => {
            let Ok(command) = String::from_utf8(command) else {
                if let Some(tag) = tag {
                    let e = RemoteError::new(codes::UNHANDLED, "command name is not UTF-8");
                    requests.refuse(Some(tag), e).await;
                }
                return Some(None);
            };
            let handle = match args.remove(HANDLE_KEY) {
                None => None,
                Some(h) => match std::str::from_utf8(&h).ok().and_then(|h| h.parse().ok()) {
                    Some(h) => Some(h),
                    None => {
                        if let Some(tag) = tag {
                            let e =
                                RemoteError::new(codes::BAD_ARGUMENTS, "_handle is not an integer");
                            requests.refuse(Some(tag), e).await;
                        }
                        return Some(None);
                    }
                },
            };
            Some(Some(Request {
                tag,
                command,
                handle,
                args: RawArgs::Amp(args),
            }))
        }
        // This server asks nothing of clients, so answers are stray.
        Some(Message::Answer { .. } | Message::Error { .. }) => Some(None),
        None => match ask {
            Some(tag) => {
                let e = RemoteError::new(codes::BAD_REQUEST, "box has _ask but no _command");
                requests.refuse(Some(tag), e).await;
                Some(None)
            }
            // Twisted drops such a connection too (`NoEmptyBoxes`).
            None => None,
        },
    }
}

/// The AMP bytes of one outgoing message; `None` if it has none.
fn encode(msg: Out<Vec<u8>>) -> Option<Vec<u8>> {
    let b = match msg {
        Out::Answer {
            tag,
            fields,
            schema,
        } => match codec::to_amp(&fields, schema) {
            Ok(values) => frame::answer(&tag, values),
            Err(e) => error_box(&tag, &RemoteError::new(codes::UNKNOWN, e.to_string())),
        },
        Out::Error {
            tag: Some(tag),
            error,
        } => error_box(&tag, &error),
        Out::Error { tag: None, .. } => return None,
        Out::Push(p) => return p.amp().map(|b| b.to_vec()),
    };
    match mantle_amp::encode(&b) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let tag = b
                .get(frame::ANSWER)
                .or_else(|| b.get(frame::ERROR))
                .unwrap_or_default();
            let error = RemoteError::new(codes::UNKNOWN, format!("answer cannot be sent: {e}"));
            mantle_amp::encode(&error_box(tag, &error)).ok()
        }
    }
}

/// An error box; a typed error's details ride along as JSON under
/// `details` (Twisted ignores keys it does not expect).
fn error_box(tag: &[u8], error: &RemoteError) -> AmpBox {
    let mut b = frame::error(tag, error.code.as_bytes(), &error.description);
    if let Some(details) = &error.details
        && let Ok(text) = serde_json::to_vec(details)
    {
        b.insert("details", text);
    }
    b
}

async fn write_loop(
    wr: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Out<Vec<u8>>>,
    mut done: oneshot::Receiver<()>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    let mut finishing = false;
    loop {
        let first = if finishing {
            match rx.try_recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = &mut done => {
                    finishing = true;
                    continue;
                }
            }
        };
        // Write what is queued, then flush once: many answers per syscall
        // when many calls are in flight.
        let mut next = Some(first);
        while let Some(m) = next {
            if let Some(bytes) = encode(m)
                && w.write_all(&bytes).await.is_err()
            {
                return;
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Starts the AMP listener on the site's `live.amp` address, if one is
/// configured; stop it with [`RunningService::stop`].
pub async fn start(site: &Site) -> mantle_site::Result<Option<RunningService>> {
    match site.section::<crate::LiveConfig>().amp {
        Some(addr) => start_on(site, addr).await.map(Some),
        None => Ok(None),
    }
}

/// Starts an AMP listener for `site` on `addr` (port 0: any free port;
/// the service's `address` tells which).
pub async fn start_on(
    site: &Site,
    addr: std::net::SocketAddr,
) -> mantle_site::Result<RunningService> {
    let live = site
        .extension::<crate::Live>()
        .ok_or_else(|| SiteError::NotInstalled("mantle_live_server::install"))?;
    let (settings, http) = (
        site.section::<crate::LiveConfig>(),
        site.section::<mantle_web::HttpConfig>(),
    );
    mantle_web::warn_if_descriptors_short(
        site,
        &[
            ("http.max_connections", http.max_connections),
            ("live.max_connections", settings.max_connections),
        ],
    );
    let tls = if settings.tls {
        mantle_web::tls::acceptor(http, site.dir(), &[])?
    } else {
        None
    };
    // The "Live" statistics appear with the listener.
    live.stats(site);
    let (listener, local) = mantle_web::bind(addr, "for AMP ").await?;
    // `amps://`: AMP over TLS.
    let scheme = if tls.is_some() { "amps" } else { "amp" };
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn({
        let site = site.clone();
        async move {
            let _ = serve(site, listener, tls, async {
                let _ = stopped.await;
            })
            .await;
        }
    });
    Ok(RunningService::new(
        "amp",
        Some(format!("{scheme}://{local}")),
        stop,
        done,
    ))
}
