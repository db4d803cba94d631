//! Limits on guessing passwords, for every transport at once.
//!
//! One `LoginGuard` per site counts, whatever the transport (HTTP form,
//! JSON API, AMP, WebSocket):
//!
//! - **attempts per client address**: `auth.login_attempts_per_minute`,
//!   refilled evenly over the minute (logins and signups both count);
//! - **failures per login**: after `auth.failures_before_backoff` failed
//!   logins for one login name (existing or not, so the back-off does not
//!   tell which logins exist) within a quarter of an hour, each further
//!   attempt must wait twice as long as the last, up to
//!   `auth.max_backoff_secs`, whichever address it comes from;
//! - **the lane** of a password check (see `passwords`): a login for a
//!   known account, from an address and for a login with no recent
//!   failures, and with no other priority check of the same login or
//!   address waiting, is checked first. (The last condition keeps a burst
//!   of first guesses at one account, before any has failed, from filling
//!   the priority lane.)
//!
//! Every failed or refused attempt also makes its address suspect (see
//! `suspects`).
//!
//! Memory is bounded: each table forgets entries older than the
//! quarter-hour window, and starts over past [`MAX_ENTRIES`] (it only
//! slows guessing; forgetting costs an attacker's victims nothing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

use super::passwords::Lane;
use super::suspects::SuspectGate;
use crate::config::AuthConfig;
use crate::{Result, SiteError};

/// How long a failure is remembered.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most entries a table holds before it is pruned (then cleared).
const MAX_ENTRIES: usize = 100_000;
/// Attempts between two prunings of the per-address limiter.
const PRUNE_EVERY: u64 = 1024;

type Keyed =
    RateLimiter<IpAddr, governor::state::keyed::DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Signups accepted per hour, site-wide.
type Direct = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

/// Failures of one login name.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The site's limits on guessing.
pub(super) struct LoginGuard {
    per_address: Keyed,
    signups: Direct,
    attempts: std::sync::atomic::AtomicU64,
    logins: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<IpAddr, Instant>>,
    /// Logins and addresses with a priority check waiting or running.
    claimed: Mutex<(HashMap<String, u32>, HashMap<IpAddr, u32>)>,
    free_failures: u32,
    max_backoff: Duration,
    /// Addresses with a failed or refused login lately.
    pub(super) suspects: SuspectGate,
}

impl LoginGuard {
    pub(super) fn new(config: &AuthConfig, signups_per_hour: u32, suspects: SuspectGate) -> Self {
        let per = |n: u32, period: Duration| {
            let n = NonZeroU32::new(n.max(1)).expect("max(1)");
            Quota::with_period(period / n.get())
                .expect("period is non-zero")
                .allow_burst(n)
        };
        Self {
            per_address: RateLimiter::keyed(per(
                config.login_attempts_per_minute,
                Duration::from_secs(60),
            )),
            signups: RateLimiter::direct(per(signups_per_hour, Duration::from_secs(3600))),
            attempts: std::sync::atomic::AtomicU64::new(0),
            logins: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            claimed: Mutex::default(),
            free_failures: config.failures_before_backoff,
            max_backoff: Duration::from_secs(config.max_backoff_secs.max(1)),
            suspects,
        }
    }

    /// Counts an attempt (login or signup) from `ip`; refused past the
    /// address's allowance.
    pub(super) fn count_attempt(&self, ip: IpAddr) -> Result<()> {
        let n = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            // Forget addresses whose allowance is full again.
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&ip).map_err(|not_until| {
            self.suspects.note(ip);
            SiteError::TooManyAttempts {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }

    /// Counts a signup against the site's hourly allowance.
    pub(super) fn count_signup(&self) -> Result<()> {
        self.signups
            .check()
            .map_err(|not_until| SiteError::SignupsPaused {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Refuses a login for `login` while its back-off lasts.
    pub(super) fn check_login(&self, login: &str, now: Instant) -> Result<()> {
        let Some(f) = self.logins.lock().get(login).copied() else {
            return Ok(());
        };
        let wait = self.backoff(f.count);
        let until = f.last + wait;
        if now < until && now.duration_since(f.last) < WINDOW {
            return Err(SiteError::TooManyAttempts {
                retry_after: until - now,
            });
        }
        Ok(())
    }

    /// How long the next attempt must wait after `count` failures.
    fn backoff(&self, count: u32) -> Duration {
        if count < self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (count - self.free_failures).min(20);
        Duration::from_secs(1u64 << doublings).min(self.max_backoff)
    }

    /// Whether a login for `login` from `ip` is sure to go in the other
    /// lane, known before the account is looked up (so that a full lane
    /// refuses it without a site store read).
    pub(super) fn suspect(&self, login: &str, ip: Option<IpAddr>, now: Instant) -> bool {
        let recent = |t: Instant| now.duration_since(t) < WINDOW;
        self.logins
            .lock()
            .get(login)
            .is_some_and(|f| recent(f.last))
            || ip.is_some_and(|ip| self.addresses.lock().get(&ip).is_some_and(|t| recent(*t)))
    }

    /// The lane of a password check for `login` from `ip`; a priority
    /// ticket holds its login and address until dropped.
    pub(super) fn lane(
        &self,
        known: bool,
        login: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Ticket<'_> {
        let other = Ticket {
            lane: Lane::Other,
            claim: None,
        };
        if !known || self.suspect(login, ip, now) {
            return other;
        }
        let mut claimed = self.claimed.lock();
        let (logins, addresses) = &mut *claimed;
        if logins.contains_key(login) || ip.is_some_and(|ip| addresses.contains_key(&ip)) {
            return other;
        }
        *logins.entry(login.to_string()).or_insert(0) += 1;
        if let Some(ip) = ip {
            *addresses.entry(ip).or_insert(0) += 1;
        }
        Ticket {
            lane: Lane::Priority,
            claim: Some((self, login.to_string(), ip)),
        }
    }

    /// Records a failed login.
    pub(super) fn failed(&self, login: &str, ip: Option<IpAddr>, now: Instant) {
        {
            let mut logins = self.logins.lock();
            bound(&mut logins, now, |f| f.last);
            let f = logins.entry(login.to_string()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= WINDOW {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
        if let Some(ip) = ip {
            self.suspects.note(ip);
            let mut addresses = self.addresses.lock();
            bound(&mut addresses, now, |t| *t);
            addresses.insert(ip, now);
        }
    }

    /// Records a successful login: its name's failures are forgotten.
    pub(super) fn succeeded(&self, login: &str) {
        self.logins.lock().remove(login);
    }
}

/// A password check's lane; a priority one keeps its login and address
/// from a second priority check until dropped.
pub(super) struct Ticket<'g> {
    pub(super) lane: Lane,
    claim: Option<(&'g LoginGuard, String, Option<IpAddr>)>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let Some((guard, login, ip)) = self.claim.take() else {
            return;
        };
        let mut claimed = guard.claimed.lock();
        let (logins, addresses) = &mut *claimed;
        unclaim(logins, &login);
        if let Some(ip) = ip {
            unclaim(addresses, &ip);
        }
    }
}

fn unclaim<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Keeps a table under [`MAX_ENTRIES`]: drops what is older than the
/// window, and everything if that is not enough.
fn bound<K, V>(map: &mut HashMap<K, V>, now: Instant, last: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| now.duration_since(last(v)) < WINDOW);
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_minute: u32) -> LoginGuard {
        LoginGuard::new(
            &AuthConfig {
                login_attempts_per_minute: per_minute,
                ..AuthConfig::default()
            },
            3,
            SuspectGate::default(),
        )
    }

    #[test]
    fn signups_are_capped_per_hour_site_wide() {
        let g = guard(10);
        for _ in 0..3 {
            g.count_signup().unwrap();
        }
        match g.count_signup() {
            Err(SiteError::SignupsPaused { retry_after }) => {
                assert!(retry_after > Duration::from_secs(60), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attempts_are_limited_per_address_and_say_when_to_retry() {
        let g = guard(3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            g.count_attempt(a).unwrap();
        }
        match g.count_attempt(a) {
            Err(SiteError::TooManyAttempts { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20));
            }
            other => panic!("{other:?}"),
        }
        g.count_attempt(b).unwrap();
    }

    #[test]
    fn repeated_failures_and_refusals_make_an_address_suspect() {
        let g = guard(2);
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let now = Instant::now();
        let threshold = AuthConfig::default().failures_before_backoff;
        // Failures...
        for _ in 0..threshold {
            assert!(!g.suspects.is_suspect(a));
            g.failed("x@y", Some(a), now);
        }
        assert!(g.suspects.is_suspect(a));
        // ...or attempts past the allowance.
        for _ in 0..(2 + threshold) {
            let _ = g.count_attempt(b);
        }
        assert!(g.suspects.is_suspect(b));
    }

    #[test]
    fn failures_for_one_login_back_off_whatever_the_address() {
        let g = guard(1000);
        let now = Instant::now();
        let free = AuthConfig::default().failures_before_backoff;
        for i in 0..free {
            g.check_login("alice@x", now).unwrap();
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0001 + i));
            g.failed("alice@x", Some(ip), now);
        }
        // Past the free failures: a second's wait, then two, then four.
        let e = g.check_login("alice@x", now).unwrap_err();
        assert!(
            matches!(e, SiteError::TooManyAttempts { retry_after } if retry_after == Duration::from_secs(1))
        );
        g.check_login("alice@x", now + Duration::from_secs(1))
            .unwrap();
        g.failed("alice@x", None, now + Duration::from_secs(1));
        assert!(
            g.check_login("alice@x", now + Duration::from_secs(2))
                .is_err()
        );
        g.check_login("alice@x", now + Duration::from_secs(3))
            .unwrap();
        // Other logins are not slowed; success forgets.
        g.check_login("bob@x", now).unwrap();
        g.succeeded("alice@x");
        g.check_login("alice@x", now).unwrap();
    }

    #[test]
    fn the_backoff_is_capped() {
        let g = guard(10);
        assert_eq!(g.backoff(1000), Duration::from_secs(300));
    }

    #[test]
    fn only_clean_logins_of_known_accounts_get_the_priority_lane() {
        let g = guard(10);
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let lane = |known, login, ip| g.lane(known, login, Some(ip), now).lane;
        assert_eq!(lane(true, "alice@x", a), Lane::Priority);
        assert_eq!(lane(false, "nobody@x", a), Lane::Other);
        g.failed("mallory@x", Some(b), now);
        assert_eq!(lane(true, "alice@x", b), Lane::Other);
        assert_eq!(lane(true, "mallory@x", a), Lane::Other);
        assert_eq!(lane(true, "alice@x", a), Lane::Priority);
        // Failures are forgotten after the window.
        assert_eq!(
            g.lane(true, "mallory@x", Some(b), now + WINDOW).lane,
            Lane::Priority
        );
    }

    #[test]
    fn one_priority_check_at_a_time_per_login_and_per_address() {
        let g = guard(10);
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = g.lane(true, "victim@x", Some(a), now);
        assert_eq!(first.lane, Lane::Priority);
        // A burst of guesses at the same login, or from the same address,
        // waits in the other lane meanwhile.
        assert_eq!(g.lane(true, "victim@x", Some(b), now).lane, Lane::Other);
        assert_eq!(g.lane(true, "alice@x", Some(a), now).lane, Lane::Other);
        assert_eq!(g.lane(true, "alice@x", Some(b), now).lane, Lane::Priority);
        drop(first);
        assert_eq!(g.lane(true, "victim@x", Some(b), now).lane, Lane::Priority);
    }

    #[test]
    fn tables_stay_bounded() {
        let g = guard(10);
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            g.failed(&format!("u{i}@x"), None, now);
        }
        assert!(g.logins.lock().len() <= MAX_ENTRIES);
    }
}
