//! One connection, whatever its transport: who is logged in, the handles
//! it holds, the models it observes, and the dispatch of its requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use mantle_amp::AmpBox;
use mantle_live::builtin::{
    Authenticate, Login, LoginAnswer, Observe, Release, Unauthorized, Unobserve, Whoami,
    WhoamiAnswer,
};
use mantle_live::{Arg, Arguments, Command, Empty, Handle, NoError, RemoteError, codec, codes};
use mantle_site::{Avatar, Site, SiteError};
use mantle_store::Store;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::Live;
use crate::commands::{Failure, Fields, answer, decode};
use crate::hub::Observation;
use crate::objects::{ObjectCommands, Published, RemoteObject};
use crate::stats::{ConnectionCount, LiveStats};

/// What a connection's writer sends, in order. `T` is the transport's
/// request tag (AMP's `_ask`, JSON's `id`).
pub(crate) enum Out<T> {
    Answer {
        tag: T,
        fields: Fields,
        schema: &'static [Arg],
    },
    Error {
        /// `None`: the JSON request had no readable id.
        tag: Option<T>,
        error: RemoteError,
    },
    Push(Arc<Push>),
}

/// A command the server sends on its own. One `Push` goes to every
/// observer of a model, so each transport's encoding is made once.
pub(crate) struct Push {
    pub command: &'static str,
    pub fields: Fields,
    schema: &'static [Arg],
    amp: OnceLock<Option<Bytes>>,
    json: OnceLock<Arc<str>>,
}

impl Push {
    pub fn new<C: Command>(args: &C::Args) -> Arc<Push> {
        let fields = match serde_json::to_value(args) {
            Ok(serde_json::Value::Object(f)) => f,
            _ => Fields::new(),
        };
        Arc::new(Push {
            command: C::NAME,
            fields,
            schema: C::Args::schema(),
            amp: OnceLock::new(),
            json: OnceLock::new(),
        })
    }

    /// The AMP box bytes (no `_ask`: pushes want no answer); `None` if the
    /// push does not fit in a box (a value over 65,535 bytes).
    pub fn amp(&self) -> Option<&Bytes> {
        self.amp
            .get_or_init(|| {
                let args = codec::to_amp(&self.fields, self.schema).ok()?;
                let b = mantle_amp::frame::request(self.command.as_bytes(), None, args);
                mantle_amp::encode(&b).ok().map(Bytes::from)
            })
            .as_ref()
    }

    /// The JSON text.
    pub fn json(&self) -> &Arc<str> {
        self.json.get_or_init(|| {
            let reply = mantle_live::json::JsonReply::Push {
                command: self.command.to_string(),
                args: self.fields.clone(),
            };
            serde_json::to_string(&reply)
                .expect("JSON values serialize")
                .into()
        })
    }
}

/// Where pushes for a connection go, without waiting.
pub(crate) trait PushSink: Send + Sync {
    /// `false` if the connection is gone or too far behind to take more.
    fn push(&self, p: Arc<Push>) -> bool {
        self.queue().try_send(p)
    }
    /// Queues `p` as soon as there is room (for the last push an
    /// observation sends, which must not be lost to a full queue).
    fn push_eventually(&self, p: Arc<Push>) {
        self.queue().send_later(p)
    }
    /// Whether the transport can carry `p` at all (AMP values are at most
    /// 65,535 bytes).
    fn fits(&self, p: &Push) -> bool;
    /// The largest value the transport carries, if it has a limit.
    fn max_value(&self) -> Option<usize>;
    /// The queue behind the sink.
    fn queue(&self) -> &dyn PushQueue;
}

/// A connection's outgoing queue, whatever its tag type.
pub(crate) trait PushQueue: Send + Sync {
    fn try_send(&self, p: Arc<Push>) -> bool;
    fn send_later(&self, p: Arc<Push>);
}

impl<T: Send + 'static> PushQueue for mpsc::Sender<Out<T>> {
    fn try_send(&self, p: Arc<Push>) -> bool {
        mpsc::Sender::try_send(self, Out::Push(p)).is_ok()
    }
    fn send_later(&self, p: Arc<Push>) {
        if let Err(mpsc::error::TrySendError::Full(msg)) =
            mpsc::Sender::try_send(self, Out::Push(p))
        {
            let tx = self.clone();
            tokio::spawn(async move {
                let _ = tx.send(msg).await;
            });
        }
    }
}

/// AMP connections: a push must fit in a box.
impl PushSink for mpsc::Sender<Out<Vec<u8>>> {
    fn fits(&self, p: &Push) -> bool {
        p.amp().is_some()
    }
    fn max_value(&self) -> Option<usize> {
        Some(mantle_amp::MAX_VALUE_LENGTH)
    }
    fn queue(&self) -> &dyn PushQueue {
        self
    }
}

/// WebSocket connections carry any push.
impl PushSink for mpsc::Sender<Out<serde_json::Value>> {
    fn fits(&self, _: &Push) -> bool {
        true
    }
    fn max_value(&self) -> Option<usize> {
        None
    }
    fn queue(&self) -> &dyn PushQueue {
        self
    }
}

/// The arguments of a request as they arrived, decoded only once the
/// command (and so the schema) is known.
pub(crate) enum RawArgs {
    Amp(AmpBox),
    Json(Fields),
}

impl RawArgs {
    pub fn fields(self, schema: &[Arg]) -> Result<Fields, RemoteError> {
        let bad =
            |e: mantle_live::CodecError| RemoteError::new(codes::BAD_ARGUMENTS, e.to_string());
        match self {
            RawArgs::Amp(b) => codec::from_amp(&b, schema).map_err(bad),
            RawArgs::Json(f) => codec::check_json(&f, schema).map(|()| f).map_err(bad),
        }
    }
}

/// A request from a client.
pub(crate) struct Request<T> {
    pub tag: Option<T>,
    pub command: String,
    pub handle: Option<i64>,
    pub args: RawArgs,
}

/// The site's live layer (the transports are only served by sites built
/// with `install`, which attaches it).
fn live_of(site: &Site) -> &Live {
    site.extension::<Live>()
        .expect("transports run only on sites with mantle_live_server::install")
}

/// A connection's state, shared by its requests in flight.
pub(crate) struct Conn {
    pub site: Site,
    /// The client's address (for the login attempt limit).
    peer: Option<IpAddr>,
    user: RwLock<Option<Arc<Avatar>>>,
    handles: Mutex<HashMap<i64, Arc<dyn RemoteObject>>>,
    next_handle: AtomicI64,
    pub observing: Mutex<HashMap<String, Arc<Observation>>>,
    pub sink: Arc<dyn PushSink>,
    pub stats: Arc<LiveStats>,
    _open: ConnectionCount,
}

impl Conn {
    pub fn new(
        site: Site,
        peer: Option<IpAddr>,
        user: Option<Avatar>,
        sink: Arc<dyn PushSink>,
    ) -> Arc<Conn> {
        let stats = live_of(&site).stats(&site).clone();
        Arc::new(Conn {
            _open: ConnectionCount::new(stats.clone()),
            stats,
            site,
            peer,
            user: RwLock::new(user.map(Arc::new)),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicI64::new(1),
            observing: Mutex::new(HashMap::new()),
            sink,
        })
    }

    pub fn live(&self) -> &Live {
        live_of(&self.site)
    }

    fn caller(self: &Arc<Self>) -> Option<Caller> {
        let avatar = self.user.read().clone()?;
        Some(Caller {
            conn: self.clone(),
            avatar,
        })
    }

    /// Whether a user is logged in on the connection.
    pub fn logged_in(&self) -> bool {
        self.user.read().is_some()
    }

    pub fn caller_or_unauthorized(self: &Arc<Self>) -> Result<Caller, RemoteError> {
        self.caller().ok_or_else(unauthorized)
    }

    /// Logs the connection out if its login was revoked (logout, token
    /// revoked, account disabled or deleted, password changed): its next
    /// call answers `UNAUTHORIZED`, and its observations end.
    async fn recheck_login(&self) {
        let Some(avatar) = self.user.read().clone() else {
            return;
        };
        match self.site.auth().still_valid(&avatar).await {
            Ok(true) => {}
            Ok(false) => {
                {
                    let mut user = self.user.write();
                    // Unless it logged in again meanwhile.
                    if user.as_ref().is_some_and(|u| Arc::ptr_eq(u, &avatar)) {
                        *user = None;
                    }
                }
                for (_, o) in self.observing.lock().drain() {
                    o.close();
                }
                tracing::debug!(login = %avatar.address, "live connection logged out: its login was revoked");
            }
            Err(e) => tracing::warn!(%e, "cannot re-check a live connection's login"),
        }
    }

    /// Ends the connection's observations (its handles go with it).
    pub fn close(&self) {
        for (_, o) in self.observing.lock().drain() {
            o.close();
        }
        self.handles.lock().clear();
    }
}

/// The most handles one connection may hold at once (they cost server
/// memory until released or the connection ends).
pub const MAX_HANDLES: usize = 10_000;

/// Who is calling: the logged-in user on one connection.
#[derive(Clone)]
pub struct Caller {
    conn: Arc<Conn>,
    avatar: Arc<Avatar>,
}

impl Caller {
    /// The site.
    pub fn site(&self) -> &Site {
        &self.conn.site
    }
    /// The logged-in account.
    pub fn avatar(&self) -> &Avatar {
        &self.avatar
    }
    /// The logged-in user's address (what `Whoami` answers).
    pub fn username(&self) -> &str {
        &self.avatar.address
    }
    /// The logged-in user's own store.
    pub async fn store(&self) -> Result<Store, SiteError> {
        self.conn
            .site
            .stores()
            .user_store_unchecked(self.avatar.account)
            .await
    }
    /// Gives this connection a handle to `obj`; calls on the handle run
    /// `commands` with it. The handle dies with the connection (or when
    /// the client sends `Release`). A connection holds at most
    /// [`MAX_HANDLES`]; past that this fails (answered `UNKNOWN`) until
    /// the client releases some.
    pub fn publish<T: Send + Sync + 'static, E>(
        &self,
        obj: Arc<T>,
        commands: Arc<ObjectCommands<T>>,
    ) -> Result<Handle, Failure<E>> {
        let mut handles = self.conn.handles.lock();
        if handles.len() >= MAX_HANDLES {
            return Err(Failure::internal(format!(
                "this connection already holds {MAX_HANDLES} handles; release some"
            )));
        }
        let id = self.conn.next_handle.fetch_add(1, Ordering::Relaxed);
        handles.insert(id, Arc::new(Published { obj, commands }));
        Ok(Handle(id))
    }
}

/// Runs one request and sends its answer (if it wants one).
pub(crate) async fn dispatch<T: Send + 'static>(
    conn: Arc<Conn>,
    out: mpsc::Sender<Out<T>>,
    req: Request<T>,
) {
    conn.stats.calls.inc();
    if req.command == Observe::NAME && req.handle.is_none() {
        return crate::observe::observe(conn, out, req).await;
    }
    let result = call(&conn, &req.command, req.handle, req.args).await;
    reply(&conn, &out, req.tag, result).await;
}

pub(crate) async fn reply<T>(
    conn: &Conn,
    out: &mpsc::Sender<Out<T>>,
    tag: Option<T>,
    result: Result<(Fields, &'static [Arg]), RemoteError>,
) {
    if result.is_err() {
        conn.stats.errors.inc();
    }
    let Some(tag) = tag else {
        if let Err(e) = result {
            tracing::debug!(%e, "one-way live command failed");
        }
        return;
    };
    let msg = match result {
        Ok((fields, schema)) => Out::Answer {
            tag,
            fields,
            schema,
        },
        Err(error) => Out::Error {
            tag: Some(tag),
            error,
        },
    };
    // A closed channel means the connection is gone: nobody to tell.
    let _ = out.send(msg).await;
}

fn unauthorized() -> RemoteError {
    RemoteError::from_typed(&Unauthorized::Unauthorized)
}

/// The wire answer of built-in `C`.
fn built_in<C: Command>(
    r: Result<C::Answer, Failure<C::Error>>,
) -> Result<(Fields, &'static [Arg]), RemoteError> {
    answer::<C>(C::NAME, r).map(|f| (f, C::Answer::schema()))
}

fn args_of<C: Command>(raw: RawArgs) -> Result<C::Args, RemoteError> {
    decode(raw.fields(C::Args::schema())?)
}

async fn log_in(conn: &Conn, token: &str) -> Result<WhoamiAnswer, Failure<Unauthorized>> {
    match conn.site.auth().authenticate(token).await {
        Ok(avatar) => {
            let username = avatar.address.clone();
            *conn.user.write() = Some(Arc::new(avatar));
            Ok(WhoamiAnswer { username })
        }
        Err(SiteError::BadToken) => Err(Unauthorized::Unauthorized.into()),
        Err(e) => Err(Failure::internal(e)),
    }
}

async fn call(
    conn: &Arc<Conn>,
    name: &str,
    handle: Option<i64>,
    raw: RawArgs,
) -> Result<(Fields, &'static [Arg]), RemoteError> {
    if let Some(h) = handle {
        let obj = conn.handles.lock().get(&h).cloned().ok_or_else(|| {
            RemoteError::new(
                codes::NO_SUCH_HANDLE,
                format!(
                    "no handle {h} on this connection (released, or from an earlier connection)"
                ),
            )
        })?;
        let (Some(args), Some(answer)) = (obj.args_of(name), obj.answer_of(name)) else {
            return Err(RemoteError::new(
                codes::UNHANDLED,
                format!("handle {h} has no command {name:?}"),
            ));
        };
        let caller = conn.caller().ok_or_else(unauthorized)?;
        let fields = raw.fields(args)?;
        return obj.call(caller, name, fields).await.map(|f| (f, answer));
    }
    match name {
        Login::NAME => {
            let a = args_of::<Login>(raw)?;
            let r = match conn
                .site
                .auth()
                .login_from(conn.peer, &a.username, &a.password, "live")
                .await
            {
                Ok(issued) => log_in(conn, &issued.token).await.map(|_| LoginAnswer {
                    token: issued.token,
                }),
                Err(SiteError::BadCredentials | SiteError::Disabled(_)) => {
                    Err(Unauthorized::Unauthorized.into())
                }
                Err(
                    e @ (SiteError::TooManyAttempts { retry_after }
                    | SiteError::Busy { retry_after }),
                ) => {
                    conn.stats.rate_refusals.inc();
                    let _ = retry_after;
                    return Err(RemoteError::new(codes::TOO_MANY_ATTEMPTS, e.to_string()));
                }
                Err(e) => Err(Failure::internal(e)),
            };
            return built_in::<Login>(r);
        }
        Authenticate::NAME => {
            let a = args_of::<Authenticate>(raw)?;
            return built_in::<Authenticate>(log_in(conn, &a.token).await);
        }
        Whoami::NAME => {
            args_of::<Whoami>(raw)?;
            let caller = conn.caller().ok_or_else(unauthorized)?;
            return built_in::<Whoami>(Ok(WhoamiAnswer {
                username: caller.username().to_string(),
            }));
        }
        Unobserve::NAME => {
            let a = args_of::<Unobserve>(raw)?;
            if let Some(o) = conn.observing.lock().remove(&a.model) {
                o.close();
            }
            return built_in::<Unobserve>(Ok::<_, Failure<NoError>>(Empty {}));
        }
        Release::NAME => {
            let a = args_of::<Release>(raw)?;
            return match conn.handles.lock().remove(&a.handle.0) {
                Some(_) => built_in::<Release>(Ok(Empty {})),
                None => Err(RemoteError::new(
                    codes::NO_SUCH_HANDLE,
                    format!("no handle {} on this connection", a.handle.0),
                )),
            };
        }
        _ => {}
    }
    let live = conn.live();
    let entry = live
        .commands
        .get(name)
        .filter(|_| live.present(&conn.site, name))
        .cloned()
        .ok_or_else(|| RemoteError::new(codes::UNHANDLED, format!("no command {name:?}")))?;
    let caller = conn.caller().ok_or_else(unauthorized)?;
    let fields = raw.fields(entry.args)?;
    let answer = entry.answer;
    (entry.handler)(caller, fields).await.map(|f| (f, answer))
}

/// The request side of a connection, shared by the transports: runs its
/// calls concurrently, up to the in-flight limit, inside the connection's
/// own task (no task per call: a call costs a poll, not a spawn and a
/// cross-thread wake-up), and login requests before reading on.
pub(crate) struct Requests<T> {
    pub conn: Arc<Conn>,
    pub out: mpsc::Sender<Out<T>>,
    /// In a mutex only so that `&Requests` is `Send` (the calls are
    /// `Send` but not `Sync`); reached through `get_mut`, never locked.
    running: std::sync::Mutex<FuturesUnordered<BoxFuture<'static, ()>>>,
    max: usize,
    /// Marked changed when any login may have been revoked.
    revocations: tokio::sync::watch::Receiver<u64>,
}

impl<T: Send + 'static> Requests<T>
where
    mpsc::Sender<Out<T>>: PushSink,
{
    pub fn new(
        site: Site,
        peer: Option<IpAddr>,
        user: Option<Avatar>,
        out: mpsc::Sender<Out<T>>,
    ) -> Self {
        let max = site.section::<crate::LiveConfig>().max_in_flight.max(1);
        let revocations = site.auth().revocations();
        let conn = Conn::new(site, peer, user, Arc::new(out.clone()));
        Self {
            conn,
            out,
            running: std::sync::Mutex::new(FuturesUnordered::new()),
            max,
            revocations,
        }
    }

    fn running(&mut self) -> &mut FuturesUnordered<BoxFuture<'static, ()>> {
        self.running
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next message from `source`, driving the calls in flight
    /// meanwhile; at the in-flight limit, reads nothing until one ends
    /// (so a client that floods is slowed by TCP, not buffered).
    /// A revoked login is noticed here too, between messages.
    pub async fn next<S: Stream + Unpin>(&mut self, source: &mut S) -> Option<S::Item> {
        let max = self.max;
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if running.len() >= max {
                running.next().await;
                continue;
            }
            tokio::select! {
                item = source.next() => return item,
                Some(()) = running.next(), if !running.is_empty() => {}
                Ok(()) = self.revocations.changed() => self.conn.recheck_login().await,
            }
        }
    }

    /// Starts `req`. `Login` and `Authenticate` finish before this returns,
    /// so that a client may pipeline calls right behind them.
    pub async fn submit(&mut self, req: Request<T>) {
        let login = req.handle.is_none()
            && (req.command == Login::NAME || req.command == Authenticate::NAME);
        let call = dispatch(self.conn.clone(), self.out.clone(), req);
        let running = self.running();
        if !login {
            running.push(Box::pin(call));
            return;
        }
        let mut call = std::pin::pin!(call);
        loop {
            tokio::select! {
                () = &mut call => return,
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
    }

    /// Sends an error answer straight away.
    pub async fn refuse(&self, tag: Option<T>, error: RemoteError) {
        self.conn.stats.errors.inc();
        let _ = self.out.send(Out::Error { tag, error }).await;
    }

    /// Lets the calls in flight answer, then ends the connection's handles
    /// and observations.
    pub async fn finish(mut self) {
        while self.running().next().await.is_some() {}
        self.conn.close();
    }
}
