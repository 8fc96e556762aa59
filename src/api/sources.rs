//! Inbound webhook sources: `POST /ingest/{source}` and the admin list `GET /api/v1/source`.
//!
//! A provider (GitHub, Stripe, a Standard Webhooks sender, ...) posts to `/ingest/{name}` of a
//! `[[sources]]` entry. In order, and nothing is stored until the last step:
//!
//! 1. the source is looked up by name (404), only `POST` is taken (405), and the body may be at
//!    most `ingest.payload_bytes_max` (413);
//! 2. the request is verified by the source's scheme (`crate::inbound`); anything else is 401;
//! 3. the body must be one JSON object (400, 422); the event type is read from its header, JSON
//!    pointer or fixed value (422 if missing), and so is the delivery id, if the source has one;
//! 4. the delivery id is claimed in the idempotency index (scope `source:{name}`): a delivery
//!    seen in the last twice `tolerance` is answered 200 with the first answer, not stored again
//!    (409 while the first one is still being stored);
//! 5. the message is stored like any other (`Ingest::store`): the body byte for byte as its
//!    payload, in the source's app, then fanned out to that app's endpoints; answered 202 with
//!    the message (without its payload), and that answer is what a replay gets.
//!
//! Source requests carry no API token: the scheme's credentials are their authentication.

use serde::Serialize;
use storage::{
    state::{AppRecord, IdempotencyRecord, MessageRecord},
    LocalWaiters,
};

use super::{
    error::{ApiError, ApiResult, FieldError},
    input::check_name,
    json_response,
    list::ListResponse,
    messages, Ctx, IDEMPOTENCY_CLAIM_MS,
};
use crate::{
    config::{Locator, SourceConfig, SourceScheme},
    http::{Method, Request, Response},
    inbound::{self, Inbound},
    ingest::Ingest,
    model::ids,
    service::Service,
};

/// Longest delivery id kept for deduplication, in bytes.
const DELIVERY_ID_BYTES_MAX: usize = 256;

/// `POST /ingest/{name}`; `name` is the path after `/ingest/`.
pub async fn ingest(
    ingest: &Ingest,
    durable: &LocalWaiters,
    req: &Request,
    name: &str,
) -> ApiResult {
    if req.method != Method::Post {
        return Err(ApiError::MethodNotAllowed(&["POST"]));
    }
    let svc = &ingest.svc;
    let name = name.trim_end_matches('/');
    let config = svc.config();
    let source = config
        .sources
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no source called {name:?}")))?;
    let now = svc.now_ms();
    let (signed_id, body) = verified_body(source, req, config.ingest.payload_bytes_max, now)?;
    let event_type = locate(&source.event_type, req, &body, "event type")?;
    let mut errors = Vec::new();
    check_name("eventType", &event_type, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let delivery_id = delivery_id(source, req, &body, signed_id)?;
    let app = source_app(svc, source)?;
    let scope = format!("source:{}", source.name);
    if let Some(id) = &delivery_id {
        if let Some(first_answer) = claim_delivery(svc, &scope, id, now)? {
            return Ok(first_answer);
        }
    }
    let record = MessageRecord {
        app_key: app.key,
        rand: ids::random_bits(),
        created_ms: now,
        event_type,
        event_id: None,
        channels: Vec::new(),
        tags: Vec::new(),
        payload: req.body.clone(),
        traceparent: req
            .header("traceparent")
            .and_then(crate::model::trace::traceparent),
        only_endpoint: None,
        ordering_key: None,
    };
    let stored = ingest.store(durable, &record).await.map_err(ApiError::from);
    let msg_id = match stored {
        Ok(id) => id,
        Err(e) => {
            if let Some(id) = &delivery_id {
                svc.store.state().release_idempotency(&scope, id)?;
            }
            return Err(e);
        }
    };
    let mut out = Vec::with_capacity(256);
    messages::render_into(&mut out, &msg_id, &record, false);
    if let Some(id) = &delivery_id {
        // Remembered for twice the tolerance: a signature may carry a timestamp up to the
        // tolerance ahead of now, and stays valid until the tolerance after it.
        let expires_ms = now + 2 * source.tolerance.as_millis() as u64;
        remember_delivery(svc, &scope, id, expires_ms, out.clone()).await?;
    }
    Ok(Response::json(202, out))
}

/// The request within the size limit, verified by the source's scheme (401 if not), with a
/// JSON object for a body: the delivery id the signature covers, if any, and the body.
fn verified_body(
    source: &SourceConfig,
    req: &Request,
    limit: u64,
    now_ms: u64,
) -> ApiResult<(Option<String>, serde_json::Value)> {
    if req.body.len() as u64 > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "body is {} bytes; the limit (ingest.payload_bytes_max) is {limit}",
            req.body.len()
        )));
    }
    let inbound = Inbound {
        headers: &req.headers,
        body: &req.body,
        now_secs: now_ms / 1000,
        tolerance_secs: source.tolerance.as_secs(),
    };
    let verified = inbound::verify(&source.scheme, &inbound).map_err(|why| {
        tracing::debug!(source = %source.name, reason = %why, "inbound webhook refused");
        ApiError::Unauthorized(format!("source {}: {why}", source.name))
    })?;
    let body: serde_json::Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::Validation(vec![FieldError::body(
            "",
            "must be a JSON object",
        )]));
    }
    Ok((verified.signed_id.map(str::to_owned), body))
}

/// The provider's id of this delivery, for deduplication: the signed one, else where the
/// source says it is; 1 to [`DELIVERY_ID_BYTES_MAX`] bytes.
fn delivery_id(
    source: &SourceConfig,
    req: &Request,
    body: &serde_json::Value,
    signed_id: Option<String>,
) -> ApiResult<Option<String>> {
    let id = match (signed_id, &source.delivery_id) {
        (Some(id), _) => Some(id),
        (None, Some(at)) => Some(locate(at, req, body, "delivery id")?),
        (None, None) => None,
    };
    if id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > DELIVERY_ID_BYTES_MAX)
    {
        return Err(ApiError::Validation(vec![FieldError::body(
            "",
            format!("the delivery id must be 1 to {DELIVERY_ID_BYTES_MAX} bytes"),
        )]));
    }
    Ok(id)
}

/// The application the source's messages go to (404, and a warning, if it does not exist).
fn source_app(svc: &Service, source: &SourceConfig) -> ApiResult<AppRecord> {
    svc.store
        .state()
        .app_by_id_or_uid(&source.app)?
        .ok_or_else(|| {
            tracing::warn!(source = %source.name, app = %source.app, "the source's application does not exist");
            ApiError::NotFound(format!(
                "application {} of source {} not found",
                source.app, source.name
            ))
        })
}

/// Claims delivery `id` of the source (`scope`) for this request: `Some` is the first
/// delivery's answer, replayed (nothing is stored again); 409 while another request is
/// storing it.
fn claim_delivery(
    svc: &Service,
    scope: &str,
    id: &str,
    now_ms: u64,
) -> ApiResult<Option<Response>> {
    let placeholder = IdempotencyRecord {
        expires_ms: now_ms + IDEMPOTENCY_CLAIM_MS,
        status: 0,
        body: Vec::new(),
    };
    match svc
        .store
        .state()
        .claim_idempotency(scope, id, &placeholder, now_ms)?
    {
        Some(prev) if prev.status == 0 => Err(ApiError::Conflict(format!(
            "delivery {id} is still being stored; retry"
        ))),
        Some(prev) => Ok(Some(Response::json(200, prev.body))),
        None => Ok(None),
    }
}

/// Keeps the answer to delivery `id` until `expires_ms`, durably, before it is given.
async fn remember_delivery(
    svc: &Service,
    scope: &str,
    id: &str,
    expires_ms: u64,
    body: Vec<u8>,
) -> ApiResult<()> {
    let record = IdempotencyRecord {
        expires_ms,
        status: 202,
        body,
    };
    svc.store.state().put_idempotency(scope, id, &record)?;
    let ticket = svc.store.commit_index();
    svc.store.index_durable().wait(ticket).await?;
    Ok(())
}

/// The value `at` points to: a header, a JSON pointer into the body (a string there), or a
/// fixed value. Missing is a 422 located at the header or the pointer.
fn locate(at: &Locator, req: &Request, body: &serde_json::Value, what: &str) -> ApiResult<String> {
    let (found, loc) = match at {
        Locator::Fixed(v) => return Ok(v.clone()),
        Locator::Header(h) => (
            req.header_str(h).map(|v| v.trim().to_owned()),
            vec!["header".to_owned(), h.clone()],
        ),
        Locator::Pointer(p) => (
            body.pointer(p).and_then(|v| v.as_str()).map(str::to_owned),
            std::iter::once("body".to_owned())
                .chain(p.split('/').skip(1).map(str::to_owned))
                .collect(),
        ),
    };
    found.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::Validation(vec![FieldError {
            loc,
            msg: format!("the {what} is missing here (or not a non-empty string)"),
            kind: "missing",
        }])
    })
}

/// A source as the admin API shows it: everything but its secrets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceOut<'a> {
    name: &'a str,
    /// Where providers post.
    path: String,
    app: &'a str,
    scheme: &'static str,
    tolerance_seconds: u64,
    event_type: LocatorOut<'a>,
    delivery_id: Option<LocatorOut<'a>>,
    /// `hmac-sha256` and `token`: the header carrying the signature or the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_encoding: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LocatorOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

impl<'a> From<&'a Locator> for LocatorOut<'a> {
    fn from(l: &'a Locator) -> Self {
        let mut out = LocatorOut {
            header: None,
            pointer: None,
            value: None,
        };
        match l {
            Locator::Header(h) => out.header = Some(h),
            Locator::Pointer(p) => out.pointer = Some(p),
            Locator::Fixed(v) => out.value = Some(v),
        }
        out
    }
}

impl<'a> From<&'a SourceConfig> for SourceOut<'a> {
    fn from(s: &'a SourceConfig) -> Self {
        let (header, signature_encoding) = match &s.scheme {
            SourceScheme::HmacSha256 {
                header, encoding, ..
            } => (Some(header.as_str()), Some(encoding.as_str())),
            SourceScheme::Token { header, .. } => (Some(header.as_str()), None),
            _ => (None, None),
        };
        SourceOut {
            name: &s.name,
            path: format!("/ingest/{}", s.name),
            app: &s.app,
            scheme: s.scheme.name(),
            tolerance_seconds: s.tolerance.as_secs(),
            event_type: LocatorOut::from(&s.event_type),
            delivery_id: s.delivery_id.as_ref().map(LocatorOut::from),
            header,
            signature_encoding,
        }
    }
}

/// `GET /api/v1/source`: every configured source (at most `SOURCES_MAX`, so one page).
pub fn list(cx: &Ctx<'_>) -> ApiResult {
    let config = cx.svc.config();
    let data: Vec<SourceOut<'_>> = config.sources.iter().map(SourceOut::from).collect();
    json_response(
        200,
        &ListResponse {
            iterator: data.last().map(|s| s.name.to_owned()),
            data,
            prev_iterator: None,
            done: true,
        },
    )
}
