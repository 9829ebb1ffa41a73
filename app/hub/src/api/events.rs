//! `/api/v1/events`: the event store, filtered and paginated.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_store::{Event, EventFilter, EventQuery, Order, Severity};

use crate::api::extract::Query;
use crate::api::list::{Page, PageRequest, time_us};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Which end of the log a listing starts from (documentation of `order`; it is parsed by hand
/// so that a wrong value gets its own error code).
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ListOrder {
    Newest,
    Oldest,
}

/// Query parameters of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Events per page, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only events whose kind starts with this (e.g. `alarm.`).
    kind: Option<String>,
    /// Only events from exactly this source.
    source: Option<String>,
    /// Only events at least this severe.
    #[param(value_type = Option<Severity>, inline)]
    min_severity: Option<String>,
    /// Only events at or after this time (µs since the Unix epoch).
    since_us: Option<u64>,
    /// Only events before this time (µs since the Unix epoch).
    until_us: Option<u64>,
    /// `newest` first (default) or `oldest` first.
    #[param(value_type = Option<ListOrder>, inline)]
    order: Option<String>,
}

/// The event log, filtered and paginated.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(ListParams),
    responses(
        (status = 200, description = "One page of events", body = Page<Event>),
        (status = 400, description = "A parameter is out of range (`INVALID_PAGE`, `INVALID_LIMIT`) or unknown", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<HubState>,
    Query(p): Query<ListParams>,
) -> Result<Json<Page<Event>>, ApiError> {
    let PageRequest { page, limit } = PageRequest::new(p.page, p.limit)?;
    let order = match p.order.as_deref() {
        None | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(o) => {
            return Err(ApiError::bad_request(
                "INVALID_ORDER",
                format!("order `{o}` is not `newest` or `oldest`"),
            ));
        }
    };
    let min_severity = match p.min_severity.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Severity>().map_err(|_| {
            ApiError::bad_request("INVALID_SEVERITY", format!("unknown severity `{s}`"))
        })?),
    };
    let filter = EventFilter {
        since_us: time_us("since_us", p.since_us)?,
        until_us: time_us("until_us", p.until_us)?,
        kind_prefix: p.kind,
        source: p.source,
        min_severity,
    };
    let query = EventQuery {
        filter,
        order,
        page,
        limit,
    };
    let page = state
        .blocking(move |store| store.events().query(&query))
        .await?;
    Ok(Json(page))
}
