//! The streams the worker serves, derived from the configuration: every RTSP, V4L2 and MJPEG
//! camera of `[capture]` and `[[rtsp.extra_cameras]]`, the thermal views, plus the dashboard; and the
//! ONVIF device model describing them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use watchpost_config::Config;
use watchpost_config::capture::{CameraKind, SourceConfig};
use watchpost_contract::capture::{CameraState, CameraStatus, StreamCodec};
use watchpost_onvif::{DeviceInfo, DeviceModel, H264Profile, NetworkInfo, StreamProfile};

/// One upstream camera stream to restream without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Camera id (also the `/cameras/<id>` mount).
    pub camera: String,
    pub name: String,
    /// `main` or `sub`.
    pub variant: &'static str,
    /// Mount path, e.g. `/cameras/front` or `/cameras/front/sub`.
    pub path: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tcp: bool,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// For cameras the capture worker owns (V4L2): the socket of its H.264 byte-stream
    /// `shmsink`; `url` is then empty and the mount reads with `shmsrc`.
    pub shm_socket: Option<PathBuf>,
}

/// Where the capture worker shares the encoded stream of camera `id` (a GStreamer `shmsink`
/// control socket; see docs/capture.md "Restream branch").
pub fn restream_socket(config: &Config, id: &str) -> PathBuf {
    config
        .system
        .data_dir
        .join("run")
        .join("restream")
        .join(format!("{id}.sock"))
}

impl Upstream {
    /// ONVIF profile token.
    pub fn token(&self) -> String {
        format!("cam_{}_{}", self.camera, self.variant)
    }
}

/// The upstream streams of every configured RTSP, V4L2 and HTTP MJPEG camera, main before sub.
pub fn upstreams(config: &Config) -> Vec<Upstream> {
    let mut v = Vec::new();
    for cam in &config.capture.cameras {
        if !cam.enabled {
            continue;
        }
        let name = if cam.name.is_empty() {
            cam.id.to_string()
        } else {
            cam.name.clone()
        };
        // A V4L2 device can only be opened by one process, and an MJPEG camera should not be
        // read (and encoded) twice: the capture worker owns both and shares the H.264 it
        // records (passed through or encoded once) over shared memory. Thermal cameras are
        // served at `/thermal/<id>` instead.
        let shared = match &cam.source {
            SourceConfig::V4l2 {
                width, height, fps, ..
            } => Some((*width, *height, *fps)),
            SourceConfig::HttpMjpeg { fps, .. } => Some((None, None, Some(*fps))),
            _ => None,
        };
        if let Some((width, height, fps)) = shared
            && cam.kind != CameraKind::Thermal
        {
            v.push(Upstream {
                camera: cam.id.to_string(),
                name: name.clone(),
                variant: "main",
                path: format!("/cameras/{}", cam.id),
                url: String::new(),
                username: None,
                password: None,
                tcp: true,
                width: width.unwrap_or(1920),
                height: height.unwrap_or(1080),
                fps: fps.unwrap_or(30),
                shm_socket: Some(restream_socket(config, cam.id.as_str())),
            });
            continue;
        }
        let SourceConfig::Rtsp {
            url,
            sub_url,
            transport,
            ..
        } = &cam.source
        else {
            continue;
        };
        let tcp = matches!(transport, watchpost_config::capture::RtspTransport::Tcp);
        let (username, password) = match &cam.credentials {
            Some(c) => (
                Some(c.username.clone()),
                Some(c.password.expose().to_string()),
            ),
            None => (None, None),
        };
        push(
            &mut v,
            cam.id.as_str(),
            &name,
            url,
            sub_url.as_deref(),
            (username, password),
            tcp,
            (1920, 1080, 25),
        );
    }
    for cam in &config.rtsp.extra_cameras {
        if v.iter().any(|u| u.camera == cam.id.as_str()) {
            continue;
        }
        let name = if cam.name.is_empty() {
            cam.id.to_string()
        } else {
            cam.name.clone()
        };
        push(
            &mut v,
            cam.id.as_str(),
            &name,
            &cam.url,
            cam.sub_url.as_deref(),
            (
                cam.username.clone(),
                cam.password.as_ref().map(|p| p.expose().to_string()),
            ),
            true,
            (cam.width, cam.height, cam.fps),
        );
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn push(
    v: &mut Vec<Upstream>,
    id: &str,
    name: &str,
    url: &str,
    sub_url: Option<&str>,
    (username, password): (Option<String>, Option<String>),
    tcp: bool,
    (width, height, fps): (u32, u32, u32),
) {
    v.push(Upstream {
        camera: id.to_string(),
        name: name.to_string(),
        variant: "main",
        path: format!("/cameras/{id}"),
        url: url.to_string(),
        username: username.clone(),
        password: password.clone(),
        tcp,
        width,
        height,
        fps,
        shm_socket: None,
    });
    if let Some(sub) = sub_url {
        v.push(Upstream {
            camera: id.to_string(),
            name: format!("{name} (sub)"),
            variant: "sub",
            path: format!("/cameras/{id}/sub"),
            url: sub.to_string(),
            username,
            password,
            tcp,
            width: 640,
            height: 360,
            fps,
            shm_socket: None,
        });
    }
}

/// The colourised view of one thermal camera, read from the capture worker's view ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThermalView {
    pub camera: String,
    pub name: String,
    /// `/thermal/<id>`.
    pub path: String,
    /// `<frames_dir>/<id>.view.ring`.
    pub ring: PathBuf,
    /// The size and rate of the ring when it exists at start, else the usual Lepton view
    /// (160×120 enlarged to 640×480) at the source's rate. Used for the ONVIF profile; the
    /// stream itself always takes the ring's current layout.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl ThermalView {
    /// ONVIF profile token.
    pub fn token(&self) -> String {
        format!("thermal_{}", self.camera)
    }
}

/// The thermal cameras of `[capture]` (enabled ones), when `[rtsp.thermal]` is on.
pub fn thermal_views(config: &Config) -> Vec<ThermalView> {
    if !config.rtsp.thermal.enabled {
        return Vec::new();
    }
    let frames = config.capture.frames_dir(&config.system.data_dir);
    config
        .capture
        .cameras
        .iter()
        .filter(|c| c.enabled && c.kind == CameraKind::Thermal)
        .map(|c| {
            let ring = frames.join(format!("{}.view.ring", c.id));
            // The rate the capture worker gives the ring (its thermal hook's rule).
            let source_fps = match &c.source {
                SourceConfig::ThermalTcp { fps, .. } => *fps,
                SourceConfig::V4l2 { fps, .. } => fps.unwrap_or(9),
                _ => 9,
            };
            let (width, height, fps) = match watchpost_frame_ring::RingReader::open(&ring) {
                Ok(r) => {
                    let l = r.layout();
                    (l.width, l.height, l.fps_num / l.fps_den.max(1))
                }
                Err(_) => (640, 480, source_fps),
            };
            ThermalView {
                camera: c.id.to_string(),
                name: if c.name.is_empty() {
                    format!("{} (thermal)", c.id)
                } else {
                    format!("{} (thermal)", c.name)
                },
                path: format!("/thermal/{}", c.id),
                ring,
                width,
                height,
                fps: fps.max(1),
            }
        })
        .collect()
}

/// The address a LAN peer would reach us at: the configured one, the listen address when it
/// is specific, else the source address the kernel picks towards the discovery group (a UDP
/// "connect" sends nothing).
pub fn advertised_host(config: &Config) -> String {
    let d = &config.rtsp.device;
    if !d.advertise_host.is_empty() {
        return d.advertise_host.clone();
    }
    let ip = config.rtsp.onvif_listen.ip();
    if !ip.is_unspecified() {
        return ip.to_string();
    }
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| {
        s.connect(SocketAddr::from(([239, 255, 255, 250], 3702)))?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip().to_string(),
        _ => "127.0.0.1".into(),
    }
}

/// The interface to report: configured, else the first non-loopback one.
fn interface(config: &Config) -> String {
    let configured = &config.rtsp.device.interface;
    if !configured.is_empty() {
        return configured.clone();
    }
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().next().unwrap_or_else(|| "lo".into())
}

fn mac_of(interface: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    let mac = text.trim().to_ascii_lowercase();
    (mac.len() == 17 && mac != "00:00:00:00:00:00").then_some(mac)
}

/// The ONVIF device model for this configuration.
pub fn device_model(
    config: &Config,
    ups: &[Upstream],
    thermal: &[ThermalView],
    http_port: u16,
    rtsp_port: u16,
    version: &str,
) -> DeviceModel {
    let d = &config.rtsp.device;
    let iface = interface(config);
    let mac = if d.mac.is_empty() {
        mac_of(&iface).unwrap_or_else(|| "02:00:00:00:00:01".into())
    } else {
        d.mac.to_ascii_lowercase()
    };
    let host = advertised_host(config);
    let ipv4 = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some((a, 24)),
        _ => None,
    };
    let mut profiles: Vec<StreamProfile> = ups
        .iter()
        .map(|u| StreamProfile {
            token: u.token(),
            name: u.name.clone(),
            source_token: format!("cam_{}", u.camera),
            width: u.width,
            height: u.height,
            framerate: u.fps,
            bitrate_kbps: if u.variant == "main" { 4096 } else { 512 },
            gov_length: u.fps.max(1) * 2,
            h264_profile: H264Profile::Main,
            rtsp_path: u.path.clone(),
            snapshot_path: format!("/onvif/snapshot/{}.jpg", u.token()),
        })
        .collect();
    let tc = &config.rtsp.thermal;
    profiles.extend(thermal.iter().map(|t| StreamProfile {
        token: t.token(),
        name: t.name.clone(),
        source_token: t.token(),
        width: t.width,
        height: t.height,
        framerate: t.fps,
        bitrate_kbps: tc.bitrate_kbps,
        gov_length: tc.keyframe_interval_frames,
        h264_profile: H264Profile::Baseline,
        rtsp_path: t.path.clone(),
        snapshot_path: format!("/onvif/snapshot/{}.jpg", t.token()),
    }));
    let dash = &config.rtsp.dashboard;
    if dash.enabled {
        profiles.push(StreamProfile {
            token: "dashboard".into(),
            name: "Sensor dashboard".into(),
            source_token: "dashboard".into(),
            width: dash.width,
            height: dash.height,
            framerate: dash.fps,
            bitrate_kbps: dash.bitrate_kbps,
            gov_length: dash.keyframe_interval_frames,
            h264_profile: H264Profile::Baseline,
            rtsp_path: "/dashboard".into(),
            snapshot_path: "/onvif/snapshot/dashboard.jpg".into(),
        });
    }
    let serial = if d.serial_number.is_empty() {
        mac.replace(':', "")
    } else {
        d.serial_number.clone()
    };
    DeviceModel {
        info: DeviceInfo {
            manufacturer: d.manufacturer.clone(),
            model: d.model.clone(),
            firmware_version: version.to_string(),
            serial_number: serial,
            hardware_id: config.system.board.clone(),
        },
        network: NetworkInfo {
            hostname: std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "watchpost".into()),
            interface_name: iface,
            mac: mac.clone(),
            ipv4,
            mtu: 1500,
        },
        scopes: DeviceModel::default_scopes(&d.name, &d.model, &d.location, &mac),
        profiles,
        advertised_host: host,
        http_port,
        rtsp_port,
    }
}

/// Puts what the capture worker measured on camera `status.id`'s recorded stream into its
/// main profile: size, H.264 profile and keyframe interval (from the stream facts), frame rate
/// and bit rate (while the camera delivers). Returns whether the profile changed.
pub fn apply_measured(model: &mut DeviceModel, status: &CameraStatus) -> bool {
    let token = format!("cam_{}_main", status.id);
    let Some(p) = model.profiles.iter_mut().find(|p| p.token == token) else {
        return false;
    };
    let before = p.clone();
    if let Some(f) = &status.stream
        && f.codec == StreamCodec::H264
    {
        if f.width > 0 && f.height > 0 {
            (p.width, p.height) = (f.width, f.height);
        }
        if let Some(profile) = f.h264_profile_idc.and_then(H264Profile::from_profile_idc) {
            p.h264_profile = profile;
        }
        if let Some(n) = f.keyframe_interval_frames.filter(|n| *n > 0) {
            p.gov_length = n;
        }
    }
    if status.state == CameraState::Online {
        let fps = status.input_fps.round();
        if fps >= 1.0 {
            p.framerate = fps as u32;
        }
        let kbps = (status.bitrate_bps / 1000.0).round();
        if kbps >= 1.0 {
            p.bitrate_kbps = kbps as u32;
        }
    }
    *p != before
}

/// A stable WS-Discovery endpoint reference derived from the MAC address.
pub fn endpoint_uuid(mac: &str) -> String {
    let hex: String = mac.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let hex = format!("{hex:0>12}");
    format!(
        "urn:uuid:77617463-6870-4f73-8074-{}",
        &hex[hex.len() - 12..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_from_capture_and_extra_cameras() {
        let config: Config = toml::from_str(
            r#"
[capture]
[[capture.cameras]]
id = "gate"
name = "Gate"
source = { type = "rtsp", url = "rtsp://10.0.0.5/main", sub_url = "rtsp://10.0.0.5/sub" }
credentials = { username = "viewer", password = "pw" }
[[capture.cameras]]
id = "usb"
source = { type = "v4l2", device = "/dev/video0" }
[[capture.cameras]]
id = "door"
source = { type = "http_mjpeg", url = "http://10.0.0.9/video.mjpg", fps = 5 }
[rtsp]
[[rtsp.extra_cameras]]
id = "lab"
url = "rtsp://127.0.0.1:9000/x"
width = 1280
height = 720
fps = 10
"#,
        )
        .unwrap();
        let ups = upstreams(&config);
        let paths: Vec<&str> = ups.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/cameras/gate",
                "/cameras/gate/sub",
                "/cameras/usb",
                "/cameras/door",
                "/cameras/lab"
            ]
        );
        assert!(
            ups[3]
                .shm_socket
                .as_ref()
                .unwrap()
                .ends_with("run/restream/door.sock")
        );
        assert_eq!(ups[3].fps, 5);
        assert_eq!(ups[2].url, "");
        assert!(
            ups[2]
                .shm_socket
                .as_ref()
                .unwrap()
                .ends_with("run/restream/usb.sock")
        );
        assert_eq!(ups[0].username.as_deref(), Some("viewer"));
        assert_eq!(ups[1].token(), "cam_gate_sub");
        assert_eq!((ups[4].width, ups[4].height, ups[4].fps), (1280, 720, 10));
        let model = device_model(&config, &ups, &[], 8000, 8554, "1.0");
        let tokens: Vec<&str> = model.profiles.iter().map(|p| p.token.as_str()).collect();
        assert_eq!(
            tokens,
            [
                "cam_gate_main",
                "cam_gate_sub",
                "cam_usb_main",
                "cam_door_main",
                "cam_lab_main",
                "dashboard"
            ]
        );
    }

    #[test]
    fn thermal_views_follow_the_ring() {
        let dir = std::env::temp_dir().join(format!("wp-rtsp-thermal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config: Config = toml::from_str(&format!(
            r#"
[capture]
frames_dir = "{}"
[[capture.cameras]]
id = "lepton"
kind = "thermal"
source = {{ type = "thermal_tcp", address = "127.0.0.1:1", fps = 8 }}
thermal = {{ format = "centikelvin16" }}
[[capture.cameras]]
id = "split"
name = "Boiler"
kind = "thermal"
source = {{ type = "thermal_tcp", address = "127.0.0.1:2", fps = 9 }}
thermal = {{ format = "split_frame" }}
[[capture.cameras]]
id = "gate"
source = {{ type = "rtsp", url = "rtsp://10.0.0.5/main" }}
"#,
            dir.display()
        ))
        .unwrap();
        // One ring exists already (written by the capture worker): its layout wins.
        let layout = watchpost_frame_ring::RingLayout::new(
            "split",
            480,
            360,
            watchpost_frame_ring::PixelFormat::Rgb24,
            2,
            6,
        );
        let ring = dir.join("split.view.ring");
        watchpost_frame_ring::RingWriter::create(&ring, layout).unwrap();
        let views = thermal_views(&config);
        let _ = std::fs::remove_dir_all(&dir);
        let got: Vec<(&str, &str, u32, u32, u32)> = views
            .iter()
            .map(|v| (v.path.as_str(), v.name.as_str(), v.width, v.height, v.fps))
            .collect();
        assert_eq!(
            got,
            [
                ("/thermal/lepton", "lepton (thermal)", 640, 480, 8),
                ("/thermal/split", "Boiler (thermal)", 480, 360, 6),
            ]
        );
        assert_eq!(views[1].ring, ring);
        let ups = upstreams(&config);
        let model = device_model(&config, &ups, &views, 8000, 8554, "1.0");
        let tokens: Vec<&str> = model.profiles.iter().map(|p| p.token.as_str()).collect();
        assert_eq!(
            tokens,
            [
                "cam_gate_main",
                "thermal_lepton",
                "thermal_split",
                "dashboard"
            ]
        );
        let t = &model.profiles[1];
        assert_eq!(
            (t.rtsp_path.as_str(), t.snapshot_path.as_str()),
            ("/thermal/lepton", "/onvif/snapshot/thermal_lepton.jpg")
        );
    }

    #[test]
    fn measured_stream_facts_replace_the_nominal_ones() {
        let config: Config = toml::from_str(
            r#"
[capture]
[[capture.cameras]]
id = "yard"
source = { type = "rtsp", url = "rtsp://10.0.0.5/main", sub_url = "rtsp://10.0.0.5/sub" }
"#,
        )
        .unwrap();
        let ups = upstreams(&config);
        let mut model = device_model(&config, &ups, &[], 8000, 8554, "1.0");
        let main = |m: &DeviceModel| {
            let p = m.profile("cam_yard_main").unwrap();
            (
                p.width,
                p.height,
                p.framerate,
                p.bitrate_kbps,
                p.gov_length,
                p.h264_profile,
            )
        };
        assert_eq!(main(&model), (1920, 1080, 25, 4096, 50, H264Profile::Main));
        let mut status: CameraStatus = serde_json::from_str(
            r#"{"id":"yard","name":"Yard","state":"online","reason":null,"input_fps":14.9,
            "bitrate_bps":812345.0,"frames_dropped":0,"reconnects":0,"recording":true,
            "recording_bytes_per_s":0.0,"disk_used_bytes":0,"last_frame_at":null,
            "recording_error":null,"detect_latency_ms":null,"updated_unix_ms":1,
            "stream":{"codec":"h264","width":1280,"height":720,"h264_profile_idc":100,
            "keyframe_interval_frames":30}}"#,
        )
        .unwrap();
        assert!(apply_measured(&mut model, &status));
        assert_eq!(main(&model), (1280, 720, 15, 812, 30, H264Profile::High));
        assert!(!apply_measured(&mut model, &status));
        // The sub stream is not what the capture worker measured.
        assert_eq!(model.profile("cam_yard_sub").unwrap().width, 640);
        // An offline camera keeps its last measured rate (it delivers no frames now).
        status.state = CameraState::Offline;
        status.input_fps = 0.0;
        status.bitrate_bps = 0.0;
        assert!(!apply_measured(&mut model, &status));
        assert_eq!(main(&model).2, 15);
    }

    #[test]
    fn endpoint_is_stable_per_mac() {
        assert_eq!(
            endpoint_uuid("02:00:00:00:00:42"),
            "urn:uuid:77617463-6870-4f73-8074-020000000042"
        );
    }
}
