//! Crate tests through the public API: exact conversion of synthetic frames built byte by byte,
//! statistics, and rules driven by a manual clock.

#![allow(clippy::unwrap_used)]
use watchpost_thermal::*;

/// A 4x2 scene with known temperatures, chosen to be exact in both formats' units.
const SCENE_C: [f32; 8] = [20.0, 21.5, 22.25, -10.0, 36.75, 100.0, 0.0, 60.5];

fn le(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}

#[test]
fn centikelvin_frame_converts_exactly() {
    // 20.00 °C = 293.15 K = 29315 cK, and so on, written out by hand.
    let counts: [u16; 8] = [29315, 29465, 29540, 26315, 30990, 37315, 27315, 33365];
    let bytes: Vec<u8> = counts.iter().flat_map(|c| le(*c)).collect();
    let t = decode(RawFormat::CentiKelvin16, 4, 2, &bytes).unwrap();
    assert_eq!((t.width(), t.height()), (4, 2));
    for (got, want) in t.celsius().iter().zip(SCENE_C) {
        assert!((got - want).abs() < 1e-4, "{got} != {want}");
    }
    // And the encoder used by the simulator produces the same bytes.
    assert_eq!(encode_centikelvin(&t).unwrap(), bytes);
}

#[test]
fn split_frame_converts_exactly() {
    // Temperature half in 1/64 K: 20 °C = 293.15 K -> 18761.6 counts is not exact, so the
    // scene uses values that are: (c + 273.15) * 64 rounded, then checked against c within
    // half a count (1/128 K).
    let (w, rows) = (4u32, 2u32);
    let mut bytes = Vec::new();
    for i in 0..(w * rows) {
        bytes.extend_from_slice(&[i as u8 * 10, 128]); // picture half, YUYV
    }
    let counts: Vec<u16> = SCENE_C
        .iter()
        .map(|c| ((f64::from(*c) + 273.15) * 64.0).round() as u16)
        .collect();
    assert_eq!(counts[0], 18762); // 293.15 * 64 = 18761.6
    for c in &counts {
        bytes.extend_from_slice(&le(*c));
    }
    let split = decode_split_frame(w, rows * 2, &bytes).unwrap();
    assert_eq!(split.grey, vec![0, 10, 20, 30, 40, 50, 60, 70]);
    let t = &split.temperatures;
    assert_eq!((t.width(), t.height()), (4, 2));
    for (i, (got, want)) in t.celsius().iter().zip(SCENE_C).enumerate() {
        let exact = f64::from(counts[i]) / 64.0 - 273.15;
        assert!((f64::from(*got) - exact).abs() < 1e-4, "{got} != {exact}");
        assert!((got - want).abs() <= 1.0 / 128.0 + 1e-4, "{got} vs {want}");
    }
    // decode() gives the same matrix, and the encoder round-trips the temperature half.
    assert_eq!(
        &decode(RawFormat::SplitFrame, w, rows * 2, &bytes).unwrap(),
        t
    );
    let again = encode_split_frame(t).unwrap();
    assert_eq!(again[bytes.len() / 2..], bytes[bytes.len() / 2..]);
}

#[test]
fn malformed_frames_are_errors() {
    assert!(matches!(
        decode(RawFormat::CentiKelvin16, 4, 2, &[0; 15]),
        Err(ThermalError::DecodeLength {
            expected: 16,
            actual: 15,
            ..
        })
    ));
    assert!(matches!(
        decode(RawFormat::SplitFrame, 4, 3, &[0; 24]),
        Err(ThermalError::DecodeDimensions { .. })
    ));
    assert!(decode(RawFormat::CentiKelvin16, 0, 2, &[]).is_err());
    let hot = Thermogram::uniform(1, 1, 800.0).unwrap();
    assert!(matches!(
        encode_split_frame(&hot),
        Err(ThermalError::EncodeRange { .. })
    ));
}

#[test]
fn stats_of_the_scene() {
    let t = Thermogram::new(4, 2, SCENE_C.to_vec()).unwrap();
    let s = t.stats();
    assert_eq!(
        s.hottest,
        Spot {
            x: 1,
            y: 1,
            celsius: 100.0
        }
    );
    assert_eq!(
        s.coldest,
        Spot {
            x: 3,
            y: 0,
            celsius: -10.0
        }
    );
    let mean: f32 = SCENE_C.iter().sum::<f32>() / 8.0;
    assert!((s.mean_c - mean).abs() < 1e-4);
    let right = Region {
        x: 2,
        y: 0,
        width: 2,
        height: 2,
    };
    let r = t.region_stats(&right).unwrap();
    assert_eq!((r.min_c, r.max_c), (-10.0, 60.5));
    assert_eq!(
        r.hottest,
        Spot {
            x: 3,
            y: 1,
            celsius: 60.5
        }
    );
}

fn scene_with_hotspot(c: f32) -> Thermogram {
    let mut t = Thermogram::uniform(8, 6, 22.0).unwrap();
    t.celsius_mut()[3 * 8 + 5] = c; // (5,3), inside the watched region
    t.celsius_mut()[0] = 200.0; // outside the region: must be ignored
    t
}

#[test]
fn region_rule_fires_after_hold_and_clears_with_hysteresis() {
    let spec = RuleSpec {
        id: "boiler".into(),
        region: Some(Region {
            x: 4,
            y: 2,
            width: 4,
            height: 4,
        }),
        statistic: Statistic::Max,
        comparison: Comparison::Above,
        threshold_c: 60.0,
        hold_ms: 10_000,
        hysteresis_c: 5.0,
        clear_hold_ms: 0,
    };
    let mut engine = RuleEngine::new(vec![spec], 8, 6).unwrap();
    let clock = ManualClock::new(1_000);
    let mut step = |c: f32, advance_ms: u64| {
        clock.advance_ms(advance_ms);
        engine
            .evaluate(clock.now_ms(), &scene_with_hotspot(c))
            .unwrap()
    };
    assert!(step(30.0, 0).is_empty());
    // Above for 9 s: nothing yet.
    assert!(step(65.0, 1000).is_empty());
    for _ in 0..9 {
        assert!(step(66.0, 1000).is_empty());
    }
    // 10 s after the first reading above: fires once, with the spot.
    let ev = step(67.0, 1000);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].transition, RuleTransition::Fired);
    assert_eq!(
        ev[0].spot,
        Spot {
            x: 5,
            y: 3,
            celsius: 67.0
        }
    );
    assert_eq!(ev[0].at_ms, 12_000);
    assert!(step(70.0, 1000).is_empty());
    // Below the threshold but inside the hysteresis band: still active.
    assert!(step(57.0, 1000).is_empty());
    assert!(step(55.5, 1000).is_empty());
    // Past the band: clears.
    let ev = step(54.9, 1000);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].transition, RuleTransition::Cleared);
    // A short spike does not fire again.
    assert!(step(90.0, 1000).is_empty());
    assert!(step(30.0, 1000).is_empty());
    assert!(step(90.0, 1000).is_empty());
    assert!(step(90.0, 9_999).is_empty());
    assert_eq!(step(90.0, 1).len(), 1);
}

#[test]
fn rule_regions_are_checked_up_front() {
    let spec = RuleSpec {
        id: "x".into(),
        region: Some(Region {
            x: 6,
            y: 0,
            width: 4,
            height: 1,
        }),
        statistic: Statistic::Mean,
        comparison: Comparison::Above,
        threshold_c: 1.0,
        hold_ms: 0,
        hysteresis_c: 0.0,
        clear_hold_ms: 0,
    };
    assert!(matches!(
        RuleEngine::new(vec![spec], 8, 6),
        Err(ThermalError::RegionOutside { .. })
    ));
}

#[test]
fn colourised_frame_with_overlay() {
    let t = scene_with_hotspot(80.0);
    let (mut img, lo, hi) = colourise(&t, Palette::Ironbow, ColourRange::Auto).unwrap();
    assert_eq!((lo, hi), (22.0, 200.0));
    assert_eq!(img.pixel(0, 0), Some([255, 255, 255]));
    assert_eq!(img.pixel(1, 0), Some([0, 0, 0]));
    draw_hotspot_overlay(&mut img, &t.stats().hottest);
    assert_eq!(img.data.len(), 8 * 6 * 3);
}
