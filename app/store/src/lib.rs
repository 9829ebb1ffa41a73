//! Durable local storage for Watchpost workers.
//!
//! **Role.** Each worker that keeps state (hub: event store and alarm delivery queues; fieldbus:
//! persisted register values; capture: recording index) owns one database file under the data
//! directory. This crate is the only code that touches those files. It offers three things:
//!
//! - an append-only [event log](EventLog) keyed by time and sequence, with range scans, filters,
//!   pagination and retention by age and size;
//! - named [durable queues](Queue) for store-and-forward delivery (enqueue, peek, ack), with a
//!   bounded capacity and an overflow policy chosen by the caller;
//! - a [settings table](Settings) of JSON values with a schema version and ordered migrations.
//!
//! **Design.** The file is a [redb](https://docs.rs/redb) database (copy-on-write B-trees, one
//! writer at a time, readers never blocked). Event records are archived with `rkyv` and validated
//! on every read; redb hands out values without alignment, so they are copied into an aligned
//! buffer first. Every write transaction commits with `Durability::Immediate` (fsync), so an
//! `Ok` from a write method means the data is on disk. Running totals (event count and bytes,
//! queue lengths, sequences) live in a `meta` table updated in the same transaction as the data,
//! so they are exact after any crash. The layout is described in `docs/store.md`, and the choice
//! of engine in `docs/decisions/0001-store-redb.md`.
//!
//! The API is synchronous and blocking (a commit waits for the disk): async callers wrap calls in
//! `tokio::task::spawn_blocking`. [`Store`] is `Clone + Send + Sync`; clones share one database.
//!
//! **Failure.** Every method returns [`StoreError`], which names the operation and its input. A
//! failed write leaves nothing of its transaction behind. Opening a file that another process
//! holds fails with [`StoreError::AlreadyOpen`] naming the path: one owner process per file.
//!
//! After an unclean stop, opening repairs the file first (redb re-walks it), which takes longer
//! the larger the file; [`StoreOptions::quick_repair`] trades commit speed for an instant open.
//!
//! **Shutdown.** Nothing to flush: each committed write is already durable. Dropping the last
//! clone of a [`Store`] closes the file. A process killed at any moment loses only the writes
//! whose method had not returned yet.
#![forbid(unsafe_code)]

mod codec;
mod error;
mod events;
mod queue;
pub mod reset;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub use error::StoreError;
pub use events::{
    Event, EventFilter, EventId, EventLog, EventQuery, EventStats, JsonBody, NewEvent, Order, Page,
    Pagination, RetentionPolicy, RetentionReport, Severity,
};
pub use queue::{Enqueued, Overflow, Queue, QueueConfig, QueueItem, QueueName, QueueStats};
pub use settings::{Migration, MigrationReport, Settings, SettingsTxn};

/// On-disk format written by this build. Bumped when a table's key or value layout changes.
pub const FORMAT_VERSION: u64 = 1;

/// Tuning for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Upper bound of redb's page cache, in bytes. Memory is taken only as pages are read.
    pub cache_bytes: usize,
    /// Save redb's allocator state with every commit (and commit in two phases), so that an open
    /// after a crash or power cut needs no walk over the whole file. Costs commit speed; see the
    /// benchmark in `docs/decisions/0001-store-redb.md`.
    pub quick_repair: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        // The appliance runs several workers, each with its own file: keep each cache small.
        Self {
            cache_bytes: 16 * 1024 * 1024,
            quick_repair: false,
        }
    }
}

/// A handle to one database file. Cheap to clone; clones share the file.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: redb::Database,
    path: PathBuf,
    quick_repair: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

pub(crate) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
pub(crate) const META_TABLE: &str = "meta";
const META_FORMAT: &str = "format";

impl Store {
    /// Opens the database at `path`, creating it (and its parent directory) if missing, with
    /// default [`StoreOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens the database at `path` with explicit options.
    ///
    /// After an unclean shutdown redb verifies the file and rebuilds its allocator state before
    /// this returns; that takes longer the larger the file (see `docs/store.md`).
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::AlreadyOpen { path: path.clone() }
                }
                source => StoreError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let store = Self {
            inner: Arc::new(Inner {
                db,
                path,
                quick_repair: options.quick_repair,
            }),
        };
        store.init_tables()?;
        tracing::debug!(path = %store.path().display(), "store opened");
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The event log of this store.
    pub fn events(&self) -> EventLog {
        EventLog::new(self.clone())
    }

    /// Opens (creating if missing) the durable queue `name`. The capacity and overflow policy
    /// apply to this handle's enqueues; the stored items and sequence are shared by all handles.
    pub fn queue(&self, name: &str, config: QueueConfig) -> Result<Queue, StoreError> {
        Queue::open(self.clone(), QueueName::new(name)?, config)
    }

    /// Names of the queues that exist in this store, sorted.
    pub fn queue_names(&self) -> Result<Vec<String>, StoreError> {
        queue::names(self)
    }

    /// Deletes queue `name` with everything in it. Returns whether it existed.
    pub fn remove_queue(&self, name: &str) -> Result<bool, StoreError> {
        queue::remove(self, &QueueName::new(name)?)
    }

    /// The settings table of this store.
    pub fn settings(&self) -> Settings {
        Settings::new(self.clone())
    }

    pub(crate) fn db(&self) -> &redb::Database {
        &self.inner.db
    }

    /// Begins a durable write transaction.
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.inner.db.begin_write()?;
        // Immediate is redb's default; set it anyway so the guarantee does not rest on a default.
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|source| StoreError::Durability { source })?;
        txn.set_quick_repair(self.inner.quick_repair);
        Ok(txn)
    }

    /// Whether the file already has this build's format (read-only check: an open of an
    /// existing store then costs no commit).
    fn is_initialized(&self) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(StoreError::table(META_TABLE, e)),
        };
        Ok(meta_get(&meta, META_FORMAT)? == FORMAT_VERSION
            && events::tables_exist(&txn)?
            && queue::tables_exist(&txn)?
            && settings::tables_exist(&txn)?)
    }

    /// Creates the fixed tables and checks the format version, in one transaction.
    fn init_tables(&self) -> Result<(), StoreError> {
        if self.is_initialized()? {
            return Ok(());
        }
        let txn = self.begin_write()?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::table(META_TABLE, e))?;
            let found = meta
                .get(META_FORMAT)
                .map_err(|e| StoreError::storage(META_TABLE, e))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert(META_FORMAT, FORMAT_VERSION)
                        .map_err(|e| StoreError::storage(META_TABLE, e))?;
                }
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Format {
                        path: self.inner.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            events::create_tables(&txn)?;
            queue::create_tables(&txn)?;
            settings::create_tables(&txn)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// Whether `def` exists in the snapshot of `txn`.
pub(crate) fn table_exists<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'_, K, V>,
    name: &str,
) -> Result<bool, StoreError> {
    match txn.open_table(def) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(StoreError::table(name, e)),
    }
}

/// Reads a counter from the meta table (0 when absent).
pub(crate) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, StoreError> {
    Ok(meta
        .get(key)
        .map_err(|e| StoreError::storage(META_TABLE, e))?
        .map_or(0, |v| v.value()))
}

/// Writes a counter to the meta table.
pub(crate) fn meta_put(
    meta: &mut redb::Table<'_, &'static str, u64>,
    key: &str,
    value: u64,
) -> Result<(), StoreError> {
    meta.insert(key, value)
        .map_err(|e| StoreError::storage(META_TABLE, e))?;
    Ok(())
}

/// Microseconds since the Unix epoch, from the wall clock (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
