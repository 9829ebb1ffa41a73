//! The dashboard reads the capture worker's camera status exactly as the capture worker
//! publishes it: the status is built from `watchpost_capture::camera::CameraStatus` and
//! serialised the way the worker's status loop does (`publish_json`), then applied to the
//! dashboard state under the topic the worker uses.
#![allow(clippy::unwrap_used)]

use watchpost_capture::camera::{CameraState, CameraStatus};
use watchpost_dashboard::DashboardState;

fn status(state: CameraState, reason: Option<&str>, updated_unix_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&CameraStatus {
        id: "gate".into(),
        name: "Gate camera".into(),
        state,
        reason: reason.map(str::to_string),
        input_fps: 15.0,
        bitrate_bps: 2_000_000.0,
        frames_dropped: 0,
        reconnects: 2,
        recording: true,
        recording_bytes_per_s: 250_000.0,
        disk_used_bytes: 1 << 20,
        last_frame_at: Some("2026-11-22T10:00:00.000Z".into()),
        recording_error: None,
        detect_latency_ms: Some(12.5),
        updated_unix_ms,
        stream: None,
    })
    .unwrap()
}

const NOW_S: i64 = 1_795_341_600;
const NOW_MS: u64 = NOW_S as u64 * 1000;

/// The topic levels after the prefix: the capture worker publishes on
/// `bus.topic(&["capture", "camera", id, "status"])`.
const TOPIC: [&str; 4] = ["capture", "camera", "gate", "status"];

#[test]
fn every_capture_state_is_shown() {
    let mut s = DashboardState::default();
    for (state, reason, online, headline) in [
        (CameraState::Starting, None, false, "starting"),
        (CameraState::Online, None, true, "online"),
        (
            CameraState::Offline,
            Some("stalled for 5 s"),
            false,
            "offline",
        ),
        (CameraState::Error, Some("401 Unauthorized"), false, "error"),
        (CameraState::Disabled, None, false, "disabled"),
    ] {
        s.apply(&TOPIC, &status(state, reason, NOW_MS)).unwrap();
        let cam = &s.cameras["gate"];
        assert_eq!(cam.name, "Gate camera");
        let v = s.camera_view(cam, NOW_S + 1);
        assert_eq!(v.online, online, "{state:?}");
        assert_eq!(v.headline, headline);
        assert_eq!(v.detail, reason.unwrap_or(""));
    }
}

#[test]
fn stale_status_and_stopped_worker_are_offline() {
    let mut s = DashboardState::default();
    s.apply(&TOPIC, &status(CameraState::Online, None, NOW_MS))
        .unwrap();
    s.apply(&["system", "capture", "status"], b"online")
        .unwrap();
    let cam = s.cameras["gate"].clone();
    assert!(s.camera_view(&cam, NOW_S + 30).online);
    assert!(!s.camera_view(&cam, NOW_S + 31).online);
    s.apply(&["system", "capture", "status"], b"offline")
        .unwrap();
    let v = s.camera_view(&cam, NOW_S);
    assert!(!v.online);
    assert_eq!(v.detail, "capture worker offline");
}
