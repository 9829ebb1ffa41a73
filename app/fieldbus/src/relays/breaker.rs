//! A circuit breaker for one relay module (sans-IO: the caller passes the time).
//!
//! Closed: requests flow; `threshold` consecutive failures open it. Open: requests are refused
//! (the module's cached state is reported) until `open_for` has passed; then it is half-open
//! and exactly one probe request is let through: success closes the breaker, failure opens it
//! again for another `open_for`.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
    /// The state as the relay contract publishes it.
    pub fn contract(self) -> watchpost_contract::relay::Breaker {
        match self {
            Self::Closed => watchpost_contract::relay::Breaker::Closed,
            Self::Open { .. } => watchpost_contract::relay::Breaker::Open,
            Self::HalfOpen => watchpost_contract::relay::Breaker::HalfOpen,
        }
    }
    /// The value of the breaker-state gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open { .. } => 2.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    state: BreakerState,
    probe_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            state: BreakerState::Closed,
            probe_in_flight: false,
        }
    }

    /// The state at `now` (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open { until } if now >= until => BreakerState::HalfOpen,
            s => s,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// When an open breaker lets a probe through.
    pub fn reopens_at(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Whether a request may be sent at `now`; in half-open state this takes the one probe.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => {
                self.state = BreakerState::HalfOpen;
                if self.probe_in_flight {
                    false
                } else {
                    self.probe_in_flight = true;
                    true
                }
            }
        }
    }

    /// Whether a request would be allowed at `now`, without taking the probe.
    pub fn would_allow(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => !self.probe_in_flight,
        }
    }

    pub fn on_success(&mut self) {
        self.failures = 0;
        self.probe_in_flight = false;
        self.state = BreakerState::Closed;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let probing = self.probe_in_flight || self.state(now) == BreakerState::HalfOpen;
        self.probe_in_flight = false;
        if probing || self.failures >= self.threshold {
            self.state = BreakerState::Open {
                until: now + self.open_for,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes() {
        let t = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(5));
        for _ in 0..2 {
            assert!(b.try_acquire(t));
            b.on_failure(t);
            assert_eq!(b.state(t), BreakerState::Closed);
        }
        assert!(b.try_acquire(t));
        b.on_failure(t);
        assert_eq!(b.state(t).as_str(), "open");
        assert!(!b.try_acquire(t + Duration::from_secs(4)));
        // Half-open: one probe only.
        let t5 = t + Duration::from_secs(5);
        assert_eq!(b.state(t5), BreakerState::HalfOpen);
        assert!(b.try_acquire(t5));
        assert!(!b.try_acquire(t5));
        // The probe fails: open again for another period.
        b.on_failure(t5);
        assert_eq!(b.reopens_at(), Some(t5 + Duration::from_secs(5)));
        // The next probe succeeds: closed.
        let t10 = t5 + Duration::from_secs(5);
        assert!(b.try_acquire(t10));
        b.on_success();
        assert_eq!(b.state(t10), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let t = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(1));
        b.on_failure(t);
        b.on_success();
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }
}
