//! API errors and their Svix-shaped answers.
//!
//! Every error answers with a JSON body: `{"code": ..., "detail": ...}`, or for validation
//! errors 422 `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`. Bad input never gets a
//! 5xx; a 500 means a bug or a broken disk, and says so without internals.

use crate::http::Response;
use crate::ingest::{schema::Refusal, IngestError};

/// One problem with a request body or query, located as Svix locates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: `["body", "url"]`, `["query", "limit"]`.
    pub loc: Vec<String>,
    pub msg: String,
    /// `value_error`, `type_error`, `missing`, ...
    pub kind: &'static str,
}

impl FieldError {
    /// A problem with body field `field`.
    pub fn body(field: &str, msg: impl Into<String>) -> Self {
        let mut loc = vec!["body".to_owned()];
        loc.extend(
            field
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        Self {
            loc,
            msg: msg.into(),
            kind: "value_error",
        }
    }

    /// A problem with query parameter `name`.
    pub fn query(name: &str, msg: impl Into<String>) -> Self {
        Self {
            loc: vec!["query".into(), name.into()],
            msg: msg.into(),
            kind: "value_error",
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed(&'static [&'static str]),
    Conflict(String),
    PayloadTooLarge(String),
    Validation(Vec<FieldError>),
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// A time window out of bounds (400 `invalid_range`, as Svix).
    InvalidRange(String),
    /// The log is at its disk ceiling or the disk is full (507).
    InsufficientStorage(String),
    /// Not the client's fault; logged, answered 500 without details.
    Internal(String),
}

/// The result of an API handler.
pub type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    /// One validation problem.
    pub fn invalid(field: &str, msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::body(field, msg)])
    }

    /// The HTTP answer.
    pub fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(d) => Response::error(400, "bad_request", &d),
            ApiError::InvalidRange(d) => Response::error(400, "invalid_range", &d),
            ApiError::Unauthorized(d) => Response::error(401, "authentication_failed", &d),
            ApiError::Forbidden(d) => Response::error(403, "insufficient_access", &d),
            ApiError::NotFound(d) => Response::error(404, "not_found", &d),
            ApiError::MethodNotAllowed(allow) => {
                Response::error(405, "method_not_allowed", "method not allowed on this path")
                    .with_header("allow", allow.join(", "))
            }
            ApiError::Conflict(d) => Response::error(409, "conflict", &d),
            ApiError::PayloadTooLarge(d) => Response::error(413, "payload_too_large", &d),
            ApiError::Validation(errors) => {
                let detail: Vec<serde_json::Value> = errors
                    .iter()
                    .map(|e| serde_json::json!({ "loc": e.loc, "msg": e.msg, "type": e.kind }))
                    .collect();
                let body = serde_json::json!({ "detail": detail });
                Response::json(422, body.to_string().into_bytes())
            }
            ApiError::TooManyRequests { retry_after_secs } => Response::error(
                429,
                "rate_limited",
                "rate limit exceeded; retry after the number of seconds in Retry-After",
            )
            .with_header("retry-after", retry_after_secs.to_string()),
            ApiError::InsufficientStorage(d) => Response::error(507, "insufficient_storage", &d),
            ApiError::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                Response::error(500, "internal_error", "internal error; see the server log")
            }
        }
    }
}

/// Logs a refusal for lack of space with its details (the answer carries none), at most once
/// every [`DISK_FULL_LOG_EVERY_MS`], so that a full disk does not flood the log too.
fn disk_full_logged(e: &storage::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = crate::time::Clock::now_ms(&crate::time::SystemClock);
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= DISK_FULL_LOG_EVERY_MS
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(error = %e, "refusing writes for lack of space (507)");
    }
}

/// How often a refusal for lack of space is logged, at most.
const DISK_FULL_LOG_EVERY_MS: u64 = 10_000;
/// The 507 details: what is full and when to come back, without paths or sizes.
const AT_CEILING: &str =
    "the event log is at its size ceiling (storage.max_bytes); retry once retention has freed space";
const DISK_FULL: &str = "the disk holding the event log is full (or down to the space kept \
    free, storage.reserve_bytes); retry once space is freed";

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::EventIdTaken(_) => ApiError::Conflict(e.to_string()),
            IngestError::TooLarge(d) => ApiError::PayloadTooLarge(d),
            IngestError::Schema(Refusal::Violations(v)) => ApiError::Validation(
                v.into_iter()
                    .map(|v| {
                        let mut loc = vec!["body".to_owned(), "payload".to_owned()];
                        loc.extend(v.segments());
                        let msg = if v.pointer.is_empty() {
                            v.reason
                        } else {
                            format!("{}: {}", v.pointer, v.reason)
                        };
                        FieldError {
                            loc,
                            msg,
                            kind: "schema_violation",
                        }
                    })
                    .collect(),
            ),
            IngestError::Schema(e @ Refusal::Broken { .. }) => {
                ApiError::invalid("eventType", e.to_string())
            }
            IngestError::Schema(Refusal::Storage(e)) | IngestError::Storage(e) => e.into(),
        }
    }
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> Self {
        match e {
            storage::Error::Conflict { what } => {
                ApiError::Conflict(format!("{what} already exists"))
            }
            e if e.is_disk_full() => {
                disk_full_logged(&e);
                let detail = match e {
                    storage::Error::OverCapacity { .. } => AT_CEILING,
                    _ => DISK_FULL,
                };
                ApiError::InsufficientStorage(detail.into())
            }
            storage::Error::Closed => ApiError::Internal("the store is shutting down".into()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}
