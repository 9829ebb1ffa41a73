//! One upstream: its connection, its outbox and its durable offline queue.
//!
//! **Outbox.** Messages for the upstream (from `out` mappings and the feed) go one of two ways:
//! - *direct*: while the broker is connected and the durable queue is empty, a QoS 1 message
//!   waits in memory (`staged`) until the in-flight window has room, and is forgotten when the
//!   broker's PUBACK arrives;
//! - *spooled*: while the broker is unreachable, or while the durable queue still holds
//!   anything, a QoS 1 message is appended to the queue in the bridge's store (a durable
//!   commit) and sent from there, oldest first, once connected; a PUBACK removes it (removals
//!   are committed together every [`ACK_COMMIT_INTERVAL`]).
//!
//! When the connection drops, every direct message not yet acknowledged is appended to the
//! queue in the order it was first handed over, followed by the staged ones, so order holds:
//! the queue only ever receives messages newer than the ones in flight (a switch from direct
//! to spooled while connected first waits for the direct ones in flight to be acknowledged).
//! QoS 0 messages are never queued: while connected they wait in line with the direct ones
//! (dropped beyond [`STAGED_MAX`] waiting, counted as `queue_full`), while not connected they
//! are dropped (counted as `offline`).
//!
//! **Delivery guarantees.** QoS 1 is at least once. Nothing queued is lost by a restart or a
//! `kill -9` of the worker (each enqueue is committed before the next message is taken). A
//! message is sent twice only when it was in flight at the moment the connection broke (the
//! broker may have taken it without its PUBACK reaching us), or when the worker died within
//! [`ACK_COMMIT_INTERVAL`] of its PUBACK. A message queued while the broker was away is sent
//! once after the reconnect, in order.
//!
//! **Reconnect.** Exponential back-off from `reconnect_initial_ms` to `reconnect_max_ms` with
//! ±25 % jitter (so a fleet does not reconnect in step), reset by a successful connect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use watchpost_bus::{Bus, Retain};
use watchpost_config::upstream::{MqttVersion, Qos, QueueOverflow, UpstreamConfig};
use watchpost_runtime::logging::LogLimiter;
use watchpost_store::{Enqueued, Queue, QueueItem};

use super::client::{ConnError, LinkEvent};
use super::feed::Feed;
use super::mapping::{EchoFilter, Mappings};
use super::metrics::LinkMetrics;
use super::{Conn, now_ms};

/// How often acknowledged queue entries are removed from the store (one commit each time).
pub const ACK_COMMIT_INTERVAL: Duration = Duration::from_millis(50);
/// Direct messages waiting for the in-flight window, at most; beyond, new messages are spooled.
pub const STAGED_MAX: usize = 4096;
/// How long a forwarded message's echo is expected back on a `both` mapping.
const ECHO_TTL: Duration = Duration::from_secs(30);

/// A message for the upstream broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub qos: Qos,
}

impl Out {
    /// The queue record: retain flag (1 byte), topic length (u16 BE), topic, payload.
    pub fn encode(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
        let mut v = Vec::with_capacity(3 + topic.len() + self.payload.len());
        v.push(u8::from(self.retain));
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&topic[..usize::from(len)]);
        v.extend_from_slice(&self.payload);
        v
    }

    /// A queue record back (always QoS 1: only QoS 1 messages are queued).
    pub fn decode(bytes: &[u8]) -> Option<Out> {
        let (&retain, rest) = bytes.split_first()?;
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let topic = rest.get(2..2 + len)?;
        Some(Out {
            topic: std::str::from_utf8(topic).ok()?.to_string(),
            payload: Bytes::copy_from_slice(rest.get(2 + len..)?),
            retain: retain != 0,
            qos: Qos::AtLeastOnce,
        })
    }
}

/// A message from the appliance's bus for this upstream.
#[derive(Debug)]
pub enum Local {
    /// Matched a mapping's filter.
    Mapped(watchpost_bus::Message),
    /// A sensor's retained state (`<prefix>/sensors/<id>/state`) for the feed.
    SensorState {
        id: String,
        message: watchpost_bus::Message,
    },
}

/// What a publish handed to the client is.
#[derive(Debug, Clone, Copy)]
enum Tracked {
    AtMostOnce,
    Direct(u64),
    Durable(u64),
}

/// Capped exponential back-off with jitter.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max,
            next: initial,
            rng: seed | 1,
        }
    }

    /// The next wait: the current step ±25 %, then the step doubles (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: jitter needs no cryptographic randomness.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.75 + 0.5 * unit)
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Connection state.
enum State {
    /// Waiting until the instant to try again.
    Waiting(Instant),
    /// Connecting or connected.
    Active {
        conn: Conn,
        events: mpsc::Receiver<Result<LinkEvent, ConnError>>,
        /// CONNACK received.
        up: bool,
        deadline: Instant,
    },
}

/// One upstream's task.
pub struct Link {
    cfg: UpstreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    bus: Bus,
    queue: Queue,
    mappings: Mappings,
    feed: Option<Feed>,
    metrics: LinkMetrics,
    logs: LogLimiter,
    backoff: Backoff,
    state: State,
    ever_connected: bool,
    /// QoS 1 messages in flight at most on this connection.
    window: usize,
    /// Durable queue length (the store's count, mirrored).
    queue_len: u64,
    /// The newest queue sequence written.
    last_seq: Option<u64>,
    /// Direct messages waiting for the window.
    staged: VecDeque<Out>,
    /// Messages handed to the client, waiting for their `Sent` event.
    submitted: VecDeque<Tracked>,
    /// QoS 1 messages written, waiting for their PUBACK, by packet id.
    inflight: HashMap<u16, Tracked>,
    /// Direct QoS 1 messages handed over and not yet acknowledged, by hand-over number.
    direct: BTreeMap<u64, Out>,
    next_direct: u64,
    /// Waiting for the direct messages in flight before moving `staged` into the queue.
    to_spool: bool,
    /// Queue entries sent on this connection, oldest first, with whether they were acked.
    durable_inflight: VecDeque<(u64, bool)>,
    /// Queue entries read ahead, not yet sent.
    read_buf: VecDeque<QueueItem>,
    /// The next queue sequence to send.
    next_read: u64,
    /// Acknowledged through this sequence, and how many of those are not yet removed.
    ack_upto: Option<u64>,
    uncommitted: u64,
    echo_local: EchoFilter,
    echo_remote: EchoFilter,
    /// The newest retained QoS 0 message per upstream topic, sent again after every
    /// (re)connect: QoS 0 is never queued, and the bus does not send its retained states
    /// again, so without this a state published while the link was down (or before its
    /// first CONNACK) would stay missing upstream until it changed.
    retained: HashMap<String, Out>,
}

/// At most this many retained QoS 0 topics are remembered for resending.
const RETAINED_MAX: usize = 10_000;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("upstream", &self.cfg.name)
            .field("queue_len", &self.queue_len)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(super) fn new(
        cfg: UpstreamConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
        bus: Bus,
        queue: Queue,
        queue_len: u64,
        last_seq: Option<u64>,
        metrics: LinkMetrics,
    ) -> Self {
        let seed = now_ms().unsigned_abs() ^ (u64::from(std::process::id()) << 32);
        let feed = cfg
            .feed
            .as_ref()
            .map(|f| Feed::new(f.topic.as_str(), &cfg.client_id()));
        let backoff = Backoff::new(
            Duration::from_millis(cfg.reconnect_initial_ms),
            Duration::from_millis(cfg.reconnect_max_ms),
            seed,
        );
        metrics.queue_length.set(queue_len as f64);
        Self {
            mappings: Mappings::new(cfg.mappings.clone()),
            window: usize::from(cfg.inflight),
            tls,
            bus,
            queue,
            feed,
            metrics,
            logs: LogLimiter::new(3, Duration::from_secs(60)),
            backoff,
            state: State::Waiting(Instant::now()),
            ever_connected: false,
            queue_len,
            last_seq,
            staged: VecDeque::new(),
            submitted: VecDeque::new(),
            inflight: HashMap::new(),
            direct: BTreeMap::new(),
            next_direct: 0,
            to_spool: false,
            durable_inflight: VecDeque::new(),
            read_buf: VecDeque::new(),
            next_read: 0,
            ack_upto: None,
            uncommitted: 0,
            echo_local: EchoFilter::new(ECHO_TTL),
            echo_remote: EchoFilter::new(ECHO_TTL),
            retained: HashMap::new(),
            cfg,
        }
    }

    fn name(&self) -> &str {
        self.cfg.name.as_str()
    }

    fn connected(&self) -> bool {
        matches!(self.state, State::Active { up: true, .. })
    }

    /// Runs until shutdown (or until the bus is gone).
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Local>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(ACK_COMMIT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let full_every = self
            .cfg
            .feed
            .as_ref()
            .map(|f| f.full_interval_s)
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let mut full_at = full_every.map(|d| Instant::now() + d);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let wake = match &self.state {
                State::Waiting(at) => *at,
                State::Active {
                    up: false,
                    deadline,
                    ..
                } => *deadline,
                State::Active { .. } => far,
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = next_event(&mut self.state) => self.on_event(ev).await,
                m = inbox.recv() => match m {
                    Some(m) => self.on_local(m).await,
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => match self.state {
                    State::Waiting(_) => self.start_connect(),
                    State::Active { .. } => self.lost("no CONNACK within connect_timeout_ms").await,
                },
                _ = tokio::time::sleep_until(full_at.unwrap_or(far)), if full_at.is_some() => {
                    full_at = full_every.map(|d| Instant::now() + d);
                    self.publish_full().await;
                }
                _ = tick.tick() => {
                    self.commit_acks().await;
                    self.metrics.pending.set((self.staged.len() + self.direct.len()) as f64);
                }
            }
            self.pump().await;
        }
        self.stop().await;
    }

    fn start_connect(&mut self) {
        let (conn, events) = Conn::start(&self.cfg, self.tls.clone());
        let deadline = Instant::now() + Duration::from_millis(self.cfg.connect_timeout_ms);
        self.state = State::Active {
            conn,
            events,
            up: false,
            deadline,
        };
    }

    async fn on_event(&mut self, ev: Option<Result<LinkEvent, ConnError>>) {
        match ev {
            Some(Ok(LinkEvent::ConnAck { receive_max, .. })) => self.on_connack(receive_max).await,
            Some(Ok(LinkEvent::Sent { pkid })) => {
                let Some(t) = self.submitted.pop_front() else {
                    return;
                };
                match t {
                    Tracked::AtMostOnce => self.metrics.messages_out.inc(),
                    t => {
                        self.inflight.insert(pkid, t);
                    }
                }
            }
            Some(Ok(LinkEvent::Acked { pkid, refused })) => {
                let Some(t) = self.inflight.remove(&pkid) else {
                    return;
                };
                match &refused {
                    None => self.metrics.messages_out.inc(),
                    Some(reason) => {
                        self.metrics.dropped_refused.inc();
                        if let Some(suppressed) = self.logs.check("refused") {
                            tracing::warn!(
                                upstream = self.name(),
                                reason,
                                suppressed,
                                "upstream broker refused a message"
                            );
                        }
                    }
                }
                match t {
                    Tracked::Direct(id) => {
                        self.direct.remove(&id);
                    }
                    Tracked::Durable(seq) => self.durable_acked(seq),
                    Tracked::AtMostOnce => {}
                }
            }
            Some(Ok(LinkEvent::Message {
                topic,
                payload,
                retain,
            })) => self.on_remote(topic, payload, retain).await,
            Some(Err(e)) => self.lost(&e.to_string()).await,
            None => self.lost("connection task ended").await,
        }
    }

    async fn on_connack(&mut self, receive_max: Option<u16>) {
        let State::Active { conn, up, .. } = &mut self.state else {
            return;
        };
        *up = true;
        self.window = match receive_max {
            Some(r) => usize::from(self.cfg.inflight)
                .min(usize::from(r.saturating_sub(1)))
                .max(1),
            None => usize::from(self.cfg.inflight),
        };
        let no_local = conn.has_no_local();
        let filters: Vec<(String, Qos, bool)> = self
            .mappings
            .remote_filters()
            .into_iter()
            .map(|(f, q, both)| (f, q, both && no_local))
            .collect();
        if !conn.subscribe(&filters) {
            tracing::warn!(
                upstream = self.name(),
                "cannot subscribe upstream: client closed"
            );
        }
        self.backoff.reset();
        if self.ever_connected {
            self.metrics.reconnects.inc();
        }
        self.ever_connected = true;
        self.metrics.connected.set(1.0);
        tracing::info!(
            upstream = self.name(),
            broker = %self.cfg.broker,
            queued = self.queue_len,
            "upstream connected"
        );
        // Sending resumes at the oldest entry not yet acknowledged.
        self.next_read = self.ack_upto.map_or(0, |s| s + 1);
        // The retained states, as they are now.
        let states: Vec<Out> = self.retained.values().cloned().collect();
        for out in states {
            self.send(out).await;
        }
        self.publish_full().await;
    }

    /// The connection is gone: spool what was in memory, schedule the next attempt.
    async fn lost(&mut self, why: &str) {
        let was_up = self.connected();
        let delay = self.backoff.next_delay();
        self.state = State::Waiting(Instant::now() + delay);
        self.metrics.connected.set(0.0);
        if was_up {
            tracing::warn!(
                upstream = self.name(),
                error = why,
                retry_ms = delay.as_millis() as u64,
                "upstream connection lost"
            );
        } else {
            self.metrics.connect_errors.inc();
            if let Some(suppressed) = self.logs.check("connect") {
                tracing::warn!(
                    upstream = self.name(),
                    error = why,
                    retry_ms = delay.as_millis() as u64,
                    suppressed,
                    "cannot connect upstream"
                );
            }
        }
        self.spill_all().await;
        self.commit_acks().await;
    }

    /// Moves every direct message not yet acknowledged, then the staged ones, into the queue.
    async fn spill_all(&mut self) {
        for t in self.submitted.drain(..) {
            if matches!(t, Tracked::AtMostOnce) {
                self.metrics.dropped_offline.inc();
            }
        }
        self.inflight.clear();
        self.durable_inflight.clear();
        self.read_buf.clear();
        self.to_spool = false;
        let direct = std::mem::take(&mut self.direct);
        let staged = std::mem::take(&mut self.staged);
        for out in direct.into_values().chain(staged) {
            self.spool(&out).await;
        }
    }

    /// A message for upstream.
    async fn send(&mut self, out: Out) {
        if out.qos == Qos::AtMostOnce {
            if !self.connected() {
                self.metrics.dropped_offline.inc();
            } else if self.queue_len == 0 && !self.to_spool {
                // In line with the QoS 1 messages waiting for the window.
                if self.staged.len() >= STAGED_MAX {
                    self.metrics.dropped_full.inc();
                } else {
                    self.staged.push_back(out);
                }
            } else if self.client_room() == 0 || !self.hand_over(&out, Tracked::AtMostOnce) {
                self.metrics.dropped_full.inc();
            }
            return;
        }
        if self.to_spool {
            self.staged.push_back(out);
        } else if self.queue_len > 0 || !self.connected() {
            self.enqueue(&out).await;
        } else {
            self.staged.push_back(out);
            if self.staged.len() > STAGED_MAX {
                self.to_spool = true;
            }
        }
    }

    /// Queues a QoS 1 message; a QoS 0 one is dropped (never queued).
    async fn spool(&mut self, out: &Out) {
        if out.qos == Qos::AtLeastOnce {
            self.enqueue(out).await;
        } else {
            self.metrics.dropped_offline.inc();
        }
    }

    /// Free places in the client's request channel (kept below its capacity so that
    /// `try_publish` never fails for want of room).
    fn client_room(&self) -> usize {
        match &self.state {
            State::Active { conn, .. } => conn.capacity.saturating_sub(8 + self.submitted.len()),
            State::Waiting(_) => 0,
        }
    }

    fn window_room(&self) -> usize {
        let qos1_submitted = self
            .submitted
            .iter()
            .filter(|t| !matches!(t, Tracked::AtMostOnce))
            .count();
        self.window
            .saturating_sub(self.inflight.len() + qos1_submitted)
            .min(self.client_room())
    }

    /// Hands messages to the client while the window has room.
    async fn pump(&mut self) {
        if !self.connected() {
            return;
        }
        if self.to_spool && self.direct.is_empty() {
            self.to_spool = false;
            let staged = std::mem::take(&mut self.staged);
            for out in staged {
                self.spool(&out).await;
            }
        }
        if self.to_spool {
            return;
        }
        if self.queue_len > 0 {
            while self.window_room() > 0 {
                if self.read_buf.is_empty() && self.last_seq.is_some_and(|l| l >= self.next_read) {
                    self.refill().await;
                }
                let Some(item) = self.read_buf.pop_front() else {
                    break;
                };
                self.next_read = item.seq + 1;
                let Some(out) = Out::decode(&item.payload) else {
                    // Unreadable: count it and let the acknowledgement remove it.
                    self.metrics.dropped_undecodable.inc();
                    self.durable_inflight.push_back((item.seq, false));
                    self.durable_acked(item.seq);
                    continue;
                };
                if !self.hand_over(&out, Tracked::Durable(item.seq)) {
                    self.next_read = item.seq;
                    self.read_buf.push_front(item);
                    break;
                }
                self.durable_inflight.push_back((item.seq, false));
            }
            return;
        }
        while let Some(front) = self.staged.front() {
            let qos0 = front.qos == Qos::AtMostOnce;
            let room = if qos0 {
                self.client_room()
            } else {
                self.window_room()
            };
            if room == 0 {
                break;
            }
            let Some(out) = self.staged.pop_front() else {
                break;
            };
            let id = self.next_direct;
            let t = if qos0 {
                Tracked::AtMostOnce
            } else {
                Tracked::Direct(id)
            };
            if !self.hand_over(&out, t) {
                self.staged.push_front(out);
                break;
            }
            if !qos0 {
                self.next_direct += 1;
                self.direct.insert(id, out);
            }
        }
    }

    fn hand_over(&mut self, out: &Out, t: Tracked) -> bool {
        let State::Active { conn, up: true, .. } = &self.state else {
            return false;
        };
        if !conn.publish(&out.topic, out.qos, out.retain, out.payload.clone()) {
            return false;
        }
        self.submitted.push_back(t);
        true
    }

    /// Reads the next queue entries (from `next_read` on) into `read_buf`.
    async fn refill(&mut self) {
        let mut n = self.durable_inflight.len() + self.uncommitted as usize + 256;
        loop {
            let q = self.queue.clone();
            let items = match tokio::task::spawn_blocking(move || q.peek(n)).await {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    if let Some(suppressed) = self.logs.check("read") {
                        tracing::error!(upstream = self.name(), error = %e, suppressed, "cannot read the upstream queue");
                    }
                    return;
                }
                Err(_) => return,
            };
            let full = items.len() == n;
            let next = self.next_read;
            self.read_buf = items.into_iter().filter(|i| i.seq >= next).collect();
            if !self.read_buf.is_empty() || !full {
                return;
            }
            n *= 2;
        }
    }

    fn durable_acked(&mut self, seq: u64) {
        if let Some(e) = self.durable_inflight.iter_mut().find(|(s, _)| *s == seq) {
            e.1 = true;
        }
        while let Some(&(s, true)) = self.durable_inflight.front() {
            self.durable_inflight.pop_front();
            self.ack_upto = Some(s);
            self.uncommitted += 1;
        }
    }

    /// Removes the acknowledged entries from the store (one commit).
    async fn commit_acks(&mut self) {
        let Some(upto) = self.ack_upto else {
            return;
        };
        if self.uncommitted == 0 {
            return;
        }
        let q = self.queue.clone();
        match tokio::task::spawn_blocking(move || q.ack_through(upto)).await {
            Ok(Ok(removed)) => {
                self.uncommitted = 0;
                self.queue_len = self.queue_len.saturating_sub(removed);
                self.metrics.queue_length.set(self.queue_len as f64);
            }
            Ok(Err(e)) => {
                if let Some(suppressed) = self.logs.check("ack") {
                    tracing::error!(upstream = self.name(), error = %e, suppressed, "cannot remove delivered messages from the upstream queue");
                }
            }
            Err(_) => {}
        }
    }

    /// Appends `out` to the durable queue (a commit), applying the overflow policy.
    async fn enqueue(&mut self, out: &Out) {
        let q = self.queue.clone();
        let record = out.encode();
        match tokio::task::spawn_blocking(move || q.enqueue(&record)).await {
            Ok(Ok(Enqueued::Stored { seq })) => {
                self.queue_len += 1;
                self.last_seq = Some(seq);
            }
            Ok(Ok(Enqueued::StoredDroppingOldest { dropped, seq })) => {
                self.last_seq = Some(seq);
                self.queue_len = (self.queue_len + 1).saturating_sub(dropped.len() as u64);
                self.metrics.dropped_full.add(dropped.len() as u64);
                if let Some(&last) = dropped.last() {
                    while self.read_buf.front().is_some_and(|i| i.seq <= last) {
                        self.read_buf.pop_front();
                    }
                    self.next_read = self.next_read.max(last + 1);
                }
                if let Some(suppressed) = self.logs.check("full") {
                    tracing::warn!(
                        upstream = self.name(),
                        capacity = self.cfg.queue_capacity,
                        suppressed,
                        "upstream queue full: oldest messages dropped"
                    );
                }
            }
            Ok(Ok(Enqueued::Rejected { .. })) => {
                self.metrics.dropped_full.inc();
                if let Some(suppressed) = self.logs.check("full") {
                    tracing::warn!(
                        upstream = self.name(),
                        capacity = self.cfg.queue_capacity,
                        suppressed,
                        "upstream queue full: new messages dropped"
                    );
                }
            }
            Ok(Err(e)) => {
                self.metrics.dropped_store.inc();
                if let Some(suppressed) = self.logs.check("store") {
                    tracing::error!(upstream = self.name(), error = %e, suppressed, "cannot queue a message for upstream; dropped");
                }
            }
            Err(_) => self.metrics.dropped_store.inc(),
        }
        self.metrics.queue_length.set(self.queue_len as f64);
    }

    /// A message from the bus.
    async fn on_local(&mut self, m: Local) {
        match m {
            Local::Mapped(m) => {
                let Some(route) = self.mappings.outbound(&m.topic) else {
                    return;
                };
                if route.both
                    && self
                        .echo_local
                        .is_echo(&m.topic, &m.payload, Instant::now().into_std())
                {
                    return;
                }
                // MQTT 5 subscribes `both` filters with no_local: the broker sends no echo.
                if route.both && self.cfg.mqtt_version == MqttVersion::V311 {
                    self.echo_remote
                        .forwarded(&route.topic, &m.payload, Instant::now().into_std());
                }
                let out = Out {
                    topic: route.topic,
                    retain: route.retain.apply(m.retain),
                    payload: m.payload,
                    qos: route.qos,
                };
                if out.qos == Qos::AtMostOnce && out.retain {
                    if out.payload.is_empty() {
                        self.retained.remove(&out.topic);
                    } else if self.retained.len() < RETAINED_MAX
                        || self.retained.contains_key(&out.topic)
                    {
                        self.retained.insert(out.topic.clone(), out.clone());
                    }
                }
                self.send(out).await;
            }
            Local::SensorState { id, message } => {
                let Some(feed) = &mut self.feed else {
                    return;
                };
                match feed.on_state(&id, &message.payload, now_ms()) {
                    Ok(Some(o)) => {
                        let qos = self.cfg.feed.as_ref().map(|f| f.qos).unwrap_or_default();
                        self.send(Out {
                            topic: o.topic,
                            payload: o.payload.into(),
                            retain: false,
                            qos,
                        })
                        .await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.metrics.feed_errors.inc();
                        if let Some(suppressed) = self.logs.check("feed") {
                            tracing::warn!(upstream = self.name(), topic = %message.topic, error = %e, suppressed, "sensor state not understood by the feed");
                        }
                    }
                }
            }
        }
    }

    /// A message from upstream.
    async fn on_remote(&mut self, topic: String, payload: Bytes, retain: bool) {
        let Some(route) = self.mappings.inbound(&topic) else {
            return;
        };
        let now = Instant::now().into_std();
        if route.both && self.echo_remote.is_echo(&topic, &payload, now) {
            return;
        }
        if route.both {
            self.echo_local.forwarded(&route.topic, &payload, now);
        }
        self.metrics.messages_in.inc();
        let retain = if route.retain.apply(retain) {
            Retain::Yes
        } else {
            Retain::No
        };
        if let Err(e) = self
            .bus
            .publish_bytes(&route.topic, payload.to_vec(), retain)
            .await
            && let Some(suppressed) = self.logs.check("bus")
        {
            tracing::warn!(upstream = self.name(), error = %e, suppressed, "cannot forward an upstream message to the bus");
        }
    }

    async fn publish_full(&mut self) {
        let (Some(feed), Some(cfg)) = (&self.feed, &self.cfg.feed) else {
            return;
        };
        let qos = cfg.qos;
        match feed.full(now_ms()) {
            Ok(o) => {
                self.send(Out {
                    topic: o.topic,
                    payload: o.payload.into(),
                    retain: true,
                    qos,
                })
                .await;
            }
            Err(e) => {
                tracing::warn!(upstream = self.name(), error = %e, "cannot encode the feed's full state")
            }
        }
    }

    /// Shutdown: acknowledged entries removed, everything in memory queued, clean disconnect.
    async fn stop(&mut self) {
        self.commit_acks().await;
        if let State::Active { conn, .. } = &self.state {
            conn.disconnect();
        }
        self.spill_all().await;
        self.metrics.connected.set(0.0);
    }
}

/// The next event of an active connection; pending forever while waiting.
async fn next_event(state: &mut State) -> Option<Result<LinkEvent, ConnError>> {
    match state {
        State::Active { events, .. } => events.recv().await,
        State::Waiting(_) => std::future::pending().await,
    }
}

/// The overflow policy as the store's.
pub fn overflow(o: QueueOverflow) -> watchpost_store::Overflow {
    match o {
        QueueOverflow::DropOldest => watchpost_store::Overflow::DropOldest,
        QueueOverflow::RejectNew => watchpost_store::Overflow::RejectNew,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_records_round_trip() {
        let out = Out {
            topic: "sites/17/a".into(),
            payload: Bytes::from_static(b"{\"x\":1}"),
            retain: true,
            qos: Qos::AtLeastOnce,
        };
        assert_eq!(Out::decode(&out.encode()), Some(out));
        assert_eq!(Out::decode(b""), None);
        assert_eq!(Out::decode(&[0, 0, 9, b'a']), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 42);
        let steps: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (d, base) in steps
            .iter()
            .zip([100u64, 200, 400, 800, 1000, 1000, 1000, 1000])
        {
            let base = Duration::from_millis(base);
            assert!(
                *d >= base.mul_f64(0.75) && *d <= base.mul_f64(1.25),
                "{d:?} vs {base:?}"
            );
        }
        // Jitter: the capped waits are not all equal.
        assert!(steps[4..].windows(2).any(|w| w[0] != w[1]), "{steps:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
