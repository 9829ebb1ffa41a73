//! Upstream MQTT brokers: topic mappings out of and into the appliance's bus, and the
//! monitoring feed, with a durable offline queue per broker.
//!
//! **Role.** For each `[[bridge.upstream]]` the bridge keeps one MQTT connection (3.1.1 or 5,
//! TCP or TLS with an optional client certificate, user name and password). `out` mappings
//! forward bus messages to the broker under the remote prefix, `in` mappings forward the
//! broker's messages onto the bus under the local prefix, `both` does both without echoing a
//! message back ([`mapping`]). The [`feed`] publishes the sensors' status in a documented JSON
//! schema. Docs: `docs/bridge.md`; the feed's schema: `docs/bus.md`.
//!
//! **Design.** [`Upstreams::start`] checks the TLS files, opens the bridge's store
//! (`<data_dir>/bridge.redb`, one durable queue `upstream.<name>` per upstream), subscribes
//! the bus filters, and spawns one [`link::Link`] task per upstream, which owns its connection
//! and outbox and reads one merged channel of bus messages. The delivery rules (direct while
//! connected, spooled through the queue while not, in order, at least once) are in [`link`].
//!
//! **Failure.** A TLS file that cannot be read or used is a configuration error (the worker
//! exits with `ExitCode::Config`); a store that cannot be opened is a failure (restarted).
//! Connection failures are retried with back-off and jitter, and counted. A full queue drops
//! by the configured policy and counts it (`watchpost_bridge_upstream_dropped_total`).
//!
//! **Shutdown.** On the worker's shutdown token each link removes the acknowledged entries
//! from the store, queues every message it held in memory, and disconnects cleanly;
//! [`Upstreams::stop`] waits for that (bounded).

pub mod client;
pub mod feed;
pub mod link;
pub mod mapping;
pub mod metrics;

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use watchpost_bus::{Bus, BusError, Message};
use watchpost_config::Config;
use watchpost_config::upstream::UpstreamConfig;
use watchpost_contract::alarm as contract;
use watchpost_runtime::{ExitCode, WorkerCtx};
use watchpost_store::{QueueConfig, Store, StoreError};

pub use client::{Conn, TlsError};
use link::{Link, Local};

/// Bus messages waiting for a link; a link that falls behind by more makes the bus drop.
const INBOX_CAPACITY: usize = 65_536;
/// Prefix of the upstreams' queue names in the store.
const QUEUE_PREFIX: &str = "upstream.";

/// Why the upstreams could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream}: {source}")]
    Tls { upstream: String, source: TlsError },
    #[error("opening the bridge's store {path}: {source}")]
    OpenStore {
        path: PathBuf,
        source: Box<StoreError>,
    },
    #[error("opening the queue of upstream {upstream}: {source}")]
    OpenQueue {
        upstream: String,
        source: Box<StoreError>,
    },
    #[error("subscribing to {filter} on the bus: {source}")]
    Subscribe { filter: String, source: BusError },
    #[error("{what}: the blocking task failed: {reason}")]
    Task { what: &'static str, reason: String },
}

impl UpstreamError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            UpstreamError::Tls { .. } => ExitCode::Config,
            UpstreamError::OpenStore { .. }
            | UpstreamError::OpenQueue { .. }
            | UpstreamError::Subscribe { .. }
            | UpstreamError::Task { .. } => ExitCode::Failure,
        }
    }
}

/// The bridge's store: `<data_dir>/bridge.redb`.
pub fn store_path(config: &Config) -> PathBuf {
    config.system.data_dir.join("bridge.redb")
}

/// The store queue of upstream `name`.
pub fn queue_name(name: &str) -> String {
    format!("{QUEUE_PREFIX}{}", name.to_ascii_lowercase())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    crate::now_ms()
}

/// The running upstream links.
#[derive(Debug, Default)]
pub struct Upstreams {
    links: Vec<JoinHandle<()>>,
}

impl Upstreams {
    /// Starts every configured upstream (none: nothing is opened).
    pub async fn start(config: &Config, bus: &Bus, ctx: &WorkerCtx) -> Result<Self, UpstreamError> {
        // Presets (`homeassistant = true`) become plain mappings here.
        let upstreams: Vec<UpstreamConfig> = config
            .bridge
            .upstream
            .iter()
            .map(|u| {
                let mut u = u.clone();
                u.mappings = u.effective_mappings(
                    &config.bus.prefix,
                    &config.bridge.homeassistant.discovery_prefix,
                );
                u
            })
            .collect();
        let upstreams = &upstreams;
        if upstreams.is_empty() {
            return Ok(Self::default());
        }
        // Configuration first: every TLS file is read before anything is opened.
        let mut tls = Vec::new();
        for u in upstreams {
            tls.push(match &u.tls {
                Some(t) => Some(client::tls_config(t).map_err(|source| UpstreamError::Tls {
                    upstream: u.name.to_string(),
                    source,
                })?),
                None => None,
            });
        }
        let path = store_path(config);
        let p = path.clone();
        let keep: Vec<String> = upstreams
            .iter()
            .map(|u| queue_name(u.name.as_str()))
            .collect();
        let store = tokio::task::spawn_blocking(move || {
            let store = Store::open(&p)?;
            forget_removed(&store, &keep);
            Ok::<_, StoreError>(store)
        })
        .await
        .map_err(|e| task_failed("opening the bridge's store", e))?
        .map_err(|source| UpstreamError::OpenStore {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let mut links = Vec::new();
        for (u, tls) in upstreams.iter().zip(tls) {
            let name = u.name.to_string();
            let capacity = NonZeroU64::new(u.queue_capacity).unwrap_or(NonZeroU64::MIN);
            let qcfg = QueueConfig {
                capacity,
                overflow: link::overflow(u.queue_overflow),
            };
            let s = store.clone();
            let qname = queue_name(&name);
            let opened = tokio::task::spawn_blocking(move || {
                let q = s.queue(&qname, qcfg)?;
                let stats = q.stats()?;
                Ok::<_, StoreError>((q, stats))
            })
            .await
            .map_err(|e| task_failed("opening an upstream queue", e))?;
            let (queue, stats) = opened.map_err(|source| UpstreamError::OpenQueue {
                upstream: name.clone(),
                source: Box::new(source),
            })?;
            let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
            for filter in mapping::Mappings::new(u.mappings.clone()).local_filters() {
                let sub = subscribe(bus, &filter).await?;
                tokio::spawn(forward(sub, tx.clone(), Local::Mapped));
            }
            if u.feed.is_some() {
                let sub = subscribe(bus, &bus.filter(&contract::SENSOR_STATES)).await?;
                let prefix = bus.prefix().to_string();
                tokio::spawn(forward(sub, tx.clone(), move |m: Message| {
                    let id = m
                        .topic
                        .strip_prefix(&prefix)
                        .and_then(|t| t.strip_prefix('/'))
                        .and_then(|rest| {
                            let levels: Vec<&str> = rest.split('/').collect();
                            contract::sensor_state_id(&levels).map(str::to_string)
                        })
                        .unwrap_or_default();
                    Local::SensorState { id, message: m }
                }));
            }
            drop(tx);
            tracing::info!(
                upstream = %name,
                broker = %u.broker,
                queued = stats.len,
                "upstream configured"
            );
            let metrics = metrics::LinkMetrics::new(ctx.metrics(), &name);
            let link = Link::new(
                u.clone(),
                tls,
                bus.clone(),
                queue,
                stats.len,
                stats.next_seq.checked_sub(1),
                metrics,
            );
            links.push(tokio::spawn(link.run(rx, ctx.shutdown().clone())));
        }
        Ok(Self { links })
    }

    /// Waits (up to `grace`) for the links to finish after the shutdown token fired.
    pub async fn stop(self, grace: Duration) {
        let all = futures_join(self.links);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("upstream links did not stop within the grace period");
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

async fn subscribe(bus: &Bus, filter: &str) -> Result<mpsc::Receiver<Message>, UpstreamError> {
    bus.subscribe(filter)
        .await
        .map_err(|source| UpstreamError::Subscribe {
            filter: filter.to_string(),
            source,
        })
}

/// Forwards one bus subscription into a link's inbox.
async fn forward(
    mut sub: mpsc::Receiver<Message>,
    tx: mpsc::Sender<Local>,
    wrap: impl Fn(Message) -> Local,
) {
    while let Some(m) = sub.recv().await {
        if tx.send(wrap(m)).await.is_err() {
            return;
        }
    }
}

fn task_failed(what: &'static str, e: tokio::task::JoinError) -> UpstreamError {
    UpstreamError::Task {
        what,
        reason: e.to_string(),
    }
}

/// Deletes the queues of upstreams no longer configured (their messages cannot go anywhere).
fn forget_removed(store: &Store, keep: &[String]) {
    let Ok(names) = store.queue_names() else {
        return;
    };
    for name in names
        .into_iter()
        .filter(|n| n.starts_with(QUEUE_PREFIX) && !keep.contains(n))
    {
        let queued = store
            .queue(
                &name,
                QueueConfig {
                    capacity: NonZeroU64::MIN,
                    overflow: watchpost_store::Overflow::RejectNew,
                },
            )
            .and_then(|q| q.len())
            .unwrap_or(0);
        match store.remove_queue(&name) {
            Ok(_) => tracing::warn!(
                queue = %name,
                discarded = queued,
                "the queue of an upstream no longer configured was deleted"
            ),
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "cannot delete the queue of a removed upstream")
            }
        }
    }
}
