//! `POST /bridge/yolink/test`: does this YoLink source answer? The bridge crate's
//! [`watchpost_bridge::check`] runs the token, API and MQTT steps of a session once; this
//! module picks the source to test (the body's candidate, or the configured one) and turns
//! secrets given as `"***"` into the configured values, so the settings page can test what it
//! shows without ever holding a secret.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use watchpost_bridge::check::{self, Stage};
use watchpost_config::bridge::YolinkConfig;
use watchpost_config::overlay::REDACTED;

use crate::api::extract::Query;
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

/// The test's limit per step unless the query says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// The longest limit a caller may ask for.
pub const MAX_TIMEOUT_MS: u64 = 30_000;

/// `?timeout_ms=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// Limit for each step (token, API, MQTT), 1..=30000; 5000 when absent.
    pub timeout_ms: Option<u64>,
}

/// The step a test reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestStage {
    /// The access token request (wrong UAID or secret fail here).
    Token,
    /// `Home.getGeneralInfo` / `Home.getDeviceList`.
    Api,
    /// The report broker's connection (reached by a test that passed).
    Mqtt,
}

/// A connection test's result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct YolinkTestView {
    pub ok: bool,
    /// Where it failed, or `mqtt` when every step passed.
    pub stage: TestStage,
    /// Devices in the home (or on the Local Hub), once the API answered.
    pub devices: Option<usize>,
    pub latency_ms: u64,
    /// Why the step failed: the server's text for a refused credential, the connect error
    /// for an unreachable host.
    pub error: Option<String>,
}

impl From<check::Report> for YolinkTestView {
    fn from(r: check::Report) -> Self {
        Self {
            ok: r.ok,
            stage: match r.stage {
                Stage::Token => TestStage::Token,
                Stage::Api => TestStage::Api,
                Stage::Mqtt => TestStage::Mqtt,
            },
            devices: r.devices,
            latency_ms: r.latency_ms,
            error: r.error,
        }
    }
}

/// Tests a YoLink source: token, API (device count), MQTT broker.
#[utoipa::path(
    post,
    path = "/bridge/yolink/test",
    tag = "bridge",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(TestQuery),
    request_body(content = Object, description = "Optional. A `[bridge.yolink]` table to test, e.g. `{\"source\": \"cloud\", \"uaid\": \"…\", \"secret\": \"…\", \"api_url\": \"https://api.yosmart.com\"}` or `{\"source\": \"local\", \"hub_url\": \"http://10.0.0.9:1080\", \"client_id\": \"…\", \"client_secret\": \"…\", \"subnet_id\": \"…\", \"mqtt\": \"10.0.0.9:18080\"}`; a secret given as `\"***\"` is the configured one. An empty body tests the configured source."),
    responses(
        (status = 200, description = "The test ran (`ok` says whether it passed)", body = YolinkTestView),
        (status = 400, description = "`INVALID_BODY`: not a `[bridge.yolink]` table; `INVALID_QUERY`", body = ErrorBody),
        (status = 409, description = "`YOLINK_NOT_CONFIGURED`: an empty body (or a `\"***\"` secret) but no configured source", body = ErrorBody),
        (status = 500, description = "`CONFIG_INVALID`: the configuration does not load", body = ErrorBody),
    ),
)]
pub async fn test(
    State(state): State<HubState>,
    Query(q): Query<TestQuery>,
    body: Bytes,
) -> Result<Json<YolinkTestView>, ApiError> {
    let candidate = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| ApiError::bad_request("INVALID_BODY", e.to_string()))?,
        )
    };
    let timeout_ms = q.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("timeout_ms must be 1..={MAX_TIMEOUT_MS}"),
        ));
    }
    run(&state, candidate, Duration::from_millis(timeout_ms))
        .await
        .map(Json)
}

/// The test of `candidate` (a `[bridge.yolink]` table as JSON), or of the configured source.
pub async fn run(
    state: &HubState,
    candidate: Option<Value>,
    timeout: Duration,
) -> Result<YolinkTestView, ApiError> {
    let configured = configured(state).await?;
    let cfg = resolve(candidate, configured.as_ref())?;
    tracing::info!(
        source = match &cfg {
            YolinkConfig::Cloud(_) => "cloud",
            YolinkConfig::Local(_) => "local",
        },
        "YoLink connection test"
    );
    Ok(check::check(&cfg, timeout).await.into())
}

/// The configured source as the bridge would read it now (base file and committed overlay,
/// secrets opened); the hub's start-up configuration when it runs without a supervisor.
async fn configured(state: &HubState) -> Result<Option<YolinkConfig>, ApiError> {
    let Some(path) = state.ctx.config_file().map(std::path::Path::to_path_buf) else {
        return Ok(state.config.bridge.yolink.clone());
    };
    tokio::task::spawn_blocking(move || {
        let env: Vec<(String, String)> = std::env::vars().collect();
        watchpost_config::load_with_env(&path, &env)
            .map(|c| c.bridge.yolink)
            .map_err(|e| {
                ApiError::internal(
                    "CONFIG_INVALID",
                    format!("the configuration does not load: {e}"),
                )
            })
    })
    .await
    .map_err(|e| ApiError::internal("CONFIG_INVALID", e.to_string()))?
}

fn not_configured(message: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "YOLINK_NOT_CONFIGURED", message)
}

/// The source to test: the candidate with `"***"` secrets taken from `configured`, or
/// `configured` itself.
pub fn resolve(
    candidate: Option<Value>,
    configured: Option<&YolinkConfig>,
) -> Result<YolinkConfig, ApiError> {
    let Some(mut v) = candidate.filter(|v| v.as_object().is_none_or(|o| !o.is_empty())) else {
        return configured
            .cloned()
            .ok_or_else(|| not_configured("no YoLink source is configured ([bridge.yolink])"));
    };
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("INVALID_BODY", "the body must be a JSON object"))?;
    for key in ["secret", "client_secret"] {
        if obj.get(key).and_then(Value::as_str) == Some(REDACTED) {
            let secret = match configured {
                Some(YolinkConfig::Cloud(c)) if key == "secret" => c.secret.expose(),
                Some(YolinkConfig::Local(l)) if key == "client_secret" => l.client_secret.expose(),
                _ => {
                    return Err(not_configured(&format!(
                        "`{key}` is \"***\" but the configured source has no {key}"
                    )));
                }
            };
            obj.insert(key.to_string(), Value::String(secret.to_string()));
        }
    }
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request("INVALID_BODY", format!("not a [bridge.yolink] table: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn configured() -> YolinkConfig {
        serde_json::from_value(json!({"source": "cloud", "uaid": "ua", "secret": "real"})).unwrap()
    }

    #[test]
    fn stars_mean_the_configured_secret() {
        let c = configured();
        let r = resolve(
            Some(json!({"source": "cloud", "uaid": "ua2", "secret": "***", "api_url": "http://127.0.0.1:9"})),
            Some(&c),
        )
        .unwrap();
        match r {
            YolinkConfig::Cloud(x) => {
                assert_eq!((x.uaid.as_str(), x.secret.expose()), ("ua2", "real"));
                assert_eq!(x.api_url.as_str(), "http://127.0.0.1:9");
            }
            YolinkConfig::Local(_) => panic!("cloud expected"),
        }
        // Empty: the configured one; none configured: 409.
        assert_eq!(resolve(None, Some(&c)).unwrap(), c);
        assert_eq!(resolve(Some(json!({})), Some(&c)).unwrap(), c);
        assert_eq!(
            resolve(None, None).unwrap_err().code,
            "YOLINK_NOT_CONFIGURED"
        );
        // A local hub's "***" with a cloud configured: nothing to take it from.
        let e = resolve(
            Some(
                json!({"source": "local", "hub_url": "http://h:1080", "client_id": "c",
                        "client_secret": "***", "subnet_id": "s", "mqtt": "h:18080"}),
            ),
            Some(&c),
        )
        .unwrap_err();
        assert_eq!(e.code, "YOLINK_NOT_CONFIGURED");
        let e = resolve(Some(json!({"source": "cloud", "uaid": "u"})), Some(&c)).unwrap_err();
        assert_eq!((e.code, e.status.as_u16()), ("INVALID_BODY", 400));
    }
}
