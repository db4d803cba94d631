//! Clients under suspicion, and the gate that serves them in turn.
//!
//! Every failed or refused login (wrong password, unknown login, over the
//! address's allowance, back-off, busy password lanes), on any transport,
//! counts against its client address; an address with
//! `auth.failures_before_backoff` of them, the last less than
//! [`SUSPECT_FOR`] ago, is *suspect*. (One typo does not make an office
//! behind one address suspect; a flood of guesses does, within its first
//! few.)
//!
//! Refusing a guess is cheap, but a flood of them is not: reading the
//! request, answering and writing the answer are most of what a server
//! does under a password-guessing flood, and a closed loop of attackers
//! fills every moment the server has. Served in turn with everyone else,
//! an honest request would wait behind every guess in flight, and every
//! thread the server has would be busy when it comes. So the transports
//! run each of a suspect client's connections through
//! [`SuspectGate::serve`]:
//!
//! - one suspect connection makes progress at a time, site-wide; the
//!   others wait their turn (first come, first served) without taking a
//!   thread;
//! - between them, suspects use at most `auth.suspect_cpu_share` of one
//!   core, averaged over a few milliseconds: past that, the next turn
//!   waits.
//!
//! Clients that are not suspect never wait at the gate, and with no flood
//! on, the gate is open and a suspect client notices little. A turn is
//! held only while a connection's future is polled, never across a wait,
//! so a suspect login waiting for its password check does not hold it.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use mantle_stats::Counter;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// How long an address stays suspect after its last failed or refused
/// login.
pub const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// Most addresses remembered; past it, those no longer counting are
/// forgotten (and all of them if that is not enough: forgetting only lets
/// an attacker's connections through the gate until they fail again).
const MAX_ADDRESSES: usize = 100_000;
/// The CPU time suspects may use at once before the share applies: the
/// share is an average over bursts this long.
const BURST: Duration = Duration::from_millis(5);

/// The block a client address is counted in, for every per-address limit
/// (login allowance, suspicion, connection caps): an IPv4 address is its
/// own block; an IPv6 address counts as its /64, which is what one
/// subscriber is usually given (so that an attacker cannot take a fresh
/// address for each attempt). An IPv4 address written as IPv6
/// (`::ffff:a.b.c.d`) is the IPv4 address.
///
/// ```
/// use mantle_site::address_block;
/// let a = address_block("2001:db8:1:2::7".parse().unwrap());
/// let b = address_block("2001:db8:1:2:ffff::1".parse().unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "2001:db8:1:2::");
/// assert_eq!(address_block("::ffff:192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7");
/// ```
pub fn address_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The site's suspect addresses and the gate their connections pass.
/// Cloning shares them.
///
/// ```
/// use mantle_site::SuspectGate;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Suspect after 2 failures; a quarter of a core between suspects.
/// let gate = SuspectGate::new(2, 0.25);
/// let ip = "192.0.2.7".parse().unwrap();
/// gate.note(ip);
/// assert!(!gate.is_suspect(ip));
/// gate.note(ip);
/// assert!(gate.is_suspect(ip));
/// // A connection's work, served in turn with other suspects'.
/// assert_eq!(gate.serve(Some(ip), async { 7 }).await, 7);
/// # });
/// ```
#[derive(Clone)]
pub struct SuspectGate {
    inner: Arc<Inner>,
}

struct Inner {
    /// Failed or refused logins per address.
    counts: RwLock<HashMap<IpAddr, Count>>,
    /// Counts at which an address is suspect.
    threshold: u32,
    /// One turn: held while a suspect connection is polled, and through
    /// the pause its CPU time calls for.
    turn: Arc<Semaphore>,
    share: f64,
    debt: Mutex<Debt>,
    /// Counted: turns served, and turns that ended with a pause.
    counters: Option<(Counter, Counter)>,
    /// The origin of `Count::last_ms`.
    epoch: Instant,
}

/// An address's failed or refused logins, the last at `last_ms`.
struct Count {
    n: AtomicU32,
    last_ms: AtomicU64,
}

/// CPU time suspects have used beyond their share, as of `at`.
struct Debt {
    owed: Duration,
    at: Instant,
}

impl SuspectGate {
    /// A gate for addresses with `threshold` failed or refused logins (at
    /// least one), whose connections use at most `cpu_share` of one core
    /// between them (clamped to 1%..100%).
    pub fn new(threshold: u32, cpu_share: f64) -> Self {
        Self::counted(threshold, cpu_share, None)
    }

    /// [`new`](Self::new), counting turns served and turns paused.
    pub(super) fn counted(
        threshold: u32,
        cpu_share: f64,
        counters: Option<(Counter, Counter)>,
    ) -> Self {
        let share = if cpu_share.is_finite() {
            cpu_share.clamp(0.01, 1.0)
        } else {
            1.0
        };
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                counts: RwLock::new(HashMap::new()),
                threshold: threshold.max(1),
                turn: Arc::new(Semaphore::new(1)),
                share,
                debt: Mutex::new(Debt {
                    owed: Duration::ZERO,
                    at: now,
                }),
                counters,
                epoch: now,
            }),
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    fn recent(&self, last_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(last_ms) < SUSPECT_FOR.as_millis() as u64
    }

    /// Counts a failed or refused login from `ip` (against its
    /// [`address_block`]).
    pub fn note(&self, ip: IpAddr) {
        self.note_at(address_block(ip), self.now_ms());
    }

    fn note_at(&self, ip: IpAddr, now: u64) {
        if let Some(c) = self.inner.counts.read().get(&ip) {
            let last = c.last_ms.swap(now, Ordering::Relaxed);
            if self.recent(last, now) {
                c.n.fetch_add(1, Ordering::Relaxed);
            } else {
                c.n.store(1, Ordering::Relaxed);
            }
            return;
        }
        let mut counts = self.inner.counts.write();
        if counts.len() >= MAX_ADDRESSES {
            counts.retain(|_, c| self.recent(c.last_ms.load(Ordering::Relaxed), now));
            if counts.len() >= MAX_ADDRESSES {
                counts.clear();
            }
        }
        let c = counts.entry(ip).or_insert(Count {
            n: AtomicU32::new(0),
            last_ms: AtomicU64::new(now),
        });
        c.n.fetch_add(1, Ordering::Relaxed);
        c.last_ms.store(now, Ordering::Relaxed);
    }

    /// How many addresses are suspect now.
    pub fn suspects(&self) -> usize {
        let now = self.now_ms();
        let counts = self.inner.counts.read();
        counts
            .keys()
            .filter(|ip| self.is_suspect_in(&counts, **ip, now))
            .count()
    }

    /// Whether `ip` (its [`address_block`]) is suspect now.
    pub fn is_suspect(&self, ip: IpAddr) -> bool {
        self.is_suspect_at(address_block(ip), self.now_ms())
    }

    fn is_suspect_at(&self, ip: IpAddr, now: u64) -> bool {
        self.is_suspect_in(&self.inner.counts.read(), ip, now)
    }

    fn is_suspect_in(&self, counts: &HashMap<IpAddr, Count>, ip: IpAddr, now: u64) -> bool {
        counts.get(&ip).is_some_and(|c| {
            c.n.load(Ordering::Relaxed) >= self.inner.threshold
                && self.recent(c.last_ms.load(Ordering::Relaxed), now)
        })
    }

    /// Runs `work` (a connection, say) for a client at `peer`: each time
    /// it is polled while the client is suspect, it first waits its turn.
    pub fn serve<F: Future>(&self, peer: Option<IpAddr>, work: F) -> Gated<F> {
        Gated {
            work,
            peer: peer.map(address_block),
            gate: self.clone(),
            turn: PollSemaphore::new(self.inner.turn.clone()),
            waiting: false,
        }
    }

    /// Ends a turn that took `used`: at once, or after the pause that
    /// keeps suspects within their share.
    fn end_turn(&self, turn: OwnedSemaphorePermit, used: Duration) {
        let pause = {
            let mut debt = self.inner.debt.lock();
            let now = Instant::now();
            let repaid = now.duration_since(debt.at).mul_f64(self.inner.share);
            debt.owed = debt.owed.saturating_sub(repaid) + used;
            debt.at = now;
            debt.owed
                .checked_sub(BURST)
                .map(|over| over.div_f64(self.inner.share))
        };
        if let Some((turns, paused)) = &self.inner.counters {
            turns.inc();
            if pause.is_some() {
                paused.inc();
            }
        }
        match (pause, tokio::runtime::Handle::try_current()) {
            (Some(pause), Ok(runtime)) if !pause.is_zero() => {
                runtime.spawn(async move {
                    tokio::time::sleep(pause).await;
                    drop(turn);
                });
            }
            _ => drop(turn),
        }
    }
}

impl Default for SuspectGate {
    /// The gate of the default `[auth]` settings.
    fn default() -> Self {
        let auth = crate::AuthConfig::default();
        Self::new(auth.failures_before_backoff, auth.suspect_cpu_share)
    }
}

impl std::fmt::Debug for SuspectGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuspectGate")
            .field("addresses", &self.inner.counts.read().len())
            .field("threshold", &self.inner.threshold)
            .field("cpu_share", &self.inner.share)
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// A future run through a [`SuspectGate`] (see [`SuspectGate::serve`]).
    pub struct Gated<F> {
        #[pin]
        work: F,
        // The client's address block.
        peer: Option<IpAddr>,
        gate: SuspectGate,
        turn: PollSemaphore,
        // Invariant: once waiting for a turn, the wait is finished even if
        // the client stops being suspect meanwhile, so that a turn granted
        // to this future is never left unused at the head of the queue.
        waiting: bool,
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // `peer` is a block already (see `serve`).
        let suspect = *this.waiting
            || this
                .peer
                .is_some_and(|ip| this.gate.is_suspect_at(ip, this.gate.now_ms()));
        if !suspect {
            return this.work.poll(cx);
        }
        *this.waiting = true;
        let turn = ready!(this.turn.poll_acquire(cx));
        *this.waiting = false;
        let started = Instant::now();
        let polled = this.work.poll(cx);
        // `None` only if the semaphore were closed, which it never is.
        if let Some(turn) = turn {
            this.gate.end_turn(turn, started.elapsed());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn an_address_is_suspect_from_the_threshold_on() {
        let gate = SuspectGate::new(3, 1.0);
        for _ in 0..2 {
            gate.note(ip(1));
        }
        assert!(!gate.is_suspect(ip(1)));
        gate.note(ip(1));
        assert!(gate.is_suspect(ip(1)));
        assert!(!gate.is_suspect(ip(2)));
    }

    #[test]
    fn suspicion_ends_and_counts_start_over_after_a_quiet_spell() {
        let gate = SuspectGate::new(2, 1.0);
        let window = SUSPECT_FOR.as_millis() as u64;
        gate.note_at(ip(1), 1);
        gate.note_at(ip(1), 2);
        assert!(gate.is_suspect_at(ip(1), window));
        assert!(!gate.is_suspect_at(ip(1), window + 2));
        // One more failure long after: the count starts over.
        gate.note_at(ip(1), 3 * window);
        assert!(!gate.is_suspect_at(ip(1), 3 * window));
        gate.note_at(ip(1), 3 * window + 1);
        assert!(gate.is_suspect_at(ip(1), 3 * window + 1));
    }

    #[test]
    fn an_ipv6_client_is_suspect_by_its_64() {
        let gate = SuspectGate::new(2, 1.0);
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        // Each guess from a fresh address in the same /64.
        gate.note(v6("2001:db8::1"));
        gate.note(v6("2001:db8::2"));
        assert!(gate.is_suspect(v6("2001:db8::ffff:3")));
        assert!(!gate.is_suspect(v6("2001:db8:0:1::1")));
        // IPv4 written as IPv6 is the IPv4 address.
        gate.note(v6("::ffff:192.0.2.9"));
        gate.note(IpAddr::from([192, 0, 2, 9]));
        assert!(gate.is_suspect(IpAddr::from([192, 0, 2, 9])));
    }

    #[test]
    fn the_table_stays_bounded() {
        let gate = SuspectGate::new(1, 1.0);
        for n in 0..(MAX_ADDRESSES as u32 + 10) {
            gate.note(IpAddr::from(n.to_be_bytes()));
        }
        assert!(gate.inner.counts.read().len() <= MAX_ADDRESSES);
    }

    #[test]
    fn odd_shares_are_clamped() {
        assert_eq!(SuspectGate::new(1, f64::NAN).inner.share, 1.0);
        assert_eq!(SuspectGate::new(1, 0.0).inner.share, 0.01);
        assert_eq!(SuspectGate::new(0, 7.0).inner.threshold, 1);
    }

    /// Polls that note how many run at once, each busy for `busy`.
    async fn work(running: Arc<AtomicUsize>, most: Arc<AtomicUsize>, busy: Duration) {
        for _ in 0..10 {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(busy);
            running.fetch_sub(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    }

    /// Runs 4 clients' work from `peer` at once; how many ran at once at
    /// most.
    async fn most_at_once(gate: &SuspectGate, peer: IpAddr, busy: Duration) -> usize {
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let work = work(running.clone(), most.clone(), busy);
                tokio::spawn(gate.serve(Some(peer), work))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn suspects_make_progress_one_at_a_time_and_others_freely() {
        let gate = SuspectGate::new(1, 1.0);
        gate.note(ip(1));
        let busy = Duration::from_millis(2);
        assert_eq!(most_at_once(&gate, ip(1), busy).await, 1);
        assert!(most_at_once(&gate, ip(2), busy).await > 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn suspects_keep_to_their_share_of_a_core() {
        // 4 clients × 10 polls × 2 ms = 80 ms of work; at a fifth of a
        // core, beyond the first burst, that takes at least five times as
        // long (more on a slow machine, never less).
        let gate = SuspectGate::new(1, 0.2);
        gate.note(ip(1));
        let started = Instant::now();
        most_at_once(&gate, ip(1), Duration::from_millis(2)).await;
        let least = (Duration::from_millis(80) - BURST).mul_f64(5.0);
        assert!(started.elapsed() >= least, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_turn_is_not_held_across_a_wait() {
        let gate = SuspectGate::new(1, 1.0);
        gate.note(ip(1));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The first suspect waits for something else (its password check,
        // say); a second one is served meanwhile.
        let waiting = tokio::spawn(gate.serve(Some(ip(1)), rx));
        tokio::task::yield_now().await;
        let served = tokio::time::timeout(
            Duration::from_secs(5),
            gate.serve(Some(ip(1)), async { "served" }),
        )
        .await;
        assert_eq!(served.unwrap(), "served");
        tx.send(()).unwrap();
        waiting.await.unwrap().unwrap();
    }
}
