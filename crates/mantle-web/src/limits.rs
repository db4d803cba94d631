//! Per-client-address rate limiting of login attempts.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

/// Attempts between two prunings of the per-address table.
const PRUNE_EVERY: u64 = 1024;

type Keyed =
    RateLimiter<IpAddr, governor::state::keyed::DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Allows `per_minute` login attempts per client address, refilled evenly
/// over the minute; past that, 429 with `Retry-After`.
pub struct LoginLimiter {
    limiter: Keyed,
    /// Attempts counted, to prune now and then.
    attempts: std::sync::atomic::AtomicU64,
}

impl LoginLimiter {
    /// A limiter allowing `per_minute` attempts a minute per address.
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("max(1) is non-zero");
        let period = Duration::from_secs(60) / n.get();
        let quota = Quota::with_period(period)
            .expect("period is non-zero")
            .allow_burst(n);
        Self {
            limiter: RateLimiter::keyed(quota),
            attempts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts an attempt from `ip`; an error answer if over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.allow(ip).map_err(|wait| {
            let mut e = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too many login attempts; try again later",
            );
            e.retry_after = Some(wait.as_secs_f64().ceil() as u64);
            e
        })
    }

    /// Counts an attempt from `ip`; over the limit, how long to wait.
    /// Every 1,024 attempts it forgets the addresses whose allowance is
    /// full again, so the table stays as small as the recent attackers.
    pub fn allow(&self, ip: IpAddr) -> Result<(), Duration> {
        let n = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets addresses whose allowance is full again (bounded memory).
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_says_when_to_retry() {
        let l = LoginLimiter::new(3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.check(a).unwrap();
        }
        let e = l.check(a).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after.unwrap() >= 1);
        l.check(b).unwrap();
    }

    #[test]
    fn addresses_whose_allowance_refilled_are_forgotten() {
        // One attempt a millisecond: an address is "fresh" again at once.
        let l = LoginLimiter::new(60_000);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.allow(ip).unwrap();
        }
        assert_eq!(l.limiter.len(), 1000);
        std::thread::sleep(Duration::from_millis(20));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..PRUNE_EVERY {
            let _ = l.allow(a);
        }
        assert!(l.limiter.len() < 10, "pruned: {}", l.limiter.len());
    }
}
