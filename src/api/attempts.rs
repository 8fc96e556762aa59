//! Attempts and per-endpoint delivery status of messages. Until the delivery engine lands
//! (issue 4) these lists are empty, but they answer with the right shapes and errors.

use storage::state::{AttemptRecord, DeliveryStatus, Trigger};

use super::{
    apps, endpoints,
    error::{ApiError, ApiResult, FieldError},
    json_response,
    list::{self, ListParams},
    messages, Ctx,
};
use crate::{
    http::Response,
    model::ids::{self, Kind},
    time::format_rfc3339,
};

fn status_text(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Success => "success",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Fail => "fail",
        DeliveryStatus::Sending => "sending",
    }
}

fn attempt_json(cx: &Ctx<'_>, a: &AttemptRecord) -> ApiResult<serde_json::Value> {
    let ep_id = cx
        .svc
        .store
        .state()
        .endpoint(a.endpoint_key)?
        .map(|e| e.id)
        .unwrap_or_default();
    let msg_id = messages::read(cx, a.msg_seq)?
        .map(|m| messages::message_id(a.msg_seq, &m))
        .unwrap_or_default();
    Ok(serde_json::json!({
        "id": a.id,
        "msgId": msg_id,
        "endpointId": ep_id,
        "url": a.url,
        "response": a.response,
        "responseStatusCode": a.status_code.map_or(0, i32::from),
        "responseDurationMs": a.duration_ms,
        "status": a.status as u8,
        "statusText": status_text(a.status),
        "triggerType": match a.trigger { Trigger::Scheduled => 0, Trigger::Manual => 1 },
        "timestamp": format_rfc3339(a.ts_ms),
    }))
}

fn status_filter(cx: &Ctx<'_>) -> ApiResult<Option<u8>> {
    match cx.query.get("status") {
        None => Ok(None),
        Some(s) => match s.parse::<u8>() {
            Ok(n) if n <= 4 => Ok(Some(n)),
            _ => Err(ApiError::Validation(vec![FieldError::query(
                "status",
                "must be 0 to 4",
            )])),
        },
    }
}

fn attempts_page(
    cx: &Ctx<'_>,
    fetch: impl Fn(Option<u64>, usize) -> ApiResult<storage::Page<AttemptRecord>>,
    keep: impl Fn(&AttemptRecord) -> bool,
) -> ApiResult {
    let params = ListParams::parse(&cx.query, true)?;
    if !params.descending || params.backwards {
        return Err(ApiError::Validation(vec![FieldError::query(
            "iterator",
            "attempts list newest first, forwards",
        )]));
    }
    let before = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::Attempt, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    // Filtered pages are filled from further pages, bounded by a scan limit.
    let mut out = Vec::new();
    let mut cursor = before;
    let mut more = false;
    for _ in 0..20 {
        let page = fetch(cursor, params.limit)?;
        cursor = page.items.last().map(|a| a.key);
        for a in page.items.iter().filter(|a| keep(a)) {
            if out.len() == params.limit {
                more = true;
                break;
            }
            out.push((a.id.clone(), attempt_json(cx, a)?));
        }
        if out.len() == params.limit || page.done {
            more |= !page.done;
            break;
        }
    }
    let resp = list::respond(&params, out, more, |(id, _)| id.clone());
    let data: Vec<&serde_json::Value> = resp.data.iter().map(|(_, v)| v).collect();
    json_response(
        200,
        &serde_json::json!({
            "data": data, "iterator": resp.iterator, "prevIterator": resp.prev_iterator, "done": resp.done,
        }),
    )
}

pub fn by_message(cx: &Ctx<'_>, app: &str, msg: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, _) = messages::find(cx, &a, msg)?;
    let status = status_filter(cx)?;
    let ep = match cx.query.get("endpoint_id") {
        Some(e) => Some(endpoints::find(cx, app, e)?.1.key),
        None => None,
    };
    attempts_page(
        cx,
        |before, limit| {
            Ok(cx
                .svc
                .store
                .state()
                .attempts_for_message(seq, before, limit)?)
        },
        |at| status.is_none_or(|s| at.status as u8 == s) && ep.is_none_or(|e| at.endpoint_key == e),
    )
}

pub fn by_endpoint(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (_, e) = endpoints::find(cx, app, ep)?;
    let status = status_filter(cx)?;
    attempts_page(
        cx,
        |before, limit| {
            Ok(cx
                .svc
                .store
                .state()
                .attempts_for_endpoint(e.key, before, limit)?)
        },
        |at| status.is_none_or(|s| at.status as u8 == s),
    )
}

pub fn get(cx: &Ctx<'_>, app: &str, msg: &str, attempt: &str) -> ApiResult {
    let at = find(cx, app, msg, attempt)?;
    json_response(200, &attempt_json(cx, &at)?)
}

/// Attempt `attempt` of message `msg` in app `app` (404 if any of them is not there).
fn find(cx: &Ctx<'_>, app: &str, msg: &str, attempt: &str) -> ApiResult<AttemptRecord> {
    let a = apps::find(cx, app)?;
    let (seq, _) = messages::find(cx, &a, msg)?;
    let not_found = || ApiError::NotFound(format!("attempt {attempt} not found"));
    let parts = ids::decode(Kind::Attempt, attempt).ok_or_else(not_found)?;
    cx.svc
        .store
        .state()
        .attempt(seq, parts.key)?
        .filter(|at| at.id == attempt)
        .ok_or_else(not_found)
}

/// What an expunged attempt shows as its response body, as Svix.
const EXPUNGED: &str = "EXPUNGED";

/// `DELETE .../msg/{msg}/attempt/{attempt}/content`: forgets the response body kept for the
/// attempt (an endpoint that answered with something sensitive); it reads `EXPUNGED` from
/// then on. 204, audited.
pub async fn expunge_content(cx: &Ctx<'_>, app: &str, msg: &str, attempt: &str) -> ApiResult {
    let at = find(cx, app, msg, attempt)?;
    if !cx
        .svc
        .store
        .state()
        .replace_attempt_response(at.msg_seq, at.key, EXPUNGED)?
    {
        // Retention took it between the read and the write.
        return Err(ApiError::NotFound(format!("attempt {attempt} not found")));
    }
    cx.audit("attempt.expunge_content", attempt)?;
    cx.commit().await?;
    Ok(Response::empty(204))
}

/// `GET .../endpoint/{ep}/msg`: the messages sent (or to be sent) to the endpoint, newest
/// first, each with its status there (Svix's "list attempted messages"): the message list's
/// filters and paging, plus `status`. A message's first attempt still in flight (not yet
/// recorded) is not listed until it is.
pub fn endpoint_messages(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (a, e) = endpoints::find(cx, app, ep)?;
    let status = status_filter(cx)?;
    let state = cx.svc.store.state();
    messages::page(cx, &a, |seq, _| {
        let Some(st) = state.delivery(e.key, seq)? else {
            return Ok(None);
        };
        if status.is_some_and(|s| s != st.status as u8) {
            return Ok(None);
        }
        // A delivery blocked behind the head of its ordered lane has no time of its own.
        let next = match st.status {
            DeliveryStatus::Pending if !st.is_blocked() => {
                format!("\"{}\"", format_rfc3339(st.next_at_ms))
            }
            _ => "null".to_owned(),
        };
        Ok(Some(format!(
            ",\"status\":{},\"statusText\":\"{}\",\"nextAttempt\":{next}",
            st.status as u8,
            status_text(st.status)
        )))
    })
}

/// The endpoints a message is (or was) to be delivered to, with its status at each.
pub fn message_endpoints(cx: &Ctx<'_>, app: &str, msg: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, _) = messages::find(cx, &a, msg)?;
    let params = ListParams::parse(&cx.query, false)?;
    let state = cx.svc.store.state();
    let endpoints = state.app_endpoints(a.key)?;
    let states = state.message_deliveries(seq, endpoints.iter().map(|e| e.key))?;
    let mut out = Vec::new();
    for (ep_key, st) in states.into_iter().take(list::LIMIT_MAX) {
        if let Some(e) = endpoints.iter().find(|e| e.key == ep_key) {
            let mut v = serde_json::to_value(super::models::EndpointOut::from(e))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            v["status"] = (st.status as u8).into();
            v["statusText"] = status_text(st.status).into();
            if st.status == DeliveryStatus::Pending && !st.is_blocked() {
                v["nextAttempt"] = format_rfc3339(st.next_at_ms).into();
            }
            out.push((e.id.clone(), v));
        }
    }
    out.truncate(params.limit);
    let resp = list::respond(&params, out, false, |(id, _)| id.clone());
    let data: Vec<&serde_json::Value> = resp.data.iter().map(|(_, v)| v).collect();
    json_response(
        200,
        &serde_json::json!({ "data": data, "iterator": resp.iterator, "prevIterator": null, "done": true }),
    )
}
