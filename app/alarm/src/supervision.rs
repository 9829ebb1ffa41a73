//! Supervision, once a second: NULL messages to idle SIA receivers (`supervision_s`), so the
//! central station knows the link is alive; the queues' age gauges; and the alarm indicator
//! the supervisor shows on the board's status LED.

use std::sync::atomic::Ordering;

use watchpost_config::alarms::ReceiverConfig;
use watchpost_store::NewEvent;

use crate::AlarmError;
use crate::delivery::{Delivery, Target};
use crate::event::{EventKind, Phase};
use crate::ledger::Ledger;

/// Whether a SIA receiver with `supervision_s` (0: none) is due a NULL message at `now_ms`:
/// nothing is queued for it and nothing was enqueued or delivered for that long.
pub fn null_due(supervision_s: u64, queued: u64, idle_since_ms: i64, now_ms: i64) -> bool {
    if supervision_s == 0 || queued > 0 {
        return false;
    }
    let interval = i64::try_from(supervision_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    now_ms - idle_since_ms >= interval
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
        let idle_since = ledger
            .last_enqueue_ms(slot)
            .max(stats.last_delivered_ms.load(Ordering::Relaxed));
        let queued = stats.queued.load(Ordering::Relaxed);
        if !null_due(cfg.supervision_s, queued, idle_since, now_ms) {
            continue;
        }
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
        assert!(!null_due(0, 0, 0, 1_000_000));
        // Something is queued: the receiver hears from us anyway.
        assert!(!null_due(60, 1, 0, 1_000_000));
        // Idle for less than the interval.
        assert!(!null_due(60, 0, 1_000_000, 1_059_999));
        // Idle for the interval.
        assert!(null_due(60, 0, 1_000_000, 1_060_000));
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
