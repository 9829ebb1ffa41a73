//! Feeds the ONVIF event service from the bus.
//!
//! Role: what the appliance knows becomes ONVIF event properties (`watchpost_onvif::events`)
//! that NVRs and Home Assistant pull:
//!
//! | bus topic (retained) | ONVIF topic | source token | value |
//! | --- | --- | --- | --- |
//! | `sensors/<id>/state` | `tns1:Device/Trigger/DigitalInput` | `<id>` | `alarm` |
//! | `capture/camera/<id>/thermal` | `tns1:Device/Trigger/DigitalInput` | `thermal_<id>_<rule>` | the rule is `active` |
//! | `capture/camera/<id>/status` | `tns1:VideoSource/SignalLoss` | `cam_<id>` | `state` is not `online` |
//! | `system/capture/status` = `offline` | `tns1:VideoSource/SignalLoss` | every `cam_<id>` seen | true |
//! | `detect/camera/<id>/motion` | `tns1:VideoSource/MotionAlarm` | `cam_<id>` | `active` |
//! | `detect/camera/<id>/object/<class>` | `tns1:RuleEngine/MyRuleDetector/{PeopleDetect,VehicleDetect,DogCatDetect}` | `cam_<id>` | `active` |
//!
//! `cam_<id>` is the camera's video source token in the media service. The `detect/...` topics
//! are the detection worker's (docs/bus.md); until it exists nothing publishes them and the
//! topics have no properties. An empty retained payload removes the property.
//!
//! Design: [`translate`] turns one message into changes and is tested without a broker; the
//! loop applies them to the service and wakes waiting `PullMessages`.
//!
//! Failure: a payload that does not decode is counted in
//! `watchpost_rtsp_bus_payload_errors_total` and logged (rate-limited); it changes nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use watchpost_contract::alarm::SensorView;
use watchpost_contract::capture::{CameraState, CameraStatus, ThermalRuleState, ThermalStatistics};
use watchpost_onvif::OnvifService;
use watchpost_onvif::events::{EventUpdate, ObjectClass, Topic};
use watchpost_runtime::Registry;

use crate::RtspError;

/// The bus filters (under the prefix) the feed reads.
pub const FILTERS: [&str; 6] = [
    "sensors/+/state",
    "capture/camera/+/status",
    "capture/camera/+/thermal",
    "system/capture/status",
    "detect/camera/+/motion",
    "detect/camera/+/object/+",
];

/// `detect/camera/<id>/motion` and `detect/camera/<id>/object/<class>`: whether motion, or an
/// object of the class, is seen now (retained; the detection worker's contract, docs/bus.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetectionState {
    pub active: bool,
}

/// One change to the event properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(EventUpdate),
    Remove(Topic, String),
}

/// Why a message was ignored.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{topic}: {source}")]
    Payload {
        topic: String,
        source: serde_json::Error,
    },
    #[error("{topic}: unknown object class `{class}`")]
    Class { topic: String, class: String },
}

/// What the feed remembers between messages.
#[derive(Debug, Default)]
pub struct Known {
    /// Cameras seen in capture statuses (for the capture worker going offline).
    capture_cameras: BTreeSet<String>,
}

fn source(camera: &str) -> String {
    format!("cam_{camera}")
}

fn set(topic: Topic, source: String, state: bool) -> Change {
    Change::Set(EventUpdate {
        topic,
        source,
        state,
    })
}

fn decode<'a, T: Deserialize<'a>>(levels: &[&str], payload: &'a [u8]) -> Result<T, FeedError> {
    serde_json::from_slice(payload).map_err(|source| FeedError::Payload {
        topic: levels.join("/"),
        source,
    })
}

/// The changes one bus message (topic levels under the prefix, payload) makes.
pub fn translate(
    levels: &[&str],
    payload: &[u8],
    known: &mut Known,
) -> Result<Vec<Change>, FeedError> {
    let gone = payload.is_empty();
    Ok(match levels {
        ["sensors", id, "state"] => {
            if gone {
                vec![Change::Remove(Topic::DigitalInput, (*id).to_string())]
            } else {
                let view: SensorView = decode(levels, payload)?;
                vec![set(Topic::DigitalInput, (*id).to_string(), view.alarm)]
            }
        }
        ["capture", "camera", camera, "status"] => {
            if gone {
                known.capture_cameras.remove(*camera);
                vec![Change::Remove(Topic::SignalLoss, source(camera))]
            } else {
                let status: CameraStatus = decode(levels, payload)?;
                known.capture_cameras.insert((*camera).to_string());
                vec![set(
                    Topic::SignalLoss,
                    source(camera),
                    status.state != CameraState::Online,
                )]
            }
        }
        ["capture", "camera", camera, "thermal"] => {
            if gone {
                Vec::new()
            } else {
                let stats: ThermalStatistics = decode(levels, payload)?;
                stats
                    .rules
                    .iter()
                    .map(|r| {
                        set(
                            Topic::DigitalInput,
                            format!("thermal_{camera}_{}", r.id),
                            r.state == ThermalRuleState::Active,
                        )
                    })
                    .collect()
            }
        }
        ["system", "capture", "status"] => {
            if payload.trim_ascii() == b"offline" {
                known
                    .capture_cameras
                    .iter()
                    .map(|c| set(Topic::SignalLoss, source(c), true))
                    .collect()
            } else {
                // Online again: the cameras' own statuses follow.
                Vec::new()
            }
        }
        ["detect", "camera", camera, "motion"] => {
            if gone {
                vec![Change::Remove(Topic::Motion, source(camera))]
            } else {
                let d: DetectionState = decode(levels, payload)?;
                vec![set(Topic::Motion, source(camera), d.active)]
            }
        }
        ["detect", "camera", camera, "object", class] => {
            let Some(class) = ObjectClass::parse(class) else {
                return Err(FeedError::Class {
                    topic: levels.join("/"),
                    class: (*class).to_string(),
                });
            };
            let topic = Topic::Object(class);
            if gone {
                vec![Change::Remove(topic, source(camera))]
            } else {
                let d: DetectionState = decode(levels, payload)?;
                vec![set(topic, source(camera), d.active)]
            }
        }
        _ => Vec::new(),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Subscribes to [`FILTERS`] and spawns the loop that applies them to `service`, waking
/// `wake`'s waiters after each change.
pub async fn start(
    bus: &watchpost_bus::Bus,
    service: Arc<Mutex<OnvifService>>,
    wake: Arc<Notify>,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, RtspError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<watchpost_bus::Message>(1024);
    for tail in FILTERS {
        let filter = format!("{}/{tail}", bus.prefix());
        let mut sub = bus
            .subscribe(&filter)
            .await
            .map_err(|e| RtspError::Subscribe {
                filter: filter.clone(),
                message: e.to_string(),
            })?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let prefix = format!("{}/", bus.prefix());
    let bad = registry.counter(
        "watchpost_rtsp_bus_payload_errors_total",
        "Bus messages the dashboard could not read",
        &[],
    );
    let events = registry.counter(
        "watchpost_rtsp_onvif_events_total",
        "ONVIF event property changes queued to subscribers",
        &[],
    );
    Ok(tokio::spawn(async move {
        let mut known = Known::default();
        let mut last_log = Instant::now() - Duration::from_secs(60);
        loop {
            let m = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            let Some(rel) = m.topic.strip_prefix(&prefix) else {
                continue;
            };
            let levels: Vec<&str> = rel.split('/').collect();
            let changes = match translate(&levels, &m.payload, &mut known) {
                Ok(c) => c,
                Err(e) => {
                    bad.inc();
                    if last_log.elapsed() >= Duration::from_secs(10) {
                        last_log = Instant::now();
                        tracing::warn!(error = %e, "ignoring a bus message for ONVIF events");
                    }
                    continue;
                }
            };
            if changes.is_empty() {
                continue;
            }
            let at = now_ms();
            let mut queued = 0;
            {
                let mut svc = service.lock().unwrap_or_else(|p| p.into_inner());
                let ev = svc.events_mut();
                for c in changes {
                    let did = match c {
                        Change::Set(u) => ev.update(u, at),
                        Change::Remove(topic, source) => ev.remove(topic, &source, at),
                    };
                    queued += u64::from(did);
                }
            }
            if queued > 0 {
                events.add(queued);
                wake.notify_waiters();
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sensor(alarm: bool) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "door1", "name": "Front door", "type": "DoorSensor", "kind": "door",
            "model": null, "state": if alarm { "open" } else { "closed" },
            "conditions": if alarm { vec!["intrusion"] } else { vec![] },
            "battery": 4, "signal_dbm": null, "temperature_c": null, "humidity_pct": null,
            "last_seen_ms": null, "state_changed_ms": null, "online": true, "reminder": false,
            "alarm": alarm, "changed_at": null
        }))
        .unwrap()
    }

    #[test]
    fn sensors_detections_and_removal() {
        let mut k = Known::default();
        let c = translate(&["sensors", "door1", "state"], &sensor(true), &mut k).unwrap();
        assert_eq!(c, vec![set(Topic::DigitalInput, "door1".into(), true)]);
        let c = translate(&["sensors", "door1", "state"], b"", &mut k).unwrap();
        assert_eq!(c, vec![Change::Remove(Topic::DigitalInput, "door1".into())]);
        let c = translate(
            &["detect", "camera", "yard", "object", "person"],
            br#"{"active": true, "score": 0.8}"#,
            &mut k,
        )
        .unwrap();
        assert_eq!(
            c,
            vec![set(
                Topic::Object(ObjectClass::Person),
                "cam_yard".into(),
                true
            )]
        );
        let c = translate(
            &["detect", "camera", "yard", "motion"],
            br#"{"active": false}"#,
            &mut k,
        )
        .unwrap();
        assert_eq!(c, vec![set(Topic::Motion, "cam_yard".into(), false)]);
        assert!(
            translate(
                &["detect", "camera", "yard", "object", "ufo"],
                b"{}",
                &mut k
            )
            .is_err()
        );
        assert!(translate(&["sensors", "x", "state"], b"not json", &mut k).is_err());
        assert!(
            translate(&["neasmart", "global"], b"{}", &mut k)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn capture_going_offline_loses_every_signal() {
        let mut k = Known::default();
        let status = serde_json::json!({
            "id": "gate", "name": "Gate", "state": "online", "reason": null, "input_fps": 10.0,
            "bitrate_bps": 1.0, "frames_dropped": 0, "reconnects": 0, "recording": false,
            "recording_bytes_per_s": 0.0, "disk_used_bytes": 0, "last_frame_at": null,
            "recording_error": null, "detect_latency_ms": null, "updated_unix_ms": 1
        });
        let bytes = serde_json::to_vec(&status).unwrap();
        let c = translate(&["capture", "camera", "gate", "status"], &bytes, &mut k).unwrap();
        assert_eq!(c, vec![set(Topic::SignalLoss, "cam_gate".into(), false)]);
        let c = translate(&["system", "capture", "status"], b"offline", &mut k).unwrap();
        assert_eq!(c, vec![set(Topic::SignalLoss, "cam_gate".into(), true)]);
        assert!(
            translate(&["system", "capture", "status"], b"online", &mut k)
                .unwrap()
                .is_empty()
        );
    }
}
