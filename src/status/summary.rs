//! `GET /api/v1/status/summary`: what the status page shows, in one JSON answer.
//!
//! Health (version, uptime, shards and their heartbeats, driver, disk against its ceiling,
//! pending deliveries), the per-second series of the ring, and the unhealthy endpoints:
//! failing (`failing_since_ms` set) or disabled, each with its latest attempt and its pending
//! deliveries. Every scan is capped (endpoints, deliveries, endpoints listed) and the answer
//! says when a cap cut it short. It carries no secret and no payload: endpoint URLs lose
//! their user info and query, response snippets are cut short.

use serde::Serialize;
use storage::state::{AppRecord, AttemptRecord, EndpointRecord, MessageRecord};

use super::{
    ring::{SERIES, SERIES_LEN, WINDOW_SECS},
    Status,
};
use crate::{
    api::{error::ApiResult, input::Query, json_response},
    deliver::Queues,
    http::Request,
    model::message_id,
    service::Service,
};

/// Endpoints looked at, at most, per summary.
const ENDPOINTS_SCAN_MAX: usize = 5000;
/// Unhealthy endpoints listed, at most.
const UNHEALTHY_MAX: usize = 100;
/// Deliveries looked at for one endpoint's pending count, at most.
const DELIVERIES_PER_ENDPOINT_MAX: usize = 2000;
/// Deliveries looked at for all endpoints together, at most.
const DELIVERIES_SCAN_MAX: usize = 20_000;
/// Characters of a response body shown.
const SNIPPET_CHARS: usize = 200;
/// Apps read per index page while scanning.
const APPS_PAGE: usize = 256;
/// A heartbeat that has not moved for longer than this marks its shard as down (shards beat
/// at least once a second).
const BEAT_STALE_SECS: u64 = 5;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    version: &'static str,
    now_ms: u64,
    started_ms: u64,
    uptime_ms: u64,
    driver: &'static str,
    shards: Vec<Shard>,
    dispatcher: Beat,
    disk: Disk,
    pending: Pending,
    series: Series,
    endpoints: Endpoints,
    problems: Problems,
}

/// Bugs met and threads lost since start.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Problems {
    /// Panics caught (each stopped one task).
    panics: u64,
    /// The last one: message, thread and location.
    last_panic: Option<String>,
    /// Threads that stopped unexpectedly (health answers 503 while any did).
    stopped: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shard {
    index: usize,
    up: bool,
    /// Seconds since its heartbeat last moved.
    beat_age_secs: Option<u64>,
    queue_depth: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Beat {
    up: bool,
    beat_age_secs: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Disk {
    /// Log segments and index.
    bytes: u64,
    log_bytes: u64,
    /// `storage.max_bytes`: the ceiling of the log.
    log_max_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    count: usize,
    oldest_age_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    step_ms: u64,
    /// The start of the last second of the series (Unix ms).
    end_ms: u64,
    names: [&'static str; SERIES_LEN],
    /// One array per name, oldest first: counts in each second, from the start at most.
    values: [Vec<u32>; SERIES_LEN],
    /// Counts since the process started.
    totals: [u64; SERIES_LEN],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoints {
    unhealthy: Vec<Unhealthy>,
    /// Endpoints looked at.
    scanned: usize,
    /// A cap cut the scan or the list short: there may be more unhealthy endpoints.
    truncated: bool,
    limits: Limits,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Limits {
    endpoints_scanned_max: usize,
    unhealthy_max: usize,
    deliveries_per_endpoint_max: usize,
    deliveries_scanned_max: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unhealthy {
    app_id: String,
    app_uid: Option<String>,
    app_name: String,
    id: String,
    uid: Option<String>,
    url: String,
    description: String,
    disabled: bool,
    disabled_reason: Option<String>,
    failing_since_ms: Option<u64>,
    last_attempt: Option<LastAttempt>,
    pending: EndpointPending,
    /// An ordered endpoint's lanes that wait behind a head (at most [`HEADS_MAX`]); absent
    /// for an unordered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_heads: Option<Vec<BlockedHead>>,
}

/// Blocked lanes shown per ordered endpoint, at most.
const HEADS_MAX: usize = 5;

/// The head of an ordered endpoint's lane that waits in the index.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockedHead {
    msg_id: Option<String>,
    attempts: u32,
    /// When its next attempt is due, if it is (not in flight, not yet recorded).
    next_at_ms: Option<u64>,
    /// Deliveries of the lane behind it.
    waiting_behind: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastAttempt {
    id: String,
    msg_id: Option<String>,
    at_ms: u64,
    status_code: Option<u16>,
    response: String,
    response_truncated: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointPending {
    count: usize,
    oldest_age_ms: Option<u64>,
    /// False when the scan stopped at a cap: `count` is then a lower bound.
    complete: bool,
}

/// The summary, sampled now. `?seconds=N` shortens the series (default and most: the ring); it
/// never reaches back before the start.
pub fn answer(status: &Status, svc: &Service, queues: &Queues, req: &Request) -> ApiResult {
    let now_ms = status.sample(svc);
    let now_s = now_ms / 1000;
    let seconds = Query::parse(req.query())
        .get("seconds")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(WINDOW_SECS)
        .clamp(1, WINDOW_SECS);
    let (series, shards, dispatcher) = {
        let inner = status
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Not before the start: seconds when hookd was not running are not "no traffic".
        let since_start = now_s.saturating_sub(status.started_ms / 1000) + 1;
        let len = seconds.min(usize::try_from(since_start).unwrap_or(usize::MAX));
        let (end, values) = inner.sampler.ring().series(now_s, len);
        let series = Series {
            step_ms: 1000,
            end_ms: end * 1000,
            names: SERIES,
            values,
            totals: inner.sampler.totals(),
        };
        let beat = |i| {
            let age = inner.beats.age(i, now_s);
            (age.is_some_and(|a| a <= BEAT_STALE_SECS), age)
        };
        let gauges_shards = svc.liveness.shards();
        let shards: Vec<(bool, Option<u64>)> = (0..gauges_shards).map(beat).collect();
        (series, shards, beat(gauges_shards))
    };
    let gauges = queues.gauges(svc);
    let summary = Summary {
        version: env!("CARGO_PKG_VERSION"),
        now_ms,
        started_ms: status.started_ms,
        uptime_ms: now_ms.saturating_sub(status.started_ms),
        driver: gauges.driver,
        shards: shards
            .into_iter()
            .enumerate()
            .map(|(index, (up, beat_age_secs))| Shard {
                index,
                up,
                beat_age_secs,
                queue_depth: gauges.queue_depths.get(index).copied().unwrap_or(0),
            })
            .collect(),
        dispatcher: Beat {
            up: dispatcher.0,
            beat_age_secs: dispatcher.1,
        },
        disk: Disk {
            bytes: gauges.disk_bytes,
            log_bytes: svc.store.log().disk_bytes(),
            log_max_bytes: svc.config().storage.max_bytes,
        },
        pending: Pending {
            count: gauges.pending,
            oldest_age_ms: gauges.oldest_pending_age_ms,
        },
        series,
        endpoints: unhealthy(svc, now_ms)?,
        problems: Problems {
            panics: crate::panics::count(),
            last_panic: crate::panics::last(),
            stopped: svc.liveness.dead().iter().map(|p| p.to_string()).collect(),
        },
    };
    json_response(200, &summary)
}

/// Failing and disabled endpoints: disabled first, then the longest failing.
fn unhealthy(svc: &Service, now_ms: u64) -> storage::Result<Endpoints> {
    let state = svc.store.state();
    let mut found: Vec<(AppRecord, EndpointRecord)> = Vec::new();
    let (mut scanned, mut truncated) = (0usize, false);
    let mut after = None;
    'apps: loop {
        let apps = state.list_apps(after, APPS_PAGE, false)?;
        for app in &apps.items {
            let eps = state.list_endpoints(app.key, None, ENDPOINTS_SCAN_MAX - scanned, false)?;
            scanned += eps.items.len();
            for ep in eps.items {
                if !(ep.disabled || ep.failing_since_ms.is_some()) {
                    continue;
                }
                if found.len() == UNHEALTHY_MAX {
                    truncated = true;
                } else {
                    found.push((app.clone(), ep));
                }
            }
            if !eps.done {
                truncated = true;
                break 'apps;
            }
        }
        match apps.items.last() {
            Some(last) if !apps.done => after = Some(last.key),
            _ => break,
        }
    }
    found.sort_by_key(|(_, ep)| (!ep.disabled, ep.failing_since_ms.unwrap_or(u64::MAX)));
    let floor = state.min_pending_seq()?;
    let mut budget = DELIVERIES_SCAN_MAX;
    let mut unhealthy = Vec::with_capacity(found.len());
    for (app, ep) in found {
        let last_attempt = state
            .attempts_for_endpoint(ep.key, None, 1)?
            .items
            .into_iter()
            .next()
            .map(|a| last_attempt(svc, a));
        let pending = pending(svc, &ep, floor, &mut budget, now_ms)?;
        let blocked_heads = if ep.fifo {
            Some(blocked_heads(svc, &ep)?)
        } else {
            None
        };
        unhealthy.push(Unhealthy {
            app_id: app.id,
            app_uid: app.uid,
            app_name: app.name,
            id: ep.id,
            uid: ep.uid,
            url: redact_url(&ep.url),
            description: ep.description,
            disabled: ep.disabled,
            disabled_reason: ep.disabled_reason,
            failing_since_ms: ep.failing_since_ms,
            last_attempt,
            pending,
            blocked_heads,
        });
    }
    Ok(Endpoints {
        unhealthy,
        scanned,
        truncated,
        limits: Limits {
            endpoints_scanned_max: ENDPOINTS_SCAN_MAX,
            unhealthy_max: UNHEALTHY_MAX,
            deliveries_per_endpoint_max: DELIVERIES_PER_ENDPOINT_MAX,
            deliveries_scanned_max: DELIVERIES_SCAN_MAX,
        },
    })
}

/// The endpoint's open deliveries in the index, from the lowest open seq of all (`floor`) on,
/// taken from the shared `budget`.
fn pending(
    svc: &Service,
    ep: &EndpointRecord,
    floor: Option<u64>,
    budget: &mut usize,
    now_ms: u64,
) -> storage::Result<EndpointPending> {
    let Some(floor) = floor else {
        return Ok(EndpointPending {
            count: 0,
            oldest_age_ms: None,
            complete: true,
        });
    };
    let limit = DELIVERIES_PER_ENDPOINT_MAX.min(*budget);
    let rows = svc
        .store
        .state()
        .endpoint_deliveries(ep.key, floor, limit)?;
    *budget -= rows.len();
    let mut open = rows.iter().filter(|(_, st)| st.status.is_open());
    let oldest = open.next().map(|(seq, _)| *seq);
    let count = open.count() + usize::from(oldest.is_some());
    let oldest_age_ms = match oldest {
        Some(seq) => svc
            .store
            .log()
            .read(seq)
            .ok()
            .flatten()
            .map(|r| now_ms.saturating_sub(r.ts_ms)),
        None => None,
    };
    Ok(EndpointPending {
        count,
        oldest_age_ms,
        complete: rows.len() < limit,
    })
}

/// The public id of the message at `seq`, if it can be read.
fn message_id_at(svc: &Service, seq: u64) -> Option<String> {
    match svc.store.log().read(seq) {
        Ok(Some(r)) => {
            storage::codec::decode_value::<MessageRecord>(&r.payload, &|| format!("message {seq}"))
                .ok()
                .map(|m| message_id(seq, &m))
        }
        _ => None,
    }
}

/// The heads of an ordered endpoint's blocked lanes, as the stats route lists them.
fn blocked_heads(svc: &Service, ep: &EndpointRecord) -> storage::Result<Vec<BlockedHead>> {
    let (heads, _) = svc.store.state().fifo_heads(ep.key, HEADS_MAX)?;
    Ok(heads
        .into_iter()
        .map(|h| {
            let st = h.state.as_ref();
            BlockedHead {
                msg_id: message_id_at(svc, h.seq),
                attempts: st.map_or(0, |st| st.attempts),
                next_at_ms: st
                    .filter(|st| st.status == storage::state::DeliveryStatus::Pending)
                    .filter(|st| !st.is_blocked())
                    .map(|st| st.next_at_ms),
                waiting_behind: h.behind,
            }
        })
        .collect())
}

fn last_attempt(svc: &Service, a: AttemptRecord) -> LastAttempt {
    let msg_id = message_id_at(svc, a.msg_seq);
    let (response, response_truncated) = snippet(&a.response, SNIPPET_CHARS);
    LastAttempt {
        id: a.id,
        msg_id,
        at_ms: a.ts_ms,
        status_code: a.status_code,
        response,
        response_truncated,
    }
}

/// The first `max` characters of `s`, and whether that cut anything.
fn snippet(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_owned(), true),
        None => (s.to_owned(), false),
    }
}

/// The URL without user info, query or fragment, which may carry credentials.
fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        let cases = [
            ("https://a.example/hook", "https://a.example/hook"),
            (
                "https://u:p@a.example:8443/h?token=x#f",
                "https://a.example:8443/h",
            ),
            ("http://a@b@c.example", "http://c.example"),
            ("http://h.example?k=v", "http://h.example"),
            ("not a url?secret", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn snippets_cut_on_characters() {
        assert_eq!(snippet("héllo", 2), ("hé".to_owned(), true));
        assert_eq!(snippet("héllo", 5), ("héllo".to_owned(), false));
        assert_eq!(snippet("", 0), (String::new(), false));
    }
}
