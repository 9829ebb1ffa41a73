//! A synthetic thermal scene with known temperatures, for the simulator's thermal camera, the
//! tests and the demo.
//!
//! The defaults are chosen so that both raw formats carry them exactly: every temperature is a
//! multiple of 0.25 K, which is a whole number of counts at 0.01 K and at 1/64 K.

use crate::{RawFormat, Region, ThermalError, Thermogram, encode_centikelvin, encode_split_frame};

/// A flat background with one hot and one cold block.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub ambient_c: f32,
    pub hot: Region,
    pub hot_c: f32,
    pub cold: Region,
    pub cold_c: f32,
}

impl Default for Scene {
    /// 160×120 (a Lepton 3's size): 22.10 °C background, a 20×20 block at (100, 40) at
    /// 65.35 °C, a 16×16 block at (20, 80) at 5.10 °C.
    fn default() -> Self {
        Self {
            width: 160,
            height: 120,
            ambient_c: 22.10,
            hot: Region {
                x: 100,
                y: 40,
                width: 20,
                height: 20,
            },
            hot_c: 65.35,
            cold: Region {
                x: 20,
                y: 80,
                width: 16,
                height: 16,
            },
            cold_c: 5.10,
        }
    }
}

fn inside(r: &Region, x: u32, y: u32) -> bool {
    x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height
}

impl Scene {
    /// The scene's temperatures; without `hot_on` the hot block is at ambient temperature.
    pub fn thermogram(&self, hot_on: bool) -> Result<Thermogram, ThermalError> {
        let mut values = Vec::with_capacity(self.width as usize * self.height as usize);
        for y in 0..self.height {
            for x in 0..self.width {
                values.push(if hot_on && inside(&self.hot, x, y) {
                    self.hot_c
                } else if inside(&self.cold, x, y) {
                    self.cold_c
                } else {
                    self.ambient_c
                });
            }
        }
        Thermogram::new(self.width, self.height, values)
    }

    /// The delivered buffer in `format`: (width, delivered height, bytes).
    pub fn raw(
        &self,
        format: RawFormat,
        hot_on: bool,
    ) -> Result<(u32, u32, Vec<u8>), ThermalError> {
        let t = self.thermogram(hot_on)?;
        Ok(match format {
            RawFormat::CentiKelvin16 => (self.width, self.height, encode_centikelvin(&t)?),
            RawFormat::SplitFrame => (self.width, self.height * 2, encode_split_frame(&t)?),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_formats_carry_the_scene_exactly() {
        let s = Scene::default();
        for format in [RawFormat::CentiKelvin16, RawFormat::SplitFrame] {
            for hot_on in [true, false] {
                let (w, h, bytes) = s.raw(format, hot_on).unwrap();
                let t = crate::decode(format, w, h, &bytes).unwrap();
                assert_eq!(t, s.thermogram(hot_on).unwrap(), "{format:?} hot={hot_on}");
                let st = t.stats();
                assert_eq!(st.min_c, 5.10);
                assert_eq!(st.max_c, if hot_on { 65.35 } else { 22.10 });
                let hot = t.region_stats(&s.hot).unwrap();
                assert_eq!(hot.mean_c, if hot_on { 65.35 } else { 22.10 });
            }
        }
    }
}
