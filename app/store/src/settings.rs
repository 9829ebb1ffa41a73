//! Settings: a small key → JSON value table, with a schema version and ordered migrations that
//! each run once, atomically with the version bump.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{META, META_TABLE, Store, StoreError, meta_get, meta_put};

const SETTINGS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("settings");
const SETTINGS_TABLE: &str = "settings";
const META_SCHEMA: &str = "settings.schema_version";
const MAX_KEY_LEN: usize = 128;

pub(crate) fn tables_exist(txn: &redb::ReadTransaction) -> Result<bool, StoreError> {
    crate::table_exists(txn, SETTINGS, SETTINGS_TABLE)
}

pub(crate) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SETTINGS)
        .map_err(|e| StoreError::table(SETTINGS_TABLE, e))?;
    Ok(())
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::SettingKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

fn storage(e: redb::StorageError) -> StoreError {
    StoreError::storage(SETTINGS_TABLE, e)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::SettingDecode {
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::SettingEncode {
        key: key.to_owned(),
        source,
    })
}

/// One schema step. `version` is the schema version after it ran; versions start at 1.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// Short description for logs and errors.
    pub name: &'static str,
    /// Rewrites settings inside the migration's transaction. An error rolls the step back.
    pub apply: fn(&mut SettingsTxn<'_>) -> Result<(), StoreError>,
}

/// What [`Settings::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub from: u32,
    pub to: u32,
    /// Versions applied by this call, in order.
    pub applied: Vec<u32>,
}

/// Settings access inside one migration's write transaction.
pub struct SettingsTxn<'t> {
    table: redb::Table<'t, &'static str, &'static [u8]>,
}

impl std::fmt::Debug for SettingsTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsTxn").finish_non_exhaustive()
    }
}

impl SettingsTxn<'_> {
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        check_key(key)?;
        match self.table.get(key).map_err(storage)? {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), StoreError> {
        check_key(key)?;
        let bytes = encode(key, value)?;
        self.table.insert(key, bytes.as_slice()).map_err(storage)?;
        Ok(())
    }

    pub fn remove(&mut self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        Ok(self.table.remove(key).map_err(storage)?.is_some())
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for entry in self.table.iter().map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            keys.push(k.value().to_owned());
        }
        Ok(keys)
    }
}

/// Handle to the settings table of a [`Store`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Settings {
    store: Store,
}

impl Settings {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// The value under `key`, parsed from JSON as `T`; `None` if absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        check_key(key)?;
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(SETTINGS)
            .map_err(|e| StoreError::table(SETTINGS_TABLE, e))?;
        match table.get(key).map_err(storage)? {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` as JSON under `key` with a durable commit.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.write(|txn| txn.put(key, value))
    }

    /// Deletes `key` with a durable commit. Returns whether it existed.
    pub fn remove(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|txn| txn.remove(key))
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.store.db().begin_read()?;
        let table = txn
            .open_table(SETTINGS)
            .map_err(|e| StoreError::table(SETTINGS_TABLE, e))?;
        let mut keys = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            keys.push(k.value().to_owned());
        }
        Ok(keys)
    }

    /// Runs `f` against the settings in one write transaction and commits it durably if `f`
    /// succeeds (several puts become atomic).
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut SettingsTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.store.begin_write()?;
        let result = {
            let table = txn
                .open_table(SETTINGS)
                .map_err(|e| StoreError::table(SETTINGS_TABLE, e))?;
            let mut s = SettingsTxn { table };
            f(&mut s)?
        };
        txn.commit()?;
        Ok(result)
    }

    /// The schema version the settings are at: 0 for a new store, else the last migration run.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let txn = self.store.db().begin_read()?;
        let meta = txn
            .open_table(META)
            .map_err(|e| StoreError::table(META_TABLE, e))?;
        schema_from_meta(&meta)
    }

    /// Runs, in order, each migration whose version is above the stored schema version. Each runs
    /// in its own transaction together with the version bump, so a crash or an error leaves the
    /// store at the last completed version and a later call resumes from there.
    ///
    /// `migrations` must be sorted by strictly increasing version, starting at 1 or above.
    pub fn migrate(&self, migrations: &[Migration]) -> Result<MigrationReport, StoreError> {
        let mut previous = 0;
        for m in migrations {
            if m.version <= previous {
                return Err(StoreError::MigrationOrder {
                    version: m.version,
                    name: m.name,
                });
            }
            previous = m.version;
        }
        let from = self.schema_version()?;
        let mut report = MigrationReport {
            from,
            to: from,
            applied: Vec::new(),
        };
        for m in migrations.iter().filter(|m| m.version > from) {
            self.apply_one(m).map_err(|source| StoreError::Migration {
                version: m.version,
                name: m.name,
                source: Box::new(source),
            })?;
            tracing::info!(
                path = %self.store.path().display(),
                version = m.version,
                name = m.name,
                "settings migration applied"
            );
            report.applied.push(m.version);
            report.to = m.version;
        }
        Ok(report)
    }

    fn apply_one(&self, m: &Migration) -> Result<(), StoreError> {
        let txn = self.store.begin_write()?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::table(META_TABLE, e))?;
            // Another handle may have run it meanwhile; the check and the bump share this
            // transaction, so it runs once.
            if schema_from_meta(&meta)? >= m.version {
                return Ok(());
            }
            let table = txn
                .open_table(SETTINGS)
                .map_err(|e| StoreError::table(SETTINGS_TABLE, e))?;
            let mut s = SettingsTxn { table };
            (m.apply)(&mut s)?;
            meta_put(&mut meta, META_SCHEMA, u64::from(m.version))?;
        }
        txn.commit()?;
        Ok(())
    }
}

fn schema_from_meta(meta: &impl ReadableTable<&'static str, u64>) -> Result<u32, StoreError> {
    let v = meta_get(meta, META_SCHEMA)?;
    u32::try_from(v).map_err(|_| StoreError::Decode {
        table: META_TABLE.to_owned(),
        key: META_SCHEMA.to_owned(),
        reason: format!("schema version {v} does not fit in u32"),
    })
}
