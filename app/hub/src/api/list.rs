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
            .ok_or_else(|| ApiError::bad_request("INVALID_PAGE", "page counts from 1"))?;
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
