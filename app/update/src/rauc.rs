//! The RAUC boundary: what Watchpost asks of RAUC's D-Bus API
//! (`de.pengutronix.rauc.Installer` on the system bus), as the trait [`Rauc`].
//!
//! Two implementations behave the same: [`crate::dbus::DbusRauc`] (zbus, against the real
//! `rauc service`) and [`crate::twin::TwinRauc`] (in memory, for crate and hub unit tests).
//! The system tests (tests/update) drive the real service on a private bus.
//!
//! The methods are RAUC 1.8's (Debian 12): `InstallBundle(s, a{sv})`, `Info(s) -> (s, s)`
//! (which verifies the signature), `Mark(s, s) -> (s, s)`, `GetSlotStatus() -> a(sa{sv})`,
//! `GetPrimary() -> s`; the properties `Operation`, `LastError`, `Progress (isi)`,
//! `Compatible`, `BootSlot`; the signal `Completed(i)`. RAUC 1.8 has no `InspectBundle`
//! method: [`crate::check::inspect_bundle`] stands for it (RAUC's `Info` plus the signer read
//! from the bundle's signature by the hub itself).

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use futures::stream::BoxStream;
use serde::Serialize;

/// A boxed future, so that [`Rauc`] can be used as `dyn Rauc`.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// RAUC's `Progress` property: percent, message, nesting depth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub percent: i32,
    pub message: String,
    pub depth: i32,
}

/// `InstallBundle`'s arguments (the `a{sv}` dictionary RAUC 1.8 reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallArgs {
    /// `ignore-compatible`: install a bundle made for another compatible string. The hub
    /// never sets it; it exists for recovery by hand.
    pub ignore_compatible: bool,
}

/// What `Info` reports of a bundle (after RAUC verified its signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub compatible: String,
    pub version: String,
}

/// One slot of `GetSlotStatus`, with the fields Watchpost reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SlotStatus {
    /// RAUC's slot name, `rootfs.0`.
    pub name: String,
    pub class: String,
    /// The boot loader's name of the slot, `A` or `B`.
    pub bootname: Option<String>,
    /// `booted`, `active` or `inactive`.
    pub state: Option<String>,
    /// The boot loader's view: `good` or `bad`.
    pub boot_status: Option<String>,
    pub device: Option<String>,
    /// The version of the bundle last installed into the slot.
    pub bundle_version: Option<String>,
    pub installed_timestamp: Option<String>,
}

/// `Mark`'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkState {
    Good,
    Bad,
    Active,
}

impl MarkState {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkState::Good => "good",
            MarkState::Bad => "bad",
            MarkState::Active => "active",
        }
    }
}

/// `Mark`'s slot identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotRef {
    Booted,
    Other,
    Named(String),
}

impl SlotRef {
    pub fn as_str(&self) -> &str {
        match self {
            SlotRef::Booted => "booted",
            SlotRef::Other => "other",
            SlotRef::Named(n) => n,
        }
    }
}

/// What `Mark` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub slot: String,
    pub message: String,
}

/// A change RAUC announces: a property (`PropertiesChanged`) or the `Completed` signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaucEvent {
    Progress(Progress),
    Operation(String),
    LastError(String),
    /// `Completed(result)`: 0 is success.
    Completed(i32),
}

/// A failed exchange with RAUC.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RaucError {
    #[error("connecting to the D-Bus system bus{}: {message}", .address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default())]
    Connect {
        address: Option<String>,
        message: String,
    },
    /// RAUC answered a method call with its own error (a bundle it does not accept, a slot
    /// it does not know, an install already running).
    #[error("RAUC refused {method}: {message}")]
    Refused {
        method: &'static str,
        message: String,
    },
    /// The call did not reach RAUC or got no answer (RAUC not running, bus gone).
    #[error("RAUC {method} failed: {message}")]
    Call {
        method: &'static str,
        message: String,
    },
    #[error("reading RAUC's {property} property: {message}")]
    Property {
        property: &'static str,
        message: String,
    },
    #[error("subscribing to RAUC's signals: {message}")]
    Subscribe { message: String },
}

/// RAUC's D-Bus API as Watchpost uses it.
pub trait Rauc: Send + Sync + Debug {
    /// `InstallBundle(source, args)`: starts an install; its end is the `Completed` signal.
    fn install_bundle(
        &self,
        source: PathBuf,
        args: InstallArgs,
    ) -> BoxFut<'_, Result<(), RaucError>>;
    /// `Info(bundle)`: the bundle's compatible and version; fails when the signature does not
    /// verify against RAUC's keyring (RAUC 1.8 says no more than that).
    fn info(&self, bundle: PathBuf) -> BoxFut<'_, Result<BundleInfo, RaucError>>;
    /// `Mark(state, slot)`.
    fn mark(&self, state: MarkState, slot: SlotRef) -> BoxFut<'_, Result<Marked, RaucError>>;
    /// `GetSlotStatus()`.
    fn slot_status(&self) -> BoxFut<'_, Result<Vec<SlotStatus>, RaucError>>;
    /// `GetPrimary()`: the slot the boot loader starts next.
    fn primary(&self) -> BoxFut<'_, Result<String, RaucError>>;
    /// `Operation`: `idle` or `installing`.
    fn operation(&self) -> BoxFut<'_, Result<String, RaucError>>;
    /// `LastError`.
    fn last_error(&self) -> BoxFut<'_, Result<String, RaucError>>;
    /// `Progress`.
    fn progress(&self) -> BoxFut<'_, Result<Progress, RaucError>>;
    /// `Compatible`: the system's compatible string.
    fn compatible(&self) -> BoxFut<'_, Result<String, RaucError>>;
    /// `BootSlot`: the bootname of the slot booted from.
    fn boot_slot(&self) -> BoxFut<'_, Result<String, RaucError>>;
    /// Every later change of `Progress`, `Operation`, `LastError` and every `Completed`.
    fn events(&self) -> BoxFut<'_, Result<BoxStream<'static, RaucEvent>, RaucError>>;
}
