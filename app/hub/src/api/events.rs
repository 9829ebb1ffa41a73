//! `/api/v1/events`: the event store, filtered and paginated.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use watchpost_store::{Event, EventFilter, EventQuery, Order, Severity};

use crate::api::list::{Page, PageRequest};
use crate::error::ApiError;
use crate::state::HubState;

pub fn router() -> Router<HubState> {
    Router::new().route("/events", get(list))
}

/// Query parameters of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    page: Option<u32>,
    limit: Option<u32>,
    kind: Option<String>,
    source: Option<String>,
    min_severity: Option<String>,
    since_us: Option<u64>,
    until_us: Option<u64>,
    order: Option<String>,
}

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
        since_us: p.since_us,
        until_us: p.until_us,
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
