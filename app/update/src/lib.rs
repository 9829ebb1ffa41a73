//! Over-the-air updates with RAUC: the boundary to RAUC's D-Bus API and what is checked of a
//! bundle before it is installed.
//!
//! Role: the hub (its update service, API and page) and the `watchpost update` command use
//! this crate to talk to RAUC ([`rauc::Rauc`], with the zbus client [`dbus::DbusRauc`] and
//! the in-memory twin [`twin::TwinRauc`]) and to decide whether a bundle may be installed
//! ([`check`]): complete, signed by the keyring, for this device's compatible, not older
//! than what runs unless forced. The parsers ([`bundle`], [`version`]) are sans-IO and fuzzed
//! (`fuzz/`).
//!
//! Failure: every exchange with RAUC returns a typed [`rauc::RaucError`]; a refusal is a
//! [`check::Refusal`] with a stable code and a sentence for the installer. Nothing here
//! retries or panics; the caller decides.
//!
//! docs/update.md describes the whole update path.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod check;
pub mod dbus;
pub mod rauc;
pub mod twin;
pub mod version;

pub use rauc::{
    BundleInfo, InstallArgs, MarkState, Marked, Progress, Rauc, RaucError, RaucEvent, SlotRef,
    SlotStatus,
};
