//! Forwarding: when several nodes serve one site (a cluster), a request
//! for a user whose store another node owns is passed to that node and
//! its answer passed back, so that a client may talk to any node.
//!
//! The web front knows nothing of clusters: a layer above gives it a
//! [`Forwarding`] (through the site's [`Forwarder`] extension), which says
//! where a store or a login is served, and vouches for the requests this
//! node forwards. A request is routed by its token (a routed token names
//! its store, see [`mantle_site::token_route`]) or, for a login, by its
//! username. Everything else is served here.
//!
//! A forwarded request carries [`FORWARDED_HEADER`]: the forwarding
//! node's voucher for the client it forwards for. The owner serves it as
//! that client's (login limits count the client, not the node), and never
//! forwards it again: if the store moved meanwhile, the owner answers
//! 503 and the client tries again. A voucher that does not check out is
//! refused (403).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::presented_token;
use crate::error::ApiError;

/// Where a request belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Served here (this node owns it, or no node does).
    Here,
    /// Served by the node at this base URL (`http://host:port`).
    There(String),
    /// Its node cannot be reached now (starting, down, or the directory
    /// does not answer): the client is told to try again (503).
    Unavailable(String),
}

/// What [`Forwarding`] lookups hand back.
pub type ForwardFuture<'a> = Pin<Box<dyn Future<Output = Route> + Send + 'a>>;

/// Where requests belong, and the vouchers nodes forward with.
pub trait Forwarding: Send + Sync + 'static {
    /// Where the store named `store` (see [`mantle_site::store_name`]) is
    /// served.
    fn for_store<'a>(&'a self, store: &'a str) -> ForwardFuture<'a>;
    /// Where the account with the login `login` (as typed) is served.
    fn for_login<'a>(&'a self, login: &'a str) -> ForwardFuture<'a>;
    /// Where AMP connections for the store named `store` go
    /// ([`Route::There`] holds the owner's AMP `host:port`).
    fn amp_for_store<'a>(&'a self, store: &'a str) -> ForwardFuture<'a>;
    /// Where AMP connections logging in as `login` go.
    fn amp_for_login<'a>(&'a self, login: &'a str) -> ForwardFuture<'a>;
    /// This node's voucher for forwarding `method path` for `client`.
    fn vouch(&self, client: IpAddr, method: &str, path: &str) -> String;
    /// The client a forwarded request was forwarded for, if `voucher` is
    /// a valid one of a peer's for `method path`.
    fn verify(&self, voucher: &str, method: &str, path: &str) -> Option<IpAddr>;
}

/// The site extension holding the [`Forwarding`] in force (none: a node
/// alone serves everything itself).
#[derive(Default, Clone)]
pub struct Forwarder(pub Option<Arc<dyn Forwarding>>);

/// The header a forwarded request carries.
pub const FORWARDED_HEADER: &str = "x-mantle-forwarded";

/// The client requests are passed on with: plain HTTP/1.1 between nodes,
/// connections kept alive and reused.
type NodeClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// How long the owner may take to begin its answer to a forwarded request.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The middleware's state.
#[derive(Clone)]
pub(crate) struct ForwardState {
    pub(crate) forwarding: Arc<dyn Forwarding>,
    pub(crate) client: NodeClient,
    pub(crate) max_body: usize,
}

impl ForwardState {
    pub(crate) fn new(forwarding: Arc<dyn Forwarding>, max_body: usize) -> Self {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .build(connector);
        Self {
            forwarding,
            client,
            max_body,
        }
    }
}

/// Whether a request logs in (its body names the login).
fn is_login(req: &Request) -> bool {
    req.method() == Method::POST && matches!(req.uri().path(), "/api/login" | "/login")
}

/// The login a login request's body names (JSON or a form).
fn login_of(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get("username")?.as_str().map(String::from);
    }
    form_urlencoded_value(body, "username")
}

/// The value of `key` in a form body.
fn form_urlencoded_value(body: &[u8], key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Headers that belong to one connection, not passed on (`Host` too: the
/// client sets the owner's). `Content-Length` goes on: bodies are passed
/// on as they are.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The middleware: serves a peer's forwarded request as its client's,
/// forwards a request whose user another node serves, serves the rest.
pub(crate) async fn forward(
    State(state): State<ForwardState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    if let Some(voucher) = req.headers().get(FORWARDED_HEADER) {
        let client = voucher
            .to_str()
            .ok()
            .and_then(|v| state.forwarding.verify(v, req.method().as_str(), &path));
        let Some(client) = client else {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "a forwarded request whose voucher does not check out",
            )
            .into_response();
        };
        // Routed here by a node that thought this one served it: if it
        // is served elsewhere now (it just moved), the client tries again
        // (the forwarding node soon learns too).
        if let Some(store) = presented_token(req.headers()).and_then(mantle_site::token_route)
            && state.forwarding.for_store(&store).await != Route::Here
        {
            let mut a = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this user's data just moved to another node; try again",
            );
            a.retry_after = Some(1);
            return a.into_response();
        }
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(client, 0)));
        return next.run(req).await;
    }
    let route = presented_token(req.headers()).and_then(mantle_site::token_route);
    let target = if let Some(store) = route {
        state.forwarding.for_store(&store).await
    } else if is_login(&req) {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(body, state.max_body).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let target = match login_of(&parts.headers, &bytes) {
            Some(login) => state.forwarding.for_login(&login).await,
            None => Route::Here,
        };
        req = Request::from_parts(parts, Body::from(bytes));
        target
    } else {
        Route::Here
    };
    match target {
        Route::Here => next.run(req).await,
        Route::There(base) if req.headers().contains_key(header::UPGRADE) => {
            pass_upgrade(&state, &base, &path, req).await
        }
        Route::There(base) => pass_on(&state, &base, &path, req).await,
        Route::Unavailable(why) => {
            tracing::debug!(%why, "cannot route a request now");
            let mut a = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node serving this user cannot be reached now; try again",
            );
            a.retry_after = Some(1);
            a.into_response()
        }
    }
}

/// The client a request came from (for the voucher).
fn client_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip())
}

/// Largest response head the owner may answer an upgrade with.
const MAX_UPGRADE_HEAD: usize = 16 * 1024;

/// Passes an upgrade (a WebSocket) on to the node at `base`: the request
/// is sent there with a voucher, and once that node has switched
/// protocols, the client's upgraded connection and the one to the owner
/// are joined, byte for byte, until either side closes.
async fn pass_upgrade(state: &ForwardState, base: &str, path: &str, mut req: Request) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refused = |why: String| {
        tracing::warn!(%base, %why, "cannot pass an upgrade on");
        let mut a = ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the node serving this user did not take the connection; try again",
        );
        a.retry_after = Some(1);
        a.into_response()
    };
    let Some(authority) = base.strip_prefix("http://") else {
        return refused(format!(
            "{base}: only plain HTTP between nodes carries upgrades"
        ));
    };
    let voucher = state
        .forwarding
        .vouch(client_of(&req), req.method().as_str(), path);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let connect = tokio::net::TcpStream::connect(authority);
    let mut owner = match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refused(e.to_string()),
        Err(_) => return refused("no connection in 2 s".into()),
    };
    let mut head = format!("{} {path} HTTP/1.1\r\n", req.method());
    for (name, value) in req.headers() {
        if name.as_str() != FORWARDED_HEADER
            && let Ok(value) = value.to_str()
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("{FORWARDED_HEADER}: {voucher}\r\n\r\n"));
    if let Err(e) = owner.write_all(head.as_bytes()).await {
        return refused(e.to_string());
    }
    // The owner's answer, up to the end of its head.
    let mut got = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if got.len() > MAX_UPGRADE_HEAD {
            return refused("an answer head too long".into());
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(std::time::Duration::from_secs(10), owner.read(&mut chunk)).await
        {
            Ok(Ok(0)) => return refused("the owner closed the connection".into()),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return refused(e.to_string()),
            Err(_) => return refused("no answer in 10 s".into()),
        }
    };
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut fields);
    if !matches!(parsed.parse(&got[..end]), Ok(httparse::Status::Complete(_))) {
        return refused("an answer that does not parse".into());
    }
    let status =
        StatusCode::from_u16(parsed.code.unwrap_or(502)).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    for h in parsed.headers.iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            axum::http::HeaderValue::from_bytes(h.value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let early = got[end..].to_vec();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut owner).await;
    });
    response
}

/// A request's whole body, up to `max` bytes (past it, 413).
async fn read_body(body: Body, max: usize) -> Result<axum::body::Bytes, Response> {
    to_bytes(body, max).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
    })
}

/// Sends `req` to the node at `base` and its answer back.
async fn pass_on(state: &ForwardState, base: &str, path: &str, req: Request) -> Response {
    let client = client_of(&req);
    let (mut parts, body) = req.into_parts();
    let voucher = state.forwarding.vouch(client, parts.method.as_str(), path);
    // The request itself goes on, its headers moved and its body streamed
    // (the owner holds it to its own limits and time-outs).
    let uri = match format!("{base}{path}").parse() {
        Ok(u) => u,
        Err(e) => return unreachable_owner(base, &format!("{base}{path}: {e}")),
    };
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    match axum::http::HeaderValue::from_str(&voucher) {
        Ok(v) => {
            parts.headers.insert(FORWARDED_HEADER, v);
        }
        Err(e) => return unreachable_owner(base, &e.to_string()),
    }
    let sent = state.client.request(Request::from_parts(parts, body));
    let answer = match tokio::time::timeout(ANSWER_WAIT, sent).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return unreachable_owner(base, &e.to_string()),
        Err(_) => return unreachable_owner(base, "no answer in time"),
    };
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// Drops the headers that belong to one connection.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers.keys().filter(|n| hop_by_hop(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// 502 for a node that did not take a forwarded request.
fn unreachable_owner(base: &str, why: &str) -> Response {
    tracing::warn!(%base, %why, "forwarding failed");
    let mut a = ApiError::new(
        StatusCode::BAD_GATEWAY,
        "the node serving this user did not answer; try again",
    );
    a.retry_after = Some(1);
    a.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_read_from_json_and_forms() {
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            login_of(&json, br#"{"username":"alice@x.org","password":"p"}"#).as_deref(),
            Some("alice@x.org")
        );
        assert_eq!(login_of(&json, b"not json"), None);
        let form = HeaderMap::new();
        assert_eq!(
            login_of(&form, b"password=p&username=bob%40x.org&csrf=1").as_deref(),
            Some("bob@x.org")
        );
        assert_eq!(login_of(&form, b"password=p"), None);
    }
}
