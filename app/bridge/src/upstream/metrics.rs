//! Metrics of one upstream, labelled `upstream="<name>"`.

use watchpost_runtime::Registry;
use watchpost_runtime::metrics::{Counter, Gauge};

/// The series of one upstream.
#[derive(Debug, Clone)]
pub struct LinkMetrics {
    pub connected: Gauge,
    pub messages_out: Counter,
    pub messages_in: Counter,
    pub queue_length: Gauge,
    /// Messages in memory: waiting for the in-flight window, or sent and not yet acknowledged.
    pub pending: Gauge,
    pub reconnects: Counter,
    pub connect_errors: Counter,
    pub dropped_full: Counter,
    pub dropped_offline: Counter,
    pub dropped_refused: Counter,
    pub dropped_store: Counter,
    pub dropped_undecodable: Counter,
    pub feed_errors: Counter,
}

const DROPPED: &str = "watchpost_bridge_upstream_dropped_total";
const DROPPED_HELP: &str = "Messages for an upstream broker that were not delivered, by reason: queue_full (overflow policy, or QoS 0 beyond the in-memory backlog), offline (QoS 0 while not connected), refused (an MQTT 5 PUBACK with an error reason), store (the queue could not be written), undecodable (a queue entry that could not be read)";

impl LinkMetrics {
    pub fn new(r: &Registry, upstream: &str) -> Self {
        let l = [("upstream", upstream)];
        let dropped = |reason: &str| {
            r.counter(
                DROPPED,
                DROPPED_HELP,
                &[("upstream", upstream), ("reason", reason)],
            )
        };
        Self {
            connected: r.gauge(
                "watchpost_bridge_upstream_connected",
                "1 while the upstream broker is connected",
                &l,
            ),
            messages_out: r.counter(
                "watchpost_bridge_upstream_messages_out_total",
                "Messages delivered to an upstream broker (QoS 1: acknowledged; QoS 0: written)",
                &l,
            ),
            messages_in: r.counter(
                "watchpost_bridge_upstream_messages_in_total",
                "Messages from an upstream broker forwarded to the bus",
                &l,
            ),
            queue_length: r.gauge(
                "watchpost_bridge_upstream_queue_length",
                "QoS 1 messages in an upstream's offline queue (the bridge's store)",
                &l,
            ),
            pending: r.gauge(
                "watchpost_bridge_upstream_pending",
                "Messages for an upstream held in memory (waiting for the in-flight window or for their acknowledgement)",
                &l,
            ),
            reconnects: r.counter(
                "watchpost_bridge_upstream_reconnects_total",
                "Connections to an upstream broker made again after one was lost",
                &l,
            ),
            connect_errors: r.counter(
                "watchpost_bridge_upstream_connect_errors_total",
                "Failed connection attempts to an upstream broker",
                &l,
            ),
            dropped_full: dropped("queue_full"),
            dropped_offline: dropped("offline"),
            dropped_refused: dropped("refused"),
            dropped_store: dropped("store"),
            dropped_undecodable: dropped("undecodable"),
            feed_errors: r.counter(
                "watchpost_bridge_upstream_feed_errors_total",
                "Sensor states the monitoring feed could not read",
                &l,
            ),
        }
    }
}
