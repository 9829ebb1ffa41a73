//! Raw radiometric formats and their conversion to and from temperatures.

use serde::{Deserialize, Serialize};

use crate::{ThermalError, Thermogram, ZERO_CELSIUS_K};

/// Kelvin per count of [`RawFormat::CentiKelvin16`].
pub const CENTIKELVIN_SCALE_K: f64 = 0.01;
/// Kelvin per count in the temperature half of [`RawFormat::SplitFrame`].
pub const SPLIT_FRAME_SCALE_K: f64 = 1.0 / 64.0;

/// How a thermal camera encodes temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFormat {
    /// `width * height` little-endian `u16`, each in 0.01 K (Lepton "Y16" with TLinear).
    CentiKelvin16,
    /// One YUYV frame of `width x 2*rows`: the first `rows` rows are the grey picture
    /// (2 bytes per pixel), the last `rows` rows one little-endian `u16` per pixel in 1/64 K.
    /// The delivered height is given to [`decode`]; the thermogram has half of it.
    SplitFrame,
}

impl RawFormat {
    pub fn name(self) -> &'static str {
        match self {
            RawFormat::CentiKelvin16 => "centikelvin16",
            RawFormat::SplitFrame => "split_frame",
        }
    }

    /// The temperature matrix's size for a delivered buffer of `width x height`.
    pub fn thermogram_size(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            RawFormat::CentiKelvin16 => (width, height),
            RawFormat::SplitFrame => (width, height / 2),
        }
    }

    /// Bytes in one delivered buffer of `width x height`.
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        // Both formats carry two bytes per delivered pixel.
        width as usize * height as usize * 2
    }
}

/// The two halves of a split frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFrame {
    /// The picture's luma, `width * rows` bytes.
    pub grey: Vec<u8>,
    pub temperatures: Thermogram,
}

fn counts_to_celsius(count: u16, scale_k: f64) -> f32 {
    (f64::from(count) * scale_k - ZERO_CELSIUS_K) as f32
}

fn celsius_to_counts(
    format: &'static str,
    celsius: f32,
    scale_k: f64,
) -> Result<u16, ThermalError> {
    let counts = ((f64::from(celsius) + ZERO_CELSIUS_K) / scale_k).round();
    if !(0.0..=f64::from(u16::MAX)).contains(&counts) {
        return Err(ThermalError::EncodeRange { format, celsius });
    }
    Ok(counts as u16)
}

fn check_length(
    format: RawFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<(), ThermalError> {
    if width == 0 || height == 0 {
        return Err(ThermalError::DecodeDimensions {
            format: format.name(),
            width,
            height,
            reason: "zero width or height",
        });
    }
    let expected = format.frame_bytes(width, height);
    if bytes.len() != expected {
        return Err(ThermalError::DecodeLength {
            format: format.name(),
            width,
            height,
            expected,
            actual: bytes.len(),
        });
    }
    Ok(())
}

fn decode_counts(bytes: &[u8], scale_k: f64) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|p| counts_to_celsius(u16::from_le_bytes([p[0], p[1]]), scale_k))
        .collect()
}

/// Converts one delivered buffer of `width x height` to temperatures.
pub fn decode(
    format: RawFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<Thermogram, ThermalError> {
    match format {
        RawFormat::CentiKelvin16 => {
            check_length(format, width, height, bytes)?;
            Thermogram::new(width, height, decode_counts(bytes, CENTIKELVIN_SCALE_K))
        }
        RawFormat::SplitFrame => decode_split_frame(width, height, bytes).map(|s| s.temperatures),
    }
}

/// Splits a split-format buffer into its picture and its temperatures.
pub fn decode_split_frame(
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<SplitFrame, ThermalError> {
    let format = RawFormat::SplitFrame;
    check_length(format, width, height, bytes)?;
    if !height.is_multiple_of(2) {
        return Err(ThermalError::DecodeDimensions {
            format: format.name(),
            width,
            height,
            reason: "a split frame has an even number of rows",
        });
    }
    let half = bytes.len() / 2;
    let (picture, temps) = bytes.split_at(half);
    // YUYV: every even byte is a luma sample.
    let grey = picture.iter().step_by(2).copied().collect();
    let temperatures =
        Thermogram::new(width, height / 2, decode_counts(temps, SPLIT_FRAME_SCALE_K))?;
    Ok(SplitFrame { grey, temperatures })
}

/// Encodes temperatures as a [`RawFormat::CentiKelvin16`] buffer (rounded to 0.01 K).
pub fn encode_centikelvin(t: &Thermogram) -> Result<Vec<u8>, ThermalError> {
    let mut out = Vec::with_capacity(t.celsius().len() * 2);
    for &c in t.celsius() {
        let n = celsius_to_counts(RawFormat::CentiKelvin16.name(), c, CENTIKELVIN_SCALE_K)?;
        out.extend_from_slice(&n.to_le_bytes());
    }
    Ok(out)
}

/// Encodes temperatures as a [`RawFormat::SplitFrame`] buffer of `width x 2*height`. The
/// picture half is a grey rendering of the same temperatures (min..max mapped to 16..235).
pub fn encode_split_frame(t: &Thermogram) -> Result<Vec<u8>, ThermalError> {
    let stats = t.stats();
    let span = (stats.max_c - stats.min_c).max(f32::EPSILON);
    let mut out = Vec::with_capacity(t.celsius().len() * 4);
    for &c in t.celsius() {
        let luma = 16.0 + (c - stats.min_c) / span * 219.0;
        out.push(luma.round().clamp(0.0, 255.0) as u8);
        out.push(128);
    }
    for &c in t.celsius() {
        let n = celsius_to_counts(RawFormat::SplitFrame.name(), c, SPLIT_FRAME_SCALE_K)?;
        out.extend_from_slice(&n.to_le_bytes());
    }
    Ok(out)
}
