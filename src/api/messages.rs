//! `/app/{app}/msg/...`: message create (the ingest path), get and list.
//!
//! Create: authenticate (done by the router) -> rate limit -> parse and validate -> claim the
//! `eventId` -> append to the log -> in `sync` mode wait for the durable watermark -> 202.
//! Nothing on this path blocks the shard: the append is one `pwrite` under a short lock, and
//! the wait is a future woken by the flusher thread.

use serde_json::value::RawValue;
use storage::{
    codec::{decode_value, encode_value},
    state::{AppRecord, MessageRecord, MessageRef},
    Durability,
};

use super::{
    apps,
    error::{ApiError, ApiResult, FieldError},
    input::{self, check_name, check_uid},
    json_response,
    list::{self, ListParams},
    models::{MessageIn, MessageOut},
    Ctx,
};
use crate::{
    ids::{self, Kind},
    time::parse_rfc3339,
};

/// Channels per message, and their length (as Svix).
const CHANNELS_MAX: usize = 10;
const CHANNEL_BYTES_MAX: usize = 128;
const TAGS_MAX: usize = 5;

/// The public id of the message at `seq`.
pub fn message_id(seq: u64, m: &MessageRecord) -> String {
    ids::encode(
        Kind::Message,
        ids::Parts {
            ts_ms: m.created_ms,
            key: seq,
            rand: m.rand,
        },
    )
}

/// Renders a stored message as JSON text; the payload is left out (`{}`) unless
/// `with_content`. The payload is copied as stored, never re-encoded.
pub fn render(seq: u64, m: &MessageRecord, with_content: bool) -> ApiResult<Box<RawValue>> {
    let internal =
        |e: &dyn std::fmt::Display| ApiError::Internal(format!("stored message {seq}: {e}"));
    let text = if with_content {
        std::str::from_utf8(&m.payload).map_err(|e| internal(&e))?
    } else {
        "{}"
    };
    let payload: &RawValue = serde_json::from_str(text).map_err(|e| internal(&e))?;
    let id = message_id(seq, m);
    let out = serde_json::to_string(&MessageOut {
        id: &id,
        event_type: &m.event_type,
        event_id: m.event_id.as_deref(),
        payload,
        channels: Some(&m.channels)
            .filter(|c| !c.is_empty())
            .map(Vec::as_slice),
        tags: Some(&m.tags).filter(|t| !t.is_empty()).map(Vec::as_slice),
        timestamp: crate::time::format_rfc3339(m.created_ms),
    })
    .map_err(|e| internal(&e))?;
    RawValue::from_string(out).map_err(|e| internal(&e))
}

/// A rendered message and its id, for lists.
#[derive(serde::Serialize)]
#[serde(transparent)]
pub struct Rendered {
    #[serde(skip)]
    pub id: String,
    pub json: Box<RawValue>,
}

/// Reads the message at `seq`; `None` if it is gone or not a message.
pub fn read(cx: &Ctx<'_>, seq: u64) -> ApiResult<Option<MessageRecord>> {
    match cx.svc.store.log().read(seq) {
        Ok(Some(rec)) => Ok(decode_value(&rec.payload, &|| format!("message {seq}")).ok()),
        Ok(None) | Err(storage::Error::Quarantined { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The message of `app` named by id or `eventId`, or 404.
pub fn find(cx: &Ctx<'_>, app: &AppRecord, msg: &str) -> ApiResult<(u64, MessageRecord)> {
    let not_found = || ApiError::NotFound(format!("message {msg} not found"));
    let (seq, check) = match ids::decode(Kind::Message, msg) {
        Some(p) => (p.key, Some(p)),
        None => match cx.svc.store.state().message_by_event_id(app.key, msg)? {
            Some(MessageRef { seq, .. }) if seq > 0 => (seq, None),
            _ => return Err(not_found()),
        },
    };
    let m = read(cx, seq)?.ok_or_else(not_found)?;
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

pub async fn create(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let svc = cx.svc;
    let now = svc.now_ms();
    cx.token
        .take(now)
        .map_err(|secs| ApiError::TooManyRequests {
            retry_after_secs: secs,
        })?;
    let body: MessageIn<'_> = input::json(&cx.req.body)?;
    validate(&body, svc.config.ingest.payload_bytes_max)?;
    let state = svc.store.state();
    let app = match state.app_by_id_or_uid(app)? {
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
    if let Some(eid) = &record.event_id {
        state
            .claim_event_id(
                app.key,
                eid,
                &MessageRef {
                    seq: 0,
                    id: String::new(),
                },
            )
            .map_err(|e| match e {
                storage::Error::Conflict { .. } => ApiError::Conflict(format!(
                    "a message with eventId {eid} already exists in this application"
                )),
                e => e.into(),
            })?;
    }
    let appended = encode_value(&record).and_then(|bytes| svc.store.log().append(&[&bytes]));
    let seq = match appended {
        Ok(seq) => seq,
        Err(e) => {
            if let Some(eid) = &record.event_id {
                state.set_event_id(app.key, eid, None)?;
            }
            return Err(match e {
                storage::Error::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
                e => e.into(),
            });
        }
    };
    let id = message_id(seq, &record);
    if let Some(eid) = &record.event_id {
        state.set_event_id(
            app.key,
            eid,
            Some(&MessageRef {
                seq,
                id: id.clone(),
            }),
        )?;
    }
    if svc.store.log().durability() == Durability::Sync {
        svc.store.log().durable().wait(seq).await?;
    }
    let with_content = cx.query.bool("with_content", true)?;
    let out = render(seq, &record, with_content)?;
    Ok(crate::http::Response::json(
        202,
        String::from(Box::<str>::from(out)).into_bytes(),
    ))
}

pub fn get(cx: &Ctx<'_>, app: &str, msg: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let (seq, m) = find(cx, &a, msg)?;
    json_response(200, &render(seq, &m, cx.query.bool("with_content", true)?)?)
}

/// Newest first. Waits until the listing holds every message written before the request.
pub async fn list(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let a = apps::find(cx, app)?;
    let params = ListParams::parse(&cx.query, true)?;
    if !params.descending {
        return Err(ApiError::Validation(vec![FieldError::query(
            "order",
            "messages list newest first",
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
    let at = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::Message, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    let written = cx.svc.store.log().next_seq().saturating_sub(1);
    cx.svc.listing.wait(written).await?;
    let keep = |e: &storage::state::ListingEntry| {
        (types.is_empty() || types.contains(&e.event_type))
            && channel.as_ref().is_none_or(|c| e.channels.contains(c))
            && before.is_none_or(|b| e.created_ms < b)
            && after.is_none_or(|a| e.created_ms > a)
    };
    let (before_seq, after_seq) = if params.backwards {
        (None, at)
    } else {
        (at, None)
    };
    let page = cx.svc.store.state().list_messages(
        a.key,
        before_seq,
        after_seq,
        params.limit,
        params.backwards,
        &keep,
    )?;
    let mut out = Vec::with_capacity(page.items.len());
    for (seq, _) in &page.items {
        if let Some(m) = read(cx, *seq)? {
            out.push(Rendered {
                id: message_id(*seq, &m),
                json: render(*seq, &m, with_content)?,
            });
        }
    }
    json_response(
        200,
        &list::respond(&params, out, !page.done, |r: &Rendered| r.id.clone()),
    )
}
