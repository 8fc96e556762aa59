//! Svix-style pagination: `limit`, `iterator`, `order`, answered as
//! `{data, iterator, prevIterator, done}`.
//!
//! An iterator is the id (or, for event types, the name) of the last item of the previous page.
//! `prevIterator` is `-` followed by the first item's id: passing it back lists the page before,
//! in the same order.

use serde::Serialize;

use super::{
    error::{ApiError, FieldError},
    input::Query,
};

/// Items per page when not asked.
pub const LIMIT_DEFAULT: usize = 50;
/// Most items per page.
pub const LIMIT_MAX: usize = 250;

/// The pagination part of a list request.
#[derive(Debug, Clone)]
pub struct ListParams {
    pub limit: usize,
    /// Where to start (exclusive), without the `-`.
    pub iterator: Option<String>,
    /// True for a `-` iterator: list backwards from it, then present in the usual order.
    pub backwards: bool,
    /// Newest first.
    pub descending: bool,
}

impl ListParams {
    /// Reads `limit`, `iterator` and `order`; `descending_default` is the resource's own order.
    pub fn parse(q: &Query, descending_default: bool) -> Result<Self, ApiError> {
        let limit = match q.get("limit") {
            None => LIMIT_DEFAULT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=LIMIT_MAX).contains(&n) => n,
                _ => {
                    return Err(ApiError::Validation(vec![FieldError::query(
                        "limit",
                        format!("must be a whole number from 1 to {LIMIT_MAX}"),
                    )]))
                }
            },
        };
        let descending = match q.get("order") {
            None => descending_default,
            Some("ascending") => false,
            Some("descending") => true,
            Some(_) => {
                return Err(ApiError::Validation(vec![FieldError::query(
                    "order",
                    "must be ascending or descending",
                )]))
            }
        };
        let (iterator, backwards) = match q.get("iterator").filter(|i| !i.is_empty()) {
            Some(i) => match i.strip_prefix('-') {
                Some(rest) => (Some(rest.to_owned()), true),
                None => (Some(i.to_owned()), false),
            },
            None => (None, false),
        };
        Ok(Self {
            limit,
            iterator,
            backwards,
            descending,
        })
    }

    /// The direction to scan the store in.
    pub fn scan_descending(&self) -> bool {
        self.descending != self.backwards
    }

    /// A malformed iterator is a 422 on `iterator`.
    pub fn bad_iterator() -> ApiError {
        ApiError::Validation(vec![FieldError::query(
            "iterator",
            "not an iterator from this list",
        )])
    }
}

/// One page, as Svix answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T: Serialize> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

/// Builds the answer from a scan: `items` in scan order, `more` when the scan stopped at the
/// limit; `id` names an item for the iterators.
pub fn respond<T: Serialize>(
    params: &ListParams,
    mut items: Vec<T>,
    more: bool,
    id: impl Fn(&T) -> String,
) -> ListResponse<T> {
    if params.backwards {
        // Scanned away from the iterator: present in the list's own order. Items follow this
        // page (the iterator's item), so it is never the last page.
        items.reverse();
        let (first, last) = (items.first().map(&id), items.last().map(&id));
        return ListResponse {
            iterator: last.or_else(|| params.iterator.clone()),
            prev_iterator: if more {
                first.map(|f| format!("-{f}"))
            } else {
                None
            },
            done: false,
            data: items,
        };
    }
    let (first, last) = (items.first().map(&id), items.last().map(&id));
    ListResponse {
        iterator: last.or_else(|| params.iterator.clone()),
        prev_iterator: params.iterator.as_ref().and(first).map(|f| format!("-{f}")),
        done: !more,
        data: items,
    }
}
