//! Filtered bulk replay (Svix's `BulkReplayIn`): `POST .../endpoint/{ep}/bulk-replay` re-sends
//! the endpoint's deliveries of messages created in a window that match the request's filters
//! (event types, channel, delivery status, last status code class), and
//! `GET .../endpoint/{ep}/bulk-replay/{id}` reads its progress.
//!
//! The work runs as a background task (`super::background`, never on a shard), in chunks of
//! [`CHUNK`] messages: each chunk's re-queued deliveries are written in one transaction and the
//! task's progress (`matched`, `queued`, `done`) after it, so the progress read is never ahead
//! of what is queued. Progress is kept in the index with the [`TASKS_KEPT`] newest tasks, so it
//! survives a restart (a task cut short by one says `running` with its last progress, and the
//! deliveries it queued stay queued).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use storage::{
    codec::decode_value,
    state::{DeliveryState, EndpointRecord, MessageRecord},
};

use super::{
    endpoints::{self, first_seq_at},
    error::{ApiError, ApiResult, FieldError},
    input, json_response, Ctx,
};
use crate::{
    model::ids::{self, Kind},
    service::Service,
    time::{format_rfc3339, parse_rfc3339},
};

/// Messages read per chunk (one index transaction, one progress write).
const CHUNK: usize = 512;
/// Messages one bulk replay looks at, at most.
const SCAN_MAX: usize = 1_000_000;
/// Tasks whose progress is kept.
const TASKS_KEPT: usize = 1000;
/// How much later than its message's creation a log record may be appended, at most (a
/// request's life).
const APPEND_SLACK_MS: u64 = 60_000;
/// The task name in the answers.
const TASK: &str = "endpoint.bulk-replay";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkReplayIn {
    since: String,
    until: Option<String>,
    event_types: Option<Vec<String>>,
    channel: Option<String>,
    status: Option<u8>,
    status_code_class: Option<u16>,
}

/// What a bulk replay matches, checked.
#[derive(Debug, Clone)]
struct Criteria {
    since: u64,
    until: u64,
    event_types: Vec<String>,
    channel: Option<String>,
    status: Option<u8>,
    code_class: Option<u16>,
}

impl Criteria {
    fn parse(body: BulkReplayIn) -> ApiResult<Self> {
        let mut errors = Vec::new();
        let mut time = |field: &str, v: &str| match parse_rfc3339(v) {
            Some(t) => t,
            None => {
                errors.push(FieldError::body(field, "not an RFC 3339 date-time"));
                0
            }
        };
        let since = time("since", &body.since);
        let until = body.until.as_deref().map_or(u64::MAX, |u| time("until", u));
        if until < since {
            errors.push(FieldError::body("until", "is before since"));
        }
        if body.status.is_some_and(|s| s > 3) {
            errors.push(FieldError::body(
                "status",
                "0 (success), 1 (pending), 2 (fail) or 3 (sending)",
            ));
        }
        if body
            .status_code_class
            .is_some_and(|c| !matches!(c, 0 | 100 | 200 | 300 | 400 | 500))
        {
            errors.push(FieldError::body(
                "statusCodeClass",
                "0 (no answer), 100, 200, 300, 400 or 500",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(Self {
            since,
            until,
            event_types: body.event_types.unwrap_or_default(),
            channel: body.channel,
            status: body.status,
            code_class: body.status_code_class,
        })
    }

    fn delivery_matches(&self, st: &DeliveryState) -> bool {
        let class = st.last_status_code.map_or(0, |c| c / 100 * 100);
        self.status.is_none_or(|s| s == st.status as u8)
            && self.code_class.is_none_or(|c| c == class)
    }

    fn message_matches(&self, m: &MessageRecord) -> bool {
        (self.since..=self.until).contains(&m.created_ms)
            && (self.event_types.is_empty() || self.event_types.contains(&m.event_type))
            && self.channel.as_ref().is_none_or(|c| m.channels.contains(c))
    }
}

/// A task's progress, as kept and as answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    id: String,
    /// The endpoint it replays to (only that endpoint's route reads it).
    endpoint_id: String,
    status: String,
    task: String,
    /// Deliveries that matched the criteria so far.
    matched: u64,
    /// Of those, re-queued (a message gone from the log or expunged is not).
    queued: u64,
    done: bool,
    updated_at: String,
}

fn save(svc: &Service, p: &Progress) -> storage::Result<()> {
    let bytes = serde_json::to_vec(p).unwrap_or_default();
    svc.store.state().put_task(&p.id, &bytes)
}

/// `POST .../endpoint/{ep}/bulk-replay`: 202 with the task; 409 for a disabled endpoint.
pub async fn start(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let criteria = Criteria::parse(input::json(&cx.req.body)?)?;
    let (_, e) = endpoints::find(cx, app, ep)?;
    if e.disabled {
        return Err(ApiError::Conflict(format!(
            "endpoint {} is disabled; enable it first",
            e.id
        )));
    }
    let now = cx.svc.now_ms();
    let state = cx.svc.store.state();
    let id = ids::fresh(Kind::Task, state.next_key()?, now);
    let mut progress = Progress {
        id: id.clone(),
        endpoint_id: e.id.clone(),
        status: "running".into(),
        task: TASK.into(),
        matched: 0,
        queued: 0,
        done: false,
        updated_at: format_rfc3339(now),
    };
    save(cx.svc, &progress)?;
    state.prune_tasks(TASKS_KEPT)?;
    cx.audit("endpoint.bulk_replay", &e.id)?;
    cx.commit().await?;
    let svc = Arc::clone(cx.svc);
    let answer = progress.clone();
    let work = move || {
        let result = replay(&svc, &e, &criteria, &mut progress);
        progress.done = true;
        progress.status = match &result {
            Ok(()) => "finished".into(),
            Err(err) => {
                tracing::error!(endpoint = %e.id, task = %progress.id, error = %err, "bulk replay failed");
                "failed".into()
            }
        };
        progress.updated_at = format_rfc3339(svc.now_ms());
        if let Err(err) = save(&svc, &progress) {
            tracing::error!(task = %progress.id, error = %err, "saving a bulk replay's progress");
        }
        tracing::info!(endpoint = %e.id, matched = progress.matched, queued = progress.queued, "bulk replay finished");
    };
    if !super::background::spawn("bulk-replay", work) {
        // Nothing started: the task says so, and the caller is told when to come back.
        let refused = Progress {
            status: "failed".into(),
            done: true,
            ..answer
        };
        save(cx.svc, &refused)?;
        return Err(ApiError::TooManyRequests {
            retry_after_secs: 5,
        });
    }
    json_response(202, &answer)
}

/// The work: the app's messages of the window, newest first (a scan of the log under the
/// app's key, as `replay-missing`), each with its delivery state at the endpoint (first
/// attempts that succeeded included, which keep no state of their own); progress saved every
/// [`CHUNK`] messages.
fn replay(
    svc: &Service,
    e: &EndpointRecord,
    criteria: &Criteria,
    progress: &mut Progress,
) -> storage::Result<()> {
    let state = svc.store.state();
    let log = svc.store.log();
    // A message is stamped when its request is handled and its log record when appended, a
    // little later: the scan starts past `until` by a margin, and `created_ms` decides.
    let before = first_seq_at(log, criteria.until.saturating_add(APPEND_SLACK_MS));
    let mut batch = Vec::new();
    let mut seen = 0usize;
    let mut failure = None;
    let flush = |batch: &mut Vec<(u64, u64, DeliveryState)>, progress: &mut Progress| {
        state.set_deliveries(batch)?;
        svc.due_written();
        progress.queued += batch.len() as u64;
        progress.updated_at = format_rfc3339(svc.now_ms());
        batch.clear();
        save(svc, progress)
    };
    log.scan_back(e.app_key, Some(before), SCAN_MAX, |rec| {
        let Ok(m) = decode_value::<MessageRecord>(&rec.payload, &|| format!("message {}", rec.seq))
        else {
            return true;
        };
        if m.created_ms < criteria.since {
            return false; // older than the window: done
        }
        let step = (|| -> storage::Result<()> {
            if !criteria.message_matches(&m) {
                return Ok(());
            }
            let Some(st) = state.delivery(e.key, rec.seq)? else {
                return Ok(());
            };
            if !criteria.delivery_matches(&st) {
                return Ok(());
            }
            progress.matched += 1;
            if !state.is_expunged(rec.seq)? {
                batch.push((e.key, rec.seq, super::replay::queued(svc.now_ms(), 0)));
            }
            Ok(())
        })();
        seen += 1;
        let step = step.and_then(|()| match seen % CHUNK {
            0 => flush(&mut batch, progress),
            _ => Ok(()),
        });
        match step {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    flush(&mut batch, progress)
}

/// `GET .../endpoint/{ep}/bulk-replay/{id}`: the task's progress (404 if it is not this
/// endpoint's, or no longer kept).
pub fn get(cx: &Ctx<'_>, app: &str, ep: &str, id: &str) -> ApiResult {
    let (_, e) = endpoints::find(cx, app, ep)?;
    let not_found = || ApiError::NotFound(format!("bulk replay {id} not found"));
    let bytes = cx.svc.store.state().task(id)?.ok_or_else(not_found)?;
    let p: Progress = serde_json::from_slice(&bytes).map_err(|_| not_found())?;
    if p.endpoint_id != e.id {
        return Err(not_found());
    }
    json_response(200, &p)
}
