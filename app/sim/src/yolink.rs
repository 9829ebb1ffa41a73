//! `watchpost-sim yolink`: the YoLink cloud (or a YoLink Local Hub) for the bridge worker.
//!
//! Serves the token endpoint (`POST /open/yolink/token`, client credentials) and the HTTP API
//! (`POST /open/yolink/v2/api`: `Home.getGeneralInfo`, `Home.getDeviceList`,
//! `<Type>.getState`) with YoLink's envelopes and codes, and publishes device reports to an
//! MQTT broker (a real one, e.g. mosquitto) on `yl-home/<home>/<device>/report` (cloud) or
//! `ylsubnet/<subnet>/<device>/report` (local hub), in YoLink's report format.
//!
//! Sensor events come from a script (`--script FILE`, one JSON object per line:
//! `{"after_ms": 500, "device": "door1", "state": "open"}`, optionally with `"event"`
//! (`Alert`, `Report`, `StatusChange`), `"reminder": true` for the door's "still open"
//! reminder, `"battery": 0..4`, or a raw `"data"` object) and from the control API:
//! `POST /sim/report` with one such object (applied at once), `GET /sim/stats`.
//! On start it prints one JSON line: `{"listening": "<ip:port>", "home_id": "…"}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The YoLink cloud (Open API v2).
    Cloud,
    /// A YoLink Local Hub.
    Local,
}

#[derive(Debug, clap::Args)]
pub struct YolinkArgs {
    #[arg(long, value_enum, default_value = "cloud")]
    mode: Mode,
    /// HTTP listen address (token endpoint, API, control API).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// MQTT broker to publish reports to (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// The credential the bridge must present (UAID or Local Hub client id).
    #[arg(long, default_value = "ua-demo")]
    client_id: String,
    #[arg(long, default_value = "secret-demo")]
    secret: String,
    /// Home id (cloud) or sub-net id (local hub) used in report topics.
    #[arg(long, default_value = "home-demo")]
    home_id: String,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_lifetime_s: u64,
    /// Devices: `ID:TYPE:NAME` (TYPE such as DoorSensor, MotionSensor, LeakSensor,
    /// VibrationSensor, COSmokeSensor, THSensor). Repeatable.
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Script of sensor events (JSON lines).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Repeat the script forever (demo).
    #[arg(long)]
    repeat: bool,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    device_type: String,
    name: String,
    token: String,
    data: Map<String, Value>,
}

struct Sim {
    args: YolinkArgs,
    devices: Mutex<BTreeMap<String, Device>>,
    /// Issued access tokens and when each expires (ms since the Unix epoch).
    tokens: Mutex<Vec<(String, i64)>>,
    /// API calls made with a token past its expiry (answered `010104`).
    expired_token_calls: AtomicU64,
    mqtt: rumqttc::AsyncClient,
    published: AtomicU64,
    api_calls: AtomicU64,
    /// Token requests, granted or refused.
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
}

/// One scripted or posted sensor event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    after_ms: u64,
    device: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    reminder: bool,
    #[serde(default)]
    battery: Option<u8>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn initial_data(device_type: &str) -> Map<String, Value> {
    let v = match device_type {
        "DoorSensor" => json!({"state": "closed", "alertType": "normal", "battery": 4,
                               "openRemindDelay": 600, "version": "0703"}),
        "COSmokeSensor" => json!({"state": {"smokeAlarm": false, "gasAlarm": false,
                                  "highTempAlarm": false, "sLowBattery": false, "unexpected": false},
                                  "battery": 4}),
        "THSensor" => json!({"state": "normal", "temperature": 21.5, "humidity": 45.0, "mode": "c",
                             "alarm": {"lowBattery": false, "lowTemp": false, "highTemp": false,
                                       "lowHumidity": false, "highHumidity": false, "period": false, "code": 0},
                             "battery": 4}),
        _ => json!({"state": "normal", "battery": 4}),
    };
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.insert(
        "loraInfo".into(),
        json!({"signal": -62, "gatewayId": "hub-sim", "gateways": 1}),
    );
    m
}

/// Applies `step` to a device's data; returns the report's event name.
fn apply(d: &mut Device, step: &Step) -> String {
    let now = now_ms();
    if let Some(raw) = &step.data {
        for (k, v) in raw {
            d.data.insert(k.clone(), v.clone());
        }
    }
    if let Some(state) = &step.state {
        match d.device_type.as_str() {
            "COSmokeSensor" => {
                let flags = json!({
                    "smokeAlarm": state == "smoke", "gasAlarm": state == "co",
                    "highTempAlarm": state == "heat", "sLowBattery": false, "unexpected": false,
                });
                d.data.insert("state".into(), flags);
            }
            "THSensor" => {
                let mut alarm = json!({"lowBattery": false, "lowTemp": false, "highTemp": false,
                    "lowHumidity": false, "highHumidity": false, "period": false, "code": 0});
                let key = match state.as_str() {
                    "freeze" | "low_temp" => Some("lowTemp"),
                    "high_temp" => Some("highTemp"),
                    "high_humidity" => Some("highHumidity"),
                    "low_humidity" => Some("lowHumidity"),
                    _ => None,
                };
                if let (Some(k), Some(obj)) = (key, alarm.as_object_mut()) {
                    obj.insert(k.into(), Value::Bool(true));
                }
                d.data.insert("alarm".into(), alarm);
                d.data.insert(
                    "state".into(),
                    Value::String(if key.is_some() { "alert" } else { "normal" }.into()),
                );
            }
            _ => {
                let changed = d.data.get("state").and_then(Value::as_str) != Some(state.as_str());
                d.data.insert("state".into(), Value::String(state.clone()));
                if changed {
                    d.data.insert("stateChangedAt".into(), json!(now));
                }
            }
        }
    }
    if d.device_type == "DoorSensor" {
        let alert = if step.reminder {
            "openRemind"
        } else {
            "normal"
        };
        d.data
            .insert("alertType".into(), Value::String(alert.into()));
    }
    if let Some(b) = step.battery {
        d.data.insert("battery".into(), json!(b.min(4)));
    }
    step.event.clone().unwrap_or_else(|| "Alert".into())
}

impl Sim {
    fn topic(&self, device: &str) -> String {
        match self.args.mode {
            Mode::Cloud => format!("yl-home/{}/{device}/report", self.args.home_id),
            Mode::Local => format!("ylsubnet/{}/{device}/report", self.args.home_id),
        }
    }

    async fn play(&self, step: &Step) -> anyhow::Result<()> {
        let (payload, topic) = {
            let mut devices = self.devices.lock().await;
            let d = devices
                .get_mut(&step.device)
                .with_context(|| format!("no device `{}`", step.device))?;
            let event = apply(d, step);
            let now = now_ms();
            let report = json!({
                "event": format!("{}.{}", d.device_type, event),
                "time": now,
                "msgid": now.to_string(),
                "deviceId": d.id,
                "data": d.data,
            });
            (serde_json::to_vec(&report)?, self.topic(&d.id))
        };
        self.mqtt
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .context("publishing a report")?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn budp(method: &str, code: &str, desc: &str, data: Value) -> Json<Value> {
    let now = now_ms();
    Json(
        json!({"time": now, "method": method, "msgid": now.to_string(), "code": code,
                "desc": desc, "data": data}),
    )
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Form(form): Form<BTreeMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    sim.token_requests.fetch_add(1, Ordering::Relaxed);
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id") == Some(&sim.args.client_id)
        && form.get("client_secret") == Some(&sim.args.secret);
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "000103", "desc": "invalid client credentials"})),
        );
    }
    let n = sim.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
    let access = format!("sim-token-{n}-{}", now_ms());
    let expires_ms = now_ms()
        + i64::try_from(sim.args.token_lifetime_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    sim.tokens.lock().await.push((access.clone(), expires_ms));
    (
        StatusCode::OK,
        Json(
            json!({"access_token": access, "refresh_token": format!("sim-refresh-{n}"),
                    "expires_in": sim.args.token_lifetime_s, "token_type": "bearer"}),
        ),
    )
}

async fn api(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    sim.api_calls.fetch_add(1, Ordering::Relaxed);
    let method = body["method"].as_str().unwrap_or("").to_string();
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let expiry = sim
        .tokens
        .lock()
        .await
        .iter()
        .find(|(t, _)| *t == bearer)
        .map(|(_, e)| *e);
    match expiry {
        None => return budp(&method, "000103", "token invalid", json!({})),
        Some(e) if e <= now_ms() => {
            sim.expired_token_calls.fetch_add(1, Ordering::Relaxed);
            return budp(&method, "010104", "token expired", json!({}));
        }
        Some(_) => {}
    }
    let devices = sim.devices.lock().await;
    match method.as_str() {
        "Home.getGeneralInfo" => budp(
            &method,
            "000000",
            "Success",
            json!({"id": sim.args.home_id}),
        ),
        "Home.getDeviceList" => {
            let list: Vec<Value> = devices
                .values()
                .map(|d| {
                    json!({"deviceId": d.id, "deviceUDID": format!("udid-{}", d.id), "name": d.name,
                                "token": d.token, "type": d.device_type, "parentDeviceId": null,
                                "modelName": "SIM-1", "serviceZone": "sim"})
                })
                .collect();
            budp(&method, "000000", "Success", json!({"devices": list}))
        }
        m if m.ends_with(".getState") => {
            let target = body["targetDevice"].as_str().unwrap_or("");
            match devices.get(target) {
                Some(d) if body["token"].as_str() == Some(d.token.as_str()) => budp(
                    &method,
                    "000000",
                    "Success",
                    json!({"online": true, "state": d.data, "deviceId": d.id, "reportAt": now_ms()}),
                ),
                Some(_) => budp(&method, "000103", "device token invalid", json!({})),
                None => budp(&method, "000201", "cannot connect to the device", json!({})),
            }
        }
        _ => budp(&method, "010203", "method not supported", json!({})),
    }
}

async fn post_report(
    State(sim): State<Arc<Sim>>,
    Json(step): Json<Step>,
) -> (StatusCode, Json<Value>) {
    match sim.play(&step).await {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": e.to_string()})),
        ),
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({
        "published": sim.published.load(Ordering::Relaxed),
        "api_calls": sim.api_calls.load(Ordering::Relaxed),
        "token_requests": sim.token_requests.load(Ordering::Relaxed),
        "tokens_issued": sim.tokens_issued.load(Ordering::Relaxed),
        "expired_token_calls": sim.expired_token_calls.load(Ordering::Relaxed),
    }))
}

fn parse_devices(specs: &[String]) -> anyhow::Result<BTreeMap<String, Device>> {
    let mut out = BTreeMap::new();
    let specs: Vec<String> = if specs.is_empty() {
        vec![
            "door1:DoorSensor:Front door".into(),
            "motion1:MotionSensor:Hall motion".into(),
            "leak1:LeakSensor:Basement leak".into(),
            "smoke1:COSmokeSensor:Kitchen smoke".into(),
            "th1:THSensor:Cellar climate".into(),
            "vib1:VibrationSensor:Safe".into(),
        ]
    } else {
        specs.to_vec()
    };
    for (i, s) in specs.iter().enumerate() {
        let mut parts = s.splitn(3, ':');
        let (Some(id), Some(t)) = (parts.next(), parts.next()) else {
            anyhow::bail!("device `{s}` is not ID:TYPE[:NAME]");
        };
        let name = parts.next().unwrap_or(id);
        out.insert(
            id.to_string(),
            Device {
                id: id.to_string(),
                device_type: t.to_string(),
                name: name.to_string(),
                token: format!("net-{i}"),
                data: initial_data(t),
            },
        );
    }
    Ok(out)
}

fn read_script(path: &PathBuf) -> anyhow::Result<Vec<Step>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a script step", path.display(), i + 1))
        })
        .collect()
}

pub fn run(args: YolinkArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: YolinkArgs) -> anyhow::Result<()> {
    let devices = parse_devices(&args.devices)?;
    let script = args.script.as_ref().map(read_script).transpose()?;
    let (host, port) = args
        .mqtt
        .rsplit_once(':')
        .with_context(|| format!("--mqtt `{}` is not HOST:PORT", args.mqtt))?;
    let port: u16 = port.parse().context("--mqtt port")?;
    let mut opts =
        rumqttc::MqttOptions::new(format!("yolink-sim-{}", std::process::id()), host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 4096);
    tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                tracing::warn!(error = %e, "MQTT connection to the broker failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        devices: Mutex::new(devices),
        tokens: Mutex::new(Vec::new()),
        expired_token_calls: AtomicU64::new(0),
        mqtt: client,
        published: AtomicU64::new(0),
        api_calls: AtomicU64::new(0),
        token_requests: AtomicU64::new(0),
        tokens_issued: AtomicU64::new(0),
        args,
    });
    let app = Router::new()
        .route("/open/yolink/token", post(token))
        .route("/open/yolink/v2/api", post(api))
        .route("/sim/report", post(post_report))
        .route("/sim/stats", get(stats))
        .with_state(sim.clone());
    println!(
        "{}",
        json!({"listening": addr.to_string(), "home_id": sim.args.home_id, "mode": format!("{:?}", sim.args.mode).to_lowercase()})
    );
    if let Some(steps) = script {
        let sim = sim.clone();
        tokio::spawn(async move {
            loop {
                for s in &steps {
                    tokio::time::sleep(Duration::from_millis(s.after_ms)).await;
                    if let Err(e) = sim.play(s).await {
                        tracing::warn!(error = %e, "script step failed");
                    }
                }
                if !sim.args.repeat {
                    break;
                }
            }
        });
    }
    axum::serve(listener, app).await?;
    Ok(())
}
