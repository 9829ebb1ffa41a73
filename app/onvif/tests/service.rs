//! The services through their public API: each response is parsed back and checked.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use base64::Engine as _;
use watchpost_onvif::ns;
use watchpost_onvif::xml::{self, Element, Limits};
use watchpost_onvif::{
    AuthPolicy, Authenticator, DeviceInfo, DeviceModel, H264Profile, NetworkInfo, OnvifService,
    Outcome, RequestCtx, StreamProfile, password_digest,
};

const NOW: i64 = 1_795_000_000;

fn profile(token: &str, source: &str, w: u32, h: u32, path: &str) -> StreamProfile {
    StreamProfile {
        token: token.into(),
        name: token.into(),
        source_token: source.into(),
        width: w,
        height: h,
        framerate: 25,
        bitrate_kbps: 4000,
        gov_length: 50,
        h264_profile: H264Profile::Main,
        rtsp_path: path.into(),
        snapshot_path: format!("/onvif/snapshot/{token}.jpg"),
    }
}

fn model() -> DeviceModel {
    DeviceModel {
        info: DeviceInfo {
            manufacturer: "Watchpost".into(),
            model: "WP-1".into(),
            firmware_version: "0.1.0".into(),
            serial_number: "SN1".into(),
            hardware_id: "sim".into(),
        },
        network: NetworkInfo {
            hostname: "watchpost".into(),
            interface_name: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            ipv4: Some(("192.0.2.10".parse().unwrap(), 24)),
            mtu: 1500,
        },
        scopes: DeviceModel::default_scopes("Watchpost", "WP-1", "lab", "02:00:00:00:00:01"),
        profiles: vec![
            profile("cam_front_main", "cam_front", 1920, 1080, "/cameras/front"),
            profile("cam_front_sub", "cam_front", 640, 360, "/cameras/front/sub"),
            profile("dashboard", "dashboard", 1920, 1080, "/dashboard"),
        ],
        advertised_host: "192.0.2.10".into(),
        http_port: 8000,
        rtsp_port: 8554,
    }
}

fn service() -> OnvifService {
    let users = HashMap::from([("admin".to_string(), "secret-pw".to_string())]);
    OnvifService::new(
        model(),
        Authenticator::new(users, AuthPolicy::default()),
        true,
    )
}

fn ctx() -> RequestCtx {
    RequestCtx {
        host: Some("127.0.0.1:8000".into()),
        now_unix: NOW,
    }
}

fn created() -> String {
    time::OffsetDateTime::from_unix_timestamp(NOW)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn header(user: &str, password: &str, nonce: &[u8]) -> String {
    let created = created();
    let digest = password_digest(nonce, &created, password);
    let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
    format!(
        r#"<s:Header><wsse:Security xmlns:wsse="{}" xmlns:wsu="{}"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username><wsse:Password Type="{}">{digest}</wsse:Password><wsse:Nonce>{nonce}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>"#,
        ns::WSSE,
        ns::WSU,
        ns::PASSWORD_DIGEST
    )
}

fn request(header: &str, body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{}" xmlns:tds="{}" xmlns:trt="{}" xmlns:tt="{}">{header}<s:Body>{body}</s:Body></s:Envelope>"#,
        ns::SOAP12,
        ns::DEVICE,
        ns::MEDIA,
        ns::SCHEMA
    )
    .into_bytes()
}

/// Sends `body` with a fresh valid token and returns the parsed response element.
fn call(svc: &mut OnvifService, body: &str) -> Element {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let h = header("admin", "secret-pw", &n.to_be_bytes());
    let out = svc.handle(&request(&h, body), &ctx());
    assert_eq!(
        out.reply.status,
        200,
        "{body}: {}",
        String::from_utf8_lossy(&out.reply.body)
    );
    assert!(matches!(out.outcome, Outcome::Answered { user: Some(_) }));
    response(&out.reply.body)
}

fn response(bytes: &[u8]) -> Element {
    let root = xml::parse(bytes, Limits::default()).expect("response parses");
    assert!(root.is(ns::SOAP12, "Envelope"));
    root.child(ns::SOAP12, "Body").unwrap().children[0].clone()
}

fn fault_subcodes(bytes: &[u8]) -> Vec<String> {
    let f = response(bytes);
    assert!(f.is(ns::SOAP12, "Fault"), "not a fault: {f:?}");
    let mut codes = Vec::new();
    let mut cur = f.child(ns::SOAP12, "Code").unwrap();
    while let Some(sub) = cur.child(ns::SOAP12, "Subcode") {
        codes.push(sub.child_text("Value").unwrap().to_string());
        cur = sub;
    }
    codes
}

#[test]
fn system_date_and_time_needs_no_auth() {
    let mut svc = service();
    let out = svc.handle(&request("", "<tds:GetSystemDateAndTime/>"), &ctx());
    assert_eq!(out.reply.status, 200);
    let r = response(&out.reply.body);
    let utc = r
        .child(ns::DEVICE, "SystemDateAndTime")
        .unwrap()
        .child(ns::SCHEMA, "UTCDateTime")
        .unwrap();
    let t = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let date = utc.child(ns::SCHEMA, "Date").unwrap();
    assert_eq!(date.child_text("Year"), Some(t.year().to_string().as_str()));
    let time_el = utc.child(ns::SCHEMA, "Time").unwrap();
    assert_eq!(
        time_el.child_text("Hour"),
        Some(t.hour().to_string().as_str())
    );
    // Even with a wrong token, the clock is answered (clients need it to fix their token).
    let bad = header("admin", "wrong", b"n1");
    let out = svc.handle(&request(&bad, "<tds:GetSystemDateAndTime/>"), &ctx());
    assert_eq!(out.reply.status, 200);
}

#[test]
fn device_information_requires_valid_digest() {
    let mut svc = service();
    let out = svc.handle(&request("", "<tds:GetDeviceInformation/>"), &ctx());
    assert_eq!(out.reply.status, 400);
    assert_eq!(fault_subcodes(&out.reply.body), vec!["ter:NotAuthorized"]);
    let wrong = header("admin", "not-the-password", b"n2");
    let out = svc.handle(&request(&wrong, "<tds:GetDeviceInformation/>"), &ctx());
    assert!(matches!(out.outcome, Outcome::Unauthorized(_)));
    assert_eq!(fault_subcodes(&out.reply.body), vec!["ter:NotAuthorized"]);

    let r = call(&mut svc, "<tds:GetDeviceInformation/>");
    assert!(r.is(ns::DEVICE, "GetDeviceInformationResponse"));
    let names: Vec<&str> = r.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Manufacturer",
            "Model",
            "FirmwareVersion",
            "SerialNumber",
            "HardwareId"
        ]
    );
    assert_eq!(r.child_text("Manufacturer"), Some("Watchpost"));
}

#[test]
fn replayed_request_is_refused() {
    let mut svc = service();
    let h = header("admin", "secret-pw", b"same-nonce");
    let req = request(&h, "<tds:GetScopes/>");
    assert_eq!(svc.handle(&req, &ctx()).reply.status, 200);
    let again = svc.handle(&req, &ctx());
    assert_eq!(again.reply.status, 400);
    assert!(matches!(
        again.outcome,
        Outcome::Unauthorized(watchpost_onvif::AuthError::Replay { .. })
    ));
}

#[test]
fn capabilities_and_services_point_at_the_request_host() {
    let mut svc = service();
    // Pre-auth: no token needed.
    let out = svc.handle(
        &request(
            "",
            "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
        ),
        &ctx(),
    );
    assert_eq!(out.reply.status, 200);
    let caps = response(&out.reply.body);
    let c = caps.child(ns::DEVICE, "Capabilities").unwrap();
    assert_eq!(
        c.child(ns::SCHEMA, "Media").unwrap().child_text("XAddr"),
        Some("http://127.0.0.1:8000/onvif/media_service")
    );
    assert_eq!(
        c.child(ns::SCHEMA, "Device").unwrap().child_text("XAddr"),
        Some("http://127.0.0.1:8000/onvif/device_service")
    );
    let r = call(
        &mut svc,
        "<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability></tds:GetServices>",
    );
    let namespaces: Vec<&str> = r
        .children
        .iter()
        .filter_map(|s| s.child_text("Namespace"))
        .collect();
    assert_eq!(namespaces, [ns::DEVICE, ns::MEDIA, ns::EVENTS]);
    assert_eq!(
        c.child(ns::SCHEMA, "Events").unwrap().child_text("XAddr"),
        Some("http://127.0.0.1:8000/onvif/event_service")
    );
    // No Host header: the advertised address is used.
    let out = svc.handle(
        &request("", "<tds:GetCapabilities/>"),
        &RequestCtx {
            host: None,
            now_unix: NOW,
        },
    );
    assert!(String::from_utf8_lossy(&out.reply.body).contains("http://192.0.2.10:8000/"));
}

#[test]
fn device_getters() {
    let mut svc = service();
    let r = call(&mut svc, "<tds:GetScopes/>");
    let items: Vec<&str> = r
        .children
        .iter()
        .filter_map(|s| s.child_text("ScopeItem"))
        .collect();
    assert!(items.contains(&"onvif://www.onvif.org/Profile/Streaming"));
    let r = call(&mut svc, "<tds:GetNetworkInterfaces/>");
    let info = r.children[0].child(ns::SCHEMA, "Info").unwrap();
    assert_eq!(info.child_text("HwAddress"), Some("02:00:00:00:00:01"));
    let r = call(&mut svc, "<tds:GetHostname/>");
    assert_eq!(
        r.child_local("HostnameInformation")
            .unwrap()
            .child_text("Name"),
        Some("watchpost")
    );
    let r = call(&mut svc, "<tds:GetNetworkProtocols/>");
    assert_eq!(r.children.len(), 2);
    let r = call(&mut svc, "<tds:GetServiceCapabilities/>");
    assert!(r.child(ns::DEVICE, "Capabilities").is_some());
}

#[test]
fn profiles_and_uris() {
    let mut svc = service();
    let r = call(&mut svc, "<trt:GetProfiles/>");
    assert_eq!(r.children.len(), 3);
    let p = &r.children[0];
    assert_eq!(p.attr("token"), Some("cam_front_main"));
    let enc = p.child(ns::SCHEMA, "VideoEncoderConfiguration").unwrap();
    assert_eq!(enc.child_text("Encoding"), Some("H264"));
    let order: Vec<&str> = enc.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "Name",
            "UseCount",
            "Encoding",
            "Resolution",
            "Quality",
            "RateControl",
            "H264",
            "Multicast",
            "SessionTimeout"
        ]
    );
    let src = p.child(ns::SCHEMA, "VideoSourceConfiguration").unwrap();
    assert_eq!(src.child_text("UseCount"), Some("2"));

    let r = call(
        &mut svc,
        r#"<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>cam_front_sub</trt:ProfileToken></trt:GetStreamUri>"#,
    );
    assert_eq!(
        r.child_local("MediaUri").unwrap().child_text("Uri"),
        Some("rtsp://127.0.0.1:8554/cameras/front/sub")
    );
    let r = call(
        &mut svc,
        "<trt:GetSnapshotUri><trt:ProfileToken>dashboard</trt:ProfileToken></trt:GetSnapshotUri>",
    );
    assert_eq!(
        r.child_local("MediaUri").unwrap().child_text("Uri"),
        Some("http://127.0.0.1:8000/onvif/snapshot/dashboard.jpg")
    );
    let r = call(&mut svc, "<trt:GetVideoSources/>");
    let tokens: Vec<&str> = r.children.iter().filter_map(|c| c.attr("token")).collect();
    assert_eq!(tokens, ["cam_front", "dashboard"]);
    let r = call(&mut svc, "<trt:GetVideoSourceConfigurations/>");
    assert_eq!(r.children.len(), 2);
    let r = call(&mut svc, "<trt:GetVideoEncoderConfigurations/>");
    assert_eq!(r.children.len(), 3);
    let r = call(
        &mut svc,
        "<trt:GetVideoEncoderConfigurationOptions><trt:ProfileToken>cam_front_main</trt:ProfileToken></trt:GetVideoEncoderConfigurationOptions>",
    );
    let h264 = r
        .child_local("Options")
        .unwrap()
        .child(ns::SCHEMA, "H264")
        .unwrap();
    assert_eq!(h264.child_text("H264ProfilesSupported"), Some("Main"));
    let r = call(
        &mut svc,
        "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>vec_dashboard</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>",
    );
    assert_eq!(r.children[0].attr("token"), Some("vec_dashboard"));
    let r = call(&mut svc, "<trt:GetServiceCapabilities/>");
    assert_eq!(r.children[0].attr("SnapshotUri"), Some("true"));
    let r = call(&mut svc, "<trt:GetAudioSources/>");
    assert!(r.children.is_empty());
    let r = call(
        &mut svc,
        "<trt:GetGuaranteedNumberOfVideoEncoderInstances><trt:ConfigurationToken>vsc_cam_front</trt:ConfigurationToken></trt:GetGuaranteedNumberOfVideoEncoderInstances>",
    );
    assert_eq!(r.child_text("TotalNumber"), Some("1"));
}

#[test]
fn faults() {
    let mut svc = service();
    let h = header("admin", "secret-pw", b"fault-1");
    let out = svc.handle(
        &request(
            &h,
            "<trt:GetSnapshotUri><trt:ProfileToken>nope</trt:ProfileToken></trt:GetSnapshotUri>",
        ),
        &ctx(),
    );
    assert_eq!(out.reply.status, 400);
    assert_eq!(
        fault_subcodes(&out.reply.body),
        ["ter:InvalidArgVal", "ter:NoProfile"]
    );
    let h = header("admin", "secret-pw", b"fault-2");
    let out = svc.handle(
        &request(
            &h,
            "<tds:SetHostname><tds:Name>x</tds:Name></tds:SetHostname>",
        ),
        &ctx(),
    );
    assert_eq!(out.reply.status, 500);
    assert_eq!(fault_subcodes(&out.reply.body), ["ter:ActionNotSupported"]);
    // Synology: CreateProfile without a token gets "max profiles", not an auth fault.
    let out = svc.handle(
        &request(
            "",
            "<trt:CreateProfile><trt:Name>SynoProfile</trt:Name></trt:CreateProfile>",
        ),
        &ctx(),
    );
    assert_eq!(
        fault_subcodes(&out.reply.body),
        ["ter:Action", "ter:MaxNVTProfiles"]
    );
    let out = svc.handle(b"<not-soap/>", &ctx());
    assert_eq!(out.reply.status, 400);
    assert_eq!(fault_subcodes(&out.reply.body), ["ter:WellFormed"]);
    let out = svc.handle(
        br#"<!DOCTYPE x [<!ENTITY a "b">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>"#,
        &ctx(),
    );
    assert!(matches!(out.outcome, Outcome::Malformed(_)));
}

#[test]
fn auth_can_be_turned_off() {
    let mut svc = OnvifService::new(
        model(),
        Authenticator::new(HashMap::new(), AuthPolicy::default()),
        false,
    );
    let out = svc.handle(&request("", "<trt:GetProfiles/>"), &ctx());
    assert_eq!(out.reply.status, 200);
}

fn events_request(header: &str, body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{}" xmlns:tds="{}" xmlns:trt="{}" xmlns:tt="{}" xmlns:tev="{}" xmlns:wsnt="{}">{header}<s:Body>{body}</s:Body></s:Envelope>"#,
        ns::SOAP12,
        ns::DEVICE,
        ns::MEDIA,
        ns::SCHEMA,
        ns::EVENTS,
        ns::WSNT,
    )
    .into_bytes()
}

/// Sends `body` to `endpoint` as `user` with a fresh token.
fn call_at(
    svc: &mut OnvifService,
    endpoint: &str,
    user: (&str, &str),
    body: &str,
) -> watchpost_onvif::Handled {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let h = header(user.0, user.1, &n.to_be_bytes());
    svc.handle_endpoint(endpoint, &events_request(&h, body), &ctx())
}

const ADMIN: (&str, &str) = ("admin", "secret-pw");

#[test]
fn authentication_comes_before_arguments() {
    let mut svc = service();
    // A missing argument without credentials: not authorized, not "invalid argument".
    let out = svc.handle(&request("", "<trt:GetSnapshotUri/>"), &ctx());
    assert_eq!(fault_subcodes(&out.reply.body), ["ter:NotAuthorized"]);
    assert!(matches!(out.outcome, Outcome::Unauthorized(_)));
    let out = svc.handle(
        &events_request(
            "",
            "<tev:PullMessages><tev:Timeout>bad</tev:Timeout></tev:PullMessages>",
        ),
        &ctx(),
    );
    assert_eq!(fault_subcodes(&out.reply.body), ["ter:NotAuthorized"]);
    // With credentials the argument check answers.
    let out = call_at(&mut svc, "media_service", ADMIN, "<trt:GetSnapshotUri/>");
    assert_eq!(fault_subcodes(&out.reply.body), ["ter:InvalidArgVal"]);
}

#[test]
fn reboot_and_clock_are_for_admins() {
    let users = HashMap::from([
        ("admin".to_string(), "secret-pw".to_string()),
        ("viewer".to_string(), "view-pw".to_string()),
    ]);
    for auth_required in [true, false] {
        let mut svc = OnvifService::new(
            model(),
            Authenticator::new(users.clone(), AuthPolicy::default()),
            auth_required,
        );
        svc.set_admins(["admin".to_string()]);
        let out = svc.handle(&request("", "<tds:SystemReboot/>"), &ctx());
        assert_eq!(fault_subcodes(&out.reply.body), ["ter:NotAuthorized"]);
        let out = call_at(
            &mut svc,
            "device_service",
            ("viewer", "view-pw"),
            "<tds:SystemReboot/>",
        );
        assert_eq!(fault_subcodes(&out.reply.body), ["ter:NotAuthorized"]);
        assert_eq!(out.then, watchpost_onvif::Then::Reply);
        let out = call_at(&mut svc, "device_service", ADMIN, "<tds:SystemReboot/>");
        assert_eq!(out.reply.status, 200);
        assert_eq!(out.then, watchpost_onvif::Then::Reboot);
        let r = response(&out.reply.body);
        assert!(r.is(ns::DEVICE, "SystemRebootResponse"));
        assert!(r.child_text("Message").is_some());
    }
    let mut svc = service();
    svc.set_admins(["admin".to_string()]);
    let at = |t: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        format!(
            "<tds:SetSystemDateAndTime><tds:DateTimeType>Manual</tds:DateTimeType><tds:DaylightSavings>false</tds:DaylightSavings>\
             <tds:TimeZone><tt:TZ>CET-1CEST,M3.5.0,M10.5.0/3</tt:TZ></tds:TimeZone><tds:UTCDateTime><tt:Date><tt:Year>{}</tt:Year>\
             <tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute>\
             <tt:Second>{}</tt:Second></tt:Time></tds:UTCDateTime></tds:SetSystemDateAndTime>",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    // The time the clock already has (NTP keeps it): answered, nothing to change.
    let out = call_at(&mut svc, "device_service", ADMIN, &at(NOW + 2));
    assert_eq!(
        out.reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&out.reply.body)
    );
    // An hour off: refused with the reason.
    let out = call_at(&mut svc, "device_service", ADMIN, &at(NOW + 3600));
    assert_eq!(
        fault_subcodes(&out.reply.body),
        ["ter:InvalidArgVal", "ter:InvalidDateTime"]
    );
    let ntp = "<tds:SetSystemDateAndTime><tds:DateTimeType>NTP</tds:DateTimeType><tds:DaylightSavings>false</tds:DaylightSavings></tds:SetSystemDateAndTime>";
    let out = call_at(&mut svc, "device_service", ADMIN, ntp);
    assert_eq!(out.reply.status, 200);
}

fn text_of<'a>(el: &'a Element, path: &[&str]) -> Option<&'a str> {
    let mut cur = el;
    for p in path {
        cur = cur.child_local(p)?;
    }
    Some(cur.text.as_str())
}

fn item(el: &Element, parent: &str) -> (String, String) {
    let i = el
        .child_local(parent)
        .unwrap()
        .child_local("SimpleItem")
        .unwrap();
    (
        i.attr("Name").unwrap().into(),
        i.attr("Value").unwrap().into(),
    )
}

#[test]
fn pull_point_subscription() {
    use watchpost_onvif::events::{EventUpdate, ObjectClass, Topic};
    let mut svc = service();
    // The topic set describes motion with its items.
    let props = call_at(
        &mut svc,
        "event_service",
        ADMIN,
        "<tev:GetEventProperties/>",
    );
    let body = String::from_utf8_lossy(&props.reply.body).to_string();
    let r = response(&props.reply.body);
    let set = r.child(ns::WSTOP, "TopicSet").unwrap();
    let motion = set
        .child(ns::TOPICS, "VideoSource")
        .and_then(|v| v.child_local("MotionAlarm"))
        .unwrap_or_else(|| panic!("no MotionAlarm in {body}"));
    assert_eq!(motion.attr("topic"), Some("true"));
    assert!(
        body.contains("PeopleDetect") && body.contains("DigitalInput"),
        "{body}"
    );
    let caps = call_at(
        &mut svc,
        "event_service",
        ADMIN,
        "<tev:GetServiceCapabilities/>",
    );
    let r = response(&caps.reply.body);
    assert_eq!(
        r.child_local("Capabilities")
            .unwrap()
            .attr("WSPullPointSupport"),
        Some("true")
    );

    let now_ms = NOW * 1000;
    svc.events_mut().update(
        EventUpdate {
            topic: Topic::SignalLoss,
            source: "cam_front".into(),
            state: false,
        },
        now_ms,
    );
    let out = call_at(
        &mut svc,
        "event_service",
        ADMIN,
        "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>PT10M</tev:InitialTerminationTime></tev:CreatePullPointSubscription>",
    );
    assert_eq!(
        out.reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&out.reply.body)
    );
    let r = response(&out.reply.body);
    let address = text_of(&r, &["SubscriptionReference", "Address"])
        .unwrap()
        .to_string();
    assert_eq!(address, "http://127.0.0.1:8000/onvif/subscription_1");
    let current = text_of(&r, &["CurrentTime"]).unwrap();
    let term = text_of(&r, &["TerminationTime"]).unwrap();
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    assert_eq!(parse(term) - parse(current), 600);
    let endpoint = "subscription_1";
    let pull = "<tev:PullMessages><tev:Timeout>PT5S</tev:Timeout><tev:MessageLimit>100</tev:MessageLimit></tev:PullMessages>";
    // First pull: the current state, Initialized.
    let out = call_at(&mut svc, endpoint, ADMIN, pull);
    assert_eq!(out.then, watchpost_onvif::Then::Reply);
    let r = response(&out.reply.body);
    let msgs: Vec<&Element> = r
        .children
        .iter()
        .filter(|c| c.is(ns::WSNT, "NotificationMessage"))
        .collect();
    assert_eq!(msgs.len(), 1);
    let topic = msgs[0].child(ns::WSNT, "Topic").unwrap();
    assert_eq!(topic.text, "tns1:VideoSource/SignalLoss");
    assert_eq!(
        topic.resolve_qname(&topic.text),
        Some((ns::TOPICS.to_string(), "VideoSource/SignalLoss".to_string()))
    );
    let m = msgs[0]
        .child(ns::WSNT, "Message")
        .unwrap()
        .child(ns::SCHEMA, "Message")
        .unwrap();
    assert_eq!(m.attr("PropertyOperation"), Some("Initialized"));
    assert_eq!(item(m, "Source"), ("Source".into(), "cam_front".into()));
    assert_eq!(item(m, "Data"), ("State".into(), "false".into()));
    // Nothing queued: the I/O layer is told to wait.
    let out = call_at(&mut svc, endpoint, ADMIN, pull);
    let watchpost_onvif::Then::WaitForEvents(wait) = out.then else {
        panic!("expected a wait, got {:?}", out.then)
    };
    assert_eq!((wait.subscription, wait.timeout_s, wait.limit), (1, 5, 100));
    assert!(!svc.pull_ready(&wait, NOW));
    svc.events_mut().update(
        EventUpdate {
            topic: Topic::Object(ObjectClass::Person),
            source: "cam_front".into(),
            state: true,
        },
        now_ms,
    );
    assert!(svc.pull_ready(&wait, NOW));
    let done = svc.finish_pull(&wait, &ctx());
    let r = response(&done.reply.body);
    let n = r.child(ns::WSNT, "NotificationMessage").unwrap();
    assert_eq!(
        n.child(ns::WSNT, "Topic").unwrap().text,
        "tns1:RuleEngine/MyRuleDetector/PeopleDetect"
    );
    // Renew, synchronize, unsubscribe; afterwards the subscription is unknown.
    let out = call_at(
        &mut svc,
        endpoint,
        ADMIN,
        "<wsnt:Renew><wsnt:TerminationTime>PT60S</wsnt:TerminationTime></wsnt:Renew>",
    );
    let r = response(&out.reply.body);
    assert!(r.is(ns::WSNT, "RenewResponse"));
    assert_eq!(parse(text_of(&r, &["TerminationTime"]).unwrap()), NOW + 60);
    let out = call_at(&mut svc, endpoint, ADMIN, "<tev:SetSynchronizationPoint/>");
    assert_eq!(out.reply.status, 200);
    let out = call_at(&mut svc, endpoint, ADMIN, pull);
    assert_eq!(
        response(&out.reply.body).children.len(),
        4,
        "2 times + 2 properties"
    );
    let out = call_at(&mut svc, endpoint, ADMIN, "<wsnt:Unsubscribe/>");
    assert!(response(&out.reply.body).is(ns::WSNT, "UnsubscribeResponse"));
    let out = call_at(&mut svc, endpoint, ADMIN, pull);
    assert_eq!(
        fault_subcodes(&out.reply.body),
        ["ter:InvalidArgVal", "ter:ResourceUnknown"]
    );
    // A pull point operation on an endpoint that names no subscription.
    let out = call_at(&mut svc, "event_service", ADMIN, pull);
    assert_eq!(out.reply.status, 400);
}
