//! Receivers and mappings added through the API: kept in the hub's settings table and merged
//! with the configuration file's `[alarms]`.
//!
//! Their secrets (a SIA receiver's AES `key`, a CHEKT `token`, any secret-named field; see
//! `watchpost_config::secrets`) are stored sealed under the device key, as `"sealed:v1:…"`
//! bound to `alarms.managed.receivers.<field>`, and opened when read. A stored secret without
//! that prefix (written before sealing) is read as clear text and sealed on the next save. A
//! sealed value that does not open is [`AlarmError::ManagedSecret`], naming its key, never
//! its value.

use std::path::Path;

use serde::{Deserialize, Serialize};
use watchpost_config::alarms::{AlarmsConfig, MappingConfig, ReceiverConfig};
use watchpost_config::secrets;
use watchpost_runtime::seal::Sealer;
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

/// Reads the API-managed entries, their secrets opened with the device key of `data_dir`.
pub fn load_managed(store: &Store, data_dir: &Path) -> Result<Managed, AlarmError> {
    let stored: Option<serde_json::Value> =
        store
            .settings()
            .get(MANAGED_KEY)
            .map_err(|e| AlarmError::LoadState {
                source: Box::new(e),
            })?;
    let Some(mut value) = stored else {
        return Ok(Managed::default());
    };
    secrets::open_json_in(data_dir, MANAGED_KEY, &mut value)
        .map_err(|source| AlarmError::ManagedSecret { source })?;
    serde_json::from_value(value).map_err(|e| AlarmError::ManagedUnreadable {
        reason: e.to_string(),
    })
}

/// Stores the API-managed entries, their secrets sealed with the device key of `data_dir`
/// (created if missing).
pub fn save_managed(store: &Store, data_dir: &Path, managed: &Managed) -> Result<(), AlarmError> {
    let mut value = serde_json::to_value(managed).map_err(|e| AlarmError::ManagedUnreadable {
        reason: e.to_string(),
    })?;
    let sealer =
        Sealer::for_data_dir(data_dir).map_err(|source| AlarmError::DeviceKey { source })?;
    secrets::seal_json(&sealer, MANAGED_KEY, &mut value)
        .map_err(|source| AlarmError::ManagedSecret { source })?;
    store
        .settings()
        .put(MANAGED_KEY, &value)
        .map_err(|e| AlarmError::SaveState {
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn receivers() -> serde_json::Value {
        serde_json::json!({
            "receivers": [{
                "type": "sia", "id": "cs", "host": "127.0.0.1:9000", "account": "1234",
                "key": KEY,
            }],
            "mappings": [],
        })
    }

    #[test]
    fn receiver_keys_are_sealed_in_the_store_and_clear_ones_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("hub.redb")).unwrap();
        // Written before sealing: a clear key loads as it is.
        store.settings().put(MANAGED_KEY, &receivers()).unwrap();
        let m = load_managed(&store, dir.path()).unwrap();
        let ReceiverConfig::Sia(r) = &m.receivers[0] else {
            panic!("not a SIA receiver")
        };
        assert_eq!(r.key.as_ref().map(|k| k.expose()), Some(KEY));

        // Saved again: sealed in the store, opened on load.
        save_managed(&store, dir.path(), &m).unwrap();
        let stored: serde_json::Value = store.settings().get(MANAGED_KEY).unwrap().unwrap();
        assert!(!stored.to_string().contains(KEY), "{stored}");
        assert!(
            stored["receivers"][0]["key"]
                .as_str()
                .unwrap()
                .starts_with(secrets::SEALED_PREFIX)
        );
        assert_eq!(load_managed(&store, dir.path()).unwrap(), m);

        // Another device key: refused, naming the key path, not the value.
        let other = tempfile::tempdir().unwrap();
        Sealer::for_data_dir(other.path()).unwrap();
        let e = load_managed(&store, other.path()).unwrap_err().to_string();
        assert!(e.contains("alarms.managed.receivers[0].key"), "{e}");
        assert!(!e.contains(KEY), "{e}");
    }
}
