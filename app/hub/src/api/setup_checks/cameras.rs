//! `POST /cameras/discover`: ONVIF cameras on the LAN. A WS-Discovery Probe for
//! `dn:NetworkVideoTransmitter` goes to 239.255.255.250:3702 (and unicast to the `hosts`
//! given, for cameras on other subnets and for loopback tests); every ProbeMatch answering it
//! within `timeout_ms` is then asked, over HTTP, for its media service (`GetCapabilities`),
//! its profiles (`GetProfiles`) and each profile's RTSP URL (`GetStreamUri`), with a
//! WS-UsernameToken digest when a user is given. The SOAP is built and read by
//! [`watchpost_onvif::client`]; this module moves the bytes. A device that refuses or fails
//! is listed with its error, so a wrong password shows up beside the camera it concerns.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use watchpost_onvif::client::{self, Auth, ClientError, Credentials, ProbeMatch};

use crate::api::extract;
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

/// WS-Discovery's multicast group and port.
pub const MULTICAST: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)),
    3702,
);
/// How long discovery listens unless asked otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// The longest a caller may ask discovery to listen.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Each ONVIF request to a found device.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Devices asked for profiles; further matches are listed without them.
const MAX_DEVICES: usize = 32;

/// What to probe and with which credentials.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverRequest {
    /// How long to collect answers, 1..=10000 (2000 when absent).
    pub timeout_ms: Option<u64>,
    /// Addresses (`host` or `host:port`, port 3702 by default) also probed by unicast.
    pub hosts: Vec<String>,
    /// Probe the multicast group (default true).
    pub multicast: Option<bool>,
    /// ONVIF user for GetProfiles/GetStreamUri (digest); none: ask without credentials.
    pub user: Option<String>,
    pub password: Option<String>,
}

/// One profile of a found camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DiscoveredProfile {
    pub token: String,
    pub name: String,
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The RTSP URL (`GetStreamUri`), without credentials.
    pub stream_uri: Option<String>,
}

/// One camera that answered the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DiscoveredCamera {
    /// Its device service URL (the first of its XAddrs).
    pub xaddr: String,
    /// Its endpoint reference (`urn:uuid:…`).
    pub endpoint: String,
    /// The `onvif://www.onvif.org/name/…` scope.
    pub name: Option<String>,
    /// The `onvif://www.onvif.org/hardware/…` scope.
    pub hardware: Option<String>,
    pub profiles: Vec<DiscoveredProfile>,
    /// Why its profiles could not be read (a SOAP fault's reason, an HTTP error).
    pub error: Option<String>,
}

/// Finds ONVIF cameras (WS-Discovery) and reads their profiles and RTSP URLs.
#[utoipa::path(
    post,
    path = "/cameras/discover",
    tag = "cameras",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = DiscoverRequest,
    responses(
        (status = 200, description = "The cameras that answered, in the order they did", body = Vec<DiscoveredCamera>),
        (status = 400, description = "`INVALID_BODY`: bad `timeout_ms` or `hosts`", body = ErrorBody),
        (status = 500, description = "`DISCOVERY_FAILED`: no UDP socket could be opened", body = ErrorBody),
    ),
)]
pub async fn discover(
    State(_state): State<HubState>,
    extract::Json(req): extract::Json<DiscoverRequest>,
) -> Result<Json<Vec<DiscoveredCamera>>, ApiError> {
    run(req).await.map(Json)
}

/// Discovery as the API and the wizard run it.
pub async fn run(req: DiscoverRequest) -> Result<Vec<DiscoveredCamera>, ApiError> {
    let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("timeout_ms must be 1..={MAX_TIMEOUT_MS}"),
        ));
    }
    let mut targets = Vec::new();
    for h in req.hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
        targets.push(resolve_host(h).await?);
    }
    let matches = probe(
        &targets,
        req.multicast.unwrap_or(true),
        Duration::from_millis(timeout_ms),
    )
    .await?;
    let credentials = req.user.filter(|u| !u.is_empty()).map(|user| Credentials {
        user,
        password: req.password.unwrap_or_default(),
    });
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| ApiError::internal("DISCOVERY_FAILED", e.to_string()))?;
    let found = matches.iter().take(MAX_DEVICES).map(|m| {
        let http = http.clone();
        let credentials = credentials.clone();
        async move { describe(&http, m, credentials.as_ref()).await }
    });
    Ok(futures::future::join_all(found).await)
}

/// `host` or `host:port` (3702 by default) to a socket address.
async fn resolve_host(h: &str) -> Result<SocketAddr, ApiError> {
    let bad = |why: String| ApiError::bad_request("INVALID_BODY", format!("hosts: `{h}`: {why}"));
    let with_port = if h.parse::<SocketAddr>().is_ok()
        || h.rsplit_once(':')
            .is_some_and(|(a, p)| !a.contains(':') && p.parse::<u16>().is_ok())
    {
        h.to_string()
    } else {
        format!("{}:3702", h.trim_start_matches('[').trim_end_matches(']'))
    };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| bad(e.to_string()))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| bad("no IPv4 address".to_string()))
}

/// Sends the probe and collects matching answers until `timeout`, one per endpoint.
async fn probe(
    targets: &[SocketAddr],
    multicast: bool,
    timeout: Duration,
) -> Result<Vec<ProbeMatch>, ApiError> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| ApiError::internal("DISCOVERY_FAILED", format!("UDP socket: {e}")))?;
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("DISCOVERY_FAILED", e.to_string()))?;
    let message_id = format!("urn:uuid:{}", uuid_text(raw));
    let datagram = client::probe(&message_id);
    let mut sent = 0usize;
    let dests = targets
        .iter()
        .copied()
        .chain(multicast.then_some(MULTICAST));
    for to in dests {
        match sock.send_to(&datagram, to).await {
            Ok(_) => sent += 1,
            Err(e) => tracing::info!(%to, error = %e, "WS-Discovery probe not sent"),
        }
    }
    if sent == 0 {
        return Ok(Vec::new());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; watchpost_onvif::discovery::MAX_DATAGRAM + 1];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "WS-Discovery receive");
                continue;
            }
            Ok(Ok((n, _))) => n,
        };
        match client::parse_probe_matches(&buf[..n], &message_id) {
            Ok(ms) => {
                for m in ms {
                    let key = if m.endpoint.is_empty() {
                        m.xaddrs.join(" ")
                    } else {
                        m.endpoint.clone()
                    };
                    if seen.insert(key) {
                        out.push(m);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "WS-Discovery answer ignored"),
        }
    }
    Ok(out)
}

/// A random UUID's text (version 4).
fn uuid_text(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The device's profiles and stream URLs.
async fn describe(
    http: &reqwest::Client,
    m: &ProbeMatch,
    credentials: Option<&Credentials>,
) -> DiscoveredCamera {
    let xaddr = m
        .xaddrs
        .iter()
        .find(|x| x.starts_with("http://"))
        .or_else(|| m.xaddrs.first())
        .cloned()
        .unwrap_or_default();
    let mut cam = DiscoveredCamera {
        xaddr: xaddr.clone(),
        endpoint: m.endpoint.clone(),
        name: m.name(),
        hardware: m.hardware(),
        profiles: Vec::new(),
        error: None,
    };
    if let Err(e) = profiles(http, &xaddr, credentials, &mut cam.profiles).await {
        cam.error = Some(e);
    }
    cam
}

async fn profiles(
    http: &reqwest::Client,
    device_xaddr: &str,
    credentials: Option<&Credentials>,
    out: &mut Vec<DiscoveredProfile>,
) -> Result<(), String> {
    // The media service is where GetCapabilities says; many cameras serve every service at
    // the device address, which is the fallback.
    let media = match call(http, device_xaddr, credentials, client::get_capabilities).await {
        Ok(body) => client::parse_media_xaddr(&body).unwrap_or_else(|_| device_xaddr.to_string()),
        Err(_) => device_xaddr.to_string(),
    };
    let body = call(http, &media, credentials, client::get_profiles).await?;
    let list = client::parse_profiles(&body).map_err(|e| e.to_string())?;
    for p in list {
        let token = p.token.clone();
        let uri = call(http, &media, credentials, |a| {
            client::get_stream_uri(a, &token)
        })
        .await
        .and_then(|b| client::parse_stream_uri(&b).map_err(|e: ClientError| e.to_string()));
        out.push(DiscoveredProfile {
            token: p.token,
            name: p.name,
            encoding: p.encoding,
            width: p.width,
            height: p.height,
            stream_uri: uri.ok(),
        });
    }
    Ok(())
}

/// POSTs one request (a fresh nonce each) and returns the answer's body; a SOAP fault comes
/// back as its body too (the parser names it), other HTTP failures as text.
async fn call(
    http: &reqwest::Client,
    url: &str,
    credentials: Option<&Credentials>,
    build: impl FnOnce(Option<Auth<'_>>) -> Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    let created = client::created(now);
    let auth = credentials.map(|c| Auth {
        credentials: c,
        nonce: &nonce,
        created: &created,
    });
    let resp = http
        .post(url)
        .header("content-type", watchpost_onvif::CONTENT_TYPE)
        .body(build(auth))
        .send()
        .await
        .map_err(|e| format!("{url}: {}", chain(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("{url}: {}", chain(&e)))?;
    if body.len() > client::MAX_RESPONSE {
        return Err(format!(
            "{url}: the answer is larger than {} bytes",
            client::MAX_RESPONSE
        ));
    }
    if !status.is_success() && !body.starts_with(b"<") {
        return Err(format!("{url}: HTTP {status}"));
    }
    Ok(body.to_vec())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_version_4() {
        let u = uuid_text([0xff; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "b");
    }

    #[tokio::test]
    async fn hosts_get_the_discovery_port() {
        assert_eq!(
            resolve_host("127.0.0.1").await.unwrap(),
            "127.0.0.1:3702".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve_host("127.0.0.1:4000").await.unwrap(),
            "127.0.0.1:4000".parse::<SocketAddr>().unwrap()
        );
        assert!(resolve_host("127.0.0.1:x").await.is_err());
    }
}
