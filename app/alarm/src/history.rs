//! The alarm history in the hub's event log: every sensor event, alarm, delivery attempt and
//! overflow (docs/alarms.md, "Visibility").
//!
//! Entries go through a bounded channel to one writer task that commits them in batches, so the
//! alarm path never waits for the log; a full channel drops the entry and counts it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use watchpost_store::{JsonBody, NewEvent, Severity, Store};

use crate::delivery::Delivery;
use crate::sia::{Try, TryResult};

/// Entries waiting for the writer.
pub const CAPACITY: usize = 20_000;

/// A history entry of `kind` about `source` (a sensor or a receiver).
pub fn event(kind: &str, source: &str, severity: Severity, body: Value) -> NewEvent {
    let e = NewEvent::new(watchpost_store::now_us(), kind, source, severity);
    match JsonBody::from_value(&body) {
        Ok(b) => e.with_body(b),
        Err(_) => e,
    }
}

/// `alarm.attempt`: one try of delivery `d` to `receiver`.
pub fn attempt(receiver: &str, d: &Delivery, t: &Try) -> NewEvent {
    let severity = match t.result {
        TryResult::Acked => Severity::Info,
        _ => Severity::Warning,
    };
    event(
        "alarm.attempt",
        receiver,
        severity,
        json!({
            "alarm_id": d.alarm_id, "sensor": d.sensor, "event": d.kind, "phase": d.phase,
            "endpoint": t.endpoint, "seq": t.seq, "result": t.result.label(),
            "detail": t.result.to_string(), "elapsed_ms": t.elapsed_ms,
            "timestamp": t.timestamp.map(|ts| ts.to_wire()),
        }),
    )
}

/// Appends history entries in batches: one commit per 500 entries or per 200 ms, whichever
/// comes first (the alarm path's own writes come first; history never blocks it). Ends when
/// every sender is gone, after writing what they sent.
pub async fn write(store: Store, mut rx: mpsc::Receiver<NewEvent>) {
    const MAX: usize = 500;
    const WINDOW: Duration = Duration::from_millis(200);
    let log = store.events();
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, MAX).await > 0 {
        let deadline = tokio::time::Instant::now() + WINDOW;
        while buf.len() < MAX {
            let room = MAX - buf.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let batch = std::mem::take(&mut buf);
        let log = log.clone();
        let n = batch.len();
        match tokio::task::spawn_blocking(move || log.append_batch(batch)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, events = n, "cannot record alarm history"),
            Err(e) => tracing::warn!(error = %e, "history writer task failed"),
        }
    }
}
