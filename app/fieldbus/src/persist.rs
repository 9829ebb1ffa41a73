//! Persistence of the measurement registers in the worker's own redb file, SD-card friendly.
//!
//! The base rewrites its measurements every few seconds, mostly with unchanged values. Writes
//! are therefore coalesced: the main loop checks every `persist_interval` whether any
//! measurement register changed, and if so stores one snapshot (every non-zero non-command
//! register) under one settings key in one durable transaction. At most one write per interval
//! reaches the disk, none while nothing changes. Command registers are never stored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use watchpost_store::{Settings, Store, StoreError};

/// Settings key of the snapshot (the version suffix names its layout).
pub const REGISTERS_KEY: &str = "neasmart.registers.v1";

/// The stored snapshot: `[address, value]` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub registers: Vec<(u16, u16)>,
    /// Milliseconds since the Unix epoch when the snapshot was taken.
    pub saved_unix_ms: u64,
}

/// The register store of one worker.
#[derive(Debug, Clone)]
pub struct RegisterStore {
    settings: Settings,
    path: PathBuf,
}

impl RegisterStore {
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let store = Store::open(&path)?;
        Ok(Self {
            settings: store.settings(),
            path,
        })
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The last snapshot, if any.
    pub fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        self.settings.get(REGISTERS_KEY)
    }

    /// Stores `snapshot` durably (blocking: call from `spawn_blocking`).
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.settings.put(REGISTERS_KEY, snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fieldbus.redb");
        {
            let s = RegisterStore::open(path.clone()).unwrap();
            assert_eq!(s.load().unwrap(), None);
            s.save(&Snapshot {
                registers: vec![(7, 0x0C65), (102, 0x07C6)],
                saved_unix_ms: 5,
            })
            .unwrap();
        }
        let s = RegisterStore::open(path).unwrap();
        assert_eq!(
            s.load().unwrap().unwrap().registers,
            vec![(7, 0x0C65), (102, 0x07C6)]
        );
    }
}
