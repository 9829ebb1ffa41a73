//! The 24 h temperature history of the Neasmart zones behind the zones page's charts.
//!
//! A hub service ([`start`]) samples every zone's temperature every 5 minutes and keeps the
//! last 24 h (288 points a zone) in the hub's settings store under [`KEY`], written after each
//! sample. Why the store and every sample, not an in-memory ring saved hourly: the page
//! handlers and this service share nothing but `HubState`, whose store is the one place both
//! reach without a process-wide static; and one small write (a few kB) every 5 minutes is
//! 288 writes a day, far less than the event log writes, while a restart loses at most one
//! sample instead of an hour. Failure: a store error is logged (rate-limited by the interval)
//! and the sample is kept for the next write. Shutdown: the loop ends on the token; there is
//! nothing in flight beyond one write.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::HubState;

/// The settings key of the history.
pub const KEY: &str = "pages.zone_history";
/// Time between samples.
pub const INTERVAL_MS: i64 = 5 * 60 * 1000;
/// How soon after start (and after a look that found no zones) to sample.
const FIRST_SAMPLE_DELAY: Duration = Duration::from_secs(10);
/// Samples kept a zone: 24 h.
pub const POINTS: usize = 288;

/// Every zone's samples, oldest first: zone (`"1.2"`) → `(time in ms, °C)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneHistory {
    pub zones: BTreeMap<String, Vec<(i64, f64)>>,
}

impl ZoneHistory {
    /// Adds one sample per zone taken at `now_ms`, dropping what is older than 24 h and
    /// anything beyond [`POINTS`] a zone.
    pub fn record(&mut self, now_ms: i64, readings: impl IntoIterator<Item = (String, f64)>) {
        for (zone, celsius) in readings {
            if celsius.is_finite() {
                self.zones.entry(zone).or_default().push((now_ms, celsius));
            }
        }
        let oldest = now_ms - INTERVAL_MS * POINTS as i64;
        for samples in self.zones.values_mut() {
            samples.retain(|(t, _)| *t > oldest);
            if samples.len() > POINTS {
                samples.drain(..samples.len() - POINTS);
            }
        }
        self.zones.retain(|_, s| !s.is_empty());
    }

    /// A zone's last 24 h as [`POINTS`] slots of 5 minutes, oldest first; `None` where no
    /// sample fell.
    pub fn series(&self, zone: &str, now_ms: i64) -> Vec<Option<f64>> {
        let mut slots = vec![None; POINTS];
        for (t, v) in self.zones.get(zone).into_iter().flatten() {
            let age = now_ms - t;
            if age < 0 {
                continue;
            }
            let back = usize::try_from(age / INTERVAL_MS).unwrap_or(usize::MAX);
            if back < POINTS {
                slots[POINTS - 1 - back] = Some(*v);
            }
        }
        slots
    }
}

/// The stored history (empty when there is none or it cannot be read).
pub async fn load(state: &HubState) -> ZoneHistory {
    state
        .blocking(|store| store.settings().get::<ZoneHistory>(KEY))
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Starts the sampler (a hub service, see `crate::services`).
pub fn start(state: &HubState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let shutdown = state.ctx.shutdown().clone();
        let mut history = load(&state).await;
        // Until the fieldbus cache has zones (just after start), look again every 10 s rather
        // than only in 5 minutes.
        let mut next = tokio::time::Instant::now() + FIRST_SAMPLE_DELAY;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            let readings: Vec<(String, f64)> = state
                .neasmart
                .active_zones()
                .into_iter()
                .filter_map(|z| {
                    let t = z.temperature?;
                    Some((format!("{}.{}", z.id.base(), z.id.zone()), t))
                })
                .collect();
            if readings.is_empty() {
                next = tokio::time::Instant::now() + FIRST_SAMPLE_DELAY;
                continue;
            }
            next = tokio::time::Instant::now() + Duration::from_millis(INTERVAL_MS as u64);
            history.record(now_ms(), readings);
            let snapshot = history.clone();
            if let Err(e) = state
                .blocking(move |store| store.settings().put(KEY, &snapshot))
                .await
            {
                tracing::warn!(error = %e.message, "cannot save the zone temperature history");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_day_of_samples_in_five_minute_slots() {
        let mut h = ZoneHistory::default();
        let start = 1_000_000_000_000;
        for i in 0..400 {
            h.record(
                start + i * INTERVAL_MS,
                [("1.2".to_string(), 20.0 + i as f64 / 100.0)],
            );
        }
        let now = start + 399 * INTERVAL_MS;
        assert_eq!(h.zones["1.2"].len(), POINTS);
        let s = h.series("1.2", now);
        assert_eq!(s.len(), POINTS);
        assert!(s.iter().all(Option::is_some));
        assert!((s[POINTS - 1].unwrap() - 23.99).abs() < 1e-9);
        assert!(h.series("9.9", now).iter().all(Option::is_none));
        // A sample a day later pushes every old one out.
        h.record(now + 25 * 3_600_000, [("1.2".to_string(), f64::NAN)]);
        assert!(h.zones.is_empty());
    }
}
