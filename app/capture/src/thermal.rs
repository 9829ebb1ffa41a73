//! Thermal cameras: raw radiometric frames (V4L2 Y16 / split frames, or the `thermal_tcp`
//! framing) through `watchpost-thermal` into temperatures, statistics, rule events and a
//! colourised picture.
//!
//! [`ThermalProcessor`] is plain code (frame in, results out, time from the caller) so it is
//! tested without media; the pipeline calls it on its streaming thread for every frame, pushes
//! the picture into the encoder (the camera is then recorded, snapshotted and restreamed like
//! any other) and writes it into the camera's view ring for the RTSP worker, and hands
//! statistics and rule events to the worker's main loop, which publishes them on the bus.

use watchpost_config::capture::{
    RuleComparison, RuleStatistic, ThermalConfig, ThermalFormat, ThermalPalette,
};
use watchpost_contract::capture::{
    ThermalEvent, ThermalRuleState, ThermalRuleStatus, ThermalSpot, ThermalStatistics,
    ThermalTransition,
};
use watchpost_thermal::{
    ColourRange, Comparison, Palette, RawFormat, Region, RgbImage, RuleEngine, RuleEvent, RuleSpec,
    RuleState, RuleTransition, Spot, Statistic, ThermalError, Thermogram,
};

/// Pictures narrower than this are enlarged by a whole factor (nearest neighbour) so the
/// overlay stays readable on a restream.
pub const VIEW_MIN_WIDTH: u32 = 640;
/// Largest enlargement.
pub const VIEW_MAX_FACTOR: u32 = 8;

/// A thermal camera's figures every `stats_interval_ms`, published as [`ThermalStatistics`]
/// with the camera and the time ([`ThermalStats::statistics`]). Temperatures are rounded to
/// 0.01 °C (the finest resolution of the raw formats).
#[derive(Debug, Clone, PartialEq)]
pub struct ThermalStats {
    pub width: u32,
    pub height: u32,
    pub min_c: f64,
    pub max_c: f64,
    pub mean_c: f64,
    pub hottest: ThermalSpot,
    pub coldest: ThermalSpot,
    /// Each rule's standing, with the statistics of its region (the whole thermogram for a
    /// rule without one).
    pub rules: Vec<ThermalRuleStatus>,
}

impl ThermalStats {
    /// The published document: these figures of `camera` at `at` (RFC 3339).
    pub fn statistics(self, camera: &str, at: String) -> ThermalStatistics {
        ThermalStatistics {
            camera: camera.to_string(),
            at,
            width: self.width,
            height: self.height,
            min_c: self.min_c,
            max_c: self.max_c,
            mean_c: self.mean_c,
            hottest: self.hottest,
            coldest: self.coldest,
            rules: self.rules,
        }
    }
}

/// `v` rounded to 0.01 °C, as published.
pub fn centi(v: f32) -> f64 {
    (f64::from(v) * 100.0).round() / 100.0
}

/// A spot as published: its temperature rounded to 0.01 °C.
pub fn spot(s: Spot) -> ThermalSpot {
    ThermalSpot {
        x: s.x,
        y: s.y,
        celsius: centi(s.celsius),
    }
}

/// The published event of rule event `e` of `camera` at `at` (RFC 3339).
pub fn event(camera: &str, e: &RuleEvent, at: String) -> ThermalEvent {
    ThermalEvent {
        camera: camera.to_string(),
        rule: e.rule_id.clone(),
        event: match e.transition {
            RuleTransition::Fired => ThermalTransition::Fired,
            RuleTransition::Cleared => ThermalTransition::Cleared,
        },
        value_c: centi(e.value_c),
        threshold_c: centi(e.threshold_c),
        spot: spot(e.spot),
        at,
    }
}

/// The outcome of one frame.
#[derive(Debug)]
pub struct Processed {
    /// The colourised (and enlarged, overlaid) picture.
    pub view: RgbImage,
    /// Statistics, when `stats_interval_ms` has passed since the last ones.
    pub stats: Option<ThermalStats>,
    pub events: Vec<RuleEvent>,
}

/// Turns raw frames of one camera into pictures, statistics and rule events.
#[derive(Debug)]
pub struct ThermalProcessor {
    format: RawFormat,
    palette: Palette,
    range: ColourRange,
    overlay: bool,
    specs: Vec<RuleSpec>,
    engine: Option<RuleEngine>,
    /// The thermogram size the engine was built for.
    size: Option<(u32, u32)>,
    stats_interval_ms: u64,
    last_stats_ms: Option<u64>,
}

/// The thermal crate's format for the config's.
pub fn raw_format(f: ThermalFormat) -> RawFormat {
    match f {
        ThermalFormat::Centikelvin16 => RawFormat::CentiKelvin16,
        ThermalFormat::SplitFrame => RawFormat::SplitFrame,
    }
}

fn palette(p: ThermalPalette) -> Palette {
    match p {
        ThermalPalette::Ironbow => Palette::Ironbow,
        ThermalPalette::Rainbow => Palette::Rainbow,
        ThermalPalette::WhiteHot => Palette::WhiteHot,
        ThermalPalette::BlackHot => Palette::BlackHot,
    }
}

fn statistic(s: RuleStatistic) -> Statistic {
    match s {
        RuleStatistic::Max => Statistic::Max,
        RuleStatistic::Mean => Statistic::Mean,
        RuleStatistic::Min => Statistic::Min,
    }
}

fn comparison(c: RuleComparison) -> Comparison {
    match c {
        RuleComparison::Above => Comparison::Above,
        RuleComparison::Below => Comparison::Below,
    }
}

impl ThermalProcessor {
    /// From a camera's `[thermal]` table (already validated by the config check).
    pub fn from_config(t: &ThermalConfig) -> Self {
        let specs = t
            .rules
            .iter()
            .map(|r| RuleSpec {
                id: r.id.to_string(),
                region: r.region.map(|g| Region {
                    x: g.x,
                    y: g.y,
                    width: g.width,
                    height: g.height,
                }),
                statistic: statistic(r.statistic),
                comparison: comparison(r.comparison),
                threshold_c: r.threshold_c,
                hold_ms: r.hold_ms,
                hysteresis_c: r.hysteresis_c,
                clear_hold_ms: r.clear_hold_ms,
            })
            .collect();
        Self {
            format: raw_format(t.format),
            palette: palette(t.palette),
            range: match (t.range_min_c, t.range_max_c) {
                (Some(min_c), Some(max_c)) => ColourRange::Fixed { min_c, max_c },
                _ => ColourRange::Auto,
            },
            overlay: t.overlay,
            specs,
            engine: None,
            size: None,
            stats_interval_ms: t.stats_interval_ms.max(1),
            last_stats_ms: None,
        }
    }

    pub fn format(&self) -> RawFormat {
        self.format
    }

    /// Processes one delivered buffer of `width x height` (the delivered size: a split frame
    /// is twice as tall as its thermogram) at `now_ms` of a monotonic clock.
    pub fn process(
        &mut self,
        now_ms: u64,
        width: u32,
        height: u32,
        bytes: &[u8],
    ) -> Result<Processed, ThermalError> {
        let t = watchpost_thermal::decode(self.format, width, height, bytes)?;
        let size = (t.width(), t.height());
        if self.size != Some(size) {
            // First frame, or the camera changed its size: regions are checked against it.
            self.engine = Some(RuleEngine::new(self.specs.clone(), size.0, size.1)?);
            self.size = Some(size);
        }
        let events = match self.engine.as_mut() {
            Some(e) => e.evaluate(now_ms, &t)?,
            None => Vec::new(),
        };
        let stats = self.stats_due(now_ms).then(|| self.stats(&t));
        let view = self.view(&t)?;
        Ok(Processed {
            view,
            stats,
            events,
        })
    }

    fn stats_due(&mut self, now_ms: u64) -> bool {
        match self.last_stats_ms {
            Some(last) if now_ms.saturating_sub(last) < self.stats_interval_ms => false,
            _ => {
                self.last_stats_ms = Some(now_ms);
                true
            }
        }
    }

    fn stats(&self, t: &Thermogram) -> ThermalStats {
        let s = t.stats();
        let rules = self
            .engine
            .as_ref()
            .map(|e| {
                e.rules()
                    .iter()
                    .map(|r| {
                        // The engine checked the region against this thermogram's size.
                        let rs = r
                            .spec()
                            .region
                            .and_then(|g| t.region_stats(&g).ok())
                            .unwrap_or(s);
                        ThermalRuleStatus {
                            id: r.spec().id.clone(),
                            state: match r.state() {
                                RuleState::Normal => ThermalRuleState::Normal,
                                RuleState::Pending { .. } => ThermalRuleState::Pending,
                                RuleState::Active { .. } => ThermalRuleState::Active,
                            },
                            min_c: centi(rs.min_c),
                            max_c: centi(rs.max_c),
                            mean_c: centi(rs.mean_c),
                            hottest: spot(rs.hottest),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        ThermalStats {
            width: t.width(),
            height: t.height(),
            min_c: centi(s.min_c),
            max_c: centi(s.max_c),
            mean_c: centi(s.mean_c),
            hottest: spot(s.hottest),
            coldest: spot(s.coldest),
            rules,
        }
    }

    /// The colourised picture: enlarged to at least [`VIEW_MIN_WIDTH`] where a whole factor
    /// allows, with the hottest spot marked.
    pub fn view(&self, t: &Thermogram) -> Result<RgbImage, ThermalError> {
        let (img, _, _) = watchpost_thermal::colourise(t, self.palette, self.range)?;
        let k = view_factor(t.width());
        let mut img = img.upscale(k);
        if self.overlay {
            let h = t.stats().hottest;
            let spot = Spot {
                x: h.x * k + k / 2,
                y: h.y * k + k / 2,
                celsius: h.celsius,
            };
            watchpost_thermal::draw_hotspot_overlay(&mut img, &spot);
        }
        Ok(img)
    }
}

/// The enlargement for a thermogram `width` pixels wide.
pub fn view_factor(width: u32) -> u32 {
    VIEW_MIN_WIDTH
        .div_ceil(width.max(1))
        .clamp(1, VIEW_MAX_FACTOR)
}

/// Whether a rule event starts (`Fired`) or ends (`Cleared`) an alarm condition.
pub fn is_fired(e: &RuleEvent) -> bool {
    e.transition == RuleTransition::Fired
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use watchpost_config::capture::{RegionConfig, ThermalRuleConfig};
    use watchpost_config::types::Ident;
    use watchpost_thermal::synthetic::Scene;

    fn config(format: ThermalFormat) -> ThermalConfig {
        let scene = Scene::default();
        ThermalConfig {
            format,
            palette: ThermalPalette::Ironbow,
            overlay: true,
            range_min_c: None,
            range_max_c: None,
            stats_interval_ms: 1000,
            rules: vec![ThermalRuleConfig {
                id: "hot".parse::<Ident>().unwrap(),
                region: Some(RegionConfig {
                    x: scene.hot.x,
                    y: scene.hot.y,
                    width: scene.hot.width,
                    height: scene.hot.height,
                }),
                statistic: RuleStatistic::Max,
                comparison: RuleComparison::Above,
                threshold_c: 50.0,
                hold_ms: 2000,
                hysteresis_c: 2.0,
                clear_hold_ms: 0,
            }],
        }
    }

    #[test]
    fn synthetic_scene_gives_exact_stats_and_a_large_view() {
        let scene = Scene::default();
        for format in [ThermalFormat::Centikelvin16, ThermalFormat::SplitFrame] {
            let mut p = ThermalProcessor::from_config(&config(format));
            let (w, h, raw) = scene.raw(raw_format(format), true).unwrap();
            let out = p.process(0, w, h, &raw).unwrap();
            let s = out.stats.unwrap();
            assert_eq!((s.width, s.height), (160, 120));
            assert_eq!((s.min_c, s.max_c), (5.10, 65.35));
            assert_eq!((s.hottest.x, s.hottest.y), (scene.hot.x, scene.hot.y));
            assert_eq!(s.rules[0].state, ThermalRuleState::Pending);
            let published = s
                .clone()
                .statistics("cam", "2026-11-22T10:00:00.000Z".into());
            assert_eq!((published.camera.as_str(), published.max_c), ("cam", 65.35));
            // The rule's region is the hot block: its own statistics.
            let r = &s.rules[0];
            assert_eq!((r.min_c, r.max_c, r.mean_c), (65.35, 65.35, 65.35));
            assert_eq!((r.hottest.x, r.hottest.y), (scene.hot.x, scene.hot.y));
            assert_eq!((out.view.width, out.view.height), (640, 480));
            let (_, _, cool) = scene.raw(raw_format(format), false).unwrap();
            let mut q = ThermalProcessor::from_config(&config(format));
            let r = &q.process(0, w, h, &cool).unwrap().stats.unwrap().rules[0];
            assert_eq!((r.min_c, r.max_c, r.mean_c), (22.10, 22.10, 22.10));
            // Statistics again only after the interval.
            assert!(p.process(500, w, h, &raw).unwrap().stats.is_none());
            assert!(p.process(1000, w, h, &raw).unwrap().stats.is_some());
        }
    }

    #[test]
    fn rule_fires_after_hold_and_clears_with_hysteresis() {
        let scene = Scene::default();
        let mut p = ThermalProcessor::from_config(&config(ThermalFormat::Centikelvin16));
        let (w, h, hot) = scene.raw(RawFormat::CentiKelvin16, true).unwrap();
        let (_, _, cool) = scene.raw(RawFormat::CentiKelvin16, false).unwrap();
        let mut fired_at = None;
        for t in (0..=3000).step_by(250) {
            let out = p.process(t, w, h, &hot).unwrap();
            if let Some(e) = out.events.first() {
                assert!(is_fired(e));
                assert_eq!((e.rule_id.as_str(), e.value_c), ("hot", 65.35));
                let published = event("cam", e, "2026-11-22T10:00:00.000Z".into());
                assert_eq!(
                    (published.event, published.value_c, published.threshold_c),
                    (ThermalTransition::Fired, 65.35, 50.0)
                );
                assert_eq!(
                    (published.spot.x, published.spot.y),
                    (scene.hot.x, scene.hot.y)
                );
                fired_at.get_or_insert(t);
            }
        }
        assert_eq!(fired_at, Some(2000));
        let out = p.process(3250, w, h, &cool).unwrap();
        assert_eq!(out.events.len(), 1);
        assert!(!is_fired(&out.events[0]));
        assert_eq!(
            event("cam", &out.events[0], String::new()).event,
            ThermalTransition::Cleared
        );
        assert_eq!(out.events[0].value_c, 22.10);
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let mut p = ThermalProcessor::from_config(&config(ThermalFormat::Centikelvin16));
        assert!(p.process(0, 160, 120, &[0; 10]).is_err());
    }

    #[test]
    fn view_factors() {
        assert_eq!(view_factor(160), 4);
        assert_eq!(view_factor(80), 8);
        assert_eq!(view_factor(256), 3);
        assert_eq!(view_factor(640), 1);
        assert_eq!(view_factor(1024), 1);
        assert_eq!(view_factor(20), 8);
    }
}
