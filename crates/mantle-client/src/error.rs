//! What a call can fail with.

use mantle_live::RemoteError;

/// Why a call failed. Every failure arrives here, on the call's future,
/// including the loss of the connection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError<E> {
    /// One of the command's typed errors.
    #[error("{0}")]
    Command(E),
    /// An error the command does not declare (`UNAUTHORIZED`, `UNHANDLED`,
    /// `UNKNOWN`, `NO_SUCH_HANDLE`, ...).
    #[error("{0}")]
    Remote(RemoteError),
    /// The client is offline, or the connection was lost before the answer
    /// came. The call may or may not have run on the server.
    #[error("connection lost")]
    ConnectionLost,
    /// The arguments could not be encoded, or the answer decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl<E> CallError<E> {
    /// The error's wire code, when it has one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Remote(r) => Some(&r.code),
            _ => None,
        }
    }

    /// The same error with the typed part mapped.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> CallError<F> {
        match self {
            CallError::Command(e) => CallError::Command(f(e)),
            CallError::Remote(r) => CallError::Remote(r),
            CallError::ConnectionLost => CallError::ConnectionLost,
            CallError::Protocol(p) => CallError::Protocol(p),
        }
    }
}

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection (or its TLS handshake) could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Connected, but logging in failed.
    #[error("login failed: {0}")]
    Login(CallError<mantle_live::builtin::Unauthorized>),
}
