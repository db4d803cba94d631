//! Commands: a name, typed arguments, a typed answer and typed errors.

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::schema::Arguments;

/// A remote command, declared once and served over every transport.
///
/// ```
/// use mantle_live::{Command, NoError, arguments};
///
/// arguments! {
///     pub struct SumArgs { pub a: i64, pub b: i64 }
///     pub struct SumAnswer { pub total: i64 }
/// }
/// /// Adds two integers (the classic AMP example).
/// pub struct Sum;
/// impl Command for Sum {
///     const NAME: &'static str = "Sum";
///     type Args = SumArgs;
///     type Answer = SumAnswer;
///     type Error = NoError;
/// }
/// ```
pub trait Command: Send + Sync + 'static {
    /// The wire name (`_command` on AMP, `command` in JSON).
    const NAME: &'static str;
    /// The arguments.
    type Args: Arguments;
    /// The answer.
    type Answer: Arguments;
    /// The errors this command may answer with (besides the
    /// [`codes`] every command may get).
    type Error: CommandError;
}

/// A command's typed errors: an enum serialized with `#[serde(tag =
/// "code")]`, each variant renamed to its wire code; variant fields travel
/// as the error's details. `Display` gives the description.
///
/// ```
/// #[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
/// #[serde(tag = "code")]
/// pub enum EditError {
///     #[error("someone saved a newer revision ({current_revision})")]
///     #[serde(rename = "SAVE_CONFLICT")]
///     SaveConflict { current_revision: i64 },
/// }
/// impl mantle_live::CommandError for EditError {}
/// ```
pub trait CommandError:
    Serialize + DeserializeOwned + fmt::Display + fmt::Debug + Send + Sync + 'static
{
}

/// Declares a command: a unit struct named after its wire name, and its
/// [`Command`] impl.
///
/// ```
/// use mantle_live::{NoError, arguments, command};
///
/// arguments! {
///     pub struct SumArgs { pub a: i64, pub b: i64 }
///     pub struct SumAnswer { pub total: i64 }
/// }
/// command!(
///     /// Adds two integers.
///     pub Sum, SumArgs, SumAnswer, NoError
/// );
/// assert_eq!(<Sum as mantle_live::Command>::NAME, "Sum");
/// ```
#[macro_export]
macro_rules! command {
    ($(#[$meta:meta])* $vis:vis $name:ident, $args:ty, $answer:ty, $err:ty $(,)?) => {
        $(#[$meta])*
        $vis struct $name;
        impl $crate::Command for $name {
            const NAME: &'static str = stringify!($name);
            type Args = $args;
            type Answer = $answer;
            type Error = $err;
        }
    };
}

/// The errors of a command that has none of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoError {}

impl fmt::Display for NoError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}
impl CommandError for NoError {}

/// Error codes any command can answer with.
pub mod codes {
    /// Not logged in (or a wrong login): the built-ins' `UNAUTHORIZED`.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// AMP's code for a handler that failed unexpectedly (Twisted's
    /// "Unknown Error").
    pub const UNKNOWN: &str = "UNKNOWN";
    /// AMP's code for a command the server has no responder for (Twisted's
    /// "Unhandled Command").
    pub const UNHANDLED: &str = "UNHANDLED";
    /// Arguments missing or of the wrong type.
    pub const BAD_ARGUMENTS: &str = "BAD_ARGUMENTS";
    /// A message that is not a well-formed request (JSON transport).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// A call on a handle that this connection does not hold (released, or
    /// from an earlier connection).
    pub const NO_SUCH_HANDLE: &str = "NO_SUCH_HANDLE";
    /// Observing a model that does not exist.
    pub const NO_SUCH_MODEL: &str = "NO_SUCH_MODEL";
    /// Logged in, but not allowed to do this.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// Too many login attempts from one address; try again later.
    pub const TOO_MANY_ATTEMPTS: &str = "TOO_MANY_ATTEMPTS";
    /// A save against a stale revision (see
    /// [`SaveConflict`](crate::SaveConflict)).
    pub const SAVE_CONFLICT: &str = "SAVE_CONFLICT";
    /// Nothing by that name for this caller: no such share, or one the
    /// caller may not use for this (the two are one answer).
    pub const NOT_FOUND: &str = "NOT_FOUND";
}

/// An error as it travels: a code, a description for people, and the typed
/// error's fields (if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {description}")]
pub struct RemoteError {
    /// The error code (`_error_code`).
    pub code: String,
    /// What went wrong (`_error_description`).
    pub description: String,
    /// The typed error's fields, for example a conflict's current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

impl RemoteError {
    /// An error with a code and a description and no details.
    pub fn new(code: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            description: description.into(),
            details: None,
        }
    }

    /// The wire form of a typed error.
    pub fn from_typed<E: CommandError>(error: &E) -> Self {
        let description = error.to_string();
        match serde_json::to_value(error) {
            Ok(Value::Object(mut fields)) => {
                let code = match fields.remove("code") {
                    Some(Value::String(c)) => c,
                    _ => codes::UNKNOWN.to_string(),
                };
                Self {
                    code,
                    description,
                    details: (!fields.is_empty()).then_some(fields),
                }
            }
            _ => Self::new(codes::UNKNOWN, description),
        }
    }

    /// The typed error this is, if its code is one of `E`'s.
    pub fn to_typed<E: CommandError>(&self) -> Option<E> {
        let mut fields = self.details.clone().unwrap_or_default();
        fields.insert("code".into(), Value::String(self.code.clone()));
        serde_json::from_value(Value::Object(fields)).ok()
    }
}

/// The typed error for a save against a stale revision: the client re-reads
/// and retries. Commands that save use it as (part of) their `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code")]
pub enum SaveConflict {
    /// The item changed since the revision the client saw.
    #[serde(rename = "SAVE_CONFLICT")]
    #[error(
        "the item was saved by someone else since revision {your_revision}; it is now at revision {current_revision}"
    )]
    SaveConflict {
        /// The revision the client saved against.
        your_revision: i64,
        /// The item's revision now.
        current_revision: i64,
    },
}
impl CommandError for SaveConflict {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_travel_as_code_description_and_details() {
        let e = SaveConflict::SaveConflict {
            your_revision: 2,
            current_revision: 5,
        };
        let wire = RemoteError::from_typed(&e);
        assert_eq!(wire.code, "SAVE_CONFLICT");
        assert!(
            wire.description.contains("revision 5"),
            "{}",
            wire.description
        );
        assert_eq!(wire.details.as_ref().unwrap()["current_revision"], 5);
        assert_eq!(wire.to_typed::<SaveConflict>(), Some(e));
        assert_eq!(
            RemoteError::new("OTHER", "x").to_typed::<SaveConflict>(),
            None
        );
    }
}
