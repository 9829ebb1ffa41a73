//! The Watchpost configuration: one TOML file, fully typed and validated before any worker
//! starts, any device is opened or any port is bound.
//!
//! Design: every section is a `#[serde(deny_unknown_fields)]` struct built from validating
//! newtypes ([`types`]) and enums for every closed set (thermal rule statistics, days, alarm
//! conditions…), so a bad value is rejected while the file is read, with its key path and
//! line; consumers get the typed value and never re-parse a string.
//! Environment variables `WATCHPOST_<SECTION>__<KEY>[__<SUBKEY>...]=<TOML value>` override
//! single keys (the value is parsed as TOML, and taken as a string when it does not parse).
//! Between the file and the environment comes the settings overlay,
//! `<data_dir>/settings/overlay.toml`: the changes made at run time through the hub's
//! settings API, deep-merged over the file ([`overlay`]); a rejected value that comes from it
//! is reported as the overlay's ([`ConfigError::Overlay`]). [`apply`] says which workers read
//! which section, so a change restarts only those.
//! Secrets at rest are sealed under the device key ([`secrets`]): a `"sealed:v1:…"` value of
//! the overlay, or of the file, is opened before the merge; one that does not open is an error
//! naming its key, never its value.
//! Checks that span several keys run in [`Config::validate`] and name the keys.
//!
//! Failure: [`load`] returns a [`ConfigError`] that names the file, and the key/line where
//! known; binaries print it and exit with `ExitCode::Config` (78).

#![forbid(unsafe_code)]

pub mod alarms;
pub mod apply;
pub mod bridge;
pub mod capture;
pub mod core;
pub mod detect;
pub mod fieldbus;
pub mod homeassistant;
pub mod monitor;
pub mod overlay;
pub mod rtsp;
pub mod secrets;
pub mod types;
pub mod upstream;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::core::{
    AuthConfig, BoardIo, BrokerConfig, BusConfig, ButtonSettings, HardwareWatchdogConfig,
    HubConfig, HubUpdateConfig, Role, SupervisorConfig, SystemConfig, UserConfig, WorkerName,
};
/// The TOML crate of this API's tables ([`overlay`]), so users need not pin their own.
pub use toml;
pub use types::{Endpoint, Hostname, Ident, ListenAddr, MqttTopic, NtpServer, Secret, TimeZone};

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "WATCHPOST_";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub system: SystemConfig,
    #[serde(default)]
    pub supervisor: SupervisorConfig,
    #[serde(default)]
    pub bus: BusConfig,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub hub: HubConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub fieldbus: fieldbus::FieldbusConfig,
    #[serde(default)]
    pub bridge: bridge::BridgeConfig,
    #[serde(default)]
    pub alarms: alarms::AlarmsConfig,
    #[serde(default)]
    pub capture: capture::CaptureConfig,
    #[serde(default)]
    pub detect: detect::DetectConfig,
    #[serde(default)]
    pub rtsp: rtsp::RtspConfig,
    #[serde(default)]
    pub monitor: monitor::MonitorConfig,
}

/// Every worker the appliance knows, in start order (a worker starts after those before it
/// that it depends on are ready; the broker comes first because the others connect to it).
pub const WORKERS: &[&str] = &[
    "broker", "fieldbus", "capture", "detect", "bridge", "rtsp", "monitor", "hub",
];

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse {
        path: PathBuf,
        /// The dotted key path of the rejected value, when known.
        key: Option<String>,
        message: String,
    },
    /// A value of the settings overlay (`<data_dir>/settings/overlay.toml`) is rejected.
    #[error("{path} (settings overlay): {}", keyed(.key.as_deref(), .message))]
    Overlay {
        path: PathBuf,
        key: Option<String>,
        message: String,
    },
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
    #[error("{path}: invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn keyed(key: Option<&str>, message: &str) -> String {
    match key {
        Some(k) => format!("in `{k}`: {message}"),
        None => message.to_string(),
    }
}

impl ConfigError {
    /// The dotted key path the error is about, when it names one (the first problem's).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } | ConfigError::Env { .. } => None,
            ConfigError::Parse { key, .. } | ConfigError::Overlay { key, .. } => key.as_deref(),
            ConfigError::Invalid { problems, .. } => problems.first().map(|p| p.key.as_str()),
        }
    }

    /// What is wrong, without the file's name (the first problem's message for
    /// [`ConfigError::Invalid`]).
    pub fn reason(&self) -> String {
        match self {
            ConfigError::Read { source, .. } => source.to_string(),
            ConfigError::Env { var, message } => format!("{var}: {message}"),
            ConfigError::Parse { message, .. } | ConfigError::Overlay { message, .. } => {
                message.clone()
            }
            ConfigError::Invalid { problems, .. } => problems
                .first()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
        }
    }

    /// Every cross-key problem ([`ConfigError::Invalid`]); empty for the other kinds.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// One cross-key problem found by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, such as `hub.listen`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Loads the file at `path`, deep-merges the settings overlay over it
/// (`<data_dir>/settings/overlay.toml`, when it exists; see [`overlay`]), applies the
/// environment overrides and validates the result.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &env)
}

/// [`load`] with the environment given.
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let text = read_base(path)?;
    let data_dir = data_dir_of(&text, path, env)?;
    let overlay_path = overlay::overlay_path(&data_dir);
    match overlay::read_overlay_in(&data_dir)? {
        Some(table) => from_parts(&text, path, Some((&table, &overlay_path)), env),
        None => from_parts(&text, path, None, env),
    }
}

/// Reads the configuration file's text.
pub fn read_base(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The data directory that the file `text` (named `path`) and the environment overrides name:
/// where the overlay is looked for.
pub fn data_dir_of(
    text: &str,
    path: &Path,
    env: &[(String, String)],
) -> Result<PathBuf, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        key: None,
        message: e.to_string().trim_end().to_string(),
    })?;
    for (var, value) in env_overrides(env) {
        apply_override(&mut table, var, value)?;
    }
    Ok(table
        .get("system")
        .and_then(|s| s.get("data_dir"))
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| SystemConfig::default().data_dir))
}

/// Validates a candidate overlay against the configuration file `text` (named `path`) and the
/// environment: the typed configuration the workers would load with it, or the first error,
/// naming the key (and saying when it comes from the overlay). `overlay_path` names the
/// overlay in errors.
pub fn validate_overlay(
    text: &str,
    path: &Path,
    overlay: &toml::Table,
    overlay_path: &Path,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    from_parts(text, path, Some((overlay, overlay_path)), env)
}

/// Parses `text` (named `path`), applies overrides from `env`, validates.
pub fn from_str_with_env(
    text: &str,
    path: &Path,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    from_parts(text, path, None, env)
}

fn env_overrides(env: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    env.iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].contains("__"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The file, the overlay over it, the environment over both; then the cross-key checks.
fn from_parts(
    text: &str,
    path: &Path,
    overlay: Option<(&toml::Table, &Path)>,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let overrides: Vec<(&str, &str)> = env_overrides(env).collect();
    let parse_err = |key: Option<String>, message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        key,
        message,
    };
    // A sealed secret in the file (pasted by an installer) is opened with the device key of
    // the data directory, when there is one (none is created to parse a file).
    let sealed_base = text.contains(secrets::SEALED_PREFIX);
    let config: Config = if overrides.is_empty() && overlay.is_none() && !sealed_base {
        // Straight from the text: errors keep their line and column.
        parse_document(text).map_err(|e| parse_err(e.key.clone(), e.to_string()))?
    } else {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| parse_err(None, e.to_string().trim_end().to_string()))?;
        if sealed_base {
            let data_dir = data_dir_of(text, path, env)?;
            secrets::open_table_in(&data_dir, &mut table)
                .map_err(|e| parse_err(Some(e.key().to_string()), e.to_string()))?;
        }
        if let Some((o, opath)) = overlay {
            if o.get("system").and_then(|s| s.get("data_dir")).is_some() {
                return Err(ConfigError::Overlay {
                    path: opath.to_path_buf(),
                    key: Some("system.data_dir".into()),
                    message: "the settings overlay cannot change the data directory (the \
                              overlay lives in it); change it in the configuration file"
                        .into(),
                });
            }
            table = overlay::merge_overlay(table, o);
        }
        for (var, value) in &overrides {
            apply_override(&mut table, var, value)?;
        }
        // Re-serialise so errors still point at a line (of the merged document).
        let merged = toml::to_string(&table).map_err(|e| parse_err(None, e.to_string()))?;
        match parse_document(&merged) {
            Ok(c) => c,
            Err(e) => {
                if let Some((o, opath)) = overlay
                    && e.key
                        .as_deref()
                        .is_some_and(|k| overlay::contains_key_path(o, k))
                {
                    return Err(ConfigError::Overlay {
                        path: opath.to_path_buf(),
                        key: e.key,
                        message: e.message,
                    });
                }
                // Not the overlay's: the file alone names the line, when the error is its.
                if let Err(base) = parse_document(text) {
                    return Err(parse_err(base.key.clone(), base.to_string()));
                }
                let after = if overlay.is_some() {
                    "after the settings overlay and environment overrides"
                } else {
                    "after environment overrides"
                };
                return Err(parse_err(e.key.clone(), format!("{after}: {e}")));
            }
        }
    };
    let mut problems = config.validate();
    if let Some((o, opath)) = overlay {
        for p in &mut problems {
            if overlay::contains_key_path(o, &p.key) {
                p.message = format!(
                    "{} (set in the settings overlay {})",
                    p.message,
                    opath.display()
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// A document that does not deserialize: the dotted key path of the rejected value (when
/// there is one), toml's message alone, and the whole report with line, column and excerpt.
#[derive(Debug)]
struct DocError {
    key: Option<String>,
    message: String,
    full: String,
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "in `{key}`: {}", self.full),
            None => f.write_str(&self.full),
        }
    }
}

/// Deserializes a whole document. A rejected value is reported with its dotted key path, such
/// as `capture.cameras[0].record.schedule[0].days[1]`, before toml's line, column and excerpt,
/// so a key that appears many times in the file is named exactly.
fn parse_document(text: &str) -> Result<Config, DocError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| DocError {
        key: None,
        message: e.message().to_string(),
        full: e.to_string().trim_end().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        DocError {
            key: (key != ".").then_some(key),
            message: inner.message().trim_end().to_string(),
            full: inner.to_string().trim_end().to_string(),
        }
    })
}

fn apply_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|k| k.to_ascii_lowercase())
        .collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(ConfigError::Env {
            var: var.into(),
            message: "empty key segment".into(),
        });
    }
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, parents) = keys.split_last().ok_or_else(|| ConfigError::Env {
        var: var.into(),
        message: "no key".into(),
    })?;
    let mut cur = table;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: var.into(),
            message: format!("`{k}` is not a table"),
        })?;
    }
    cur.insert(last.clone(), parsed);
    Ok(())
}

impl Config {
    /// The default configuration as TOML (what `watchpost print-default-config` prints).
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }

    /// Names of the enabled workers, in start order.
    pub fn enabled_workers(&self) -> Vec<&'static str> {
        WORKERS
            .iter()
            .copied()
            .filter(|w| self.worker_enabled(w))
            .collect()
    }

    pub fn worker_enabled(&self, name: &str) -> bool {
        match name {
            "broker" => self.broker.enabled && self.bus.external.is_none(),
            "fieldbus" => self.fieldbus.enabled,
            "capture" => self.capture.enabled,
            "detect" => self.detect.enabled,
            "bridge" => self.bridge.enabled,
            "rtsp" => self.rtsp.enabled,
            "monitor" => self.monitor.enabled,
            "hub" => self.hub.enabled,
            _ => false,
        }
    }

    /// The workers `name` waits for before it starts.
    pub fn dependencies(&self, name: &str) -> Vec<&'static str> {
        let mut deps = Vec::new();
        if name != "broker" && self.worker_enabled("broker") {
            deps.push("broker");
        }
        if name == "detect" && self.worker_enabled("capture") {
            deps.push("capture");
        }
        deps
    }

    /// Where workers connect for the bus.
    pub fn bus_endpoint(&self) -> Endpoint {
        match &self.bus.external {
            Some(e) => e.clone(),
            None => {
                let mut a = self.broker.listen.addr();
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                Endpoint::from(ListenAddr::new(a))
            }
        }
    }

    /// Every listen address of every enabled worker, with its dotted key (for port-0
    /// resolution by the supervisor and for the `listeners.json` report).
    pub fn listeners_mut(&mut self) -> Vec<(&'static str, &mut ListenAddr)> {
        let mut v: Vec<(&'static str, &mut ListenAddr)> = Vec::new();
        if self.broker.enabled && self.bus.external.is_none() {
            v.push(("broker.listen", &mut self.broker.listen));
        }
        if self.hub.enabled {
            v.push(("hub.listen", &mut self.hub.listen));
            if self.hub.tls.enabled {
                v.push(("hub.tls.listen", &mut self.hub.tls.listen));
            }
        }
        if self.fieldbus.enabled
            && self.fieldbus.neasmart.enabled
            && let Some(a) = &mut self.fieldbus.neasmart.tcp_listen
        {
            v.push(("fieldbus.neasmart.tcp_listen", a));
        }
        if self.hub.enabled
            && let Some(a) = &mut self.fieldbus.neasmart.compat_listen
        {
            v.push(("fieldbus.neasmart.compat_listen", a));
        }
        if self.rtsp.enabled {
            v.push(("rtsp.listen", &mut self.rtsp.listen));
            v.push(("rtsp.onvif_listen", &mut self.rtsp.onvif_listen));
        }
        v
    }

    /// Checks that span several keys. Each problem names its key.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let s = &self.supervisor;
        if s.heartbeat_interval_ms == 0 {
            p.push(problem(
                "supervisor.heartbeat_interval_ms",
                "must be greater than 0",
            ));
        }
        if s.heartbeat_timeout_ms < 2 * s.heartbeat_interval_ms {
            p.push(problem(
                "supervisor.heartbeat_timeout_ms",
                format!(
                    "must be at least twice supervisor.heartbeat_interval_ms ({} ms)",
                    s.heartbeat_interval_ms
                ),
            ));
        }
        if s.backoff_initial_ms == 0 || s.backoff_max_ms < s.backoff_initial_ms {
            p.push(problem(
                "supervisor.backoff_max_ms",
                "backoff_initial_ms must be > 0 and backoff_max_ms at least backoff_initial_ms",
            ));
        }
        if s.restart_budget == 0 {
            p.push(problem("supervisor.restart_budget", "must be at least 1"));
        }
        if let Some(wd) = &s.hardware_watchdog
            && !(1..=3600).contains(&wd.timeout_s)
        {
            p.push(problem(
                "supervisor.hardware_watchdog.timeout_s",
                "must be 1..=3600 seconds",
            ));
        }
        if !(500..=60_000).contains(&s.button.long_press_ms) {
            p.push(problem(
                "supervisor.button.long_press_ms",
                "must be 500..=60000 ms",
            ));
        }
        if !(1_000..=120_000).contains(&s.button.confirm_window_ms) {
            p.push(problem(
                "supervisor.button.confirm_window_ms",
                "must be 1000..=120000 ms",
            ));
        }
        if self.system.data_dir.as_os_str().is_empty() {
            p.push(problem("system.data_dir", "must not be empty"));
        }
        if self.bus.prefix.is_empty() || self.bus.prefix.contains(['+', '#']) {
            p.push(problem(
                "bus.prefix",
                "must be a non-empty topic level without wildcards",
            ));
        }
        if self.bus.password.is_some() && self.bus.username.is_none() {
            p.push(problem("bus.password", "given without bus.username"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.auth.users.iter().enumerate() {
            let key = format!("auth.users[{i}]");
            match (&u.password, &u.password_hash) {
                (Some(_), Some(_)) => {
                    p.push(problem(&key, "give password or password_hash, not both"))
                }
                (None, None) => p.push(problem(&key, "needs password or password_hash")),
                (Some(pw), None) if pw.expose().len() < 8 => p.push(problem(
                    &format!("{key}.password"),
                    "must be at least 8 characters",
                )),
                _ => {}
            }
            if !names.insert(u.name.as_str()) {
                p.push(problem(
                    &format!("{key}.name"),
                    format!("duplicate user `{}`", u.name),
                ));
            }
        }
        self.capture.validate(&mut p);
        self.bridge.validate(&mut p);
        self.alarms.validate(&mut p);
        self.rtsp.validate(&mut p);
        self.fieldbus.validate(&mut p);
        if self.monitor.enabled {
            self.monitor.validate(&mut p);
        }
        // Two listeners on the same non-zero port of overlapping addresses cannot both bind.
        let mut copy = self.clone();
        let addrs: Vec<(&'static str, std::net::SocketAddr)> = copy
            .listeners_mut()
            .into_iter()
            .map(|(k, a)| (k, a.addr()))
            .collect();
        for (i, (ka, a)) in addrs.iter().enumerate() {
            for (kb, b) in &addrs[i + 1..] {
                let overlap =
                    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
                if a.port() != 0 && a.port() == b.port() && overlap {
                    p.push(problem(
                        kb,
                        format!("port {} is already used by {ka}", b.port()),
                    ));
                }
            }
        }
        p
    }
}

#[cfg(test)]
mod tests;
