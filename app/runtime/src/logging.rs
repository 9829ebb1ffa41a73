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
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(RecentLayer {
            process: process
                .strip_prefix("worker:")
                .unwrap_or(process)
                .to_string(),
        });
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

/// How many warnings and errors a process keeps for the setup page.
pub const RECENT_MAX: usize = 100;

static RECENT: Mutex<(
    u64,
    std::collections::VecDeque<(u64, crate::proto::LogLine)>,
)> = Mutex::new((0, std::collections::VecDeque::new()));

/// Keeps the process's latest warnings and errors in memory ([`recent_since`]).
struct RecentLayer {
    process: String,
}

struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecentLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return;
        }
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        let line = crate::proto::LogLine {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            level: level.to_string(),
            process: self.process.clone(),
            target: event.metadata().target().to_string(),
            message: v.0.trim().chars().take(1000).collect(),
        };
        let mut r = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        r.0 += 1;
        let seq = r.0;
        r.1.push_back((seq, line));
        while r.1.len() > RECENT_MAX {
            r.1.pop_front();
        }
    }
}

/// The warnings and errors logged after sequence number `after`, and the newest number.
pub fn recent_since(after: u64) -> (Vec<crate::proto::LogLine>, u64) {
    let r = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    let lines =
        r.1.iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, l)| l.clone())
            .collect();
    (lines, r.0)
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
