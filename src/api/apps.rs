//! `/app` and `/app/{app}`: applications.

use storage::state::AppRecord;

use super::{
    error::{ApiError, ApiResult},
    input::{self, check_uid},
    json_response,
    list::{self, ListParams},
    models::{ApplicationIn, ApplicationOut, ApplicationPatch},
    Ctx,
};
use crate::model::ids::{self, Kind};

/// The app named by id or uid, or 404.
pub fn find(cx: &Ctx<'_>, app: &str) -> ApiResult<AppRecord> {
    cx.svc
        .store
        .state()
        .app_by_id_or_uid(app)?
        .ok_or_else(|| ApiError::NotFound(format!("application {app} not found")))
}

fn validate(name: &str, uid: Option<&str>) -> ApiResult<()> {
    let mut errors = Vec::new();
    if name.trim().is_empty() {
        errors.push(super::error::FieldError::body("name", "must not be empty"));
    }
    if let Some(uid) = uid {
        check_uid("uid", uid, Kind::App.prefix(), &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A new app record (not yet stored).
pub fn new_record(cx: &Ctx<'_>, body: ApplicationIn) -> ApiResult<AppRecord> {
    validate(&body.name, body.uid.as_deref())?;
    let now = cx.svc.now_ms();
    let key = cx.svc.store.state().next_key()?;
    Ok(AppRecord {
        key,
        id: ids::fresh(Kind::App, key, now),
        uid: body.uid,
        name: body.name,
        rate_limit: body.throttle_rate.map(u32::from),
        metadata: body.metadata.unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
        config_owned: false,
    })
}

/// Stores a new app, audits it and waits for it to be durable.
pub async fn insert(cx: &Ctx<'_>, app: &AppRecord) -> ApiResult<()> {
    cx.svc.store.state().put_app(app)?;
    cx.audit("application.create", &app.id)?;
    cx.commit().await
}

pub fn list(cx: &Ctx<'_>) -> ApiResult {
    let params = ListParams::parse(&cx.query, false)?;
    let after = match &params.iterator {
        Some(it) => Some(
            ids::decode(Kind::App, it)
                .ok_or_else(ListParams::bad_iterator)?
                .key,
        ),
        None => None,
    };
    let page = cx
        .svc
        .store
        .state()
        .list_apps(after, params.limit, params.scan_descending())?;
    let out: Vec<ApplicationOut<'_>> = page.items.iter().map(ApplicationOut::from).collect();
    json_response(
        200,
        &list::respond(&params, out, !page.done, |a| a.id.to_owned()),
    )
}

pub async fn create(cx: &Ctx<'_>) -> ApiResult {
    let body: ApplicationIn = input::json(&cx.req.body)?;
    if let Some(uid) = &body.uid {
        if let Some(existing) = cx.svc.store.state().app_by_id_or_uid(uid)? {
            return if cx.query.bool("get_if_exists", false)? {
                json_response(200, &ApplicationOut::from(&existing))
            } else {
                Err(ApiError::Conflict(format!(
                    "an application with uid {uid} already exists"
                )))
            };
        }
    }
    let app = new_record(cx, body)?;
    insert(cx, &app).await?;
    json_response(201, &ApplicationOut::from(&app))
}

pub fn get(cx: &Ctx<'_>, app: &str) -> ApiResult {
    json_response(200, &ApplicationOut::from(&find(cx, app)?))
}

/// PUT: update, or create with the path's uid (201).
pub async fn put(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let mut body: ApplicationIn = input::json(&cx.req.body)?;
    match cx.svc.store.state().app_by_id_or_uid(app)? {
        Some(mut existing) => {
            validate(&body.name, body.uid.as_deref())?;
            existing.name = body.name;
            existing.uid = body.uid;
            existing.rate_limit = body.throttle_rate.map(u32::from);
            existing.metadata = body.metadata.unwrap_or_default();
            existing.updated_ms = cx.svc.now_ms();
            cx.svc.store.state().put_app(&existing)?;
            cx.audit("application.update", &existing.id)?;
            cx.commit().await?;
            json_response(200, &ApplicationOut::from(&existing))
        }
        None => {
            body.uid.get_or_insert_with(|| app.to_owned());
            let created = new_record(cx, body)?;
            insert(cx, &created).await?;
            json_response(201, &ApplicationOut::from(&created))
        }
    }
}

pub async fn patch(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let body: ApplicationPatch = input::json(&cx.req.body)?;
    let mut a = find(cx, app)?;
    if let Some(name) = body.name {
        a.name = name;
    }
    if let Some(uid) = body.uid {
        a.uid = uid;
    }
    if let Some(rate) = body.throttle_rate {
        a.rate_limit = rate.map(u32::from);
    }
    if let Some(m) = body.metadata {
        a.metadata = m;
    }
    validate(&a.name, a.uid.as_deref())?;
    a.updated_ms = cx.svc.now_ms();
    cx.svc.store.state().put_app(&a)?;
    cx.audit("application.update", &a.id)?;
    cx.commit().await?;
    json_response(200, &ApplicationOut::from(&a))
}

pub async fn delete(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let a = find(cx, app)?;
    if a.config_owned {
        return Err(ApiError::Conflict(format!(
            "application {} is declared in the config file; remove it there",
            a.id
        )));
    }
    cx.svc.store.state().delete_app(a.key)?;
    cx.svc.endpoints_changed();
    cx.audit("application.delete", &a.id)?;
    cx.commit().await?;
    Ok(crate::http::Response::empty(204))
}
