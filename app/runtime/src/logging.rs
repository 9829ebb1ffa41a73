//! Logging set-up shared by every binary, and a limiter for log lines peers can trigger.
//!
//! Under systemd (`JOURNAL_STREAM` set) logs go to journald with structured fields; otherwise
//! human-readable text or JSON lines on stderr. `RUST_LOG` overrides the configured level.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Filter directives added to the configured level (not to `RUST_LOG`).
pub const QUIET_DEPENDENCIES: &str = "rumqttd=off";

/// Where and how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// journald under systemd, text otherwise.
    #[default]
    Auto,
    Text,
    Json,
    Journald,
}

/// Installs the global subscriber. `process` names the process in every line (for example
/// `supervisor` or `worker:fieldbus`). Calling it twice is harmless (the second call is ignored).
pub fn init(format: LogFormat, level: &str, process: &str) {
    // rumqttd logs every peer's dropped connection at ERROR (unbounded, peer-triggered); the
    // broker worker reports the broker's own health instead. RUST_LOG can turn it back on.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},{QUIET_DEPENDENCIES}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(layer.with_syslog_identifier(format!("watchpost[{process}]")))
                .try_init(),
            Err(_) => registry
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .try_init(),
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(process, "logging initialised");
    }
}

/// Limits how often a log line with a given key is written: at most `burst` lines per
/// `window`; the rest are counted and the count is reported with the next allowed line.
///
/// Use it for anything a peer or device can trigger (bad frames, bad payloads, reconnects).
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    burst: u32,
    keys: Mutex<HashMap<String, (Instant, u32, u64)>>,
}

impl LogLimiter {
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            window,
            burst,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Returns `Some(suppressed)` when a line for `key` may be written now (with the number of
    /// lines suppressed since the last one), `None` when it must be dropped.
    pub fn check(&self, key: &str) -> Option<u64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > 1024 {
            // Bounded memory even if a peer invents keys: forget windows that have passed.
            let window = self.window;
            keys.retain(|_, (start, _, _)| now.duration_since(*start) < window);
        }
        let entry = keys.entry(key.to_string()).or_insert((now, 0, 0));
        if now.duration_since(entry.0) >= self.window {
            entry.0 = now;
            entry.1 = 0;
        }
        if entry.1 < self.burst {
            entry.1 += 1;
            let suppressed = std::mem::take(&mut entry.2);
            Some(suppressed)
        } else {
            entry.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_counts() {
        let l = LogLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check_at("crc", t0), Some(0));
        assert_eq!(l.check_at("crc", t0), Some(0));
        assert_eq!(l.check_at("crc", t0), None);
        assert_eq!(l.check_at("crc", t0), None);
        assert_eq!(l.check_at("other", t0), Some(0));
        assert_eq!(l.check_at("crc", t0 + Duration::from_secs(11)), Some(2));
    }
}
