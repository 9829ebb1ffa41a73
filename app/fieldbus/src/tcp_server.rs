//! The Modbus TCP server: RS485-to-Ethernet converters (and test masters) connect to it.
//!
//! One task per connection; each keeps its own MBAP receiver, so a bad frame on one connection
//! costs that frame only: the connection stays open and the next frame is answered. Frames for
//! other unit ids get no answer (a converter forwarding the whole SysBus must not put our
//! answer on the line for another device). Responses to the frames of one read are written
//! with one `write_all`.
//!
//! Half-open connections: an RS485-to-Ethernet converter that reboots or loses its link never
//! closes its connection, and it stays established on our side for good. Three things clear
//! them: TCP keepalive (and a user timeout for unacknowledged data) on every connection, an
//! idle timeout, and, at `max_connections`, the connection silent longest gives way to the
//! new one (a converter reconnecting is the usual case) if it has been silent for
//! `replace_after`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use watchpost_modbus::tcp::encode_with;
use watchpost_modbus::{Direction, TcpEvent, TcpReceiver};
use watchpost_runtime::WorkerCtx;
use watchpost_runtime::logging::LogLimiter;

use crate::error::FieldbusError;
use crate::gateway::{FrameOutcome, Gateway};
use crate::metrics::Transport;

/// Settings of the server.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    pub max_connections: usize,
    pub frame_timeout: Duration,
    /// Close a connection without a request for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive: the first probe after this long without traffic (`None`: off).
    pub keepalive: Option<Duration>,
    /// At `max_connections`, the connection silent longest is closed for a new one if it has
    /// been silent at least this long; otherwise the new one is refused.
    pub replace_after: Duration,
}

/// Unanswered keepalive probes after which the kernel ends a connection.
const KEEPALIVE_PROBES: u32 = 3;

/// Keepalive probes are sent this often after the first (or at the keepalive time, if shorter).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Turns on TCP keepalive on `stream`, and a user timeout of the same length for data the peer
/// does not acknowledge (keepalive probes are not sent while data is unacknowledged).
fn set_keepalive(stream: &TcpStream, idle: Duration) -> std::io::Result<()> {
    let interval = KEEPALIVE_INTERVAL.min(idle);
    let sock = socket2::SockRef::from(stream);
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(interval)
            .with_retries(KEEPALIVE_PROBES),
    )?;
    sock.set_tcp_user_timeout(Some(idle + interval * KEEPALIVE_PROBES))
}

/// The connection to close for a new one when the server is full: the one silent longest, if
/// it has been silent for at least `replace_after`. `connections` are (id, last request) pairs.
fn pick_replaced(
    connections: impl IntoIterator<Item = (u64, Instant)>,
    now: Instant,
    replace_after: Duration,
) -> Option<u64> {
    connections
        .into_iter()
        .min_by_key(|(_, last)| *last)
        .filter(|(_, last)| now.saturating_duration_since(*last) >= replace_after)
        .map(|(id, _)| id)
}

/// An open connection as the accept loop tracks it.
struct Open {
    id: u64,
    /// Milliseconds from the server's epoch to the connection's last request.
    last_request_ms: Arc<AtomicU64>,
    /// Cancelled to close the connection (a child of the shutdown token).
    close: CancellationToken,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The peer closed it, or it failed.
    Peer,
    /// TCP keepalive or the user timeout gave up on the peer.
    TimedOut,
    /// No request within the idle timeout.
    Idle,
    /// Closed on purpose: shutdown, or replaced by a new connection.
    Closed,
}

/// The subject under which an address that cannot be bound is reported as a fault.
pub fn fault_subject(addr: SocketAddr) -> String {
    format!("neasmart modbus tcp {addr}")
}

/// Binds `addr` for the Modbus TCP server, mapping the error to the worker's.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, FieldbusError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| FieldbusError::BindTcp { addr, source })
}

const REBIND_FIRST: Duration = Duration::from_secs(1);
const REBIND_MAX: Duration = Duration::from_secs(30);

/// For an address that could not be bound at start (`first_error`; another process holds the
/// port): reported as a fault of the worker, bound again with backoff (1 s doubling to 30 s)
/// until it works, then served like [`serve_dedicated`] until shutdown.
pub async fn bind_later(
    addr: SocketAddr,
    first_error: FieldbusError,
    gateway: Arc<Gateway>,
    settings: TcpSettings,
    ctx: Arc<WorkerCtx>,
) {
    let subject = fault_subject(addr);
    let shutdown = ctx.shutdown().clone();
    let limiter = LogLimiter::new(3, Duration::from_secs(300));
    let mut error = first_error;
    let mut backoff = REBIND_FIRST;
    let listener = loop {
        ctx.set_fault(&subject, error.to_string());
        if limiter.check("bind").is_some() {
            tracing::warn!(error = %error, retry_ms = backoff.as_millis() as u64, "the Modbus TCP server cannot listen; the rest of the worker keeps serving, retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(REBIND_MAX);
        match bind(addr).await {
            Ok(l) => break l,
            Err(e) => error = e,
        }
    };
    ctx.clear_fault(&subject);
    tracing::info!(%addr, "Neasmart Modbus TCP server listening (bound on retry)");
    serve_dedicated(listener, gateway, settings, shutdown).await;
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
    let limiter = Arc::new(LogLimiter::new(5, Duration::from_secs(60)));
    let epoch = Instant::now();
    let mut open: Vec<Open> = Vec::with_capacity(settings.max_connections);
    let mut next_id = 0u64;
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(r) = conns.join_next(), if !conns.is_empty() => {
                if let Ok(id) = r {
                    open.retain(|o| o.id != id);
                }
                continue;
            }
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
        if open.len() >= settings.max_connections {
            let now = Instant::now();
            let last = |o: &Open| epoch + Duration::from_millis(o.last_request_ms.load(Relaxed));
            let victim = pick_replaced(
                open.iter().map(|o| (o.id, last(o))),
                now,
                settings.replace_after,
            );
            let Some(i) = victim.and_then(|id| open.iter().position(|o| o.id == id)) else {
                gateway.metrics.tcp_refused.inc();
                if limiter.check("refused").is_some() {
                    tracing::warn!(%peer, max = settings.max_connections, "Modbus TCP connection refused: too many open, none silent long enough to replace");
                }
                drop(stream);
                continue;
            };
            // Its task ends at once; it no longer counts.
            let old = open.swap_remove(i);
            old.close.cancel();
            gateway.metrics.tcp_replaced.inc();
            if limiter.check("replaced").is_some() {
                tracing::info!(%peer, silent_s = now.saturating_duration_since(last(&old)).as_secs(), "Modbus TCP connection silent longest closed for a new one (a converter that reconnected leaves its old connection behind)");
            }
        }
        let _ = stream.set_nodelay(true);
        if let Some(idle) = settings.keepalive
            && let Err(e) = set_keepalive(&stream, idle)
            && limiter.check("keepalive").is_some()
        {
            tracing::warn!(%peer, error = %e, "cannot turn on TCP keepalive");
        }
        let id = next_id;
        next_id += 1;
        let last_request_ms = Arc::new(AtomicU64::new(epoch.elapsed().as_millis() as u64));
        let close = shutdown.child_token();
        open.push(Open {
            id,
            last_request_ms: last_request_ms.clone(),
            close: close.clone(),
        });
        let gateway = gateway.clone();
        let limiter = limiter.clone();
        conns.spawn(async move {
            let metrics = &gateway.metrics;
            metrics.tcp_connections.add(1.0);
            tracing::debug!(%peer, "Modbus TCP connection");
            let activity = Activity {
                epoch,
                last_request_ms: &last_request_ms,
            };
            match connection(stream, peer, &gateway, settings, &close, activity, &limiter).await {
                Ended::TimedOut => metrics.tcp_timed_out.inc(),
                Ended::Idle => metrics.tcp_idle_closed.inc(),
                Ended::Peer | Ended::Closed => {}
            }
            metrics.tcp_connections.add(-1.0);
            id
        });
    }
    // In-flight requests are answered within microseconds; give the tasks a moment to finish.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Where a connection records the time of its last request for the accept loop.
struct Activity<'a> {
    epoch: Instant,
    last_request_ms: &'a AtomicU64,
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    gateway: &Gateway,
    settings: TcpSettings,
    close: &CancellationToken,
    activity: Activity<'_>,
    limiter: &LogLimiter,
) -> Ended {
    let mut rx = TcpReceiver::new(Direction::Requests, settings.frame_timeout);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(512);
    let mut pdu = Vec::with_capacity(256);
    let counters = gateway.metrics.transport(Transport::Tcp);
    let mut last_rx = Instant::now();
    // Created once: a fresh `cancelled()` future per request would register and deregister a
    // waiter with the token every time.
    let cancelled = close.cancelled();
    tokio::pin!(cancelled);
    loop {
        let frame_deadline = rx.idle_deadline();
        let idle_deadline = settings.idle_timeout.map(|t| last_rx + t);
        let wake = match (frame_deadline, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let n = tokio::select! {
            _ = &mut cancelled => return Ended::Closed,
            r = stream.read(&mut buf) => match r {
                Ok(0) => return Ended::Peer,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    tracing::info!(%peer, "Modbus TCP peer gone (keepalive unanswered); connection closed");
                    return Ended::TimedOut;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "Modbus TCP connection ended");
                    return Ended::Peer;
                }
            },
            _ = sleep_until(wake), if wake.is_some() => {
                let now = Instant::now();
                if idle_deadline.is_some_and(|d| now >= d) {
                    tracing::info!(%peer, idle_s = settings.idle_timeout.map_or(0, |t| t.as_secs()), "closing idle Modbus TCP connection");
                    return Ended::Idle;
                }
                rx.handle_timeout(now);
                0
            }
        };
        if n > 0 {
            last_rx = Instant::now();
            activity.last_request_ms.store(
                last_rx
                    .saturating_duration_since(activity.epoch)
                    .as_millis() as u64,
                Relaxed,
            );
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
            return if e.kind() == std::io::ErrorKind::TimedOut {
                Ended::TimedOut
            } else {
                Ended::Peer
            };
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_silent_longest_gives_way_once_silent_long_enough() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let open = [(1, t0 + s(30)), (2, t0 + s(10)), (3, t0 + s(40))];
        // Connection 2 has been silent for 35 s at t0+45.
        assert_eq!(pick_replaced(open, t0 + s(45), s(5)), Some(2));
        // Every connection asked something within the last 5 s: refuse the new one.
        assert_eq!(pick_replaced(open, t0 + s(12), s(5)), None);
        assert_eq!(pick_replaced(open, t0 + s(12), Duration::ZERO), Some(2));
        assert_eq!(pick_replaced([], t0, Duration::ZERO), None);
    }
}
