//! The sections every appliance has: system, supervisor, bus, broker, hub, auth.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use watchpost_runtime::logging::LogFormat;

use crate::WORKERS;
use crate::types::{
    Endpoint, Hostname, ListenAddr, NtpServer, Secret, TimeZone, string_newtype_serde,
};

fn default_true() -> bool {
    true
}

/// `[system]`: where data lives and how the appliance logs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    /// Each worker keeps its own database file here.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,watchpost_fieldbus=debug`.
    pub log_level: String,
    /// Board name from `board/boards/`, or `auto` to detect it from the device tree.
    pub board: String,
    /// Where the board's LED, button, GPIO relays and watchdog are: the real lines
    /// (`hardware`), or in-memory lines (`simulated`: for the demo and tests; every change
    /// is logged and shown in `/health`).
    pub board_io: BoardIo,
    /// The appliance's host name (an RFC 1123 label). Applied by the image at boot; on a
    /// development machine it is only stored. Unset: the image's default.
    #[serde(default)]
    pub hostname: Option<Hostname>,
    /// The time zone, an IANA name such as `Europe/Berlin` (checked against
    /// /usr/share/zoneinfo where it exists). Applied by the image at boot; stored only on a
    /// development machine. Unset: UTC.
    #[serde(default)]
    pub timezone: Option<TimeZone>,
    /// NTP servers (host names or addresses). Applied by the image at boot; stored only on a
    /// development machine. Empty: the image's defaults.
    #[serde(default)]
    pub ntp_servers: Vec<NtpServer>,
}

/// `[system] board_io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardIo {
    #[default]
    Hardware,
    Simulated,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/watchpost"),
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            board: "auto".into(),
            board_io: BoardIo::Hardware,
            hostname: None,
            timezone: None,
            ntp_servers: Vec::new(),
        }
    }
}

/// `[supervisor]`: the worker contract's timings (see docs/supervisor.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// How often workers send heartbeats from their main loop.
    pub heartbeat_interval_ms: u64,
    /// A running worker silent for this long is killed and restarted.
    pub heartbeat_timeout_ms: u64,
    /// A starting worker not ready after this long is killed and restarted.
    pub ready_timeout_ms: u64,
    /// First restart delay; doubled after each restart up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// A worker running this long without a restart gets its backoff reset.
    pub stable_after_ms: u64,
    /// More than this many restarts within `restart_window_s` marks the worker failed.
    pub restart_budget: u32,
    pub restart_window_s: u64,
    /// A worker failed because of its budget is tried again after this long.
    pub failed_retry_s: u64,
    /// On shutdown, each worker gets this long after SIGTERM before SIGKILL.
    pub stop_grace_ms: u64,
    /// Workers whose *process* must be alive: while one is wedged (no heartbeat) or crashing,
    /// `/health` is unhealthy and neither readiness nor the watchdogs (systemd's and the
    /// board's) are signalled, so the appliance is restarted. A peripheral fault never counts:
    /// workers report what they cannot use (a missing serial adapter, a port taken) as faults
    /// while they keep running (`/health` degraded), and an essential worker out because a
    /// device or port is missing (exit 69) or on its configuration (78) does not hold back
    /// the watchdogs either, since a reset cannot fix those. docs/supervisor.md.
    pub essential: Vec<WorkerName>,
    /// A hardware watchdog given by hand; it replaces the board description's.
    pub hardware_watchdog: Option<HardwareWatchdogConfig>,
    /// Arm the watchdog of the board description (when `hardware_watchdog` is not set).
    pub board_watchdog: bool,
    /// The user button's gestures.
    pub button: ButtonSettings,
}

/// The name of one of the appliance's workers ([`WORKERS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerName(&'static str);

impl WorkerName {
    pub const BROKER: WorkerName = WorkerName("broker");
    pub const FIELDBUS: WorkerName = WorkerName("fieldbus");
    pub const HUB: WorkerName = WorkerName("hub");
    pub const MONITOR: WorkerName = WorkerName("monitor");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::str::FromStr for WorkerName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WORKERS
            .iter()
            .find(|w| **w == s)
            .map(|w| Self(w))
            .ok_or_else(|| format!("unknown worker `{s}` (known: {})", WORKERS.join(", ")))
    }
}

impl std::fmt::Display for WorkerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
string_newtype_serde!(WorkerName);

impl PartialEq<str> for WorkerName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for WorkerName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// `[supervisor.button]`: short press announces the address; a long press followed by a
/// confirming press resets the settings to factory defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ButtonSettings {
    pub long_press_ms: u32,
    pub confirm_window_ms: u32,
    /// A confirmed factory reset also erases recordings.
    pub wipe_recordings: bool,
}

impl Default for ButtonSettings {
    fn default() -> Self {
        Self {
            long_press_ms: 5_000,
            confirm_window_ms: 10_000,
            wipe_recordings: false,
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 250,
            heartbeat_timeout_ms: 3000,
            ready_timeout_ms: 15_000,
            backoff_initial_ms: 100,
            backoff_max_ms: 30_000,
            stable_after_ms: 60_000,
            restart_budget: 10,
            restart_window_s: 300,
            failed_retry_s: 600,
            stop_grace_ms: 5000,
            essential: vec![WorkerName::BROKER, WorkerName::FIELDBUS, WorkerName::HUB],
            hardware_watchdog: None,
            board_watchdog: true,
            button: ButtonSettings::default(),
        }
    }
}

/// `[supervisor.hardware_watchdog]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareWatchdogConfig {
    pub device: PathBuf,
    pub timeout_s: u32,
}

/// `[bus]`: where every worker connects for the internal MQTT bus.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// The broker to connect to. Leave unset to use the embedded broker's listen address.
    pub external: Option<Endpoint>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Topic prefix of everything Watchpost publishes.
    pub prefix: String,
    pub keepalive_s: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            external: None,
            username: None,
            password: None,
            prefix: "watchpost".into(),
            keepalive_s: 15,
            reconnect_initial_ms: 200,
            reconnect_max_ms: 10_000,
        }
    }
}

/// `[broker]`: the embedded MQTT broker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub listen: ListenAddr,
    pub max_connections: usize,
    pub max_payload_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: ListenAddr::new(std::net::SocketAddr::from(([127, 0, 0, 1], 1883))),
            max_connections: 256,
            max_payload_bytes: 256 * 1024,
        }
    }
}

/// `[hub]`: setup page, REST API, metrics, health.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub listen: ListenAddr,
    /// How long `/health` waits for the supervisor's answer.
    pub health_timeout_ms: u64,
    /// Event store retention.
    pub events_max_age_days: u32,
    pub events_max_bytes: u64,
    /// `[hub.tls]`: HTTPS beside the plain listener. Off by default (the demo and the tests
    /// serve plain HTTP on loopback); the image's configuration (`examples/appliance.toml`)
    /// turns it on.
    pub tls: HubTlsConfig,
    /// `[hub.update]`: over-the-air updates through RAUC (docs/update.md).
    pub update: HubUpdateConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: ListenAddr::new(std::net::SocketAddr::from(([0, 0, 0, 0], 80))),
            health_timeout_ms: 1000,
            events_max_age_days: 90,
            events_max_bytes: 256 * 1024 * 1024,
            tls: HubTlsConfig::default(),
            update: HubUpdateConfig::default(),
        }
    }
}

/// `[hub.update]`: how the hub takes update bundles and talks to RAUC (docs/update.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubUpdateConfig {
    /// The largest bundle an upload may bring (bytes).
    pub max_bundle_bytes: u64,
    /// Free space left on the data partition after a bundle is stored (bytes): an upload that
    /// would leave less is refused before a byte is written.
    pub reserve_bytes: u64,
    /// RAUC's keyring (PEM): the hub checks a bundle's signer against it before asking RAUC,
    /// to refuse a stranger's bundle with a clear reason. RAUC verifies again either way.
    pub keyring: std::path::PathBuf,
    /// The D-Bus address of the system bus RAUC is on; unset: the system bus
    /// (`DBUS_SYSTEM_BUS_ADDRESS` when set).
    pub dbus_address: Option<String>,
}

impl Default for HubUpdateConfig {
    fn default() -> Self {
        Self {
            max_bundle_bytes: 2 * 1024 * 1024 * 1024,
            reserve_bytes: 64 * 1024 * 1024,
            keyring: std::path::PathBuf::from("/etc/rauc/ca.cert.pem"),
            dbus_address: None,
        }
    }
}

/// `[hub.tls]`: the hub's HTTPS listener (docs/hub.md). The certificate lives in
/// `<data_dir>/tls/`: one uploaded through `PUT /api/v1/system/tls`, or else a self-signed one
/// the hub generates for `hostname`, the host's name and its addresses.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubTlsConfig {
    pub enabled: bool,
    /// The HTTPS listen address.
    pub listen: ListenAddr,
    /// The name the self-signed certificate is made for (besides `localhost`, the host's
    /// name and addresses); unset: the host's name.
    pub hostname: Option<TlsHostname>,
    /// The plain listener answers every request but `/health` and `/metrics` with
    /// `308 Permanent Redirect` to the same path on HTTPS.
    pub redirect_http: bool,
}

impl Default for HubTlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: ListenAddr::new(std::net::SocketAddr::from(([0, 0, 0, 0], 443))),
            hostname: None,
            redirect_http: false,
        }
    }
}

/// A DNS name a certificate can be made for: labels of ASCII letters, digits and `-` (not at
/// either end), 1 to 63 characters each, 253 at most in all; no trailing dot, no wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsHostname(String);

impl TlsHostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TlsHostname {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 253 {
            return Err(format!("`{s}` is not a host name (1 to 253 characters)"));
        }
        for label in s.split('.') {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "`{s}` is not a host name: each dot-separated label is 1 to 63 letters, \
                     digits or `-` (not at either end)"
                ));
            }
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl std::fmt::Display for TlsHostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(TlsHostname);

/// `[auth]`: the users the API, ONVIF and RTSP authenticate against.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Users created at start if they do not exist yet. A real image ships none: the first-boot
    /// setup creates the administrator.
    pub users: Vec<UserConfig>,
    /// A browser session ends after this long without a request.
    pub session_idle_minutes: u32,
    /// A browser session ends this long after login, however busy.
    pub session_max_hours: u32,
    /// Failed logins (per user, and per address at four times this) before a lockout; each
    /// further failure doubles the lockout, from `lockout_initial_s` up to `lockout_max_s`.
    pub login_max_failures: u32,
    pub lockout_initial_s: u32,
    pub lockout_max_s: u32,
    /// API requests allowed per minute for one user (`0`: no limit).
    pub api_per_user_per_min: u32,
    /// API requests allowed per minute from one address (`0`: no limit).
    pub api_per_address_per_min: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            session_idle_minutes: 60,
            session_max_hours: 24,
            login_max_failures: 5,
            lockout_initial_s: 30,
            lockout_max_s: 900,
            api_per_user_per_min: 100,
            api_per_address_per_min: 1000,
        }
    }
}

impl Role {
    /// Admin 2, operator 1, viewer 0: a user may do what needs a rank up to theirs.
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin => 2,
            Role::Operator => 1,
            Role::Viewer => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?} (admin, operator, viewer)")),
        }
    }
}

/// One `[[auth.users]]` entry: give `password` (demo and tests) or `password_hash` (PHC string).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: crate::types::Ident,
    pub password: Option<Secret>,
    pub password_hash: Option<String>,
    #[serde(default)]
    pub role: Role,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Admin,
    Operator,
    Viewer,
}

#[cfg(test)]
mod hub_tls_tests {
    use super::*;

    fn hub(text: &str) -> Result<HubConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn tls_is_off_by_default_and_listens_on_443() {
        let h = hub("").unwrap();
        assert!(!h.tls.enabled);
        assert_eq!(h.tls.listen.to_string(), "0.0.0.0:443");
        assert_eq!(h.tls.hostname, None);
        assert!(!h.tls.redirect_http);
    }

    #[test]
    fn tls_section_parses() {
        let h = hub("[tls]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\
                     hostname = \"Watchpost-Test.local\"\nredirect_http = true\n")
        .unwrap();
        assert!(h.tls.enabled && h.tls.redirect_http);
        assert_eq!(h.tls.listen.to_string(), "127.0.0.1:0");
        assert_eq!(
            h.tls.hostname.as_ref().map(TlsHostname::as_str),
            Some("watchpost-test.local")
        );
    }

    #[test]
    fn tls_rejects_unknown_keys_and_bad_hostnames() {
        let e = hub("[tls]\ncert_file = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("cert_file"), "{e}");
        for bad in [
            "",
            "-box.local",
            "box..local",
            "*.local",
            "box_1",
            "box.local.",
        ] {
            let e = hub(&format!("[tls]\nhostname = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a host name"), "{bad}: {e}");
        }
    }
}
