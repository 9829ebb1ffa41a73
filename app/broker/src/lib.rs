//! The `broker` worker: the embedded MQTT broker (rumqttd) every other worker connects to.
//!
//! Role: the internal bus. When `[bus] external` names another broker, this worker is not
//! started at all (see `Config::worker_enabled`).
//!
//! Design: rumqttd runs its router and listener on threads of its own; this worker's main loop
//! only supervises them: it reports ready once the listener accepts TCP connections, then sends
//! heartbeats while the broker thread is alive. rumqttd has no shutdown API, so on SIGTERM the
//! worker returns and the process exit ends the broker's threads; clients see the connection
//! drop and reconnect when the broker is back.
//!
//! Latency: every accepted connection gets TCP_NODELAY (see [`nodelay`]).
//!
//! Failure: a listen address that cannot be bound makes rumqttd's thread end, which this worker
//! reports as [`BrokerError::ListenerDied`] (restarted with backoff by the supervisor).

mod nodelay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use watchpost_config::Config;
use watchpost_runtime::{ExitCode, WorkerCtx};

/// Why the broker worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("starting the broker thread: {0}")]
    SpawnThread(#[source] std::io::Error),
    #[error("the broker listener on {addr} did not accept connections within {waited_ms} ms")]
    ListenerNotReady { addr: SocketAddr, waited_ms: u64 },
    #[error("the broker on {addr} stopped: {reason}")]
    ListenerDied { addr: SocketAddr, reason: String },
}

impl BrokerError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BrokerError::SpawnThread(_) => ExitCode::Failure,
            BrokerError::ListenerNotReady { .. } => ExitCode::Unavailable,
            BrokerError::ListenerDied { .. } => ExitCode::Unavailable,
        }
    }
}

fn rumqttd_config(config: &Config) -> rumqttd::Config {
    let b = &config.broker;
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: b.max_payload_bytes,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let mut v4 = HashMap::new();
    v4.insert(
        "1".to_string(),
        rumqttd::ServerSettings {
            name: "v4-1".into(),
            listen: b.listen.addr(),
            tls: None,
            next_connection_delay_ms: 1,
            connections,
        },
    );
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: b.max_connections,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..Default::default()
    }
}

/// Runs the broker until shutdown.
pub async fn run(config: Config, ctx: Arc<WorkerCtx>) -> Result<(), BrokerError> {
    let addr = config.broker.listen.addr();
    let mut broker = rumqttd::Broker::new(rumqttd_config(&config));
    let thread = std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || broker.start().map_err(|e| e.to_string()))
        .map_err(BrokerError::SpawnThread)?;

    // Ready once the listener accepts connections.
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let started = tokio::time::Instant::now();
    let wait = Duration::from_secs(10);
    loop {
        if thread.is_finished() {
            let reason = thread
                .join()
                .ok()
                .and_then(|r| r.err())
                .unwrap_or_else(|| "exited".into());
            return Err(BrokerError::ListenerDied { addr, reason });
        }
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            break;
        }
        if started.elapsed() > wait {
            return Err(BrokerError::ListenerNotReady {
                addr,
                waited_ms: wait.as_millis() as u64,
            });
        }
        tokio::select! {
            _ = ctx.shutdown().cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    // Before ready: the other workers connect once the broker is ready.
    match nodelay::set_on_listener(addr) {
        Ok(found) if found.listener => tracing::debug!(
            %addr,
            accepted = found.accepted,
            "TCP_NODELAY set on the broker listener"
        ),
        Ok(_) => {
            tracing::warn!(%addr, "broker listener not found; connections keep Nagle's algorithm")
        }
        Err(e) => tracing::warn!(%addr, error = %e, "setting TCP_NODELAY on the broker listener"),
    }
    ctx.metrics()
        .gauge(
            "watchpost_broker_up",
            "1 while the embedded broker runs.",
            &[],
        )
        .set(1.0);
    ctx.ready([("mqtt", addr)]);
    ctx.status(format!("listening on {addr}"));

    let mut tick = tokio::time::interval(ctx.heartbeat_interval());
    loop {
        tokio::select! {
            _ = ctx.shutdown().cancelled() => break,
            _ = tick.tick() => {
                if thread.is_finished() {
                    let reason = thread.join().ok().and_then(|r| r.err()).unwrap_or_else(|| "exited".into());
                    return Err(BrokerError::ListenerDied { addr, reason });
                }
                ctx.heartbeat();
            }
        }
    }
    Ok(())
}
