//! Live objects on the server (the protocol is described in
//! `docs/live.md`).
//!
//! Offerings declare [`Command`]s once and register
//! handlers on the site's [`Live`] extension; Mantle serves them over AMP
//! on TCP ([`amp::serve`], byte-compatible with Twisted) and as JSON over
//! WebSocket at `/live` (with the browser script at `/live.js`). A
//! connection logs in (`Login`, `Authenticate`, or an HTTP token on the
//! WebSocket upgrade) and then acts as that user: handlers get a
//! [`Caller`], whose store is the user's own.
//!
//! * **Referenceables**: a handler gives the connection a handle
//!   ([`Caller::publish`]); calls on it run [`ObjectCommands`]; handles die
//!   with the connection.
//! * **Cacheables**: [`Live::model`] declares a kind of model; clients
//!   `Observe` it, get a snapshot, then `Delta` pushes with sequence numbers,
//!   made by [`publish`] inside the changing transaction and sent only
//!   after it commits. A client resumes from the last sequence it saw.
//! * **Controllers**: changes go through commands; a stale revision is
//!   answered with [`SaveConflict`](mantle_live::SaveConflict) (see
//!   [`save_conflict`]).
//!
//! ```no_run
//! use mantle_live::{Command, NoError, arguments};
//! use mantle_live_server::{Failure, Live};
//!
//! arguments! {
//!     pub struct SumArgs { pub a: i64, pub b: i64 }
//!     pub struct SumAnswer { pub total: i64 }
//! }
//! pub struct Sum;
//! impl Command for Sum {
//!     const NAME: &'static str = "Sum";
//!     type Args = SumArgs;
//!     type Answer = SumAnswer;
//!     type Error = NoError;
//! }
//!
//! # async fn f() -> mantle_site::Result<()> {
//! let site = mantle_live_server::install(mantle_site::Site::builder("/srv/mantle"))
//!     .extension::<Live>(|live| {
//!         live.command::<Sum, _, _>(|_caller, args| async move {
//!             Ok::<_, Failure<NoError>>(SumAnswer { total: args.a + args.b })
//!         });
//!     })
//!     .open()
//!     .await?;
//! # let _ = site; Ok(()) }
//! ```

pub mod amp;
mod commands;
mod config;
mod hub;
mod objects;
mod observe;
mod publish;
mod session;
mod stats;
mod ws;

use std::future::Future;

use mantle_live::Command;
use mantle_live::builtin::ObserveError;
use mantle_site::SiteBuilder;
use mantle_store::{ReadTx, Registry, Store};

pub use commands::Failure;
pub use config::LiveConfig;
pub use objects::ObjectCommands;
pub use publish::{HISTORY, ModelChanged, ModelDelta, ModelHead, publish, sequence};
pub use session::{Caller, MAX_HANDLES};
pub use stats::LIVE_NAMESPACE;
pub use ws::{CLOSE_LOGIN_TIMEOUT, CLOSE_UNAUTHORIZED, LIVE_JS, routes};

/// The live layer of a site: its commands and models, and the observers
/// of those models. Attach it with [`install`], then add to it with
/// `SiteBuilder::extension::<Live>(|live| ...)`.
#[derive(Default)]
pub struct Live {
    commands: commands::CommandTable<Caller>,
    models: std::collections::HashMap<String, hub::ModelSpec>,
    hub: std::sync::Arc<hub::Hub>,
    /// The "Live" statistics, made with the first connection or listener.
    stats: std::sync::OnceLock<std::sync::Arc<stats::LiveStats>>,
}

impl Live {
    /// Serves command `C` with `handler` (for logged-in callers).
    pub fn command<C, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        C: Command,
        F: Fn(Caller, C::Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Answer, Failure<C::Error>>> + Send + 'static,
    {
        self.commands.add::<C, _, _>(handler);
        self
    }

    /// Declares the models named `KIND` or `KIND:KEY`: `store` finds the
    /// store that holds model `KEY` for a caller (and may refuse with
    /// `FORBIDDEN` or `NO_SUCH_MODEL`); `snapshot` reads it whole. Changes
    /// are published with [`publish`] under the full name.
    pub fn model<S, Fut, P>(&mut self, kind: &str, store: S, snapshot: P) -> &mut Self
    where
        S: Fn(Caller, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Store, Failure<ObserveError>>> + Send + 'static,
        P: Fn(&ReadTx, &str) -> mantle_store::Result<serde_json::Value> + Send + Sync + 'static,
    {
        self.models
            .insert(kind.to_string(), hub::ModelSpec::new(store, snapshot));
        self
    }

    /// The statistics handles, in `site`'s registry.
    pub(crate) fn stats(&self, site: &mantle_site::Site) -> &std::sync::Arc<stats::LiveStats> {
        self.stats.get_or_init(|| {
            std::sync::Arc::new(stats::LiveStats::new(
                site.stats(),
                std::sync::Arc::downgrade(&self.hub),
            ))
        })
    }

    /// How many observations are open (all models, all connections).
    pub fn observers(&self) -> usize {
        self.hub.observers()
    }
}

/// Registers the live layer's item types (model heads and histories).
pub fn register(registry: &mut Registry) {
    publish::register(registry);
}

/// Adds the live layer to a site: its item types, its configuration
/// section (`[live]`, see [`LiveConfig`]; and the web front's, whose
/// certificate AMP over TLS uses), the [`Live`] extension, the dispatcher
/// of committed model changes, and the WebSocket routes (`/live`,
/// `/live.js`) on the web front.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder
        .with(register)
        .section::<mantle_web::HttpConfig>()
        .section::<LiveConfig>()
        .extension::<Live>(|_| {})
        .on_effects::<ModelChanged, _, _>(hub::dispatch_changes)
        .extension::<mantle_web::WebRoutes>(|r| {
            r.add(ws::routes);
        })
}

/// The [`SaveConflict`](mantle_live::SaveConflict) a store's revision
/// conflict means, if `e` is one.
pub fn save_conflict(e: &mantle_store::Error) -> Option<mantle_live::SaveConflict> {
    match e {
        mantle_store::Error::Conflict {
            expected, actual, ..
        } => Some(mantle_live::SaveConflict::SaveConflict {
            your_revision: *expected,
            current_revision: *actual,
        }),
        _ => None,
    }
}

/// Checks that a client saved against the revision `expected` of `item`,
/// as a controller does before changing it: a stale revision is a
/// [`SaveConflict`](mantle_live::SaveConflict) carrying the current one.
/// (Inside one transaction nothing can change in between: a store has one
/// writer.)
pub fn check_revision<T>(
    item: &mantle_store::Stored<T>,
    expected: i64,
) -> Result<(), mantle_live::SaveConflict> {
    if item.revision() == expected {
        Ok(())
    } else {
        Err(mantle_live::SaveConflict::SaveConflict {
            your_revision: expected,
            current_revision: item.revision(),
        })
    }
}
