//! Media (ver10) service responses (`trt:`), in the element order the ONVIF schema fixes.

use crate::model::{DeviceModel, RequestCtx, StreamProfile};
use crate::xml::XmlWriter;

pub(crate) fn service_capabilities_body(w: &mut XmlWriter, m: &DeviceModel, element: &str) {
    w.open(
        element,
        &[
            ("SnapshotUri", "true"),
            ("Rotation", "false"),
            ("VideoSourceMode", "false"),
            ("OSD", "false"),
        ],
    );
    let max = m.profiles.len().to_string();
    w.empty(
        "trt:ProfileCapabilities",
        &[("MaximumNumberOfProfiles", max.as_str())],
    );
    w.empty(
        "trt:StreamingCapabilities",
        &[
            ("RTPMulticast", "false"),
            ("RTP_TCP", "true"),
            ("RTP_RTSP_TCP", "true"),
            ("NonAggregateControl", "false"),
            ("NoRTSPStreaming", "false"),
        ],
    );
    w.close(element);
}

pub(crate) fn service_capabilities(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("trt:GetServiceCapabilitiesResponse", &[]);
    service_capabilities_body(w, m, "trt:Capabilities");
    w.close("trt:GetServiceCapabilitiesResponse");
}

fn use_count_source(m: &DeviceModel, source: &str) -> usize {
    m.profiles
        .iter()
        .filter(|p| p.source_token == source)
        .count()
}

fn source_config(w: &mut XmlWriter, m: &DeviceModel, p: &StreamProfile, element: &str) {
    let token = p.source_config_token();
    w.open(element, &[("token", token.as_str())]);
    w.leaf("tt:Name", &token);
    w.num("tt:UseCount", use_count_source(m, &p.source_token));
    w.leaf("tt:SourceToken", &p.source_token);
    let (width, height) = (p.width.to_string(), p.height.to_string());
    w.empty(
        "tt:Bounds",
        &[
            ("x", "0"),
            ("y", "0"),
            ("width", width.as_str()),
            ("height", height.as_str()),
        ],
    );
    w.close(element);
}

fn encoder_config(w: &mut XmlWriter, p: &StreamProfile, element: &str) {
    let token = p.encoder_token();
    w.open(element, &[("token", token.as_str())]);
    w.leaf("tt:Name", &token);
    w.num("tt:UseCount", 1);
    w.leaf("tt:Encoding", "H264");
    w.open("tt:Resolution", &[]);
    w.num("tt:Width", p.width);
    w.num("tt:Height", p.height);
    w.close("tt:Resolution");
    w.num("tt:Quality", 5);
    w.open("tt:RateControl", &[]);
    w.num("tt:FrameRateLimit", p.framerate);
    w.num("tt:EncodingInterval", 1);
    w.num("tt:BitrateLimit", p.bitrate_kbps);
    w.close("tt:RateControl");
    w.open("tt:H264", &[]);
    w.num("tt:GovLength", p.gov_length);
    w.leaf("tt:H264Profile", p.h264_profile.as_str());
    w.close("tt:H264");
    w.open("tt:Multicast", &[]);
    w.open("tt:Address", &[]);
    w.leaf("tt:Type", "IPv4");
    w.leaf("tt:IPv4Address", "0.0.0.0");
    w.close("tt:Address");
    w.num("tt:Port", 0);
    w.num("tt:TTL", 1);
    w.boolean("tt:AutoStart", false);
    w.close("tt:Multicast");
    w.leaf("tt:SessionTimeout", "PT60S");
    w.close(element);
}

fn profile(w: &mut XmlWriter, m: &DeviceModel, p: &StreamProfile, element: &str) {
    w.open(element, &[("token", p.token.as_str()), ("fixed", "true")]);
    w.leaf("tt:Name", &p.name);
    source_config(w, m, p, "tt:VideoSourceConfiguration");
    encoder_config(w, p, "tt:VideoEncoderConfiguration");
    w.close(element);
}

pub(crate) fn profiles(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("trt:GetProfilesResponse", &[]);
    for p in &m.profiles {
        profile(w, m, p, "trt:Profiles");
    }
    w.close("trt:GetProfilesResponse");
}

pub(crate) fn single_profile(w: &mut XmlWriter, m: &DeviceModel, p: &StreamProfile) {
    w.open("trt:GetProfileResponse", &[]);
    profile(w, m, p, "trt:Profile");
    w.close("trt:GetProfileResponse");
}

fn media_uri(w: &mut XmlWriter, response: &str, uri: &str) {
    w.open(response, &[]);
    w.open("trt:MediaUri", &[]);
    w.leaf("tt:Uri", uri);
    w.boolean("tt:InvalidAfterConnect", false);
    w.boolean("tt:InvalidAfterReboot", false);
    w.leaf("tt:Timeout", "PT0S");
    w.close("trt:MediaUri");
    w.close(response);
}

pub(crate) fn stream_uri(w: &mut XmlWriter, m: &DeviceModel, p: &StreamProfile, ctx: &RequestCtx) {
    media_uri(w, "trt:GetStreamUriResponse", &m.stream_uri(p, ctx));
}

pub(crate) fn snapshot_uri(
    w: &mut XmlWriter,
    m: &DeviceModel,
    p: &StreamProfile,
    ctx: &RequestCtx,
) {
    media_uri(w, "trt:GetSnapshotUriResponse", &m.snapshot_uri(p, ctx));
}

pub(crate) fn video_sources(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("trt:GetVideoSourcesResponse", &[]);
    for p in m.sources() {
        w.open("trt:VideoSources", &[("token", p.source_token.as_str())]);
        w.num("tt:Framerate", p.framerate);
        w.open("tt:Resolution", &[]);
        w.num("tt:Width", p.width);
        w.num("tt:Height", p.height);
        w.close("tt:Resolution");
        w.close("trt:VideoSources");
    }
    w.close("trt:GetVideoSourcesResponse");
}

/// `GetVideoSourceConfigurations` and the compatible-list variant: one per source.
pub(crate) fn source_configs<'a>(
    w: &mut XmlWriter,
    m: &DeviceModel,
    response: &str,
    list: impl IntoIterator<Item = &'a StreamProfile>,
) {
    w.open(response, &[]);
    for p in list {
        source_config(w, m, p, "trt:Configurations");
    }
    w.close(response);
}

pub(crate) fn source_config_single(w: &mut XmlWriter, m: &DeviceModel, p: &StreamProfile) {
    w.open("trt:GetVideoSourceConfigurationResponse", &[]);
    source_config(w, m, p, "trt:Configuration");
    w.close("trt:GetVideoSourceConfigurationResponse");
}

pub(crate) fn source_config_options(w: &mut XmlWriter, m: &DeviceModel) {
    let (width, height) = m
        .sources()
        .iter()
        .fold((0, 0), |(w, h), p| (w.max(p.width), h.max(p.height)));
    w.open("trt:GetVideoSourceConfigurationOptionsResponse", &[]);
    w.open("trt:Options", &[]);
    w.open("tt:BoundsRange", &[]);
    // Sources are fixed: the full frame is the only bounds offered.
    range(w, "tt:XRange", 0, 0);
    range(w, "tt:YRange", 0, 0);
    range(w, "tt:WidthRange", width, width);
    range(w, "tt:HeightRange", height, height);
    w.close("tt:BoundsRange");
    for p in m.sources() {
        w.leaf("tt:VideoSourceTokensAvailable", &p.source_token);
    }
    w.close("trt:Options");
    w.close("trt:GetVideoSourceConfigurationOptionsResponse");
}

pub(crate) fn encoder_configs<'a>(
    w: &mut XmlWriter,
    response: &str,
    list: impl IntoIterator<Item = &'a StreamProfile>,
) {
    w.open(response, &[]);
    for p in list {
        encoder_config(w, p, "trt:Configurations");
    }
    w.close(response);
}

pub(crate) fn encoder_config_single(w: &mut XmlWriter, p: &StreamProfile) {
    w.open("trt:GetVideoEncoderConfigurationResponse", &[]);
    encoder_config(w, p, "trt:Configuration");
    w.close("trt:GetVideoEncoderConfigurationResponse");
}

/// Options for the given profiles (all of them when the request named none).
pub(crate) fn encoder_options(w: &mut XmlWriter, list: &[&StreamProfile]) {
    let max_fps = list.iter().map(|p| p.framerate).max().unwrap_or(1).max(1);
    let max_gov = list.iter().map(|p| p.gov_length).max().unwrap_or(1).max(1);
    let mut resolutions: Vec<(u32, u32)> = list.iter().map(|p| (p.width, p.height)).collect();
    resolutions.dedup();
    let mut h264_profiles: Vec<&str> = list.iter().map(|p| p.h264_profile.as_str()).collect();
    h264_profiles.sort_unstable();
    h264_profiles.dedup();
    w.open("trt:GetVideoEncoderConfigurationOptionsResponse", &[]);
    w.open("trt:Options", &[]);
    range(w, "tt:QualityRange", 0, 10);
    w.open("tt:H264", &[]);
    for (width, height) in resolutions {
        w.open("tt:ResolutionsAvailable", &[]);
        w.num("tt:Width", width);
        w.num("tt:Height", height);
        w.close("tt:ResolutionsAvailable");
    }
    range(w, "tt:GovLengthRange", 1, max_gov);
    range(w, "tt:FrameRateRange", 1, max_fps);
    range(w, "tt:EncodingIntervalRange", 1, 1);
    for p in h264_profiles {
        w.leaf("tt:H264ProfilesSupported", p);
    }
    w.close("tt:H264");
    w.close("trt:Options");
    w.close("trt:GetVideoEncoderConfigurationOptionsResponse");
}

fn range(w: &mut XmlWriter, element: &str, min: u32, max: u32) {
    w.open(element, &[]);
    w.num("tt:Min", min);
    w.num("tt:Max", max);
    w.close(element);
}

pub(crate) fn guaranteed_instances(w: &mut XmlWriter) {
    w.open(
        "trt:GetGuaranteedNumberOfVideoEncoderInstancesResponse",
        &[],
    );
    w.num("trt:TotalNumber", 1);
    w.num("trt:H264", 1);
    w.close("trt:GetGuaranteedNumberOfVideoEncoderInstancesResponse");
}

pub(crate) fn empty_list(w: &mut XmlWriter, response: &str) {
    let name = format!("trt:{response}");
    w.open(&name, &[]);
    w.close(&name);
}
