//! `[fieldbus]`: RS485/Modbus: the Neasmart SysBus slave (serial RTU and/or Modbus TCP) and
//! Modbus relay modules driven as a master. Owned by the fieldbus worker; the hub reads the
//! Neasmart API settings (setpoint range, compatibility listener, command timeout).
//!
//! A serial line is either a slave line (the Neasmart SysBus) or a master line (relay modules),
//! never both: two roles on one half-duplex line would talk over each other.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::types::{Endpoint, Ident, ListenAddr, MqttTopic};
use crate::{Problem, problem};

fn default_true() -> bool {
    true
}

/// A Modbus unit (slave) id that a device may own: 1..=247 (0 is broadcast, 248..255 are
/// reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UnitId(u8);

impl UnitId {
    pub fn new(id: u8) -> Result<Self, String> {
        if (1..=247).contains(&id) {
            Ok(Self(id))
        } else {
            Err(format!(
                "unit id {id} is outside 1..=247 (0 is broadcast, 248..=255 are reserved)"
            ))
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

impl<'de> Deserialize<'de> for UnitId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        let id = u8::try_from(v)
            .map_err(|_| serde::de::Error::custom(format!("unit id {v} is outside 1..=247")))?;
        UnitId::new(id).map_err(serde::de::Error::custom)
    }
}

/// A serial baud rate from the usual set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BaudRate(u32);

impl BaudRate {
    pub const STANDARD: &[u32] = &[
        1200, 2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
    ];
    pub fn new(baud: u32) -> Result<Self, String> {
        if Self::STANDARD.contains(&baud) {
            Ok(Self(baud))
        } else {
            Err(format!(
                "baud rate {baud} is not one of {:?}",
                Self::STANDARD
            ))
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for BaudRate {
    fn default() -> Self {
        Self(38_400)
    }
}

impl<'de> Deserialize<'de> for BaudRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        BaudRate::new(v).map_err(serde::de::Error::custom)
    }
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// A serial line: 38400 8N1 unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The device, e.g. `/dev/ttyS1` or `/dev/ttyUSB0`.
    pub port: PathBuf,
    #[serde(default)]
    pub baud: BaudRate,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Put the UART in the kernel's RS485 mode (the driver switches the transceiver with RTS).
    /// Leave off for USB adapters that switch direction themselves and for pseudo-terminals.
    #[serde(default)]
    pub rs485: bool,
    /// Inter-frame silence that ends an RTU frame, in microseconds. Unset: 3.5 character
    /// times at the baud rate (1750 µs above 19200 baud, as the Modbus serial line
    /// specification recommends). Raise it for USB adapters that deliver a frame in pieces.
    #[serde(default)]
    pub inter_frame_gap_us: Option<u32>,
}

fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

/// `[fieldbus.neasmart]`: the Rehau Neasmart 2.0 SysBus gateway (the base polls us as a slave).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeasmartConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Unit ids answered, all from one register store. The base polls both 240 and 241.
    pub unit_ids: Vec<UnitId>,
    /// RTU slave on a serial line (the SysBus through an RS485 transceiver).
    pub serial: Option<SerialConfig>,
    /// Modbus TCP server, for RS485-to-Ethernet converters that connect as TCP clients.
    pub tcp_listen: Option<ListenAddr>,
    /// Most simultaneous Modbus TCP connections. At the limit a new connection replaces the
    /// one silent longest, if that one has been silent for `tcp_replace_after_s`; otherwise
    /// the new one is refused.
    pub tcp_max_connections: usize,
    /// A Modbus TCP frame incomplete for this long is dropped (the connection stays).
    pub tcp_frame_timeout_ms: u64,
    /// A Modbus TCP connection without a request for this long is closed (0 = never). A
    /// converter that rebooted or lost its link never closes its old connection.
    pub tcp_idle_timeout_s: u64,
    /// TCP keepalive on Modbus TCP connections: the first probe after this long without
    /// traffic, then every 10 s (or this long, if shorter), and the connection is closed
    /// after 3 unanswered probes (0 = off).
    pub tcp_keepalive_s: u64,
    /// At `tcp_max_connections`, the connection silent longest gives way to a new one if it
    /// has been silent at least this long (0: always).
    pub tcp_replace_after_s: u64,
    /// A command stays protected against differing bus writes until the base reads it, or
    /// for this long.
    pub command_timeout_s: u64,
    /// Data counts as stale after this long without a bus write.
    pub stale_after_s: u64,
    /// Measurement registers are written to disk at most this often (coalesced).
    pub persist_interval_ms: u64,
    /// Global mode (1..=5) sent as a command at start; 0 = none. Some bases never republish
    /// the global registers on their own.
    pub startup_global_mode: u8,
    /// Global state (1..=6) sent as a command at start; 0 = none.
    pub startup_global_state: u8,
    /// The range of setpoints the API accepts, in °C.
    pub setpoint_min_celsius: f64,
    pub setpoint_max_celsius: f64,
    /// How long the API waits for the fieldbus worker to confirm a command.
    pub api_command_timeout_ms: u64,
    /// Optional listener (served by the hub) with the original add-on's un-prefixed REST paths
    /// and 202 answers, for the existing Home Assistant integration. Unauthenticated, like the
    /// original: bind it to the LAN interface only where that is acceptable.
    pub compat_listen: Option<ListenAddr>,
}

impl Default for NeasmartConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            unit_ids: vec![UnitId(240), UnitId(241)],
            serial: None,
            tcp_listen: None,
            tcp_max_connections: 8,
            tcp_frame_timeout_ms: 500,
            tcp_idle_timeout_s: 300,
            tcp_keepalive_s: 30,
            tcp_replace_after_s: 5,
            command_timeout_s: 30,
            stale_after_s: 180,
            persist_interval_ms: 5000,
            startup_global_mode: 0,
            startup_global_state: 0,
            setpoint_min_celsius: 5.0,
            setpoint_max_celsius: 35.0,
            api_command_timeout_ms: 3000,
            compat_listen: None,
        }
    }
}

/// What a relay channel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Switched on and off by commands.
    #[default]
    Manual,
    /// Every "on" command energises the relay for `pulse_ms`, then releases it.
    Pulse,
    /// Follows the state published on `follow_topic`.
    Follower,
}

/// `[[fieldbus.relays.channels]]`: one coil of a relay module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayChannelConfig {
    /// Channel number, 1-based (coil address = `coil_offset` + channel − 1).
    pub channel: u16,
    /// Name used in topics and the API.
    pub name: Ident,
    #[serde(default)]
    pub mode: RelayMode,
    /// Pulse length (pulse mode, and the channel test of every mode).
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u64,
    /// Bus topic whose state a follower channel copies (`true`, `"on"`, `"ON"`, `1`,
    /// `{"on": true}` or `{"state": "on"}` mean on).
    #[serde(default)]
    pub follow_topic: Option<MqttTopic>,
    /// Energise the relay when the followed state is off.
    #[serde(default)]
    pub invert: bool,
}

fn default_pulse_ms() -> u64 {
    1000
}

/// `[[fieldbus.relays]]`: a Modbus relay module (we are the master).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayModuleConfig {
    pub name: Ident,
    /// Modbus unit id of the module (default 1; not used by a `board` module).
    #[serde(default = "default_relay_unit")]
    pub unit_id: UnitId,
    /// Modbus TCP module (or an RTU gateway speaking Modbus TCP).
    #[serde(default)]
    pub tcp: Option<Endpoint>,
    /// Module on a serial line (Modbus RTU). Modules on the same port share the line.
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    /// The board's own relay outputs on GPIO lines (the `[[relays]]` of the board
    /// description selected by `[system] board`): channel N is the board's Nth relay. They
    /// are commanded, followed and reported exactly like a Modbus module's coils.
    #[serde(default)]
    pub board: bool,
    /// Coil address of channel 1.
    #[serde(default)]
    pub coil_offset: u16,
    /// Answer timeout of one request.
    #[serde(default = "default_relay_timeout_ms")]
    pub timeout_ms: u64,
    /// How often the coils are read back (keeps the state fresh, probes an open breaker).
    #[serde(default = "default_relay_poll_ms")]
    pub poll_interval_ms: u64,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe request is let through.
    #[serde(default = "default_breaker_open_ms")]
    pub breaker_open_ms: u64,
    pub channels: Vec<RelayChannelConfig>,
}

fn default_relay_unit() -> UnitId {
    UnitId(1)
}

fn default_relay_timeout_ms() -> u64 {
    300
}
fn default_relay_poll_ms() -> u64 {
    1000
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_open_ms() -> u64 {
    5000
}

/// The `[fieldbus]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FieldbusConfig {
    pub enabled: bool,
    pub neasmart: NeasmartConfig,
    pub relays: Vec<RelayModuleConfig>,
}

impl FieldbusConfig {
    /// Cross-key checks (called from `Config::validate`).
    pub fn validate(&self, p: &mut Vec<Problem>) {
        let n = &self.neasmart;
        // The API settings matter to the hub even when the worker is off; check them always.
        if !(n.setpoint_min_celsius.is_finite()
            && n.setpoint_max_celsius.is_finite()
            && -50.0 <= n.setpoint_min_celsius
            && n.setpoint_min_celsius < n.setpoint_max_celsius
            && n.setpoint_max_celsius <= 120.0)
        {
            p.push(problem(
                "fieldbus.neasmart.setpoint_min_celsius",
                "setpoint_min_celsius must be below setpoint_max_celsius, both within -50..=120",
            ));
        }
        if !(100..=60_000).contains(&n.api_command_timeout_ms) {
            p.push(problem(
                "fieldbus.neasmart.api_command_timeout_ms",
                "must be 100..=60000",
            ));
        }
        if !self.enabled {
            return;
        }
        if n.enabled {
            if n.unit_ids.is_empty() {
                p.push(problem("fieldbus.neasmart.unit_ids", "must not be empty"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for u in &n.unit_ids {
                if !seen.insert(u.get()) {
                    p.push(problem(
                        "fieldbus.neasmart.unit_ids",
                        format!("unit id {} is listed twice", u.get()),
                    ));
                }
            }
            if n.serial.is_none() && n.tcp_listen.is_none() {
                p.push(problem(
                    "fieldbus.neasmart",
                    "needs `serial` (RTU line) or `tcp_listen` (Modbus TCP), or enabled = false",
                ));
            }
            if let Some(s) = &n.serial {
                check_serial("fieldbus.neasmart.serial", s, p);
            }
            if n.tcp_max_connections == 0 {
                p.push(problem(
                    "fieldbus.neasmart.tcp_max_connections",
                    "must be at least 1",
                ));
            }
            if !(10..=60_000).contains(&n.tcp_frame_timeout_ms) {
                p.push(problem(
                    "fieldbus.neasmart.tcp_frame_timeout_ms",
                    "must be 10..=60000",
                ));
            }
            for (key, value, max) in [
                ("tcp_idle_timeout_s", n.tcp_idle_timeout_s, 86_400),
                ("tcp_keepalive_s", n.tcp_keepalive_s, 7200),
                ("tcp_replace_after_s", n.tcp_replace_after_s, 3600),
            ] {
                if value > max {
                    p.push(problem(
                        &format!("fieldbus.neasmart.{key}"),
                        format!("must be 0..={max}"),
                    ));
                }
            }
            if !(1..=3600).contains(&n.command_timeout_s) {
                p.push(problem(
                    "fieldbus.neasmart.command_timeout_s",
                    "must be 1..=3600",
                ));
            }
            if !(1..=86_400).contains(&n.stale_after_s) {
                p.push(problem(
                    "fieldbus.neasmart.stale_after_s",
                    "must be 1..=86400",
                ));
            }
            if !(100..=3_600_000).contains(&n.persist_interval_ms) {
                p.push(problem(
                    "fieldbus.neasmart.persist_interval_ms",
                    "must be 100..=3600000",
                ));
            }
            if n.startup_global_mode > 5 {
                p.push(problem(
                    "fieldbus.neasmart.startup_global_mode",
                    "must be 0 (none) or 1..=5",
                ));
            }
            if n.startup_global_state > 6 {
                p.push(problem(
                    "fieldbus.neasmart.startup_global_state",
                    "must be 0 (none) or 1..=6",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.relays.iter().enumerate() {
            let key = format!("fieldbus.relays[{i}]");
            if !names.insert(r.name.as_str()) {
                p.push(problem(
                    &format!("{key}.name"),
                    format!("duplicate relay module `{}`", r.name),
                ));
            }
            match (&r.tcp, &r.serial) {
                _ if r.board && (r.tcp.is_some() || r.serial.is_some()) => p.push(problem(
                    &key,
                    "a `board` module uses the board's GPIO relays; it takes no `tcp` or `serial`",
                )),
                _ if r.board => {
                    if r.coil_offset != 0 {
                        p.push(problem(
                            &format!("{key}.coil_offset"),
                            "a `board` module has no coil offset: channel N is the board's Nth relay",
                        ));
                    }
                    if let Some(other) = self.relays[..i].iter().find(|o| o.board) {
                        p.push(problem(
                            &format!("{key}.board"),
                            format!("the board's relays are already module `{}`", other.name),
                        ));
                    }
                }
                (Some(_), Some(_)) | (None, None) => p.push(problem(
                    &key,
                    "give exactly one of `tcp` (endpoint), `serial` (line) or `board = true`",
                )),
                (None, Some(s)) => {
                    check_serial(&format!("{key}.serial"), s, p);
                    if n.enabled && n.serial.as_ref().is_some_and(|ns| ns.port == s.port) {
                        p.push(problem(
                            &format!("{key}.serial.port"),
                            format!(
                                "{} is the Neasmart slave line; a serial line is either a slave \
                                 or a master line, never both",
                                s.port.display()
                            ),
                        ));
                    }
                    // Modules sharing a line must agree on how the line is set up.
                    for other in &self.relays[..i] {
                        if let Some(os) = &other.serial
                            && os.port == s.port
                            && os != s
                        {
                            p.push(problem(
                                &format!("{key}.serial"),
                                format!(
                                    "shares {} with relay module `{}` but its line settings differ",
                                    s.port.display(),
                                    other.name
                                ),
                            ));
                        }
                    }
                }
                (Some(_), None) => {}
            }
            if !(10..=10_000).contains(&r.timeout_ms) {
                p.push(problem(&format!("{key}.timeout_ms"), "must be 10..=10000"));
            }
            if r.poll_interval_ms < 50 {
                p.push(problem(
                    &format!("{key}.poll_interval_ms"),
                    "must be at least 50",
                ));
            }
            if r.breaker_failures == 0 {
                p.push(problem(
                    &format!("{key}.breaker_failures"),
                    "must be at least 1",
                ));
            }
            if r.breaker_open_ms < 100 {
                p.push(problem(
                    &format!("{key}.breaker_open_ms"),
                    "must be at least 100",
                ));
            }
            if r.channels.is_empty() {
                p.push(problem(
                    &format!("{key}.channels"),
                    "a relay module needs at least one channel",
                ));
            }
            let mut chans = std::collections::BTreeSet::new();
            let mut chan_names = std::collections::BTreeSet::new();
            for (j, c) in r.channels.iter().enumerate() {
                let ck = format!("{key}.channels[{j}]");
                if !(1..=256).contains(&c.channel) {
                    p.push(problem(&format!("{ck}.channel"), "must be 1..=256"));
                } else if u32::from(r.coil_offset) + u32::from(c.channel) > 0x1_0000 {
                    p.push(problem(
                        &format!("{ck}.channel"),
                        "coil_offset + channel runs past coil 65535",
                    ));
                }
                if !chans.insert(c.channel) {
                    p.push(problem(
                        &format!("{ck}.channel"),
                        format!("channel {} is configured twice", c.channel),
                    ));
                }
                if !chan_names.insert(c.name.as_str()) {
                    p.push(problem(
                        &format!("{ck}.name"),
                        format!("duplicate channel name `{}`", c.name),
                    ));
                }
                if !(1..=3_600_000).contains(&c.pulse_ms) {
                    p.push(problem(&format!("{ck}.pulse_ms"), "must be 1..=3600000"));
                }
                match (c.mode, &c.follow_topic) {
                    (RelayMode::Follower, None) => p.push(problem(
                        &format!("{ck}.follow_topic"),
                        "a follower channel needs follow_topic",
                    )),
                    (RelayMode::Manual | RelayMode::Pulse, Some(_)) => p.push(problem(
                        &format!("{ck}.follow_topic"),
                        "only a follower channel follows a topic (set mode = \"follower\")",
                    )),
                    _ => {}
                }
            }
        }
    }
}

fn check_serial(key: &str, s: &SerialConfig, p: &mut Vec<Problem>) {
    if s.port.as_os_str().is_empty() {
        p.push(problem(&format!("{key}.port"), "must not be empty"));
    }
    if !(5..=8).contains(&s.data_bits) {
        p.push(problem(&format!("{key}.data_bits"), "must be 5..=8"));
    }
    if !(1..=2).contains(&s.stop_bits) {
        p.push(problem(&format!("{key}.stop_bits"), "must be 1 or 2"));
    }
    if s.inter_frame_gap_us
        .is_some_and(|g| !(100..=1_000_000).contains(&g))
    {
        p.push(problem(
            &format!("{key}.inter_frame_gap_us"),
            "must be 100..=1000000",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FieldbusConfig, String> {
        toml::from_str::<FieldbusConfig>(text).map_err(|e| e.to_string())
    }

    fn problems(c: &FieldbusConfig) -> Vec<String> {
        let mut p = Vec::new();
        c.validate(&mut p);
        p.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn defaults_are_the_sysbus_ones() {
        let c = FieldbusConfig::default();
        assert_eq!(
            c.neasmart
                .unit_ids
                .iter()
                .map(|u| u.get())
                .collect::<Vec<_>>(),
            vec![240, 241]
        );
        assert_eq!(c.neasmart.command_timeout_s, 30);
        assert_eq!(c.neasmart.stale_after_s, 180);
        // Half-open connections (a converter that rebooted) are closed and replaced.
        assert_eq!(
            (
                c.neasmart.tcp_idle_timeout_s,
                c.neasmart.tcp_keepalive_s,
                c.neasmart.tcp_replace_after_s
            ),
            (300, 30, 5)
        );
        assert!(problems(&c).is_empty());
        let s: SerialConfig = toml::from_str("port = \"/dev/ttyS1\"").unwrap();
        assert_eq!(
            (s.baud.get(), s.data_bits, s.parity, s.stop_bits, s.rs485),
            (38_400, 8, Parity::None, 1, false)
        );
    }

    #[test]
    fn a_full_section_parses_and_validates() {
        let c = parse(
            r#"
            enabled = true
            [neasmart]
            unit_ids = [240, 241]
            tcp_listen = "127.0.0.1:5020"
            compat_listen = "127.0.0.1:5000"
            serial = { port = "/dev/ttyS1", baud = 38400, rs485 = true }
            [[relays]]
            name = "outputs"
            unit_id = 1
            tcp = "127.0.0.1:5021"
            channels = [
              { channel = 1, name = "siren", mode = "pulse", pulse_ms = 500 },
              { channel = 2, name = "light", mode = "follower", follow_topic = "watchpost/alarm/armed" },
            ]
            "#,
        )
        .unwrap();
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
        assert_eq!(c.relays[0].channels[0].mode, RelayMode::Pulse);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            parse("[neasmart]\nunit_ids = [0]")
                .unwrap_err()
                .contains("1..=247")
        );
        assert!(
            parse("[neasmart]\nunit_ids = [300]")
                .unwrap_err()
                .contains("1..=247")
        );
        assert!(
            parse("[neasmart]\nserial = { port = \"/dev/x\", baud = 12345 }")
                .unwrap_err()
                .contains("baud rate 12345")
        );
        assert!(
            parse("[neasmart]\nbogus = 1")
                .unwrap_err()
                .contains("bogus")
        );
        let c = parse(
            "enabled = true\n[neasmart]\ntcp_listen = \"127.0.0.1:502\"\ntcp_keepalive_s = 9000",
        )
        .unwrap();
        assert_eq!(
            problems(&c),
            ["fieldbus.neasmart.tcp_keepalive_s: must be 0..=7200"]
        );
    }

    #[test]
    fn cross_key_problems() {
        let mut c = parse(
            r#"
            enabled = true
            [neasmart]
            unit_ids = [240, 240]
            serial = { port = "/dev/ttyS1" }
            startup_global_mode = 6
            setpoint_min_celsius = 30.0
            setpoint_max_celsius = 20.0
            [[relays]]
            name = "r"
            unit_id = 1
            serial = { port = "/dev/ttyS1" }
            channels = [{ channel = 1, name = "a", mode = "follower" }, { channel = 1, name = "a" }]
            "#,
        )
        .unwrap();
        let p = problems(&c).join("\n");
        for needle in [
            "listed twice",
            "startup_global_mode",
            "setpoint_min_celsius",
            "either a slave or a master line",
            "needs follow_topic",
            "configured twice",
            "duplicate channel name",
        ] {
            assert!(p.contains(needle), "{needle} missing in:\n{p}");
        }
        c.enabled = true;
        c.neasmart.serial = None;
        assert!(problems(&c).join("\n").contains("needs `serial`"));
    }
}
