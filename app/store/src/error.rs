//! The one error type of the store. Variants are named after the operation that failed and carry
//! its input (path, table, key, queue, setting), so a caller can log or map them without guessing.

use std::path::PathBuf;

/// Every failure the store reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory that holds the database file could not be created.
    #[error("cannot create directory {path} for the store: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process (or another `Store` in this process) has the database file open. Each file
    /// has exactly one owner.
    #[error("store {path} is already open by another owner (one owner process per database file)")]
    AlreadyOpen { path: PathBuf },

    /// redb could not open or create the database file.
    #[error("cannot open store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },

    /// The file was written by a newer (or unknown) version of this crate.
    #[error("store {path} has on-disk format {found}, this build reads format {supported}")]
    Format {
        path: PathBuf,
        found: u64,
        supported: u64,
    },

    /// A read or write transaction could not be started.
    #[error("cannot begin a transaction: {source}")]
    Begin {
        #[source]
        source: redb::TransactionError,
    },

    /// A write transaction refused durable commits.
    #[error("cannot make the transaction durable: {source}")]
    Durability {
        #[source]
        source: redb::SetDurabilityError,
    },

    /// A table could not be opened inside a transaction.
    #[error("cannot open table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: redb::TableError,
    },

    /// Reading or writing a table failed at the storage layer (I/O, corruption).
    #[error("storage error in table {table}: {source}")]
    Storage {
        table: String,
        #[source]
        source: redb::StorageError,
    },

    /// The durable commit failed; nothing of the transaction is stored.
    #[error("commit failed: {source}")]
    Commit {
        #[source]
        source: redb::CommitError,
    },

    /// A stored value failed validation or could not be decoded.
    #[error("cannot decode value in table {table} at key {key}: {reason}")]
    Decode {
        table: String,
        key: String,
        reason: String,
    },

    /// A record could not be archived.
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    /// An event body is not valid JSON.
    #[error("event body is not valid JSON: {source}")]
    Body {
        #[source]
        source: serde_json::Error,
    },

    /// A queue name does not match `[a-z0-9._-]{1,64}`.
    #[error("invalid queue name {name:?}: use 1 to 64 characters from a-z, 0-9, '.', '_', '-'")]
    QueueName { name: String },

    /// A setting key is empty or longer than 128 bytes.
    #[error("invalid setting key {key:?}: use 1 to 128 bytes")]
    SettingKey { key: String },

    /// A setting value could not be turned into JSON.
    #[error("cannot encode setting {key}: {source}")]
    SettingEncode {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// A stored setting does not parse as the requested type.
    #[error("cannot decode setting {key}: {source}")]
    SettingDecode {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// The migration list is not strictly increasing in version, or starts at 0.
    #[error("migration {version} ({name}) is out of order: versions must start at 1 and increase")]
    MigrationOrder { version: u32, name: &'static str },

    /// A migration failed; its transaction was rolled back and the schema version is unchanged.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    pub(crate) fn table(table: &str, source: redb::TableError) -> Self {
        Self::Table {
            table: table.to_owned(),
            source,
        }
    }

    pub(crate) fn storage(table: &str, source: redb::StorageError) -> Self {
        Self::Storage {
            table: table.to_owned(),
            source,
        }
    }
}

impl From<redb::TransactionError> for StoreError {
    fn from(source: redb::TransactionError) -> Self {
        Self::Begin { source }
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(source: redb::CommitError) -> Self {
        Self::Commit { source }
    }
}
