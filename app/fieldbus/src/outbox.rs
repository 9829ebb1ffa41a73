//! A coalescing outbox between the worker's loops and the bus.
//!
//! Loops never await the bus: they put the latest payload for a topic into the outbox (a newer
//! payload for the same topic replaces one not yet sent) and a publisher task sends them. A
//! broker that is down or slow therefore cannot stall the Modbus side or the heartbeat, and
//! after a reconnect the newest state goes out, not a backlog.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Retain};

#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<BTreeMap<String, (Vec<u8>, Retain)>>,
    notify: Notify,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `value` as JSON for `topic`, replacing anything not yet sent for it.
    pub fn put_json<T: serde::Serialize + ?Sized>(&self, topic: String, value: &T, retain: Retain) {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.put_bytes(topic, bytes, retain),
            Err(e) => tracing::error!(%topic, error = %e, "cannot encode bus payload"),
        }
    }

    /// Queues an encoded payload for `topic`, replacing anything not yet sent for it.
    pub fn put_bytes(&self, topic: String, payload: Vec<u8>, retain: Retain) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic, (payload, retain));
        self.notify.notify_one();
    }

    /// Everything queued, emptying the queue.
    pub(crate) fn take(&self) -> BTreeMap<String, (Vec<u8>, Retain)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publishes queued payloads until `shutdown`, then sends what is left (bounded by the
    /// bus client's own queue).
    pub async fn run(&self, bus: Bus, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.notify.notified() => {}
            }
            for (topic, (payload, retain)) in self.take() {
                if let Err(e) = bus.publish_bytes(&topic, payload, retain).await {
                    tracing::debug!(%topic, error = %e, "bus publish failed");
                }
            }
        }
        for (topic, (payload, retain)) in self.take() {
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                bus.publish_bytes(&topic, payload, retain),
            )
            .await;
        }
    }
}
