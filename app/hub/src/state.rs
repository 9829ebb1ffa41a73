//! What every request handler and service of the hub shares.

use std::sync::Arc;
use std::time::Duration;

use watchpost_bus::Bus;
use watchpost_config::Config;
use watchpost_runtime::WorkerCtx;
use watchpost_runtime::proto::Snapshot;
use watchpost_store::Store;

use crate::auth::Authenticator;
use crate::error::ApiError;

/// Shared state of the hub (cheap to clone).
#[derive(Clone, Debug)]
pub struct HubState {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub store: Store,
    pub ctx: Arc<WorkerCtx>,
    pub auth: Arc<Authenticator>,
    pub version: &'static str,
    /// The fieldbus worker's client: the Neasmart gateway's and the relays' retained state,
    /// and their typed commands.
    pub neasmart: Arc<crate::api::neasmart::FieldbusClient>,
    /// The capture worker's client: camera status and thermal statistics, and its commands.
    pub cameras: Arc<crate::api::cameras::CaptureClient>,
    /// The monitor worker's targets as it last published them.
    pub monitor: Arc<crate::api::monitor::MonitorClient>,
    /// The alarm service's handle (run by `services`): queue status, the sensor state cache,
    /// test alarms and reloads.
    pub alarm: watchpost_alarm::AlarmHandle,
    /// The HTTPS listener's certificate (`[hub.tls]`); `None` when TLS is off.
    pub tls: Option<Arc<crate::tls::TlsHandle>>,
    /// Over-the-air updates: the status, the upload and install path, RAUC.
    pub update: Arc<crate::update::Updates>,
}

impl HubState {
    /// Asks the supervisor for its view of the appliance.
    pub async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let timeout = Duration::from_millis(self.config.hub.health_timeout_ms);
        self.ctx.query_snapshot(timeout).await.map_err(|e| {
            ApiError::unavailable(
                "SUPERVISOR_UNAVAILABLE",
                format!("the supervisor did not answer: {e}"),
            )
        })
    }

    /// Runs blocking store work off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, watchpost_store::StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))?
            .map_err(ApiError::from)
    }
}
