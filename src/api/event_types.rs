//! `/event-type/...`: event types. Delete archives unless `?expunge=true`.

use storage::state::EventTypeRecord;

use super::{
    error::{ApiError, ApiResult},
    input::{self, check_name},
    json_response,
    list::{self, ListParams},
    models::{EventTypeIn, EventTypeOut, EventTypePatch},
    Ctx,
};
use crate::http::Response;

fn find(cx: &Ctx<'_>, name: &str) -> ApiResult<EventTypeRecord> {
    cx.svc
        .store
        .state()
        .event_type(name)?
        .ok_or_else(|| ApiError::NotFound(format!("event type {name} not found")))
}

fn schemas_text(s: Option<Box<serde_json::value::RawValue>>) -> ApiResult<Option<String>> {
    match s {
        None => Ok(None),
        Some(raw) if raw.get().trim_start().starts_with('{') => Ok(Some(raw.get().to_owned())),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(_) => Err(ApiError::invalid(
            "schemas",
            "must be an object of versioned JSON schemas",
        )),
    }
}

fn record(cx: &Ctx<'_>, body: EventTypeIn) -> ApiResult<EventTypeRecord> {
    let mut errors = Vec::new();
    check_name("name", &body.name, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = cx.svc.now_ms();
    let mut flags = body.feature_flags;
    flags.extend(body.feature_flag);
    Ok(EventTypeRecord {
        name: body.name,
        description: body.description,
        archived: body.archived,
        deprecated: body.deprecated,
        feature_flags: flags,
        schemas: schemas_text(body.schemas)?,
        config_owned: false,
        created_ms: now,
        updated_ms: now,
    })
}

/// Stores `et` once its schemas compile (422 naming the version that does not), and keeps the
/// compiled schema for message create (`crate::ingest::schema`).
async fn save(cx: &Ctx<'_>, et: &EventTypeRecord, action: &str) -> ApiResult<()> {
    let prepared = crate::ingest::schema::prepare(et)
        .map_err(|e| ApiError::invalid("schemas", e.to_string()))?;
    cx.svc.store.state().put_event_type(et)?;
    cx.ingest.schemas.written(prepared);
    cx.audit(action, &et.name)?;
    cx.commit().await
}

pub fn list(cx: &Ctx<'_>) -> ApiResult {
    let params = ListParams::parse(&cx.query, false)?;
    if params.descending || params.backwards {
        return Err(ApiError::Validation(vec![super::error::FieldError::query(
            "order",
            "event types list by name, ascending only",
        )]));
    }
    let archived = cx.query.bool("include_archived", false)?;
    let with_content = cx.query.bool("with_content", true)?;
    let page = cx.svc.store.state().list_event_types(
        params.iterator.as_deref(),
        params.limit,
        archived,
    )?;
    let out: Vec<EventTypeOut<'_>> = page
        .items
        .iter()
        .map(|e| EventTypeOut::new(e, with_content))
        .collect();
    json_response(
        200,
        &list::respond(&params, out, !page.done, |e| e.name.to_owned()),
    )
}

pub async fn create(cx: &Ctx<'_>) -> ApiResult {
    let body: EventTypeIn = input::json(&cx.req.body)?;
    let et = record(cx, body)?;
    if let Some(existing) = cx.svc.store.state().event_type(&et.name)? {
        if !existing.archived {
            return Err(ApiError::Conflict(format!(
                "event type {} already exists",
                et.name
            )));
        }
    }
    save(cx, &et, "event_type.create").await?;
    json_response(201, &EventTypeOut::new(&et, true))
}

pub fn get(cx: &Ctx<'_>, name: &str) -> ApiResult {
    json_response(200, &EventTypeOut::new(&find(cx, name)?, true))
}

/// PUT: update, or create (201).
pub async fn put(cx: &Ctx<'_>, name: &str) -> ApiResult {
    let mut value: serde_json::Value = input::json(&cx.req.body)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("name".into(), serde_json::Value::String(name.to_owned()));
    }
    let body: EventTypeIn = input::json(value.to_string().as_bytes())?;
    let mut et = record(cx, body)?;
    match cx.svc.store.state().event_type(name)? {
        Some(existing) => {
            et.created_ms = existing.created_ms;
            et.config_owned = existing.config_owned;
            save(cx, &et, "event_type.update").await?;
            json_response(200, &EventTypeOut::new(&et, true))
        }
        None => {
            save(cx, &et, "event_type.create").await?;
            json_response(201, &EventTypeOut::new(&et, true))
        }
    }
}

pub async fn patch(cx: &Ctx<'_>, name: &str) -> ApiResult {
    let body: EventTypePatch = input::json(&cx.req.body)?;
    let mut et = find(cx, name)?;
    if let Some(d) = body.description {
        et.description = d;
    }
    if let Some(a) = body.archived {
        et.archived = a;
    }
    if let Some(d) = body.deprecated {
        et.deprecated = d;
    }
    if let Some(s) = body.schemas {
        et.schemas = schemas_text(s)?;
    }
    if let Some(f) = body.feature_flags {
        et.feature_flags = f;
    }
    et.updated_ms = cx.svc.now_ms();
    save(cx, &et, "event_type.update").await?;
    json_response(200, &EventTypeOut::new(&et, true))
}

pub async fn delete(cx: &Ctx<'_>, name: &str) -> ApiResult {
    let mut et = find(cx, name)?;
    if et.config_owned {
        return Err(ApiError::Conflict(format!(
            "event type {name} is declared in the config file; remove it there"
        )));
    }
    if cx.query.bool("expunge", false)? {
        cx.svc.store.state().delete_event_type(name)?;
        cx.ingest.schemas.removed(name);
        cx.audit("event_type.expunge", name)?;
        cx.commit().await?;
    } else {
        et.archived = true;
        et.updated_ms = cx.svc.now_ms();
        save(cx, &et, "event_type.archive").await?;
    }
    Ok(Response::empty(204))
}
