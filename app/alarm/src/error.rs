//! The crate's error type.

/// Why the alarm service could not start or do something asked of it.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    #[error("receiver `{receiver}`: invalid {field}: {reason}")]
    Receiver {
        receiver: String,
        field: &'static str,
        reason: String,
    },
    #[error("opening the delivery queue of receiver `{receiver}`: {source}")]
    OpenQueue {
        receiver: String,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("queue of receiver `{receiver}`: {source}")]
    Queue {
        receiver: String,
        source: Box<watchpost_store::StoreError>,
    },
    #[error("reading the saved alarm state: {source}")]
    LoadState {
        source: Box<watchpost_store::StoreError>,
    },
    #[error("saving the alarm state: {source}")]
    SaveState {
        source: Box<watchpost_store::StoreError>,
    },
    #[error("building the HTTP client for receiver `{receiver}`: {reason}")]
    HttpClient { receiver: String, reason: String },
    #[error("subscribing to {filter}: {source}")]
    Subscribe {
        filter: String,
        source: Box<watchpost_bus::BusError>,
    },
    #[error("no receiver `{receiver}`")]
    UnknownReceiver { receiver: String },
    #[error("queue of receiver `{receiver}` is full ({len} of {capacity})")]
    QueueFull {
        receiver: String,
        len: u64,
        capacity: u64,
    },
    #[error("the alarm service has stopped")]
    Stopped,
    #[error("an alarm service already runs with this handle")]
    AlreadyServed,
    #[error("alarms are disabled (`[alarms] enabled = false`)")]
    Disabled,
    /// A secret of the receivers added through the API does not open (or cannot be sealed).
    #[error("receivers added through the API: {source}")]
    ManagedSecret {
        source: watchpost_config::secrets::SecretError,
    },
    /// The stored receivers and mappings added through the API do not read as such.
    #[error("receivers added through the API: {reason}")]
    ManagedUnreadable { reason: String },
    #[error("{source}")]
    DeviceKey {
        source: watchpost_runtime::seal::SealError,
    },
    #[error("a background task failed: {reason}")]
    Task { reason: String },
}
