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
//! * **Errors in handlers**: `?` on the command's own error answers with
//!   it ([`Failure`]); `?` after [`OrFail::or_fail`] on a store or site
//!   error answers `UNKNOWN` and logs it.
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
mod shared;
mod stats;
mod ws;

use std::future::Future;

use mantle_live::Command;
use mantle_live::builtin::ObserveError;
use mantle_site::{Offering, Scope, SiteBuilder};
use mantle_store::{ReadTx, Registry, Store};

pub use commands::{Failure, OrFail};
pub use config::LiveConfig;
pub use objects::ObjectCommands;
pub use publish::{HISTORY, ModelChanged, ModelDelta, ModelHead, publish, sequence};
pub use session::{Caller, MAX_HANDLES};
pub use shared::{SharedItem, item_model};
pub use stats::LIVE_NAMESPACE;
pub use ws::{CLOSE_LOGIN_TIMEOUT, CLOSE_UNAUTHORIZED, LIVE_JS, routes};

/// The live layer of a site: its commands and models, and the observers
/// of those models. Attach it with [`install`], then add to it with
/// `SiteBuilder::extension::<Live>(|live| ...)`.
#[derive(Default)]
pub struct Live {
    commands: commands::CommandTable<Caller>,
    models: std::collections::HashMap<String, hub::ModelSpec>,
    /// Command name or model kind → the offering that declared it (absent
    /// while that offering is not installed).
    owners: std::collections::HashMap<String, String>,
    /// The offering whose declarations are being added.
    declaring: Option<String>,
    hub: std::sync::Arc<hub::Hub>,
    /// The "Live" statistics, made with the first connection or listener.
    stats: std::sync::OnceLock<std::sync::Arc<stats::LiveStats>>,
    /// Whether the task re-checking shared observations runs.
    watching: std::sync::atomic::AtomicBool,
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
        self.own(C::NAME);
        self
    }

    /// Adds `offering`'s commands and models with `declare`: they are
    /// absent (`UNHANDLED`, `NO_SUCH_MODEL`) while it is not installed.
    pub fn offering(&mut self, offering: &str, declare: impl FnOnce(&mut Live)) -> &mut Self {
        let outer = self.declaring.replace(offering.to_string());
        declare(self);
        self.declaring = outer;
        self
    }

    fn own(&mut self, name: &str) {
        match &self.declaring {
            Some(o) => self.owners.insert(name.to_string(), o.clone()),
            None => self.owners.remove(name),
        };
    }

    /// Whether the command or model kind `name` is present in `site`: not
    /// an offering's, or its offering is installed.
    pub(crate) fn present(&self, site: &mantle_site::Site, name: &str) -> bool {
        self.owners
            .get(name)
            .is_none_or(|o| site.offerings().is_installed(o))
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
        self.own(kind);
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

/// The live layer as a layer of a program: its item types (model heads
/// and histories), its configuration section (`[live]`, see
/// [`LiveConfig`]; and the web front's, whose certificate AMP over TLS
/// uses), the [`Live`] extension, the dispatcher of committed model
/// changes, and the WebSocket routes (`/live`, `/live.js`) on the web
/// front. It requires the web layer ([`mantle_web::offering`]).
pub fn offering() -> Offering {
    Offering::new(LAYER, 1)
        .layer()
        .description("Live objects: commands and observed models over AMP and WebSocket")
        .requires(mantle_web::LAYER)
        .items(Scope::Site, register)
        .then(|b| {
            b.section::<mantle_web::HttpConfig>()
                .section::<LiveConfig>()
                .extension::<Live>(|_| {})
                .on_effects::<ModelChanged, _, _>(hub::dispatch_changes)
                .extension::<mantle_web::WebRoutes>(|r| {
                    r.add(ws::routes);
                })
        })
}

/// The live layer's name, for offerings that require it.
pub const LAYER: &str = "live";

/// Adds the live layer ([`offering`]) to a site builder.
pub fn install(builder: SiteBuilder) -> SiteBuilder {
    builder.offering(offering())
}

/// What the live layer adds to an [`Offering`].
pub trait LiveOffering {
    /// Declares the offering's live commands and models (and makes it
    /// require the live layer): absent (`UNHANDLED`, `NO_SUCH_MODEL`)
    /// while the offering is not installed.
    fn live(self, declare: impl FnOnce(&mut Live) + Send + 'static) -> Self;
}

impl LiveOffering for Offering {
    fn live(self, declare: impl FnOnce(&mut Live) + Send + 'static) -> Self {
        let name = self.name().to_string();
        self.requires(LAYER).then(move |b| {
            b.extension::<Live>(|live| {
                live.offering(&name, declare);
            })
        })
    }
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
