//! Login lockout and API rate limits, in memory (a restart forgets them, which only helps an
//! attacker who can also restart the box).
//!
//! Logins: each failure counts against the user name and the address. At `max_failures` for a
//! user (four times that for an address) further attempts are refused with `429` for
//! `initial`, doubling with every further failure up to `max`; a success clears the user's
//! count. API requests: a token bucket per user and per address, refilled per minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries idle this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The maps are pruned when they grow past this.
const PRUNE_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Lockout settings.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub initial: Duration,
    pub max: Duration,
}

/// Failed-login bookkeeping per user and per address.
#[derive(Debug)]
pub struct LoginLimiter {
    policy: LockoutPolicy,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginLimiter {
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: Option<&str>, addr: IpAddr) -> [Option<(String, u32)>; 2] {
        [
            user.map(|u| (format!("user:{u}"), 1)),
            Some((format!("addr:{addr}"), 4)),
        ]
    }

    /// `Err(retry_after)` while the user or the address is locked out.
    pub fn check(&self, user: Option<&str>, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, _) in Self::keys(user, addr).into_iter().flatten() {
            if let Some(f) = map.get(&key)
                && let Some(until) = f.locked_until
                && until > now
            {
                wait = wait.max(until - now);
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a failure; `Some(retry_after)` when it starts (or extends) a lockout.
    pub fn fail(&self, user: Option<&str>, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_AT {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let mut lock = None::<Duration>;
        for (key, factor) in Self::keys(user, addr).into_iter().flatten() {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                locked_until: None,
                last: now,
            });
            if now.duration_since(f.last) > FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            let threshold = self.policy.max_failures.max(1) * factor;
            if f.count >= threshold {
                let doublings = (f.count - threshold).min(16);
                let d = self
                    .policy
                    .initial
                    .saturating_mul(1u32 << doublings)
                    .min(self.policy.max);
                f.locked_until = Some(now + d);
                lock = Some(lock.map_or(d, |l| l.max(d)));
            }
        }
        lock
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn succeed(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user:{user}"));
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per key, `per_min` requests a minute with a burst of as many.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket; `Err(retry_after)` when it is empty.
    /// `per_min == 0` means no limit.
    pub fn take(&self, key: &str, per_min: u32) -> Result<(), Duration> {
        if per_min == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let cap = f64::from(per_min);
        let rate = cap / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_AT {
            map.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(120));
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 5,
            initial: Duration::from_secs(30),
            max: Duration::from_secs(900),
        }
    }

    #[test]
    fn the_fifth_failure_locks_the_user_and_the_lockout_doubles() {
        let l = LoginLimiter::new(policy());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..4 {
            assert_eq!(l.fail(Some("ann"), a), None);
            assert!(l.check(Some("ann"), a).is_ok());
        }
        assert_eq!(l.fail(Some("ann"), a), Some(Duration::from_secs(30)));
        assert!(l.check(Some("ann"), a).is_err());
        // Another user from the same address is not locked yet (the address allows 20).
        assert!(l.check(Some("bob"), a).is_ok());
        assert_eq!(l.fail(Some("ann"), a), Some(Duration::from_secs(60)));
        for _ in 0..10 {
            l.fail(Some("ann"), a);
        }
        let wait = l.check(Some("ann"), a).unwrap_err();
        assert!(wait <= Duration::from_secs(900) && wait > Duration::from_secs(800));
        l.succeed("ann");
        // The address still has 16 failures; 4 more from any name lock it.
        for _ in 0..3 {
            l.fail(Some("x"), a);
        }
        assert!(l.check(Some("bob"), a).is_ok());
        assert!(l.fail(Some("y"), a).is_some());
        assert!(l.check(Some("bob"), a).is_err());
    }

    #[test]
    fn buckets_allow_their_rate_and_then_refuse() {
        let r = RateLimiter::default();
        for _ in 0..100 {
            assert!(r.take("user:ann", 100).is_ok());
        }
        let wait = r.take("user:ann", 100).unwrap_err();
        assert!(wait <= Duration::from_millis(601), "{wait:?}");
        assert!(r.take("user:bob", 100).is_ok());
        for _ in 0..1000 {
            assert!(r.take("user:zed", 0).is_ok());
        }
    }
}
