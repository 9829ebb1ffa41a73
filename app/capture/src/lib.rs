//! The `capture` worker: every camera source of the appliance.
//!
//! **Role.** For each configured camera this worker runs an ingest pipeline (RTSP over TCP or
//! UDP, or a V4L2 device), records the compressed stream without decoding it into fragmented
//! MP4 segments (about one second per fragment, so a power cut loses about a second), keeps an
//! index of the segments in its store (`<data_dir>/capture.redb`), applies retention (age per
//! camera, a byte budget and a free-space watermark, oldest first, with headroom), takes JPEG
//! snapshots on demand, and decodes a low-rate scaled copy into a shared-memory frame ring for
//! the detection worker. State, rates and counters of every camera go to the bus and to
//! `/metrics`.
//!
//! **Design.** One ingest (an RTSP client session for a main stream that is only recorded,
//! [`rtsp_client`]; a GStreamer pipeline otherwise) and one recorder thread per camera: a camera that fails
//! (bad URL, unplugged, codec it cannot handle) has its own state and reason and never stops
//! the others. The async side (one tokio task per camera plus the main loop) only watches and
//! reconnects with capped exponential backoff; blocking disk work happens on the recorder
//! threads. The MP4 writer and reader ([`mp4`]), the schedule, retention planner and index are
//! plain code tested without media. See `docs/capture.md`.
//!
//! **Failure.** Segments left open by a crash are cut at their last whole fragment and closed
//! in the index before recording resumes ([`segment::repair`]). The configuration was checked
//! before the worker started; a missing GStreamer plugin or store is `Unavailable`, every other
//! failure at start (a start-up task that panicked included) a `Failure` that the supervisor
//! restarts with backoff ([`CaptureError::exit_code`]). Bus commands are answered in their own
//! tasks (`commands.rs`).
//!
//! **Shutdown.** On cancel the pipelines are stopped, every recorder closes its segment
//! (flushing the last fragment and writing the duration) and the worker returns within about
//! two seconds.

pub mod camera;
mod commands;
pub mod index;
pub mod mp4;
pub mod pipeline;
pub mod recorder;
pub mod retention;
pub mod rtsp_client;
pub mod schedule;
pub mod secrets;
pub mod segment;
pub mod snapshot;
#[cfg(feature = "test-support")]
pub use watchpost_camera_testsrc as testsrc;
pub mod thermal;
pub mod time;
mod worker;

pub use worker::{CaptureError, run};
