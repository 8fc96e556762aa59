//! `GET /api/v1/openapi.json`: hookd's own OpenAPI 3.1 document of the routes it serves.
//!
//! The paths and methods come from the router's table ([`Route::ALL`], each route's pattern
//! and methods), so the document cannot list a route that is not served or miss one that is;
//! each operation's parameters, body and answers are written here beside the JSON shapes of
//! [`super::models`] and the handlers. `tests/openapi.rs` checks the document against the
//! running server, and runs `schemathesis` with it (no 5xx, every answer as documented).
//! Built once, on first request.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::Route;

/// The document, serialized once.
pub fn document() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_vec(&build()).unwrap_or_default())
}

/// The path of a route in the document: its pattern under `/api/v1/`.
fn path_of(route: Route) -> String {
    format!("/api/v1/{}", route.pattern())
}

fn build() -> Value {
    let mut paths = Map::new();
    for &route in Route::ALL {
        let mut item = Map::new();
        for &method in route.allowed() {
            if method == "HEAD" {
                // Every GET also answers HEAD; documenting both doubles the test run for nothing.
                continue;
            }
            let mut op = operation(route, method);
            let mut params = path_params(route);
            if let Some(Value::Array(extra)) = op.get_mut("parameters").map(Value::take) {
                params.extend(extra);
            }
            if !params.is_empty() {
                op["parameters"] = Value::Array(params);
            }
            item.insert(method.to_ascii_lowercase(), op);
        }
        paths.insert(path_of(route), Value::Object(item));
    }
    paths.insert(
        "/ingest/{source_name}".into(),
        json!({ "post": ingest_operation() }),
    );
    paths.insert("/metrics".into(), json!({ "get": metrics_operation() }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hookd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "hookd's management and ingest API: the Svix v1 REST API (paths, JSON \
                field names, status codes, pagination) as hookd serves it, plus hookd's \
                extensions (inbound sources, the audit trail, /metrics).",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "HTTPBearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "HTTPBearer": { "type": "http", "scheme": "bearer" },
            },
            "schemas": schemas(),
        },
    })
}

/// The path parameters of a route, from the `{name}` segments of its pattern.
fn path_params(route: Route) -> Vec<Value> {
    route
        .pattern()
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "event_type_name" {
                name_schema()
            } else {
                json!({ "type": "string", "minLength": 1, "maxLength": 256 })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect()
}

fn name_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[a-zA-Z0-9\\-_.]+$" })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": json_content(schema_ref(name)) })
}

fn answer(description: &str, schema: Option<Value>) -> Value {
    match schema {
        Some(s) => json!({ "description": description, "content": json_content(s) }),
        None => json!({ "description": description }),
    }
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema,
            "description": description })
}

fn bool_query(name: &str, description: &str) -> Value {
    query(name, json!({ "type": "boolean" }), description)
}

fn time_query(name: &str, description: &str) -> Value {
    query(
        name,
        json!({ "type": "string", "format": "date-time" }),
        description,
    )
}

/// `limit`, `iterator` and `order` of every list.
fn paging() -> Vec<Value> {
    vec![
        query(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": super::list::LIMIT_MAX }),
            "items per page (default 50)",
        ),
        query(
            "iterator",
            json!({ "type": ["string", "null"], "maxLength": 512 }),
            "`iterator` of the previous page, or its `prevIterator` to page back",
        ),
        query(
            "order",
            json!({ "type": "string", "enum": ["ascending", "descending"] }),
            "the list's order",
        ),
    ]
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "done", "iterator"],
        "properties": {
            "data": { "type": "array", "items": schema_ref(item) },
            "iterator": { "type": ["string", "null"] },
            "prevIterator": { "type": ["string", "null"] },
            "done": { "type": "boolean" },
        },
    })
}

/// What a route answers besides its success: the errors every route may give, and those of
/// writes.
fn errors(write: bool) -> Vec<(&'static str, Value)> {
    let err = || Some(schema_ref("HttpError"));
    let mut out = vec![
        ("400", answer("bad request or invalid range", err())),
        ("401", answer("no or unknown API token", err())),
        ("403", answer("the token may not do this", err())),
        ("404", answer("not found", err())),
        (
            "422",
            answer(
                "invalid body or query, each problem located",
                Some(schema_ref("HTTPValidationError")),
            ),
        ),
        ("414", answer("request target too long", err())),
        ("429", answer("rate limited; see Retry-After", err())),
        ("431", answer("request headers too large", err())),
    ];
    if write {
        out.extend([
            ("409", answer("conflict with the current state", err())),
            ("413", answer("body too large", err())),
            ("507", answer("out of disk space", err())),
        ]);
    }
    out
}

/// An operation: its id, summary, tag, extra parameters, body and success answers.
struct Op {
    id: &'static str,
    summary: &'static str,
    tag: &'static str,
    params: Vec<Value>,
    body: Option<&'static str>,
    ok: Vec<(&'static str, Value)>,
}

impl Op {
    fn new(id: &'static str, summary: &'static str, tag: &'static str) -> Self {
        Self {
            id,
            summary,
            tag,
            params: Vec::new(),
            body: None,
            ok: Vec::new(),
        }
    }
    fn params(mut self, p: Vec<Value>) -> Self {
        self.params.extend(p);
        self
    }
    fn body(mut self, name: &'static str) -> Self {
        self.body = Some(name);
        self
    }
    fn ok(mut self, status: &'static str, schema: Option<Value>) -> Self {
        let what = if schema.is_some() {
            "done"
        } else {
            "done, no body"
        };
        self.ok.push((status, answer(what, schema)));
        self
    }
    fn into_value(self, write: bool) -> Value {
        let mut responses = Map::new();
        for (status, v) in self.ok.into_iter().chain(errors(write)) {
            responses.insert(status.into(), v);
        }
        let mut op = json!({
            "operationId": self.id,
            "summary": self.summary,
            "tags": [self.tag],
            "responses": responses,
        });
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(b) = self.body {
            op["requestBody"] = body(b);
        }
        op
    }
}

fn idempotency_key() -> Value {
    json!({ "name": "idempotency-key", "in": "header", "required": false,
            "schema": { "type": "string", "maxLength": 256 },
            "description": "a retry with the same key gets the first answer back" })
}

/// The operation of `route` and `method` (upper case, never `HEAD`).
fn operation(route: Route, method: &str) -> Value {
    use Route::*;
    let r = |s: &str| Some(schema_ref(s));
    let list = |s: &str| Some(list_of(s));
    let op = match (route, method) {
        (Health, _) => {
            return json!({
                "operationId": "v1.health.get",
                "summary": "Liveness of every part of hookd",
                "tags": ["Health"],
                "security": [],
                "responses": {
                    "204": answer("healthy", None),
                    "503": answer("a part of hookd stopped", r("HttpError")),
                },
            })
        }
        (HealthPing, _) => {
            return json!({
                "operationId": "v1.health.ping",
                "summary": "This server answers HTTP",
                "tags": ["Health"],
                "security": [],
                "responses": { "204": answer("alive", None) },
            })
        }
        (OpenApi, _) => {
            return json!({
                "operationId": "v1.openapi.get",
                "summary": "This document",
                "tags": ["Health"],
                "security": [],
                "responses": { "200": answer("the OpenAPI document", Some(json!({ "type": "object" }))) },
            })
        }
        (Apps, "GET") => Op::new("v1.application.list", "List applications", "Application")
            .params(paging())
            .ok("200", list("ApplicationOut")),
        (Apps, _) => Op::new(
            "v1.application.create",
            "Create an application",
            "Application",
        )
        .params(vec![
            bool_query(
                "get_if_exists",
                "answer the existing application with this uid (200) instead of 409",
            ),
            idempotency_key(),
        ])
        .body("ApplicationIn")
        .ok("200", r("ApplicationOut"))
        .ok("201", r("ApplicationOut")),
        (App, "GET") => Op::new("v1.application.get", "Get an application", "Application")
            .ok("200", r("ApplicationOut")),
        (App, "PUT") => Op::new(
            "v1.application.update",
            "Update (or create) an application",
            "Application",
        )
        .body("ApplicationIn")
        .ok("200", r("ApplicationOut"))
        .ok("201", r("ApplicationOut")),
        (App, "PATCH") => Op::new(
            "v1.application.patch",
            "Patch an application",
            "Application",
        )
        .body("ApplicationPatch")
        .ok("200", r("ApplicationOut")),
        (App, _) => Op::new(
            "v1.application.delete",
            "Delete an application",
            "Application",
        )
        .ok("204", None),
        (Endpoints, "GET") => Op::new("v1.endpoint.list", "List endpoints", "Endpoint")
            .params(paging())
            .ok("200", list("EndpointOut")),
        (Endpoints, _) => Op::new("v1.endpoint.create", "Create an endpoint", "Endpoint")
            .params(vec![idempotency_key()])
            .body("EndpointIn")
            .ok("201", r("EndpointOut")),
        (Endpoint, "GET") => {
            Op::new("v1.endpoint.get", "Get an endpoint", "Endpoint").ok("200", r("EndpointOut"))
        }
        (Endpoint, "PUT") => Op::new(
            "v1.endpoint.update",
            "Update (or create) an endpoint",
            "Endpoint",
        )
        .body("EndpointIn")
        .ok("200", r("EndpointOut"))
        .ok("201", r("EndpointOut")),
        (Endpoint, "PATCH") => Op::new("v1.endpoint.patch", "Patch an endpoint", "Endpoint")
            .body("EndpointPatch")
            .ok("200", r("EndpointOut")),
        (Endpoint, _) => {
            Op::new("v1.endpoint.delete", "Delete an endpoint", "Endpoint").ok("204", None)
        }
        (EndpointSecret, _) => Op::new(
            "v1.endpoint.get-secret",
            "The endpoint's signing secret (whsec_, or whpk_ for an ed25519 key)",
            "Endpoint",
        )
        .ok("200", r("EndpointSecretOut")),
        (EndpointSecretRotate, _) => Op::new(
            "v1.endpoint.rotate-secret",
            "Rotate the signing secret; the old one signs too for a day",
            "Endpoint",
        )
        .params(vec![idempotency_key()])
        .body("EndpointSecretRotateIn")
        .ok("200", r("EndpointSecretOut")),
        (EndpointHeaders, "GET") => Op::new(
            "v1.endpoint.get-headers",
            "The endpoint's custom headers",
            "Endpoint",
        )
        .ok("200", r("EndpointHeadersOut")),
        (EndpointHeaders, "PUT") => Op::new(
            "v1.endpoint.update-headers",
            "Replace the endpoint's custom headers",
            "Endpoint",
        )
        .body("EndpointHeadersIn")
        .ok("204", None),
        (EndpointHeaders, _) => Op::new(
            "v1.endpoint.patch-headers",
            "Merge into the endpoint's custom headers",
            "Endpoint",
        )
        .body("EndpointHeadersPatchIn")
        .ok("204", None),
        (EndpointStats, _) => Op::new(
            "v1.endpoint.get-stats",
            "Deliveries to the endpoint by status",
            "Endpoint",
        )
        .params(vec![
            time_query("since", "from (default: 28 days before until)"),
            time_query("until", "to (default: now)"),
        ])
        .ok("200", r("EndpointStats")),
        (EndpointRecover, _) => Op::new(
            "v1.endpoint.recover",
            "Resend the endpoint's failed messages of a time window",
            "Endpoint",
        )
        .params(vec![idempotency_key()])
        .body("RecoverIn")
        .ok("202", r("TaskOut")),
        (EndpointReplayMissing, _) => Op::new(
            "v1.endpoint.replay-missing",
            "Send the endpoint the messages of a window it never got",
            "Endpoint",
        )
        .params(vec![idempotency_key()])
        .body("RecoverIn")
        .ok("202", r("TaskOut")),
        (EndpointMessages, _) => Op::new(
            "v1.message-attempt.list-attempted-messages",
            "Messages sent (or to be sent) to the endpoint, with their status there",
            "Message Attempt",
        )
        .params(paging())
        .params(message_filters())
        .params(vec![status_query()])
        .ok("200", list("EndpointMessageOut")),
        (EndpointSendExample, _) => Op::new(
            "v1.endpoint.send-example",
            "Send the event type's example payload to the endpoint",
            "Endpoint",
        )
        .params(vec![idempotency_key()])
        .body("EventExampleIn")
        .ok("200", r("MessageOut")),
        (EndpointFilterTest, _) => Op::new(
            "hookd.endpoint.filter-test",
            "Whether the endpoint's payload filter lets a payload through",
            "Endpoint",
        )
        .body("EndpointFilterTestIn")
        .ok("200", r("FilterTestOut")),
        (EndpointBulkReplay, _) => Op::new(
            "hookd.endpoint.bulk-replay",
            "Send the endpoint's deliveries matching a window and filters again (background)",
            "Endpoint",
        )
        .params(vec![idempotency_key()])
        .body("BulkReplayIn")
        .ok("202", r("BulkReplayOut")),
        (EndpointBulkReplayTask, _) => Op::new(
            "hookd.endpoint.bulk-replay-get",
            "A bulk replay's progress",
            "Endpoint",
        )
        .ok("200", r("BulkReplayOut")),
        (FilterTest, _) => Op::new(
            "hookd.filter.test",
            "Whether a payload filter lets a payload through",
            "Endpoint",
        )
        .body("FilterTestIn")
        .ok("200", r("FilterTestOut")),
        (MessageResend, _) => Op::new(
            "v1.message-attempt.resend",
            "Send a message to an endpoint once more",
            "Message Attempt",
        )
        .params(vec![idempotency_key()])
        .ok("202", Some(json!({ "type": "object" }))),
        (EventTypes, "GET") => Op::new("v1.event-type.list", "List event types", "Event Type")
            .params(paging())
            .params(vec![
                bool_query("include_archived", "list archived event types too"),
                bool_query("with_content", "include the schemas (default true)"),
            ])
            .ok("200", list("EventTypeOut")),
        (EventTypes, _) => Op::new("v1.event-type.create", "Create an event type", "Event Type")
            .params(vec![idempotency_key()])
            .body("EventTypeIn")
            .ok("201", r("EventTypeOut")),
        (EventType, "GET") => Op::new("v1.event-type.get", "Get an event type", "Event Type")
            .ok("200", r("EventTypeOut")),
        (EventType, "PUT") => Op::new(
            "v1.event-type.update",
            "Update (or create) an event type",
            "Event Type",
        )
        .body("EventTypeUpdate")
        .ok("200", r("EventTypeOut"))
        .ok("201", r("EventTypeOut")),
        (EventType, "PATCH") => Op::new("v1.event-type.patch", "Patch an event type", "Event Type")
            .body("EventTypePatch")
            .ok("200", r("EventTypeOut")),
        (EventType, _) => Op::new(
            "v1.event-type.delete",
            "Archive an event type (or delete it, with expunge)",
            "Event Type",
        )
        .params(vec![bool_query(
            "expunge",
            "delete it instead of archiving",
        )])
        .ok("204", None),
        (Messages, "GET") => Op::new(
            "v1.message.list",
            "List an application's messages",
            "Message",
        )
        .params(paging())
        .params(message_filters())
        .ok("200", list("MessageOut")),
        (Messages, _) => Op::new(
            "v1.message.create",
            "Create a message: stored durably, then sent to every subscribed endpoint",
            "Message",
        )
        .params(vec![
            bool_query("with_content", "answer with the payload (default true)"),
            idempotency_key(),
        ])
        .body("MessageIn")
        .ok("202", r("MessageOut")),
        (MessageBatch, "GET") => Op::new(
            "hookd.message.get-batch-named",
            "Get the message whose eventId is \"batch\" (the batch route's path)",
            "Message",
        )
        .ok("200", r("MessageOut")),
        (MessageBatch, _) => Op::new(
            "hookd.message.create-batch",
            "Create up to ingest.batch_max messages under one group commit",
            "Message",
        )
        .params(vec![
            bool_query("with_content", "answer with the payloads (default true)"),
            idempotency_key(),
        ])
        .body("MessageBatchIn")
        .ok("202", r("MessageBatchOut")),
        (Message, _) => Op::new("v1.message.get", "Get a message", "Message")
            .params(vec![bool_query(
                "with_content",
                "include the payload (default true)",
            )])
            .ok("200", r("MessageOut")),
        (MessageContent, _) => Op::new(
            "v1.message.expunge-content",
            "Expunge a message's payload: shown as {\"expired\":true} and never sent again",
            "Message",
        )
        .ok("204", None),
        (MessageEndpoints, _) => Op::new(
            "v1.message-attempt.list-attempted-destinations",
            "The endpoints a message is (or was) sent to, with its status at each",
            "Message Attempt",
        )
        .params(paging())
        .ok("200", list("MessageEndpointOut")),
        (MessageAttempt, _) => Op::new(
            "v1.message-attempt.get",
            "Get one delivery attempt",
            "Message Attempt",
        )
        .ok("200", r("MessageAttemptOut")),
        (MessageAttemptContent, _) => Op::new(
            "v1.message-attempt.expunge-content",
            "Forget the response body kept for an attempt",
            "Message Attempt",
        )
        .ok("204", None),
        (AttemptsByMessage, _) => Op::new(
            "v1.message-attempt.list-by-msg",
            "A message's attempts, newest first",
            "Message Attempt",
        )
        .params(paging())
        .params(vec![
            status_query(),
            query(
                "endpoint_id",
                json!({ "type": "string" }),
                "only attempts to this endpoint",
            ),
        ])
        .ok("200", list("MessageAttemptOut")),
        (AttemptsByEndpoint, _) => Op::new(
            "v1.message-attempt.list-by-endpoint",
            "An endpoint's attempts, newest first",
            "Message Attempt",
        )
        .params(paging())
        .params(vec![status_query()])
        .ok("200", list("MessageAttemptOut")),
        (Sources, _) => Op::new(
            "hookd.source.list",
            "The configured inbound sources (admin)",
            "Inbound Source",
        )
        .ok("200", list("SourceOut")),
        (Audit, _) => Op::new(
            "hookd.audit.list",
            "The audit trail of management writes, newest first (admin)",
            "Audit",
        )
        .params(paging())
        .ok("200", list("AuditOut")),
        (PortalAccess, _) => Op::new(
            "v1.authentication.app-portal-access",
            "A token and URL for the app portal of one application (admin)",
            "Authentication",
        )
        .params(vec![idempotency_key()])
        .body("AppPortalAccessIn")
        .ok("200", r("AppPortalAccessOut")),
        (Logout, _) => Op::new(
            "v1.authentication.logout",
            "Revoke the app portal token this request carries",
            "Authentication",
        )
        .params(vec![idempotency_key()])
        .ok("204", None),
        (ExpireAll, _) => Op::new(
            "v1.authentication.expire-all",
            "Expire an application's portal tokens, now or after a delay (admin)",
            "Authentication",
        )
        .params(vec![idempotency_key()])
        .body("ApplicationTokenExpireIn")
        .ok("204", None),
        (PortalSession, _) => Op::new(
            "hookd.authentication.session",
            "Who the request's token is (for a portal token: its app, capabilities, expiry)",
            "Authentication",
        )
        .ok("200", r("SessionOut")),
    };
    op.into_value(method != "GET")
}

fn status_query() -> Value {
    query(
        "status",
        json!({ "type": "integer", "minimum": 0, "maximum": 4 }),
        "0 success, 1 pending, 2 fail, 3 sending",
    )
}

fn message_filters() -> Vec<Value> {
    vec![
        query(
            "event_types",
            json!({ "type": "array", "items": { "type": "string" } }),
            "only these event types",
        ),
        query("channel", json!({ "type": "string" }), "only this channel"),
        time_query("before", "created before"),
        time_query("after", "created after"),
        bool_query("with_content", "include the payloads (default true)"),
    ]
}

fn ingest_operation() -> Value {
    json!({
        "operationId": "hookd.source.ingest",
        "summary": "An inbound webhook for a configured source, authenticated by the \
            source's own signature scheme (no API token)",
        "tags": ["Inbound Source"],
        "security": [],
        "parameters": [{ "name": "source_name", "in": "path", "required": true,
                         "schema": { "type": "string" } }],
        "requestBody": { "required": true,
                         "content": { "application/json": { "schema": {} } } },
        "responses": {
            "200": answer("a repeated delivery id: the first answer", Some(schema_ref("MessageOut"))),
            "202": answer("stored", Some(schema_ref("MessageOut"))),
            "400": answer("bad request", Some(schema_ref("HttpError"))),
            "401": answer("the signature does not verify", Some(schema_ref("HttpError"))),
            "404": answer("no such source", Some(schema_ref("HttpError"))),
            "405": answer("not a POST", Some(schema_ref("HttpError"))),
            "413": answer("body too large", Some(schema_ref("HttpError"))),
            "422": answer("invalid body", Some(schema_ref("HTTPValidationError"))),
            "429": answer("rate limited", Some(schema_ref("HttpError"))),
            "507": answer("out of disk space", Some(schema_ref("HttpError"))),
        },
    })
}

fn metrics_operation() -> Value {
    json!({
        "operationId": "hookd.metrics",
        "summary": "Prometheus metrics (a read token unless metrics.public)",
        "tags": ["Health"],
        "responses": {
            "200": { "description": "Prometheus text format",
                     "content": { "text/plain": { "schema": { "type": "string" } } } },
            "401": answer("no or unknown API token", Some(schema_ref("HttpError"))),
            "403": answer("the token may not read", Some(schema_ref("HttpError"))),
        },
    })
}

/// hookd extension: a payload filter (README, "Payload filters").
fn filter_in() -> Value {
    json!({
        "type": ["object", "null"],
        "description": "hookd extension: the payload filter; null removes it",
    })
}

/// hookd extension: signature headers in other providers' schemes, for a migration.
fn legacy_in() -> Value {
    json!({
        "type": ["array", "null"],
        "maxItems": crate::model::legacy::LEGACY_SIGNATURES_MAX,
        "description": "hookd extension: extra signature headers in another provider's scheme",
        "items": {
            "type": "object",
            "required": ["scheme", "secret"],
            "additionalProperties": false,
            "properties": {
                "scheme": { "type": "string", "enum": ["github", "stripe", "hmac-sha256"] },
                "secret": { "type": "string", "minLength": 1, "maxLength": 256 },
                "header": { "type": "string", "description": "hmac-sha256 only" },
                "encoding": { "type": "string", "enum": ["hex", "base64"] },
                "prefix": { "type": "string", "maxLength": 32 },
            },
        },
    })
}

fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" } })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The JSON shapes, as `super::models` and the handlers read and write them.
fn schemas() -> Value {
    let uid = json!({ "type": ["string", "null"], "minLength": 1, "maxLength": 256,
                      "pattern": "^[a-zA-Z0-9\\-_.]+$" });
    let rate = json!({ "type": ["integer", "null"], "minimum": 0, "maximum": 65535 });
    let names = json!({ "type": ["array", "null"], "items": name_schema() });
    let channels = json!({ "type": ["array", "null"], "items": { "type": "string" } });
    let time = json!({ "type": "string", "format": "date-time" });
    let status = json!({ "type": "integer", "enum": [0, 1, 2, 3] });
    let status_text =
        json!({ "type": "string", "enum": ["success", "pending", "fail", "sending"] });
    let ordering = json!({ "type": "string", "enum": ["none", "fifo"],
                           "description": "hookd extension: fifo delivers one message per orderingKey at a time, in order" });
    let ordering_in = json!({ "type": ["string", "null"], "enum": ["none", "fifo", null] });
    let endpoint_out = json!({
        "id": { "type": "string" }, "uid": nullable("string"), "url": { "type": "string" },
        "description": { "type": "string" }, "version": { "type": "integer" },
        "throttleRate": nullable("integer"), "rateLimit": nullable("integer"),
        "disabled": { "type": "boolean" }, "filterTypes": channels, "eventTypes": channels,
        "channels": channels, "metadata": string_map(), "createdAt": time, "updatedAt": time,
        "filter": { "type": "object" }, "ordering": ordering.clone(),
        "legacySignatures": { "type": "array", "items": object(&["scheme", "header", "encoding", "prefix"], json!({
            "scheme": { "type": "string", "enum": ["github", "stripe", "hmac-sha256"] },
            "header": { "type": "string" },
            "encoding": { "type": "string", "enum": ["hex", "base64"] },
            "prefix": { "type": "string" },
        })) },
    });
    let message_out = json!({
        "id": { "type": "string" }, "eventType": { "type": "string" },
        "eventId": nullable("string"), "payload": { "type": "object" },
        "channels": channels, "tags": channels, "timestamp": time,
        "orderingKey": { "type": "string" },
    });
    let with_status = |mut props: Value| {
        props["status"] = status.clone();
        props["statusText"] = status_text.clone();
        props["nextAttempt"] = json!({ "type": ["string", "null"], "format": "date-time" });
        props
    };
    let shapes = json!({
        "HttpError": object(&["code", "detail"], json!({
            "code": { "type": "string" }, "detail": { "type": "string" },
        })),
        "HTTPValidationError": object(&["detail"], json!({
            "detail": { "type": "array", "items": object(&["loc", "msg", "type"], json!({
                "loc": { "type": "array", "items": { "type": ["string", "integer"] } },
                "msg": { "type": "string" },
                "type": { "type": "string" },
            })) },
        })),
        "ApplicationIn": object(&["name"], json!({
            "name": { "type": "string", "minLength": 1 }, "uid": uid,
            "throttleRate": rate, "metadata": string_map(),
        })),
        "AppPortalAccessIn": object(&[], json!({
            "application": { "anyOf": [schema_ref("ApplicationIn"), { "type": "null" }] },
            "expiry": { "type": ["integer", "null"], "minimum": 1,
                        "description": "seconds; default and maximum: portal.token_expiry_max" },
            "readOnly": { "type": ["boolean", "null"] },
            "capabilities": { "type": ["array", "null"], "items": { "type": "string", "enum": [
                "ViewBase", "ViewEndpointSecret", "ManageEndpointSecret",
                "ManageTransformations", "CreateAttempts", "ManageEndpoint"] } },
            "sessionId": { "type": ["string", "null"], "minLength": 1, "maxLength": 256 },
            "featureFlags": { "type": "array", "items": { "type": "string" } },
        })),
        "AppPortalAccessOut": object(&["url", "token"], json!({
            "url": { "type": "string" }, "token": { "type": "string" },
        })),
        "ApplicationTokenExpireIn": object(&[], json!({
            "expiry": { "type": ["integer", "null"], "minimum": 0 },
            "sessionIds": { "type": ["array", "null"], "items": { "type": "string" }, "maxItems": 100 },
        })),
        "SessionOut": object(&["kind"], json!({
            "kind": { "type": "string", "enum": ["portal", "token"] },
            "name": { "type": "string" }, "appId": { "type": "string" },
            "capabilities": { "type": "array", "items": { "type": "string" } },
            "readOnly": { "type": "boolean" }, "expiresAt": time,
            "sessionId": nullable("string"),
        })),
        "ApplicationPatch": object(&[], json!({
            "name": { "type": "string", "minLength": 1 }, "uid": uid,
            "throttleRate": rate, "metadata": string_map(),
        })),
        "ApplicationOut": object(&["id", "name", "metadata", "createdAt", "updatedAt"], json!({
            "id": { "type": "string" }, "uid": nullable("string"), "name": { "type": "string" },
            "throttleRate": nullable("integer"), "rateLimit": nullable("integer"),
            "metadata": string_map(), "createdAt": time, "updatedAt": time,
        })),
        "EndpointIn": object(&["url"], json!({
            "url": { "type": "string", "format": "uri", "minLength": 1, "maxLength": 65536 },
            "description": { "type": "string" }, "uid": uid, "throttleRate": rate,
            "disabled": { "type": "boolean" }, "filterTypes": names, "channels": channels,
            "secret": { "type": ["string", "null"],
                        "description": "whsec_ + base64 of 24 to 64 bytes, or whsk_ + an ed25519 key" },
            "metadata": string_map(), "headers": string_map(),
            "legacySignatures": legacy_in(), "filter": filter_in(), "ordering": ordering_in.clone(),
        })),
        "EndpointPatch": object(&[], json!({
            "url": { "type": "string", "format": "uri", "minLength": 1, "maxLength": 65536 },
            "description": { "type": "string" }, "uid": uid, "throttleRate": rate,
            "disabled": { "type": "boolean" }, "filterTypes": names, "channels": channels,
            "metadata": string_map(), "legacySignatures": legacy_in(), "filter": filter_in(),
            "ordering": ordering_in,
        })),
        "EndpointOut": object(&["id", "url", "description", "version", "disabled", "metadata",
                                "createdAt", "updatedAt"], endpoint_out.clone()),
        "MessageEndpointOut": object(&["id", "url", "status", "statusText"],
                                     with_status(endpoint_out)),
        "EndpointSecretOut": object(&["key"], json!({ "key": { "type": "string" } })),
        "EndpointSecretRotateIn": object(&[], json!({ "key": { "type": ["string", "null"] } })),
        "EndpointHeadersOut": object(&["headers", "sensitive"], json!({
            "headers": string_map(), "sensitive": { "type": "array", "items": { "type": "string" } },
        })),
        "EndpointHeadersIn": object(&["headers"], json!({ "headers": string_map() })),
        "EndpointHeadersPatchIn": object(&["headers"], json!({
            "headers": string_map(),
            "deleteHeaders": { "type": "array", "items": { "type": "string" } },
        })),
        "EndpointStats": object(&["success", "pending", "fail", "sending"], json!({
            "success": { "type": "integer" }, "pending": { "type": "integer" },
            "fail": { "type": "integer" }, "sending": { "type": "integer" },
            "canceled": { "type": "integer" },
            "fifo": object(&["blockedHeads", "more"], json!({
                "blockedHeads": { "type": "array", "items": object(&["msgId", "attempts", "waitingBehind"], json!({
                    "msgId": { "type": "string" }, "orderingKey": nullable("string"),
                    "attempts": { "type": "integer" }, "lastStatusCode": nullable("integer"),
                    "nextAttempt": { "type": ["string", "null"], "format": "date-time" },
                    "waitingBehind": { "type": "integer" },
                })) },
                "more": { "type": "boolean" },
            })),
        })),
        "RecoverIn": object(&["since"], json!({
            "since": time, "until": { "type": ["string", "null"], "format": "date-time" },
        })),
        "TaskOut": object(&["id", "status", "task", "updatedAt"], json!({
            "id": { "type": "string" }, "status": { "type": "string" },
            "task": { "type": "string" }, "updatedAt": time,
        })),
    });
    let more = json!({
        "FilterTestIn": object(&["filter", "payload"], json!({
            "filter": { "type": "object" }, "payload": {},
        })),
        "MessageBatchIn": { "type": "array", "minItems": 1, "items": schema_ref("MessageIn") },
        "MessageBatchOut": { "type": "array", "items": object(&["status", "body"], json!({
            "status": { "type": "integer" },
            "body": { "anyOf": [schema_ref("MessageOut"), schema_ref("HttpError"),
                                schema_ref("HTTPValidationError")] },
        })) },
        "BulkReplayIn": object(&["since"], json!({
            "since": { "type": "string", "format": "date-time" },
            "until": { "type": ["string", "null"], "format": "date-time" },
            "eventTypes": { "type": ["array", "null"], "items": { "type": "string" } },
            "channel": { "type": ["string", "null"] },
            "status": { "type": ["integer", "null"], "enum": [0, 1, 2, 3, null] },
            "statusCodeClass": { "type": ["integer", "null"], "enum": [0, 100, 200, 300, 400, 500, null] },
        })),
        "BulkReplayOut": object(&["id", "status", "task", "matched", "queued", "done", "updatedAt"], json!({
            "id": { "type": "string" }, "endpointId": { "type": "string" },
            "status": { "type": "string", "enum": ["running", "finished", "failed"] },
            "task": { "type": "string" }, "matched": { "type": "integer" },
            "queued": { "type": "integer" }, "done": { "type": "boolean" },
            "updatedAt": { "type": "string", "format": "date-time" },
        })),
        "EndpointFilterTestIn": object(&["payload"], json!({ "payload": {} })),
        "FilterTestOut": object(&["matches"], json!({ "matches": { "type": "boolean" } })),
        "EventExampleIn": object(&["eventType"], json!({ "eventType": name_schema() })),
        "EventTypeIn": object(&["name"], json!({
            "name": name_schema(), "description": { "type": "string" },
            "archived": { "type": "boolean" }, "deprecated": { "type": "boolean" },
            "schemas": { "type": ["object", "null"] },
            "featureFlags": { "type": "array", "items": name_schema() },
        })),
        "EventTypeUpdate": object(&[], json!({
            "description": { "type": "string" }, "archived": { "type": "boolean" },
            "deprecated": { "type": "boolean" }, "schemas": { "type": ["object", "null"] },
            "featureFlags": { "type": "array", "items": name_schema() },
        })),
        "EventTypePatch": object(&[], json!({
            "description": { "type": "string" }, "archived": { "type": "boolean" },
            "deprecated": { "type": "boolean" }, "schemas": { "type": ["object", "null"] },
            "featureFlags": { "type": "array", "items": name_schema() },
        })),
        "EventTypeOut": object(&["name", "description", "archived", "deprecated",
                                 "createdAt", "updatedAt"], json!({
            "name": { "type": "string" }, "description": { "type": "string" },
            "archived": { "type": "boolean" }, "deprecated": { "type": "boolean" },
            "schemas": { "type": ["object", "null"] },
            "featureFlags": { "type": "array", "items": { "type": "string" } },
            "featureFlag": nullable("string"), "createdAt": time, "updatedAt": time,
        })),
        "MessageIn": object(&["eventType", "payload"], json!({
            "eventType": name_schema(), "payload": { "type": "object" },
            "eventId": uid, "channels": channels,
            "tags": { "type": "array", "items": { "type": "string" } },
            "application": { "anyOf": [schema_ref("ApplicationIn"), { "type": "null" }] },
            "orderingKey": { "type": ["string", "null"], "minLength": 1, "maxLength": 128,
                             "description": "hookd extension: the lane of an ordered endpoint" },
        })),
        "MessageOut": object(&["id", "eventType", "payload", "timestamp"], message_out.clone()),
        "EndpointMessageOut": object(&["id", "eventType", "payload", "timestamp", "status",
                                       "statusText"], with_status(message_out)),
        "MessageAttemptOut": object(&["id", "msgId", "endpointId", "url", "response",
                                      "responseStatusCode", "status", "triggerType",
                                      "timestamp"], json!({
            "id": { "type": "string" }, "msgId": { "type": "string" },
            "endpointId": { "type": "string" }, "url": { "type": "string" },
            "response": { "type": "string" }, "responseStatusCode": { "type": "integer" },
            "responseDurationMs": { "type": "integer" }, "status": status,
            "statusText": status_text, "triggerType": { "type": "integer", "enum": [0, 1] },
            "timestamp": time,
        })),
        "SourceOut": { "type": "object", "required": ["name"],
                       "properties": { "name": { "type": "string" } } },
        "AuditOut": object(&["id", "tokenName", "action", "target", "timestamp"], json!({
            "id": { "type": "string" }, "tokenName": { "type": "string" },
            "action": { "type": "string" }, "target": { "type": "string" }, "timestamp": time,
        })),
    });
    // Two objects, as one `json!` this size passes the macro's recursion limit.
    let mut all = Map::new();
    for part in [shapes, more] {
        if let Value::Object(m) = part {
            all.extend(m);
        }
    }
    Value::Object(all)
}
