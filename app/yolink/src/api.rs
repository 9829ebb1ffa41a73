//! The YoLink HTTP API (cloud `…/open/yolink/v2/api` and the Local Hub's same-shaped API) as
//! data: token responses, request bodies and response envelopes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{YolinkError, excerpt};
use crate::report::as_i64;

/// The `code` of a successful response.
pub const SUCCESS: &str = "000000";

/// Response codes that mean the access token must be renewed.
pub fn is_auth_error(code: &str) -> bool {
    matches!(code, "000103" | "010104")
}

/// Response code meaning the account's rate limit was reached (retry later).
pub fn is_rate_limited(code: &str) -> bool {
    code == "010301"
}

/// Form fields of a client-credentials token request.
pub fn token_request(client_id: &str, client_secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", client_id.into()),
        ("client_secret", client_secret.into()),
    ]
}

/// Form fields of a refresh-token request.
pub fn refresh_request(client_id: &str, refresh_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "refresh_token".into()),
        ("client_id", client_id.into()),
        ("refresh_token", refresh_token.into()),
    ]
}

/// A token answer. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Parses a token answer.
pub fn parse_token(body: &[u8]) -> Result<Token, YolinkError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| YolinkError::ParseResponseJson {
        what: "token",
        reason: e.to_string(),
    })?;
    if v.get("access_token").is_none() {
        // A refusal: YoLink answers `{"code": "...", "desc": "..."}`, OAuth servers
        // `{"error": "...", "error_description": "..."}`.
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let code = v
            .get("code")
            .and_then(|c| text("code").or_else(|| as_i64(c).map(|n| format!("{n:06}"))))
            .or_else(|| text("error"));
        if let Some(code) = code {
            return Err(YolinkError::Api {
                method: "token".to_string(),
                desc: excerpt(
                    &text("desc")
                        .or_else(|| text("error_description"))
                        .or_else(|| text("msg"))
                        .unwrap_or_default(),
                ),
                code,
            });
        }
    }
    let access_token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(YolinkError::ParseResponseField {
            what: "token",
            field: "access_token",
        })?
        .to_string();
    let expires_in = v
        .get("expires_in")
        .and_then(as_i64)
        .and_then(|e| u64::try_from(e).ok())
        .ok_or(YolinkError::ParseResponseField {
            what: "token",
            field: "expires_in",
        })?;
    Ok(Token {
        access_token,
        refresh_token: v
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_string),
        expires_in,
    })
}

/// A request body (BDDP). `time_ms` is the current time; `target` is `(deviceId, device net
/// token)` for device methods.
pub fn request(
    method: &str,
    time_ms: i64,
    target: Option<(&str, &str)>,
    params: Option<Value>,
) -> Value {
    let mut body = json!({
        "method": method,
        "time": time_ms,
        "msgid": time_ms.to_string(),
    });
    if let (Some((device, token)), Some(obj)) = (target, body.as_object_mut()) {
        obj.insert("targetDevice".into(), Value::String(device.to_string()));
        obj.insert("token".into(), Value::String(token.to_string()));
    }
    if let (Some(p), Some(obj)) = (params, body.as_object_mut()) {
        obj.insert("params".into(), p);
    }
    body
}

/// Parses a response body (BUDP) to `method` and returns its `data` when `code` is success.
pub fn parse_response(method: &str, body: &[u8]) -> Result<Map<String, Value>, YolinkError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| YolinkError::ParseResponseJson {
        what: "API",
        reason: e.to_string(),
    })?;
    let code = v
        .get("code")
        .and_then(|c| {
            c.as_str()
                .map(str::to_string)
                .or_else(|| as_i64(c).map(|n| format!("{n:06}")))
        })
        .ok_or(YolinkError::ParseResponseField {
            what: "API",
            field: "code",
        })?;
    if code != SUCCESS {
        return Err(YolinkError::Api {
            method: method.to_string(),
            desc: excerpt(v.get("desc").and_then(Value::as_str).unwrap_or("")),
            code,
        });
    }
    Ok(match v.get("data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    })
}

/// The home id from a `Home.getGeneralInfo` answer's data.
pub fn home_id(data: &Map<String, Value>) -> Result<String, YolinkError> {
    data.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or(YolinkError::ParseResponseField {
            what: "Home.getGeneralInfo",
            field: "id",
        })
}

/// One entry of `Home.getDeviceList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub device_id: String,
    pub name: String,
    pub device_type: String,
    pub model: Option<String>,
    /// Device net token for device methods (not the access token).
    pub token: String,
}

/// Devices of a `Home.getDeviceList` answer's data; entries without id or type are skipped.
pub fn devices(data: &Map<String, Value>) -> Result<Vec<Device>, YolinkError> {
    let list =
        data.get("devices")
            .and_then(Value::as_array)
            .ok_or(YolinkError::ParseResponseField {
                what: "Home.getDeviceList",
                field: "devices",
            })?;
    let s = |d: &Value, k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(list
        .iter()
        .filter_map(|d| {
            Some(Device {
                device_id: s(d, "deviceId").filter(|x| !x.is_empty())?,
                device_type: s(d, "type").filter(|x| !x.is_empty())?,
                name: s(d, "name").unwrap_or_default(),
                model: s(d, "modelName"),
                token: s(d, "token").unwrap_or_default(),
            })
        })
        .collect())
}

/// From a `<Type>.getState` answer's data: the state object (in report `data` shape) and the
/// online flag.
pub fn device_state(data: &Map<String, Value>) -> (Map<String, Value>, Option<bool>) {
    let mut state = match data.get("state") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let online = data.get("online").and_then(Value::as_bool);
    if let Some(o) = online {
        state.insert("online".into(), Value::Bool(o));
    }
    (state, online)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_envelopes() {
        let t = parse_token(br#"{"access_token":"abc","refresh_token":"r","expires_in":7200,"token_type":"bearer"}"#).unwrap();
        assert_eq!((t.access_token.as_str(), t.expires_in), ("abc", 7200));
        assert!(!format!("{t:?}").contains("abc"));
        assert!(parse_token(br#"{"expires_in":1}"#).is_err());
        let refused =
            parse_token(br#"{"code":"000103","desc":"invalid client credentials"}"#).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "token failed with code 000103: invalid client credentials"
        );
        let refused =
            parse_token(br#"{"error":"invalid_client","error_description":"bad secret"}"#)
                .unwrap_err();
        assert!(refused.to_string().contains("bad secret"), "{refused}");
        let r = request("DoorSensor.getState", 5, Some(("d1", "nt")), None);
        assert_eq!(r["targetDevice"], "d1");
        assert_eq!(r["token"], "nt");
        assert_eq!(r["time"], 5);
        let data = parse_response(
            "Home.getGeneralInfo",
            br#"{"code":"000000","data":{"id":"h1"}}"#,
        )
        .unwrap();
        assert_eq!(home_id(&data).unwrap(), "h1");
        let e = parse_response(
            "Home.getDeviceList",
            br#"{"code":"000103","desc":"token invalid"}"#,
        )
        .unwrap_err();
        assert!(matches!(&e, YolinkError::Api { code, .. } if is_auth_error(code)));
    }

    #[test]
    fn device_list_and_state() {
        let data = parse_response(
            "Home.getDeviceList",
            br#"{"code":"000000","data":{"devices":[
                {"deviceId":"d1","deviceUDID":"u","name":"Front","token":"t1","type":"DoorSensor","modelName":"YS7704-UC"},
                {"name":"broken"}]}}"#,
        )
        .unwrap();
        let d = devices(&data).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].model.as_deref(), Some("YS7704-UC"));
        let st = parse_response(
            "DoorSensor.getState",
            br#"{"code":"000000","data":{"online":true,"state":{"state":"closed","battery":4},"deviceId":"d1"}}"#,
        )
        .unwrap();
        let (state, online) = device_state(&st);
        assert_eq!(
            (state["state"].as_str(), online),
            (Some("closed"), Some(true))
        );
    }
}
