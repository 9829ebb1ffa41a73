//! The one list shape of the REST API: `{"items": [...], "pagination": {"page", "limit",
//! "total", "total_pages"}}` ([`Page`], the event store's type), `?page` counting from 1 and
//! `?limit` from 1 to [`MAX_LIMIT`], `total_pages` = ceil(total / limit), 0 for an empty list.
//! Store-backed lists page in the store; lists held in memory page with [`paginate`].

use std::num::NonZeroU32;

pub use watchpost_store::{Page, Pagination};

use crate::error::ApiError;

/// Items per page when `?limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `?limit`.
pub const MAX_LIMIT: u32 = 500;
/// The largest `?page`: documented as a 32-bit signed integer, as OpenAPI's `int32`.
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// `?page` and `?limit` of a list that has no other parameters.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Entries per page, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// The checked request.
    pub fn check(self) -> Result<PageRequest, ApiError> {
        PageRequest::new(self.page, self.limit)
    }
}

/// A checked `?page` and `?limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: NonZeroU32,
    pub limit: NonZeroU32,
}

impl PageRequest {
    /// Checks the query parameters; a missing one takes its default.
    pub fn new(page: Option<u32>, limit: Option<u32>) -> Result<Self, ApiError> {
        let page = NonZeroU32::new(page.unwrap_or(1))
            .filter(|p| p.get() <= MAX_PAGE)
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_PAGE", format!("page counts from 1 to {MAX_PAGE}"))
            })?;
        let limit = NonZeroU32::new(limit.unwrap_or(DEFAULT_LIMIT))
            .filter(|l| l.get() <= MAX_LIMIT)
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_LIMIT", format!("limit must be 1..={MAX_LIMIT}"))
            })?;
        Ok(Self { page, limit })
    }

    /// How many items come before this page.
    pub fn offset(&self) -> usize {
        (self.page.get() as usize - 1).saturating_mul(self.limit.get() as usize)
    }
}

/// A time in µs since the Unix epoch from the query (`name`), documented as OpenAPI's `int64`:
/// a larger number is not a time.
pub fn time_us(name: &str, value: Option<u64>) -> Result<Option<u64>, ApiError> {
    match value {
        Some(t) if i64::try_from(t).is_err() => Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("{name} must be at most {}", i64::MAX),
        )),
        other => Ok(other),
    }
}

/// One page of a list held in memory (already in its documented order).
pub fn paginate<T>(all: impl IntoIterator<Item = T>, req: PageRequest) -> Page<T> {
    let all: Vec<T> = all.into_iter().collect();
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(req.offset())
        .take(req.limit.get() as usize)
        .collect();
    Page {
        items,
        pagination: Pagination::new(req.page, req.limit, total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_in_memory_lists() {
        let req = PageRequest::new(Some(2), Some(2)).unwrap();
        let p = paginate(1..=5, req);
        assert_eq!(p.items, vec![3, 4]);
        assert_eq!(
            p.pagination,
            Pagination {
                page: 2,
                limit: 2,
                total: 5,
                total_pages: 3
            }
        );
        let empty = paginate(Vec::<u8>::new(), PageRequest::new(None, None).unwrap());
        assert_eq!(empty.pagination.total_pages, 0);
        assert_eq!(empty.pagination.limit, DEFAULT_LIMIT);
        let past = paginate(1..=3, PageRequest::new(Some(9), None).unwrap());
        assert!(past.items.is_empty());
        assert_eq!(past.pagination.total, 3);
    }

    #[test]
    fn refuses_bad_parameters() {
        assert_eq!(
            PageRequest::new(Some(0), None).unwrap_err().code,
            "INVALID_PAGE"
        );
        assert_eq!(
            PageRequest::new(Some(MAX_PAGE + 1), None).unwrap_err().code,
            "INVALID_PAGE"
        );
        assert!(PageRequest::new(Some(MAX_PAGE), None).is_ok());
        assert_eq!(
            time_us("since_us", Some(u64::MAX)).unwrap_err().code,
            "INVALID_QUERY"
        );
        assert_eq!(time_us("since_us", Some(5)).unwrap(), Some(5));
        assert_eq!(
            PageRequest::new(None, Some(0)).unwrap_err().code,
            "INVALID_LIMIT"
        );
        assert_eq!(
            PageRequest::new(None, Some(MAX_LIMIT + 1))
                .unwrap_err()
                .code,
            "INVALID_LIMIT"
        );
    }
}
