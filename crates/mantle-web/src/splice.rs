//! A cluster node's connections passed on whole: when a connection's
//! first request is for a user another node serves (its token says so),
//! the node joins it to a new connection to that node, byte for byte,
//! instead of forwarding each request (see `forward.rs`). A client keeps
//! talking to the user's own node at the cost of a copy.
//!
//! The joined connection opens with one line, [`PREAMBLE`] and a voucher
//! for the client (method `SPLICE`, path `/`; see
//! [`Forwarding::vouch`]), then the client's bytes. The receiving node
//! serves it as the client's own connection (its address is the
//! voucher's, and it counts toward that address's connection cap); a
//! preamble whose voucher does not check out closes the connection. A later request on it for a user of a third node is
//! forwarded by the receiving node as usual.
//!
//! The first request is read (its head, at most [`MAX_HEAD`] bytes,
//! under the listener's header time-out) before anything else happens;
//! a request routed by its body (a login), one already forwarded, an
//! HTTP/2 connection, or one whose owner cannot be reached is served
//! here, with the bytes read handed to the HTTP server first.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::connections::Guarded;
use crate::forward::{FORWARDED_HEADER, Forwarding, Route};

/// The line a node opens a joined connection with, before its voucher.
pub const PREAMBLE: &[u8] = b"MANTLE-SPLICED ";
/// The longest first request head read before deciding.
pub const MAX_HEAD: usize = 64 * 1024;
/// What a splice voucher names as its method and path.
const VOUCHER_METHOD: &str = "SPLICE";
const VOUCHER_PATH: &str = "/";
/// How long connecting to the owner may take.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// What became of a connection's first request.
pub(crate) enum First<IO> {
    /// Serve it here: the connection, with the bytes read of it first,
    /// for this client.
    Serve(Prefixed<IO>, SocketAddr),
    /// Passed on whole to another node, or closed.
    Done,
}

/// Reads the first request of `io` (from `peer`) and serves it here or
/// passes the connection on (see the module docs).
pub(crate) async fn first_request<IO>(
    forwarding: &Arc<dyn Forwarding>,
    mut io: Guarded<IO>,
    peer: SocketAddr,
    wait: Duration,
) -> First<Guarded<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    // A head not read within the listener's header time-out is closed,
    // as the HTTP server would (it is not given a second time-out).
    match tokio::time::timeout(wait, read_head(&mut io, &mut buf)).await {
        Err(_) => return First::Done,
        Ok(Err(_)) if buf.is_empty() => return First::Done,
        Ok(_) => {}
    }
    // A node's joined connection: served here, as its client's.
    if buf.starts_with(PREAMBLE) {
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            return First::Done;
        };
        let client = std::str::from_utf8(&buf[PREAMBLE.len()..end])
            .ok()
            .and_then(|v| forwarding.verify(v, VOUCHER_METHOD, VOUCHER_PATH));
        let Some(client) = client else {
            tracing::warn!(%peer, "closing a joined connection: its voucher does not check out");
            return First::Done;
        };
        // The client's connection: counted as the client's.
        if let Err(refusal) = io.recount().count_as(client) {
            tracing::debug!(%peer, %client, %refusal, "closing a joined connection");
            return First::Done;
        }
        buf.drain(..end + 2);
        return First::Serve(Prefixed::new(buf, io), SocketAddr::new(client, 0));
    }
    let serve_here = |buf, io| First::Serve(Prefixed::new(buf, io), peer);
    let Some(store) = route_of(&buf) else {
        return serve_here(buf, io);
    };
    let base = match forwarding.for_store(&store).await {
        Route::There(base) => base,
        Route::Here | Route::Unavailable(_) => return serve_here(buf, io),
    };
    let Some(authority) = base.strip_prefix("http://") else {
        return serve_here(buf, io);
    };
    let owner =
        match tokio::time::timeout(CONNECT_WAIT, tokio::net::TcpStream::connect(authority)).await {
            Ok(Ok(s)) => s,
            // Served here: the request is forwarded, or answered 502.
            _ => return serve_here(buf, io),
        };
    let _ = owner.set_nodelay(true);
    let voucher = forwarding.vouch(peer.ip(), VOUCHER_METHOD, VOUCHER_PATH);
    join(io, owner, voucher, buf).await;
    First::Done
}

/// Sends the preamble and what was read to `owner`, then copies both ways
/// until either side closes.
async fn join<IO>(mut io: IO, mut owner: tokio::net::TcpStream, voucher: String, read: Vec<u8>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut opening = Vec::with_capacity(PREAMBLE.len() + voucher.len() + 2 + read.len());
    opening.extend_from_slice(PREAMBLE);
    opening.extend_from_slice(voucher.as_bytes());
    opening.extend_from_slice(b"\r\n");
    opening.extend_from_slice(&read);
    if owner.write_all(&opening).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut io, &mut owner).await;
}

/// Reads until `buf` holds a whole request head (or a preamble line, or
/// HTTP/2's preface, or [`MAX_HEAD`] bytes).
async fn read_head<IO: AsyncRead + Unpin>(io: &mut IO, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let enough = buf.len() >= MAX_HEAD
            || (buf.starts_with(PREAMBLE) && buf.windows(2).any(|w| w == b"\r\n"))
            || buf.starts_with(b"PRI ")
            || buf.windows(4).any(|w| w == b"\r\n\r\n");
        if enough {
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The store a request head's token names, if it is a request a node
/// may pass on: a complete HTTP/1 head, not already forwarded.
fn route_of(head: &[u8]) -> Option<String> {
    let mut fields = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut fields);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == FORWARDED_HEADER {
            return None;
        }
        if name == header::AUTHORIZATION || name == header::COOKIE {
            headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
        }
    }
    crate::auth::presented_token(&headers).and_then(mantle_site::token_route)
}

/// A connection with bytes already read from it served first.
pub(crate) struct Prefixed<IO> {
    read: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO> Prefixed<IO> {
    fn new(read: Vec<u8>, io: IO) -> Self {
        Self { read, at: 0, io }
    }

    /// A connection nothing was read from yet.
    pub(crate) fn plain(io: IO) -> Self {
        Self::new(Vec::new(), io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_routed_by_its_token_unless_already_forwarded() {
        let token = format!("users~alice_x.org.{}", "a".repeat(43));
        let head =
            format!("GET /api/me HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer {token}\r\n\r\n");
        assert_eq!(
            route_of(head.as_bytes()).as_deref(),
            Some("users/alice_x.org")
        );
        let forwarded = format!(
            "GET /api/me HTTP/1.1\r\nAuthorization: Bearer {token}\r\n{FORWARDED_HEADER}: v\r\n\r\n"
        );
        assert_eq!(route_of(forwarded.as_bytes()), None);
        assert_eq!(route_of(b"GET / HTTP/1.1\r\nHost: n\r\n\r\n"), None);
        assert_eq!(route_of(b"GET / HTTP/1.1\r\nHost: n\r\n"), None);
        assert_eq!(route_of(b"\x00\x01garbage\r\n\r\n"), None);
    }

    proptest::proptest! {
        /// Whatever a stranger sends first, deciding where it goes never
        /// panics, and a head that routes names a store its token names.
        #[test]
        fn any_first_bytes_are_routed_or_served_here(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            token in "[a-z~_.@]{0,40}",
        ) {
            let _ = route_of(&junk);
            let head = format!("GET / HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
            if let Some(store) = route_of(head.as_bytes()) {
                proptest::prop_assert_eq!(Some(store), mantle_site::token_route(&token));
            }
        }
    }

    /// Routing that serves everything here; vouchers are "ok" for a
    /// client at 10.0.0.1.
    struct Alone;

    impl Forwarding for Alone {
        fn for_store<'a>(&'a self, _: &'a str) -> crate::ForwardFuture<'a> {
            Box::pin(async { Route::Here })
        }
        fn for_login<'a>(&'a self, _: &'a str) -> crate::ForwardFuture<'a> {
            Box::pin(async { Route::Here })
        }
        fn amp_for_store<'a>(&'a self, _: &'a str) -> crate::ForwardFuture<'a> {
            Box::pin(async { Route::Here })
        }
        fn amp_for_login<'a>(&'a self, _: &'a str) -> crate::ForwardFuture<'a> {
            Box::pin(async { Route::Here })
        }
        fn vouch(&self, _: std::net::IpAddr, _: &str, _: &str) -> String {
            "ok".into()
        }
        fn verify(&self, voucher: &str, _: &str, _: &str) -> Option<std::net::IpAddr> {
            (voucher == "ok").then(|| std::net::IpAddr::from([10, 0, 0, 1]))
        }
    }

    /// `first_request` on a connection whose other end is returned.
    async fn first(
        wait: Duration,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<Option<(Vec<u8>, SocketAddr)>>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let limits = crate::connections::ConnectionLimits {
            max: 10,
            per_address: 10,
            deadline: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let peer = SocketAddr::from(([192, 0, 2, 7], 1234));
        let place = crate::connections::Connections::new(limits)
            .admit(peer.ip())
            .unwrap();
        let io = place.guard(ours, true);
        let forwarding: Arc<dyn Forwarding> = Arc::new(Alone);
        let task = tokio::spawn(async move {
            match first_request(&forwarding, io, peer, wait).await {
                First::Serve(p, client) => Some((p.read, client)),
                First::Done => None,
            }
        });
        (theirs, task)
    }

    #[tokio::test]
    async fn a_first_request_that_never_ends_is_closed_at_the_deadline() {
        // Part of a head, then nothing: closed at the deadline.
        let (mut theirs, task) = first(Duration::from_millis(200)).await;
        theirs
            .write_all(b"GET / HTTP/1.1\r\nHost: n")
            .await
            .unwrap();
        assert!(task.await.unwrap().is_none());
        // Nothing at all: closed too.
        let (_theirs, task) = first(Duration::from_millis(100)).await;
        assert!(task.await.unwrap().is_none());
        // A head cut short by the client's end: handed to the HTTP server
        // (which answers it).
        let (mut theirs, task) = first(Duration::from_secs(5)).await;
        theirs
            .write_all(b"GET / HTTP/1.1\r\nHost: n")
            .await
            .unwrap();
        theirs.shutdown().await.unwrap();
        let (read, _) = task.await.unwrap().expect("served here");
        assert_eq!(read, b"GET / HTTP/1.1\r\nHost: n");
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_read_no_further() {
        let (mut theirs, task) = first(Duration::from_secs(5)).await;
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(2 * MAX_HEAD));
        theirs.write_all(long.as_bytes()).await.unwrap();
        let (read, client) = task.await.unwrap().expect("served here");
        assert!(
            read.len() >= MAX_HEAD && read.len() < MAX_HEAD + 4096,
            "{}",
            read.len()
        );
        assert_eq!(client.ip(), std::net::IpAddr::from([192, 0, 2, 7]));
    }

    #[tokio::test]
    async fn a_joined_connection_is_its_voucher_clients_and_a_forged_one_is_closed() {
        let (mut theirs, task) = first(Duration::from_secs(5)).await;
        theirs
            .write_all(b"MANTLE-SPLICED ok\r\nGET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (read, client) = task.await.unwrap().expect("served here");
        assert_eq!(read, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(client.ip(), std::net::IpAddr::from([10, 0, 0, 1]));
        let (mut theirs, task) = first(Duration::from_secs(5)).await;
        theirs
            .write_all(b"MANTLE-SPLICED forged\r\nGET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert!(task.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bytes_read_come_first_then_the_connection() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(b"read ".to_vec(), b);
        a.write_all(b"then more").await.unwrap();
        drop(a);
        let mut all = String::new();
        p.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "read then more");
    }
}
