//! A small Prometheus metrics registry: counters and gauges with labels, rendered as the
//! Prometheus text exposition format (version 0.0.4).
//!
//! Each worker owns one [`Registry`]; its rendered text travels to the supervisor and the hub
//! concatenates all of them into `/metrics`. Metric names are prefixed with `watchpost_` and the
//! worker's name, so families never collide between processes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    series: BTreeMap<String, Arc<AtomicU64>>,
}

/// A set of metric families. Cloning shares the same registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

/// A monotonically increasing count.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as f64 bits).
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    pub fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        escape_label_value(v, &mut s);
        s.push('"');
    }
    s.push('}');
    s
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        // A panic while holding this lock cannot leave the maps inconsistent (every update is
        // a single insert), so a poisoned lock is still safe to use.
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn series(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicU64> {
        debug_assert!(valid_name(name), "invalid metric name {name}");
        debug_assert!(
            labels.iter().all(|(k, _)| valid_name(k)),
            "invalid label in {name}"
        );
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            series: BTreeMap::new(),
        });
        debug_assert_eq!(family.kind, kind, "metric {name} registered as two kinds");
        let initial = match kind {
            Kind::Counter => 0,
            Kind::Gauge => 0f64.to_bits(),
        };
        family
            .series
            .entry(render_labels(labels))
            .or_insert_with(|| Arc::new(AtomicU64::new(initial)))
            .clone()
    }

    /// Returns the counter `name{labels}`, creating it at zero.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        Counter(self.series(name, help, Kind::Counter, labels))
    }

    /// Returns the gauge `name{labels}`, creating it at zero.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(self.series(name, help, Kind::Gauge, labels))
    }

    /// Removes every series of `name` (for label sets that disappear, such as a deleted camera).
    pub fn remove_family(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Renders every family in the Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.lock();
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help.replace('\n', " "));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, value) in &family.series {
                let raw = value.load(Ordering::Relaxed);
                match family.kind {
                    Kind::Counter => {
                        let _ = writeln!(out, "{name}{labels} {raw}");
                    }
                    Kind::Gauge => {
                        let _ = writeln!(out, "{name}{labels} {}", fmt_f64(f64::from_bits(raw)));
                    }
                }
            }
        }
        out
    }
}

/// Formats a float the way Prometheus parses it (`NaN`, `+Inf`, `-Inf`).
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_labels() {
        let r = Registry::new();
        let c = r.counter(
            "watchpost_test_frames_total",
            "Frames seen.",
            &[("unit", "240")],
        );
        c.inc();
        c.add(2);
        r.counter(
            "watchpost_test_frames_total",
            "Frames seen.",
            &[("unit", "241")],
        )
        .inc();
        let g = r.gauge("watchpost_test_temp_celsius", "Temp.", &[]);
        g.set(21.5);
        g.add(-0.5);
        let text = r.render();
        assert!(text.contains("# TYPE watchpost_test_frames_total counter\n"));
        assert!(text.contains("watchpost_test_frames_total{unit=\"240\"} 3\n"));
        assert!(text.contains("watchpost_test_frames_total{unit=\"241\"} 1\n"));
        assert!(text.contains("watchpost_test_temp_celsius 21\n"));
        assert_eq!(
            text.matches("# HELP watchpost_test_frames_total").count(),
            1
        );
    }

    #[test]
    fn escapes_label_values() {
        let r = Registry::new();
        r.gauge("watchpost_x", "x", &[("reason", "a\"b\\c\nd")])
            .set(f64::INFINITY);
        assert!(
            r.render()
                .contains(r#"watchpost_x{reason="a\"b\\c\nd"} +Inf"#)
        );
    }

    #[test]
    fn same_series_is_shared() {
        let r = Registry::new();
        r.counter("watchpost_y_total", "y", &[]).inc();
        assert_eq!(r.counter("watchpost_y_total", "y", &[]).get(), 1);
    }
}
