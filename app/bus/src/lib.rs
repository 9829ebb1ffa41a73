//! The internal bus: every worker's MQTT client.
//!
//! Role: workers publish state (retained, JSON) and commands under the `watchpost/` prefix and
//! subscribe to what they need; topics are documented in `docs/bus.md`. The broker is the
//! embedded one (`broker` worker) unless the config names an external broker.
//!
//! Design: [`Bus`] wraps a `rumqttc` client whose event loop runs in a task owned by the bus.
//! The task reconnects with capped exponential backoff, re-subscribes every filter after each
//! connect (sessions are clean), and announces the worker with a retained
//! `<prefix>/system/<worker>/status` = `online`; the last will sets it to `offline`.
//! Incoming messages are routed to per-subscription bounded channels; a subscriber that does
//! not keep up loses messages (counted and logged, rate-limited) rather than stalling the
//! connection for everyone. [`Bus::request`] and [`Bus::serve`] do typed request/reply for
//! commands that need an answer (REST → worker), see [`rpc`].
//!
//! Shutdown: the event loop stops when the token passed to [`Bus::connect`] is cancelled,
//! after a clean MQTT disconnect (so the last will is not sent), having first published
//! `offline` itself.

#![forbid(unsafe_code)]

pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use watchpost_config::Config;
use watchpost_runtime::logging::LogLimiter;

pub use topic::topic_matches;
pub use watchpost_contract::rpc::{self, ErrorCode, Incoming, Outcome, ReplyError, Request};

/// Capacity of each subscription's channel.
pub const SUBSCRIPTION_CAPACITY: usize = 4096;

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

impl Message {
    /// Decodes the payload as JSON.
    pub fn json<T: for<'de> serde::Deserialize<'de>>(&self) -> Result<T, BusError> {
        serde_json::from_slice(&self.payload).map_err(|source| BusError::Decode {
            topic: self.topic.clone(),
            source,
        })
    }
}

/// Whether a publish is retained by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    Yes,
    No,
}

/// Bus errors. Each carries the topic it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("publishing to {topic}: the bus client is closed")]
    PublishClosed { topic: String },
    #[error("subscribing to {filter}: the bus client is closed")]
    SubscribeClosed { filter: String },
    #[error("encoding the payload for {topic}: {source}")]
    Encode {
        topic: String,
        source: serde_json::Error,
    },
    #[error("decoding the payload on {topic}: {source}")]
    Decode {
        topic: String,
        source: serde_json::Error,
    },
    #[error("encoding the request to {topic}: {source}")]
    EncodeRequest {
        topic: String,
        source: rpc::EncodeError,
    },
}

/// Why [`Bus::request`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError<E: ErrorCode> {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("no reply on {topic} within {timeout_ms} ms")]
    Timeout { topic: String, timeout_ms: u64 },
    #[error("{topic} refused the request: {error}")]
    Refused { topic: String, error: ReplyError<E> },
    #[error("the reply to {topic} is not the expected envelope: {source}")]
    BadReply {
        topic: String,
        source: serde_json::Error,
    },
}

/// The requests arriving on one [`Bus::serve`] subscription.
#[derive(Debug)]
pub struct Requests<C> {
    rx: mpsc::Receiver<Message>,
    _command: std::marker::PhantomData<fn() -> C>,
}

impl<C: Request> Requests<C> {
    /// The next request; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Incoming<C>> {
        self.rx
            .recv()
            .await
            .map(|m| Incoming::parse(&m.topic, &m.payload))
    }
}

struct Subscription {
    filter: String,
    tx: mpsc::Sender<Message>,
}

struct Inner {
    client: AsyncClient,
    prefix: String,
    client_id: String,
    subs: Mutex<Vec<Subscription>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Bytes>>>,
    reply_subscribed: AtomicBool,
    next_request: AtomicU64,
    connected: AtomicBool,
    dropped: AtomicU64,
}

/// A worker's connection to the bus. Clones share the connection.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("client_id", &self.inner.client_id)
            .finish()
    }
}

impl Bus {
    /// Connects worker `name` to the configured broker. Returns at once; the connection is
    /// made (and remade) in the background.
    pub fn connect(config: &Config, name: &str, shutdown: CancellationToken) -> Bus {
        let endpoint = config.bus_endpoint();
        let client_id = format!("watchpost-{name}-{}", std::process::id());
        let prefix = config.bus.prefix.clone();
        let status_topic = topic::build(&prefix, &["system", name, "status"]);
        let mut opts = MqttOptions::new(client_id.clone(), endpoint.host(), endpoint.port());
        opts.set_keep_alive(Duration::from_secs(config.bus.keepalive_s.max(5)));
        opts.set_clean_session(true);
        opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
        opts.set_last_will(LastWill::new(
            &status_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &config.bus.username {
            let pw = config
                .bus
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            opts.set_credentials(user.clone(), pw);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        // Bus messages are small and latency matters (an alarm crosses two hops): without
        // TCP_NODELAY, Nagle's algorithm meets the peer's delayed ACK and holds a message for
        // up to 40 ms. The broker worker sets the same on its side.
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let inner = Arc::new(Inner {
            client,
            prefix,
            client_id,
            subs: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            reply_subscribed: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let backoff = (
            Duration::from_millis(config.bus.reconnect_initial_ms.max(10)),
            Duration::from_millis(config.bus.reconnect_max_ms.max(100)),
        );
        tokio::spawn(run_event_loop(
            inner.clone(),
            eventloop,
            status_topic,
            backoff,
            shutdown,
        ));
        Bus { inner }
    }

    /// The topic prefix (`watchpost` by default).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// `<prefix>/<levels...>`.
    pub fn topic(&self, levels: &[&str]) -> String {
        topic::build(&self.inner.prefix, levels)
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Messages dropped because a subscriber's channel was full.
    pub fn dropped_messages(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Publishes raw bytes with QoS 1. Queued while disconnected (up to the client's capacity).
    pub async fn publish_bytes(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: Retain,
    ) -> Result<(), BusError> {
        self.inner
            .client
            .publish(
                topic,
                QoS::AtLeastOnce,
                retain == Retain::Yes,
                payload.into(),
            )
            .await
            .map_err(|_| BusError::PublishClosed {
                topic: topic.to_string(),
            })
    }

    /// Publishes `value` as JSON with QoS 1.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
        retain: Retain,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(value).map_err(|source| BusError::Encode {
            topic: topic.to_string(),
            source,
        })?;
        self.publish_bytes(topic, payload, retain).await
    }

    /// Subscribes to `filter` (QoS 1). The subscription is renewed after every reconnect.
    pub async fn subscribe(&self, filter: &str) -> Result<mpsc::Receiver<Message>, BusError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        self.inner
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Subscription {
                filter: filter.to_string(),
                tx,
            });
        self.inner
            .client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|_| BusError::SubscribeClosed {
                filter: filter.to_string(),
            })?;
        Ok(rx)
    }

    /// Sends the command `body` to `topic` and waits up to `timeout` for the worker's typed
    /// reply ([`rpc`] describes the wire format). The reply comes on a per-request topic under
    /// this client's reply filter, subscribed once and renewed after every reconnect.
    pub async fn request<C: Request>(
        &self,
        topic: &str,
        body: &C,
        timeout: Duration,
    ) -> Result<C::Reply, RequestError<C::Code>> {
        let reply_filter = self.reply_filter();
        if !self.inner.reply_subscribed.swap(true, Ordering::SeqCst)
            && self
                .inner
                .client
                .subscribe(&reply_filter, QoS::AtLeastOnce)
                .await
                .is_err()
        {
            self.inner.reply_subscribed.store(false, Ordering::SeqCst);
            return Err(BusError::SubscribeClosed {
                filter: reply_filter,
            }
            .into());
        }
        let id = self
            .inner
            .next_request
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let reply_to = topic::build(&self.inner.prefix, &["reply", &self.inner.client_id, &id]);
        let payload = rpc::encode_request(body, &id, &reply_to).map_err(|source| {
            BusError::EncodeRequest {
                topic: topic.to_string(),
                source,
            }
        })?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reply_to.clone(), tx);
        // However this call ends (answer, timeout, error, or the future dropped by a caller
        // that gave up), the pending entry goes with it.
        let _pending = Pending {
            inner: &self.inner,
            reply_to: &reply_to,
        };
        let result = match self.publish_bytes(topic, payload, Retain::No).await {
            Ok(()) => tokio::time::timeout(timeout, rx).await,
            Err(e) => return Err(e.into()),
        };
        match result {
            Ok(Ok(bytes)) => match rpc::decode_reply::<C::Reply, C::Code>(&bytes) {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(error)) => Err(RequestError::Refused {
                    topic: topic.to_string(),
                    error,
                }),
                Err(source) => Err(RequestError::BadReply {
                    topic: topic.to_string(),
                    source,
                }),
            },
            _ => Err(RequestError::Timeout {
                topic: topic.to_string(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// `<prefix>/reply/<client id>/#`: where this client's replies arrive.
    fn reply_filter(&self) -> String {
        reply_filter(&self.inner.prefix, &self.inner.client_id)
    }

    /// Subscribes to the requests of type `C` on `filter` (wildcards allowed). Answer each with
    /// [`Bus::respond`].
    pub async fn serve<C: Request>(&self, filter: &str) -> Result<Requests<C>, BusError> {
        Ok(Requests {
            rx: self.subscribe(filter).await?,
            _command: std::marker::PhantomData,
        })
    }

    /// Answers `request` with `outcome` (nothing is sent for a request without `reply_to`).
    pub async fn respond<C: Request>(
        &self,
        request: &Incoming<C>,
        outcome: &Outcome<C>,
    ) -> Result<(), BusError> {
        match request.reply_payload(outcome) {
            Some((to, payload)) => self.publish_bytes(&to, payload, Retain::No).await,
            None => Ok(()),
        }
    }

    /// A subscription filter under the prefix: levels that are exactly `+` or `#` stay
    /// wildcards, every other level is sanitised as in [`Bus::topic`].
    pub fn filter(&self, levels: &[&str]) -> String {
        topic::filter(&self.inner.prefix, levels)
    }
}

/// Removes a request's pending entry when the request ends.
struct Pending<'a> {
    inner: &'a Inner,
    reply_to: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.reply_to);
    }
}

impl Bus {
    /// Requests waiting for their reply (for tests and metrics).
    pub fn pending_requests(&self) -> usize {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

fn reply_filter(prefix: &str, client_id: &str) -> String {
    topic::filter(prefix, &["reply", client_id, "#"])
}

fn route(inner: &Inner, msg: Message, limiter: &LogLimiter) {
    if let Some(tx) = inner
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&msg.topic)
    {
        let _ = tx.send(msg.payload);
        return;
    }
    let mut subs = inner.subs.lock().unwrap_or_else(|p| p.into_inner());
    subs.retain(|s| !s.tx.is_closed());
    for s in subs.iter() {
        if topic_matches(&s.filter, &msg.topic)
            && let Err(mpsc::error::TrySendError::Full(_)) = s.tx.try_send(msg.clone())
        {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = limiter.check(&s.filter) {
                tracing::warn!(filter = %s.filter, suppressed, "bus subscriber too slow; message dropped");
            }
        }
    }
}

async fn run_event_loop(
    inner: Arc<Inner>,
    mut eventloop: rumqttc::EventLoop,
    status_topic: String,
    (initial, max): (Duration, Duration),
    shutdown: CancellationToken,
) {
    let limiter = LogLimiter::new(3, Duration::from_secs(60));
    let mut delay = initial;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay = initial;
                inner.connected.store(true, Ordering::Relaxed);
                tracing::info!(client = %inner.client_id, "bus connected");
                let filters: Vec<String> = {
                    let subs = inner.subs.lock().unwrap_or_else(|p| p.into_inner());
                    subs.iter().map(|s| s.filter.clone()).collect()
                };
                let client = inner.client.clone();
                let reply = inner
                    .reply_subscribed
                    .load(Ordering::SeqCst)
                    .then(|| reply_filter(&inner.prefix, &inner.client_id));
                let status = status_topic.clone();
                // Requests go through the client's channel, which this loop drains: send them
                // from a task so a full channel cannot deadlock the loop.
                tokio::spawn(async move {
                    for f in filters.iter().chain(reply.iter()) {
                        let _ = client.subscribe(f, QoS::AtLeastOnce).await;
                    }
                    let _ = client
                        .publish(status, QoS::AtLeastOnce, true, "online")
                        .await;
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let msg = Message {
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    retain: p.retain,
                };
                route(&inner, msg, &limiter);
            }
            Ok(_) => {}
            Err(e) => {
                inner.connected.store(false, Ordering::Relaxed);
                if let Some(suppressed) = limiter.check("connect") {
                    tracing::warn!(client = %inner.client_id, error = %e, suppressed, retry_ms = delay.as_millis() as u64, "bus connection lost");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(max);
            }
        }
    }
    // Say goodbye explicitly, then disconnect cleanly (a clean disconnect suppresses the will).
    if inner.connected.load(Ordering::Relaxed) {
        let _ = inner
            .client
            .try_publish(&status_topic, QoS::AtLeastOnce, true, "offline");
        let _ = inner.client.try_disconnect();
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = eventloop.poll() => {
                    if ev.is_err() { break; }
                }
            }
        }
    }
    inner.connected.store(false, Ordering::Relaxed);
}
