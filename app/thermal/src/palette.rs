//! Palettes: temperatures to colours.

use serde::{Deserialize, Serialize};

use crate::{ThermalError, Thermogram};

/// A colour map from cold to hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Palette {
    /// Black through violet, red and orange to white: the classic thermography look.
    #[default]
    Ironbow,
    /// Blue through cyan, green and yellow to red.
    Rainbow,
    /// Grey scale, hot is white.
    WhiteHot,
    /// Grey scale, hot is black.
    BlackHot,
}

/// Which temperatures map to the ends of the palette.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ColourRange {
    /// The frame's own minimum and maximum (contrast follows the scene).
    #[default]
    Auto,
    /// A fixed span, so a colour always means the same temperature.
    Fixed { min_c: f32, max_c: f32 },
}

/// An 8-bit RGB picture, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    pub fn set_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            self.data[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Each pixel repeated `factor` times in both directions (nearest neighbour), so a small
    /// thermogram can carry a readable overlay; a factor of 0 or 1 returns a copy.
    #[must_use]
    pub fn upscale(&self, factor: u32) -> RgbImage {
        let k = factor.max(1) as usize;
        if k == 1 {
            return self.clone();
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = Vec::with_capacity(w * h * k * k * 3);
        for y in 0..h {
            let row_start = data.len();
            for px in self.data[y * w * 3..(y + 1) * w * 3].chunks_exact(3) {
                for _ in 0..k {
                    data.extend_from_slice(px);
                }
            }
            let row_end = data.len();
            for _ in 1..k {
                data.extend_from_within(row_start..row_end);
            }
        }
        RgbImage {
            width: self.width * k as u32,
            height: self.height * k as u32,
            data,
        }
    }
}

type Stop = (f32, [u8; 3]);

const IRONBOW: &[Stop] = &[
    (0.00, [0, 0, 0]),
    (0.15, [30, 0, 90]),
    (0.35, [135, 0, 145]),
    (0.55, [215, 45, 35]),
    (0.75, [248, 145, 0]),
    (0.90, [255, 220, 60]),
    (1.00, [255, 255, 255]),
];
const RAINBOW: &[Stop] = &[
    (0.00, [0, 0, 255]),
    (0.25, [0, 255, 255]),
    (0.50, [0, 255, 0]),
    (0.75, [255, 255, 0]),
    (1.00, [255, 0, 0]),
];
const WHITE_HOT: &[Stop] = &[(0.0, [0, 0, 0]), (1.0, [255, 255, 255])];
const BLACK_HOT: &[Stop] = &[(0.0, [255, 255, 255]), (1.0, [0, 0, 0])];

impl Palette {
    fn stops(self) -> &'static [Stop] {
        match self {
            Palette::Ironbow => IRONBOW,
            Palette::Rainbow => RAINBOW,
            Palette::WhiteHot => WHITE_HOT,
            Palette::BlackHot => BLACK_HOT,
        }
    }

    /// The colour at position `t` in 0..=1 (clamped).
    pub fn colour(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let stops = self.stops();
        for pair in stops.windows(2) {
            let ((t0, c0), (t1, c1)) = (pair[0], pair[1]);
            if t <= t1 {
                let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
                let mix =
                    |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * f).round() as u8;
                return [mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2])];
            }
        }
        stops.last().map_or([0, 0, 0], |s| s.1)
    }

    /// 256 precomputed colours, index 0 coldest.
    pub fn lut(self) -> [[u8; 3]; 256] {
        let mut lut = [[0u8; 3]; 256];
        for (i, c) in lut.iter_mut().enumerate() {
            *c = self.colour(i as f32 / 255.0);
        }
        lut
    }
}

/// Colours a thermogram. Returns the image and the temperatures its ends stand for.
pub fn colourise(
    t: &Thermogram,
    palette: Palette,
    range: ColourRange,
) -> Result<(RgbImage, f32, f32), ThermalError> {
    let (min_c, max_c) = match range {
        ColourRange::Auto => {
            let s = t.stats();
            (s.min_c, s.max_c)
        }
        ColourRange::Fixed { min_c, max_c } => {
            if !(min_c.is_finite() && max_c.is_finite() && max_c > min_c) {
                return Err(ThermalError::ColourRange { min_c, max_c });
            }
            (min_c, max_c)
        }
    };
    let span = max_c - min_c;
    let lut = palette.lut();
    let mut data = Vec::with_capacity(t.celsius().len() * 3);
    for &c in t.celsius() {
        let idx = if span > 0.0 {
            (((c - min_c) / span) * 255.0).round().clamp(0.0, 255.0) as usize
        } else {
            0
        };
        data.extend_from_slice(&lut[idx]);
    }
    Ok((
        RgbImage {
            width: t.width(),
            height: t.height(),
            data,
        },
        min_c,
        max_c,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_ends_and_monotone_grey() {
        assert_eq!(Palette::WhiteHot.colour(0.0), [0, 0, 0]);
        assert_eq!(Palette::WhiteHot.colour(1.0), [255, 255, 255]);
        assert_eq!(Palette::BlackHot.colour(1.0), [0, 0, 0]);
        assert_eq!(Palette::Ironbow.colour(1.0), [255, 255, 255]);
        assert_eq!(Palette::Rainbow.colour(0.0), [0, 0, 255]);
        assert_eq!(Palette::Rainbow.colour(1.0), [255, 0, 0]);
        let lut = Palette::WhiteHot.lut();
        assert!(lut.windows(2).all(|w| w[0][0] <= w[1][0]));
    }

    #[test]
    fn upscale_repeats_pixels() {
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let big = img.upscale(2);
        assert_eq!((big.width, big.height), (4, 2));
        assert_eq!(big.pixel(1, 1), Some([1, 2, 3]));
        assert_eq!(big.pixel(2, 0), Some([4, 5, 6]));
        assert_eq!(big.data.len(), 4 * 2 * 3);
        assert_eq!(img.upscale(0), img);
    }

    #[test]
    fn colourise_maps_min_and_max_to_the_ends() {
        let mut t = Thermogram::uniform(2, 1, 10.0).unwrap();
        t.celsius_mut()[1] = 30.0;
        let (img, lo, hi) = colourise(&t, Palette::WhiteHot, ColourRange::Auto).unwrap();
        assert_eq!((lo, hi), (10.0, 30.0));
        assert_eq!(img.pixel(0, 0), Some([0, 0, 0]));
        assert_eq!(img.pixel(1, 0), Some([255, 255, 255]));
        let fixed = ColourRange::Fixed {
            min_c: 0.0,
            max_c: 40.0,
        };
        let (img, _, _) = colourise(&t, Palette::WhiteHot, fixed).unwrap();
        assert_eq!(img.pixel(0, 0), Some([64, 64, 64]));
        let bad = ColourRange::Fixed {
            min_c: 5.0,
            max_c: 5.0,
        };
        assert!(colourise(&t, Palette::Ironbow, bad).is_err());
    }
}
