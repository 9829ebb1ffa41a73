//! The temperature matrix and its statistics.

use serde::{Deserialize, Serialize};

use crate::ThermalError;

/// A frame of temperatures in °C, row-major, `width * height` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Thermogram {
    width: u32,
    height: u32,
    celsius: Vec<f32>,
}

/// A rectangle of pixels, `x`/`y` its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One pixel and its temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spot {
    pub x: u32,
    pub y: u32,
    pub celsius: f32,
}

/// Statistics over a frame or a region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub min_c: f32,
    pub max_c: f32,
    pub mean_c: f32,
    /// The hottest pixel (the first in row-major order on ties).
    pub hottest: Spot,
    /// The coldest pixel (the first in row-major order on ties).
    pub coldest: Spot,
    pub pixels: u32,
}

impl Thermogram {
    /// Builds a thermogram from row-major values.
    pub fn new(width: u32, height: u32, celsius: Vec<f32>) -> Result<Self, ThermalError> {
        if width == 0 || height == 0 || celsius.len() != width as usize * height as usize {
            return Err(ThermalError::ThermogramSize {
                width,
                height,
                len: celsius.len(),
            });
        }
        Ok(Self {
            width,
            height,
            celsius,
        })
    }

    /// A thermogram where every pixel is `celsius`.
    pub fn uniform(width: u32, height: u32, celsius: f32) -> Result<Self, ThermalError> {
        Self::new(
            width,
            height,
            vec![celsius; width as usize * height as usize],
        )
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The values, row-major.
    pub fn celsius(&self) -> &[f32] {
        &self.celsius
    }
    /// Mutable values, row-major (for building synthetic scenes).
    pub fn celsius_mut(&mut self) -> &mut [f32] {
        &mut self.celsius
    }

    /// The temperature at (`x`, `y`), or `None` outside the frame.
    pub fn at(&self, x: u32, y: u32) -> Option<f32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.celsius
            .get(y as usize * self.width as usize + x as usize)
            .copied()
    }

    /// The whole frame as a region.
    pub fn full_region(&self) -> Region {
        Region {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// Checks that `region` is non-empty and lies inside the frame.
    pub fn check_region(&self, region: &Region) -> Result<(), ThermalError> {
        let fits = region.width > 0
            && region.height > 0
            && u64::from(region.x) + u64::from(region.width) <= u64::from(self.width)
            && u64::from(region.y) + u64::from(region.height) <= u64::from(self.height);
        if fits {
            Ok(())
        } else {
            Err(ThermalError::RegionOutside {
                x: region.x,
                y: region.y,
                width: region.width,
                height: region.height,
                frame_width: self.width,
                frame_height: self.height,
            })
        }
    }

    /// Statistics of the whole frame.
    pub fn stats(&self) -> Stats {
        // The full region always fits a valid thermogram.
        self.region_stats_unchecked(&self.full_region())
    }

    /// Statistics of `region`.
    pub fn region_stats(&self, region: &Region) -> Result<Stats, ThermalError> {
        self.check_region(region)?;
        Ok(self.region_stats_unchecked(region))
    }

    fn region_stats_unchecked(&self, r: &Region) -> Stats {
        let w = self.width as usize;
        let mut hottest = Spot {
            x: r.x,
            y: r.y,
            celsius: f32::NEG_INFINITY,
        };
        let mut coldest = Spot {
            x: r.x,
            y: r.y,
            celsius: f32::INFINITY,
        };
        // Sum in f64: a large frame of f32 values would otherwise lose the last digits.
        let mut sum = 0f64;
        for y in r.y..r.y + r.height {
            let row = &self.celsius[y as usize * w..(y as usize + 1) * w];
            for x in r.x..r.x + r.width {
                let v = row[x as usize];
                sum += f64::from(v);
                if v > hottest.celsius {
                    hottest = Spot { x, y, celsius: v };
                }
                if v < coldest.celsius {
                    coldest = Spot { x, y, celsius: v };
                }
            }
        }
        let pixels = r.width * r.height;
        Stats {
            min_c: coldest.celsius,
            max_c: hottest.celsius,
            mean_c: (sum / f64::from(pixels)) as f32,
            hottest,
            coldest,
            pixels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_find_extremes_and_mean() {
        let mut t = Thermogram::uniform(4, 3, 20.0).unwrap();
        t.celsius_mut()[4 + 2] = 80.0; // (2,1)
        t.celsius_mut()[2 * 4 + 3] = -5.0; // (3,2)
        let s = t.stats();
        assert_eq!(
            s.hottest,
            Spot {
                x: 2,
                y: 1,
                celsius: 80.0
            }
        );
        assert_eq!(
            s.coldest,
            Spot {
                x: 3,
                y: 2,
                celsius: -5.0
            }
        );
        assert_eq!(s.pixels, 12);
        assert!((s.mean_c - (20.0 * 10.0 + 80.0 - 5.0) / 12.0).abs() < 1e-5);
        let r = Region {
            x: 0,
            y: 0,
            width: 2,
            height: 3,
        };
        let rs = t.region_stats(&r).unwrap();
        assert_eq!((rs.min_c, rs.max_c, rs.mean_c), (20.0, 20.0, 20.0));
    }

    #[test]
    fn regions_outside_are_rejected() {
        let t = Thermogram::uniform(4, 3, 20.0).unwrap();
        let r = Region {
            x: 3,
            y: 0,
            width: 2,
            height: 1,
        };
        assert!(matches!(
            t.region_stats(&r),
            Err(ThermalError::RegionOutside { x: 3, .. })
        ));
        let empty = Region {
            x: 0,
            y: 0,
            width: 0,
            height: 1,
        };
        assert!(t.region_stats(&empty).is_err());
        assert!(Thermogram::new(2, 2, vec![0.0; 3]).is_err());
    }
}
