//! Alarm rules and store-and-forward delivery, run inside the hub process.
//!
//! **Role.** Sensor events published by the `bridge` worker (YoLink sensors normalised by
//! `watchpost-yolink`) come in over the bus; per-sensor rules turn condition changes into
//! alarms, restores, troubles, door-prop alarms and test alarms; each alarm is delivered to
//! its receivers: SIA DC-09 central stations ([`sia`], frames from `watchpost-dc09`), CHEKT
//! bridges (HTTP) and relay outputs of the fieldbus worker (bus commands). The hub creates an
//! [`AlarmHandle`] with its state, runs the service with it ([`serve`]) and its REST API reads
//! queue status and asks for test alarms through it. On the bus, [`receiver_bus`] publishes
//! each receiver's status (retained) and answers its test command, for Home Assistant and
//! other MQTT clients. The bus messages are the alarm contract, `watchpost_contract::alarm`.
//!
//! **Design.** The rules ([`engine`]) and the intake of sensor events ([`intake`]: cursor,
//! gaps, resend requests) are sans-IO: events and the time in, alarms and requests out. Each
//! receiver has a durable FIFO in the hub's store (`watchpost-store`), kept by the delivery
//! ledger (enqueue, overflow policy, watermark, checkpoint); an alarm is enqueued,
//! and the engine's state saved, before anything is sent; a delivery task per receiver sends
//! the queue's head until the receiver acknowledges it and only then removes it, so delivery
//! is in order and at least once. SIA sequence numbers are fixed at enqueue time and saved,
//! so a resend after a crash carries the same number. The bridge keeps every sensor event
//! until the hub acknowledges it, which closes the gap while the hub restarts
//! ([`service`], the thin async loop around these parts, has the exact steps). Queues are bounded; a full queue refuses new alarms or
//! drops the oldest (configurable), and either is counted, shown in the status and recorded
//! as a critical event. Every alarm and every delivery attempt is an event in the store.
//!
//! **Failure.** A receiver that does not answer, refuses our frames (NAK) or does not
//! understand them (SIA DUH, HTTP 400/404/405/422, an unknown relay module or channel) is
//! retried with capped exponential back-off forever (a SIA backup endpoint takes over after
//! the configured attempts): each of these can come from a receiver that is misconfigured,
//! restarting or in trouble, and can pass. Only a delivery that no retry can ever deliver (a
//! relay command refused as such, an item queued for another kind of receiver) is given up,
//! counted and recorded as a critical event. Store errors end the service with an
//! [`AlarmError`]; the rest of the hub keeps running and `/health` and the API show the
//! service as stopped.
//!
//! **Shutdown.** On the hub's shutdown token the intake stops taking events, the last state is
//! saved, and delivery tasks finish the delivery in flight within [`service::DRAIN_GRACE`]
//! (a try still running then is abandoned), remove what is delivered and saved, and end;
//! whatever the receiver did not acknowledge stays queued for the next start. [`serve`] logs
//! that the service finished and returns.

#![forbid(unsafe_code)]

pub mod codes;
pub mod counters;
pub mod delivery;
pub mod engine;
mod error;
pub mod event;
mod handle;
mod history;
pub mod intake;
mod ledger;
pub mod managed;
pub mod receiver_bus;
pub mod receivers;
mod routing;
mod sender;
pub mod service;
pub mod sia;
pub mod status;
mod supervision;

pub use error::AlarmError;
pub use handle::{AlarmHandle, TestQueued, TestRequest};
pub use ledger::STATE_KEY;
pub use managed::{MANAGED_KEY, Managed, load_managed, save_managed};
pub use service::serve;
pub use status::{IntakeView, ReceiverView};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AlarmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AlarmError::Task {
            reason: e.to_string(),
        })
}
