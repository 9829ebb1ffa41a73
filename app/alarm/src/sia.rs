//! The SIA DC-09 sender: one link per receiver, over TCP (connection kept open between
//! messages) or UDP (one datagram per message), with a backup endpoint.
//!
//! One call to [`SiaLink::deliver`] is one delivery round: up to `attempts` tries on the
//! current endpoint, then the same on the other one. Every try of a message uses the message's
//! own sequence number, so a receiver that got a try but whose answer was lost sees a
//! retransmission, not a new event. A NAK carrying a clock that disagrees with the frame's
//! timestamp corrects the clock offset of that endpoint (each endpoint is its own receiver
//! with its own clock) and the message is re-stamped and resent at once (at most twice per
//! round). A NAK whose clock agrees with ours refuses the frame itself: with encryption that
//! means the receiver cannot decrypt it (another key), and the try says so. A DUH ("not
//! understood") is a failed try like the others: a receiver answers it when it is
//! misconfigured (another account, key or format), restarting, or in trouble, and pysiaalarm
//! answers it to about one frame in 150 under another key; each of these can pass, so the
//! round goes on (the next try, the backup endpoint). The caller (the delivery worker) owns
//! back-off between rounds and never gives up on an alarm the receiver could still take.
//!
//! Events carry their time of occurrence (`[H…]`, in the receiver's clock like the timestamp),
//! so an alarm held back by an outage still tells the central station when it happened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};
use watchpost_config::Endpoint;
use watchpost_config::alarms::{KeyFormat as CfgKeyFormat, SiaReceiver, SiaTransport};
use watchpost_dc09::{
    Account, ClockOffset, ExtendedData, Key, KeyFormat, Message, Payload, Prefix, Reply,
    ReplyReader, Seq, Timestamp, Verdict, judge,
};

use crate::AlarmError;

/// The wall clock, replaceable in tests (to play a panel whose clock is wrong).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now_unix_s(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_s(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A receiver's fixed parameters, checked once.
#[derive(Debug, Clone)]
pub struct SiaTarget {
    pub id: String,
    pub endpoints: Vec<Endpoint>,
    pub transport: SiaTransport,
    pub account: Account,
    pub receiver: Option<Prefix>,
    pub line: Prefix,
    pub key: Option<Key>,
    pub ack_timeout: Duration,
    pub attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl SiaTarget {
    pub fn from_config(r: &SiaReceiver) -> Result<Self, AlarmError> {
        let bad = |field: &'static str, source: watchpost_dc09::Dc09Error| AlarmError::Receiver {
            receiver: r.id.to_string(),
            field,
            reason: source.to_string(),
        };
        let key = match &r.key {
            None => None,
            Some(k) => {
                let format = match r.key_format {
                    CfgKeyFormat::Hex => KeyFormat::Hex,
                    CfgKeyFormat::Ascii => KeyFormat::Ascii,
                };
                Some(Key::parse(k.expose(), format).map_err(|e| bad("key", e))?)
            }
        };
        let mut endpoints = vec![r.host.clone()];
        endpoints.extend(r.backup.clone());
        Ok(Self {
            id: r.id.to_string(),
            endpoints,
            transport: r.transport,
            account: Account::new(&r.account).map_err(|e| bad("account", e))?,
            receiver: r
                .receiver_number
                .as_deref()
                .map(Prefix::new)
                .transpose()
                .map_err(|e| bad("receiver_number", e))?,
            line: Prefix::new(&r.line).map_err(|e| bad("line", e))?,
            key,
            ack_timeout: Duration::from_millis(r.ack_timeout_ms.max(1)),
            attempts: r.attempts.max(1),
            backoff_initial: Duration::from_millis(r.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(r.backoff_max_ms.max(r.backoff_initial_ms).max(1)),
        })
    }
}

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryResult {
    Acked,
    /// SIA DUH: the receiver did not understand the frame.
    NotUnderstood,
    ClockRejected {
        offset_s: i64,
    },
    /// A NAK that is not about the clock: the receiver refuses the frame itself. `encrypted`:
    /// the frame was encrypted, so the receiver most likely holds another key.
    Refused {
        encrypted: bool,
    },
    Discarded,
    Timeout,
    Io(String),
    BadReply(String),
    /// An HTTP receiver answered with this status.
    Http(u16),
    /// The receiver does not know what the delivery addresses (a relay module or channel the
    /// fieldbus worker does not have): the reason it gave.
    UnknownTarget(String),
    /// The delivery itself is refused and no retry can change it (a relay command the
    /// fieldbus worker does not accept, an item queued for another kind of receiver).
    Invalid(String),
}

impl TryResult {
    pub fn label(&self) -> &'static str {
        match self {
            TryResult::Acked => "ack",
            TryResult::NotUnderstood => "duh",
            TryResult::ClockRejected { .. } => "nak_clock",
            TryResult::Refused { encrypted: true } => "nak_key",
            TryResult::Refused { encrypted: false } => "nak",
            TryResult::Discarded => "discarded",
            TryResult::Timeout => "timeout",
            TryResult::Io(_) => "io_error",
            TryResult::BadReply(_) => "bad_reply",
            TryResult::Http(_) => "http_error",
            TryResult::UnknownTarget(_) => "unknown_target",
            TryResult::Invalid(_) => "invalid",
        }
    }

    /// The receiver answered, and what it said is that it did not understand the delivery
    /// (DUH, an HTTP status that refuses the request itself, an unknown relay module or
    /// channel). Counted as `not_understood` and retried: a fix on either side, or a receiver
    /// back from a restart, lets the same delivery through.
    pub fn not_understood(&self) -> bool {
        matches!(
            self,
            TryResult::NotUnderstood
                | TryResult::Http(400 | 404 | 405 | 422)
                | TryResult::UnknownTarget(_)
        )
    }
}

impl std::fmt::Display for TryResult {
    /// What the try means, for people (the status's `last_error`, the event log).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryResult::Acked => f.write_str("acknowledged"),
            TryResult::NotUnderstood => f.write_str(
                "receiver did not understand our frame (DUH): check account, key and format",
            ),
            TryResult::ClockRejected { offset_s } => write!(
                f,
                "receiver rejected our clock (NAK); offset corrected to {offset_s} s"
            ),
            TryResult::Refused { encrypted: true } => {
                f.write_str("receiver refuses our frames: check the key (NAK)")
            }
            TryResult::Refused { encrypted: false } => {
                f.write_str("receiver refuses our frames: check the account and line (NAK)")
            }
            TryResult::Discarded => f.write_str("receiver discarded the frame"),
            TryResult::Timeout => f.write_str("no answer in time"),
            TryResult::Io(e) => f.write_str(e),
            TryResult::BadReply(e) => write!(f, "unreadable reply: {e}"),
            TryResult::Http(status @ (400 | 404 | 405 | 422)) => write!(
                f,
                "HTTP {status}: the bridge refuses the request: check url, auth, channel and body"
            ),
            TryResult::Http(status) => write!(f, "HTTP {status}"),
            TryResult::UnknownTarget(e) => {
                write!(f, "{e}: check the receiver's module and the route's output")
            }
            TryResult::Invalid(e) => write!(f, "refused for good: {e}"),
        }
    }
}

/// One try, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Try {
    pub endpoint: String,
    pub seq: u16,
    pub timestamp: Option<Timestamp>,
    pub result: TryResult,
    pub elapsed_ms: u64,
}

/// The end of a delivery round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        endpoint: String,
    },
    /// No retry can deliver this delivery (the last try says why); it is given up.
    GivenUp {
        endpoint: String,
    },
    /// Retried after the receiver's back-off.
    Failed,
}

struct TcpConn {
    endpoint: usize,
    stream: TcpStream,
    reader: ReplyReader,
}

/// A live link to one SIA receiver.
#[derive(Debug)]
pub struct SiaLink {
    target: Arc<SiaTarget>,
    clock: Arc<dyn Clock>,
    /// Per endpoint (primary, backup): each is a receiver with its own clock.
    offsets: Vec<ClockOffset>,
    /// Endpoint tried first: the one that last worked.
    active: usize,
    tcp: Option<TcpConnBox>,
}

/// Keeps `Debug` on the link without requiring it of the stream.
struct TcpConnBox(TcpConn);

impl std::fmt::Debug for TcpConnBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpConn(endpoint {})", self.0.endpoint)
    }
}

/// Resends after a clock NAK within one round.
const MAX_RESYNCS: u32 = 2;

impl SiaLink {
    pub fn new(target: Arc<SiaTarget>, clock: Arc<dyn Clock>) -> Self {
        Self {
            offsets: vec![ClockOffset::default(); target.endpoints.len()],
            target,
            clock,
            active: 0,
            tcp: None,
        }
    }

    pub fn target(&self) -> &SiaTarget {
        &self.target
    }

    /// The clock correction learnt from the NAKs of the endpoint in use.
    pub fn clock_offset_s(&self) -> i64 {
        self.offset(self.active).secs()
    }

    fn offset(&self, ep: usize) -> ClockOffset {
        self.offsets.get(ep).copied().unwrap_or_default()
    }

    /// The back-off before try `n` (1-based) of a round, and between rounds.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(16);
        self.target
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.target.backoff_max)
    }

    /// One delivery round for `payload` with sequence `seq`; every try is appended to
    /// `tries`. `occurred_unix_s`, when given, is sent as the event's time of occurrence
    /// (`[H…]`).
    pub async fn deliver(
        &mut self,
        seq: Seq,
        payload: Payload,
        extended: &[ExtendedData],
        occurred_unix_s: Option<i64>,
        tries: &mut Vec<Try>,
    ) -> Outcome {
        let n = self.target.endpoints.len();
        for step in 0..n {
            let ep = (self.active + step) % n;
            let mut resyncs = 0;
            let mut attempt = 1;
            while attempt <= self.target.attempts {
                let t = self
                    .try_once(ep, seq, payload, extended, occurred_unix_s)
                    .await;
                let result = t.result.clone();
                tries.push(t);
                match result {
                    TryResult::Acked => {
                        self.active = ep;
                        return Outcome::Delivered {
                            endpoint: self.target.endpoints[ep].to_string(),
                        };
                    }
                    TryResult::ClockRejected { .. } if resyncs < MAX_RESYNCS => {
                        resyncs += 1;
                        continue;
                    }
                    _ => {
                        self.tcp = None;
                        if attempt < self.target.attempts {
                            tokio::time::sleep(self.backoff(attempt)).await;
                        }
                        attempt += 1;
                    }
                }
            }
        }
        Outcome::Failed
    }

    fn frame(
        &self,
        ep: usize,
        seq: Seq,
        payload: Payload,
        extended: &[ExtendedData],
        occurred_unix_s: Option<i64>,
    ) -> Result<(Vec<u8>, Timestamp), String> {
        let offset = self.offset(ep);
        let ts = offset.timestamp(self.clock.now_unix_s());
        let mut extended = extended.to_vec();
        if let Some(at) = occurred_unix_s {
            extended.push(ExtendedData::time_of_occurrence(offset.timestamp(at)));
        }
        let msg = Message {
            seq,
            receiver: self.target.receiver.clone(),
            line: self.target.line.clone(),
            account: self.target.account.clone(),
            payload,
            extended,
            timestamp: Some(ts),
        };
        let bytes = match &self.target.key {
            None => msg.encode(),
            Some(key) => {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random)
                    .map_err(|e| format!("no random bytes for the pad: {e}"))?;
                msg.encode_encrypted(key, &random)
            }
        };
        bytes.map(|b| (b, ts)).map_err(|e| e.to_string())
    }

    async fn try_once(
        &mut self,
        ep: usize,
        seq: Seq,
        payload: Payload,
        extended: &[ExtendedData],
        occurred_unix_s: Option<i64>,
    ) -> Try {
        let started = Instant::now();
        let endpoint = self.target.endpoints[ep].to_string();
        let (result, timestamp) = match self.frame(ep, seq, payload, extended, occurred_unix_s) {
            Err(e) => (TryResult::Io(e), None),
            Ok((frame, ts)) => {
                let deadline = started + self.target.ack_timeout;
                let sent = (seq, ts);
                let r = match self.target.transport {
                    SiaTransport::Tcp => self.exchange_tcp(ep, &frame, sent, deadline).await,
                    SiaTransport::Udp => self.exchange_udp(ep, &frame, sent, deadline).await,
                };
                let r = match r {
                    Ok(verdict) => self.apply(ep, verdict),
                    Err(e) => e,
                };
                (r, Some(ts))
            }
        };
        Try {
            endpoint,
            seq: seq.get(),
            timestamp,
            result,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn apply(&mut self, ep: usize, verdict: Verdict) -> TryResult {
        match verdict {
            Verdict::Delivered => TryResult::Acked,
            Verdict::NotUnderstood => TryResult::NotUnderstood,
            Verdict::ClockRejected { receiver_time } => {
                let offset = ClockOffset::from_nak(receiver_time, self.clock.now_unix_s());
                if let Some(o) = self.offsets.get_mut(ep) {
                    *o = offset;
                }
                tracing::info!(
                    receiver = %self.target.id,
                    endpoint = %self.target.endpoints[ep],
                    offset_s = offset.secs(),
                    "receiver rejected our clock; offset corrected from its NAK"
                );
                TryResult::ClockRejected {
                    offset_s: offset.secs(),
                }
            }
            Verdict::Refused { .. } => TryResult::Refused {
                encrypted: self.target.key.is_some(),
            },
            Verdict::Discarded => TryResult::Discarded,
            // `exchange_*` only return verdicts for our sequence number.
            Verdict::Unrelated { .. } => TryResult::BadReply("reply for another message".into()),
        }
    }

    async fn resolve(&self, ep: usize) -> Result<SocketAddr, TryResult> {
        let e = &self.target.endpoints[ep];
        let mut addrs = tokio::net::lookup_host((e.host(), e.port()))
            .await
            .map_err(|err| TryResult::Io(format!("resolving {e}: {err}")))?;
        addrs
            .next()
            .ok_or_else(|| TryResult::Io(format!("{e} resolves to no address")))
    }

    async fn exchange_tcp(
        &mut self,
        ep: usize,
        frame: &[u8],
        sent: (Seq, Timestamp),
        deadline: Instant,
    ) -> Result<Verdict, TryResult> {
        // The connection is taken out and put back only after a clean exchange: any error or
        // timeout drops it (it may hold a late answer to this try).
        let mut conn = match self.tcp.take() {
            Some(TcpConnBox(c)) if c.endpoint == ep => c,
            _ => {
                let addr = self.resolve(ep).await?;
                let stream = timeout_at(deadline, TcpStream::connect(addr))
                    .await
                    .map_err(|_| TryResult::Timeout)?
                    .map_err(|e| TryResult::Io(format!("connecting to {addr}: {e}")))?;
                let _ = stream.set_nodelay(true);
                let _ = socket2::SockRef::from(&stream).set_tcp_quickack(true);
                TcpConn {
                    endpoint: ep,
                    stream,
                    reader: ReplyReader::new(),
                }
            }
        };
        let verdict =
            exchange_on(&mut conn, frame, sent, self.target.key.as_ref(), deadline).await?;
        self.tcp = Some(TcpConnBox(conn));
        Ok(verdict)
    }

    async fn exchange_udp(
        &mut self,
        ep: usize,
        frame: &[u8],
        sent: (Seq, Timestamp),
        deadline: Instant,
    ) -> Result<Verdict, TryResult> {
        let addr = self.resolve(ep).await?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| TryResult::Io(format!("binding a UDP socket: {e}")))?;
        sock.send_to(frame, addr)
            .await
            .map_err(|e| TryResult::Io(format!("sending to {addr}: {e}")))?;
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = timeout_at(deadline, sock.recv_from(&mut buf))
                .await
                .map_err(|_| TryResult::Timeout)?
                .map_err(|e| TryResult::Io(format!("receiving from {addr}: {e}")))?;
            if from != addr {
                continue;
            }
            if let Some(v) = judge_bytes(&buf[..n], self.target.key.as_ref(), sent)? {
                return Ok(v);
            }
        }
    }
}

/// Writes `frame` on `conn` and reads until the answer to `sent` arrives.
async fn exchange_on(
    conn: &mut TcpConn,
    frame: &[u8],
    sent: (Seq, Timestamp),
    key: Option<&Key>,
    deadline: Instant,
) -> Result<Verdict, TryResult> {
    conn.stream
        .write_all(frame)
        .await
        .map_err(|e| TryResult::Io(format!("writing: {e}")))?;
    let mut buf = [0u8; 2048];
    loop {
        while let Some(bytes) = conn.reader.next_reply() {
            if let Some(v) = judge_bytes(&bytes, key, sent)? {
                return Ok(v);
            }
        }
        let n = match timeout_at(deadline, conn.stream.read(&mut buf)).await {
            Err(_) => return Err(TryResult::Timeout),
            Ok(Err(e)) => return Err(TryResult::Io(format!("reading: {e}"))),
            Ok(Ok(0)) => return Err(TryResult::Io("receiver closed the connection".into())),
            Ok(Ok(n)) => n,
        };
        // Acknowledge at once: a receiver that answers back-to-back without TCP_NODELAY
        // (pysiaalarm) otherwise holds each answer until our delayed ACK of the previous one.
        let _ = socket2::SockRef::from(&conn.stream).set_tcp_quickack(true);
        if let Some(bare) = conn.reader.push(&buf[..n])
            && let Some(v) = judge_bytes(&bare, key, sent)?
        {
            return Ok(v);
        }
    }
}

/// Parses and judges one reply to the message `sent` (sequence number, timestamp):
/// `Ok(None)` for a reply to another message.
fn judge_bytes(
    bytes: &[u8],
    key: Option<&Key>,
    sent: (Seq, Timestamp),
) -> Result<Option<Verdict>, TryResult> {
    let reply: Reply = Reply::parse(bytes, key).map_err(|e| TryResult::BadReply(e.to_string()))?;
    match judge(sent.0, Some(sent.1), &reply) {
        Verdict::Unrelated { .. } => Ok(None),
        v => Ok(Some(v)),
    }
}
