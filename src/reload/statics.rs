//! Static definitions written to the store: `[[event_types]]`, `[[apps]]` and their
//! `[[apps.endpoints]]`, at start and on every reload.
//!
//! - **Create or update.** An event type is found by name, an app by uid, an endpoint by uid
//!   within its app. What the file says replaces what is stored (a change made through the
//!   API to a declared field lasts until the next start or reload); what the file does not
//!   say is kept: ids, creation times, endpoint metadata and health, event type flags. A record
//!   that would not change is not written.
//! - **Config-owned.** Every declared record is marked `config_owned`; the API refuses to
//!   delete it (409). A record marked so whose definition left the file is un-marked, and
//!   nothing is deleted: its data and deliveries stay, and the API may delete it now.
//! - **Secrets.** An endpoint without `secret` gets a random one when created and keeps its
//!   key afterwards. A `secret` that differs from the current key rotates to it, as the API's
//!   rotate does: the old key keeps signing for `delivery.secret_rotation_grace`.
//! - **Disabled.** `disabled = true` disables the endpoint with the reason
//!   [`DISABLED_BY_CONFIG`]; `disabled = false` re-enables it only if the config was what
//!   disabled it, never an endpoint hookd disabled (410, failing for `disable_after`, a policy).
//!
//! Every write is audited with the actor [`ACTOR`].

use std::collections::{HashMap, HashSet};

use storage::state::{AppRecord, AuditRecord, EndpointRecord, EventTypeRecord, SigningKey, State};

use crate::{
    config::{AppDef, Config, EndpointDef, EventTypeDef, SignatureKind},
    ingest::Ingest,
    model::ids::{self, Kind},
};

/// The audit trail's actor for changes made from the config file.
pub const ACTOR: &str = "config";
/// `disabled_reason` of an endpoint declared with `disabled = true`.
pub const DISABLED_BY_CONFIG: &str = "disabled in the config file";
/// Records read per page when scanning apps and event types.
const PAGE: usize = 256;

/// What [`apply`] changed, each entry naming a record (`app shop`, `endpoint shop/billing`,
/// `event type order.paid`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Declared and not stored before.
    pub created: Vec<String>,
    /// Stored, and changed to match the file.
    pub updated: Vec<String>,
    /// Marked config-owned, but no longer in the file: un-marked, kept.
    pub released: Vec<String>,
}

impl Applied {
    /// Whether anything was written.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.released.is_empty()
    }
}

/// Writes the definitions of `config` to the store and un-marks those that left it. Tells the
/// endpoint caches when an app or endpoint changed. On an error, what was written before it
/// stays; the next start or reload finishes the job.
pub fn apply(ingest: &Ingest, config: &Config) -> storage::Result<Applied> {
    let svc = &*ingest.svc;
    let state = svc.store.state();
    let now = svc.now_ms();
    let mut out = Applied::default();
    for def in &config.event_types {
        event_type(state, def, now, &mut out)?;
    }
    // Compiled payload schemas check their event types again (`ingest::schema`).
    ingest.schemas.invalidate();
    let mut endpoints_changed = false;
    for def in &config.apps {
        endpoints_changed |= app(config, state, def, now, &mut out)?;
    }
    endpoints_changed |= release(config, state, now, &mut out)?;
    if endpoints_changed {
        svc.endpoints_changed();
    }
    if !out.is_empty() {
        state.flush()?;
    }
    Ok(out)
}

fn audit(state: &State, now: u64, action: &str, target: &str) -> storage::Result<()> {
    state.audit(&AuditRecord {
        ts_ms: now,
        actor: ACTOR.into(),
        action: action.into(),
        target: target.into(),
    })
}

fn event_type(
    state: &State,
    def: &EventTypeDef,
    now: u64,
    out: &mut Applied,
) -> storage::Result<()> {
    let existing = state.event_type(&def.name)?;
    let mut et = existing.clone().unwrap_or_else(|| EventTypeRecord {
        name: def.name.clone(),
        description: String::new(),
        archived: false,
        deprecated: false,
        feature_flags: Vec::new(),
        schemas: None,
        config_owned: true,
        created_ms: now,
        updated_ms: now,
    });
    et.description = def.description.clone();
    et.schemas = def.schemas.clone();
    et.archived = false;
    et.config_owned = true;
    if existing.as_ref() == Some(&et) {
        return Ok(());
    }
    et.updated_ms = now;
    state.put_event_type(&et)?;
    let what = format!("event type {}", et.name);
    if existing.is_some() {
        audit(state, now, "event_type.update", &et.name)?;
        out.updated.push(what);
    } else {
        audit(state, now, "event_type.create", &et.name)?;
        out.created.push(what);
    }
    Ok(())
}

/// Writes one app and its endpoints; whether any of them changed.
fn app(
    config: &Config,
    state: &State,
    def: &AppDef,
    now: u64,
    out: &mut Applied,
) -> storage::Result<bool> {
    let existing = state.app_by_id_or_uid(&def.uid)?;
    let mut app = match existing.clone() {
        Some(a) => a,
        None => {
            let key = state.next_key()?;
            AppRecord {
                key,
                id: ids::fresh(Kind::App, key, now),
                uid: Some(def.uid.clone()),
                name: String::new(),
                rate_limit: None,
                metadata: Default::default(),
                created_ms: now,
                updated_ms: now,
                config_owned: true,
            }
        }
    };
    app.name = def.name.clone();
    app.metadata = def.metadata.clone();
    app.config_owned = true;
    let mut changed = false;
    if existing.as_ref() != Some(&app) {
        app.updated_ms = now;
        state.put_app(&app)?;
        changed = true;
        let what = format!("app {}", def.uid);
        if existing.is_some() {
            audit(state, now, "application.update", &app.id)?;
            out.updated.push(what);
        } else {
            audit(state, now, "application.create", &app.id)?;
            out.created.push(what);
        }
    }
    let grace_ms = config.delivery.secret_rotation_grace.as_millis() as u64;
    for ep in &def.endpoints {
        let keys = (grace_ms, config.delivery.default_signature);
        changed |= endpoint(state, &app, ep, now, keys, out)?;
    }
    Ok(changed)
}

/// Writes one endpoint of `app`; whether it changed.
fn endpoint(
    state: &State,
    app: &AppRecord,
    def: &EndpointDef,
    now: u64,
    (grace_ms, default_signature): (u64, SignatureKind),
    out: &mut Applied,
) -> storage::Result<bool> {
    let existing = state.endpoint_by_id_or_uid(app.key, &def.uid)?;
    let mut ep = match existing.clone() {
        Some(e) => e,
        None => {
            let key = state.next_key()?;
            let secret = match &def.secret {
                Some(s) => s.0.clone(),
                None if default_signature == SignatureKind::Ed25519 => {
                    crate::model::secret::ed25519_from_seed(&rand::random())
                }
                None => (0..crate::model::secret::SECRET_BYTES_MIN)
                    .map(|_| rand::random::<u8>())
                    .collect(),
            };
            let id = ids::fresh(Kind::Endpoint, key, now);
            let secrets = vec![SigningKey {
                key: secret,
                expires_ms: None,
            }];
            EndpointRecord {
                uid: Some(def.uid.clone()),
                config_owned: true,
                ..EndpointRecord::new(key, app.key, id, String::new(), secrets, now)
            }
        }
    };
    ep.url = def.url.clone();
    ep.description = def.description.clone();
    ep.event_types = def.event_types.clone();
    ep.channels = def.channels.clone();
    ep.headers = def.headers.clone();
    ep.legacy_signatures = def.legacy_signatures.clone();
    ep.filter = def.filter.clone();
    ep.fifo = def.fifo;
    ep.throttle_rate = def.throttle_rate;
    ep.config_owned = true;
    if def.disabled {
        if !ep.disabled {
            ep.disabled = true;
            ep.disabled_reason = Some(DISABLED_BY_CONFIG.into());
        }
    } else if ep.disabled && ep.disabled_reason.as_deref() == Some(DISABLED_BY_CONFIG) {
        ep.disabled = false;
        ep.disabled_reason = None;
    }
    if let Some(secret) = &def.secret {
        if ep.secrets.first().map(|k| &k.key) != Some(&secret.0) {
            // As the API's rotate: the new key first, the old ones sign through the grace.
            for old in &mut ep.secrets {
                let end = now + grace_ms;
                old.expires_ms = Some(old.expires_ms.unwrap_or(end).min(end));
            }
            ep.secrets.retain(|k| k.expires_ms.is_none_or(|t| t > now));
            ep.secrets.insert(
                0,
                SigningKey {
                    key: secret.0.clone(),
                    expires_ms: None,
                },
            );
        }
    }
    if existing.as_ref() == Some(&ep) {
        return Ok(false);
    }
    ep.updated_ms = now;
    state.put_endpoint(&ep)?;
    if existing.as_ref().is_some_and(|e| e.fifo) && !ep.fifo {
        // No longer ordered: what waited in its lanes comes due (the dispatcher's next scan).
        state.fifo_release(ep.key, now)?;
    }
    let what = format!(
        "endpoint {}/{}",
        app.uid.as_deref().unwrap_or(&app.id),
        def.uid
    );
    if existing.is_some() {
        audit(state, now, "endpoint.update", &ep.id)?;
        out.updated.push(what);
    } else {
        audit(state, now, "endpoint.create", &ep.id)?;
        out.created.push(what);
    }
    Ok(true)
}

/// Un-marks every config-owned record that `config` no longer declares; whether an app or
/// endpoint changed.
fn release(config: &Config, state: &State, now: u64, out: &mut Applied) -> storage::Result<bool> {
    let declared: HashMap<&str, HashSet<&str>> = config
        .apps
        .iter()
        .map(|a| {
            let eps = a.endpoints.iter().map(|e| e.uid.as_str()).collect();
            (a.uid.as_str(), eps)
        })
        .collect();
    let mut changed = false;
    let mut after = None;
    loop {
        let page = state.list_apps(after, PAGE, false)?;
        for mut app in page.items.iter().cloned() {
            // Owned by `[operational_webhooks]`, not by these definitions.
            if app.uid.as_deref() == Some(crate::model::OPERATIONAL_APP_UID) {
                continue;
            }
            let label = app.uid.clone().unwrap_or_else(|| app.id.clone());
            let eps = app.uid.as_deref().and_then(|u| declared.get(u));
            for mut ep in state.app_endpoints(app.key)? {
                let kept =
                    eps.is_some_and(|eps| ep.uid.as_deref().is_some_and(|u| eps.contains(u)));
                if ep.config_owned && !kept {
                    ep.config_owned = false;
                    ep.updated_ms = now;
                    state.put_endpoint(&ep)?;
                    audit(state, now, "endpoint.release", &ep.id)?;
                    let uid = ep.uid.as_deref().unwrap_or(&ep.id);
                    out.released.push(format!("endpoint {label}/{uid}"));
                    changed = true;
                }
            }
            if app.config_owned && eps.is_none() {
                app.config_owned = false;
                app.updated_ms = now;
                state.put_app(&app)?;
                audit(state, now, "application.release", &app.id)?;
                out.released.push(format!("app {label}"));
                changed = true;
            }
        }
        match page.items.last() {
            Some(last) if !page.done => after = Some(last.key),
            _ => break,
        }
    }
    let names: HashSet<&str> = config.event_types.iter().map(|e| e.name.as_str()).collect();
    let mut after: Option<String> = None;
    loop {
        let page = state.list_event_types(after.as_deref(), PAGE, true)?;
        for mut et in page.items.iter().cloned() {
            if et.config_owned && !names.contains(et.name.as_str()) {
                et.config_owned = false;
                et.updated_ms = now;
                state.put_event_type(&et)?;
                audit(state, now, "event_type.release", &et.name)?;
                out.released.push(format!("event type {}", et.name));
            }
        }
        match page.items.last() {
            Some(last) if !page.done => after = Some(last.name.clone()),
            _ => break,
        }
    }
    Ok(changed)
}
