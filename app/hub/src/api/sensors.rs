//! `/api/v1/sensors`: sensors as the bridge publishes them (list, one sensor's state) and
//! their history from the event store.
//!
//! - `GET /sensors?page&limit` — `{"items": [state…], "pagination"}`, sorted by id.
//! - `GET /sensors/{id}` — the sensor's latest state, or 404 `SENSOR_NOT_FOUND`.
//! - `GET /sensors/{id}/history?page&limit&order` — its `sensor.*` and `alarm.*` events.

use std::num::NonZeroU32;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use watchpost_contract::alarm::SensorView;
use watchpost_store::{Event, EventFilter, EventQuery, Order, Page};

use crate::error::ApiError;
use crate::state::HubState;

pub fn router() -> Router<HubState> {
    Router::new()
        .route("/sensors", get(list))
        .route("/sensors/{id}", get(one))
        .route("/sensors/{id}/history", get(history))
}

const MAX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    page: Option<u32>,
    limit: Option<u32>,
    order: Option<String>,
}

fn page_of(p: &PageParams) -> Result<(NonZeroU32, NonZeroU32), ApiError> {
    let page = NonZeroU32::new(p.page.unwrap_or(1))
        .ok_or_else(|| ApiError::bad_request("INVALID_PAGE", "page counts from 1"))?;
    let limit = NonZeroU32::new(p.limit.unwrap_or(50))
        .filter(|l| l.get() <= MAX_LIMIT)
        .ok_or_else(|| {
            ApiError::bad_request("INVALID_LIMIT", format!("limit must be 1..={MAX_LIMIT}"))
        })?;
    Ok((page, limit))
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

async fn list(
    State(state): State<HubState>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page_of(&p)?;
    let all = sensors(&state)?;
    let total = all.len() as u64;
    let (page, limit) = (page.get(), limit.get());
    let items: Vec<SensorView> = all
        .into_values()
        .skip(((page - 1) as usize).saturating_mul(limit as usize))
        .take(limit as usize)
        .collect();
    Ok(Json(json!({
        "items": items,
        "pagination": {"page": page, "limit": limit, "total": total,
                       "total_pages": total.div_ceil(u64::from(limit))},
    })))
}

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

async fn history(
    State(state): State<HubState>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<Event>>, ApiError> {
    let (page, limit) = page_of(&p)?;
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
