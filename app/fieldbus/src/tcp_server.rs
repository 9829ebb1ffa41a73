//! The Modbus TCP server: RS485-to-Ethernet converters (and test masters) connect to it.
//!
//! One task per connection; each keeps its own MBAP receiver, so a bad frame on one connection
//! costs that frame only: the connection stays open and the next frame is answered. Frames for
//! other unit ids get no answer (a converter forwarding the whole SysBus must not put our
//! answer on the line for another device). Responses to the frames of one read are written
//! with one `write_all`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use watchpost_modbus::tcp::encode_with;
use watchpost_modbus::{Direction, TcpEvent, TcpReceiver};
use watchpost_runtime::logging::LogLimiter;

use crate::gateway::{FrameOutcome, Gateway};
use crate::metrics::Transport;

/// Settings of the server.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    pub max_connections: usize,
    pub frame_timeout: Duration,
    /// Close a connection silent for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
}

/// Runs [`serve`] on a thread of its own with a single-threaded runtime, and resolves when that
/// thread has finished. Each request is a few microseconds of work; on the worker's shared
/// multi-threaded runtime most of a request's cost was handing the connection task between
/// threads, and bus or persistence work could delay an answer. A dedicated thread makes the
/// answer path short and isolates it from the rest of the worker.
pub async fn serve_dedicated(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: TcpSettings,
    shutdown: CancellationToken,
) {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let std_listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot move the Modbus TCP listener to its thread");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("modbus-tcp".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(async move {
                    match TcpListener::from_std(std_listener) {
                        Ok(listener) => serve(listener, gateway, settings, shutdown).await,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot adopt the Modbus TCP listener")
                        }
                    }
                }),
                Err(e) => tracing::error!(error = %e, "cannot build the Modbus TCP runtime"),
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the Modbus TCP thread");
        return;
    }
    let _ = done_rx.await;
}

/// Accepts connections until `shutdown`, then waits (briefly) for the connections to end.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: TcpSettings,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let limiter = Arc::new(LogLimiter::new(5, Duration::from_secs(60)));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if limiter.check("accept").is_some() {
                    tracing::warn!(error = %e, "accepting a Modbus TCP connection failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            gateway.metrics.tcp_refused.inc();
            if limiter.check("refused").is_some() {
                tracing::warn!(%peer, max = settings.max_connections, "Modbus TCP connection refused: too many open");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        let limiter = limiter.clone();
        conns.spawn(async move {
            gateway.metrics.tcp_connections.add(1.0);
            tracing::debug!(%peer, "Modbus TCP connection");
            connection(stream, peer, &gateway, settings, &shutdown, &limiter).await;
            gateway.metrics.tcp_connections.add(-1.0);
            drop(permit);
        });
    }
    // In-flight requests are answered within microseconds; give the tasks a moment to finish.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    gateway: &Gateway,
    settings: TcpSettings,
    shutdown: &CancellationToken,
    limiter: &LogLimiter,
) {
    let mut rx = TcpReceiver::new(Direction::Requests, settings.frame_timeout);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(512);
    let mut pdu = Vec::with_capacity(256);
    let counters = gateway.metrics.transport(Transport::Tcp);
    let mut last_rx = Instant::now();
    // Created once: a fresh `cancelled()` future per request would register and deregister a
    // waiter with the token every time.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let frame_deadline = rx.idle_deadline();
        let idle_deadline = settings.idle_timeout.map(|t| last_rx + t);
        let wake = match (frame_deadline, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let n = tokio::select! {
            _ = &mut cancelled => return,
            r = stream.read(&mut buf) => match r {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "Modbus TCP connection ended");
                    return;
                }
            },
            _ = sleep_until(wake), if wake.is_some() => {
                let now = Instant::now();
                if idle_deadline.is_some_and(|d| now >= d) {
                    tracing::info!(%peer, "closing idle Modbus TCP connection");
                    return;
                }
                rx.handle_timeout(now);
                0
            }
        };
        if n > 0 {
            last_rx = Instant::now();
            rx.push(&buf[..n], last_rx);
        }
        out.clear();
        while let Some(ev) = rx.poll_event() {
            match ev {
                TcpEvent::Frame(adu) => {
                    pdu.clear();
                    if gateway.handle(Transport::Tcp, adu.unit, &adu.pdu, &mut pdu)
                        == FrameOutcome::Answered
                    {
                        encode_with(adu.transaction, adu.unit, &mut out, |o| {
                            o.extend_from_slice(&pdu)
                        });
                    }
                }
                TcpEvent::Dropped { reason, bytes } => {
                    counters.dropped(reason, bytes);
                    if limiter.check("tcp-drop").is_some() {
                        tracing::debug!(%peer, reason = reason.as_str(), bytes, "Modbus TCP bytes dropped");
                    }
                }
            }
        }
        if !out.is_empty()
            && let Err(e) = stream.write_all(&out).await
        {
            tracing::debug!(%peer, error = %e, "Modbus TCP write failed");
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
