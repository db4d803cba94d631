//! The commands every Mantle live endpoint serves, and the two it pushes.
//!
//! Wire names and argument names are fixed: other clients (Twisted, the
//! browser script) use them as written here.

use serde::{Deserialize, Serialize};

use crate::command::{CommandError, NoError};
use crate::schema::{Empty, Handle};

crate::arguments! {
    /// `Login` arguments.
    pub struct LoginArgs {
        /// The login: `alice@example.com`, or `alice` on the site's domain.
        pub username: String,
        /// The account's password.
        pub password: String,
    }
    /// `Login` answer: a login token, usable on HTTP too.
    pub struct LoginAnswer {
        /// The new token: `Authenticate` takes it on another connection,
        /// HTTP as `Authorization: Bearer`.
        pub token: String,
    }
    /// `Authenticate` arguments: a token from an HTTP login (or `Login`).
    pub struct AuthenticateArgs {
        /// The token to act with from now on.
        pub token: String,
    }
    /// `Whoami` (and `Authenticate`) answer.
    pub struct WhoamiAnswer {
        /// The login the connection acts as (`alice@example.com`).
        pub username: String,
    }
    /// `Observe` arguments: the model, and the last sequence seen, if any.
    pub struct ObserveArgs {
        /// The model's name (`list:groceries`).
        pub model: String,
        /// The last sequence number this client saw, to resume after it;
        /// none for a snapshot.
        pub since: Option<i64>,
    }
    /// `Observe` answer.
    ///
    /// `resumed`: the deltas after `since` follow as `Delta` pushes, and no
    /// snapshot is sent. Otherwise `snapshot` is the model at `sequence`,
    /// or, when its JSON text is longer than an AMP value can carry
    /// (65,535 bytes), it comes as `parts` `SnapshotPart` pushes instead.
    /// Either way, `Delta` pushes with later sequences follow, in order.
    pub struct ObserveAnswer {
        /// The model's latest sequence number: what the snapshot shows, or
        /// what the resumed deltas lead up to.
        pub sequence: i64,
        /// Whether the deltas after `since` follow instead of a snapshot.
        pub resumed: bool,
        /// The model at `sequence`, unless resumed or sent in parts.
        pub snapshot: Option<serde_json::Value>,
        /// How many `SnapshotPart` pushes carry the snapshot instead.
        pub parts: Option<i64>,
    }
    /// `Unobserve` arguments.
    pub struct UnobserveArgs {
        /// The model to stop observing.
        pub model: String,
    }
    /// `Release` arguments: a handle the client no longer needs.
    pub struct ReleaseArgs {
        /// The handle to drop; calls on it then answer `NO_SUCH_HANDLE`.
        pub handle: Handle,
    }
    /// `Delta` (pushed): one committed change of an observed model.
    pub struct DeltaArgs {
        /// The model changed.
        pub model: String,
        /// This change's sequence number, one past the previous one.
        pub sequence: i64,
        /// The change, as the model's controller published it.
        pub delta: serde_json::Value,
    }
    /// `Resync` (pushed): the server cannot continue the model's deltas;
    /// observe it again with the last sequence seen.
    pub struct ResyncArgs {
        /// The model to observe again.
        pub model: String,
        /// Why its deltas cannot continue (for people reading logs).
        pub reason: String,
    }
    /// `Ended` (pushed): the server ended an observation for good — the
    /// share it was granted through was withdrawn, say (`code`
    /// `NOT_FOUND`). No more deltas follow; observing again is refused the
    /// same way.
    pub struct EndedArgs {
        /// The model no longer observed.
        pub model: String,
        /// Why, as an error code (`NOT_FOUND`).
        pub code: String,
        /// Why, for people.
        pub reason: String,
    }
    /// `SnapshotPart` (pushed, AMP only): piece `part` (from 1) of `parts`
    /// of a snapshot too long for one AMP value. Joined in order, the
    /// `text`s are the snapshot's JSON text. They follow the `Observe`
    /// answer that announced them, before any `Delta`.
    pub struct SnapshotPartArgs {
        /// The model whose snapshot this is.
        pub model: String,
        /// The sequence number the snapshot is at.
        pub sequence: i64,
        /// This piece's place, from 1.
        pub part: i64,
        /// How many pieces the snapshot comes in.
        pub parts: i64,
        /// This piece of the snapshot's JSON text (valid UTF-8 on its own).
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
    /// Server to client, no answer: an observation ended for good.
    pub Ended, EndedArgs, Empty, NoError
);
crate::command!(
    /// Server to client, no answer: a piece of a large snapshot.
    pub SnapshotPart, SnapshotPartArgs, Empty, NoError
);

/// The argument key that addresses a call to a handle. AMP reserves keys
/// starting with `_` for the protocol, and Twisted ignores keys a command
/// does not declare, so this cannot collide with a command's arguments.
pub const HANDLE_KEY: &str = "_handle";
