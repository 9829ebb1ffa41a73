//! The contracts between Watchpost's processes.
//!
//! Role: every area that talks over the bus declares here, once, what crosses a process
//! boundary: its topics, its retained state types, its command and reply types and its
//! error-code enum, all serde types whose JSON is documented in `docs/bus.md`. Producers
//! publish these types and consumers (hub, dashboard, bridge, setup page) read them; nobody
//! builds or picks apart JSON by hand across a process boundary. The Neasmart gateway's
//! contract lives in its own sans-IO crate (`watchpost_neasmart::{topics, views, commands}`).
//!
//! Design: no I/O and no async; the bus crate (`watchpost_bus`) carries these types. The
//! request/reply envelope and the error-code macro are in [`rpc`].

#![forbid(unsafe_code)]

pub mod alarm;
pub mod capture;
pub mod monitor;
pub mod relay;
pub mod rpc;
pub mod system;

pub use rpc::{ErrorCode, Incoming, Outcome, ReplyError, Request};

// The `error_codes!` macro names this crate by its path, also inside it.
extern crate self as watchpost_contract;
#[doc(hidden)]
pub use serde as __serde;
