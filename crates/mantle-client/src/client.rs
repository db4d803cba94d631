//! The reconnecting client.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mantle_amp::AmpBox;
use mantle_live::builtin::{Authenticate, AuthenticateArgs, HANDLE_KEY, Login, LoginArgs};
use mantle_live::{Arguments, Command, NoError, codec};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::conn::{Conn, OnAnswer, OnRequest, SendError, refuse};
use crate::error::{CallError, ConnectError};
use crate::observe::{SubInner, Subscription, on_push};
use crate::tls::ClientTls;

/// How to log in after each (re)connection.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Login` with a username and password.
    Password {
        /// The user's address (`alice@example.com`) or login.
        username: String,
        /// The password.
        password: String,
    },
    /// `Authenticate` with a token from an HTTP login.
    Token(String),
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` of the AMP listener.
    pub addr: String,
    /// Logged in with after every connection, if set.
    pub credentials: Option<Credentials>,
    /// Reconnect after the connection is lost (default `true`).
    pub reconnect: bool,
    /// First wait before reconnecting; doubled after each failure.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Speak TLS (a site with `[live] tls = true`), if set.
    pub tls: Option<ClientTls>,
}

impl ClientOptions {
    /// Defaults for `addr`: reconnect, 100 ms to 5 s back-off, no login.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            credentials: None,
            reconnect: true,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            tls: None,
        }
    }

    /// Speaks TLS on every connection.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Logs in with a password after every connection.
    pub fn login(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Password {
            username: username.into(),
            password: password.into(),
        });
        self
    }
}

/// Whether the client can call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected, logged in, references and observations restored.
    Online,
    /// Not connected (calls fail at once with
    /// [`CallError::ConnectionLost`]); reconnecting if so configured.
    Offline,
}

pub(crate) struct Inner {
    options: ClientOptions,
    conn: Mutex<Option<Arc<Conn>>>,
    status: watch::Sender<Status>,
    refs: Mutex<Vec<Weak<RefInner>>>,
    pub(crate) subs: Mutex<HashMap<String, Weak<SubInner>>>,
    shutdown: Notify,
}

/// Closes the connection when the last clone of the client is dropped.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.shutdown.notify_one();
        if let Some(c) = self.0.conn.lock().take() {
            c.close();
        }
    }
}

/// A connection to a Mantle (or any AMP) server that logs in, reconnects
/// with back-off, re-obtains its references and resumes its observations
/// by itself. Cheap to clone; dropping the last clone disconnects.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mantle_client::{Client, ClientOptions};
/// use mantle_live::builtin::Whoami;
///
/// let client = Client::connect(ClientOptions::new("127.0.0.1:7001").login("alice", "secret")).await?;
/// let me = client.call::<Whoami>(Default::default()).await?;
/// println!("{}", me.username);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.options.addr)
            .field("status", &*self.inner.status.borrow())
            .finish()
    }
}

impl Client {
    /// Connects (and logs in, if credentials are set). The first
    /// connection must succeed; later ones are retried in the background.
    pub async fn connect(options: ClientOptions) -> Result<Client, ConnectError> {
        let (status, _) = watch::channel(Status::Offline);
        let inner = Arc::new(Inner {
            options,
            conn: Mutex::new(None),
            status,
            refs: Mutex::new(Vec::new()),
            subs: Mutex::new(HashMap::new()),
            shutdown: Notify::new(),
        });
        let (conn, closed) = establish(&inner).await?;
        inner.go_online(conn);
        tokio::spawn(keep_connected(inner.clone(), closed));
        Ok(Client {
            _guard: Arc::new(Guard(inner.clone())),
            inner,
        })
    }

    /// The current status, and its changes (`changed().await`).
    pub fn status(&self) -> watch::Receiver<Status> {
        self.inner.status.subscribe()
    }

    /// Calls command `C`.
    pub async fn call<C: Command>(&self, args: C::Args) -> Result<C::Answer, CallError<C::Error>> {
        let conn = self.inner.online()?;
        call_on::<C>(&conn, args, None).await
    }

    /// Sends any command as a raw box and returns the answer box (for
    /// commands without a Rust declaration, as `mantle amp call` does).
    pub async fn call_box(
        &self,
        command: &str,
        args: AmpBox,
    ) -> Result<AmpBox, CallError<NoError>> {
        let conn = self.inner.online()?;
        ask(&conn, command, args, None).await
    }

    /// Calls `C`, whose answer holds a handle in `field`, and returns a
    /// reference to that server object. After a reconnection the client
    /// calls `C` again with the same arguments to re-obtain it.
    pub async fn reference<C: Command>(
        &self,
        args: C::Args,
        field: &'static str,
    ) -> Result<RemoteRef, CallError<C::Error>> {
        let conn = self.inner.online()?;
        let args = encode::<C::Args, C::Error>(&args)?;
        let r = Arc::new(RefInner {
            command: C::NAME,
            args,
            field,
            handle: Mutex::new(None),
        });
        r.obtain(&conn)
            .await
            .map_err(|e| e.map_typed::<C::Error>())?;
        self.inner.refs.lock().push(Arc::downgrade(&r));
        Ok(RemoteRef {
            inner: r,
            client: self.inner.clone(),
        })
    }

    /// Observes `model`: the subscription yields its snapshot, then its
    /// deltas in order; after a reconnection it resumes from the last
    /// sequence seen (or gets a fresh snapshot when that is too old).
    pub async fn observe(
        &self,
        model: &str,
    ) -> Result<Subscription, CallError<mantle_live::builtin::ObserveError>> {
        let conn = self.inner.online()?;
        let (sub, inner) = Subscription::new(model, Arc::downgrade(&self.inner));
        self.inner
            .subs
            .lock()
            .insert(model.to_string(), Arc::downgrade(&inner));
        inner.observe(&conn).await?;
        Ok(sub)
    }

    /// Disconnects now (pending calls fail with connection lost) and stops
    /// reconnecting.
    pub fn close(&self) {
        self.inner.shutdown.notify_one();
        if let Some(c) = self.inner.conn.lock().take() {
            c.close();
        }
        self.inner.status.send_replace(Status::Offline);
    }
}

impl Inner {
    pub(crate) fn online(&self) -> Result<Arc<Conn>, Lost> {
        match &*self.conn.lock() {
            Some(c) if c.is_alive() => Ok(c.clone()),
            _ => Err(Lost),
        }
    }

    pub(crate) fn current(&self) -> Option<Arc<Conn>> {
        self.conn.lock().clone().filter(|c| c.is_alive())
    }

    fn go_online(&self, conn: Arc<Conn>) {
        *self.conn.lock() = Some(conn);
        self.status.send_replace(Status::Online);
    }
}

pub(crate) trait MapTyped {
    fn map_typed<E: mantle_live::CommandError>(self) -> CallError<E>;
}
impl MapTyped for CallError<NoError> {
    fn map_typed<E: mantle_live::CommandError>(self) -> CallError<E> {
        match self {
            CallError::Remote(r) => match r.to_typed::<E>() {
                Some(e) => CallError::Command(e),
                None => CallError::Remote(r),
            },
            other => other.map(|never| match never {}),
        }
    }
}

pub(crate) fn encode<A: Arguments, E>(args: &A) -> Result<AmpBox, CallError<E>> {
    let value = serde_json::to_value(args).map_err(|e| CallError::Protocol(e.to_string()))?;
    let fields = value
        .as_object()
        .ok_or_else(|| CallError::Protocol("arguments are not a struct".into()))?;
    codec::to_amp(fields, A::schema()).map_err(|e| CallError::Protocol(e.to_string()))
}

pub(crate) fn decode<A: Arguments, E>(b: &AmpBox) -> Result<A, CallError<E>> {
    let fields = codec::from_amp(b, A::schema()).map_err(|e| CallError::Protocol(e.to_string()))?;
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| CallError::Protocol(e.to_string()))
}

/// Sends a raw request on `conn` and waits for its answer.
pub(crate) async fn ask(
    conn: &Conn,
    command: &str,
    args: AmpBox,
    on_answer: Option<OnAnswer>,
) -> Result<AmpBox, CallError<NoError>> {
    let rx = conn.ask(command, args, on_answer).map_err(|e| match e {
        SendError::Lost => CallError::ConnectionLost,
        SendError::Encode(why) => CallError::Protocol(why),
    })?;
    match rx.await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(remote)) => Err(CallError::Remote(remote)),
        Err(_) => Err(CallError::ConnectionLost),
    }
}

/// A typed call on `conn` (addressed to `handle`, if given).
pub(crate) async fn call_on<C: Command>(
    conn: &Conn,
    args: C::Args,
    handle: Option<i64>,
) -> Result<C::Answer, CallError<C::Error>> {
    let mut b = encode::<C::Args, C::Error>(&args)?;
    if let Some(h) = handle {
        b.insert(HANDLE_KEY, h.to_string());
    }
    let answer = ask(conn, C::NAME, b, None)
        .await
        .map_err(|e| e.map_typed::<C::Error>())?;
    decode::<C::Answer, C::Error>(&answer)
}

/// Connects, logs in, re-obtains references and resumes observations.
async fn establish(
    inner: &Arc<Inner>,
) -> Result<(Arc<Conn>, tokio::sync::oneshot::Receiver<()>), ConnectError> {
    let weak = Arc::downgrade(inner);
    let on_request: OnRequest = Arc::new(move |conn, command, tag, args| match weak.upgrade() {
        Some(inner) if tag.is_none() => on_push(&inner, &command, args),
        _ => refuse(conn, &command, tag),
    });
    let addr = inner.options.addr.clone();
    let max_box = mantle_amp::DEFAULT_MAX_BOX_SIZE;
    let (conn, closed) = Conn::open(&addr, inner.options.tls.as_ref(), max_box, on_request)
        .await
        .map_err(|source| ConnectError::Io { addr, source })?;
    let login = match &inner.options.credentials {
        None => Ok(()),
        Some(Credentials::Password { username, password }) => call_on::<Login>(
            &conn,
            LoginArgs {
                username: username.clone(),
                password: password.clone(),
            },
            None,
        )
        .await
        .map(|_| ()),
        Some(Credentials::Token(token)) => call_on::<Authenticate>(
            &conn,
            AuthenticateArgs {
                token: token.clone(),
            },
            None,
        )
        .await
        .map(|_| ()),
    };
    if let Err(e) = login {
        conn.close();
        return Err(ConnectError::Login(e));
    }
    let refs: Vec<_> = {
        let mut refs = inner.refs.lock();
        refs.retain(|r| r.strong_count() > 0);
        refs.iter().filter_map(Weak::upgrade).collect()
    };
    for r in refs {
        if let Err(e) = r.obtain(&conn).await {
            tracing::warn!(command = r.command, %e, "could not re-obtain a reference");
            *r.handle.lock() = None;
        }
    }
    let subs: Vec<_> = {
        let mut subs = inner.subs.lock();
        subs.retain(|_, s| s.strong_count() > 0);
        subs.values().filter_map(Weak::upgrade).collect()
    };
    for s in subs {
        if let Err(e) = s.observe(&conn).await {
            tracing::warn!(%e, "could not resume an observation");
        }
    }
    Ok((conn, closed))
}

/// Waits for the connection to end, then reconnects with back-off, until
/// the client is closed or its last clone dropped (both notify
/// `shutdown`).
async fn keep_connected(inner: Arc<Inner>, mut closed: tokio::sync::oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut closed => {}
            _ = inner.shutdown.notified() => return,
        }
        inner.status.send_replace(Status::Offline);
        *inner.conn.lock() = None;
        if !inner.options.reconnect {
            return;
        }
        let mut backoff = inner.options.min_backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = inner.shutdown.notified() => return,
            }
            backoff = (backoff * 2).min(inner.options.max_backoff);
            match establish(&inner).await {
                Ok((conn, c)) => {
                    inner.go_online(conn);
                    closed = c;
                    break;
                }
                Err(e) => tracing::debug!(%e, "reconnect failed"),
            }
        }
    }
}

pub(crate) struct RefInner {
    command: &'static str,
    args: AmpBox,
    field: &'static str,
    /// The handle on the current connection (`None` while it could not be
    /// re-obtained).
    handle: Mutex<Option<i64>>,
}

impl RefInner {
    async fn obtain(&self, conn: &Conn) -> Result<(), CallError<NoError>> {
        let answer = ask(conn, self.command, self.args.clone(), None).await?;
        let h = answer
            .get(self.field)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .ok_or_else(|| {
                CallError::Protocol(format!(
                    "{} answered no {:?} handle",
                    self.command, self.field
                ))
            })?;
        *self.handle.lock() = Some(h);
        Ok(())
    }
}

/// A reference to a server object. Calls on it are commands addressed to
/// its handle; after a reconnection the handle is re-obtained, so the
/// reference stays usable.
#[derive(Clone)]
pub struct RemoteRef {
    inner: Arc<RefInner>,
    client: Arc<Inner>,
}

impl RemoteRef {
    /// Calls `C` on the object.
    pub async fn call<C: Command>(&self, args: C::Args) -> Result<C::Answer, CallError<C::Error>> {
        let conn = self.client.online()?;
        let handle = (*self.inner.handle.lock()).ok_or(Lost)?;
        call_on::<C>(&conn, args, Some(handle)).await
    }

    /// The handle on the current connection.
    pub fn handle(&self) -> Option<i64> {
        *self.inner.handle.lock()
    }
}

/// The client is offline: every call's [`CallError::ConnectionLost`].
pub(crate) struct Lost;

impl<E> From<Lost> for CallError<E> {
    fn from(_: Lost) -> Self {
        CallError::ConnectionLost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_amp::AmpFloat;

    mantle_live::arguments! {
        struct Plain { x: f64 }
        struct Wide { x: AmpFloat }
    }

    #[test]
    fn a_plain_f64_cannot_be_nan_but_an_amp_float_can() {
        match encode::<_, ()>(&Plain { x: f64::NAN }) {
            Err(CallError::Protocol(why)) => assert!(why.contains("number"), "{why}"),
            other => panic!("{other:?}"),
        }
        for (x, text) in [(f64::NAN, "nan"), (f64::NEG_INFINITY, "-inf")] {
            let b = encode::<_, ()>(&Wide { x: AmpFloat(x) }).unwrap();
            assert_eq!(b.get("x"), Some(text.as_bytes()));
            let back: Wide = decode::<_, ()>(&b).unwrap();
            assert_eq!(back.x, AmpFloat(x));
        }
    }
}
