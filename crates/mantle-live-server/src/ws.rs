//! The JSON transport: the same commands over WebSocket at `/live`, and the
//! browser script at `/live.js`.
//!
//! A browser that has logged in over HTTP is logged in on the WebSocket
//! too: the upgrade request's token (the `Authorization` header, or the
//! login cookie when the page is same-origin) is checked before
//! upgrading; a bad one gets the socket closed at once with code 4401
//! ([`CLOSE_UNAUTHORIZED`]). Without a token the
//! connection starts logged out and may send `Login` or `Authenticate`.
//! A socket that has not logged in within `live.login_timeout_secs` is
//! closed with code 4408 ([`CLOSE_LOGIN_TIMEOUT`]).
//! A token in the URL (`?token=`) is refused with 400: URLs end up in logs,
//! proxies and browser history; a client that has no cookie sends
//! `Authenticate` as its first message instead.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use mantle_live::json::{JsonReply, JsonRequest, MAX_REQUEST_BYTES};
use mantle_site::{Avatar, Site, SiteError};
use mantle_web::AppState;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::session::{Out, RawArgs, Request, Requests};

/// The browser client (no build step: load it with a `<script>` tag).
pub const LIVE_JS: &str = include_str!("../static/live.js");

/// The routes: `GET /live` (WebSocket) and `GET /live.js`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/live", get(upgrade))
        .route("/live.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        LIVE_JS,
    )
}

/// The login cookie counts only when the page opening the socket is ours:
/// browsers send cookies on cross-site WebSocket upgrades, so another
/// site's page could otherwise act as the user.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            Some(origin_host) == host
        }
    }
}

fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    mantle_web::cookie(headers, mantle_web::TOKEN_COOKIE).filter(|_| same_origin(headers))
}

async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws
        .max_message_size(MAX_REQUEST_BYTES)
        .max_frame_size(MAX_REQUEST_BYTES);
    if query.contains_key("token") {
        return (
            StatusCode::BAD_REQUEST,
            "tokens are not accepted in URLs (they end up in logs); send the login cookie, an Authorization header, or Authenticate as the first message",
        )
            .into_response();
    }
    let user = match token(&headers) {
        None => None,
        Some(t) => match state.site.auth().authenticate(t).await {
            Ok(a) => Some(a),
            Err(SiteError::BadToken) => {
                // A browser cannot read the status of a refused upgrade,
                // only a close code: accept, then close with 4401 so a page
                // can tell "logged out" from "server down".
                return ws.on_upgrade(|mut socket| async move {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: CLOSE_UNAUTHORIZED,
                            reason: "bad or expired token".into(),
                        })))
                        .await;
                });
            }
            Err(e) => {
                tracing::warn!(%e, "live upgrade: authentication failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "cannot authenticate").into_response();
            }
        },
    };
    let site = state.site.clone();
    // A suspect client's session is served in turn (see `SuspectGate`).
    let gate = site.auth().suspects().clone();
    ws.on_upgrade(move |socket| gate.serve(Some(peer.ip()), session(site, peer.ip(), user, socket)))
}

/// The close code for an upgrade that presented a bad or expired token
/// (4000-4999 are the application's; 401 as in HTTP).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// The close code for a socket that did not log in within
/// `live.login_timeout_secs` (408 as in HTTP's request time-out).
pub const CLOSE_LOGIN_TIMEOUT: u16 = 4408;

/// Why the server closes a connection (code and reason of the close frame).
type Closing = Option<(u16, &'static str)>;

async fn session(site: Site, peer: IpAddr, user: Option<Avatar>, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<Out<Value>>(1024);
    let (done_tx, done_rx) = oneshot::channel::<Closing>();
    // The web front closes connections that send nothing for
    // `http.idle_timeout_secs`; pinging a third as often makes a present
    // browser (which answers with a pong) never look idle.
    let ping_every = std::time::Duration::from_secs(
        site.section::<mantle_web::HttpConfig>()
            .idle_timeout_secs
            .max(3)
            / 3,
    );
    let writer = tokio::spawn(write_loop(sink, rx, done_rx, ping_every));
    let login_timeout_secs = site.section::<crate::LiveConfig>().login_timeout_secs;
    let mut requests = Requests::new(site, Some(peer), user, tx.clone());
    drop(tx);
    let mut closing: Closing = None;
    // Until it first logs in, a socket has `live.login_timeout_secs`, as an
    // AMP connection has: nobody unknown holds one for long.
    let login_by =
        tokio::time::Instant::now() + std::time::Duration::from_secs(login_timeout_secs.max(1));
    let mut proved = requests.conn.logged_in();
    loop {
        proved = proved || requests.conn.logged_in();
        let next = if proved {
            requests.next(&mut stream).await
        } else {
            match tokio::time::timeout_at(login_by, requests.next(&mut stream)).await {
                Ok(next) => next,
                Err(_) => {
                    closing = Some((CLOSE_LOGIN_TIMEOUT, "not logged in within the time allowed"));
                    break;
                }
            }
        };
        let Some(msg) = next else { break };
        match msg {
            Ok(Message::Text(text)) => match JsonRequest::parse(text.as_str()) {
                Ok(r) => {
                    requests
                        .submit(Request {
                            tag: r.id,
                            command: r.command,
                            handle: r.handle,
                            args: RawArgs::Json(r.args),
                        })
                        .await
                }
                Err(bad) => requests.refuse(bad.id, bad.error).await,
            },
            Ok(Message::Binary(_)) => {
                closing = Some((1003, "binary messages are not supported; send JSON text"));
                break;
            }
            Ok(Message::Close(_)) => break,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Err(e) => {
                // A malformed frame or one over the size limit: the
                // WebSocket layer has given up, and cannot send a close
                // frame any more; the connection just ends.
                tracing::debug!(%e, "closing live WebSocket");
                break;
            }
        }
    }
    requests.finish().await;
    let _ = done_tx.send(closing);
    let _ = writer.await;
}

fn encode(msg: Out<Value>) -> Option<Message> {
    let text: String = match msg {
        Out::Answer { tag, fields, .. } => serde_json::to_string(&JsonReply::Answer {
            id: tag,
            answer: fields,
        })
        .ok()?,
        Out::Error { tag, error } => serde_json::to_string(&JsonReply::Error {
            id: tag.unwrap_or(Value::Null),
            error,
        })
        .ok()?,
        Out::Push(p) => p.json().to_string(),
    };
    Some(Message::Text(text.into()))
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out<Value>>,
    mut done: oneshot::Receiver<Closing>,
    ping_every: std::time::Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closing = loop {
        tokio::select! {
            biased;
            m = rx.recv() => {
                // Every sender gone: the session is ending, and says why
                // (or drops `done`, for no reason) right after.
                let Some(m) = m else { break (&mut done).await.ok().flatten() };
                let mut next = Some(m);
                while let Some(m) = next {
                    if let Some(msg) = encode(m)
                        && sink.feed(msg).await.is_err() {
                            return;
                        }
                    next = rx.try_recv().ok();
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            c = &mut done => {
                while let Ok(m) = rx.try_recv() {
                    if let Some(msg) = encode(m) {
                        let _ = sink.feed(msg).await;
                    }
                }
                break c.ok().flatten();
            }
        }
    };
    let frame = closing.map(|(code, reason)| CloseFrame {
        code,
        reason: reason.into(),
    });
    let _ = sink.send(Message::Close(frame)).await;
    let _ = sink.close().await;
}
