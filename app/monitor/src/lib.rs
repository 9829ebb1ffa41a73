//! The `monitor` worker: probes of the appliance itself, of network targets and of devices'
//! HTTP(S) JSON endpoints; threshold rules on their figures raise and clear events.
//!
//! **Role.** For every target of `[monitor]` (the appliance itself as `system`, `ping`, `tcp`,
//! `dns` and `http` targets) it publishes the target's state and last figures, retained, on
//! `<prefix>/monitor/target/<id>` (the hub's `GET /api/v1/monitor` and its monitor page read
//! them), every figure on `/metrics` (`watchpost_monitor_*`), and every rule that raises or
//! clears on `<prefix>/monitor/event` (the hub records it in the event store).
//!
//! **Design.** One task per target ([`ping`], [`probes`]) probes on its own schedule, each
//! probe bounded by the target's timeout, and sends a [`Report`] to the main loop, which owns
//! the targets' status, the [`rules`] and the metrics, and publishes. A probe that hangs holds
//! up only its own target; the worker is a separate process, so nothing it does can stop the
//! hub's API or the alarm path.
//!
//! **Failure.** A target that does not answer is `down` with the reason, which is the point of
//! monitoring, not a fault of the worker. What the worker cannot do itself (no ICMP socket:
//! neither a ping socket nor `CAP_NET_RAW`) is a fault (`/health` degraded with the reason),
//! retried every few seconds. The bus being away loses figures (the next probe's are
//! published) and events published meanwhile.
//!
//! **Shutdown.** On the shutdown token every probe task stops where it waits, the main loop
//! ends, and the bus client says `offline`.

#![forbid(unsafe_code)]

pub mod export;
pub mod ping;
pub mod probes;
pub mod rules;
pub mod stats;
pub mod system;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use watchpost_bus::{Bus, Retain};
use watchpost_config::Config;
use watchpost_contract::monitor::{
    self as contract, Figure, TargetKind, TargetState, TargetStatus,
};
use watchpost_runtime::{ExitCode, WorkerCtx};

use rules::Rule;

/// Why the monitor stopped.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Every probe task ended before shutdown (a bug: they run until the token).
    #[error("every probe task ended")]
    ProbesEnded,
}

impl MonitorError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            MonitorError::ProbesEnded => ExitCode::Failure,
        }
    }
}

/// What one probe of a target found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: TargetState,
    /// Why the target is down.
    pub reason: Option<String>,
    /// A remark on an up target (a configured field missing from the body).
    pub note: Option<String>,
    pub figures: Vec<Figure>,
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The worker itself cannot probe (no socket, no client): a fault of the worker.
    pub fault: bool,
}

impl Outcome {
    pub fn up(figures: Vec<Figure>) -> Self {
        Self {
            state: TargetState::Up,
            reason: None,
            note: None,
            figures,
            fields: BTreeMap::new(),
            fault: false,
        }
    }

    pub fn down(reason: impl Into<String>) -> Self {
        Self {
            state: TargetState::Down,
            reason: Some(reason.into()),
            ..Self::up(Vec::new())
        }
    }

    pub fn unknown(figures: Vec<Figure>) -> Self {
        Self {
            state: TargetState::Unknown,
            ..Self::up(figures)
        }
    }

    pub fn with_figures(mut self, figures: Vec<Figure>) -> Self {
        self.figures = figures;
        self
    }

    pub fn fault(mut self, fault: bool) -> Self {
        self.fault = fault;
        self
    }
}

/// A probe's outcome for a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub target: String,
    pub outcome: Outcome,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The figures without any that is not a finite number (JSON has none).
fn finite(figures: Vec<Figure>) -> Vec<Figure> {
    figures
        .into_iter()
        .filter(|f| f.value.is_finite())
        .collect()
}

/// The main loop's state: every target's status and the rules.
struct Monitor {
    targets: BTreeMap<String, TargetStatus>,
    rules: Vec<Rule>,
    metrics: export::Metrics,
}

impl Monitor {
    fn new(config: &Config, metrics: export::Metrics) -> Self {
        let now = now_ms();
        let m = &config.monitor;
        let targets = m
            .targets()
            .into_iter()
            .map(|t| {
                let kind = match t.kind {
                    "system" => TargetKind::System,
                    "ping" => TargetKind::Ping,
                    "tcp" => TargetKind::Tcp,
                    "dns" => TargetKind::Dns,
                    _ => TargetKind::Http,
                };
                let status = TargetStatus {
                    id: t.id.to_string(),
                    name: t.name.unwrap_or(t.id).to_string(),
                    kind,
                    state: TargetState::Unknown,
                    reason: None,
                    updated_ms: now,
                    probes: 0,
                    failures: 0,
                    figures: Vec::new(),
                    fields: BTreeMap::new(),
                    alerts: Vec::new(),
                };
                (t.id.to_string(), status)
            })
            .collect();
        Self {
            targets,
            rules: m.rules.iter().map(Rule::new).collect(),
            metrics,
        }
    }

    /// Applies a report: the target's new status and the events of its rules.
    fn apply(
        &mut self,
        report: Report,
        now: u64,
    ) -> Option<(TargetStatus, Vec<contract::MonitorEvent>)> {
        let status = self.targets.get_mut(&report.target)?;
        let o = report.outcome;
        if o.state != TargetState::Unknown {
            status.probes += 1;
            if o.state == TargetState::Down {
                status.failures += 1;
            }
        }
        status.state = o.state;
        status.reason = o.reason.or(o.note);
        status.updated_ms = now;
        status.figures = finite(o.figures);
        status.fields = o.fields;
        let mut events = Vec::new();
        for rule in self.rules.iter_mut().filter(|r| r.target == status.id) {
            let value = status.figure(&rule.metric, rule.item.as_deref());
            if let Some(e) = rule.observe(value, now) {
                events.push(e);
            }
        }
        status.alerts = self
            .rules
            .iter()
            .filter(|r| r.target == status.id)
            .filter_map(Rule::alert)
            .collect();
        self.metrics.record(status, &self.rules, &events);
        Some((status.clone(), events))
    }
}

/// Starts one probe task per target.
fn start_probes(
    config: &Config,
    tx: &mpsc::Sender<Report>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let m = &config.monitor;
    let mut tasks = Vec::new();
    if m.system {
        tasks.push(tokio::spawn(probes::system(
            Duration::from_millis(m.system_interval_ms),
            tx.clone(),
            shutdown.clone(),
        )));
    }
    for (i, t) in m.ping.iter().enumerate() {
        tasks.push(tokio::spawn(ping::run(
            i,
            t.clone(),
            tx.clone(),
            shutdown.clone(),
        )));
    }
    for t in &m.tcp {
        tasks.push(tokio::spawn(probes::tcp(
            t.clone(),
            tx.clone(),
            shutdown.clone(),
        )));
    }
    for t in &m.dns {
        tasks.push(tokio::spawn(probes::dns(
            t.clone(),
            tx.clone(),
            shutdown.clone(),
        )));
    }
    for t in &m.http {
        tasks.push(tokio::spawn(probes::http(
            t.clone(),
            tx.clone(),
            shutdown.clone(),
        )));
    }
    tasks
}

/// Runs the worker until shutdown.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), MonitorError> {
    let shutdown = ctx.shutdown().clone();
    let bus = Bus::connect(&config, contract::WORKER, shutdown.clone());
    let mut monitor = Monitor::new(&config, export::Metrics::new(ctx.metrics()));
    let (tx, mut reports) = mpsc::channel::<Report>(1024);
    let tasks = start_probes(&config, &tx, &shutdown);
    drop(tx);
    // Every configured target is announced (state unknown) before its first probe.
    for status in monitor.targets.values() {
        publish_status(&bus, status).await;
    }
    ctx.ready(Vec::<(&str, std::net::SocketAddr)>::new());
    let total = monitor.targets.len();
    ctx.status(format!("{total} targets"));
    let mut heartbeat = tokio::time::interval(ctx.heartbeat_interval());
    let mut faults: HashMap<String, bool> = HashMap::new();
    let mut open = !tasks.is_empty();
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = heartbeat.tick() => ctx.heartbeat(),
            r = reports.recv(), if open => {
                let Some(report) = r else {
                    open = false;
                    if !shutdown.is_cancelled() {
                        break Err(MonitorError::ProbesEnded);
                    }
                    continue;
                };
                let target = report.target.clone();
                let fault = report.outcome.fault;
                let reason = report.outcome.reason.clone();
                let was_faulty = faults.insert(target.clone(), fault).unwrap_or(false);
                if fault {
                    ctx.set_fault(format!("target {target}"), reason.unwrap_or_default());
                } else if was_faulty {
                    ctx.clear_fault(&format!("target {target}"));
                }
                let Some((status, events)) = monitor.apply(report, now_ms()) else { continue };
                for e in &events {
                    tracing::info!(rule = %e.rule, target = %e.target, transition = ?e.transition,
                        value = e.value, "monitor rule");
                    let topic = bus.topic(&contract::EVENTS);
                    if let Err(err) = bus.publish_json(&topic, e, Retain::No).await {
                        tracing::warn!(error = %err, "cannot publish a monitor event");
                    }
                }
                publish_status(&bus, &status).await;
                let up = monitor
                    .targets
                    .values()
                    .filter(|t| t.state == TargetState::Up)
                    .count();
                let raised = monitor.rules.iter().filter(|r| r.raised()).count();
                ctx.status(format!("{up} of {total} targets up, {raised} rules raised"));
            }
        }
    };
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    result
}

async fn publish_status(bus: &Bus, status: &TargetStatus) {
    let topic = bus.topic(&contract::target(&status.id));
    if let Err(err) = bus.publish_json(&topic, status, Retain::Yes).await {
        tracing::warn!(error = %err, topic, "cannot publish a monitor target's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        watchpost_config::from_str_with_env(text, std::path::Path::new("t.toml"), &[]).unwrap()
    }

    #[test]
    fn reports_update_status_rules_and_metrics() {
        let c = config(
            r#"
            [monitor]
            enabled = true
            system = false
            [[monitor.ping]]
            id = "gw"
            host = "127.0.0.1"
            [[monitor.rules]]
            id = "gw-loss"
            target = "gw"
            metric = "loss_percent"
            above = 20.0
            clear_at = 5.0
            "#,
        );
        let registry = watchpost_runtime::Registry::new();
        let mut m = Monitor::new(&c, export::Metrics::new(&registry));
        assert_eq!(m.targets["gw"].state, TargetState::Unknown);
        let loss = |v: f64| Figure {
            metric: "loss_percent".into(),
            item: None,
            value: v,
        };
        let report = |v: f64| Report {
            target: "gw".into(),
            outcome: Outcome::up(vec![
                loss(v),
                Figure {
                    metric: "rtt_avg_ms".into(),
                    item: None,
                    value: 1.5,
                },
            ]),
        };
        let (s, e) = m.apply(report(30.0), 1).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(s.alerts.len(), 1);
        assert_eq!(s.probes, 1);
        let (_, e) = m.apply(report(10.0), 2).unwrap();
        assert!(e.is_empty());
        let (s, e) = m.apply(report(0.0), 3).unwrap();
        assert_eq!(e[0].transition, contract::Transition::Cleared);
        assert!(s.alerts.is_empty());
        let (s, _) = m
            .apply(
                Report {
                    target: "gw".into(),
                    outcome: Outcome::down("no reply").with_figures(vec![loss(f64::NAN)]),
                },
                4,
            )
            .unwrap();
        assert_eq!(s.failures, 1);
        assert!(s.figures.is_empty(), "NaN is no figure");
        assert!(
            m.apply(
                Report {
                    target: "nope".into(),
                    outcome: Outcome::up(vec![])
                },
                5
            )
            .is_none()
        );
        let text = registry.render();
        assert!(
            text.contains("watchpost_monitor_rtt_avg_seconds{target=\"gw\"} 0.0015"),
            "{text}"
        );
        assert!(
            text.contains("watchpost_monitor_probes_total{target=\"gw\"} 4"),
            "{text}"
        );
        assert!(
            text.contains(
                "watchpost_monitor_rule_events_total{rule=\"gw-loss\",transition=\"raised\"} 1"
            ),
            "{text}"
        );
    }
}
