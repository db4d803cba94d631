//! Mantle's live-object protocol, shared by the server and its clients.
//!
//! A [`Command`] is declared once: a wire name, [`Arguments`] (a serde
//! struct declared with [`arguments!`]), an answer, and typed errors
//! ([`CommandError`]). The same declaration is served over AMP
//! (byte-compatible with Twisted's `twisted.protocols.amp`, through
//! [`codec`]) and JSON over WebSocket ([`json`]); errors travel as
//! [`RemoteError`] (code, description, details) on both.
//!
//! [`builtin`] holds the commands every endpoint serves (`Login`,
//! `Authenticate`, `Whoami`, `Observe`, `Unobserve`, `Release`) and the
//! ones the server pushes (`Delta`, `Resync`, `SnapshotPart`).
//!
//! ```
//! use mantle_live::{Arguments, Command, NoError, arguments, codec};
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
//! let args = serde_json::to_value(SumArgs { a: 13, b: 81 }).unwrap();
//! let amp = codec::to_amp(args.as_object().unwrap(), SumArgs::schema()).unwrap();
//! assert_eq!(amp.get("a"), Some(&b"13"[..]));
//! ```

pub mod builtin;
pub mod codec;
mod command;
pub mod json;
mod schema;

pub use codec::CodecError;
pub use command::{Command, CommandError, NoError, RemoteError, SaveConflict, codes};
pub use schema::{Arg, ArgKind, Arguments, Copyable, Empty, Handle, WireType};

#[doc(hidden)]
pub use serde;
