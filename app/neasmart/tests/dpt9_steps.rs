//! DPT 9 over the whole range the gateway accepts: every 0.01 °C step from −50 to +120 °C
//! encodes to the nearest representable value and decodes back to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use watchpost_neasmart::dpt9;

#[test]
fn every_hundredth_from_minus_50_to_120_round_trips() {
    for centi in -5000i64..=12000 {
        let celsius = centi as f64 / 100.0;
        let raw = dpt9::encode(celsius).expect("in range");
        assert_eq!(Some(raw), dpt9::encode_centi(centi), "{celsius}");
        let back = dpt9::decode_centi(raw);
        let step = dpt9::resolution(centi);
        // Nearest representable value: off by at most half a step (a half rounds away
        // from zero, so exactly half a step is allowed).
        assert!(
            (back - centi).abs() * 2 <= step,
            "{celsius} °C -> {raw:#06x} -> {back} (step {step})"
        );
        // Below 20.48 °C the resolution is 0.01 °C, so the value comes back exactly.
        if centi.abs() < 2048 {
            assert_eq!(back, centi, "{celsius}");
        }
        // Representable values are fixed points (possibly with another exponent: −40.96 is
        // both −2048·2¹ and −1024·2²).
        let again = dpt9::encode_centi(back).expect("representable");
        assert_eq!(dpt9::decode_centi(again), back, "{celsius}");
        // And the checked decoder agrees, except for the standby sentinel −17.70 °C.
        if raw == dpt9::NOT_APPLICABLE {
            assert_eq!(centi, -1770);
            assert_eq!(dpt9::decode(raw), None);
        } else {
            assert_eq!(dpt9::decode(raw), Some(back as f64 / 100.0), "{celsius}");
        }
    }
}
