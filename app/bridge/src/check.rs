//! A one-shot YoLink connection test for the setup wizard and `POST
//! /api/v1/bridge/yolink/test`: the session's first three steps, each within the timeout,
//! stopping at the first that fails.
//!
//! 1. **token**: an access token from the client credentials ([`crate::yolink::fetch_token`],
//!    the session's own request);
//! 2. **api**: `Home.getGeneralInfo` (cloud: the home id the report topic needs) and
//!    `Home.getDeviceList` with that token;
//! 3. **mqtt**: a connection to the report broker with the session's credentials, up to its
//!    `CONNACK`, then a disconnect. YoLink counts this against the 10 new connections per
//!    5 minutes it allows a credential, which is why the test runs only when asked.
//!
//! Nothing is kept: the token is dropped with the report.

use std::time::Duration;

use tokio::time::Instant;
use watchpost_config::bridge::YolinkConfig;
use watchpost_yolink::api;

use crate::yolink::{Api, SessionError, endpoints, error_chain, fetch_token, mqtt_credentials};

/// The step a test reached: where it failed, or [`Stage::Mqtt`] when all passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Token,
    Api,
    Mqtt,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Token => "token",
            Stage::Api => "api",
            Stage::Mqtt => "mqtt",
        }
    }
}

/// What a connection test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub stage: Stage,
    /// Devices of `Home.getDeviceList`, once the API answered.
    pub devices: Option<usize>,
    /// From the token request to the last answer.
    pub latency_ms: u64,
    /// Why the failing stage failed.
    pub error: Option<String>,
}

/// Runs the test against `cfg`; each stage gets at most `timeout`.
pub async fn check(cfg: &YolinkConfig, timeout: Duration) -> Report {
    let started = Instant::now();
    let mut devices = None;
    let result = stages(cfg, timeout, &mut devices).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(()) => Report {
            ok: true,
            stage: Stage::Mqtt,
            devices,
            latency_ms,
            error: None,
        },
        Err((stage, error)) => Report {
            ok: false,
            stage,
            devices,
            latency_ms,
            error: Some(error),
        },
    }
}

async fn stages(
    cfg: &YolinkConfig,
    timeout: Duration,
    devices: &mut Option<usize>,
) -> Result<(), (Stage, String)> {
    let ep = endpoints(cfg);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| (Stage::Token, error_chain(&e)))?;
    let token = fetch_token(&http, &ep.token_url, &ep.client_id, &ep.secret)
        .await
        .map_err(|e| (Stage::Token, describe(&e, timeout)))?;
    let client = Api {
        http,
        api_url: ep.api_url.clone(),
        token: token.access_token.clone(),
    };
    let api_error = |e: SessionError| (Stage::Api, describe(&e, timeout));
    if let YolinkConfig::Cloud(_) = cfg {
        let info = client
            .call("Home.getGeneralInfo", None)
            .await
            .map_err(api_error)?;
        api::home_id(&info).map_err(|e| (Stage::Api, e.to_string()))?;
    }
    let list = client
        .call("Home.getDeviceList", None)
        .await
        .map_err(api_error)?;
    *devices = Some(
        api::devices(&list)
            .map_err(|e| (Stage::Api, e.to_string()))?
            .len(),
    );

    let broker = format!("{}:{}", ep.mqtt_host, ep.mqtt_port);
    let (user, password) = mqtt_credentials(cfg, &ep, &token.access_token);
    let client_id = format!("watchpost-test-{}-{}", std::process::id(), crate::now_ms());
    let mut opts = rumqttc::MqttOptions::new(client_id, ep.mqtt_host.clone(), ep.mqtt_port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_credentials(user, password);
    let (mqtt, mut eventloop) = rumqttc::AsyncClient::new(opts, 4);
    let connack = tokio::time::timeout(timeout, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(error_chain(&e)),
            }
        }
    })
    .await;
    let result = match connack {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((Stage::Mqtt, format!("MQTT broker {broker}: {e}"))),
        Err(_) => Err((
            Stage::Mqtt,
            format!(
                "MQTT broker {broker}: no answer within {} ms",
                timeout.as_millis()
            ),
        )),
    };
    if result.is_ok() {
        let _ = mqtt.disconnect().await;
        // Let the DISCONNECT go out before the connection is dropped.
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }
    result
}

/// A stage's error for people: timeouts say so with the limit.
fn describe(e: &SessionError, timeout: Duration) -> String {
    let text = e.to_string();
    if text.contains("timed out") || text.contains("operation timed out") {
        format!("{text} (limit {} ms)", timeout.as_millis())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_token_endpoint_fails_at_the_token_stage() {
        // A port that was bound and released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let cfg: YolinkConfig = serde_json::from_value(serde_json::json!({
            "source": "cloud", "uaid": "u", "secret": "s",
            "api_url": format!("http://127.0.0.1:{port}"), "mqtt": "127.0.0.1:1",
        }))
        .unwrap();
        let r = check(&cfg, Duration::from_secs(2)).await;
        assert!(!r.ok);
        assert_eq!(r.stage, Stage::Token);
        assert_eq!(r.devices, None);
        let e = r.error.unwrap();
        assert!(e.contains("/open/yolink/token"), "{e}");
        assert!(e.to_lowercase().contains("connect"), "{e}");
    }
}
