//! ONVIF Profile S for Watchpost, as a sans-IO core: SOAP request bytes in, HTTP status and
//! SOAP response bytes out; discovery datagrams in, discovery datagrams out.
//!
//! Role: the `rtsp` worker makes the appliance look like an ordinary IP camera to NVRs. This
//! crate holds everything protocol-shaped about that — the device and media (ver10) services,
//! WS-UsernameToken authentication and WS-Discovery — and does no I/O, so it is tested and
//! fuzzed without sockets. The worker supplies the [`DeviceModel`] (identity, MAC, profiles,
//! ports), the current time and the HTTP `Host` header, and moves the bytes.
//!
//! Design:
//! - Requests are parsed into a bounded element tree ([`xml`]): no DTDs, no entities beyond the
//!   predefined five, limits on size, depth and element count. Dispatch is on the Body's first
//!   element (namespace + local name), never on HTTP headers ([`ops`]).
//! - Responses are written through quick-xml's event writer in the element order the ONVIF
//!   schema fixes ([`device`], [`media`]); no XML is built by string formatting.
//! - Authentication is WS-UsernameToken PasswordDigest,
//!   `Base64(SHA1(decoded nonce ‖ Created ‖ password))`, with a Created-time window and a
//!   bounded nonce cache against replay ([`auth`]). GetSystemDateAndTime always answers; a few
//!   discovery-time getters answer without a token (but a token that is present must be valid).
//! - Synology's CreateProfile gets the "maximum number of profiles" fault, with or without
//!   credentials, so the NVR goes on with the fixed profiles.
//!
//! Failure: every bad request becomes a SOAP 1.2 fault (400 for the sender's faults, 500 for
//! the receiver's) and an [`Outcome`] for logs and metrics; nothing here panics on input (the
//! fuzz target in `fuzz/` holds that).
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
mod device;
pub mod discovery;
pub mod events;
pub mod http_auth;
mod media;
pub mod model;
pub mod ns;
pub mod ops;
pub mod service;
pub mod soap;
pub mod xml;

pub use auth::{AuthError, AuthPolicy, Authenticator, password_digest};
pub use model::{DeviceInfo, DeviceModel, H264Profile, NetworkInfo, RequestCtx, StreamProfile};
pub use service::{
    CONTENT_TYPE, Handled, OnvifService, Outcome, PullWait, Reply, Then, subscription_endpoint,
};
pub use soap::Fault;
