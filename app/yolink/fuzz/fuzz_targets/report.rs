//! Arbitrary report payloads and API answers never panic; whatever parses normalises into a
//! sensor whose published JSON reads back to the same sensor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_yolink::{Sensor, SensorKind, api, parse_report, read};

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => ("yl-home/h/d/report".to_string(), data),
    };
    let _ = api::parse_token(payload);
    if let Ok(d) = api::parse_response("Home.getDeviceList", payload) {
        let _ = api::devices(&d);
        let _ = api::home_id(&d);
        let _ = api::device_state(&d);
    }
    let Ok(report) = parse_report(&topic, payload) else {
        return;
    };
    let kind = SensorKind::from_type(&report.device_type);
    let reading = read(kind, &report.data);
    if let Some(b) = reading.battery {
        assert!(b <= 4);
    }
    let mut sensor = Sensor::new(&report.device_id, "fuzz", &report.device_type, None);
    let update = sensor.apply(&reading, report.time_ms.unwrap_or(0), 1);
    for c in &update.raised {
        assert!(sensor.conditions.contains(c));
    }
    let _ = sensor.check_online(i64::MAX, 1, i64::MIN);
    let json = serde_json::to_string(&sensor).expect("serialises");
    let mut back: Sensor = serde_json::from_str(&json).expect("reads back");
    // JSON floats may come back one unit in the last place off; compare them loosely.
    for (a, b) in [
        (back.temperature_c.take(), sensor.temperature_c),
        (back.humidity_pct.take(), sensor.humidity_pct),
    ] {
        match (a, b) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= b.abs() * 1e-12, "{a} {b}"),
            (a, b) => assert_eq!(a.is_some(), b.is_some()),
        }
    }
    back.temperature_c = sensor.temperature_c;
    back.humidity_pct = sensor.humidity_pct;
    assert_eq!(back, sensor);
});
