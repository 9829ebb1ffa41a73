//! The worker side of the Watchpost supervisor contract, shared by every worker crate.
//!
//! Role: each worker is a child process of the supervisor (`watchpost worker NAME`). This crate
//! gives a worker its [`WorkerCtx`]: the shutdown token (cancelled on SIGTERM/SIGINT), the
//! readiness report, heartbeats from the worker's main loop, status lines and a small metrics
//! registry whose text the supervisor collects for `/metrics`. The wire format between worker
//! and supervisor ([`proto`]) lives here too, so both ends share one definition.
//!
//! Design: the supervisor hands every worker one end of a Unix stream socketpair (its fd number
//! in `WATCHPOST_SUPERVISOR_FD`). Messages are length-prefixed JSON. A writer thread owns the
//! socket so that a slow or stopped supervisor can never block a worker's async code: the
//! worker only `try_send`s into a bounded queue and heartbeats are dropped, not queued, when it
//! is full.
//!
//! Failure and shutdown: when the supervisor dies, the kernel kills the worker
//! (`PR_SET_PDEATHSIG`, set in [`WorkerCtx::from_env`]). A worker that cannot start because of
//! its configuration exits with [`ExitCode::Config`] after reporting the reason with
//! [`WorkerCtx::fatal`], and the supervisor does not restart it in a loop. Run without a
//! supervisor (no fd in the environment), the context works standalone: readiness and
//! heartbeats go nowhere, shutdown still follows signals.
#![forbid(unsafe_code)]

pub mod build;
pub mod ctx;
pub mod exit;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod proto;
pub mod seal;
pub mod signals;
pub mod testing;

pub use build::BuildInfo;
pub use ctx::{StatusQueryError, WorkerCtx};
pub use exit::ExitCode;
pub use metrics::Registry;
pub use tokio_util::sync::CancellationToken;
