//! Any bytes posted to the ONVIF endpoints (the services' and a live pull-point
//! subscription's): the service must answer (reply or fault) without panicking, and every
//! reply must itself be well-formed XML.
#![no_main]

use std::collections::HashMap;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use watchpost_onvif::events::{EventUpdate, Topic};
use watchpost_onvif::xml::{self, Limits};
use watchpost_onvif::{
    AuthPolicy, Authenticator, DeviceInfo, DeviceModel, H264Profile, NetworkInfo, OnvifService,
    RequestCtx, StreamProfile, Then,
};

fn service(auth_required: bool) -> OnvifService {
    let model = DeviceModel {
        info: DeviceInfo {
            manufacturer: "Watchpost".into(),
            model: "fuzz".into(),
            firmware_version: "0".into(),
            serial_number: "0".into(),
            hardware_id: "0".into(),
        },
        network: NetworkInfo {
            hostname: "fuzz".into(),
            interface_name: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            ipv4: None,
            mtu: 1500,
        },
        scopes: DeviceModel::default_scopes("fuzz", "fuzz", "", ""),
        profiles: vec![StreamProfile {
            token: "p".into(),
            name: "p".into(),
            source_token: "s".into(),
            width: 640,
            height: 480,
            framerate: 5,
            bitrate_kbps: 500,
            gov_length: 5,
            h264_profile: H264Profile::Baseline,
            rtsp_path: "/p".into(),
            snapshot_path: "/onvif/snapshot/p.jpg".into(),
        }],
        advertised_host: "127.0.0.1".into(),
        http_port: 8000,
        rtsp_port: 8554,
    };
    let users = HashMap::from([("admin".to_string(), "password".to_string())]);
    OnvifService::new(
        model,
        Authenticator::new(users, AuthPolicy::default()),
        auth_required,
    )
}

// One service without authentication (reaches every operation) and one with it (reaches the
// token checks: base64 nonces, Created times, the nonce cache).
static SERVICES: Mutex<Option<(OnvifService, OnvifService)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = RequestCtx {
        host: Some("127.0.0.1:8000".into()),
        now_unix: 1_800_000_000,
    };
    let (open, guarded) = guard.get_or_insert_with(|| (service(false), service(true)));
    // A subscription with something queued, for the pull-point operations to act on (it may
    // be unsubscribed by an input; creating one when it is gone keeps the path reachable).
    if open.events().subscriptions() == 0 {
        let ev = open.events_mut();
        ev.update(
            EventUpdate {
                topic: Topic::DigitalInput,
                source: "door<&>".into(),
                state: true,
            },
            ctx.now_unix * 1000,
        );
        let _ = ev.create(ctx.now_unix, Some("PT1H"));
    }
    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    for svc in [open, guarded] {
        for endpoint in ["device_service", "subscription_1"] {
            let out = svc.handle_endpoint(endpoint, data, &ctx);
            assert!(xml::parse(&out.reply.body, limits).is_ok());
            if let Then::WaitForEvents(wait) = out.then {
                let done = svc.finish_pull(&wait, &ctx);
                assert!(xml::parse(&done.reply.body, limits).is_ok());
            }
        }
    }
});
