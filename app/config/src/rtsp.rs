//! `[rtsp]`: the onboard RTSP server (camera restreams, sensor dashboard), the ONVIF device and
//! media services, and the WS-Discovery responder.
//!
//! Cameras are not listed here: every RTSP camera of `[capture]` is restreamed at
//! `/cameras/<id>` (and `/cameras/<id>/sub` when it has a sub stream), every V4L2 and HTTP
//! MJPEG camera from the capture worker's shared H.264, and every thermal camera's colourised
//! view at `/thermal/<id>` (`[rtsp.thermal]`). `extra_cameras` adds upstream RTSP sources that
//! the capture worker does not ingest (and serves the tests).

use serde::{Deserialize, Serialize};

use crate::types::{Ident, ListenAddr};
use crate::{Problem, problem};

fn default_true() -> bool {
    true
}

/// The `[rtsp]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspConfig {
    pub enabled: bool,
    /// RTSP listener.
    pub listen: ListenAddr,
    /// ONVIF HTTP listener (`/onvif/device_service`, `/onvif/media_service`, snapshots).
    pub onvif_listen: ListenAddr,
    /// Require RTSP digest authentication against `[auth]` users (those with a clear-text
    /// `password`; a digest cannot be checked against a password hash).
    pub rtsp_auth: bool,
    /// Require WS-UsernameToken digests on ONVIF calls (GetSystemDateAndTime always answers).
    pub onvif_auth: bool,
    /// Largest accepted difference between a token's Created time and the clock.
    pub onvif_auth_window_s: u32,
    /// Clients per mount at most; further PLAY requests get 503.
    pub max_clients_per_mount: u32,
    /// Offer RTP over UDP as well as over the RTSP TCP connection.
    pub udp: bool,
    /// Jitter-buffer latency of the upstream camera reads.
    pub upstream_latency_ms: u32,
    /// A client that sends nothing for this long (no RTCP, no RTSP request: a hung player)
    /// loses its session and its connection, so it cannot hold a mount. Players keep their
    /// session alive well within the RTSP default of 60 s.
    pub session_timeout_s: u32,
    /// A player on RTP over TCP whose connection has taken nothing for this long while its
    /// mount's source kept producing (a player that hung without closing its connection) is
    /// disconnected, so that it neither holds a client slot nor its backlog. 0 turns this off.
    pub stalled_client_timeout_s: u32,
    /// How long a camera read may wait for the camera (TCP connect and each RTSP answer)
    /// before the mount's DESCRIBE fails and the camera counts as offline.
    pub upstream_timeout_ms: u32,
    pub device: DeviceConfig,
    pub dashboard: DashboardConfig,
    /// `/thermal/<id>`: the colourised view of each thermal camera of `[capture]`.
    pub thermal: ThermalViewConfig,
    pub discovery: DiscoveryConfig,
    /// Upstream RTSP cameras restreamed in addition to `[capture]`'s.
    pub extra_cameras: Vec<ExtraCamera>,
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: ListenAddr::new(std::net::SocketAddr::from(([0, 0, 0, 0], 8554))),
            onvif_listen: ListenAddr::new(std::net::SocketAddr::from(([0, 0, 0, 0], 8000))),
            rtsp_auth: true,
            onvif_auth: true,
            onvif_auth_window_s: 300,
            max_clients_per_mount: 32,
            udp: true,
            upstream_latency_ms: 200,
            session_timeout_s: 60,
            stalled_client_timeout_s: 10,
            upstream_timeout_ms: 5_000,
            device: DeviceConfig::default(),
            dashboard: DashboardConfig::default(),
            thermal: ThermalViewConfig::default(),
            discovery: DiscoveryConfig::default(),
            extra_cameras: Vec::new(),
        }
    }
}

/// `[rtsp.device]`: how the appliance presents itself to NVRs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    pub name: String,
    pub location: String,
    pub manufacturer: String,
    pub model: String,
    /// Serial number; the MAC address when empty.
    pub serial_number: String,
    /// MAC address reported in GetNetworkInterfaces (`aa:bb:cc:dd:ee:ff`); read from
    /// `interface` when empty.
    pub mac: String,
    /// Network interface whose MAC and IPv4 address are reported; the first non-loopback
    /// interface when empty.
    pub interface: String,
    /// Host name or address written into URIs when the request has no usable Host header
    /// (and into discovery XAddrs); the interface's address when empty.
    pub advertise_host: String,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            name: "Watchpost".into(),
            location: String::new(),
            manufacturer: "Watchpost".into(),
            model: "Watchpost gateway".into(),
            serial_number: String::new(),
            mac: String::new(),
            interface: String::new(),
            advertise_host: String::new(),
        }
    }
}

/// H.264 encoder of the dashboard stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DashboardEncoder {
    #[default]
    X264,
    Openh264,
}

/// `[rtsp.dashboard]`: the rendered sensor dashboard at `/dashboard`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pages cycle after this long when the tiles do not fit on one.
    pub page_interval_ms: u64,
    pub bitrate_kbps: u32,
    /// Keyframe interval in frames: small, so that new clients see a picture quickly.
    pub keyframe_interval_frames: u32,
    pub encoder: DashboardEncoder,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            title: "Watchpost".into(),
            width: 1920,
            height: 1080,
            fps: 1,
            page_interval_ms: 10_000,
            bitrate_kbps: 300,
            keyframe_interval_frames: 2,
            encoder: DashboardEncoder::X264,
        }
    }
}

/// `[rtsp.thermal]`: the `/thermal/<id>` mounts, encoded from the capture worker's view ring
/// with the dashboard's encoder (`dashboard.encoder`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalViewConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub bitrate_kbps: u32,
    /// Keyframe interval in frames (short: a new client waits at most this long for a picture).
    pub keyframe_interval_frames: u32,
}

impl Default for ThermalViewConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bitrate_kbps: 800,
            keyframe_interval_frames: 9,
        }
    }
}

/// `[rtsp.discovery]`: the WS-Discovery responder.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// UDP port (3702 is the standard one).
    pub port: u16,
    /// Bind address of the responder socket.
    pub bind: std::net::Ipv4Addr,
    /// IPv4 address of the interface on which the multicast group is joined and Hello/Bye
    /// are sent; 0.0.0.0 lets the kernel choose.
    pub interface_addr: std::net::Ipv4Addr,
    /// Join the multicast group (off: answer only unicast probes sent to the bind address).
    pub multicast: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 3702,
            bind: std::net::Ipv4Addr::UNSPECIFIED,
            interface_addr: std::net::Ipv4Addr::UNSPECIFIED,
            multicast: true,
        }
    }
}

/// One `[[rtsp.extra_cameras]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraCamera {
    pub id: Ident,
    #[serde(default)]
    pub name: String,
    /// `rtsp://host[:port]/path` of the main stream (H.264), without credentials.
    pub url: String,
    #[serde(default)]
    pub sub_url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<crate::types::Secret>,
    /// Nominal size and rate, reported through ONVIF (the stream itself is not re-encoded).
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
}

fn default_width() -> u32 {
    1920
}
fn default_height() -> u32 {
    1080
}
fn default_fps() -> u32 {
    25
}

fn rtsp_url_ok(url: &str) -> bool {
    let rest = url
        .strip_prefix("rtsp://")
        .or_else(|| url.strip_prefix("rtsps://"));
    match rest {
        Some(r) => {
            let authority = r.split('/').next().unwrap_or("");
            !authority.is_empty() && !authority.contains('@') && !url.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl RtspConfig {
    /// Cross-key checks (called from `Config::validate`).
    pub fn validate(&self, p: &mut Vec<Problem>) {
        if !self.enabled {
            return;
        }
        if !(2..=3600).contains(&self.session_timeout_s) {
            p.push(problem(
                "rtsp.session_timeout_s",
                "must be 2..=3600 seconds",
            ));
        }
        if self.stalled_client_timeout_s > 3600 {
            p.push(problem(
                "rtsp.stalled_client_timeout_s",
                "must be 0 (off) or at most 3600 seconds",
            ));
        }
        if !(500..=60_000).contains(&self.upstream_timeout_ms) {
            p.push(problem(
                "rtsp.upstream_timeout_ms",
                "must be 500..=60000 milliseconds",
            ));
        }
        if self.max_clients_per_mount == 0 {
            p.push(problem("rtsp.max_clients_per_mount", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.onvif_auth_window_s) {
            p.push(problem("rtsp.onvif_auth_window_s", "must be 1..=3600"));
        }
        let d = &self.dashboard;
        if d.enabled {
            if !(320..=3840).contains(&d.width) || !(240..=2160).contains(&d.height) {
                p.push(problem(
                    "rtsp.dashboard.width",
                    "size must be within 320x240..=3840x2160",
                ));
            }
            if !d.width.is_multiple_of(2) || !d.height.is_multiple_of(2) {
                p.push(problem(
                    "rtsp.dashboard.width",
                    "width and height must be even (4:2:0 video)",
                ));
            }
            if !(1..=30).contains(&d.fps) {
                p.push(problem("rtsp.dashboard.fps", "must be 1..=30"));
            }
            if d.page_interval_ms < 1000 {
                p.push(problem(
                    "rtsp.dashboard.page_interval_ms",
                    "must be at least 1000",
                ));
            }
            if !(50..=20_000).contains(&d.bitrate_kbps) {
                p.push(problem("rtsp.dashboard.bitrate_kbps", "must be 50..=20000"));
            }
            if !(1..=600).contains(&d.keyframe_interval_frames) {
                p.push(problem(
                    "rtsp.dashboard.keyframe_interval_frames",
                    "must be 1..=600",
                ));
            }
        }
        if self.thermal.enabled {
            if !(50..=20_000).contains(&self.thermal.bitrate_kbps) {
                p.push(problem("rtsp.thermal.bitrate_kbps", "must be 50..=20000"));
            }
            if !(1..=600).contains(&self.thermal.keyframe_interval_frames) {
                p.push(problem(
                    "rtsp.thermal.keyframe_interval_frames",
                    "must be 1..=600",
                ));
            }
        }
        if !self.device.mac.is_empty() {
            let parts: Vec<&str> = self.device.mac.split(':').collect();
            if parts.len() != 6
                || parts
                    .iter()
                    .any(|x| x.len() != 2 || !x.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                p.push(problem(
                    "rtsp.device.mac",
                    format!("`{}` is not of the form aa:bb:cc:dd:ee:ff", self.device.mac),
                ));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.extra_cameras.iter().enumerate() {
            let key = format!("rtsp.extra_cameras[{i}]");
            if !ids.insert(c.id.as_str()) {
                p.push(problem(&key, format!("duplicate id `{}`", c.id)));
            }
            for (field, url) in [("url", Some(&c.url)), ("sub_url", c.sub_url.as_ref())] {
                if let Some(u) = url
                    && !rtsp_url_ok(u)
                {
                    p.push(problem(
                        &format!("{key}.{field}"),
                        format!("`{u}` is not an rtsp:// URL without credentials"),
                    ));
                }
            }
            if c.password.is_some() && c.username.is_none() {
                p.push(problem(
                    &format!("{key}.password"),
                    "given without username",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let mut c = RtspConfig {
            enabled: true,
            ..RtspConfig::default()
        };
        let mut p = Vec::new();
        c.validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        c.dashboard.fps = 0;
        c.thermal.bitrate_kbps = 10;
        c.device.mac = "zz".into();
        c.extra_cameras.push(ExtraCamera {
            id: "a".parse().unwrap(),
            name: String::new(),
            url: "rtsp://user:pw@cam/x".into(),
            sub_url: None,
            username: None,
            password: None,
            width: 1920,
            height: 1080,
            fps: 25,
        });
        c.validate(&mut p);
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rtsp.dashboard.fps",
                "rtsp.thermal.bitrate_kbps",
                "rtsp.device.mac",
                "rtsp.extra_cameras[0].url"
            ]
        );
    }

    #[test]
    fn parses_from_toml() {
        let c: RtspConfig = toml::from_str(
            r#"
enabled = true
listen = "127.0.0.1:0"
[dashboard]
fps = 2
[thermal]
bitrate_kbps = 400
[[extra_cameras]]
id = "front"
url = "rtsp://127.0.0.1:8554/x"
"#,
        )
        .unwrap();
        assert_eq!(c.dashboard.fps, 2);
        assert_eq!(c.thermal.bitrate_kbps, 400);
        assert!(c.thermal.enabled);
        assert_eq!(c.extra_cameras[0].width, 1920);
        assert!(toml::from_str::<RtspConfig>("bogus = 1").is_err());
    }
}
