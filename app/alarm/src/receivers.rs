//! The three kinds of receiver behind one interface: deliver one [`Delivery`], report every
//! try. SIA DC-09 ([`crate::sia`]), CHEKT (HTTP POST to the bridge's local API, with a relay
//! as the vendor-documented fallback) and relays (the relay area's `Set` command to the
//! fieldbus worker with `Bus::request`, confirmed by its reply).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;
use watchpost_bus::{Bus, RequestError};
use watchpost_config::alarms::{
    BodyField, ChektAuth, ChektReceiver, ReceiverConfig, RelayReceiver, TemplatePart,
};
use watchpost_contract::relay::{self, RelayCode};
use watchpost_dc09::{ExtendedData, Payload, Seq};

use crate::AlarmError;
use crate::codes::SiaLayout;
use crate::delivery::{Delivery, RelayAction, Target};
use crate::event::Phase;
use crate::sia::{Clock, Outcome, SiaLink, SiaTarget, Try, TryResult};

/// A receiver ready to deliver.
#[derive(Debug)]
pub enum Receiver {
    Sia { link: SiaLink, layout: SiaLayout },
    Chekt(ChektClient),
    Relay(RelayClient),
}

impl Receiver {
    /// Builds the receiver `cfg`; `all` resolves a CHEKT receiver's fallback relay.
    pub fn new(
        cfg: &ReceiverConfig,
        all: &[ReceiverConfig],
        bus: &Bus,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AlarmError> {
        Ok(match cfg {
            ReceiverConfig::Sia(s) => Receiver::Sia {
                link: SiaLink::new(Arc::new(SiaTarget::from_config(s)?), clock),
                layout: SiaLayout::from_config(s),
            },
            ReceiverConfig::Chekt(c) => {
                let fallback = c.fallback_relay.as_ref().and_then(|f| {
                    all.iter().find_map(|r| match r {
                        ReceiverConfig::Relay(rr) if &rr.id == f => {
                            Some(RelayClient::new(rr, bus.clone()))
                        }
                        _ => None,
                    })
                });
                Receiver::Chekt(ChektClient::new(c, fallback)?)
            }
            ReceiverConfig::Relay(r) => Receiver::Relay(RelayClient::new(r, bus.clone())),
        })
    }

    /// Back-off before delivery round `n` (1-based) after failed rounds.
    pub fn backoff(&self, n: u32) -> Duration {
        let (initial, max) = match self {
            Receiver::Sia { link, .. } => {
                (link.target().backoff_initial, link.target().backoff_max)
            }
            Receiver::Chekt(c) => (c.backoff_initial, c.backoff_max),
            Receiver::Relay(r) => (r.backoff_initial, r.backoff_max),
        };
        let exp = n.saturating_sub(1).min(16);
        initial.saturating_mul(1u32 << exp).min(max)
    }

    /// The clock offset learnt from NAKs (SIA only).
    pub fn clock_offset_s(&self) -> Option<i64> {
        match self {
            Receiver::Sia { link, .. } => Some(link.clock_offset_s()),
            _ => None,
        }
    }

    /// One delivery round.
    pub async fn deliver(&mut self, d: &Delivery, tries: &mut Vec<Try>) -> Outcome {
        match (self, &d.target) {
            (Receiver::Sia { link, layout }, Target::Sia { seq, zone }) => {
                let payload = layout.payload(d.kind, d.phase, *zone);
                let seq = Seq::from_counter(u64::from(*seq));
                let xdata = ExtendedData::new('I', &sia_text(d)).ok();
                let extended: Vec<ExtendedData> = xdata.into_iter().collect();
                // Only SIA-DCS receivers get the alarm text; Contact ID stays minimal (the time
                // of occurrence is its one extended block: pysiaalarm reads one there).
                let extended = if layout.contact_id {
                    &[][..]
                } else {
                    &extended[..]
                };
                let occurred = d.at_ms.div_euclid(1000);
                link.deliver(seq, payload, extended, Some(occurred), tries)
                    .await
            }
            (Receiver::Sia { link, .. }, Target::SiaNull { seq }) => {
                link.deliver(
                    Seq::from_counter(u64::from(*seq)),
                    Payload::Null,
                    &[],
                    None,
                    tries,
                )
                .await
            }
            (
                Receiver::Chekt(c),
                Target::Chekt {
                    channel,
                    fallback_output,
                },
            ) => {
                c.deliver(d, *channel, fallback_output.as_deref(), tries)
                    .await
            }
            (Receiver::Relay(r), Target::Relay { output, action }) => {
                r.deliver(output, *action, tries).await
            }
            (_, target) => {
                tries.push(Try {
                    endpoint: String::new(),
                    seq: 0,
                    timestamp: None,
                    result: TryResult::Invalid(format!(
                        "queued for another kind of receiver: {target:?}"
                    )),
                    elapsed_ms: 0,
                });
                Outcome::GivenUp {
                    endpoint: String::new(),
                }
            }
        }
    }
}

/// Alarm text for SIA-DCS (`[I…]` block): printable ASCII only.
fn sia_text(d: &Delivery) -> String {
    let raw = format!("{} {}", d.sensor_name, d.kind.describe(d.phase));
    raw.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && !"[]|".contains(*c))
        .take(60)
        .collect()
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A CHEKT bridge's local HTTP API.
#[derive(Debug)]
pub struct ChektClient {
    cfg: ChektReceiver,
    http: reqwest::Client,
    fallback: Option<RelayClient>,
    failures_in_a_row: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl ChektClient {
    pub fn new(cfg: &ChektReceiver, fallback: Option<RelayClient>) -> Result<Self, AlarmError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| AlarmError::HttpClient {
                receiver: cfg.id.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            cfg: cfg.clone(),
            http,
            fallback,
            failures_in_a_row: 0,
            backoff_initial: Duration::from_millis(cfg.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(
                cfg.backoff_max_ms.max(cfg.backoff_initial_ms).max(1),
            ),
        })
    }

    /// The JSON body for `d` on `channel`, from the configured templates.
    pub fn body(cfg: &ChektReceiver, d: &Delivery, channel: u16) -> Value {
        let kind = match (d.kind, d.phase) {
            (crate::event::EventKind::Test, _) => "test",
            (_, Phase::Alarm) => "alarm",
            (_, Phase::Restore) => "restore",
        };
        let description = format!("{}: {}", d.sensor_name, d.kind.describe(d.phase));
        let mut obj = Map::new();
        for (key, template) in &cfg.body {
            let mut v = String::new();
            for part in template.parts() {
                match part {
                    TemplatePart::Text(t) => v.push_str(t),
                    TemplatePart::Field(BodyField::Channel) => v.push_str(&channel.to_string()),
                    TemplatePart::Field(BodyField::Description) => v.push_str(&description),
                    TemplatePart::Field(BodyField::Sensor) => v.push_str(&d.sensor),
                    TemplatePart::Field(BodyField::SensorName) => v.push_str(&d.sensor_name),
                    TemplatePart::Field(BodyField::Event) => v.push_str(d.kind.as_str()),
                    TemplatePart::Field(BodyField::Kind) => v.push_str(kind),
                    TemplatePart::Field(BodyField::Time) => v.push_str(&d.at_ms.to_string()),
                }
            }
            obj.insert(key.clone(), Value::String(v));
        }
        Value::Object(obj)
    }

    async fn deliver(
        &mut self,
        d: &Delivery,
        channel: u16,
        fallback_output: Option<&str>,
        tries: &mut Vec<Try>,
    ) -> Outcome {
        let started = Instant::now();
        let mut req = self
            .http
            .post(self.cfg.url.as_str())
            .json(&Self::body(&self.cfg, d, channel));
        let token = self.cfg.token.as_ref().map(|t| t.expose().to_string());
        req = match (self.cfg.auth, token) {
            (ChektAuth::ApiKey, Some(t)) => req.basic_auth("apikey", Some(t)),
            (ChektAuth::Bearer, Some(t)) => req.bearer_auth(t),
            _ => req,
        };
        let result = match req.send().await {
            Ok(resp) if resp.status().is_success() => TryResult::Acked,
            Ok(resp) => TryResult::Http(resp.status().as_u16()),
            Err(e) if e.is_timeout() => TryResult::Timeout,
            Err(e) => TryResult::Io(e.to_string()),
        };
        let endpoint = self.cfg.url.to_string();
        tries.push(Try {
            endpoint: endpoint.clone(),
            seq: 0,
            timestamp: None,
            result: result.clone(),
            elapsed_ms: elapsed_ms(started),
        });
        match result {
            TryResult::Acked => {
                self.failures_in_a_row = 0;
                Outcome::Delivered { endpoint }
            }
            // Anything else, a refusal of the request itself (400/404/405/422) included, is
            // retried: a bridge that is restarting or misconfigured, or our URL, auth or body
            // template fixed through the API, lets the same alarm through later.
            _ => {
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                if self.failures_in_a_row >= self.cfg.fallback_after_failures
                    && d.phase == Phase::Alarm
                    && let (Some(relay), Some(output)) = (&self.fallback, fallback_output)
                {
                    let pulse = RelayAction::Pulse { ms: relay.pulse_ms };
                    if let Outcome::Delivered { endpoint } =
                        relay.deliver(output, pulse, tries).await
                    {
                        return Outcome::Delivered { endpoint };
                    }
                }
                Outcome::Failed
            }
        }
    }
}

/// Relay outputs of the fieldbus worker, commanded over the bus.
#[derive(Debug, Clone)]
pub struct RelayClient {
    bus: Bus,
    module: String,
    pub pulse_ms: u64,
    timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl RelayClient {
    pub fn new(cfg: &RelayReceiver, bus: Bus) -> Self {
        Self {
            bus,
            module: cfg.module.to_string(),
            pulse_ms: cfg.pulse_ms,
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            backoff_initial: Duration::from_millis(cfg.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(
                cfg.backoff_max_ms.max(cfg.backoff_initial_ms).max(1),
            ),
        }
    }

    /// The command topic of `output`.
    pub fn topic(&self, output: &str) -> String {
        let levels = relay::channel_set(&self.module, output);
        let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
        self.bus.topic(&levels)
    }

    async fn deliver(&self, output: &str, action: RelayAction, tries: &mut Vec<Try>) -> Outcome {
        let started = Instant::now();
        let topic = self.topic(output);
        let command = match action {
            RelayAction::Pulse { ms } => relay::Set::Pulse { pulse_ms: ms },
            RelayAction::On => relay::Set::Switch { on: true },
            RelayAction::Off => relay::Set::Switch { on: false },
        };
        let result = match self.bus.request(&topic, &command, self.timeout).await {
            Ok(_) => TryResult::Acked,
            Err(e) => relay_failure(e),
        };
        let endpoint = format!("relay:{}/{output}", self.module);
        tries.push(Try {
            endpoint: endpoint.clone(),
            seq: 0,
            timestamp: None,
            result: result.clone(),
            elapsed_ms: elapsed_ms(started),
        });
        match result {
            TryResult::Acked => Outcome::Delivered { endpoint },
            TryResult::Invalid(_) => Outcome::GivenUp { endpoint },
            _ => Outcome::Failed,
        }
    }
}

/// What a failed relay command means for the delivery: the command itself is refused (given
/// up: the queued command is what it is), the module or channel does not exist (not
/// understood, retried: the fieldbus configuration can be fixed, the worker can come back
/// with it), or the module cannot act right now (retried).
fn relay_failure(e: RequestError<RelayCode>) -> TryResult {
    match e {
        RequestError::Refused { error, .. } => match error.code {
            RelayCode::InvalidBody => TryResult::Invalid(error.to_string()),
            RelayCode::RelayNotFound | RelayCode::ChannelNotFound => {
                TryResult::UnknownTarget(error.to_string())
            }
            RelayCode::RelayBreakerOpen
            | RelayCode::RelayTimeout
            | RelayCode::RelayUnreachable
            | RelayCode::RelayBadResponse
            | RelayCode::RelayGpioFailed
            | RelayCode::RelayBusy => TryResult::BadReply(error.to_string()),
        },
        RequestError::Timeout { .. } => TryResult::Timeout,
        RequestError::Bus(e) => TryResult::Io(e.to_string()),
        RequestError::BadReply { source, .. } => TryResult::BadReply(source.to_string()),
    }
}
