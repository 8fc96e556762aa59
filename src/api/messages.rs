//! `/app/{app}/msg/...`: message create (the ingest path), get and list.
//!
//! Create: authenticate (done by the router) -> rate limit -> parse and validate -> (with
//! `validation.enforce_schemas`) check the payload against its event type's schema -> claim the
//! `eventId` -> append to the log -> in `sync` mode wait for the durable watermark -> 202.
//! Nothing on this path blocks the shard: the append is one `pwrite` under a short lock, and
//! the wait is a future woken by the flusher thread.

use storage::{
    codec::{decode_value, encode_value},
    state::{AppRecord, MessageRecord, MessageRef},
    Durability, LocalWaiters,
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
    service::Service,
    time::parse_rfc3339,
};

/// Channels per message, and their length (as Svix).
const CHANNELS_MAX: usize = 10;
const CHANNEL_BYTES_MAX: usize = 128;
const TAGS_MAX: usize = 5;

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

/// The message at `seq`, or whether it is corrupt (`Err(true)`) or gone (`Err(false)`).
fn read_or_why(cx: &Ctx<'_>, seq: u64) -> ApiResult<Result<MessageRecord, bool>> {
    match cx.svc.store.log().read(seq) {
        Ok(Some(rec)) => {
            Ok(decode_value(&rec.payload, &|| format!("message {seq}")).map_err(|_| true))
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

/// Checks the payload against version "1" of its event type's schema
/// (`validation.enforce_schemas`, see `gateway::schema`): 422 naming each failing JSON pointer.
fn check_schema(svc: &Service, body: &MessageIn<'_>) -> ApiResult<()> {
    use crate::gateway::schema::Refusal;
    let state = svc.store.state();
    match svc
        .gateway
        .schemas
        .check(state, &body.event_type, body.payload.get())
    {
        Ok(()) => Ok(()),
        Err(Refusal::Violations(v)) => Err(ApiError::Validation(
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
        )),
        Err(e @ Refusal::Broken { .. }) => Err(ApiError::invalid("eventType", e.to_string())),
        Err(Refusal::Storage(e)) => Err(e.into()),
    }
}

/// Stores a new message: claims its `eventId` (409 if taken), appends it to the log under its
/// app's key and, in `sync` mode, waits until it is durable. Returns its public id. The one
/// write path of every message, from `POST /app/{app}/msg` and from `POST /ingest/{source}`.
///
/// An `eventId` is durable no later than the message: the claim waits for the index's group
/// commit before the answer. If the append or its flush fails, the claim is dropped, so that
/// the producer's retry is stored. A claim left behind by a crash (its message never became
/// durable) is taken over by the next message with that `eventId`; one whose message is
/// still in the log answers 409 until retention retires the message (then it is pruned).
pub async fn store(
    svc: &Service,
    durable: &LocalWaiters,
    record: &MessageRecord,
) -> ApiResult<String> {
    let Some(eid) = &record.event_id else {
        return Ok(append_durably(svc, durable, record).await?.1);
    };
    let app_key = record.app_key;
    let conflict = || {
        ApiError::Conflict(format!(
            "a message with eventId {eid} already exists in this application"
        ))
    };
    // One request per (app, eventId) in this process at a time; a claim found in the index
    // that no request here is storing is stale unless its message is in the log.
    let Some(_storing) = svc.event_ids_in_flight.enter(app_key, eid) else {
        return Err(conflict());
    };
    let state = svc.store.state();
    let placeholder = MessageRef {
        seq: 0,
        id: String::new(),
    };
    state
        .claim_event_id(app_key, eid, &placeholder, |found| {
            !message_in_log(svc, found.seq)
        })
        .map_err(|e| match e {
            storage::Error::Conflict { .. } => conflict(),
            e => e.into(),
        })?;
    let (seq, id) = match append_durably(svc, durable, record).await {
        Ok(done) => done,
        Err(e) => {
            // Not stored (or not known to be durable): free the eventId for the retry.
            if let Err(free) = state.set_event_id(app_key, eid, None) {
                tracing::error!(error = %free, "freeing the eventId of a message not stored; the next message with it takes the stale claim over");
            }
            return Err(e);
        }
    };
    state.set_event_id(
        app_key,
        eid,
        Some(&MessageRef {
            seq,
            id: id.clone(),
        }),
    )?;
    let ticket = svc.store.commit_index();
    svc.store.index_durable().wait(ticket).await?;
    Ok(id)
}

/// Whether the message at `seq` is in the log (durable and not retired). An error reading it
/// counts as present: a 409 is safer than a duplicate.
fn message_in_log(svc: &Service, seq: u64) -> bool {
    if seq == 0 || seq > svc.store.log().durable().get() {
        return false;
    }
    match svc.store.log().read(seq) {
        Ok(Some(_)) => true,
        Ok(None) | Err(storage::Error::Quarantined { .. }) => false,
        Err(_) => true,
    }
}

/// Appends `record` and, in `sync` mode, waits until it is durable: its seq and public id.
async fn append_durably(
    svc: &Service,
    durable: &LocalWaiters,
    record: &MessageRecord,
) -> ApiResult<(u64, String)> {
    let appending = std::time::Instant::now();
    let seq = append(svc, record)?;
    if svc.store.log().durability() == Durability::Sync {
        durable.wait(seq).await?;
    }
    svc.metrics.append_latency(appending.elapsed());
    Ok((seq, message_id(seq, record)))
}

/// The `(app, eventId)` pairs whose message is being stored by a request of this process.
#[derive(Debug, Default)]
pub struct EventIdsInFlight {
    pairs: std::sync::Mutex<std::collections::HashSet<(u64, String)>>,
}

impl EventIdsInFlight {
    /// Marks the pair as being stored until the guard drops; `None` if it already is.
    pub fn enter<'a>(&'a self, app: u64, event_id: &str) -> Option<InFlight<'a>> {
        let pair = (app, event_id.to_owned());
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        pairs
            .insert(pair.clone())
            .then_some(InFlight { set: self, pair })
    }
}

/// See [`EventIdsInFlight::enter`].
pub struct InFlight<'a> {
    set: &'a EventIdsInFlight,
    pair: (u64, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut pairs = self.set.pairs.lock().unwrap_or_else(|e| e.into_inner());
        pairs.remove(&self.pair);
    }
}

/// Appends `record` to the log under its app's key and returns its sequence number, without
/// claiming its `eventId` or waiting for it to be durable: the part of [`store`] that never
/// waits, for writers that cannot (operational webhooks, appended from shard threads; fan-out
/// picks the message up once the flusher has made it durable).
pub fn append(svc: &Service, record: &MessageRecord) -> ApiResult<u64> {
    let appended = encode_value(record).and_then(|bytes| {
        svc.store.check_space(bytes.len() as u64)?;
        svc.store.log().append_keyed(record.app_key, &[&bytes])
    });
    let seq = appended.map_err(|e| match e {
        storage::Error::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        e => e.into(),
    })?;
    svc.metrics.appended(record.payload.len());
    Ok(seq)
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
    let body: MessageIn<'_> = input::json(&cx.req.body)?;
    let config = svc.config();
    validate(&body, config.ingest.payload_bytes_max)?;
    if config.validation.enforce_schemas {
        check_schema(svc, &body)?;
    }
    let app = match cx.app.clone() {
        Some(a) => a,
        None => match body.application {
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
    let record = MessageRecord {
        app_key: app.key,
        rand: ids::random_bits(),
        created_ms: now,
        event_type: body.event_type.into_owned(),
        event_id: body.event_id,
        channels: body.channels.unwrap_or_default(),
        tags: body.tags,
        payload: body.payload.get().as_bytes().to_vec(),
    };
    let id = store(svc, cx.durable, &record).await?;
    let mut out = Vec::with_capacity(record.payload.len() + 256);
    render_into(&mut out, &id, &record, with_content);
    Ok(Response::json(202, out))
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
    let time = |name: &str| -> ApiResult<Option<u64>> {
        match cx.query.get(name) {
            None => Ok(None),
            Some(t) => parse_rfc3339(t).map(Some).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::query(name, "not an RFC 3339 date-time")])
            }),
        }
    };
    let (before, after) = (time("before")?, time("after")?);
    let start = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::Message, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    let mut found: Vec<(u64, MessageRecord)> = Vec::new();
    let deadline = std::time::Instant::now() + LIST_SCAN_TIME;
    let end =
        cx.svc
            .store
            .log()
            .scan_back_within(a.key, start, LIST_SCAN_BUDGET, Some(deadline), |rec| {
                match decode_value::<MessageRecord>(&rec.payload, &|| {
                    format!("message {}", rec.seq)
                }) {
                    Ok(m) => {
                        let keep = (types.is_empty() || types.contains(&m.event_type))
                            && channel.as_ref().is_none_or(|c| m.channels.contains(c))
                            && before.is_none_or(|b| m.created_ms < b)
                            && after.is_none_or(|t| m.created_ms > t);
                        if keep {
                            found.push((rec.seq, m));
                        }
                        found.len() <= params.limit
                    }
                    Err(e) => {
                        // A whole frame whose message does not decode: it alone is left out.
                        tracing::error!(seq = rec.seq, error = %e, "message list skipped an undecodable message");
                        true
                    }
                }
            })?;
    let more = found.len() > params.limit;
    found.truncate(params.limit);
    // Where the next page starts: after the last message shown, or where the budget ran out.
    let resume = match (more, end, found.last()) {
        (true, _, Some((seq, m))) => Some(message_id(*seq, m)),
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
    let mut out = Vec::with_capacity(found.iter().map(|(_, m)| m.payload.len() + 256).sum());
    out.extend_from_slice(b"{\"data\":[");
    for (i, (seq, m)) in found.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render_into(&mut out, &message_id(*seq, m), m, with_content);
    }
    let iterator = resume
        .clone()
        .or_else(|| found.last().map(|(s, m)| message_id(*s, m)));
    let tail =
        serde_json::json!({ "iterator": iterator, "prevIterator": null, "done": resume.is_none() });
    out.extend_from_slice(b"],");
    // `tail` is an object: splice its members after the data array.
    out.extend_from_slice(&tail.to_string().as_bytes()[1..]);
    Ok(Response::json(200, out))
}
