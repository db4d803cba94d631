//! What a stranger's connections may hold: caps and time-outs for any
//! TCP listener (the HTTP front and the AMP listener both use them).
//!
//! - **A cap on connections**, in all and per client address. When the
//!   listener is full, a new connection takes the place of the one that has
//!   been quiet longest (it is closed), provided that one has been quiet
//!   for at least [`EVICTABLE_AFTER`]; otherwise the new one is refused.
//!   So idle connections can never lock a legitimate client out: they
//!   are churned, while a connection in use is never the quietest.
//! - **A deadline** until the connection proves useful (HTTP: its first
//!   byte; AMP: a successful login), counted from the accept whatever
//!   trickles in meanwhile, so a slow drip of bytes cannot hold it.
//! - **An idle time-out** after that: no byte read for that long and the
//!   connection is closed. Only reads count: a server's own writes (pings,
//!   pushes) must not keep alive a peer that says nothing.
//!
//! The time-outs live in the connection's I/O ([`Guarded`]), so they hold
//! whatever protocol runs on top (HTTP/1, HTTP/2, WebSocket after an
//! upgrade, AMP).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection must have been quiet before a new one may take
/// its place.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// A listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once.
    pub max: usize,
    /// Connections held at once from one client address.
    pub per_address: usize,
    /// Time from accept until the connection must have proved useful.
    pub deadline: Duration,
    /// Longest time without reading a byte, once it has.
    pub idle: Duration,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address (its block: an IPv6 client's /64) holds its share
    /// already.
    #[error("client address block {0} holds its maximum of connections")]
    PerAddress(IpAddr),
    /// Full, and every connection was active within [`EVICTABLE_AFTER`].
    #[error("listener full: every connection is in use")]
    Full,
}

/// Milliseconds since the table's epoch (monotonic).
fn millis(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// A connection's state, shared by its I/O and the table.
struct Activity {
    epoch: Instant,
    /// Last byte read, in ms since `epoch`.
    last_read: AtomicU64,
    /// The fixed deadline in ms since `epoch`; 0 once it no longer holds.
    deadline: AtomicU64,
    idle_ms: AtomicU64,
    killed: AtomicBool,
    waker: AtomicWaker,
}

impl Activity {
    /// When the connection times out if nothing more is read.
    fn expires(&self) -> Instant {
        let fixed = self.deadline.load(Ordering::Relaxed);
        let at = if fixed != 0 {
            fixed
        } else {
            self.last_read
                .load(Ordering::Relaxed)
                .saturating_add(self.idle_ms.load(Ordering::Relaxed))
        };
        self.epoch + Duration::from_millis(at)
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

struct Entry {
    peer: IpAddr,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
    evicted: u64,
    refused: u64,
}

/// The connections of one listener (clone to share).
#[derive(Clone)]
pub struct Connections {
    table: Arc<Mutex<Table>>,
    limits: ConnectionLimits,
    epoch: Instant,
}

impl Connections {
    /// An empty table with these limits.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            table: Arc::default(),
            limits,
            epoch: Instant::now(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.table.lock().conns.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections closed to make room, and refused, since the start.
    pub fn evicted_and_refused(&self) -> (u64, u64) {
        let t = self.table.lock();
        (t.evicted, t.refused)
    }

    /// Admits a connection from `peer`, closing the quietest one if the
    /// listener is full; wrap its stream with [`Admitted::guard`].
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        // Counted per block: an IPv6 client's /64 (see `address_block`).
        let peer = mantle_site::address_block(peer);
        let now = Instant::now();
        let mut t = self.table.lock();
        if t.per_address.get(&peer).copied().unwrap_or(0) >= self.limits.per_address {
            t.refused += 1;
            return Err(Refusal::PerAddress(peer));
        }
        if t.conns.len() >= self.limits.max {
            // The quietest of all. (The quietest of a sample of 64 was
            // tried: cheaper, but in `mantle bench hostile` it found no
            // connection quiet for a second often enough to refuse 4,800
            // newcomers and 3 of 56 real logins, against none with the
            // full scan.)
            let quietest = t
                .conns
                .iter()
                .min_by_key(|(_, e)| e.activity.last_read.load(Ordering::Relaxed))
                .map(|(id, e)| (*id, e.activity.last_read.load(Ordering::Relaxed)));
            match quietest {
                Some((id, last))
                    if millis(self.epoch, now).saturating_sub(last)
                        >= EVICTABLE_AFTER.as_millis() as u64 =>
                {
                    let e = t.conns.remove(&id).expect("found above");
                    release(&mut t.per_address, e.peer);
                    e.activity.kill();
                    t.evicted += 1;
                }
                _ => {
                    t.refused += 1;
                    return Err(Refusal::Full);
                }
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let started = millis(self.epoch, now);
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            last_read: AtomicU64::new(started),
            deadline: AtomicU64::new(
                started
                    .saturating_add(self.limits.deadline.as_millis() as u64)
                    .max(1),
            ),
            idle_ms: AtomicU64::new(self.limits.idle.as_millis() as u64),
            killed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        t.conns.insert(
            id,
            Entry {
                peer,
                activity: activity.clone(),
            },
        );
        *t.per_address.entry(peer).or_insert(0) += 1;
        Ok(Admitted {
            table: self.table.clone(),
            id,
            activity,
            per_address: self.limits.per_address,
        })
    }
}

fn release(per_address: &mut HashMap<IpAddr, usize>, peer: IpAddr) {
    if let Some(n) = per_address.get_mut(&peer) {
        *n -= 1;
        if *n == 0 {
            per_address.remove(&peer);
        }
    }
}

/// A connection's place in the table, given back when dropped.
pub struct Admitted {
    table: Arc<Mutex<Table>>,
    id: u64,
    activity: Arc<Activity>,
    /// The table's cap per address.
    per_address: usize,
}

impl Admitted {
    /// Wraps the connection's stream with the time-outs. `until_first_byte`:
    /// the deadline ends with the first byte read (HTTP); otherwise it
    /// holds until [`DeadlineHandle::proved`] (AMP: at login).
    pub fn guard<IO>(self, io: IO, until_first_byte: bool) -> Guarded<IO> {
        let sleep = Box::pin(tokio::time::sleep_until(self.activity.expires()));
        Guarded {
            io,
            sleep,
            until_first_byte,
            place: self,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        // Gone already if it was evicted.
        if let Some(e) = t.conns.remove(&self.id) {
            release(&mut t.per_address, e.peer);
        }
    }
}

/// Moves a connection's place in its listener's count to another address
/// (see [`Guarded::recount`]).
#[derive(Clone)]
pub struct Recount {
    table: Arc<Mutex<Table>>,
    id: u64,
    per_address: usize,
}

impl Recount {
    /// Counts the connection as `peer`'s from now on, not its sender's: a
    /// cluster node's connection passed on for a client, once the node's
    /// voucher names the client, so that the client's connections through
    /// other nodes share the client's cap, not the node's. Refused (the
    /// connection staying as it was) if `peer` holds its cap already.
    pub fn count_as(&self, peer: IpAddr) -> Result<(), Refusal> {
        let peer = mantle_site::address_block(peer);
        let mut t = self.table.lock();
        let Some(now) = t.conns.get(&self.id).map(|e| e.peer) else {
            return Ok(()); // evicted: it is ending anyway
        };
        if now == peer {
            return Ok(());
        }
        if t.per_address.get(&peer).copied().unwrap_or(0) >= self.per_address {
            t.refused += 1;
            return Err(Refusal::PerAddress(peer));
        }
        release(&mut t.per_address, now);
        *t.per_address.entry(peer).or_insert(0) += 1;
        if let Some(e) = t.conns.get_mut(&self.id) {
            e.peer = peer;
        }
        Ok(())
    }
}

/// Lets the protocol end a connection's deadline (see [`Guarded::deadline`]).
#[derive(Clone)]
pub struct DeadlineHandle(Arc<Activity>);

impl DeadlineHandle {
    /// The connection proved useful: from now on only the idle time-out
    /// holds, here `idle`.
    pub fn proved(&self, idle: Duration) {
        self.0
            .idle_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
        self.0.deadline.store(0, Ordering::Relaxed);
    }
}

/// A stream with its listener's time-outs (see the module docs).
pub struct Guarded<IO> {
    io: IO,
    sleep: Pin<Box<Sleep>>,
    until_first_byte: bool,
    place: Admitted,
}

impl<IO> Guarded<IO> {
    /// A handle to end the deadline from the protocol's side.
    pub fn deadline(&self) -> DeadlineHandle {
        DeadlineHandle(self.place.activity.clone())
    }

    /// A handle that counts the connection as another address's (see
    /// [`Recount::count_as`]).
    pub fn recount(&self) -> Recount {
        Recount {
            table: self.place.table.clone(),
            id: self.place.id,
            per_address: self.place.per_address,
        }
    }

    /// Whether the time-out (or an eviction) has ended the connection;
    /// registers to be woken when it does.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let a = &self.place.activity;
        a.waker.register(cx.waker());
        if a.killed.load(Ordering::Acquire) {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new connection",
            ));
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return None;
            }
            let expires = a.expires();
            if expires <= Instant::now() {
                return Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past its time-out",
                ));
            }
            // Something was read since the timer was set: wait on.
            self.sleep.as_mut().reset(expires);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && buf.filled().len() > before
        {
            let a = &this.place.activity;
            a.last_read
                .store(millis(a.epoch, Instant::now()), Ordering::Relaxed);
            if this.until_first_byte {
                this.until_first_byte = false;
                a.deadline.store(0, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.place.activity.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.place.activity.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max: usize, per_address: usize) -> ConnectionLimits {
        ConnectionLimits {
            max,
            per_address,
            deadline: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_passed_on_counts_as_its_client_up_to_the_clients_cap() {
        let c = Connections::new(limits(10, 2));
        // Two connections from a node (ip 9), passed on for clients 1 and 2.
        let from_node = [c.admit(ip(9)).unwrap(), c.admit(ip(9)).unwrap()];
        let guarded: Vec<_> = from_node
            .into_iter()
            .map(|p| p.guard(tokio::io::empty(), true))
            .collect();
        guarded[0].recount().count_as(ip(1)).unwrap();
        guarded[1].recount().count_as(ip(2)).unwrap();
        // The node's own address holds nothing now; each client one.
        let _n = [c.admit(ip(9)).unwrap(), c.admit(ip(9)).unwrap()];
        let _one = c.admit(ip(1)).unwrap();
        assert_eq!(c.admit(ip(1)).err(), Some(Refusal::PerAddress(ip(1))));
        // A client at its cap is refused another, which stays the node's.
        let third = c.admit(ip(3)).unwrap().guard(tokio::io::empty(), true);
        assert_eq!(
            third.recount().count_as(ip(1)).err(),
            Some(Refusal::PerAddress(ip(1)))
        );
        drop(guarded);
        c.admit(ip(1)).unwrap();
        c.admit(ip(2)).unwrap();
    }

    #[tokio::test]
    async fn the_per_address_cap_holds_and_places_are_given_back() {
        let c = Connections::new(limits(10, 2));
        let a = c.admit(ip(1)).unwrap();
        let _b = c.admit(ip(1)).unwrap();
        assert_eq!(c.admit(ip(1)).err(), Some(Refusal::PerAddress(ip(1))));
        c.admit(ip(2)).unwrap();
        drop(a);
        c.admit(ip(1)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_client_is_capped_by_its_64_whichever_address_it_takes() {
        let c = Connections::new(limits(10, 2));
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = c.admit(v6("2001:db8:1:2::1")).unwrap();
        let _b = c.admit(v6("2001:db8:1:2::2")).unwrap();
        assert_eq!(
            c.admit(v6("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerAddress(v6("2001:db8:1:2::")))
        );
        // The next /64 is another client.
        c.admit(v6("2001:db8:1:3::1")).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn when_full_the_quietest_connection_makes_room_unless_all_are_busy() {
        let c = Connections::new(limits(2, 10));
        let old = c.admit(ip(1)).unwrap();
        tokio::time::advance(Duration::from_millis(500)).await;
        let _newer = c.admit(ip(2)).unwrap();
        // Both were active within EVICTABLE_AFTER: refused.
        assert_eq!(c.admit(ip(3)).err(), Some(Refusal::Full));
        tokio::time::advance(Duration::from_millis(600)).await;
        // Now the first has been quiet 1.1 s: it goes.
        let _third = c.admit(ip(3)).unwrap();
        assert!(old.activity.killed.load(Ordering::Acquire));
        assert_eq!(c.len(), 2);
        assert_eq!(c.evicted_and_refused(), (1, 1));
        drop(old);
        assert_eq!(c.len(), 2, "an evicted place is not given back twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_times_out_at_its_deadline() {
        let c = Connections::new(limits(10, 10));
        let (client, server) = tokio::io::duplex(64);
        let mut g = c.admit(ip(1)).unwrap().guard(server, true);
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_does_not_extend_the_deadline_until_it_is_proved() {
        let c = Connections::new(limits(10, 10));
        let (mut client, server) = tokio::io::duplex(64);
        let mut g = c.admit(ip(1)).unwrap().guard(server, false);
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            loop {
                if let Err(e) = g.read_exact(&mut buf).await {
                    return (e.kind(), start.elapsed());
                }
            }
        });
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if client.write_all(b"x").await.is_err() {
                break;
            }
        }
        let (kind, ended) = reader.await.unwrap();
        assert_eq!(kind, io::ErrorKind::TimedOut);
        assert_eq!(ended, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn once_proved_only_idleness_ends_a_connection() {
        let c = Connections::new(limits(10, 10));
        let (mut client, server) = tokio::io::duplex(64);
        let mut g = c.admit(ip(1)).unwrap().guard(server, false);
        g.deadline().proved(Duration::from_secs(30));
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            loop {
                if let Err(e) = g.read_exact(&mut buf).await {
                    return e.kind();
                }
            }
        });
        // Bytes every 20 s keep it for a minute past the deadline…
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            client.write_all(b"x").await.unwrap();
        }
        // …then silence ends it 30 s after the last byte.
        assert_eq!(reader.await.unwrap(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(110));
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_ends_at_once() {
        let c = Connections::new(limits(1, 10));
        let (_client, server) = tokio::io::duplex(64);
        let mut g = c.admit(ip(1)).unwrap().guard(server, true);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            g.read(&mut buf).await.unwrap_err().kind()
        });
        tokio::time::advance(Duration::from_secs(2)).await;
        let _new = c.admit(ip(2)).unwrap();
        assert_eq!(reader.await.unwrap(), io::ErrorKind::ConnectionAborted);
    }
}
