//! One bare AMP connection: calls with any command and arguments, answered
//! by tag, and nothing else (no login, no reconnection). For peers that
//! speak commands of their own, such as the nodes of a Mantle cluster.

use std::sync::Arc;

use mantle_amp::AmpBox;
use mantle_live::NoError;

use crate::client::ask;
use crate::conn::{Conn, OnRequest, refuse};
use crate::{CallError, ClientTls};

/// One plain AMP connection (see the module docs). Requests the other
/// side sends are refused (`UNHANDLED`).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mantle_amp::AmpBox;
///
/// let conn = mantle_client::Connection::open("127.0.0.1:7001", 1 << 20).await?;
/// let answer = conn.call("Sum", AmpBox::new().with("a", "1").with("b", "2")).await?;
/// println!("{:?}", answer.get("total"));
/// # Ok(()) }
/// ```
pub struct Connection {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Connection {
    /// Connects to the AMP listener at `addr` (`host:port`, plain AMP),
    /// taking answers of up to `max_box` bytes (a larger one ends the
    /// connection).
    pub async fn open(addr: &str, max_box: usize) -> std::io::Result<Self> {
        Self::open_with(addr, None, max_box).await
    }

    /// [`Connection::open`], over TLS with `tls` when given.
    pub async fn open_with(
        addr: &str,
        tls: Option<&ClientTls>,
        max_box: usize,
    ) -> std::io::Result<Self> {
        let on_request: OnRequest = Arc::new(|conn, command, tag, _| refuse(conn, &command, tag));
        let (conn, _closed) = Conn::open(addr, tls, max_box, on_request).await?;
        Ok(Self { conn })
    }

    /// Calls `command` with `args`: the answer's values, the other side's
    /// error ([`CallError::Remote`]), or [`CallError::ConnectionLost`].
    pub async fn call(&self, command: &str, args: AmpBox) -> Result<AmpBox, CallError<NoError>> {
        ask(&self.conn, command, args, None).await
    }

    /// Whether the connection is still open.
    pub fn is_alive(&self) -> bool {
        self.conn.is_alive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.conn.close();
    }
}
