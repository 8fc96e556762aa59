//! Operational webhooks (`[operational_webhooks]`): hookd tells an operator endpoint about its
//! endpoints and failing deliveries, with Svix's event types and payload shapes:
//!
//! | event type | when | `data` |
//! |---|---|---|
//! | `endpoint.created`, `endpoint.updated`, `endpoint.deleted` | an API write | `appId`, `appUid`, `endpointId`, `endpointUid` |
//! | `endpoint.disabled` | auto-disable (410, or failing for `delivery.disable_after`; `trigger` `automatic`) or an API write that disables it (`manual`) | the same, with `failSince`, `trigger` |
//! | `message.attempt.exhausted` | a delivery gave up (its schedule ran out, or the address was refused) | `appId`, `appUid`, `msgId`, `msgEventId`, `endpointId`, `lastAttempt` {`id`, `responseStatusCode` (0 without a response), `timestamp`} |
//! | `message.attempt.failing` | the 4th failed attempt of a delivery ([`FAILING_AFTER`]) | the same |
//! | `message.attempt.recovered` | a success after a failure notice (`failing` or `exhausted`) was sent for that delivery | the same |
//!
//! The payload is `{"type": ..., "data": {...}}`.
//!
//! **No second sender.** The operator endpoint is one endpoint (uid [`ENDPOINT_UID`]) of an
//! internal application (uid [`APP_UID`]), both made or updated from the config at start
//! ([`provision`]), both config-owned (the API cannot delete them). An operational event
//! is a message appended to that app through `Ingest::append`, so fan-out, signing
//! (Standard Webhooks, the configured `whsec_` secret), retries and the attempt records are the
//! ones every delivery gets. Nothing about the internal app itself is ever emitted, so a failing
//! operator endpoint cannot feed itself.
//!
//! **Never in the way.** [`emit`] never fails its caller and never waits: it appends (one short
//! lock) without waiting for the durable watermark, and logs what goes wrong. Events filtered
//! out by `event_types`, or emitted while no operator endpoint is configured, cost a branch.
//! An event is at most once: one lost in a crash before the log's flush is not sent again.

use std::sync::OnceLock;

use serde::Serialize;
use storage::state::{
    AppRecord, AttemptRecord, DeliveryStatus, EndpointRecord, MessageRecord, SigningKey,
};

use super::Ingest;
use crate::{
    config::OpEventType,
    model::ids::{self, Kind},
    time::format_rfc3339,
};

/// The uid of the internal application that holds the operator endpoint.
pub const APP_UID: &str = crate::model::OPERATIONAL_APP_UID;
/// The uid of the operator endpoint in it.
pub const ENDPOINT_UID: &str = "hookd-operational";
/// `message.attempt.failing` is sent when a delivery's attempt with this number fails.
pub const FAILING_AFTER: u32 = 4;

/// Where operational webhooks go: the internal app, once [`provision`] made it.
#[derive(Debug, Default)]
pub struct Operational {
    app_key: OnceLock<u64>,
}

impl Operational {
    /// The internal app's key, when operational webhooks are configured.
    pub fn app_key(&self) -> Option<u64> {
        self.app_key.get().copied()
    }
}

/// What disabled an endpoint (Svix's `EndpointDisabledTrigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableTrigger {
    /// An API call.
    Manual,
    /// The delivery engine: a 410, or failing for `delivery.disable_after`.
    Automatic,
}

impl DisableTrigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Automatic => "automatic",
        }
    }
}

/// One operational event, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OpEvent {
    pub kind: OpEventType,
    /// The app the event is about (never the internal one: see [`emit`]).
    pub app_key: u64,
    /// The event's `data`.
    pub data: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointData<'a> {
    app_id: &'a str,
    app_uid: Option<&'a str>,
    endpoint_id: &'a str,
    endpoint_uid: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DisabledData<'a> {
    #[serde(flatten)]
    endpoint: EndpointData<'a>,
    fail_since: Option<String>,
    trigger: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastAttempt<'a> {
    id: &'a str,
    response_status_code: u16,
    timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptData<'a> {
    app_id: &'a str,
    app_uid: Option<&'a str>,
    msg_id: &'a str,
    msg_event_id: Option<&'a str>,
    endpoint_id: &'a str,
    last_attempt: LastAttempt<'a>,
}

fn endpoint_data<'a>(app: &'a AppRecord, ep: &'a EndpointRecord) -> EndpointData<'a> {
    EndpointData {
        app_id: &app.id,
        app_uid: app.uid.as_deref(),
        endpoint_id: &ep.id,
        endpoint_uid: ep.uid.as_deref(),
    }
}

fn to_value(data: impl Serialize) -> serde_json::Value {
    // These structs have string keys and plain values: serializing them cannot fail.
    serde_json::to_value(data).unwrap_or_default()
}

impl OpEvent {
    /// `endpoint.created`, `endpoint.updated` or `endpoint.deleted`.
    pub fn endpoint(kind: OpEventType, app: &AppRecord, ep: &EndpointRecord) -> Self {
        Self {
            kind,
            app_key: app.key,
            data: to_value(endpoint_data(app, ep)),
        }
    }

    /// `endpoint.disabled`. `fail_since_ms`: since when it had been failing, if it was.
    pub fn disabled(
        app: &AppRecord,
        ep: &EndpointRecord,
        fail_since_ms: Option<u64>,
        trigger: DisableTrigger,
    ) -> Self {
        Self {
            kind: OpEventType::EndpointDisabled,
            app_key: app.key,
            data: to_value(DisabledData {
                endpoint: endpoint_data(app, ep),
                fail_since: fail_since_ms.map(format_rfc3339),
                trigger: trigger.as_str(),
            }),
        }
    }

    /// `message.attempt.exhausted`, `.failing` or `.recovered`, about `attempt` of message
    /// `msg_id` (`msg`) to `ep`.
    pub fn attempt(
        kind: OpEventType,
        app: &AppRecord,
        ep: &EndpointRecord,
        msg_id: &str,
        msg: &MessageRecord,
        attempt: &AttemptRecord,
    ) -> Self {
        Self {
            kind,
            app_key: app.key,
            data: to_value(AttemptData {
                app_id: &app.id,
                app_uid: app.uid.as_deref(),
                msg_id,
                msg_event_id: msg.event_id.as_deref(),
                endpoint_id: &ep.id,
                last_attempt: LastAttempt {
                    id: &attempt.id,
                    response_status_code: attempt.status_code.unwrap_or(0),
                    timestamp: format_rfc3339(attempt.ts_ms),
                },
            }),
        }
    }

    /// The payload delivered: `{"type": ..., "data": {...}}`.
    pub fn payload(&self) -> Vec<u8> {
        let body = serde_json::json!({ "type": self.kind.name(), "data": self.data });
        body.to_string().into_bytes()
    }
}

/// Whether an event of `kind` about app `app_key` is to be sent: operational webhooks are
/// configured, `kind` passes their `event_types` filter, and the app is not the internal one.
pub fn wants(ing: &Ingest, kind: OpEventType, app_key: u64) -> bool {
    let config = ing.svc.config();
    let Some(config) = &config.operational_webhooks else {
        return false;
    };
    let Some(own) = ing.operational.app_key() else {
        return false;
    };
    app_key != own
        && config
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(&kind))
}

/// Sends `event` to the operator endpoint: appends it as a message of the internal app. Never
/// fails and never waits (see the module doc); problems are logged.
pub fn emit(ing: &Ingest, event: OpEvent) {
    if !wants(ing, event.kind, event.app_key) {
        return;
    }
    let Some(app_key) = ing.operational.app_key() else {
        return;
    };
    let record = MessageRecord {
        app_key,
        rand: ids::random_bits(),
        created_ms: ing.svc.now_ms(),
        event_type: event.kind.name().to_owned(),
        event_id: None,
        channels: Vec::new(),
        tags: Vec::new(),
        payload: event.payload(),
        traceparent: None,
        only_endpoint: None,
        ordering_key: None,
    };
    match ing.append(&record) {
        Ok(seq) => tracing::debug!(event = event.kind.name(), seq, "operational webhook queued"),
        Err(e) => tracing::warn!(
            event = event.kind.name(),
            error = ?e,
            "an operational webhook could not be stored; it is not sent"
        ),
    }
}

/// The app of `ep`, for an event about it; logs and gives `None` if it cannot be read.
fn app_of(ing: &Ingest, ep: &EndpointRecord) -> Option<AppRecord> {
    match ing.svc.store.state().app(ep.app_key) {
        Ok(Some(app)) => Some(app),
        Ok(None) => None, // deleted meanwhile: nobody to tell about
        Err(e) => {
            tracing::warn!(error = %e, endpoint = %ep.id, "reading an app for an operational webhook");
            None
        }
    }
}

/// An endpoint was created, updated or deleted through the API.
pub fn endpoint_changed(ing: &Ingest, kind: OpEventType, app: &AppRecord, ep: &EndpointRecord) {
    if wants(ing, kind, app.key) {
        emit(ing, OpEvent::endpoint(kind, app, ep));
    }
}

/// An endpoint was updated through the API: `endpoint.updated`, and `endpoint.disabled`
/// (`manual`) when this update disabled it (`was_disabled`: before the update).
pub fn endpoint_updated(ing: &Ingest, app: &AppRecord, ep: &EndpointRecord, was_disabled: bool) {
    endpoint_changed(ing, OpEventType::EndpointUpdated, app, ep);
    if ep.disabled && !was_disabled && wants(ing, OpEventType::EndpointDisabled, app.key) {
        emit(
            ing,
            OpEvent::disabled(app, ep, ep.failing_since_ms, DisableTrigger::Manual),
        );
    }
}

/// `ep` was disabled, by the engine (`Automatic`) or the API (`Manual`). `fail_since_ms`: its
/// `failing_since_ms` before it was disabled.
pub fn on_disabled(
    ing: &Ingest,
    ep: &EndpointRecord,
    fail_since_ms: Option<u64>,
    trigger: DisableTrigger,
) {
    if !wants(ing, OpEventType::EndpointDisabled, ep.app_key) {
        return;
    }
    if let Some(app) = app_of(ing, ep) {
        emit(ing, OpEvent::disabled(&app, ep, fail_since_ms, trigger));
    }
}

/// Which attempt events an attempt calls for. `attempts`: the delivery's completed attempts,
/// this one included; `exhausted`: the retry policy gave the delivery up after it;
/// `attempts_max`: attempts a delivery gets (the retry schedule's length + 1). Pure.
pub fn attempt_events(
    success: bool,
    attempts: u32,
    exhausted: bool,
    attempts_max: u32,
) -> Vec<OpEventType> {
    let mut out = Vec::new();
    if success {
        // Recovered: only where a failure notice went out before this success, as Svix does:
        // `failing` after attempt FAILING_AFTER, or `exhausted` when the schedule is shorter.
        let notified_after = FAILING_AFTER.min(attempts_max);
        if attempts > notified_after {
            out.push(OpEventType::MessageAttemptRecovered);
        }
        return out;
    }
    if attempts == FAILING_AFTER {
        out.push(OpEventType::MessageAttemptFailing);
    }
    if exhausted {
        out.push(OpEventType::MessageAttemptExhausted);
    }
    out
}

/// After the retry policy settled an attempt: sends `message.attempt.failing`, `.exhausted`
/// or `.recovered` where [`attempt_events`] says so. `msg_id` is the message's public id,
/// `attempts` the delivery's completed attempts with this one, `exhausted` whether the policy
/// gave the delivery up (`Action::Fail`). Costs nothing for most attempts.
pub fn on_attempt(
    ing: &Ingest,
    ep: &EndpointRecord,
    msg_id: &str,
    msg: &MessageRecord,
    attempt: &AttemptRecord,
    attempts: u32,
    exhausted: bool,
) {
    let config = ing.svc.config();
    if config.operational_webhooks.is_none() {
        return;
    }
    let attempts_max = u32::try_from(config.delivery.retry_schedule.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let success = attempt.status == DeliveryStatus::Success;
    let kinds = attempt_events(success, attempts, exhausted, attempts_max);
    let kinds: Vec<OpEventType> = kinds
        .into_iter()
        .filter(|&k| wants(ing, k, ep.app_key))
        .collect();
    if kinds.is_empty() {
        return;
    }
    let Some(app) = app_of(ing, ep) else { return };
    for kind in kinds {
        emit(ing, OpEvent::attempt(kind, &app, ep, msg_id, msg, attempt));
    }
}

/// Makes the internal app and its operator endpoint match `[operational_webhooks]`; called
/// once at start, before any shard runs. Without the section, a previously provisioned
/// endpoint is disabled (its app and history stay).
pub fn provision(ing: &Ingest) -> storage::Result<()> {
    let state = ing.svc.store.state();
    let now = ing.svc.now_ms();
    let existing_app = state.app_by_id_or_uid(APP_UID)?;
    let config = ing.svc.config();
    let Some(config) = &config.operational_webhooks else {
        if let Some(app) = existing_app {
            if let Some(mut ep) = state.endpoint_by_id_or_uid(app.key, ENDPOINT_UID)? {
                if !ep.disabled {
                    ep.disabled = true;
                    ep.disabled_reason =
                        Some("[operational_webhooks] is not in the config".to_owned());
                    ep.updated_ms = now;
                    state.put_endpoint(&ep)?;
                    ing.svc.endpoints_changed();
                }
            }
        }
        return Ok(());
    };
    let app = match existing_app {
        Some(app) if app.config_owned => app,
        Some(mut app) => {
            app.config_owned = true;
            app.updated_ms = now;
            state.put_app(&app)?;
            app
        }
        None => {
            let key = state.next_key()?;
            let app = AppRecord {
                key,
                id: ids::fresh(Kind::App, key, now),
                uid: Some(APP_UID.to_owned()),
                name: "hookd operational webhooks".to_owned(),
                rate_limit: None,
                metadata: Default::default(),
                created_ms: now,
                updated_ms: now,
                config_owned: true,
            };
            state.put_app(&app)?;
            app
        }
    };
    let wanted_key = SigningKey {
        key: config.secret.0.clone(),
        expires_ms: None,
    };
    let ep = match state.endpoint_by_id_or_uid(app.key, ENDPOINT_UID)? {
        Some(mut ep) => {
            let same = ep.url == config.url
                && ep.secrets.first() == Some(&wanted_key)
                && ep.secrets.len() == 1
                && !ep.disabled
                && ep.config_owned;
            if same {
                None
            } else {
                ep.url.clone_from(&config.url);
                ep.secrets = vec![wanted_key];
                ep.disabled = false;
                ep.disabled_reason = None;
                ep.failing_since_ms = None;
                ep.config_owned = true;
                ep.updated_ms = now;
                Some(ep)
            }
        }
        None => {
            let key = state.next_key()?;
            let id = ids::fresh(Kind::Endpoint, key, now);
            Some(EndpointRecord {
                uid: Some(ENDPOINT_UID.to_owned()),
                description: "operational webhooks ([operational_webhooks] in the config)"
                    .to_owned(),
                config_owned: true,
                ..EndpointRecord::new(key, app.key, id, config.url.clone(), vec![wanted_key], now)
            })
        }
    };
    if let Some(ep) = ep {
        state.put_endpoint(&ep)?;
        ing.svc.endpoints_changed();
        tracing::info!(endpoint = %ep.id, url = %ep.url, "operational webhooks endpoint set from the config");
    }
    state.flush()?;
    // Set once per process; a second call (there is none) keeps the first.
    let _ = ing.operational.app_key.set(app.key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OpEventType::*;

    #[test]
    fn which_attempt_events() {
        // Default schedule: 8 attempts.
        let max = 8;
        assert_eq!(attempt_events(false, 1, false, max), []);
        assert_eq!(attempt_events(false, 3, false, max), []);
        assert_eq!(
            attempt_events(false, 4, false, max),
            [MessageAttemptFailing]
        );
        assert_eq!(attempt_events(false, 5, false, max), []);
        assert_eq!(
            attempt_events(false, 8, true, max),
            [MessageAttemptExhausted]
        );
        // Success: recovered only once a failure notice went out.
        assert_eq!(attempt_events(true, 1, false, max), []);
        assert_eq!(attempt_events(true, 4, false, max), []);
        assert_eq!(
            attempt_events(true, 5, false, max),
            [MessageAttemptRecovered]
        );
        // A 4-attempt schedule: the 4th failure is both failing and exhausted.
        assert_eq!(
            attempt_events(false, 4, true, 4),
            [MessageAttemptFailing, MessageAttemptExhausted]
        );
        // A 2-attempt schedule: exhausted after 2; a later success (a resend) recovers.
        assert_eq!(attempt_events(false, 2, true, 2), [MessageAttemptExhausted]);
        assert_eq!(attempt_events(true, 3, false, 2), [MessageAttemptRecovered]);
        // Refused at once (no retry): exhausted after 1.
        assert_eq!(
            attempt_events(false, 1, true, max),
            [MessageAttemptExhausted]
        );
    }

    fn app() -> AppRecord {
        AppRecord {
            key: 7,
            id: "app_1".into(),
            uid: Some("shop".into()),
            name: "Shop".into(),
            rate_limit: None,
            metadata: Default::default(),
            created_ms: 0,
            updated_ms: 0,
            config_owned: false,
        }
    }

    fn ep() -> EndpointRecord {
        EndpointRecord {
            disabled: true,
            ..EndpointRecord::new(
                9,
                7,
                "ep_1".into(),
                "https://example.com/".into(),
                Vec::new(),
                0,
            )
        }
    }

    #[test]
    fn payload_shapes_are_svix_shapes() {
        let e = OpEvent::endpoint(EndpointCreated, &app(), &ep());
        let v: serde_json::Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "endpoint.created", "data": {
                "appId": "app_1", "appUid": "shop", "endpointId": "ep_1", "endpointUid": null}})
        );
        let e = OpEvent::disabled(&app(), &ep(), Some(0), DisableTrigger::Automatic);
        let v: serde_json::Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(v["type"], "endpoint.disabled");
        assert_eq!(v["data"]["failSince"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["data"]["trigger"], "automatic");
        assert_eq!(v["data"]["endpointId"], "ep_1");
        let msg = MessageRecord {
            app_key: 7,
            rand: 0,
            created_ms: 0,
            event_type: "t".into(),
            event_id: Some("order-1".into()),
            channels: Vec::new(),
            tags: Vec::new(),
            payload: b"{}".to_vec(),
            traceparent: None,
            only_endpoint: None,
            ordering_key: None,
        };
        let attempt = AttemptRecord {
            key: 1,
            id: "atmpt_1".into(),
            msg_seq: 1,
            endpoint_key: 9,
            url: String::new(),
            status_code: None,
            response: String::new(),
            duration_ms: 0,
            trigger: storage::state::Trigger::Scheduled,
            status: DeliveryStatus::Fail,
            ts_ms: 1000,
        };
        let e = OpEvent::attempt(
            MessageAttemptExhausted,
            &app(),
            &ep(),
            "msg_1",
            &msg,
            &attempt,
        );
        let v: serde_json::Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "message.attempt.exhausted", "data": {
                "appId": "app_1", "appUid": "shop", "msgId": "msg_1", "msgEventId": "order-1",
                "endpointId": "ep_1",
                "lastAttempt": {"id": "atmpt_1", "responseStatusCode": 0,
                                "timestamp": "1970-01-01T00:00:01.000Z"}}})
        );
    }
}
