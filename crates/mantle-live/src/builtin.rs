//! The commands every Mantle live endpoint serves, and the two it pushes.
//!
//! Wire names and argument names are fixed: other clients (Twisted, the
//! browser script) use them as written here.

use serde::{Deserialize, Serialize};

use crate::command::{CommandError, NoError};
use crate::schema::{Empty, Handle};

crate::arguments! {
    /// `Login` arguments.
    pub struct LoginArgs { pub username: String, pub password: String }
    /// `Login` answer: a login token, usable on HTTP too.
    pub struct LoginAnswer { pub token: String }
    /// `Authenticate` arguments: a token from an HTTP login (or `Login`).
    pub struct AuthenticateArgs { pub token: String }
    /// `Whoami` (and `Authenticate`) answer.
    pub struct WhoamiAnswer { pub username: String }
    /// `Observe` arguments: the model, and the last sequence seen, if any.
    pub struct ObserveArgs { pub model: String, pub since: Option<i64> }
    /// `Observe` answer.
    ///
    /// `resumed`: the deltas after `since` follow as `Delta` pushes, and no
    /// snapshot is sent. Otherwise `snapshot` is the model at `sequence`,
    /// or, when its JSON text is longer than an AMP value can carry
    /// (65,535 bytes), it comes as `parts` `SnapshotPart` pushes instead.
    /// Either way, `Delta` pushes with later sequences follow, in order.
    pub struct ObserveAnswer {
        pub sequence: i64,
        pub resumed: bool,
        pub snapshot: Option<serde_json::Value>,
        pub parts: Option<i64>,
    }
    /// `Unobserve` arguments.
    pub struct UnobserveArgs { pub model: String }
    /// `Release` arguments: a handle the client no longer needs.
    pub struct ReleaseArgs { pub handle: Handle }
    /// `Delta` (pushed): one committed change of an observed model.
    pub struct DeltaArgs { pub model: String, pub sequence: i64, pub delta: serde_json::Value }
    /// `Resync` (pushed): the server cannot continue the model's deltas;
    /// observe it again with the last sequence seen.
    pub struct ResyncArgs { pub model: String, pub reason: String }
    /// `SnapshotPart` (pushed, AMP only): piece `part` (from 1) of `parts`
    /// of a snapshot too long for one AMP value. Joined in order, the
    /// `text`s are the snapshot's JSON text. They follow the `Observe`
    /// answer that announced them, before any `Delta`.
    pub struct SnapshotPartArgs {
        pub model: String,
        pub sequence: i64,
        pub part: i64,
        pub parts: i64,
        pub text: String,
    }
}

/// Wrong login, or not logged in: code `UNAUTHORIZED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum Unauthorized {
    /// The only variant.
    #[serde(rename = "UNAUTHORIZED")]
    #[error("not logged in, or wrong username, password or token")]
    Unauthorized,
}
impl CommandError for Unauthorized {}

/// Why a model cannot be observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum ObserveError {
    /// No model by that name.
    #[serde(rename = "NO_SUCH_MODEL")]
    #[error("there is no model {model:?}")]
    NoSuchModel {
        /// The name asked for.
        model: String,
    },
    /// The caller may not see it.
    #[serde(rename = "FORBIDDEN")]
    #[error("not allowed to observe {model:?}")]
    Forbidden {
        /// The name asked for.
        model: String,
    },
}
impl CommandError for ObserveError {}

crate::command!(
    /// Logs the connection in with a username and password; answers a token.
    pub Login, LoginArgs, LoginAnswer, Unauthorized
);
crate::command!(
    /// Logs the connection in with a token from an HTTP login.
    pub Authenticate, AuthenticateArgs, WhoamiAnswer, Unauthorized
);
crate::command!(
    /// The logged-in username.
    pub Whoami, Empty, WhoamiAnswer, Unauthorized
);
crate::command!(
    /// Starts (or resumes) observing a model.
    pub Observe, ObserveArgs, ObserveAnswer, ObserveError
);
crate::command!(
    /// Stops observing a model.
    pub Unobserve, UnobserveArgs, Empty, NoError
);
crate::command!(
    /// Drops a handle; later calls on it get `NO_SUCH_HANDLE`.
    pub Release, ReleaseArgs, Empty, NoError
);
crate::command!(
    /// Server to client, no answer: a model's committed change.
    pub Delta, DeltaArgs, Empty, NoError
);
crate::command!(
    /// Server to client, no answer: observe the model again.
    pub Resync, ResyncArgs, Empty, NoError
);
crate::command!(
    /// Server to client, no answer: a piece of a large snapshot.
    pub SnapshotPart, SnapshotPartArgs, Empty, NoError
);

/// The argument key that addresses a call to a handle. AMP reserves keys
/// starting with `_` for the protocol, and Twisted ignores keys a command
/// does not declare, so this cannot collide with a command's arguments.
pub const HANDLE_KEY: &str = "_handle";
