//! Supervision: NULL messages to idle SIA receivers (`supervision_s`), so the central station
//! knows the link is alive; once a second, the queues' age gauges and the alarm indicator the
//! supervisor shows on the board's status LED.
//!
//! NULL messages keep their own grid: a receiver that hears nothing else gets one every
//! `supervision_s` exactly. The service sleeps until the next one is due ([`next_due_ms`])
//! rather than polling on its one-second tick, and a NULL counts as sent at the time it was
//! due, not when it was acknowledged: either way the interval would otherwise grow by up to
//! a second (the tick, the round trip) on every message. Anything else queued for the
//! receiver moves the grid (the receiver has heard from us), and so does an acknowledgement
//! that took retries (the link only worked again then).

use std::sync::atomic::Ordering;

use watchpost_config::alarms::ReceiverConfig;
use watchpost_store::NewEvent;

use crate::AlarmError;
use crate::delivery::{Delivery, Target};
use crate::event::{EventKind, Phase};
use crate::ledger::Ledger;

/// A timer may fire this much (ms) before the wall clock reads its deadline.
const EARLY_MS: i64 = 5;

/// When a SIA receiver with `supervision_s` (0: none) is due its next NULL message, having
/// been idle since `idle_since_ms`; `None` while something is queued for it (it hears from us
/// anyway) or without supervision.
pub fn null_due_at(supervision_s: u64, queued: u64, idle_since_ms: i64) -> Option<i64> {
    if supervision_s == 0 || queued > 0 {
        return None;
    }
    let interval = i64::try_from(supervision_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    Some(idle_since_ms.saturating_add(interval))
}

/// Whether a NULL message due at `due_ms` is due at `now_ms`.
pub fn null_due(due_ms: Option<i64>, now_ms: i64) -> bool {
    due_ms.is_some_and(|d| now_ms >= d - EARLY_MS)
}

/// The time a NULL message due at `due_ms` and sent at `now_ms` counts as sent at: its place
/// on the grid, unless the service fell a whole interval behind (then the grid starts again).
fn grid_time(due_ms: i64, now_ms: i64, supervision_s: u64) -> i64 {
    let interval = i64::try_from(supervision_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    if now_ms - due_ms < interval {
        due_ms
    } else {
        now_ms
    }
}

/// Since when SIA receiver `slot` has been idle: its last enqueue (a NULL's counts at its due
/// time) or an acknowledgement that needed retries, whichever is later.
fn idle_since(ledger: &Ledger, slot: usize) -> i64 {
    ledger
        .last_enqueue_ms(slot)
        .max(ledger.stats(slot).late_delivery_ms.load(Ordering::Relaxed))
}

/// The NULL message due first among all SIA receivers (ms since the epoch), if any.
pub fn next_due_ms(ledger: &Ledger) -> Option<i64> {
    (0..ledger.len())
        .filter_map(|slot| {
            let ReceiverConfig::Sia(cfg) = ledger.receiver(slot) else {
                return None;
            };
            let queued = ledger.stats(slot).queued.load(Ordering::Relaxed);
            null_due_at(cfg.supervision_s, queued, idle_since(ledger, slot))
        })
        .min()
}

/// Refreshes the queues' age gauges and enqueues a NULL message for every SIA receiver due one
/// (recorded as `alarm.supervision`). A full queue is not due (it is not idle).
pub async fn supervise(
    ledger: &mut Ledger,
    now_ms: i64,
    history: &mut Vec<NewEvent>,
) -> Result<(), AlarmError> {
    for slot in 0..ledger.len() {
        let stats = ledger.stats(slot).clone();
        stats.refresh_age(now_ms);
        let ReceiverConfig::Sia(cfg) = ledger.receiver(slot) else {
            continue;
        };
        let supervision_s = cfg.supervision_s;
        let queued = stats.queued.load(Ordering::Relaxed);
        let due = null_due_at(supervision_s, queued, idle_since(ledger, slot));
        let (true, Some(due)) = (null_due(due, now_ms), due) else {
            continue;
        };
        let counter = ledger.next_sia_counter(slot);
        let d = Delivery {
            alarm_id: 0,
            sensor: String::new(),
            sensor_name: "supervision".into(),
            kind: EventKind::Test,
            phase: Phase::Alarm,
            at_ms: now_ms,
            target: Target::SiaNull {
                seq: watchpost_dc09::Seq::from_counter(counter).get(),
            },
        };
        ledger
            .enqueue_one(slot, d, "alarm.supervision", history)
            .await?;
        ledger.set_last_enqueue_ms(slot, grid_time(due, now_ms, supervision_s));
    }
    Ok(())
}

/// The alarm indicator as last sent to the supervisor.
#[derive(Debug, Default)]
pub struct Indicator {
    shown: Option<bool>,
}

impl Indicator {
    /// Whether `active` must be sent (it differs from what was sent last).
    pub fn update(&mut self, active: bool) -> bool {
        let changed = self.shown != Some(active);
        self.shown = Some(active);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_messages_only_for_idle_supervised_receivers() {
        // No supervision configured.
        assert_eq!(null_due_at(0, 0, 0), None);
        assert!(!null_due(None, 1_000_000));
        // Something is queued: the receiver hears from us anyway.
        assert_eq!(null_due_at(60, 1, 0), None);
        // Idle for less than the interval.
        let due = null_due_at(60, 0, 1_000_000);
        assert_eq!(due, Some(1_060_000));
        assert!(!null_due(due, 1_059_000));
        // Idle for the interval (a timer firing a little early included).
        assert!(null_due(due, 1_059_996));
        assert!(null_due(due, 1_060_000));
    }

    #[test]
    fn null_messages_keep_their_grid() {
        // Sent late by less than an interval (a slow tick, a busy service): the next one is
        // still due one interval after this one was due, so the interval does not grow.
        assert_eq!(grid_time(1_060_000, 1_060_900, 60), 1_060_000);
        let next = null_due_at(60, 0, grid_time(1_060_000, 1_060_900, 60));
        assert_eq!(next, Some(1_120_000));
        // A whole interval behind: start again from now rather than send a burst.
        assert_eq!(grid_time(1_060_000, 1_130_000, 60), 1_130_000);
    }

    #[test]
    fn the_indicator_is_sent_on_change_only() {
        let mut i = Indicator::default();
        assert!(i.update(false));
        assert!(!i.update(false));
        assert!(i.update(true));
        assert!(!i.update(true));
        assert!(i.update(false));
    }
}
