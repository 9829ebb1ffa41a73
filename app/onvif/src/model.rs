//! What the device says about itself: identity, network, scopes and its media profiles.
//! The worker builds a [`DeviceModel`] from the configuration (and what it learns from the
//! streams) and hands it to the [`crate::OnvifService`].

/// `GetDeviceInformation` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub model: String,
    pub firmware_version: String,
    pub serial_number: String,
    pub hardware_id: String,
}

/// The network interface reported by `GetNetworkInterfaces` and the host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub hostname: String,
    pub interface_name: String,
    /// `aa:bb:cc:dd:ee:ff`. Home Assistant uses it as the device's unique id.
    pub mac: String,
    /// The interface's IPv4 address and prefix length, when known.
    pub ipv4: Option<(std::net::Ipv4Addr, u8)>,
    pub mtu: u32,
}

/// H.264 profile names as ONVIF spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Profile {
    Baseline,
    Main,
    Extended,
    High,
}

impl H264Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            H264Profile::Baseline => "Baseline",
            H264Profile::Main => "Main",
            H264Profile::Extended => "Extended",
            H264Profile::High => "High",
        }
    }

    /// The profile of an H.264 stream's `profile_idc` (66 Baseline, 77 Main, 88 Extended;
    /// the High profiles, 100 and up, as High).
    pub fn from_profile_idc(idc: u8) -> Option<Self> {
        match idc {
            66 => Some(H264Profile::Baseline),
            77 => Some(H264Profile::Main),
            88 => Some(H264Profile::Extended),
            100..=255 => Some(H264Profile::High),
            _ => None,
        }
    }
}

/// One media profile: one RTSP mount with its H.264 parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamProfile {
    /// Profile token, e.g. `cam_front_main`.
    pub token: String,
    pub name: String,
    /// The video source this stream comes from (a camera, or the dashboard renderer).
    pub source_token: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
    pub gov_length: u32,
    pub h264_profile: H264Profile,
    /// Path of the RTSP mount, starting with `/`.
    pub rtsp_path: String,
    /// Path of the JPEG snapshot on the ONVIF HTTP listener, starting with `/`.
    pub snapshot_path: String,
}

impl StreamProfile {
    /// Token of the video source configuration (one per source).
    pub fn source_config_token(&self) -> String {
        format!("vsc_{}", self.source_token)
    }
    /// Token of the video encoder configuration (one per profile).
    pub fn encoder_token(&self) -> String {
        format!("vec_{}", self.token)
    }
}

/// Everything the services answer from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceModel {
    pub info: DeviceInfo,
    pub network: NetworkInfo,
    /// Scope URIs (`onvif://www.onvif.org/...`), published in discovery and GetScopes.
    pub scopes: Vec<String>,
    pub profiles: Vec<StreamProfile>,
    /// Host (IP or name, no port) used in URIs when the request carries no usable Host header.
    pub advertised_host: String,
    /// Port of the ONVIF HTTP listener.
    pub http_port: u16,
    /// Port of the RTSP server.
    pub rtsp_port: u16,
}

impl DeviceModel {
    pub fn profile(&self, token: &str) -> Option<&StreamProfile> {
        self.profiles.iter().find(|p| p.token == token)
    }

    /// One entry per distinct video source: the first profile naming it (main streams are
    /// listed before sub streams, so it carries the source's full resolution).
    pub fn sources(&self) -> Vec<&StreamProfile> {
        let mut seen = std::collections::HashSet::new();
        self.profiles
            .iter()
            .filter(|p| seen.insert(p.source_token.as_str()))
            .collect()
    }

    /// The standard scope set for a device with this name, model and location.
    pub fn default_scopes(name: &str, hardware: &str, location: &str, mac: &str) -> Vec<String> {
        let mut v = vec![
            "onvif://www.onvif.org/type/video_encoder".to_string(),
            "onvif://www.onvif.org/type/Network_Video_Transmitter".to_string(),
            "onvif://www.onvif.org/Profile/Streaming".to_string(),
            format!("onvif://www.onvif.org/name/{}", escape_scope(name)),
            format!("onvif://www.onvif.org/hardware/{}", escape_scope(hardware)),
            format!("onvif://www.onvif.org/location/{}", escape_scope(location)),
        ];
        if !mac.is_empty() {
            v.push(format!("onvif://www.onvif.org/mac/{}", escape_scope(mac)));
        }
        v
    }
}

/// Percent-escapes everything but unreserved URI characters and `:`, so a scope stays one URI with
/// no spaces (scopes are space-separated in discovery messages).
pub fn escape_scope(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    out
}

/// Per-request facts the I/O layer supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCtx {
    /// The HTTP `Host` header, if any (used so that URIs point where the client reached us).
    pub host: Option<String>,
    /// Current time, Unix seconds (UTC).
    pub now_unix: i64,
}

/// The host part of a `Host` header (`1.2.3.4:80` → `1.2.3.4`, `[::1]:80` → `[::1]`), if it
/// contains only characters a host name or address literal may have.
pub fn host_part(header: &str) -> Option<&str> {
    let header = header.trim();
    let host = if header.starts_with('[') {
        &header[..=header.find(']')?]
    } else {
        match header.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => header,
        }
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

impl DeviceModel {
    fn host<'a>(&'a self, ctx: &'a RequestCtx) -> &'a str {
        ctx.host
            .as_deref()
            .and_then(host_part)
            .unwrap_or(self.advertised_host.as_str())
    }

    /// `http://host:port` of the ONVIF listener as the client sees it.
    pub fn http_base(&self, ctx: &RequestCtx) -> String {
        format!("http://{}:{}", self.host(ctx), self.http_port)
    }

    pub fn device_xaddr(&self, ctx: &RequestCtx) -> String {
        format!("{}/onvif/device_service", self.http_base(ctx))
    }

    pub fn media_xaddr(&self, ctx: &RequestCtx) -> String {
        format!("{}/onvif/media_service", self.http_base(ctx))
    }

    pub fn stream_uri(&self, p: &StreamProfile, ctx: &RequestCtx) -> String {
        format!(
            "rtsp://{}:{}{}",
            self.host(ctx),
            self.rtsp_port,
            p.rtsp_path
        )
    }

    pub fn snapshot_uri(&self, p: &StreamProfile, ctx: &RequestCtx) -> String {
        format!("{}{}", self.http_base(ctx), p.snapshot_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(host_part("127.0.0.1:8000"), Some("127.0.0.1"));
        assert_eq!(host_part("[::1]:8000"), Some("[::1]"));
        assert_eq!(host_part("cam.local"), Some("cam.local"));
        assert_eq!(host_part("evil\"<x>:80"), None);
        assert_eq!(host_part("a:b"), None);
    }

    #[test]
    fn scopes_are_escaped() {
        let s = DeviceModel::default_scopes("Front door", "WP-1", "", "aa:bb");
        assert!(s.contains(&"onvif://www.onvif.org/name/Front%20door".to_string()));
        assert!(s.contains(&"onvif://www.onvif.org/mac/aa:bb".to_string()));
        assert!(s.iter().all(|x| !x.contains(' ')));
    }
}
