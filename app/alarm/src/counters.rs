//! Delivery totals that survive a restart of the hub (and a reload of the alarm service): each
//! receiver's `delivered_total`, `attempts_total` and the rest of `/api/v1/alarms/queues`,
//! saved in the hub's store under [`COUNTERS_KEY`].
//!
//! The service saves them once a second while they change and once more when it stops, after
//! its delivery tasks have ended; a hub killed outright loses at most the last second. They
//! are kept apart from the delivery checkpoint (`alarms.state`): that one decides what may be
//! removed from a queue and is written on the alarm's path, these are only for people.

use std::collections::BTreeMap;
use std::sync::Arc;

use watchpost_store::Store;

use crate::status::{ReceiverStats, Totals};
use crate::{AlarmError, blocking};

/// Settings key of the saved totals.
pub const COUNTERS_KEY: &str = "alarms.counters";

/// The totals per receiver id.
pub type Saved = BTreeMap<String, Totals>;

/// The saved totals (none before the first save). A value that cannot be read is logged and
/// counting starts again: these are statistics, not worth stopping the alarm service for.
pub async fn load(store: &Store) -> Result<Saved, AlarmError> {
    let store = store.clone();
    let read = blocking(move || store.settings().get::<Saved>(COUNTERS_KEY)).await?;
    Ok(match read {
        Ok(saved) => saved.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the saved delivery totals; counting from zero");
            Saved::new()
        }
    })
}

/// Continues every receiver's totals from `saved`.
pub fn restore(stats: &[Arc<ReceiverStats>], saved: &Saved) {
    for s in stats {
        if let Some(t) = saved.get(&s.id) {
            s.restore(t);
        }
    }
}

/// The totals of `stats` now.
pub fn current(stats: &[Arc<ReceiverStats>]) -> Saved {
    stats.iter().map(|s| (s.id.clone(), s.totals())).collect()
}

/// Writes `totals` when they differ from `last` (what was written before); returns whether
/// it wrote. A failed write is logged and tried again with the next change.
pub async fn save(store: &Store, totals: Saved, last: &mut Saved) -> bool {
    if totals == *last {
        return false;
    }
    let s = store.clone();
    let value = totals.clone();
    match blocking(move || s.settings().put(COUNTERS_KEY, &value)).await {
        Ok(Ok(())) => {
            *last = totals;
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot save the delivery totals");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot save the delivery totals");
            false
        }
    }
}
