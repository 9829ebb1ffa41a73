//! `/api/v1/sensors`: sensors as the bridge publishes them (list, one sensor's state) and
//! their history from the event store.
//!
//! - `GET /sensors?page&limit` — `{"items": [state…], "pagination"}`, sorted by id.
//! - `GET /sensors/{id}` — the sensor's latest state, or 404 `SENSOR_NOT_FOUND`.
//! - `GET /sensors/{id}/history?page&limit&order` — its `sensor.*` and `alarm.*` events.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_contract::alarm::SensorView;
use watchpost_store::{Event, EventFilter, EventQuery, Order};

use crate::api::extract::{Path, Query};
use crate::api::list::{Page, PageParams, PageRequest, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(history))
}

/// Query parameters of a sensor's history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Events per page, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `newest` first (default) or `oldest` first.
    #[param(value_type = Option<crate::api::events::ListOrder>, inline)]
    order: Option<String>,
}

/// The latest state of every sensor, from the alarm service's cache.
fn sensors(state: &HubState) -> Result<std::collections::BTreeMap<String, SensorView>, ApiError> {
    if state.alarm.running() {
        Ok(state.alarm.sensors())
    } else {
        Err(ApiError::unavailable(
            "SENSORS_UNAVAILABLE",
            "the sensor service is not running",
        ))
    }
}

/// Every sensor the bridge has reported, with its latest state, sorted by id.
#[utoipa::path(
    get,
    path = "/sensors",
    tag = "sensors",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(PageParams),
    responses(
        (status = 200, description = "One page of sensors", body = Page<SensorView>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_QUERY`", body = ErrorBody),
        (status = 503, description = "`SENSORS_UNAVAILABLE`: the alarm service is not running", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let req = p.check()?;
    let page = paginate(sensors(&state)?.into_values(), req);
    Ok(Json(serde_json::to_value(page).unwrap_or(Value::Null)))
}

/// One sensor's latest state.
#[utoipa::path(
    get,
    path = "/sensors/{id}",
    tag = "sensors",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The sensor's id (YoLink deviceId)")),
    responses(
        (status = 200, description = "The sensor", body = SensorView),
        (status = 404, description = "`SENSOR_NOT_FOUND`", body = ErrorBody),
        (status = 503, description = "`SENSORS_UNAVAILABLE`", body = ErrorBody),
    ),
)]
async fn one(
    State(state): State<HubState>,
    Path(id): Path<String>,
) -> Result<Json<SensorView>, ApiError> {
    sensors(&state)?
        .into_iter()
        .find(|(k, v)| k == &id || v.sensor.id == id)
        .map(|(_, v)| Json(v))
        .ok_or_else(|| ApiError::not_found("SENSOR_NOT_FOUND", format!("no sensor `{id}`")))
}

/// A sensor's events from the event log (its `sensor.*` and `alarm.*` events).
#[utoipa::path(
    get,
    path = "/sensors/{id}/history",
    tag = "sensors",
    extensions(("x-watchpost-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The sensor's id"), HistoryParams),
    responses(
        (status = 200, description = "One page of events", body = Page<Event>),
        (status = 400, description = "`INVALID_PAGE`, `INVALID_LIMIT`, `INVALID_ORDER`, `INVALID_QUERY`", body = ErrorBody),
        (status = 500, description = "`STORE_ERROR`", body = ErrorBody),
    ),
)]
async fn history(
    State(state): State<HubState>,
    Path(id): Path<String>,
    Query(p): Query<HistoryParams>,
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
    let query = EventQuery {
        filter: EventFilter {
            source: Some(id),
            ..EventFilter::default()
        },
        order,
        page,
        limit,
    };
    let page = state
        .blocking(move |store| store.events().query(&query))
        .await?;
    Ok(Json(page))
}
