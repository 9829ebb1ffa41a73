//! Receivers and mappings added through the API: kept in the hub's settings table and merged
//! with the configuration file's `[alarms]`.

use serde::{Deserialize, Serialize};
use watchpost_config::alarms::{AlarmsConfig, MappingConfig, ReceiverConfig};
use watchpost_store::Store;

use crate::AlarmError;

/// Settings key of receivers and mappings managed through the API.
pub const MANAGED_KEY: &str = "alarms.managed";

/// Receivers and mappings added through the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Managed {
    pub receivers: Vec<ReceiverConfig>,
    pub mappings: Vec<MappingConfig>,
}

impl Managed {
    /// The file's `[alarms]` with these entries added.
    pub fn merged(&self, file: &AlarmsConfig) -> AlarmsConfig {
        let mut c = file.clone();
        c.receivers.extend(self.receivers.iter().cloned());
        c.mappings.extend(self.mappings.iter().cloned());
        c
    }
}

/// Reads the API-managed entries.
pub fn load_managed(store: &Store) -> Result<Managed, AlarmError> {
    store
        .settings()
        .get::<Managed>(MANAGED_KEY)
        .map(Option::unwrap_or_default)
        .map_err(|e| AlarmError::LoadState {
            source: Box::new(e),
        })
}
