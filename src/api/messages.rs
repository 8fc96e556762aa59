//! `/app/{app}/msg/...`: message create, get and list.
//!
//! Create: authenticate (done by the router) -> rate limit -> parse and validate -> (with
//! `validation.enforce_schemas`) check the payload against its event type's schema -> store it
//! through `crate::ingest` (the `eventId` claim, the append, the wait for durability) -> 202.

use storage::{
    codec::decode_value,
    state::{AppRecord, MessageRecord, MessageRef},
};

use super::{
    apps,
    error::{ApiError, ApiResult, FieldError},
    input::{self, check_name, check_uid},
    list::ListParams,
    models::MessageIn,
    Ctx,
};
use crate::{
    http::Response,
    model::ids::{self, Kind},
};

/// Channels per message, and their length (as Svix).
const CHANNELS_MAX: usize = 10;
const CHANNEL_BYTES_MAX: usize = 128;
const TAGS_MAX: usize = 5;
/// The longest `orderingKey` (bytes).
const ORDERING_KEY_BYTES_MAX: usize = 128;

pub use crate::model::message_id;

/// Writes a stored message as a `MessageOut` JSON object; the payload is left out (`{}`)
/// unless `with_content`. The payload is copied as stored (it was validated as a JSON object on
/// the way in), never parsed or re-encoded: this runs on every ingest.
pub fn render_into(out: &mut Vec<u8>, id: &str, m: &MessageRecord, with_content: bool) {
    fn string(out: &mut Vec<u8>, s: &str) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
    fn strings(out: &mut Vec<u8>, items: &[String]) {
        let _ = serde_json::to_writer(&mut *out, items);
    }
    out.extend_from_slice(b"{\"id\":");
    string(out, id);
    out.extend_from_slice(b",\"eventType\":");
    string(out, &m.event_type);
    if let Some(eid) = &m.event_id {
        out.extend_from_slice(b",\"eventId\":");
        string(out, eid);
    }
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(if with_content { &m.payload } else { b"{}" });
    if !m.channels.is_empty() {
        out.extend_from_slice(b",\"channels\":");
        strings(out, &m.channels);
    }
    if !m.tags.is_empty() {
        out.extend_from_slice(b",\"tags\":");
        strings(out, &m.tags);
    }
    if let Some(key) = &m.ordering_key {
        out.extend_from_slice(b",\"orderingKey\":");
        string(out, key);
    }
    out.extend_from_slice(b",\"timestamp\":");
    string(out, &crate::time::format_rfc3339(m.created_ms));
    out.push(b'}');
}

/// Reads the message at `seq`; `None` if it is gone, corrupt or not a message.
pub fn read(cx: &Ctx<'_>, seq: u64) -> ApiResult<Option<MessageRecord>> {
    Ok(read_or_why(cx, seq)?.ok())
}

/// Why a message cannot be read, as the detail of a 404.
fn unreadable(msg: &str, corrupt: bool) -> ApiError {
    ApiError::NotFound(match corrupt {
        true => format!(
            "message {msg} is corrupt in the log (quarantined; see hookd inspect): it cannot be read"
        ),
        false => format!("message {msg} not found"),
    })
}

/// What an expunged message shows as its payload, as Svix shows one whose content is gone.
pub const EXPUNGED_PAYLOAD: &[u8] = br#"{"expired":true}"#;

/// Replaces the payload of message `seq` with [`EXPUNGED_PAYLOAD`] if it was expunged.
fn hide_if_expunged(cx: &Ctx<'_>, seq: u64, m: &mut MessageRecord) -> ApiResult<()> {
    if cx.svc.store.state().is_expunged(seq)? {
        m.payload = EXPUNGED_PAYLOAD.to_vec();
    }
    Ok(())
}

/// The message at `seq` (its payload hidden if expunged), or whether it is corrupt
/// (`Err(true)`) or gone (`Err(false)`).
fn read_or_why(cx: &Ctx<'_>, seq: u64) -> ApiResult<Result<MessageRecord, bool>> {
    match cx.svc.store.log().read(seq) {
        Ok(Some(rec)) => {
            let Ok(mut m) = decode_value(&rec.payload, &|| format!("message {seq}")) else {
                return Ok(Err(true));
            };
            hide_if_expunged(cx, seq, &mut m)?;
            Ok(Ok(m))
        }
        Ok(None) => Ok(Err(false)),
        Err(storage::Error::Quarantined { .. }) => Ok(Err(true)),
        Err(e) => Err(e.into()),
    }
}

/// The message of `app` named by id or `eventId`, or 404.
pub fn find(cx: &Ctx<'_>, app: &AppRecord, msg: &str) -> ApiResult<(u64, MessageRecord)> {
    let not_found = || unreadable(msg, false);
    let (seq, check) = match ids::decode(Kind::Message, msg) {
        Some(p) => (p.key, Some(p)),
        None => match cx.svc.store.state().message_by_event_id(app.key, msg)? {
            Some(MessageRef { seq, .. }) if seq > 0 => (seq, None),
            _ => return Err(not_found()),
        },
    };
    // A corrupt record's app cannot be checked: the answer only says it cannot be read.
    let m = read_or_why(cx, seq)?.map_err(|corrupt| unreadable(msg, corrupt))?;
    let matches = m.app_key == app.key
        && check.is_none_or(|p| p.rand == m.rand & 0xFFFF_FFFF_FFFF && p.ts_ms == m.created_ms);
    if matches {
        Ok((seq, m))
    } else {
        Err(not_found())
    }
}

fn validate(body: &MessageIn<'_>, payload_max: u64) -> ApiResult<()> {
    let mut errors = Vec::new();
    check_name("eventType", &body.event_type, &mut errors);
    if let Some(id) = &body.event_id {
        check_name("eventId", id, &mut errors);
    }
    if let Some(channels) = &body.channels {
        if channels.len() > CHANNELS_MAX {
            errors.push(FieldError::body(
                "channels",
                format!("at most {CHANNELS_MAX} channels"),
            ));
        }
        if channels
            .iter()
            .any(|c| c.is_empty() || c.len() > CHANNEL_BYTES_MAX)
        {
            errors.push(FieldError::body(
                "channels",
                format!("a channel is 1 to {CHANNEL_BYTES_MAX} characters"),
            ));
        }
    }
    if body.tags.len() > TAGS_MAX {
        errors.push(FieldError::body("tags", format!("at most {TAGS_MAX} tags")));
    }
    if let Some(key) = &body.ordering_key {
        if key.is_empty() || key.len() > ORDERING_KEY_BYTES_MAX {
            errors.push(FieldError::body(
                "orderingKey",
                format!("an ordering key is 1 to {ORDERING_KEY_BYTES_MAX} bytes"),
            ));
        }
    }
    if !body.payload.get().starts_with('{') {
        errors.push(FieldError::body("payload", "must be a JSON object"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let len = body.payload.get().len() as u64;
    if len > payload_max {
        return Err(ApiError::PayloadTooLarge(format!(
            "payload is {len} bytes; the limit (ingest.payload_bytes_max) is {payload_max}"
        )));
    }
    Ok(())
}

pub async fn create(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let svc = cx.svc;
    let now = svc.now_ms();
    // Everything about the request is checked before anything is stored.
    let with_content = cx.query.bool("with_content", true)?;
    cx.token
        .take(now)
        .map_err(|secs| ApiError::TooManyRequests {
            retry_after_secs: secs,
        })?;
    let mut body: MessageIn<'_> = input::json(&cx.req.body)?;
    let config = svc.config();
    validate(&body, config.ingest.payload_bytes_max)?;
    if config.validation.enforce_schemas {
        cx.ingest
            .check_schema(&body.event_type, body.payload.get())?;
    }
    let app = match cx.app.clone() {
        Some(a) => a,
        None => match body.application.take() {
            // As in Svix: a message may bring its application, created on first use.
            Some(mut new_app) => {
                new_app.uid.get_or_insert_with(|| app.to_owned());
                let mut errors = Vec::new();
                check_uid(
                    "application.uid",
                    new_app.uid.as_deref().unwrap_or_default(),
                    Kind::App.prefix(),
                    &mut errors,
                );
                if !errors.is_empty() {
                    return Err(ApiError::Validation(errors));
                }
                let record = apps::new_record(cx, new_app)?;
                apps::insert(cx, &record).await?;
                record
            }
            None => return Err(ApiError::NotFound(format!("application {app} not found"))),
        },
    };
    let record = record_of(cx, app.key, body, now);
    let id = cx.ingest.store(cx.durable, &record).await?;
    let mut out = Vec::with_capacity(record.payload.len() + 256);
    render_into(&mut out, &id, &record, with_content);
    Ok(Response::json(202, out))
}

/// The record of a new message of app `app_key` (checked), made at `now`.
fn record_of(cx: &Ctx<'_>, app_key: u64, body: MessageIn<'_>, now: u64) -> MessageRecord {
    MessageRecord {
        app_key,
        rand: ids::random_bits(),
        created_ms: now,
        event_type: body.event_type.into_owned(),
        event_id: body.event_id,
        channels: body.channels.unwrap_or_default(),
        tags: body.tags,
        payload: body.payload.get().as_bytes().to_vec(),
        traceparent: cx
            .req
            .header("traceparent")
            .and_then(crate::model::trace::traceparent),
        only_endpoint: None,
        ordering_key: body.ordering_key,
    }
}

/// `POST /app/{app}/msg/batch` (hookd extension): a JSON array of `MessageIn`, at most
/// `ingest.batch_max`, stored together under one group commit. 202 with one item per input,
/// in order: `{"status": 202, "body": MessageOut}` for a message stored, or the status and
/// error body the single create would have answered (422 located at `["body", index, ...]`,
/// 409 for a repeated `eventId`, 413 for a payload too large). Valid messages are stored even
/// when others are refused; a failed flush fails every message it held. The token's rate
/// limit counts the messages.
pub async fn create_batch(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let svc = cx.svc;
    let now = svc.now_ms();
    let with_content = cx.query.bool("with_content", true)?;
    let items: Vec<&serde_json::value::RawValue> = input::json(&cx.req.body)?;
    let config = svc.config();
    let max = config.ingest.batch_max as usize;
    if items.is_empty() || items.len() > max {
        return Err(ApiError::invalid(
            "",
            format!(
                "a batch holds 1 to {max} messages (ingest.batch_max); this one has {}",
                items.len()
            ),
        ));
    }
    cx.token
        .take_n(now, items.len() as u32)
        .map_err(|secs| match secs {
            u64::MAX => ApiError::invalid(
                "",
                format!(
                    "{} messages are more than this token's rate limit lets through at once",
                    items.len()
                ),
            ),
            secs => ApiError::TooManyRequests {
                retry_after_secs: secs,
            },
        })?;
    let app = cx
        .app
        .clone()
        .ok_or_else(|| ApiError::NotFound(format!("application {app} not found")))?;
    // Each item checked as the single create checks it; the refused ones keep their answer.
    let mut answers: Vec<Option<Response>> = Vec::with_capacity(items.len());
    let mut records = Vec::new();
    for (i, item) in items.iter().enumerate() {
        // The item's text is already checked as UTF-8 and JSON with the array: parse it
        // straight, and again through `input::json` only to locate a refusal.
        let parsed = serde_json::from_str::<MessageIn<'_>>(item.get())
            .or_else(|_| input::json::<MessageIn<'_>>(item.get().as_bytes()));
        let checked = parsed.and_then(|body| {
            validate(&body, config.ingest.payload_bytes_max)?;
            if config.validation.enforce_schemas {
                cx.ingest
                    .check_schema(&body.event_type, body.payload.get())?;
            }
            Ok(body)
        });
        match checked {
            Ok(body) => {
                records.push(record_of(cx, app.key, body, now));
                answers.push(None);
            }
            Err(e) => answers.push(Some(at_item(e, i).into_response())),
        }
    }
    let mut stored = cx
        .ingest
        .store_batch(cx.durable, &records)
        .await
        .into_iter();
    let mut records = records.iter();
    let mut out = Vec::with_capacity(records.len() * 1280 + 64);
    out.push(b'[');
    for (i, answer) in answers.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (status, body) = match answer {
            Some(refused) => (refused.status, refused.body),
            None => {
                let (Some(result), Some(record)) = (stored.next(), records.next()) else {
                    return Err(ApiError::Internal("a batch lost count of its items".into()));
                };
                match result {
                    Ok(id) => {
                        let mut body = Vec::with_capacity(record.payload.len() + 256);
                        render_into(&mut body, &id, record, with_content);
                        (202, body)
                    }
                    Err(e) => {
                        let r = ApiError::from(e).into_response();
                        (r.status, r.body)
                    }
                }
            }
        };
        out.extend_from_slice(format!("{{\"status\":{status},\"body\":").as_bytes());
        out.extend_from_slice(&body);
        out.push(b'}');
    }
    out.push(b']');
    cx.audit("message.batch", &app.id)?;
    Ok(Response::json(202, out))
}

/// A refusal of item `i` of a batch: its 422s located under `["body", i, ...]`.
fn at_item(e: ApiError, i: usize) -> ApiError {
    match e {
        ApiError::Validation(mut errors) => {
            for f in &mut errors {
                f.loc.insert(1.min(f.loc.len()), i.to_string());
            }
            ApiError::Validation(errors)
        }
        other => other,
    }
}

/// Svix's test event type: an example of it needs no event type in the catalogue.
const PING_EVENT_TYPE: &str = "svix.ping";
/// The payload of an example whose event type gives none (and of `svix.ping`).
const DEFAULT_EXAMPLE: &str = r#"{"success":true}"#;

/// `POST .../endpoint/{ep}/send-example` (`{"eventType"}`): stores a message of that event
/// type, with the first of its version-1 schema's `examples` (or `{"success":true}`) as the
/// payload, for that one endpoint alone, and answers it as message create does (200, as Svix).
/// The endpoint then gets it signed like any delivery.
pub async fn send_example(cx: &Ctx<'_>, app: &str, ep: &str) -> ApiResult {
    let (a, e) = super::endpoints::find(cx, app, ep)?;
    let body: super::models::EventExampleIn = input::json(&cx.req.body)?;
    let mut errors = Vec::new();
    check_name("eventType", &body.event_type, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let payload = if body.event_type == PING_EVENT_TYPE {
        DEFAULT_EXAMPLE.to_owned()
    } else {
        let et = cx
            .svc
            .store
            .state()
            .event_type(&body.event_type)?
            .filter(|et| !et.archived)
            .ok_or_else(|| {
                ApiError::NotFound(format!("event type {} not found", body.event_type))
            })?;
        example_of(et.schemas.as_deref()).unwrap_or_else(|| DEFAULT_EXAMPLE.to_owned())
    };
    if cx.svc.config().validation.enforce_schemas {
        cx.ingest.check_schema(&body.event_type, &payload)?;
    }
    let record = MessageRecord {
        app_key: a.key,
        rand: ids::random_bits(),
        created_ms: cx.svc.now_ms(),
        event_type: body.event_type,
        event_id: None,
        channels: Vec::new(),
        tags: Vec::new(),
        payload: payload.into_bytes(),
        traceparent: None,
        only_endpoint: Some(e.key),
        ordering_key: None,
    };
    let id = cx.ingest.store(cx.durable, &record).await?;
    let mut out = Vec::with_capacity(record.payload.len() + 256);
    render_into(&mut out, &id, &record, true);
    Ok(Response::json(200, out))
}

/// The first example of version "1" of an event type's `schemas` that is a JSON object, as
/// JSON text.
fn example_of(schemas: Option<&str>) -> Option<String> {
    let schemas: serde_json::Value = serde_json::from_str(schemas?).ok()?;
    let examples = schemas.get("1")?.get("examples")?.as_array()?;
    examples
        .iter()
        .find(|e| e.is_object())
        .map(serde_json::Value::to_string)
}

pub fn get(cx: &Ctx<'_>, app: &str, msg: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, m) = find(cx, &a, msg)?;
    let mut out = Vec::with_capacity(m.payload.len() + 256);
    render_into(
        &mut out,
        &message_id(seq, &m),
        &m,
        cx.query.bool("with_content", true)?,
    );
    Ok(Response::json(200, out))
}

/// `DELETE /app/{app}/msg/{msg}/content`: expunges the message's payload (sent by mistake
/// with something sensitive). From then on the API shows it as `{"expired":true}`, its
/// deliveries still pending fail without an attempt, and it cannot be resent. 204, audited.
pub async fn expunge_content(cx: &Ctx<'_>, app: &str, msg: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, m) = find(cx, &a, msg)?;
    cx.svc.store.state().expunge_message(seq, cx.svc.now_ms())?;
    cx.audit("message.expunge_content", &message_id(seq, &m))?;
    cx.commit().await?;
    Ok(Response::empty(204))
}

/// Log records a list request may read before it answers with what it found so far (and an
/// iterator to continue from). Bounds the work of listing a quiet app on a busy log.
const LIST_SCAN_BUDGET: usize = 100_000;
/// The longest a list request reads the log before it answers with what it found so far: it
/// runs on a shard, which serves other requests too.
const LIST_SCAN_TIME: std::time::Duration = std::time::Duration::from_millis(5);

/// Newest first. Reads the log backwards under the app's key (see `Log::scan_back`), so it
/// always sees every message acknowledged before the request.
pub async fn list(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    page(cx, &a, |_, _| Ok(Some(String::new())))
}

/// One page of an app's messages, newest first, with the query's filters (`event_types`,
/// `channel`, `before`, `after`), limit and iterator. `extra` decides for each message that
/// passes them: `None` leaves it out, `Some(members)` keeps it with `members` (`,"k":v...`)
/// added to its object.
pub(super) fn page(
    cx: &Ctx<'_>,
    a: &AppRecord,
    mut extra: impl FnMut(u64, &MessageRecord) -> ApiResult<Option<String>>,
) -> ApiResult {
    let params = ListParams::parse(&cx.query, true)?;
    if !params.descending || params.backwards {
        return Err(ApiError::Validation(vec![FieldError::query(
            "iterator",
            "messages list newest first, forwards only",
        )]));
    }
    let with_content = cx.query.bool("with_content", true)?;
    let types = cx.query.all("event_types");
    let channel = cx.query.get("channel").map(str::to_owned);
    let (before, after) = (cx.query.time("before")?, cx.query.time("after")?);
    let start = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::Message, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    let mut found: Vec<(u64, MessageRecord, String)> = Vec::new();
    let mut failed = None;
    let deadline = std::time::Instant::now() + LIST_SCAN_TIME;
    let log = cx.svc.store.log();
    let end = log.scan_back_within(a.key, start, LIST_SCAN_BUDGET, Some(deadline), |rec| {
        let what = || format!("message {}", rec.seq);
        let m = match decode_value::<MessageRecord>(&rec.payload, &what) {
            Ok(m) => m,
            Err(e) => {
                // A whole frame whose message does not decode: it alone is left out.
                tracing::error!(seq = rec.seq, error = %e, "message list skipped an undecodable message");
                return true;
            }
        };
        let wanted = (types.is_empty() || types.contains(&m.event_type))
            && channel.as_ref().is_none_or(|c| m.channels.contains(c))
            && before.is_none_or(|b| m.created_ms < b)
            && after.is_none_or(|t| m.created_ms > t);
        if wanted {
            match extra(rec.seq, &m) {
                Ok(Some(members)) => found.push((rec.seq, m, members)),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
        }
        found.len() <= params.limit
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let more = found.len() > params.limit;
    found.truncate(params.limit);
    // Where the next page starts: after the last message shown, or where the budget ran out.
    let resume = match (more, end, found.last()) {
        (true, _, Some((seq, m, _))) => Some(message_id(*seq, m)),
        (false, storage::ScanEnd::Budget { before }, _) => Some(ids::encode(
            Kind::Message,
            ids::Parts {
                ts_ms: 0,
                key: before,
                rand: 0,
            },
        )),
        _ => None,
    };
    let mut out = Vec::with_capacity(found.iter().map(|(_, m, _)| m.payload.len() + 256).sum());
    out.extend_from_slice(b"{\"data\":[");
    for (i, (seq, m, members)) in found.iter_mut().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if with_content {
            hide_if_expunged(cx, *seq, m)?;
        }
        render_into(&mut out, &message_id(*seq, m), m, with_content);
        if !members.is_empty() {
            // `render_into` wrote an object: its members go before the closing brace.
            out.pop();
            out.extend_from_slice(members.as_bytes());
            out.push(b'}');
        }
    }
    let iterator = resume
        .clone()
        .or_else(|| found.last().map(|(s, m, _)| message_id(*s, m)));
    let tail =
        serde_json::json!({ "iterator": iterator, "prevIterator": null, "done": resume.is_none() });
    out.extend_from_slice(b"],");
    // `tail` is an object: splice its members after the data array.
    out.extend_from_slice(&tail.to_string().as_bytes()[1..]);
    Ok(Response::json(200, out))
}
