//! One YoLink session: access token, HTTP API (home, devices, states) and the MQTT report
//! subscription, for the cloud or a Local Hub. Runs as a task; what it learns goes to the
//! worker's main loop as [`SourceEvent`]s.
//!
//! Connection discipline (YoLink allows 5 concurrent and 10 new MQTT connections per 5
//! minutes per credential): connection attempts are at least `min_connect_interval_ms` apart,
//! failures back off exponentially up to `backoff_max_ms`, and the token is renewed
//! `token_refresh_margin_s` before it expires, after which MQTT reconnects with it.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use watchpost_config::bridge::{BridgeConfig, YolinkConfig};
use watchpost_yolink::api::{self, Device};
use watchpost_yolink::{DeviceClass, YolinkError};

/// What the session reports to the main loop.
#[derive(Debug)]
pub enum SourceEvent {
    Devices(Vec<Device>),
    /// A `getState` answer: the state object (report `data` shape).
    State {
        device_id: String,
        device_type: String,
        data: Map<String, Value>,
    },
    /// A raw report from the broker.
    Report {
        topic: String,
        payload: Vec<u8>,
    },
    Connected(bool),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("HTTP request to {url}: {reason}")]
    Http { url: String, reason: String },
    #[error(transparent)]
    Api(#[from] YolinkError),
    #[error("MQTT broker {broker}: {reason}")]
    Mqtt { broker: String, reason: String },
    #[error("the worker stopped listening")]
    Closed,
}

/// The HTTP API with one access token.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) api_url: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: &str,
        target: Option<(&str, &str)>,
    ) -> Result<Map<String, Value>, SessionError> {
        let body = api::request(method, crate::now_ms(), target, None);
        let resp = self
            .http
            .post(&self.api_url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| SessionError::Http {
                url: self.api_url.clone(),
                reason: e.to_string(),
            })?;
        let bytes = resp.bytes().await.map_err(|e| SessionError::Http {
            url: self.api_url.clone(),
            reason: e.to_string(),
        })?;
        Ok(api::parse_response(method, &bytes)?)
    }
}

/// Where a YoLink source is reached, and with which credential.
pub(crate) struct Endpoints {
    pub(crate) token_url: String,
    pub(crate) api_url: String,
    pub(crate) client_id: String,
    pub(crate) secret: String,
    pub(crate) mqtt_host: String,
    pub(crate) mqtt_port: u16,
}

/// Requests an access token with the client credentials (`client_id` is the UAID or the
/// Local Hub's client id). A refusal is [`YolinkError::Api`] with the server's text.
pub async fn fetch_token(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    secret: &str,
) -> Result<api::Token, SessionError> {
    let form = api::token_request(client_id, secret);
    let http_error = |e: reqwest::Error| SessionError::Http {
        url: token_url.to_string(),
        reason: error_chain(&e),
    };
    let resp = http
        .post(token_url)
        .form(&form)
        .send()
        .await
        .map_err(http_error)?;
    let bytes = resp.bytes().await.map_err(http_error)?;
    Ok(api::parse_token(&bytes)?)
}

/// An error with its sources (reqwest's own text is only "error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The MQTT user name and password a session presents: the access token as user name for
/// the cloud, the client id and the token for a Local Hub.
pub(crate) fn mqtt_credentials(
    cfg: &YolinkConfig,
    ep: &Endpoints,
    access_token: &str,
) -> (String, String) {
    match cfg {
        YolinkConfig::Cloud(_) => (access_token.to_string(), String::new()),
        YolinkConfig::Local(_) => (ep.client_id.clone(), access_token.to_string()),
    }
}

pub(crate) fn endpoints(cfg: &YolinkConfig) -> Endpoints {
    match cfg {
        YolinkConfig::Cloud(c) => Endpoints {
            token_url: c.api_url.join("/open/yolink/token"),
            api_url: c.api_url.join("/open/yolink/v2/api"),
            client_id: c.uaid.clone(),
            secret: c.secret.expose().to_string(),
            mqtt_host: c.mqtt.host().to_string(),
            mqtt_port: c.mqtt.port(),
        },
        YolinkConfig::Local(l) => Endpoints {
            token_url: l.hub_url.join("/open/yolink/token"),
            api_url: l.hub_url.join("/open/yolink/v2/api"),
            client_id: l.client_id.clone(),
            secret: l.client_secret.expose().to_string(),
            mqtt_host: l.mqtt.host().to_string(),
            mqtt_port: l.mqtt.port(),
        },
    }
}

/// Runs sessions until `shutdown`, reconnecting with back-off.
pub async fn run(
    cfg: YolinkConfig,
    bridge: BridgeConfig,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: CancellationToken,
) {
    let ep = endpoints(&cfg);
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(bridge.http_timeout_ms.max(1)))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; YoLink source disabled");
            return;
        }
    };
    let min_gap = Duration::from_millis(bridge.min_connect_interval_ms);
    let mut backoff = Backoff::new(Duration::from_millis(bridge.backoff_max_ms));
    let mut last_connect: Option<Instant> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let mut subscribed = false;
        let result = session(
            &cfg,
            &bridge,
            &ep,
            &http,
            &tx,
            &shutdown,
            &mut last_connect,
            min_gap,
            &mut subscribed,
        )
        .await;
        let _ = tx.send(SourceEvent::Connected(false)).await;
        match result {
            Ok(()) => backoff.reset(),
            Err(SessionError::Closed) => return,
            Err(e) => {
                let wait = backoff.failed(subscribed);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "YoLink session failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Back-off between failed sessions: 1 s doubling up to the maximum (at least 1 s). A session
/// that got as far as the report subscription starts the sequence again, so a connection
/// that drops after working for hours is retried at once (still spaced by
/// `min_connect_interval_ms`), not after the long wait earned by earlier failures.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST,
            max: max.max(Self::FIRST),
        }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The wait after a failed session; `subscribed`: it had reached the subscription.
    fn failed(&mut self, subscribed: bool) -> Duration {
        if subscribed {
            self.reset();
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    cfg: &YolinkConfig,
    bridge: &BridgeConfig,
    ep: &Endpoints,
    http: &reqwest::Client,
    tx: &mpsc::Sender<SourceEvent>,
    shutdown: &CancellationToken,
    last_connect: &mut Option<Instant>,
    min_gap: Duration,
    subscribed: &mut bool,
) -> Result<(), SessionError> {
    let token = fetch_token(http, &ep.token_url, &ep.client_id, &ep.secret).await?;
    let renew_at = Instant::now()
        + Duration::from_secs(
            token
                .expires_in
                .saturating_sub(bridge.token_refresh_margin_s)
                .max(30),
        );
    let api_client = Api {
        http: http.clone(),
        api_url: ep.api_url.clone(),
        token: token.access_token.clone(),
    };
    let topic = match cfg {
        YolinkConfig::Cloud(_) => {
            let home = api::home_id(&api_client.call("Home.getGeneralInfo", None).await?)?;
            format!("yl-home/{home}/+/report")
        }
        YolinkConfig::Local(l) => format!("ylsubnet/{}/+/report", l.subnet_id),
    };
    let (username, password) = mqtt_credentials(cfg, ep, &token.access_token);
    let devices = api::devices(&api_client.call("Home.getDeviceList", None).await?)?;
    tx.send(SourceEvent::Devices(devices.clone()))
        .await
        .map_err(|_| SessionError::Closed)?;

    if let Some(last) = *last_connect {
        let wait = (last + min_gap).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "spacing YoLink MQTT connections"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
    *last_connect = Some(Instant::now());
    let broker = format!("{}:{}", ep.mqtt_host, ep.mqtt_port);
    let client_id = format!("watchpost-{}-{}", std::process::id(), crate::now_ms());
    let mut opts = rumqttc::MqttOptions::new(client_id, ep.mqtt_host.clone(), ep.mqtt_port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_clean_session(true);
    opts.set_credentials(username, password);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 256);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let mut poller: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = client.disconnect().await;
                break Ok(());
            }
            _ = tokio::time::sleep_until(renew_at) => {
                tracing::info!("renewing the YoLink access token");
                let _ = client.disconnect().await;
                break Ok(());
            }
            ev = eventloop.poll() => match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    client
                        .subscribe(topic.clone(), rumqttc::QoS::AtLeastOnce)
                        .await
                        .map_err(|e| SessionError::Mqtt { broker: broker.clone(), reason: e.to_string() })?;
                    *subscribed = true;
                    tracing::info!(broker, topic, devices = devices.len(), "YoLink reports subscribed");
                    tx.send(SourceEvent::Connected(true)).await.map_err(|_| SessionError::Closed)?;
                    if bridge.poll_state_on_connect && poller.is_none() {
                        poller = Some(tokio::spawn(poll_states(
                            Api { http: http.clone(), api_url: ep.api_url.clone(), token: token.access_token.clone() },
                            devices.clone(),
                            tx.clone(),
                        )));
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    tx.send(SourceEvent::Report { topic: p.topic.clone(), payload: p.payload.to_vec() })
                        .await
                        .map_err(|_| SessionError::Closed)?;
                }
                Ok(_) => {}
                Err(e) => break Err(SessionError::Mqtt { broker: broker.clone(), reason: e.to_string() }),
            }
        }
    };
    if let Some(p) = poller {
        p.abort();
    }
    result
}

/// Asks every sensor for its state (the cloud answers from its cache for battery devices).
async fn poll_states(api: Api, devices: Vec<Device>, tx: mpsc::Sender<SourceEvent>) {
    for d in devices {
        if DeviceClass::from_type(&d.device_type) == DeviceClass::Hub {
            continue;
        }
        let method = format!("{}.getState", d.device_type);
        match api.call(&method, Some((&d.device_id, &d.token))).await {
            Ok(data) => {
                let (state, _) = api::device_state(&data);
                if tx
                    .send(SourceEvent::State {
                        device_id: d.device_id.clone(),
                        device_type: d.device_type.clone(),
                        data: state,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => tracing::info!(device = d.device_id, error = %e, "getState failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_maximum_and_restarts_after_a_working_session() {
        let mut b = Backoff::new(Duration::from_secs(300));
        let waits: Vec<u64> = (0..11).map(|_| b.failed(false).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        // A session that subscribed and then dropped: retried after 1 s, not 300 s.
        assert_eq!(b.failed(true), Duration::from_secs(1));
        assert_eq!(b.failed(false), Duration::from_secs(2));
        b.reset();
        assert_eq!(b.failed(false), Duration::from_secs(1));
        // The maximum is never below the first wait.
        let mut b = Backoff::new(Duration::ZERO);
        assert_eq!([b.failed(false), b.failed(false)], [Backoff::FIRST; 2]);
    }
}
