//! `/app/{app}/endpoint/...`: endpoints, their secrets, custom headers and stats. A new or
//! changed endpoint must satisfy `[endpoint_policy]` (`crate::policy`): 422 naming the rule.
//! Creates, updates, deletes and manual disables are told to the operator endpoint
//! (`crate::ingest::operational`).

use std::collections::BTreeMap;

use storage::state::{AppRecord, DeliveryStatus, EndpointRecord, LegacySignature, SigningKey};

use super::{
    apps,
    error::{ApiError, ApiResult, FieldError},
    input::{self, check_name, check_uid},
    json_response,
    list::{self, ListParams},
    models::{
        EndpointFilterTestIn, EndpointIn, EndpointOut, EndpointPatch, FilterTestIn, HeadersIn,
        Ordering, Patch, SecretRotateIn,
    },
    Ctx,
};
use crate::{
    config::{OpEventType, SignatureKind},
    http::Response,
    ingest::operational,
    model::ids::{self, Kind},
    model::url::Url,
};

/// Bytes of a generated secret (as Svix: 24, so `whsec_` + 32 base64 characters).
const SECRET_BYTES: usize = crate::model::secret::SECRET_BYTES_MIN;
/// Channels an endpoint may filter on, and their length.
const CHANNELS_MAX: usize = 10;
const CHANNEL_BYTES_MAX: usize = 128;
/// Custom headers per endpoint.
const HEADERS_MAX: usize = 20;

use crate::model::{filter::Filter, legacy::LegacySignatureIn, secret};

/// The endpoint of `app` named by id or uid, or 404.
pub fn find(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult<(AppRecord, EndpointRecord)> {
    let a = apps::find(cx, app)?;
    let e = cx
        .svc
        .store
        .state()
        .endpoint_by_id_or_uid(a.key, ep)?
        .ok_or_else(|| ApiError::NotFound(format!("endpoint {ep} not found")))?;
    Ok((a, e))
}

/// An endpoint secret from the API: `whsec_` (HMAC) or `whsk_` (ed25519).
fn parse_secret(s: &str) -> Result<Vec<u8>, String> {
    secret::parse_endpoint_secret(s).map_err(|e| e.to_string())
}

/// A new random key: ed25519 when `ed25519`, else HMAC (24 bytes, as Svix).
fn new_secret(ed25519: bool) -> Vec<u8> {
    if ed25519 {
        secret::ed25519_from_seed(&rand::random())
    } else {
        (0..SECRET_BYTES).map(|_| rand::random::<u8>()).collect()
    }
}

/// Checks fields shared by create, update and patch; names unknown event types and the
/// endpoint policy rules broken (`rank`: see [`crate::policy::violations`]; `Some`
/// only when the endpoint is new).
fn validate(cx: &Ctx<'_>, e: &EndpointRecord, rank: Option<usize>) -> ApiResult<()> {
    let mut errors = Vec::new();
    let config = cx.svc.config();
    match Url::parse(&e.url) {
        Err(why) => errors.push(FieldError::body("url", format!("invalid URL: {why}"))),
        // SSRF guard, where the address is known now; names are checked when dialled.
        Ok(url) if !config.delivery.allow_private_networks => {
            let refused = match url.ip() {
                Some(ip) => crate::model::ssrf::check(ip).err(),
                None if url.host == "localhost" || url.host.ends_with(".localhost") => {
                    Some("loopback address")
                }
                None => None,
            };
            if let Some(why) = refused {
                errors.push(FieldError::body(
                    "url",
                    format!(
                        "{} is a {why}; delivery.allow_private_networks is false",
                        url.host
                    ),
                ));
            }
        }
        Ok(_) => {}
    }
    if let Some(uid) = &e.uid {
        check_uid("uid", uid, Kind::Endpoint.prefix(), &mut errors);
    }
    if let Some(types) = &e.event_types {
        let mut unknown = Vec::new();
        for t in types {
            check_name("eventTypes", t, &mut errors);
            match cx.svc.store.state().event_type(t)? {
                Some(et) if !et.archived => {}
                _ => unknown.push(t.as_str()),
            }
        }
        if !unknown.is_empty() {
            errors.push(FieldError::body(
                "eventTypes",
                format!("unknown or archived event types: {}", unknown.join(", ")),
            ));
        }
    }
    if let Some(channels) = &e.channels {
        if channels.len() > CHANNELS_MAX {
            errors.push(FieldError::body(
                "channels",
                format!("at most {CHANNELS_MAX} channels"),
            ));
        }
        for c in channels {
            if c.is_empty() || c.len() > CHANNEL_BYTES_MAX {
                errors.push(FieldError::body(
                    "channels",
                    format!("a channel is 1 to {CHANNEL_BYTES_MAX} characters"),
                ));
            }
        }
    }
    check_headers(&e.headers, &mut errors);
    if let Some(why) = crate::model::legacy::clash(&e.legacy_signatures, e.headers.keys()) {
        errors.push(FieldError::body("legacySignatures", why));
    }
    for v in crate::policy::violations(&config.endpoint_policy, e, rank) {
        let field = if v.rule == "endpoint_policy.endpoints_per_app_max" {
            ""
        } else {
            "url"
        };
        errors.push(FieldError {
            kind: "policy_violation",
            ..FieldError::body(field, v.to_string())
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn check_headers(headers: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if headers.len() > HEADERS_MAX {
        errors.push(FieldError::body(
            "headers",
            format!("at most {HEADERS_MAX} headers"),
        ));
    }
    for (name, value) in headers {
        if let Some(why) = crate::model::header_name_problem(name) {
            errors.push(FieldError::body("headers", why));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            errors.push(FieldError::body(
                "headers",
                format!("the value of {name} contains a line break"),
            ));
        }
    }
}

/// The `legacySignatures` of a write: `None` if absent (keep), empty if `null`, else the
/// checked entries (422 at each bad field).
fn legacy_signatures(
    given: Patch<Vec<LegacySignatureIn>>,
) -> ApiResult<Option<Vec<LegacySignature>>> {
    let Some(given) = given else {
        return Ok(None);
    };
    crate::model::legacy::parse_all(&given.unwrap_or_default())
        .map(Some)
        .map_err(|problems| {
            ApiError::Validation(
                problems
                    .into_iter()
                    .map(|(at, msg)| FieldError::body(&format!("legacySignatures.{at}"), msg))
                    .collect(),
            )
        })
}

/// A filter given in a body, compiled: 422 at its place if it is refused.
fn compiled_filter(v: &serde_json::Value, field: &str) -> ApiResult<(Filter, serde_json::Value)> {
    Filter::compile(v).map_err(|e| {
        let mut loc = vec!["body".to_owned(), field.to_owned()];
        loc.extend(e.at);
        ApiError::Validation(vec![FieldError {
            loc,
            msg: e.msg,
            kind: "value_error",
        }])
    })
}

/// The `filter` of a write: `None` if absent (keep), `Some(None)` if `null` (every payload),
/// else its canonical text.
fn filter(given: Patch<serde_json::Value>) -> ApiResult<Option<Option<String>>> {
    match given {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(v)) => {
            let (_, canonical) = compiled_filter(&v, "filter")?;
            Ok(Some(Some(canonical.to_string())))
        }
    }
}

/// `POST /api/v1/filter/test {filter, payload}`: `{"matches": bool}`.
pub fn test_filter(cx: &Ctx<'_>) -> ApiResult {
    let body: FilterTestIn = input::json(&cx.req.body)?;
    let (f, _) = compiled_filter(&body.filter, "filter")?;
    json_response(
        200,
        &serde_json::json!({ "matches": f.matches(&body.payload) }),
    )
}

/// `POST .../endpoint/{ep}/filter/test {payload}`: whether the endpoint's filter lets the
/// payload through (`true` for an endpoint without one).
pub fn test_endpoint_filter(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let body: EndpointFilterTestIn = input::json(&cx.req.body)?;
    let (_, e) = find(cx, app, ep)?;
    let matches = match e.filter.as_deref() {
        None => true,
        Some(text) => {
            let v: serde_json::Value = serde_json::from_str(text)
                .map_err(|err| ApiError::Internal(format!("stored filter of {}: {err}", e.id)))?;
            compiled_filter(&v, "filter")?.0.matches(&body.payload)
        }
    };
    json_response(200, &serde_json::json!({ "matches": matches }))
}

async fn save(cx: &Ctx<'_>, e: &EndpointRecord, action: &str) -> ApiResult<()> {
    cx.svc.store.state().put_endpoint(e)?;
    cx.svc.endpoints_changed();
    cx.audit(action, &e.id)?;
    cx.commit().await
}

fn new_record(cx: &Ctx<'_>, app_key: u64, body: EndpointIn) -> ApiResult<EndpointRecord> {
    let secret = match &body.secret {
        Some(s) => parse_secret(s).map_err(|why| ApiError::invalid("secret", why))?,
        None => new_secret(cx.svc.config().delivery.default_signature == SignatureKind::Ed25519),
    };
    let now = cx.svc.now_ms();
    let key = cx.svc.store.state().next_key()?;
    let secrets = vec![SigningKey {
        key: secret,
        expires_ms: None,
    }];
    let id = ids::fresh(Kind::Endpoint, key, now);
    let e = EndpointRecord {
        uid: body.uid,
        description: body.description,
        event_types: body.event_types.filter(|t| !t.is_empty()),
        channels: body.channels.filter(|c| !c.is_empty()),
        disabled: body.disabled,
        metadata: body.metadata.unwrap_or_default(),
        headers: body.headers.unwrap_or_default(),
        throttle_rate: body.throttle_rate.map(u32::from),
        legacy_signatures: legacy_signatures(body.legacy_signatures)?.unwrap_or_default(),
        filter: filter(body.filter)?.flatten(),
        fifo: body.ordering == Some(Ordering::Fifo),
        ..EndpointRecord::new(key, app_key, id, body.url, secrets, now)
    };
    // How many the app has already: the new one's place among them, for the count rule.
    let max = cx.svc.config().endpoint_policy.endpoints_per_app_max as usize;
    let rank = cx.svc.store.state().count_app_endpoints(app_key, max)?;
    validate(cx, &e, Some(rank))?;
    Ok(e)
}

pub fn list(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let params = ListParams::parse(&cx.query, false)?;
    let after = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::Endpoint, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    let page = cx.svc.store.state().list_endpoints(
        a.key,
        after,
        params.limit,
        params.scan_descending(),
    )?;
    let out: Vec<EndpointOut<'_>> = page.items.iter().map(EndpointOut::from).collect();
    json_response(
        200,
        &list::respond(&params, out, !page.done, |e| e.id.to_owned()),
    )
}

pub async fn create(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let body: EndpointIn = input::json(&cx.req.body)?;
    let e = new_record(cx, a.key, body)?;
    save(cx, &e, "endpoint.create").await?;
    operational::endpoint_changed(cx.ingest, OpEventType::EndpointCreated, &a, &e);
    json_response(201, &EndpointOut::from(&e))
}

pub fn get(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (_, e) = find(cx, app, ep)?;
    json_response(200, &EndpointOut::from(&e))
}

/// PUT: replace, or create with the path's uid (201).
pub async fn put(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let mut body: EndpointIn = input::json(&cx.req.body)?;
    match cx.svc.store.state().endpoint_by_id_or_uid(a.key, ep)? {
        Some(mut e) => {
            let was_disabled = e.disabled;
            e.url = body.url;
            e.description = body.description;
            e.throttle_rate = body.throttle_rate.map(u32::from);
            e.uid = body.uid;
            e.disabled = body.disabled;
            e.event_types = body.event_types.filter(|t| !t.is_empty());
            e.channels = body.channels.filter(|c| !c.is_empty());
            e.metadata = body.metadata.unwrap_or_default();
            // Like the secret and the headers, kept unless given (an SDK that does not know
            // the field must not clear it).
            if let Some(sigs) = legacy_signatures(body.legacy_signatures.take())? {
                e.legacy_signatures = sigs;
            }
            if let Some(f) = filter(body.filter.take())? {
                e.filter = f;
            }
            let was_fifo = e.fifo;
            // Kept unless given, like the filter: an SDK that does not know it must not
            // release an ordered endpoint's lanes.
            if let Some(o) = body.ordering {
                e.fifo = o == Ordering::Fifo;
            }
            e.updated_ms = cx.svc.now_ms();
            validate(cx, &e, None)?;
            save(cx, &e, "endpoint.update").await?;
            release_if_unordered(cx, &e, was_fifo)?;
            updated(cx, &a, &e, was_disabled);
            json_response(200, &EndpointOut::from(&e))
        }
        None => {
            body.uid.get_or_insert_with(|| ep.to_owned());
            let e = new_record(cx, a.key, body)?;
            save(cx, &e, "endpoint.create").await?;
            operational::endpoint_changed(cx.ingest, OpEventType::EndpointCreated, &a, &e);
            json_response(201, &EndpointOut::from(&e))
        }
    }
}

pub async fn patch(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let body: EndpointPatch = input::json(&cx.req.body)?;
    let (a, mut e) = find(cx, app, ep)?;
    let was_disabled = e.disabled;
    if let Some(url) = body.url {
        e.url = url;
    }
    if let Some(d) = body.description {
        e.description = d;
    }
    if let Some(r) = body.throttle_rate {
        e.throttle_rate = r.map(u32::from);
    }
    if let Some(uid) = body.uid {
        e.uid = uid;
    }
    if let Some(d) = body.disabled {
        e.disabled = d;
        if !d {
            e.disabled_reason = None;
        }
    }
    if let Some(t) = body.event_types {
        e.event_types = t.filter(|t| !t.is_empty());
    }
    if let Some(c) = body.channels {
        e.channels = c.filter(|c| !c.is_empty());
    }
    if let Some(m) = body.metadata {
        e.metadata = m;
    }
    if let Some(sigs) = legacy_signatures(body.legacy_signatures)? {
        e.legacy_signatures = sigs;
    }
    if let Some(f) = filter(body.filter)? {
        e.filter = f;
    }
    let was_fifo = e.fifo;
    if let Some(o) = body.ordering {
        e.fifo = o == Ordering::Fifo;
    }
    e.updated_ms = cx.svc.now_ms();
    validate(cx, &e, None)?;
    save(cx, &e, "endpoint.update").await?;
    release_if_unordered(cx, &e, was_fifo)?;
    updated(cx, &a, &e, was_disabled);
    json_response(200, &EndpointOut::from(&e))
}

/// An endpoint that was ordered and no longer is: the deliveries that waited in its lanes
/// are made due at once (a shard releases those it holds when their lane's head is done).
fn release_if_unordered(cx: &Ctx<'_>, e: &EndpointRecord, was_fifo: bool) -> ApiResult<()> {
    if was_fifo && !e.fifo {
        let n = cx.svc.store.state().fifo_release(e.key, cx.svc.now_ms())?;
        if n > 0 {
            cx.svc.due_written();
            tracing::info!(endpoint = %e.id, released = n, "an endpoint's ordered deliveries released");
        }
    }
    Ok(())
}

/// After an endpoint was written: its operational webhook, and when it was just disabled,
/// its open deliveries failed in the background (recoverable, as when delivery disables one;
/// if no background slot is free they fail one by one as they come due).
fn updated(cx: &Ctx<'_>, a: &AppRecord, e: &EndpointRecord, was_disabled: bool) {
    operational::endpoint_updated(cx.ingest, a, e, was_disabled);
    if e.disabled && !was_disabled {
        let (svc, key, id) = (cx.svc.clone(), e.key, e.id.clone());
        let sweep = move || match svc.store.state().fail_open_deliveries(key, svc.now_ms()) {
            Ok(n) => {
                tracing::info!(endpoint = %id, failed = n, "open deliveries of a disabled endpoint failed")
            }
            Err(err) => {
                tracing::error!(endpoint = %id, error = %err, "failing the open deliveries of a disabled endpoint; they fail as they come due")
            }
        };
        if !super::background::spawn("disable", sweep) {
            tracing::warn!(endpoint = %e.id, "no background slot for failing the open deliveries of a disabled endpoint; they fail as they come due");
        }
    }
}

pub async fn delete(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (a, e) = find(cx, app, ep)?;
    if e.config_owned {
        return Err(ApiError::Conflict(format!(
            "endpoint {} is declared in the config file; remove it there",
            e.id
        )));
    }
    cx.svc.store.state().delete_endpoint(e.key)?;
    cx.svc.endpoints_changed();
    // Deliveries waiting in its lanes come due and settle as "endpoint deleted".
    release_if_unordered(
        cx,
        &EndpointRecord {
            fifo: false,
            ..e.clone()
        },
        e.fifo,
    )?;
    cx.audit("endpoint.delete", &e.id)?;
    cx.commit().await?;
    operational::endpoint_changed(cx.ingest, OpEventType::EndpointDeleted, &a, &e);
    Ok(Response::empty(204))
}

pub fn secret(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (_, e) = find(cx, app, ep)?;
    let key = e
        .secrets
        .first()
        .map(|k| secret::verification_key(&k.key))
        .unwrap_or_default();
    json_response(200, &serde_json::json!({ "key": key }))
}

/// Rotation: the new key signs from now on; the previous one keeps signing beside it for
/// `delivery.secret_rotation_grace`. Keys whose grace has ended are dropped. Answers 200 with
/// the new secret, `{"key": "whsec_..."}`, as current Svix SDKs expect (older ones, written for
/// a 204, ignore the body): a client needs no second call, and none that retries a failed
/// read of the answer rotates twice.
pub async fn rotate(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let body: SecretRotateIn = if cx.req.body.is_empty() {
        SecretRotateIn::default()
    } else {
        input::json(&cx.req.body)?
    };
    let (_, mut e) = find(cx, app, ep)?;
    let key = match &body.key {
        Some(s) => parse_secret(s).map_err(|why| ApiError::invalid("key", why))?,
        // A key of the same kind as the current one.
        None => new_secret(
            e.secrets
                .first()
                .is_some_and(|k| secret::ed25519_pair(&k.key).is_some()),
        ),
    };
    let now = cx.svc.now_ms();
    let grace = cx.svc.config().delivery.secret_rotation_grace.as_millis() as u64;
    for old in &mut e.secrets {
        old.expires_ms = Some(old.expires_ms.unwrap_or(now + grace).min(now + grace));
    }
    e.secrets.retain(|k| k.expires_ms.is_none_or(|t| t > now));
    e.secrets.insert(
        0,
        SigningKey {
            key,
            expires_ms: None,
        },
    );
    e.updated_ms = now;
    save(cx, &e, "endpoint.secret.rotate").await?;
    let key = e.secrets.first().map(|k| secret::verification_key(&k.key));
    json_response(200, &serde_json::json!({ "key": key }))
}

pub fn headers(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (_, e) = find(cx, app, ep)?;
    json_response(
        200,
        &serde_json::json!({ "headers": e.headers, "sensitive": [] }),
    )
}

/// PUT replaces the custom headers; PATCH merges them and removes `deleteHeaders`.
pub async fn set_headers(cx: &Ctx<'_>, app: &str, ep: &str, merge: bool) -> ApiResult {
    let body: HeadersIn = input::json(&cx.req.body)?;
    let (_, mut e) = find(cx, app, ep)?;
    if merge {
        e.headers.extend(body.headers);
        for name in &body.delete_headers {
            e.headers.remove(name);
        }
    } else {
        e.headers = body.headers;
    }
    let mut errors = Vec::new();
    check_headers(&e.headers, &mut errors);
    if let Some(why) = crate::model::legacy::clash(&e.legacy_signatures, e.headers.keys()) {
        errors.push(FieldError::body("legacySignatures", why));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    e.updated_ms = cx.svc.now_ms();
    save(cx, &e, "endpoint.headers.update").await?;
    Ok(Response::empty(204))
}

/// Deliveries to the endpoint by status, counted over its delivery index and attempt runs (at most
/// `STATS_SCAN_MAX` entries, newest excluded beyond that).
/// The count runs off the shard (`background::read`): it may scan for seconds.
pub async fn stats(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    const STATS_SCAN_MAX: usize = 1_000_000;
    let (since, until) = stats_window(cx)?;
    let (_, e) = find(cx, app, ep)?;
    let log = cx.svc.store.log();
    let seqs = first_seq_at(log, since)..first_seq_at(log, until.saturating_add(1));
    let svc = cx.svc.clone();
    let key = e.key;
    let counts = super::background::read("stats", move || {
        svc.store
            .state()
            .endpoint_status_counts(key, seqs, STATS_SCAN_MAX)
    })
    .await
    // Every slot busy: come back in a second.
    .ok_or(ApiError::TooManyRequests {
        retry_after_secs: 1,
    })??;
    let mut out = serde_json::json!({
        "success": counts[DeliveryStatus::Success as usize],
        "pending": counts[DeliveryStatus::Pending as usize],
        "fail": counts[DeliveryStatus::Fail as usize],
        "sending": counts[DeliveryStatus::Sending as usize],
        "canceled": 0,
    });
    if e.fifo {
        out["fifo"] = fifo_heads(cx, &e)?;
    }
    json_response(200, &out)
}

/// The heads of an ordered endpoint's lanes that wait in the index (hookd extension of the
/// stats): each blocked lane's first message, its attempts and next attempt, and how many
/// wait behind it; at most 20.
pub fn fifo_heads(cx: &Ctx<'_>, e: &EndpointRecord) -> ApiResult<serde_json::Value> {
    const HEADS_MAX: usize = 20;
    let (heads, more) = cx.svc.store.state().fifo_heads(e.key, HEADS_MAX)?;
    let mut out = Vec::with_capacity(heads.len());
    for h in heads {
        let Some(msg) = super::messages::read(cx, h.seq)? else {
            continue;
        };
        let st = h.state.as_ref();
        let next = st
            .filter(|st| st.status.is_open() && !st.is_blocked())
            .map(|st| crate::time::format_rfc3339(st.next_at_ms));
        out.push(serde_json::json!({
            "msgId": super::messages::message_id(h.seq, &msg),
            "orderingKey": msg.ordering_key,
            "attempts": st.map_or(0, |st| st.attempts),
            "lastStatusCode": st.and_then(|st| st.last_status_code),
            "nextAttempt": next,
            "waitingBehind": h.behind,
        }));
    }
    Ok(serde_json::json!({ "blockedHeads": out, "more": more }))
}

/// The longest window of the endpoint stats (as Svix: 28 days, and five minutes' slack for
/// a client that computes "now less 28 days" with a clock of its own).
const STATS_WINDOW_MAX_MS: u64 = STATS_WINDOW_DEFAULT_MS + 5 * 60 * 1000;
/// The stats' window when `since` is not given: 28 days.
const STATS_WINDOW_DEFAULT_MS: u64 = 28 * 86_400 * 1000;

/// The stats' `since` and `until` (Unix ms): `until` defaults to now and may not be in the
/// future; `since` defaults to 28 days before it and may not be earlier, nor after `until`.
/// A date that does not parse is a 422 at its parameter; a window out of bounds a 400
/// `invalid_range`, as Svix answers them.
fn stats_window(cx: &Ctx<'_>) -> ApiResult<(u64, u64)> {
    let now = cx.svc.now_ms();
    let (since, until) = (cx.query.time("since")?, cx.query.time("until")?);
    let until = until.unwrap_or(now);
    if until > now {
        return Err(ApiError::InvalidRange(
            "'until' cannot be in the future".into(),
        ));
    }
    let since = since.unwrap_or(until.saturating_sub(STATS_WINDOW_DEFAULT_MS));
    if since > until {
        return Err(ApiError::InvalidRange("'since' is after 'until'".into()));
    }
    if until - since > STATS_WINDOW_MAX_MS {
        return Err(ApiError::InvalidRange(format!(
            "'since' cannot be more than 28 days before {}",
            crate::time::format_rfc3339(until)
        )));
    }
    Ok((since, until))
}

/// The first sequence number of the log whose record was appended at or after `ms` (the log's
/// next one if none was): records are appended in time order, so a binary search over the
/// live ones finds it. A record that cannot be read (retired meanwhile, or corrupt) counts as
/// older.
pub(super) fn first_seq_at(log: &storage::Log, ms: u64) -> u64 {
    let (mut lo, mut hi) = (log.first_seq(), log.next_seq());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match log.read(mid) {
            Ok(Some(r)) if r.ts_ms >= ms => hi = mid,
            _ => lo = mid + 1,
        }
    }
    lo
}
