//! Live counters of the service, shared between its tasks and read by the REST API and
//! `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use watchpost_config::alarms::ReceiverConfig;
use watchpost_contract::alarm::{DeliveryState, ReceiverStatus, ReceiverType};
use watchpost_runtime::Registry;
use watchpost_runtime::metrics::{Counter, Gauge};

/// The contract's name for the kind of `cfg`.
pub fn receiver_type(cfg: &ReceiverConfig) -> ReceiverType {
    match cfg {
        ReceiverConfig::Sia(_) => ReceiverType::Sia,
        ReceiverConfig::Chekt(_) => ReceiverType::Chekt,
        ReceiverConfig::Relay(_) => ReceiverType::Relay,
    }
}

/// Counters of one receiver (and its queue).
#[derive(Debug)]
pub struct ReceiverStats {
    pub id: String,
    pub kind: ReceiverType,
    pub capacity: u64,
    /// Deliveries waiting in the queue (including the one in flight).
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    /// Tries the receiver answered as not understood (retried).
    pub not_understood: AtomicU64,
    /// Deliveries ended without acknowledgement: no retry could deliver them.
    pub given_up: AtomicU64,
    pub failed_rounds: AtomicU64,
    pub attempts: AtomicU64,
    /// Refused by a full queue (reject_new).
    pub rejected: AtomicU64,
    /// Removed from a full queue (drop_oldest).
    pub dropped: AtomicU64,
    /// Queue items below this sequence were dropped (the delivery task skips them).
    pub dropped_before: AtomicU64,
    /// Enqueue time (ms) of the oldest waiting delivery; 0 when empty.
    pub oldest_ms: AtomicI64,
    pub last_delivered_ms: AtomicI64,
    /// When the last delivery that needed more than one try was acknowledged (the link works
    /// again from then: NULL supervision counts idle time from it).
    pub late_delivery_ms: AtomicI64,
    pub last_attempt_ms: AtomicI64,
    pub clock_offset_s: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    pub last_endpoint: Mutex<Option<String>>,
    pub state: Mutex<DeliveryState>,
    metrics: ReceiverMetrics,
}

#[derive(Debug)]
struct ReceiverMetrics {
    queued: Gauge,
    oldest_age: Gauge,
    delivered: Counter,
    not_understood: Counter,
    given_up: Counter,
    rejected: Counter,
    dropped: Counter,
    registry: Registry,
}

impl ReceiverStats {
    pub fn new(id: &str, kind: ReceiverType, capacity: u64, registry: &Registry) -> Self {
        let l = [("receiver", id), ("type", kind.as_str())];
        let metrics = ReceiverMetrics {
            queued: registry.gauge(
                "watchpost_hub_alarm_queue_length",
                "Alarm deliveries waiting in a receiver's durable queue",
                &l,
            ),
            oldest_age: registry.gauge(
                "watchpost_hub_alarm_queue_oldest_age_seconds",
                "Age of the oldest delivery waiting in a receiver's queue",
                &l,
            ),
            delivered: registry.counter(
                "watchpost_hub_alarm_delivered_total",
                "Alarm deliveries acknowledged by the receiver",
                &l,
            ),
            not_understood: registry.counter(
                "watchpost_hub_alarm_not_understood_total",
                "Delivery tries the receiver answered as not understood (SIA DUH, HTTP 400/404/405/422, unknown relay module or channel); they are retried",
                &l,
            ),
            given_up: registry.counter(
                "watchpost_hub_alarm_given_up_total",
                "Alarm deliveries ended unacknowledged because no retry could deliver them",
                &l,
            ),
            rejected: registry.counter(
                "watchpost_hub_alarm_queue_rejected_total",
                "Alarm deliveries refused because the receiver's queue was full",
                &l,
            ),
            dropped: registry.counter(
                "watchpost_hub_alarm_queue_dropped_total",
                "Alarm deliveries removed from a full queue to make room",
                &l,
            ),
            registry: registry.clone(),
        };
        Self {
            id: id.to_string(),
            kind,
            capacity,
            queued: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            not_understood: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
            failed_rounds: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_before: AtomicU64::new(0),
            oldest_ms: AtomicI64::new(0),
            last_delivered_ms: AtomicI64::new(0),
            late_delivery_ms: AtomicI64::new(0),
            last_attempt_ms: AtomicI64::new(0),
            clock_offset_s: AtomicI64::new(0),
            last_error: Mutex::new(None),
            last_endpoint: Mutex::new(None),
            state: Mutex::new(DeliveryState::Idle),
            metrics,
        }
    }

    pub fn set_state(&self, s: DeliveryState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    pub fn set_endpoint(&self, e: &str) {
        *self.last_endpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    pub fn attempt(&self, result_label: &str) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .registry
            .counter(
                "watchpost_hub_alarm_attempts_total",
                "Delivery attempts by result",
                &[
                    ("receiver", &self.id),
                    ("type", self.kind.as_str()),
                    ("result", result_label),
                ],
            )
            .inc();
    }

    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.metrics.delivered.add(n);
    }

    pub fn not_understood(&self) {
        self.not_understood.fetch_add(1, Ordering::Relaxed);
        self.metrics.not_understood.inc();
    }

    pub fn given_up(&self) {
        self.given_up.fetch_add(1, Ordering::Relaxed);
        self.metrics.given_up.inc();
    }

    pub fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
        self.metrics.rejected.add(n);
    }

    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.metrics.dropped.add(n);
    }

    /// Updates the queue gauges.
    pub fn set_queue(&self, queued: u64, oldest_ms: i64, now_ms: i64) {
        self.queued.store(queued, Ordering::Relaxed);
        self.oldest_ms.store(oldest_ms, Ordering::Relaxed);
        self.metrics.queued.set(queued as f64);
        self.refresh_age(now_ms);
    }

    pub fn refresh_age(&self, now_ms: i64) {
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let age = if oldest > 0 && self.queued.load(Ordering::Relaxed) > 0 {
            (now_ms - oldest).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        self.metrics.oldest_age.set(age);
    }

    /// The totals that outlive the hub process ([`crate::counters`]).
    pub fn totals(&self) -> Totals {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            delivered: g(&self.delivered),
            not_understood: g(&self.not_understood),
            given_up: g(&self.given_up),
            failed_rounds: g(&self.failed_rounds),
            attempts: g(&self.attempts),
            rejected: g(&self.rejected),
            dropped: g(&self.dropped),
            last_delivered_ms: self.last_delivered_ms.load(Ordering::Relaxed),
            last_attempt_ms: self.last_attempt_ms.load(Ordering::Relaxed),
        }
    }

    /// Continues from saved totals (at start, before any delivery). The Prometheus counters
    /// start again from zero with the process, as Prometheus expects of counters.
    pub fn restore(&self, t: &Totals) {
        let add = |a: &AtomicU64, v: u64| a.fetch_add(v, Ordering::Relaxed);
        add(&self.delivered, t.delivered);
        add(&self.not_understood, t.not_understood);
        add(&self.given_up, t.given_up);
        add(&self.failed_rounds, t.failed_rounds);
        add(&self.attempts, t.attempts);
        add(&self.rejected, t.rejected);
        add(&self.dropped, t.dropped);
        self.last_delivered_ms
            .fetch_max(t.last_delivered_ms, Ordering::Relaxed);
        self.last_attempt_ms
            .fetch_max(t.last_attempt_ms, Ordering::Relaxed);
    }

    pub fn view(&self, now_ms: i64) -> ReceiverView {
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed);
        let ms = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|v| *v > 0);
        ReceiverView {
            receiver: self.id.clone(),
            kind: self.kind.as_str(),
            state: self.state().as_str(),
            queued,
            capacity: self.capacity,
            oldest_age_s: (queued > 0 && oldest > 0)
                .then(|| (now_ms - oldest).max(0) as f64 / 1000.0),
            delivered_total: self.delivered.load(Ordering::Relaxed),
            not_understood_total: self.not_understood.load(Ordering::Relaxed),
            given_up_total: self.given_up.load(Ordering::Relaxed),
            failed_rounds_total: self.failed_rounds.load(Ordering::Relaxed),
            attempts_total: self.attempts.load(Ordering::Relaxed),
            rejected_total: self.rejected.load(Ordering::Relaxed),
            dropped_total: self.dropped.load(Ordering::Relaxed),
            last_delivered_ms: ms(&self.last_delivered_ms),
            last_attempt_ms: ms(&self.last_attempt_ms),
            last_endpoint: self
                .last_endpoint
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            clock_offset_s: (self.kind == ReceiverType::Sia)
                .then(|| self.clock_offset_s.load(Ordering::Relaxed)),
        }
    }

    pub fn state(&self) -> DeliveryState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the receiver acknowledged the last delivery round. A round records its time as
    /// the last attempt and, when acknowledged, the same time as the last delivery (stored
    /// first); both are kept in the store, so the answer holds across restarts until the next
    /// round.
    pub fn link_up(&self) -> bool {
        let attempt = self.last_attempt_ms.load(Ordering::Acquire);
        attempt > 0 && self.last_delivered_ms.load(Ordering::Acquire) >= attempt
    }

    /// The retained bus status (`alarms/receiver/<id>/status`) taken at `now_ms`.
    pub fn status(&self, now_ms: i64) -> ReceiverStatus {
        let v = self.view(now_ms);
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        ReceiverStatus {
            id: v.receiver,
            kind: self.kind,
            name: None,
            link_up: self.link_up(),
            state: self.state(),
            last_error: v.last_error,
            queued: v.queued,
            capacity: v.capacity,
            oldest_queued_unix_ms: (v.queued > 0 && oldest > 0).then_some(oldest),
            delivered_total: v.delivered_total,
            failed_total: v.failed_rounds_total,
            not_understood_total: v.not_understood_total,
            given_up_total: v.given_up_total,
            attempts_total: v.attempts_total,
            rejected_total: v.rejected_total,
            dropped_total: v.dropped_total,
            last_delivered_unix_ms: v.last_delivered_ms,
            last_attempt_unix_ms: v.last_attempt_ms,
            last_endpoint: v.last_endpoint,
            clock_offset_s: v.clock_offset_s,
            updated_unix_ms: now_ms,
        }
    }
}

/// A receiver's delivery totals as saved in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub delivered: u64,
    pub not_understood: u64,
    pub given_up: u64,
    pub failed_rounds: u64,
    pub attempts: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub last_delivered_ms: i64,
    pub last_attempt_ms: i64,
}

/// One receiver's queue and delivery status, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ReceiverView {
    pub receiver: String,
    /// `sia`, `chekt` or `relay`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// `idle`, `delivering`, `retrying`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub queued: u64,
    pub capacity: u64,
    pub oldest_age_s: Option<f64>,
    pub delivered_total: u64,
    /// Tries the receiver answered as not understood (retried).
    pub not_understood_total: u64,
    /// Deliveries ended without acknowledgement because no retry could deliver them.
    pub given_up_total: u64,
    pub failed_rounds_total: u64,
    pub attempts_total: u64,
    pub rejected_total: u64,
    pub dropped_total: u64,
    pub last_delivered_ms: Option<i64>,
    pub last_attempt_ms: Option<i64>,
    pub last_endpoint: Option<String>,
    pub last_error: Option<String>,
    pub clock_offset_s: Option<i64>,
}

/// Counters of the intake (sensor events from the bridge).
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub events: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps: AtomicU64,
    pub alarms: AtomicU64,
    pub suppressed: AtomicU64,
    pub last_seq: AtomicU64,
    pub epoch: AtomicU64,
    pub history_dropped: AtomicU64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct IntakeView {
    pub events_total: u64,
    pub duplicates_total: u64,
    pub gaps_total: u64,
    pub alarms_total: u64,
    pub suppressed_total: u64,
    pub bridge_epoch: u64,
    pub last_seq: u64,
    pub history_dropped_total: u64,
}

impl IntakeStats {
    pub fn view(&self) -> IntakeView {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IntakeView {
            events_total: g(&self.events),
            duplicates_total: g(&self.duplicates),
            gaps_total: g(&self.gaps),
            alarms_total: g(&self.alarms),
            suppressed_total: g(&self.suppressed),
            bridge_epoch: g(&self.epoch),
            last_seq: g(&self.last_seq),
            history_dropped_total: g(&self.history_dropped),
        }
    }
}
