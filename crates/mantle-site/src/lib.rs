//! A Mantle site: the node-level layer above the object store.
//!
//! A [`Site`] is a directory holding the site store (accounts, login
//! methods, auth tokens, invites, the services to run), one user store per
//! account, and `mantle.toml`. It provides:
//!
//! - **accounts** with one or more login methods (`localpart@domain`, one
//!   primary), argon2id password hashes, disabled state, signup policies
//!   (open / invite / admin only), and a user store made at signup;
//! - **tokens instead of sessions**: login returns a random 256-bit token,
//!   stored only as a hash, with an expiry; expired ones are swept by the
//!   site store's scheduler;
//! - **slates**: per-user named JSON documents with version checks and
//!   optional time to live;
//! - **offerings** (the applications a site hosts, [`Offering`]): which
//!   the site has installed ([`Site::offerings`]) and **products** granting
//!   them to users ([`Site::products`]), with hooks run once per user;
//! - **services** started from powerups in the site store, stopped
//!   gracefully, startable again;
//! - **statistics** ([`Site::stats`], a `mantle_stats` registry): the store
//!   layer's "Stores" namespace and the site's "Auth", "Messaging" and
//!   "Process" namespaces, for the web front to report.
//!
//! Its parts are components reached through [`Site`]'s accessors
//! ([`Site::accounts`], [`Site::auth`], [`Site::slates`],
//! [`Site::messaging`], [`Site::stores`], …), each with its own state.
//! It knows nothing of HTTP: the web front (`mantle-web`) is a service that
//! builds on it. No global state: two sites run side by side in one process.
//!
//! ```
//! use mantle_site::{Site, SiteConfig};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let config = SiteConfig { domain: "example.com".into(), ..SiteConfig::default() };
//! let site = Site::builder(dir.path()).init(config).await?;
//! site.accounts().create("alice", "correct horse battery", false).await?;
//! let token = site.auth().login("alice@example.com", "correct horse battery", "doc").await?;
//! let me = site.auth().authenticate(&token.token).await?;
//! assert_eq!(me.address, "alice@example.com");
//! site.close().await;
//! # Ok::<_, mantle_site::SiteError>(())
//! # }).unwrap();
//! ```

mod accounts;
mod address;
mod auth;
mod config;
mod error;
mod items;
mod logins;
mod messaging;
pub mod offerings;
mod process_stats;
pub mod sharing;
mod site;
mod slates;
mod stores;

pub use accounts::{
    AccountExport, AccountInfo, Accounts, ExportedToken, FanoutResult, ItemCount, sum_results,
};
pub use address::Address;
pub use auth::{
    AUTH_NAMESPACE, Auth, Avatar, Gated, IssuedToken, SUSPECT_FOR, SuspectGate, TokenInfo,
    address_block, new_secret,
};
pub use config::{
    AuthConfig, CONFIG_FILE, ConfigSection, OFFERINGS_SECTION, Settings, SignupConfig,
    SignupPolicy, SiteConfig, StoresConfig, parse_env,
};
pub use error::{Result, SiteError};
pub use items::{Account, AuthToken, Invite, LoginMethod, Slate, TokenSweeper};
pub use logins::{
    LoginDirectory, LoginFuture, LoginRefusal, node_store_file, node_store_name, store_name,
    token_route,
};
pub use messaging::{
    Envelope, Located, MESSAGING_NAMESPACE, Message, MessageHandlers, MessageId,
    MessageRegistration, Messaging, NO_HANDLER, ParkedMessage, Receipt, Recipient, Refusal,
    RemoteFuture, RemoteStores, SendMessage, StoreKind, UNDECODABLE,
};
pub use offerings::{
    Giving, Installing, Offering, OfferingInfo, OfferingState, Offerings, ProductInfo, Products,
    Scope,
};
pub use process_stats::PROCESS_NAMESPACE;
pub use site::{
    Extensions, Registration, RunningService, SITE_STORE, Service, Services, Site, SiteBuilder,
    register,
};
pub use slates::{Expect, SlateDoc, Slates, check_slate_name};
pub use stores::{Stores, user_store_path};
