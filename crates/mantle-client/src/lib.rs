//! A Rust client for Mantle's live objects, over AMP.
//!
//! [`Client`] connects to a Mantle AMP listener (`mantle serve --amp`),
//! logs in, and calls [`Command`](mantle_live::Command)s with typed
//! arguments, answers and errors. It reconnects by itself with back-off;
//! while it is offline every call fails at once with
//! [`CallError::ConnectionLost`], and [`Client::status`] tells the
//! application. After a reconnection it logs in again, re-obtains its
//! [`RemoteRef`]s (by repeating the call that gave each one) and resumes
//! its [`Subscription`]s from the last sequence seen.
//!
//! It speaks plain AMP, so [`Client::call_box`] also calls any Twisted AMP
//! server; over TLS with [`ClientOptions::tls`]. [`Connection`] is one bare
//! AMP connection (no login, no reconnection), for peers with commands of
//! their own.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use mantle_client::{Client, ClientOptions, ModelEvent};
//!
//! let client = Client::connect(ClientOptions::new("127.0.0.1:7001").login("alice", "secret")).await?;
//! let mut list = client.observe("list:groceries").await?;
//! while let Some(event) = list.next().await {
//!     match event {
//!         ModelEvent::Snapshot { sequence, value } => println!("#{sequence}: {value}"),
//!         ModelEvent::Delta { sequence, value } => println!("#{sequence} changed: {value}"),
//!         ModelEvent::Ended { code, reason } => println!("no longer observed ({code}: {reason})"),
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod conn;
mod connection;
mod error;
mod observe;
mod tls;

pub use client::{Client, ClientOptions, Credentials, RemoteRef, Status};
pub use connection::Connection;
pub use error::{CallError, ConnectError};
pub use observe::{ModelEvent, Subscription};
pub use tls::{ClientTls, SYSTEM_BUNDLE, TlsSetupError};
