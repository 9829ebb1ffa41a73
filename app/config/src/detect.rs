//! `[detect]`: object detection on frames from capture.

use serde::{Deserialize, Serialize};

/// The `[detect]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub enabled: bool,
}
