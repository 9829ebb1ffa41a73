//! Alarm rules and store-and-forward delivery, run inside the hub process.
//!
//! **Role.** Sensor events published by the `bridge` worker (YoLink sensors normalised by
//! `watchpost-yolink`) come in over the bus; per-sensor rules turn condition changes into
//! alarms, restores, troubles, door-prop alarms and test alarms; each alarm is delivered to
//! its receivers: SIA DC-09 central stations ([`sia`], frames from `watchpost-dc09`), CHEKT
//! bridges (HTTP) and relay outputs of the fieldbus worker (bus commands). The hub's REST
//! API reads queue status and asks for test alarms through [`handle`].
//!
//! **Design.** The rules ([`engine`]) are sans-IO: updates and the time in, alarms out. Each
//! receiver has a durable FIFO in the hub's store (`watchpost-store`); an alarm is enqueued,
//! and the engine's state saved, before anything is sent; a delivery task per receiver sends
//! the queue's head until the receiver acknowledges it and only then removes it, so delivery
//! is in order and at least once. SIA sequence numbers are fixed at enqueue time and saved,
//! so a resend after a crash carries the same number. The bridge keeps every sensor event
//! until the hub acknowledges it, which closes the gap while the hub restarts
//! ([`service`] has the exact steps). Queues are bounded; a full queue refuses new alarms or
//! drops the oldest (configurable), and either is counted, shown in the status and recorded
//! as a critical event. Every alarm and every delivery attempt is an event in the store.
//!
//! **Failure.** A receiver that does not answer is retried with capped exponential back-off
//! forever (a SIA backup endpoint takes over after the configured attempts); only a receiver
//! that answers "not understood" (SIA DUH, HTTP 4xx, unknown relay) ends a delivery, which is
//! recorded as a critical event. Store errors end the service with an [`AlarmError`]; the rest
//! of the hub keeps running and `/health` and the API show the service as stopped.
//!
//! **Shutdown.** On the hub's shutdown token the intake stops taking events and delivery tasks
//! stop between tries; whatever was not acknowledged stays queued for the next start.

#![forbid(unsafe_code)]

pub mod codes;
pub mod delivery;
pub mod engine;
mod error;
pub mod event;
pub mod receivers;
pub mod service;
pub mod sia;
pub mod status;

pub use error::AlarmError;
pub use service::{AlarmHandle, BridgeEvent, Managed, TestQueued, TestRequest, handle, serve};
