//! Sending again: `resend` (one message to one endpoint), `recover` (an endpoint's failed
//! deliveries in a time window) and `replay-missing` (messages in a window the endpoint never
//! got). Each only re-queues deliveries in the index (pending, due now, triggered manually);
//! the dispatcher and the engines do the sending. `recover` and `replay-missing` answer 202 at
//! once and run as background tasks (`super::background`: a thread of their own, never a
//! shard, since they read up to a million index entries or log records), at most two at a
//! time; beyond that the request is answered 429 with `Retry-After`. Deliveries are written in batches as they are found.

use std::sync::Arc;

use serde::Deserialize;
use storage::{
    codec::decode_value,
    state::{DeliveryState, DeliveryStatus, EndpointRecord, MessageRecord, Trigger},
    ScanEnd,
};

use super::{
    apps, background, endpoints,
    error::{ApiError, ApiResult, FieldError},
    input, json_response, messages, Ctx,
};
use crate::{
    deliver::dispatch::{compile_filter, subscribed, Payload},
    http::Response,
    model::ids::{self, Kind},
    service::Service,
    time::{format_rfc3339, parse_rfc3339},
};

/// Deliveries or messages one recover or replay looks at, at most.
const SCAN_MAX: usize = 1_000_000;
/// Deliveries re-queued per index transaction.
const BATCH: usize = 512;
/// Starts `work` as a background task, or answers 429 while [`background::TASKS_MAX`] run.
fn run_in_background(name: &'static str, work: impl FnOnce() + Send + 'static) -> ApiResult<()> {
    if background::spawn(name, work) {
        Ok(())
    } else {
        Err(ApiError::TooManyRequests {
            retry_after_secs: 5,
        })
    }
}

#[derive(Debug, Deserialize)]
struct WindowIn {
    since: String,
    until: Option<String>,
}

fn window(cx: &Ctx<'_>) -> ApiResult<(u64, u64)> {
    let w: WindowIn = input::json(&cx.req.body)?;
    let bad =
        |f: &str| ApiError::Validation(vec![FieldError::body(f, "not an RFC 3339 date-time")]);
    let since = parse_rfc3339(&w.since).ok_or_else(|| bad("since"))?;
    let until = match &w.until {
        Some(u) => parse_rfc3339(u).ok_or_else(|| bad("until"))?,
        None => u64::MAX,
    };
    if until < since {
        return Err(ApiError::invalid("until", "is before since"));
    }
    Ok((since, until))
}

/// A delivery due now with a fresh schedule, triggered by hand.
pub(super) fn queued(now: u64, attempts: u32) -> DeliveryState {
    DeliveryState {
        status: DeliveryStatus::Pending,
        attempts,
        next_at_ms: now,
        last_status_code: None,
        updated_ms: now,
        trigger: Trigger::Manual,
    }
}

fn task_answer(cx: &Ctx<'_>, task: &str) -> ApiResult {
    let now = cx.svc.now_ms();
    let key = cx.svc.store.state().next_key()?;
    let id = ids::fresh(Kind::Task, key, now);
    json_response(
        202,
        &serde_json::json!({ "id": id, "status": "running", "task": task, "updatedAt": format_rfc3339(now) }),
    )
}

/// `POST /app/{app}/msg/{msg}/endpoint/{ep}/resend`: one more delivery, with a fresh schedule.
pub async fn resend(cx: &Ctx<'_>, app: &str, msg: &str, ep: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, _) = messages::find(cx, &a, msg)?;
    let (_, e) = endpoints::find(cx, app, ep)?;
    if cx.svc.store.state().is_expunged(seq)? {
        return Err(ApiError::Conflict(format!(
            "the content of message {msg} was expunged: it cannot be sent again"
        )));
    }
    if e.disabled {
        return Err(ApiError::Conflict(format!(
            "endpoint {} is disabled; enable it first",
            e.id
        )));
    }
    cx.svc
        .store
        .state()
        .set_delivery(e.key, seq, &queued(cx.svc.now_ms(), 0))?;
    cx.svc.due_written();
    cx.audit("message.resend", &e.id)?;
    cx.commit().await?;
    Ok(Response::json(202, b"{}".to_vec()))
}

/// `POST .../endpoint/{ep}/recover {since, until?}`: re-queues the endpoint's failed
/// deliveries of messages created in the window.
pub async fn recover(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (since, until) = window(cx)?;
    let (_, e) = endpoints::find(cx, app, ep)?;
    let svc = Arc::clone(cx.svc);
    let answer = task_answer(cx, "endpoint.recover")?;
    cx.audit("endpoint.recover", &e.id)?;
    cx.commit().await?;
    run_in_background("recover", move || {
        match recover_now(&svc, &e, since, until) {
            Ok(n) => tracing::info!(endpoint = %e.id, requeued = n, "recover finished"),
            Err(err) => tracing::error!(endpoint = %e.id, error = %err, "recover failed"),
        }
    })?;
    Ok(answer)
}

fn recover_now(
    svc: &Service,
    e: &EndpointRecord,
    since: u64,
    until: u64,
) -> storage::Result<usize> {
    let state = svc.store.state();
    let now = svc.now_ms();
    let (mut from, mut seen, mut requeued) = (0u64, 0usize, 0usize);
    loop {
        let page = state.endpoint_deliveries(e.key, from, BATCH)?;
        let Some(&(last, _)) = page.last() else { break };
        let mut batch = Vec::new();
        for (seq, st) in page {
            seen += 1;
            if st.status != DeliveryStatus::Fail {
                continue;
            }
            let created = created_ms(svc, seq)?;
            if created.is_some_and(|t| (since..=until).contains(&t)) {
                batch.push((e.key, seq, queued(now, 0)));
            }
        }
        requeued += batch.len();
        state.set_deliveries(&batch)?;
        svc.due_written();
        if seen >= SCAN_MAX {
            break;
        }
        from = last + 1;
    }
    Ok(requeued)
}

fn created_ms(svc: &Service, seq: u64) -> storage::Result<Option<u64>> {
    Ok(match svc.store.log().read(seq) {
        Ok(Some(r)) => decode_value::<MessageRecord>(&r.payload, &|| format!("message {seq}"))
            .ok()
            .map(|m| m.created_ms),
        Ok(None) | Err(storage::Error::Quarantined { .. }) => None,
        Err(e) => return Err(e),
    })
}

/// `POST .../endpoint/{ep}/replay-missing {since, until?}`: queues the app's messages in the
/// window that the endpoint subscribes to and has no delivery for.
pub async fn replay_missing(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (since, until) = window(cx)?;
    let (a, e) = endpoints::find(cx, app, ep)?;
    let svc = Arc::clone(cx.svc);
    let app_key = a.key;
    let answer = task_answer(cx, "endpoint.replay")?;
    cx.audit("endpoint.replay_missing", &e.id)?;
    cx.commit().await?;
    run_in_background("replay", move || {
        match replay_now(&svc, app_key, &e, since, until) {
            Ok(n) => tracing::info!(endpoint = %e.id, queued = n, "replay-missing finished"),
            Err(err) => tracing::error!(endpoint = %e.id, error = %err, "replay-missing failed"),
        }
    })?;
    Ok(answer)
}

fn replay_now(
    svc: &Service,
    app: u64,
    e: &EndpointRecord,
    since: u64,
    until: u64,
) -> storage::Result<usize> {
    let state = svc.store.state();
    let now = svc.now_ms();
    let filter = compile_filter(e);
    let mut missing = Vec::new();
    let mut total = 0;
    let mut failure = None;
    let end = svc.store.log().scan_back(app, None, SCAN_MAX, |rec| {
        let Ok(m) = decode_value::<MessageRecord>(&rec.payload, &|| format!("message {}", rec.seq))
        else {
            return true;
        };
        if m.created_ms < since {
            return false; // older than the window: done
        }
        if m.created_ms <= until
            && subscribed(e, &m)
            && Payload::new(&m.payload).passes(filter.as_ref())
        {
            match state.delivery(e.key, rec.seq) {
                Ok(None) => missing.push((e.key, rec.seq, queued(now, 0))),
                Ok(Some(_)) => {}
                Err(err) => {
                    failure = Some(err);
                    return false;
                }
            }
        }
        if missing.len() >= BATCH {
            if let Err(err) = state.set_deliveries(&missing) {
                failure = Some(err);
                return false;
            }
            svc.due_written();
            total += missing.len();
            missing.clear();
        }
        true
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    if let ScanEnd::Budget { .. } = end {
        tracing::warn!(endpoint = %e.id, "replay-missing stopped at its scan limit");
    }
    state.set_deliveries(&missing)?;
    svc.due_written();
    Ok(total + missing.len())
}
