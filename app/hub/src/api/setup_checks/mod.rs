//! The setup wizard's checks, also usable on their own: a YoLink connection test
//! (`POST /bridge/yolink/test`, [`yolink`]) and ONVIF camera discovery on the LAN
//! (`POST /cameras/discover`, [`cameras`]). Both only read: nothing is staged or kept, and
//! each is bounded by its timeout, so a wrong address costs the caller seconds, not a hang.
//! The wizard's pages (`/setup/{step}/check`) call the same functions and render the result.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::HubState;

pub mod cameras;
pub mod yolink;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(yolink::test))
        .routes(routes!(cameras::discover))
}
