//! Temperature rules: "the statistic of a region beyond a threshold for N ms" fires once, and
//! clears only when the value has come back past the threshold by the hysteresis margin.
//!
//! Each rule is a small state machine driven by `(now_ms, value)`; time comes from the caller.

use serde::{Deserialize, Serialize};

use crate::{Region, Spot, ThermalError, Thermogram};

/// Which number of the region a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    #[default]
    Max,
    Mean,
    Min,
}

/// The direction of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    #[default]
    Above,
    Below,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub id: String,
    /// `None` watches the whole frame.
    pub region: Option<Region>,
    pub statistic: Statistic,
    pub comparison: Comparison,
    pub threshold_c: f32,
    /// How long the value must stay beyond the threshold before the rule fires.
    pub hold_ms: u64,
    /// How far back past the threshold the value must come for the rule to clear.
    pub hysteresis_c: f32,
    /// How long the value must stay cleared before the rule clears (0: at once).
    pub clear_hold_ms: u64,
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleState {
    Normal,
    /// Beyond the threshold since `since_ms`, not yet for `hold_ms`.
    Pending {
        since_ms: u64,
    },
    /// Fired at `since_ms`; `clearing_since_ms` is set while the value is back inside.
    Active {
        since_ms: u64,
        clearing_since_ms: Option<u64>,
    },
}

/// A change of state worth an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleTransition {
    Fired,
    Cleared,
}

/// A transition of one rule, with the reading that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent {
    pub rule_id: String,
    pub transition: RuleTransition,
    pub value_c: f32,
    pub threshold_c: f32,
    /// The hottest (rule above) or coldest (rule below) pixel of the region.
    pub spot: Spot,
    pub at_ms: u64,
}

impl RuleSpec {
    fn beyond(&self, v: f32) -> bool {
        match self.comparison {
            Comparison::Above => v > self.threshold_c,
            Comparison::Below => v < self.threshold_c,
        }
    }

    fn back_inside(&self, v: f32) -> bool {
        match self.comparison {
            Comparison::Above => v < self.threshold_c - self.hysteresis_c,
            Comparison::Below => v > self.threshold_c + self.hysteresis_c,
        }
    }
}

/// One rule and its state.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    state: RuleState,
}

impl Rule {
    pub fn new(spec: RuleSpec) -> Self {
        Self {
            spec,
            state: RuleState::Normal,
        }
    }

    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    pub fn state(&self) -> RuleState {
        self.state
    }

    /// Feeds one reading. A NaN reading (no valid pixel) changes nothing.
    pub fn update(&mut self, now_ms: u64, value: f32) -> Option<RuleTransition> {
        if value.is_nan() {
            return None;
        }
        let spec = &self.spec;
        match self.state {
            RuleState::Normal | RuleState::Pending { .. } if !spec.beyond(value) => {
                self.state = RuleState::Normal;
                None
            }
            RuleState::Normal | RuleState::Pending { .. } => {
                let since_ms = match self.state {
                    RuleState::Pending { since_ms } => since_ms,
                    _ => now_ms,
                };
                if now_ms.saturating_sub(since_ms) >= spec.hold_ms {
                    self.state = RuleState::Active {
                        since_ms: now_ms,
                        clearing_since_ms: None,
                    };
                    Some(RuleTransition::Fired)
                } else {
                    self.state = RuleState::Pending { since_ms };
                    None
                }
            }
            RuleState::Active {
                since_ms,
                clearing_since_ms,
            } => {
                if !spec.back_inside(value) {
                    self.state = RuleState::Active {
                        since_ms,
                        clearing_since_ms: None,
                    };
                    return None;
                }
                let start = clearing_since_ms.unwrap_or(now_ms);
                if now_ms.saturating_sub(start) >= spec.clear_hold_ms {
                    self.state = RuleState::Normal;
                    Some(RuleTransition::Cleared)
                } else {
                    self.state = RuleState::Active {
                        since_ms,
                        clearing_since_ms: Some(start),
                    };
                    None
                }
            }
        }
    }
}

/// The rules of one camera, evaluated on every thermogram.
#[derive(Debug, Clone)]
pub struct RuleEngine {
    rules: Vec<Rule>,
    width: u32,
    height: u32,
}

impl RuleEngine {
    /// Checks every rule's region against the camera's thermogram size.
    pub fn new(specs: Vec<RuleSpec>, width: u32, height: u32) -> Result<Self, ThermalError> {
        let probe = Thermogram::uniform(width.max(1), height.max(1), 0.0)?;
        for s in &specs {
            if let Some(r) = &s.region {
                probe.check_region(r)?;
            }
        }
        Ok(Self {
            rules: specs.into_iter().map(Rule::new).collect(),
            width,
            height,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule on `frame` at `now_ms`, returning the transitions.
    pub fn evaluate(
        &mut self,
        now_ms: u64,
        frame: &Thermogram,
    ) -> Result<Vec<RuleEvent>, ThermalError> {
        if frame.width() != self.width || frame.height() != self.height {
            return Err(ThermalError::ThermogramSize {
                width: frame.width(),
                height: frame.height(),
                len: frame.celsius().len(),
            });
        }
        let mut events = Vec::new();
        for rule in &mut self.rules {
            let region = rule.spec.region.unwrap_or_else(|| frame.full_region());
            let stats = frame.region_stats(&region)?;
            let value = match rule.spec.statistic {
                Statistic::Max => stats.max_c,
                Statistic::Mean => stats.mean_c,
                Statistic::Min => stats.min_c,
            };
            if let Some(transition) = rule.update(now_ms, value) {
                let spot = match rule.spec.comparison {
                    Comparison::Above => stats.hottest,
                    Comparison::Below => stats.coldest,
                };
                events.push(RuleEvent {
                    rule_id: rule.spec.id.clone(),
                    transition,
                    value_c: value,
                    threshold_c: rule.spec.threshold_c,
                    spot,
                    at_ms: now_ms,
                });
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(comparison: Comparison, hold_ms: u64, clear_hold_ms: u64) -> RuleSpec {
        RuleSpec {
            id: "r".into(),
            region: None,
            statistic: Statistic::Max,
            comparison,
            threshold_c: 50.0,
            hold_ms,
            hysteresis_c: 2.0,
            clear_hold_ms,
        }
    }

    #[test]
    fn below_rule_mirrors_above() {
        let mut r = Rule::new(spec(Comparison::Below, 0, 0));
        assert_eq!(r.update(0, 49.0), Some(RuleTransition::Fired));
        assert_eq!(r.update(1, 51.0), None); // inside hysteresis band (50..52)
        assert_eq!(r.update(2, 52.5), Some(RuleTransition::Cleared));
    }

    #[test]
    fn clear_hold_needs_a_steady_value() {
        let mut r = Rule::new(spec(Comparison::Above, 0, 1000));
        assert_eq!(r.update(0, 60.0), Some(RuleTransition::Fired));
        assert_eq!(r.update(100, 40.0), None);
        assert_eq!(r.update(600, 55.0), None); // back up: the clear timer restarts
        assert_eq!(r.update(700, 40.0), None);
        assert_eq!(r.update(1600, 40.0), None);
        assert_eq!(r.update(1700, 40.0), Some(RuleTransition::Cleared));
        assert_eq!(r.update(1800, f32::NAN), None);
    }
}
