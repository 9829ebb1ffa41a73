//! The worker's metrics, created once so the frame path only touches atomics.

use std::sync::OnceLock;

use watchpost_modbus::{DropReason, ExceptionCode};
use watchpost_runtime::Registry;
use watchpost_runtime::metrics::{Counter, Gauge};

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Rtu,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtu => "rtu",
            Self::Tcp => "tcp",
        }
    }
    fn index(self) -> usize {
        match self {
            Self::Rtu => 0,
            Self::Tcp => 1,
        }
    }
}

const TRANSPORTS: [Transport; 2] = [Transport::Rtu, Transport::Tcp];
const REASONS: [DropReason; 4] = [
    DropReason::Short,
    DropReason::BadCrc,
    DropReason::Garbage,
    DropReason::Overflow,
];

/// Counters of one unit id on one transport.
#[derive(Debug)]
pub struct UnitCounters {
    pub received: Counter,
    pub answered: Counter,
    pub ignored: Counter,
}

/// Counters of one transport.
#[derive(Debug)]
pub struct TransportCounters {
    transport: Transport,
    registry: Registry,
    units: Vec<OnceLock<UnitCounters>>,
    pub broadcast_writes: Counter,
    pub exceptions: Counter,
    dropped: [Counter; 4],
    dropped_bytes: [Counter; 4],
}

impl TransportCounters {
    fn new(registry: &Registry, transport: Transport) -> Self {
        let t = transport.as_str();
        let dropped = REASONS.map(|r| {
            registry.counter(
                "watchpost_fieldbus_frames_dropped_total",
                "Frames dropped before decoding, by reason (short, bad_crc, garbage, overflow).",
                &[("transport", t), ("reason", r.as_str())],
            )
        });
        let dropped_bytes = REASONS.map(|r| {
            registry.counter(
                "watchpost_fieldbus_dropped_bytes_total",
                "Bytes dropped before decoding, by reason.",
                &[("transport", t), ("reason", r.as_str())],
            )
        });
        Self {
            transport,
            registry: registry.clone(),
            units: (0..256).map(|_| OnceLock::new()).collect(),
            broadcast_writes: registry.counter(
                "watchpost_fieldbus_broadcast_writes_total",
                "Broadcast (unit 0) writes applied without a reply.",
                &[("transport", t)],
            ),
            exceptions: registry.counter(
                "watchpost_fieldbus_exceptions_total",
                "Exception responses sent.",
                &[("transport", t)],
            ),
            dropped,
            dropped_bytes,
        }
    }

    /// The counters of `unit`, created on first use.
    pub fn unit(&self, unit: u8) -> &UnitCounters {
        self.units[usize::from(unit)].get_or_init(|| {
            let t = self.transport.as_str();
            let u = unit.to_string();
            let labels = [("transport", t), ("unit", u.as_str())];
            UnitCounters {
                received: self.registry.counter(
                    "watchpost_fieldbus_frames_received_total",
                    "Frames received, by unit id.",
                    &labels,
                ),
                answered: self.registry.counter(
                    "watchpost_fieldbus_frames_answered_total",
                    "Frames answered, by unit id.",
                    &labels,
                ),
                ignored: self.registry.counter(
                    "watchpost_fieldbus_frames_ignored_total",
                    "Frames for unit ids that are not ours, left unanswered.",
                    &labels,
                ),
            }
        })
    }

    pub fn dropped(&self, reason: DropReason, bytes: usize) {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[i].inc();
        self.dropped_bytes[i].add(bytes as u64);
    }

    pub fn exception(&self, code: ExceptionCode) {
        let _ = code;
        self.exceptions.inc();
    }
}

/// All of the gateway's metrics.
#[derive(Debug)]
pub struct GatewayMetrics {
    transports: [TransportCounters; 2],
    pub pending_commands: Gauge,
    pub commands: Counter,
    pub commands_rejected: Counter,
    pub pending_expired: Counter,
    pub pending_writes_ignored: Counter,
    pub stale: Gauge,
    pub age_seconds: Gauge,
    pub tcp_connections: Gauge,
    pub tcp_refused: Counter,
    pub tcp_replaced: Counter,
    pub tcp_idle_closed: Counter,
    pub tcp_timed_out: Counter,
    pub serial_reopens: Counter,
    pub persist_writes: Counter,
    pub persist_errors: Counter,
}

impl GatewayMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            transports: TRANSPORTS.map(|t| TransportCounters::new(registry, t)),
            pending_commands: registry.gauge(
                "watchpost_fieldbus_pending_commands",
                "API commands waiting for the base to read them.",
                &[],
            ),
            commands: registry.counter(
                "watchpost_fieldbus_commands_total",
                "API commands applied to command registers.",
                &[],
            ),
            commands_rejected: registry.counter(
                "watchpost_fieldbus_commands_rejected_total",
                "API commands refused as invalid.",
                &[],
            ),
            pending_expired: registry.counter(
                "watchpost_fieldbus_pending_expired_total",
                "Pending commands the base did not read within the command timeout.",
                &[],
            ),
            pending_writes_ignored: registry.counter(
                "watchpost_fieldbus_pending_writes_ignored_total",
                "Bus writes ignored because they differed from a pending command.",
                &[],
            ),
            stale: registry.gauge(
                "watchpost_fieldbus_registers_stale",
                "1 when no bus write arrived within stale_after_s (or none since start).",
                &[],
            ),
            age_seconds: registry.gauge(
                "watchpost_fieldbus_registers_age_seconds",
                "Seconds since the last bus write (-1 before the first).",
                &[],
            ),
            tcp_connections: registry.gauge(
                "watchpost_fieldbus_tcp_connections",
                "Open Modbus TCP connections.",
                &[],
            ),
            tcp_refused: registry.counter(
                "watchpost_fieldbus_tcp_refused_total",
                "Modbus TCP connections refused: tcp_max_connections open and none silent for tcp_replace_after_s.",
                &[],
            ),
            tcp_replaced: registry.counter(
                "watchpost_fieldbus_tcp_replaced_total",
                "Modbus TCP connections closed for a new one at tcp_max_connections (the one silent longest).",
                &[],
            ),
            tcp_idle_closed: registry.counter(
                "watchpost_fieldbus_tcp_idle_closed_total",
                "Modbus TCP connections closed after tcp_idle_timeout_s without a request.",
                &[],
            ),
            tcp_timed_out: registry.counter(
                "watchpost_fieldbus_tcp_timed_out_total",
                "Modbus TCP connections whose peer stopped answering TCP keepalive (gone without closing).",
                &[],
            ),
            serial_reopens: registry.counter(
                "watchpost_fieldbus_serial_reopens_total",
                "Times the RTU serial line was reopened after an error.",
                &[],
            ),
            persist_writes: registry.counter(
                "watchpost_fieldbus_persist_writes_total",
                "Coalesced writes of the measurement registers to disk.",
                &[],
            ),
            persist_errors: registry.counter(
                "watchpost_fieldbus_persist_errors_total",
                "Failed writes of the measurement registers.",
                &[],
            ),
        }
    }

    pub fn transport(&self, t: Transport) -> &TransportCounters {
        &self.transports[t.index()]
    }
}
