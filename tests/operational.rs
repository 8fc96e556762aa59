//! Operator rules of issue 7 against the real binary over loopback: payload schemas
//! (`validation.enforce_schemas`) and operational webhooks (`[operational_webhooks]`).
//!
//! Every operational webhook is received by a test receiver playing the operator endpoint and
//! checked there: its Standard Webhooks signature (with the configured secret, verified by the
//! harness's `verify`), its event type and its whole Svix-shaped payload. Tests wait on what
//! arrives, or on state read back from the API, each with a deadline; none sleeps to let
//! something happen.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use hookd::{Hookd, Reply as ApiReply, ADMIN};
use receiver::{Receiver, Recorded, Reply};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const OPS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Fast retries (6 attempts per delivery), loopback allowed, and operational webhooks to
/// `ops` (plus `extra` keys in the section).
fn start(ops: &Receiver, extra: &str) -> Hookd {
    let h = Hookd::start(&format!(
        r#"
[delivery]
retry_schedule = ["100ms", "100ms", "100ms", "100ms", "100ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true

[operational_webhooks]
url = "{}"
secret = "{OPS_SECRET}"
{extra}
"#,
        ops.url("/ops")
    ));
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    h
}

fn app_id(h: &Hookd) -> String {
    let r = h.admin("GET", "/api/v1/app/shop", None);
    r.json()["id"].as_str().unwrap().to_owned()
}

fn endpoint(h: &Hookd, body: Value) -> Value {
    let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn send(h: &Hookd, body: Value) -> String {
    let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

/// The request's body, after checking it is a signed delivery from hookd with the
/// operational webhooks' secret.
#[track_caller]
fn verified(r: &Recorded) -> Value {
    let key = hookd::parse_secret(OPS_SECRET);
    let id = r.header("webhook-id").expect("webhook-id");
    let ts: u64 = r
        .header("webhook-timestamp")
        .expect("webhook-timestamp")
        .parse()
        .unwrap();
    let sig = r.header("webhook-signature").expect("webhook-signature");
    assert!(
        hookd::verify(&key, id, ts, &r.body, sig),
        "bad signature on {id}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(r.header("svix-signature"), Some(sig));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/ops"));
    serde_json::from_slice(&r.body).expect("a JSON body")
}

/// Waits until the operator endpoint has received an event of type `kind`, and returns it
/// (verified). Every other event received meanwhile is verified too.
#[track_caller]
fn wait_event(ops: &Receiver, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = 0;
    loop {
        let got = ops.requests();
        for r in &got[seen..] {
            let v = verified(r);
            if v["type"] == kind {
                return v;
            }
        }
        seen = got.len();
        assert!(
            Instant::now() < deadline,
            "no {kind} within {WAIT:?}; received: {:?}",
            got.iter()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The event types of every operational message stored so far, oldest first.
fn stored_events(h: &Hookd) -> Vec<String> {
    let r = h.admin("GET", "/api/v1/app/hookd-operational/msg?limit=250", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut types: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["eventType"].as_str().unwrap().to_owned())
        .collect();
    types.reverse();
    types
}

/// The attempts of `msg`, oldest first.
fn attempts(h: &Hookd, msg: &str, n: usize) -> Vec<Value> {
    let v = h.wait_json(
        &format!("/api/v1/app/shop/attempt/msg/{msg}"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|a| a.len() >= n),
    );
    let mut a = v["data"].as_array().unwrap().clone();
    a.reverse();
    a
}

// --- Operational webhooks ---------------------------------------------------------------

#[test]
fn endpoint_created_updated_disabled_deleted_are_sent_signed() {
    let ops = Receiver::start();
    let h = start(&ops, "");
    let app = app_id(&h);
    let ep = endpoint(
        &h,
        json!({"url": "https://example.com/hook", "uid": "billing"}),
    );
    let ep_id = ep["id"].as_str().unwrap();
    let want = |kind: &str| {
        json!({"type": kind, "data": {
            "appId": app, "appUid": "shop", "endpointId": ep_id, "endpointUid": "billing"}})
    };
    assert_eq!(
        wait_event(&ops, "endpoint.created"),
        want("endpoint.created")
    );

    let path = format!("/api/v1/app/shop/endpoint/{ep_id}");
    let r = h.admin("PATCH", &path, Some(r#"{"description": "d2"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        wait_event(&ops, "endpoint.updated"),
        want("endpoint.updated")
    );

    // Disabled by an API call: updated, and disabled with the manual trigger.
    let r = h.admin(
        "PUT",
        &path,
        Some(r#"{"url": "https://example.com/hook", "uid": "billing", "disabled": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let disabled = wait_event(&ops, "endpoint.disabled");
    assert_eq!(
        disabled,
        json!({"type": "endpoint.disabled", "data": {
            "appId": app, "appUid": "shop", "endpointId": ep_id, "endpointUid": "billing",
            "failSince": null, "trigger": "manual"}})
    );

    assert_eq!(h.admin("DELETE", &path, None).status, 204);
    assert_eq!(
        wait_event(&ops, "endpoint.deleted"),
        want("endpoint.deleted")
    );

    // Exactly these were stored, in this order: one message per event.
    assert_eq!(
        stored_events(&h),
        [
            "endpoint.created",
            "endpoint.updated",
            "endpoint.updated",
            "endpoint.disabled",
            "endpoint.deleted"
        ]
    );
    // The operator endpoint belongs to the config: the API cannot delete it or its app.
    let r = h.admin(
        "DELETE",
        "/api/v1/app/hookd-operational/endpoint/hookd-operational",
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        h.admin("DELETE", "/api/v1/app/hookd-operational", None)
            .status,
        409
    );
}

#[test]
fn the_event_type_filter_holds_and_the_internal_app_never_reports_on_itself() {
    let ops = Receiver::start();
    let h = start(&ops, r#"event_types = ["endpoint.deleted"]"#);
    let ep = endpoint(&h, json!({"url": "https://example.com/hook"}));
    let path = format!("/api/v1/app/shop/endpoint/{}", ep["id"].as_str().unwrap());
    assert_eq!(h.admin("DELETE", &path, None).status, 204);
    let got = wait_event(&ops, "endpoint.deleted");
    assert_eq!(got["data"]["endpointId"], ep["id"]);
    assert_eq!(got["data"]["endpointUid"], Value::Null);
    // The create was filtered out before anything was stored.
    assert_eq!(stored_events(&h), ["endpoint.deleted"]);

    // Changes to the internal app's own endpoints are not reported.
    let r = h.admin(
        "POST",
        "/api/v1/app/hookd-operational/endpoint",
        Some(r#"{"url": "https://example.com/other"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let other = r.json()["id"].as_str().unwrap().to_owned();
    let r = h.admin(
        "DELETE",
        &format!("/api/v1/app/hookd-operational/endpoint/{other}"),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(stored_events(&h), ["endpoint.deleted"]);
}

#[test]
fn the_operator_endpoint_follows_the_config_across_restarts() {
    let ops = Receiver::start();
    let mut h = start(&ops, "");
    let get = |h: &Hookd| {
        let r = h.admin(
            "GET",
            "/api/v1/app/hookd-operational/endpoint/hookd-operational",
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let first = get(&h);
    assert_eq!(first["url"], ops.url("/ops"));
    let secret = h
        .admin(
            "GET",
            "/api/v1/app/hookd-operational/endpoint/hookd-operational/secret",
            None,
        )
        .json();
    assert_eq!(secret["key"], OPS_SECRET);
    // Disabled through the API, then a restart: the config puts it back, same endpoint.
    let r = h.admin(
        "PATCH",
        "/api/v1/app/hookd-operational/endpoint/hookd-operational",
        Some(r#"{"disabled": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    h.crash_and_restart();
    let again = get(&h);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["disabled"], false);
    // And it still receives.
    endpoint(&h, json!({"url": "https://example.com/hook"}));
    wait_event(&ops, "endpoint.created");
}

/// A delivery failing 6 times (the whole schedule): `failing` after the 4th attempt,
/// `exhausted` after the 6th, each naming its last attempt. Needs the delivery engine to call
/// `ingest::operational::on_attempt`.
#[test]
fn failing_then_exhausted() {
    let ops = Receiver::start();
    let h = start(&ops, "");
    let broken = Receiver::builder().handler(|_| Reply::status(500)).start();
    let ep = endpoint(&h, json!({"url": broken.url("/")}));
    let msg = send(
        &h,
        json!({"eventType": "order.paid", "payload": {"n": 1}, "eventId": "order-1"}),
    );
    let failing = wait_event(&ops, "message.attempt.failing");
    let exhausted = wait_event(&ops, "message.attempt.exhausted");
    let tried = attempts(&h, &msg, 6);
    let app = app_id(&h);
    for (event, attempt) in [(&failing, &tried[3]), (&exhausted, &tried[5])] {
        assert_eq!(
            event["data"],
            json!({
                "appId": app, "appUid": "shop", "msgId": msg, "msgEventId": "order-1",
                "endpointId": ep["id"],
                "lastAttempt": {"id": attempt["id"], "responseStatusCode": 500,
                                "timestamp": attempt["timestamp"]}}),
            "{event}"
        );
    }
    assert_eq!(broken.requests().len(), 6);
    let events = stored_events(&h);
    assert_eq!(
        events,
        [
            "endpoint.created",
            "message.attempt.failing",
            "message.attempt.exhausted"
        ]
    );
}

/// Four failures, then a success: `failing`, then `recovered` naming the successful attempt.
#[test]
fn failing_then_recovered() {
    let ops = Receiver::start();
    let h = start(&ops, "");
    let flaky = Receiver::start();
    flaky.script([
        Reply::status(500),
        Reply::status(502),
        Reply::status(500),
        Reply::status(500),
    ]);
    let ep = endpoint(&h, json!({"url": flaky.url("/")}));
    let msg = send(&h, json!({"eventType": "order.paid", "payload": {}}));
    let failing = wait_event(&ops, "message.attempt.failing");
    let recovered = wait_event(&ops, "message.attempt.recovered");
    let tried = attempts(&h, &msg, 5);
    assert_eq!(failing["data"]["lastAttempt"]["id"], tried[3]["id"]);
    assert_eq!(failing["data"]["lastAttempt"]["responseStatusCode"], 500);
    assert_eq!(
        recovered["data"],
        json!({
            "appId": app_id(&h), "appUid": "shop", "msgId": msg, "msgEventId": null,
            "endpointId": ep["id"],
            "lastAttempt": {"id": tried[4]["id"], "responseStatusCode": 200,
                            "timestamp": tried[4]["timestamp"]}})
    );
    assert_eq!(
        stored_events(&h),
        [
            "endpoint.created",
            "message.attempt.failing",
            "message.attempt.recovered"
        ]
    );
}

/// A success after fewer failures than a notice needs is not a recovery.
#[test]
fn no_notice_for_a_short_failure() {
    let ops = Receiver::start();
    let h = start(&ops, "");
    let flaky = Receiver::start();
    flaky.script([Reply::status(500)]);
    endpoint(&h, json!({"url": flaky.url("/")}));
    let msg = send(&h, json!({"eventType": "order.paid", "payload": {}}));
    h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 0,
    );
    // The engine reports an attempt before it records it, so by the time the success shows
    // in the delivery's status, anything it caused is stored.
    let ep2 = endpoint(&h, json!({"url": "https://example.com/2"}));
    assert_eq!(ep2["url"], "https://example.com/2");
    // Its own event is appended without waiting for the flush: once it shows, anything
    // emitted before it shows too.
    let deadline = Instant::now() + WAIT;
    while stored_events(&h).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stored_events(&h), ["endpoint.created", "endpoint.created"]);
}

/// An endpoint answering 410 is disabled by the engine: `endpoint.disabled`, automatic.
#[test]
fn gone_endpoint_is_reported_disabled() {
    let ops = Receiver::start();
    let h = start(&ops, "");
    let gone = Receiver::builder().handler(|_| Reply::status(410)).start();
    let ep = endpoint(&h, json!({"url": gone.url("/"), "uid": "legacy"}));
    send(&h, json!({"eventType": "order.paid", "payload": {}}));
    let disabled = wait_event(&ops, "endpoint.disabled");
    assert_eq!(
        disabled,
        json!({"type": "endpoint.disabled", "data": {
            "appId": app_id(&h), "appUid": "shop", "endpointId": ep["id"],
            "endpointUid": "legacy", "failSince": null, "trigger": "automatic"}})
    );
}

/// An endpoint failing for `delivery.disable_after` is disabled: `failSince` is when its
/// failures began.
#[test]
fn failing_too_long_is_reported_disabled_with_fail_since() {
    let ops = Receiver::start();
    let h = Hookd::start(&format!(
        r#"
[delivery]
retry_schedule = ["200ms", "200ms", "200ms", "200ms", "200ms", "200ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true
disable_after = "500ms"

[operational_webhooks]
url = "{}"
secret = "{OPS_SECRET}"
"#,
        ops.url("/ops")
    ));
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201);
    let broken = Receiver::builder().handler(|_| Reply::status(500)).start();
    let ep = endpoint(&h, json!({"url": broken.url("/")}));
    let msg = send(&h, json!({"eventType": "order.paid", "payload": {}}));
    let disabled = wait_event(&ops, "endpoint.disabled");
    assert_eq!(disabled["data"]["endpointId"], ep["id"]);
    assert_eq!(disabled["data"]["trigger"], "automatic");
    // failSince: when the first attempt failed, so between its start and the second's (the
    // timestamps are all RFC 3339 UTC with milliseconds, so they compare as strings).
    let tried = attempts(&h, &msg, 2);
    let since = disabled["data"]["failSince"].as_str().expect("failSince");
    assert!(
        tried[0]["timestamp"].as_str().unwrap() <= since
            && since < tried[1]["timestamp"].as_str().unwrap(),
        "{since} not within the first attempt: {tried:?}"
    );
}

/// A failing operator endpoint feeds nothing back: no failing or exhausted events about the
/// internal app's own deliveries.
#[test]
fn a_failing_operator_endpoint_does_not_report_on_itself() {
    let ops = Receiver::builder().handler(|_| Reply::status(500)).start();
    let h = start(&ops, "");
    endpoint(&h, json!({"url": "https://example.com/hook"}));
    // The endpoint.created message goes through its whole schedule, then fails.
    ops.wait_for_requests(6, WAIT);
    let ops_app = "hookd-operational";
    let msgs = h
        .admin("GET", &format!("/api/v1/app/{ops_app}/msg"), None)
        .json();
    let created = msgs["data"][0]["id"].as_str().unwrap().to_owned();
    h.wait_json(
        &format!("/api/v1/app/{ops_app}/msg/{created}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 2,
    );
    assert_eq!(stored_events(&h), ["endpoint.created"]);
    for r in ops.requests() {
        assert_eq!(verified(&r)["type"], "endpoint.created");
    }
}

// --- Payload schemas ----------------------------------------------------------------------

const INVOICE_SCHEMA: &str = r#"{"1": {
    "type": "object",
    "required": ["invoiceId", "amount"],
    "properties": {
        "invoiceId": {"type": "string"},
        "amount": {"type": "integer", "minimum": 0},
        "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
    }
}}"#;

fn start_schemas(enforce: bool) -> Hookd {
    let h = Hookd::start(&format!("[validation]\nenforce_schemas = {enforce}\n"));
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201);
    let body =
        format!(r#"{{"name": "invoice.paid", "description": "d", "schemas": {INVOICE_SCHEMA}}}"#);
    let r = h.admin("POST", "/api/v1/event-type", Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    h
}

fn post_msg(h: &Hookd, event_type: &str, payload: &str) -> ApiReply {
    let body = format!(r#"{{"eventType": "{event_type}", "payload": {payload}}}"#);
    h.admin("POST", "/api/v1/app/shop/msg", Some(&body))
}

/// The 422's problems as (loc, msg).
#[track_caller]
fn problems(r: &ApiReply) -> Vec<(Vec<String>, String)> {
    assert_eq!(r.status, 422, "{}", r.body);
    r.json()["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["type"], "schema_violation", "{d}");
            (
                d["loc"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
                d["msg"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn schemas_are_enforced_with_the_failing_pointer() {
    let mut h = start_schemas(true);
    // Valid: accepted and stored.
    let r = post_msg(&h, "invoice.paid", r#"{"invoiceId": "in_1", "amount": 5}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    // A wrong type at one pointer.
    let p = problems(&post_msg(
        &h,
        "invoice.paid",
        r#"{"invoiceId": "in_1", "amount": "5"}"#,
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, ["body", "payload", "amount"]);
    assert!(
        p[0].1.starts_with("/amount: ") && p[0].1.contains("integer"),
        "{p:?}"
    );
    // Nested, and several at once.
    let p = problems(&post_msg(
        &h,
        "invoice.paid",
        r#"{"invoiceId": 7, "amount": -1, "lines": [{"sku": "a"}, {"qty": 1}]}"#,
    ));
    let locs: Vec<Vec<String>> = p.iter().map(|(l, _)| l.clone()).collect();
    for want in [
        vec!["body", "payload", "invoiceId"],
        vec!["body", "payload", "amount"],
        vec!["body", "payload", "lines", "1"],
    ] {
        assert!(
            locs.contains(&want.iter().map(|s| s.to_string()).collect()),
            "{want:?} not in {p:?}"
        );
    }
    let line = p.iter().find(|(l, _)| l.len() == 4).unwrap();
    assert!(
        line.1.starts_with("/lines/1: ") && line.1.contains("sku"),
        "{line:?}"
    );
    // A missing required property is reported at the payload itself.
    let p = problems(&post_msg(&h, "invoice.paid", r#"{"invoiceId": "in_1"}"#));
    assert_eq!(p[0].0, ["body", "payload"]);
    assert!(p[0].1.contains("amount"), "{p:?}");
    // Only the valid one was stored.
    let r = h.admin("GET", "/api/v1/app/shop/msg", None);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    // Event types without a schema, or unknown ones, take anything.
    let r = h.admin(
        "POST",
        "/api/v1/event-type",
        Some(r#"{"name": "free.form", "description": "d"}"#),
    );
    assert_eq!(r.status, 201);
    assert_eq!(post_msg(&h, "free.form", r#"{"x": [1]}"#).status, 202);
    assert_eq!(post_msg(&h, "not.registered", r#"{"x": 1}"#).status, 202);

    // A new schema applies to the next message.
    let r = h.admin(
        "PATCH",
        "/api/v1/event-type/invoice.paid",
        Some(r#"{"schemas": {"1": {"type": "object", "required": ["total"]}}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(post_msg(&h, "invoice.paid", r#"{"total": 1}"#).status, 202);
    let p = problems(&post_msg(
        &h,
        "invoice.paid",
        r#"{"invoiceId": "in_1", "amount": 5}"#,
    ));
    assert!(p[0].1.contains("total"), "{p:?}");

    // After a restart the schema is compiled again from the stored event type.
    h.crash_and_restart();
    assert_eq!(post_msg(&h, "invoice.paid", r#"{"total": 2}"#).status, 202);
    problems(&post_msg(&h, "invoice.paid", "{}"));
    // Removing the schema lifts the check.
    let r = h.admin(
        "PATCH",
        "/api/v1/event-type/invoice.paid",
        Some(r#"{"schemas": null}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(post_msg(&h, "invoice.paid", "{}").status, 202);
}

#[test]
fn an_invalid_schema_is_refused_at_write() {
    let h = start_schemas(true);
    let cases = [
        // Not a schema: `type` must be a string or an array.
        (r#"{"1": {"type": 5}}"#, "\"1\""),
        // The second version is the bad one.
        (
            r#"{"1": {"type": "object"}, "2": {"minimum": "zero"}}"#,
            "\"2\"",
        ),
        // Remote references are never fetched.
        (r#"{"1": {"$ref": "https://example.com/s.json"}}"#, "\"1\""),
        // Not an object of versions.
        (r#"[{"type": "object"}]"#, "versioned"),
    ];
    for (schemas, names) in cases {
        for (method, path, body) in [
            (
                "POST",
                "/api/v1/event-type".to_owned(),
                format!(r#"{{"name": "bad.type", "description": "d", "schemas": {schemas}}}"#),
            ),
            (
                "PUT",
                "/api/v1/event-type/invoice.paid".to_owned(),
                format!(r#"{{"description": "d", "schemas": {schemas}}}"#),
            ),
            (
                "PATCH",
                "/api/v1/event-type/invoice.paid".to_owned(),
                format!(r#"{{"schemas": {schemas}}}"#),
            ),
        ] {
            let r = h.admin(method, &path, Some(&body));
            assert_eq!(r.status, 422, "{method} {schemas}: {}", r.body);
            let d = &r.json()["detail"][0];
            assert_eq!(d["loc"], json!(["body", "schemas"]), "{d}");
            assert!(d["msg"].as_str().unwrap().contains(names), "{names}: {d}");
        }
    }
    // Nothing was stored: the old schema still holds, the new type does not exist.
    assert_eq!(
        h.admin("GET", "/api/v1/event-type/bad.type", None).status,
        404
    );
    problems(&post_msg(&h, "invoice.paid", "{}"));
    // Draft 7 by `$schema`, with a local reference, is fine.
    let r = h.admin(
        "POST",
        "/api/v1/event-type",
        Some(
            r##"{"name": "user.created", "description": "d", "schemas": {"1": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {"id": {"type": "string", "pattern": "^u_"}},
                "type": "object", "properties": {"id": {"$ref": "#/definitions/id"}}}}}"##,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(post_msg(&h, "user.created", r#"{"id": "u_1"}"#).status, 202);
    let p = problems(&post_msg(&h, "user.created", r#"{"id": "x"}"#));
    assert_eq!(p[0].0, ["body", "payload", "id"]);
}

#[test]
fn enforcement_off_lets_any_payload_through() {
    let h = start_schemas(false);
    for payload in [
        "{}",
        r#"{"invoiceId": 7, "amount": "lots"}"#,
        r#"{"lines": [{"qty": 1}]}"#,
    ] {
        let r = post_msg(&h, "invoice.paid", payload);
        assert_eq!(r.status, 202, "{payload}: {}", r.body);
    }
    // Invalid schemas are refused even so: turning enforcement on later must find none.
    let r = h.admin(
        "PATCH",
        "/api/v1/event-type/invoice.paid",
        Some(r#"{"schemas": {"1": {"type": 5}}}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}
