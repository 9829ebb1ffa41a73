//! Threshold rules (sans-IO): a figure beyond its threshold for `for_s` raises the rule; the
//! figure back past `clear_at` clears it (hysteresis: between the two nothing changes).
//!
//! A figure that is missing (the target gave none this time) ends a wait to raise, and keeps a
//! raised rule raised: no figure is no evidence that the condition has cleared. Rules start
//! cleared when the worker starts.

use watchpost_config::monitor::{RuleConfig, RuleSeverity};
use watchpost_contract::monitor::{Alert, MonitorEvent, Severity, Transition};

/// Which side of the threshold raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Clear,
    /// Beyond the threshold since this time.
    Pending {
        since_ms: u64,
    },
    Raised {
        since_ms: u64,
        value: f64,
    },
}

/// One rule and where it stands.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub target: String,
    pub metric: String,
    pub item: Option<String>,
    pub direction: Direction,
    pub threshold: f64,
    pub clear_at: f64,
    pub for_ms: u64,
    pub severity: Severity,
    phase: Phase,
}

impl Rule {
    /// The rule of a validated configuration entry.
    pub fn new(c: &RuleConfig) -> Self {
        let (direction, threshold) = match (c.above, c.below) {
            (Some(t), _) => (Direction::Above, t),
            (None, Some(t)) => (Direction::Below, t),
            // Validation refuses a rule without a threshold; never raises.
            (None, None) => (Direction::Above, f64::INFINITY),
        };
        Self {
            id: c.id.to_string(),
            target: c.target.to_string(),
            metric: c.metric.clone(),
            item: c.item.clone(),
            direction,
            threshold,
            clear_at: c.clear_at.unwrap_or(threshold),
            for_ms: c.for_s.saturating_mul(1_000),
            severity: match c.severity {
                RuleSeverity::Info => Severity::Info,
                RuleSeverity::Warning => Severity::Warning,
                RuleSeverity::Critical => Severity::Critical,
            },
            phase: Phase::Clear,
        }
    }

    fn beyond(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v > self.threshold,
            Direction::Below => v < self.threshold,
        }
    }

    fn back(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v <= self.clear_at,
            Direction::Below => v >= self.clear_at,
        }
    }

    fn event(&self, transition: Transition, value: f64, at_ms: u64) -> MonitorEvent {
        MonitorEvent {
            rule: self.id.clone(),
            target: self.target.clone(),
            metric: self.metric.clone(),
            item: self.item.clone(),
            transition,
            value,
            threshold: self.threshold,
            clear_at: self.clear_at,
            severity: self.severity,
            at_ms,
        }
    }

    /// Feeds the figure's new value (`None`: missing) at `now_ms`; the event when the rule
    /// raised or cleared.
    pub fn observe(&mut self, value: Option<f64>, now_ms: u64) -> Option<MonitorEvent> {
        match (self.phase, value) {
            (Phase::Raised { .. }, None) => None,
            (_, None) => {
                self.phase = Phase::Clear;
                None
            }
            (Phase::Raised { .. }, Some(v)) => {
                if self.back(v) {
                    self.phase = Phase::Clear;
                    Some(self.event(Transition::Cleared, v, now_ms))
                } else {
                    None
                }
            }
            (Phase::Clear, Some(v)) | (Phase::Pending { .. }, Some(v)) if !self.beyond(v) => {
                self.phase = Phase::Clear;
                None
            }
            (phase, Some(v)) => {
                let since_ms = match phase {
                    Phase::Pending { since_ms } => since_ms,
                    _ => now_ms,
                };
                if now_ms.saturating_sub(since_ms) >= self.for_ms {
                    self.phase = Phase::Raised {
                        since_ms: now_ms,
                        value: v,
                    };
                    Some(self.event(Transition::Raised, v, now_ms))
                } else {
                    self.phase = Phase::Pending { since_ms };
                    None
                }
            }
        }
    }

    /// The alert while the rule is raised.
    pub fn alert(&self) -> Option<Alert> {
        match self.phase {
            Phase::Raised { since_ms, value } => Some(Alert {
                rule: self.id.clone(),
                metric: self.metric.clone(),
                item: self.item.clone(),
                value,
                threshold: self.threshold,
                severity: self.severity,
                since_ms,
            }),
            _ => None,
        }
    }

    pub fn raised(&self) -> bool {
        matches!(self.phase, Phase::Raised { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        let c: RuleConfig = toml::from_str(text).unwrap();
        Rule::new(&c)
    }

    #[test]
    fn raises_after_its_time_and_clears_with_hysteresis() {
        let mut r = rule(
            "id = \"loss\"\ntarget = \"gw\"\nmetric = \"loss_percent\"\nabove = 20.0\nclear_at = 5.0\nfor_s = 3\n",
        );
        assert_eq!(r.observe(Some(30.0), 0), None);
        assert_eq!(r.observe(Some(30.0), 2_000), None);
        // Back under for a moment: the wait starts again.
        assert_eq!(r.observe(Some(10.0), 2_500), None);
        assert_eq!(r.observe(Some(30.0), 3_000), None);
        assert_eq!(r.observe(Some(30.0), 5_999), None);
        let e = r.observe(Some(31.0), 6_000).unwrap();
        assert_eq!(e.transition, Transition::Raised);
        assert_eq!((e.value, e.threshold, e.clear_at), (31.0, 20.0, 5.0));
        assert_eq!(r.alert().unwrap().since_ms, 6_000);
        // Between clear_at and the threshold: stays raised; so does a missing figure.
        assert_eq!(r.observe(Some(10.0), 7_000), None);
        assert_eq!(r.observe(None, 7_500), None);
        assert!(r.raised());
        let e = r.observe(Some(5.0), 8_000).unwrap();
        assert_eq!(e.transition, Transition::Cleared);
        assert!(r.alert().is_none());
        assert_eq!(r.observe(Some(10.0), 9_000), None);
    }

    #[test]
    fn below_rules_and_immediate_ones() {
        let mut r = rule(
            "id = \"cold\"\ntarget = \"system\"\nmetric = \"t\"\nitem = \"z\"\nbelow = 5.0\nseverity = \"critical\"\n",
        );
        assert_eq!(r.clear_at, 5.0);
        let e = r.observe(Some(4.0), 0).unwrap();
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.item.as_deref(), Some("z"));
        assert_eq!(r.observe(Some(4.5), 1), None);
        assert_eq!(
            r.observe(Some(5.0), 2).unwrap().transition,
            Transition::Cleared
        );
        // A missing figure ends a wait.
        let mut r = rule("id = \"x\"\ntarget = \"a\"\nmetric = \"m\"\nabove = 1.0\nfor_s = 1\n");
        assert_eq!(r.observe(Some(2.0), 0), None);
        assert_eq!(r.observe(None, 500), None);
        assert_eq!(r.observe(Some(2.0), 1_000), None);
        assert!(r.observe(Some(2.0), 2_000).is_some());
    }
}
