//! The REST API under `/api/v1/`. Every route here requires authentication (the layer is
//! applied in [`crate::router`]). Each area adds a module with `pub fn router() ->
//! OpenApiRouter<HubState>` registering its handlers with `routes!` (each handler carries its
//! `#[utoipa::path]`, so the OpenAPI document at `/api/v1/openapi.json` lists it with its
//! types), and one `.merge(...)` line below. Handlers take [`extract`]'s `Query`, `Path` and
//! `Json`, which answer malformed input in the API's error shape.

use utoipa_axum::router::OpenApiRouter;

use crate::state::HubState;

pub mod alarms;
pub mod auth;
pub mod cameras;
pub mod events;
pub mod extract;
pub mod list;
pub mod monitor;
pub mod neasmart;
pub mod relays;
pub mod sensors;
pub mod settings;
pub mod setup_checks;
pub mod system;
pub mod tls;
pub mod update;

/// All `/api/v1/` routes (paths here are relative to that prefix).
pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .merge(system::router())
        .merge(auth::router())
        .merge(events::router())
        .merge(neasmart::router())
        .merge(relays::router())
        .merge(cameras::router())
        .merge(alarms::router())
        .merge(sensors::router())
        .merge(settings::router())
        .merge(tls::router())
        .merge(setup_checks::router())
        .merge(update::router())
        .merge(monitor::router())
}
