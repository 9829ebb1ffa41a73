//! The Neasmart gateway state shared by the RTU line, every TCP connection and the main loop:
//! the register model behind a mutex, the slave's unit-id rules and the metrics.
//!
//! The lock is held only for the few microseconds of one request, never across an await.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use watchpost_modbus::pdu::function;
use watchpost_modbus::{Handled, Response, Slave, UnitSet};
use watchpost_neasmart::Model;

use crate::metrics::{GatewayMetrics, Transport};

/// What happened to one frame (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// A response PDU was written to the output buffer.
    Answered,
    /// For another unit: silent.
    NotAddressed,
    /// Broadcast: applied (if a write), silent.
    Broadcast,
}

/// The shared gateway.
#[derive(Debug)]
pub struct Gateway {
    model: Mutex<Model>,
    slave: Slave,
    /// Signalled when registers or pending marks changed (the main loop publishes).
    pub changed: Notify,
    /// Wall-clock time of the last bus write, in milliseconds since the Unix epoch (0: none).
    last_write_unix_ms: AtomicU64,
    pub metrics: GatewayMetrics,
}

pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn is_write(f: u8) -> bool {
    matches!(
        f,
        function::WRITE_SINGLE_REGISTER
            | function::WRITE_MULTIPLE_REGISTERS
            | function::MASK_WRITE_REGISTER
            | function::READ_WRITE_MULTIPLE_REGISTERS
    )
}

impl Gateway {
    pub fn new(model: Model, units: UnitSet, metrics: GatewayMetrics) -> Self {
        Self {
            model: Mutex::new(model),
            slave: Slave::new(units),
            changed: Notify::new(),
            last_write_unix_ms: AtomicU64::new(0),
            metrics,
        }
    }

    /// Locks the model (a poisoned lock is still consistent: every model update is complete
    /// before any code that could panic runs).
    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wall-clock milliseconds of the last bus write, if any.
    pub fn last_write_unix_ms(&self) -> Option<u64> {
        match self.last_write_unix_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// Handles one request from `transport` for `unit`. When it is answered, the response PDU
    /// is appended to `out`.
    pub fn handle(
        &self,
        transport: Transport,
        unit: u8,
        pdu: &[u8],
        out: &mut Vec<u8>,
    ) -> FrameOutcome {
        let counters = self.metrics.transport(transport);
        let uc = counters.unit(unit);
        uc.received.inc();
        let now = Instant::now();
        let (handled, pending_changed) = {
            let mut model = self.model();
            let pending_before = model.pending_count();
            let handled = self.slave.handle(unit, pdu, &mut model.bus(now));
            (handled, model.pending_count() != pending_before)
        };
        let fc = pdu.first().copied().unwrap_or(0);
        match handled {
            Handled::Reply(resp) => {
                if let Response::Exception { code, .. } = &resp {
                    counters.exception(*code);
                } else if is_write(fc) {
                    self.note_write();
                }
                resp.encode(out);
                uc.answered.inc();
                if pending_changed {
                    self.changed.notify_one();
                }
                FrameOutcome::Answered
            }
            Handled::NotAddressed { .. } => {
                uc.ignored.inc();
                FrameOutcome::NotAddressed
            }
            Handled::Broadcast { applied, .. } => {
                if applied {
                    counters.broadcast_writes.inc();
                    self.note_write();
                }
                FrameOutcome::Broadcast
            }
        }
    }

    fn note_write(&self) {
        self.last_write_unix_ms
            .store(unix_ms_now(), Ordering::Relaxed);
        self.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_modbus::Request;
    use watchpost_neasmart::ModelConfig;
    use watchpost_runtime::Registry;

    fn gateway() -> (Gateway, Registry) {
        let r = Registry::new();
        let g = Gateway::new(
            Model::new(ModelConfig::default()),
            [240u8, 241].into_iter().collect(),
            GatewayMetrics::new(&r),
        );
        (g, r)
    }

    fn pdu(r: &Request) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v);
        v
    }

    #[test]
    fn counts_and_answers() {
        let (g, r) = gateway();
        let mut out = Vec::new();
        let w = pdu(&Request::WriteSingleRegister {
            address: 102,
            value: 0x07C6,
        });
        assert_eq!(
            g.handle(Transport::Tcp, 240, &w, &mut out),
            FrameOutcome::Answered
        );
        assert_eq!(out, w);
        assert!(g.last_write_unix_ms().is_some());
        out.clear();
        assert_eq!(
            g.handle(Transport::Tcp, 16, &w, &mut out),
            FrameOutcome::NotAddressed
        );
        assert!(out.is_empty());
        assert_eq!(
            g.handle(Transport::Rtu, 0, &w, &mut out),
            FrameOutcome::Broadcast
        );
        let text = r.render();
        assert!(text.contains(
            "watchpost_fieldbus_frames_answered_total{transport=\"tcp\",unit=\"240\"} 1"
        ));
        assert!(
            text.contains(
                "watchpost_fieldbus_frames_ignored_total{transport=\"tcp\",unit=\"16\"} 1"
            )
        );
        assert!(text.contains("watchpost_fieldbus_broadcast_writes_total{transport=\"rtu\"} 1"));
        assert_eq!(
            g.model()
                .zone(watchpost_neasmart::ZoneId::new(1, 1).unwrap())
                .temperature,
            Some(19.9)
        );
    }
}
