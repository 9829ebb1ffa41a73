//! KNX DPT 9 "2-octet float", the encoding of every Neasmart temperature register.
//!
//! Layout `M EEEE MMM MMMMMMMM`: a 12-bit two's-complement mantissa (sign in bit 15, the rest in
//! bits 10..0) and a 4-bit exponent; value = 0.01 · M · 2^E. Values are handled here in
//! hundredths of a degree ([`Centi`]) so that every conversion is exact integer arithmetic;
//! floats appear only at the edges ([`encode`], [`decode`]).
//!
//! Encoding picks the smallest exponent whose mantissa fits and **rounds** the mantissa to the
//! nearest (halves away from zero): truncating would turn 19.9 °C into 19.89 °C.

/// A temperature in hundredths of a degree Celsius.
pub type Centi = i64;

/// KNX "invalid data": REHAU sends it for uninitialised temperatures.
pub const INVALID: u16 = 0x7FFF;
/// The REHAU "not applicable" setpoint (−17.70 °C), sent e.g. in standby.
pub const NOT_APPLICABLE: u16 = 0x8116;
/// Decoded values outside this range (hundredths of °C) are treated as "no value".
pub const PLAUSIBLE: std::ops::RangeInclusive<Centi> = -5000..=12000;
/// The largest magnitude DPT 9 can carry, in hundredths (2047 · 2^15).
pub const MAX_CENTI: Centi = 2047 << 15;
/// The most negative value DPT 9 can carry, in hundredths (−2048 · 2^15).
pub const MIN_CENTI: Centi = -2048 << 15;

/// Divides rounding halves away from zero (`d` > 0).
fn div_round(n: Centi, d: Centi) -> Centi {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

/// Encodes hundredths of a degree; `None` if the value is outside what DPT 9 can carry.
pub fn encode_centi(value: Centi) -> Option<u16> {
    for e in 0..16u32 {
        let m = div_round(value, 1 << e);
        if (-2048..=2047).contains(&m) {
            let sign = u16::from(m < 0);
            // The 12-bit two's complement of m: its low 11 bits plus the sign bit.
            let low = (m & 0x7FF) as u16;
            return Some((sign << 15) | ((e as u16) << 11) | low);
        }
    }
    None
}

/// Decodes to hundredths of a degree, without looking at sentinels or plausibility.
pub fn decode_centi(raw: u16) -> Centi {
    let e = (raw >> 11) & 0xF;
    let mut m = Centi::from(raw & 0x7FF);
    if raw & 0x8000 != 0 {
        m -= 2048;
    }
    m << e
}

/// Encodes degrees Celsius; `None` for NaN, infinities and values DPT 9 cannot carry.
pub fn encode(celsius: f64) -> Option<u16> {
    if !celsius.is_finite() {
        return None;
    }
    let centi = (celsius * 100.0).round();
    if centi < MIN_CENTI as f64 || centi > MAX_CENTI as f64 {
        return None;
    }
    encode_centi(centi as Centi)
}

/// Decodes a temperature register: `None` for the sentinels [`INVALID`] and
/// [`NOT_APPLICABLE`] and for values outside −50..=120 °C.
pub fn decode(raw: u16) -> Option<f64> {
    decode_checked(raw).map(|c| c as f64 / 100.0)
}

/// [`decode`] in hundredths.
pub fn decode_checked(raw: u16) -> Option<Centi> {
    if raw == INVALID || raw == NOT_APPLICABLE {
        return None;
    }
    let c = decode_centi(raw);
    PLAUSIBLE.contains(&c).then_some(c)
}

/// The step between neighbouring encodable values around `centi` (1 below 20.48 °C, 2 up to
/// 40.94 °C, 4 beyond, ...), in hundredths.
pub fn resolution(centi: Centi) -> Centi {
    encode_centi(centi).map_or(1, |raw| 1 << ((raw >> 11) & 0xF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table() {
        let table: [(f64, u16); 12] = [
            (0.00, 0x0000),
            (7.00, 0x02BC),
            (19.90, 0x07C6),
            (20.00, 0x07D0),
            (20.47, 0x07FF),
            (20.50, 0x0C01),
            (21.50, 0x0C33),
            (22.50, 0x0C65),
            (35.00, 0x0ED6),
            (45.00, 0x1465),
            (-5.00, 0x860C),
            (-17.70, 0x8116),
        ];
        for (v, raw) in table {
            assert_eq!(encode(v), Some(raw), "{v}");
            assert_eq!(decode_centi(raw), (v * 100.0_f64).round() as Centi, "{v}");
        }
        // 22.5 °C is 3173, not the 28729 of a widely copied README.
        assert_eq!(encode(22.5), Some(3173));
        assert_eq!(decode(28729), None);
    }

    #[test]
    fn sentinels_and_range() {
        assert_eq!(decode(INVALID), None);
        assert_eq!(decode(NOT_APPLICABLE), None);
        assert_eq!(decode_centi(INVALID), 67_076_096);
        assert_eq!(decode(encode(-50.0).unwrap()), Some(-50.0));
        assert_eq!(decode(encode(120.0).unwrap()), Some(120.0));
        assert_eq!(decode(encode(-50.02).unwrap()), None);
        assert_eq!(decode(encode(120.04).unwrap()), None);
    }

    #[test]
    fn rounds_instead_of_truncating() {
        // 0.29 and 19.9 lost a hundredth when the mantissa was truncated.
        assert_eq!(decode(encode(0.29).unwrap()), Some(0.29));
        assert_eq!(decode(encode(19.9).unwrap()), Some(19.9));
        // Above 20.48 the step is 0.02: 20.49 rounds half away from zero to 20.50.
        assert_eq!(decode(encode(20.49).unwrap()), Some(20.5));
        assert_eq!(decode(encode(-20.49).unwrap()), Some(-20.5));
        assert_eq!(decode(encode(20.51).unwrap()), Some(20.52));
    }

    #[test]
    fn rejects_what_cannot_be_carried() {
        assert_eq!(encode(f64::NAN), None);
        assert_eq!(encode(f64::INFINITY), None);
        assert_eq!(encode(1.0e9), None);
        assert!(encode(670_760.96).is_some());
        assert!(encode(-671_088.64).is_some());
        assert_eq!(encode(670_800.0), None);
    }

    #[test]
    fn every_raw_value_is_stable() {
        // Decoding then encoding lands on a raw value that decodes to the same number.
        for raw in 0..=u16::MAX {
            let c = decode_centi(raw);
            let again = encode_centi(c).expect("a decoded value is encodable");
            assert_eq!(decode_centi(again), c, "raw {raw:#06x}");
        }
    }
}
