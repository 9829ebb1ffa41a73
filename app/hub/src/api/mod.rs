//! The REST API under `/api/v1/`. Every route here requires authentication (the layer is
//! applied in [`crate::router`]). Each area adds a module with `pub fn router() ->
//! Router<HubState>` and one `.merge(...)` line below.

use axum::Router;

use crate::state::HubState;

pub mod alarms;
pub mod cameras;
pub mod events;
pub mod list;
pub mod neasmart;
pub mod relays;
pub mod sensors;
pub mod system;

/// All `/api/v1/` routes (paths here are relative to that prefix).
pub fn router() -> Router<HubState> {
    Router::new()
        .merge(system::router())
        .merge(events::router())
        .merge(neasmart::router())
        .merge(relays::router())
        .merge(cameras::router())
        .merge(alarms::router())
        .merge(sensors::router())
}
