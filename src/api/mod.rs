//! The management and ingest API: Svix v1 paths, JSON shapes and status codes (api.md §1).
//!
//! [`Api`] is the [`Handler`] each shard runs. It routes by path, checks the token for what the
//! route needs, replays `Idempotency-Key` answers, and calls one function per route in the
//! resource modules. Every management write is audited and flushed to the index before it is
//! answered. `POST /ingest/{source}` (inbound webhooks, `sources.rs`) takes no API token: the
//! source's own scheme authenticates it.

mod apps;
mod attempts;
mod audit;
pub mod background;
mod bulk_replay;
pub(crate) mod endpoints;
pub mod error;
mod event_types;
pub mod input;
pub mod list;
pub mod messages;
// Public only for the fuzz targets (fuzz/src/api_json.rs), which parse every input body.
#[doc(hidden)]
pub mod models;
mod openapi;
mod portal;
mod replay;
mod sources;

use std::sync::Arc;

use crate::{
    auth::{Denied, Need, Token},
    deliver::Queues,
    http::{Handler, Method, Request, Response},
    ingest::Ingest,
    service::Service,
};
use error::{ApiError, ApiResult};
use input::{percent_decode, Query};
use storage::{
    state::{AppRecord, AuditRecord, IdempotencyRecord},
    LocalWaiters,
};

/// The API of one shard.
#[derive(Clone)]
pub struct Api {
    svc: Arc<Service>,
    ingest: Arc<Ingest>,
    queues: Queues,
    durable: LocalWaiters,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// The API over the shared service. Call it on the shard's runtime: it starts the task that
    /// wakes this shard's requests waiting for the durable watermark, one cross-thread wake per
    /// flush instead of one per request.
    pub fn new(svc: Arc<Service>, ingest: Arc<Ingest>, queues: Queues) -> Self {
        let durable = LocalWaiters::new(svc.store.log().durable().subscribe());
        monoio::spawn(durable.clone().pump());
        Self {
            svc,
            ingest,
            queues,
            durable,
        }
    }
}

impl Handler for Api {
    async fn handle(&self, req: Request) -> Response {
        let family = family(req.path());
        let result = if family == "metrics" {
            self.metrics(&req)
        } else if let Some(source) = req.path().strip_prefix("/ingest/") {
            sources::ingest(&self.ingest, &self.durable, &req, source).await
        } else {
            self.route(&req).await
        };
        let resp = result.unwrap_or_else(ApiError::into_response);
        self.svc.metrics.request(family, resp.status);
        resp
    }
}

/// The route family of a path, for request counters (a fixed, small set).
pub fn family(path: &str) -> &'static str {
    if path == "/metrics" {
        return "metrics";
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return "other";
    };
    let mut segs = rest.split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("health"), ..) => "health",
        (Some("event-type"), ..) => "event_type",
        (Some("app"), Some(_), Some("endpoint")) => "endpoint",
        (Some("app"), Some(_), Some("msg")) => "message",
        (Some("app"), Some(_), Some("attempt")) => "attempt",
        (Some("app"), ..) => "app",
        _ => "other",
    }
}

/// What a handler gets: the request, its query, the service, and who asked.
pub struct Ctx<'a> {
    pub svc: &'a Arc<Service>,
    /// The write path of messages.
    pub ingest: &'a Ingest,
    pub req: &'a Request,
    pub query: Query,
    pub token: &'a Token,
    /// For ingest routes: the path's app, already looked up to authorize the token.
    pub app: Option<AppRecord>,
    /// This shard's waiters on the durable watermark.
    pub durable: &'a LocalWaiters,
}

impl Ctx<'_> {
    /// Records a management write in the audit trail.
    pub fn audit(&self, action: &str, target: &str) -> ApiResult<()> {
        self.svc.store.state().audit(&AuditRecord {
            ts_ms: self.svc.now_ms(),
            actor: self.token.name.clone(),
            action: action.into(),
            target: target.into(),
        })?;
        Ok(())
    }

    /// Waits until every index write made so far is on disk.
    pub async fn commit(&self) -> ApiResult<()> {
        let ticket = self.svc.store.commit_index();
        self.svc
            .store
            .index_durable()
            .wait(ticket)
            .await
            .map_err(ApiError::from)
    }
}

/// How long an `Idempotency-Key` stays claimed by a request still being processed (if hookd
/// dies meanwhile, a retry may run after this).
const IDEMPOTENCY_CLAIM_MS: u64 = 60_000;

const GET: &[&str] = &["GET", "HEAD"];
const GET_POST: &[&str] = &["GET", "HEAD", "POST"];
const POST: &[&str] = &["POST"];
const DELETE: &[&str] = &["DELETE"];
const RESOURCE: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "DELETE"];
const GET_PUT_PATCH: &[&str] = &["GET", "HEAD", "PUT", "PATCH"];

/// Every route: its path pattern and the methods it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Health,
    HealthPing,
    OpenApi,
    Apps,
    App,
    Endpoints,
    Endpoint,
    EndpointSecret,
    EndpointSecretRotate,
    EndpointHeaders,
    EndpointStats,
    EndpointRecover,
    EndpointReplayMissing,
    EndpointMessages,
    EndpointSendExample,
    EndpointFilterTest,
    EndpointBulkReplay,
    EndpointBulkReplayTask,
    FilterTest,
    MessageResend,
    EventTypes,
    EventType,
    Messages,
    MessageBatch,
    Message,
    MessageContent,
    MessageEndpoints,
    MessageAttempt,
    MessageAttemptContent,
    AttemptsByMessage,
    AttemptsByEndpoint,
    Sources,
    PortalAccess,
    Logout,
    ExpireAll,
    PortalSession,
    /// Stays last: a test counts the routes up to it.
    Audit,
}

impl Route {
    fn allowed(self) -> &'static [&'static str] {
        use Route::*;
        match self {
            Health
            | HealthPing
            | OpenApi
            | EndpointBulkReplayTask
            | EndpointMessages
            | EndpointSecret
            | EndpointStats
            | Message
            | MessageEndpoints
            | MessageAttempt
            | AttemptsByMessage
            | AttemptsByEndpoint
            | Sources
            | PortalSession
            | Audit => GET,
            Apps | Endpoints | EventTypes | Messages | MessageBatch => GET_POST,
            App | Endpoint | EventType => RESOURCE,
            EndpointSecretRotate
            | EndpointRecover
            | EndpointReplayMissing
            | MessageResend
            | EndpointSendExample
            | EndpointFilterTest
            | EndpointBulkReplay
            | FilterTest
            | PortalAccess
            | Logout
            | ExpireAll => POST,
            MessageContent | MessageAttemptContent => DELETE,
            EndpointHeaders => GET_PUT_PATCH,
        }
    }
}

impl Route {
    /// Every route, in the order the OpenAPI document lists them.
    pub(crate) const ALL: &'static [Route] = {
        use Route::*;
        &[
            Health,
            HealthPing,
            OpenApi,
            Apps,
            App,
            Endpoints,
            Endpoint,
            EndpointSecret,
            EndpointSecretRotate,
            EndpointHeaders,
            EndpointStats,
            EndpointRecover,
            EndpointReplayMissing,
            EndpointMessages,
            EndpointSendExample,
            EndpointFilterTest,
            EndpointBulkReplay,
            EndpointBulkReplayTask,
            FilterTest,
            EventTypes,
            EventType,
            Messages,
            MessageBatch,
            Message,
            MessageContent,
            MessageEndpoints,
            MessageResend,
            MessageAttempt,
            MessageAttemptContent,
            AttemptsByMessage,
            AttemptsByEndpoint,
            Sources,
            PortalAccess,
            Logout,
            ExpireAll,
            PortalSession,
            Audit,
        ]
    };

    /// The path under `/api/v1/`, parameters as `{name}` (as the OpenAPI document names them).
    pub(crate) fn pattern(self) -> &'static str {
        use Route::*;
        match self {
            Health => "health",
            HealthPing => "health/ping",
            OpenApi => "openapi.json",
            Apps => "app",
            App => "app/{app_id}",
            Endpoints => "app/{app_id}/endpoint",
            Endpoint => "app/{app_id}/endpoint/{endpoint_id}",
            EndpointSecret => "app/{app_id}/endpoint/{endpoint_id}/secret",
            EndpointSecretRotate => "app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
            EndpointHeaders => "app/{app_id}/endpoint/{endpoint_id}/headers",
            EndpointStats => "app/{app_id}/endpoint/{endpoint_id}/stats",
            EndpointRecover => "app/{app_id}/endpoint/{endpoint_id}/recover",
            EndpointReplayMissing => "app/{app_id}/endpoint/{endpoint_id}/replay-missing",
            EndpointMessages => "app/{app_id}/endpoint/{endpoint_id}/msg",
            EndpointSendExample => "app/{app_id}/endpoint/{endpoint_id}/send-example",
            EndpointFilterTest => "app/{app_id}/endpoint/{endpoint_id}/filter/test",
            FilterTest => "filter/test",
            EndpointBulkReplay => "app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
            EndpointBulkReplayTask => "app/{app_id}/endpoint/{endpoint_id}/bulk-replay/{task_id}",
            MessageResend => "app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
            EventTypes => "event-type",
            EventType => "event-type/{event_type_name}",
            Messages => "app/{app_id}/msg",
            MessageBatch => "app/{app_id}/msg/batch",
            Message => "app/{app_id}/msg/{msg_id}",
            MessageContent => "app/{app_id}/msg/{msg_id}/content",
            MessageEndpoints => "app/{app_id}/msg/{msg_id}/endpoint",
            MessageAttempt => "app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
            MessageAttemptContent => "app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content",
            AttemptsByMessage => "app/{app_id}/attempt/msg/{msg_id}",
            AttemptsByEndpoint => "app/{app_id}/attempt/endpoint/{endpoint_id}",
            Sources => "source",
            PortalAccess => "auth/app-portal-access/{app_id}",
            Logout => "auth/logout",
            ExpireAll => "auth/app/{app_id}/expire-all",
            PortalSession => "auth/session",
            Audit => "audit",
        }
    }
}

/// Splits `/api/v1/...` into its route and decoded path parameters.
fn parse_path(path: &str) -> Option<(Route, Vec<String>)> {
    let rest = path.strip_prefix("/api/v1/")?.trim_end_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    use Route::*;
    let (route, params): (Route, &[usize]) = match segs.as_slice() {
        ["health"] => (Health, &[]),
        ["health", "ping"] => (HealthPing, &[]),
        ["openapi.json"] => (OpenApi, &[]),
        ["app"] => (Apps, &[]),
        ["app", _] => (App, &[1]),
        ["app", _, "endpoint"] => (Endpoints, &[1]),
        ["app", _, "endpoint", _] => (Endpoint, &[1, 3]),
        ["app", _, "endpoint", _, "secret"] => (EndpointSecret, &[1, 3]),
        ["app", _, "endpoint", _, "secret", "rotate"] => (EndpointSecretRotate, &[1, 3]),
        ["app", _, "endpoint", _, "headers"] => (EndpointHeaders, &[1, 3]),
        ["app", _, "endpoint", _, "stats"] => (EndpointStats, &[1, 3]),
        ["app", _, "endpoint", _, "recover"] => (EndpointRecover, &[1, 3]),
        ["app", _, "endpoint", _, "replay-missing"] => (EndpointReplayMissing, &[1, 3]),
        ["app", _, "endpoint", _, "msg"] => (EndpointMessages, &[1, 3]),
        ["app", _, "endpoint", _, "send-example"] => (EndpointSendExample, &[1, 3]),
        ["app", _, "endpoint", _, "filter", "test"] => (EndpointFilterTest, &[1, 3]),
        ["filter", "test"] => (FilterTest, &[]),
        ["app", _, "endpoint", _, "bulk-replay"] => (EndpointBulkReplay, &[1, 3]),
        ["app", _, "endpoint", _, "bulk-replay", _] => (EndpointBulkReplayTask, &[1, 3, 5]),
        ["app", _, "msg", _, "endpoint", _, "resend"] => (MessageResend, &[1, 3, 5]),
        ["event-type"] => (EventTypes, &[]),
        ["event-type", _] => (EventType, &[1]),
        ["app", _, "msg"] => (Messages, &[1]),
        // Before the message route: a message whose eventId is "batch" is read here (GET).
        ["app", _, "msg", "batch"] => (MessageBatch, &[1]),
        ["app", _, "msg", _] => (Message, &[1, 3]),
        ["app", _, "msg", _, "content"] => (MessageContent, &[1, 3]),
        ["app", _, "msg", _, "endpoint"] => (MessageEndpoints, &[1, 3]),
        ["app", _, "msg", _, "attempt", _] => (MessageAttempt, &[1, 3, 5]),
        ["app", _, "msg", _, "attempt", _, "content"] => (MessageAttemptContent, &[1, 3, 5]),
        ["app", _, "attempt", "msg", _] => (AttemptsByMessage, &[1, 4]),
        ["app", _, "attempt", "endpoint", _] => (AttemptsByEndpoint, &[1, 4]),
        ["source"] => (Sources, &[]),
        ["auth", "app-portal-access", _] => (PortalAccess, &[2]),
        ["auth", "logout"] => (Logout, &[]),
        ["auth", "app", _, "expire-all"] => (ExpireAll, &[2]),
        ["auth", "session"] => (PortalSession, &[]),
        ["audit"] => (Audit, &[]),
        _ => return None,
    };
    Some((
        route,
        params.iter().map(|&i| percent_decode(segs[i])).collect(),
    ))
}

impl Api {
    /// `GET /metrics`: Prometheus text; needs a `read` token unless `metrics.public`.
    fn metrics(&self, req: &Request) -> ApiResult {
        if !matches!(req.method, Method::Get | Method::Head) {
            return Err(ApiError::MethodNotAllowed(GET));
        }
        if !self.svc.config().metrics.public {
            self.svc
                .auth()
                .authorize(req.header("authorization"), Need::Read, &[])
                .map_err(|d| match d {
                    Denied::Unauthenticated(why) => ApiError::Unauthorized(why.into()),
                    Denied::Forbidden(why) => ApiError::Forbidden(why),
                })?;
        }
        let text = self.svc.metrics.render(&self.queues.gauges(&self.svc));
        Ok(Response {
            status: 200,
            headers: vec![("content-type", "text/plain; version=0.0.4".into())],
            body: text.into_bytes(),
        })
    }

    async fn route(&self, req: &Request) -> ApiResult {
        let (route, p) = parse_path(req.path())
            .ok_or_else(|| ApiError::NotFound(format!("no route for {}", req.path())))?;
        let method = match req.method {
            Method::Head => Method::Get,
            m => m,
        };
        if !route.allowed().contains(&method.as_str()) {
            return Err(ApiError::MethodNotAllowed(route.allowed()));
        }
        match route {
            Route::Health => return Ok(health(&self.svc)),
            // Svix's liveness probe: this shard answers HTTP.
            Route::HealthPing => return Ok(Response::empty(204)),
            // The API's description is public, as Svix serves it.
            Route::OpenApi => return Ok(Response::json(200, openapi::document().to_vec())),
            _ => {}
        }
        let svc = &self.svc;
        let need = match (route, method) {
            // The sources' settings and who changed what are for admins only.
            (Route::Sources | Route::Audit, _) => Need::Admin,
            // Trying a filter changes nothing.
            (Route::FilterTest | Route::EndpointFilterTest, _) => Need::Read,
            (_, Method::Get) => Need::Read,
            (Route::Messages | Route::MessageBatch, Method::Post) => Need::Ingest,
            _ => Need::Admin,
        };
        let header = req.header("authorization");
        let mut app = None;
        // The tokens as they are now; the request keeps this table even if a reload swaps it.
        let auth = svc.auth();
        let grant = portal::authenticate(svc, header)?;
        let portal_token;
        let token = match &grant {
            Some(g) => {
                portal::permit(svc, g, route, method, &p)?;
                portal_token = g.token();
                Ok(&portal_token)
            }
            // Anyone who holds a token may log out or ask who they are.
            None if matches!(route, Route::Logout | Route::PortalSession) => {
                auth.authenticate(header)
            }
            None => match need {
                Need::Ingest => {
                    app = svc.store.state().app_by_id_or_uid(&p[0])?;
                    let mut names = vec![p[0].as_str()];
                    if let Some(a) = &app {
                        names.push(&a.id);
                        names.extend(a.uid.as_deref());
                    }
                    auth.authorize(header, need, &names)
                }
                _ => auth.authorize(header, need, &[]),
            },
        }
        .map_err(|d| match d {
            Denied::Unauthenticated(why) => ApiError::Unauthorized(why.into()),
            Denied::Forbidden(why) => ApiError::Forbidden(why),
        })?;
        let cx = Ctx {
            svc,
            ingest: &self.ingest,
            req,
            query: Query::parse(req.query()),
            token,
            app,
            durable: &self.durable,
        };
        let idem = match (method, req.header_str("idempotency-key")) {
            (Method::Post, Some(k)) if !k.is_empty() && k.len() <= 256 => {
                Some(format!("{}\u{0}{}", token.name, req.path()))
                    .map(|scope| (scope, k.to_owned()))
            }
            _ => None,
        };
        if let Some((scope, key)) = &idem {
            // Claimed before the work, so that two concurrent retries cannot both run it.
            let now = svc.now_ms();
            let placeholder = IdempotencyRecord {
                expires_ms: now + IDEMPOTENCY_CLAIM_MS,
                status: 0,
                body: Vec::new(),
            };
            match svc
                .store
                .state()
                .claim_idempotency(scope, key, &placeholder, now)?
            {
                Some(prev) if prev.status == 0 => {
                    return Err(ApiError::Conflict(
                        "a request with this Idempotency-Key is still being processed".into(),
                    ))
                }
                Some(prev) => return Ok(Response::json(prev.status, prev.body)),
                None => {}
            }
        }
        let result = match route {
            Route::Logout => portal::logout(&cx, grant.as_ref()).await,
            Route::PortalSession => portal::session(&cx, grant.as_ref()),
            _ => self.dispatch(route, method, &p, &cx).await,
        };
        let resp = match (result, &idem) {
            (Ok(r), _) if (200..300).contains(&r.status) => r,
            (other, Some((scope, key))) => {
                svc.store.state().release_idempotency(scope, key)?;
                return other;
            }
            (other, None) => return other,
        };
        if let Some((scope, key)) = idem {
            let ttl = svc.config().storage.idempotency_ttl.as_millis() as u64;
            svc.store.state().put_idempotency(
                &scope,
                &key,
                &IdempotencyRecord {
                    expires_ms: svc.now_ms() + ttl,
                    status: resp.status,
                    body: resp.body.clone(),
                },
            )?;
            cx.commit().await?;
        }
        Ok(resp)
    }

    async fn dispatch(&self, route: Route, m: Method, p: &[String], cx: &Ctx<'_>) -> ApiResult {
        use Method::*;
        use Route::*;
        match (route, m) {
            (Apps, Get) => apps::list(cx),
            (Apps, Post) => apps::create(cx).await,
            (App, Get) => apps::get(cx, &p[0]),
            (App, Put) => apps::put(cx, &p[0]).await,
            (App, Patch) => apps::patch(cx, &p[0]).await,
            (App, Delete) => apps::delete(cx, &p[0]).await,
            (Endpoints, Get) => endpoints::list(cx, &p[0]),
            (Endpoints, Post) => endpoints::create(cx, &p[0]).await,
            (Endpoint, Get) => endpoints::get(cx, &p[0], &p[1]),
            (Endpoint, Put) => endpoints::put(cx, &p[0], &p[1]).await,
            (Endpoint, Patch) => endpoints::patch(cx, &p[0], &p[1]).await,
            (Endpoint, Delete) => endpoints::delete(cx, &p[0], &p[1]).await,
            (EndpointSecret, Get) => endpoints::secret(cx, &p[0], &p[1]),
            (EndpointSecretRotate, Post) => endpoints::rotate(cx, &p[0], &p[1]).await,
            (EndpointHeaders, Get) => endpoints::headers(cx, &p[0], &p[1]),
            (EndpointHeaders, Put) => endpoints::set_headers(cx, &p[0], &p[1], false).await,
            (EndpointHeaders, Patch) => endpoints::set_headers(cx, &p[0], &p[1], true).await,
            (EndpointStats, Get) => endpoints::stats(cx, &p[0], &p[1]).await,
            (EndpointMessages, Get) => attempts::endpoint_messages(cx, &p[0], &p[1]),
            (EndpointFilterTest, Post) => endpoints::test_endpoint_filter(cx, &p[0], &p[1]),
            (FilterTest, Post) => endpoints::test_filter(cx),
            (EndpointBulkReplay, Post) => bulk_replay::start(cx, &p[0], &p[1]).await,
            (EndpointBulkReplayTask, Get) => bulk_replay::get(cx, &p[0], &p[1], &p[2]),
            (EndpointSendExample, Post) => messages::send_example(cx, &p[0], &p[1]).await,
            (EndpointRecover, Post) => replay::recover(cx, &p[0], &p[1]).await,
            (EndpointReplayMissing, Post) => replay::replay_missing(cx, &p[0], &p[1]).await,
            (MessageResend, Post) => replay::resend(cx, &p[0], &p[1], &p[2]).await,
            (EventTypes, Get) => event_types::list(cx),
            (EventTypes, Post) => event_types::create(cx).await,
            (EventType, Get) => event_types::get(cx, &p[0]),
            (EventType, Put) => event_types::put(cx, &p[0]).await,
            (EventType, Patch) => event_types::patch(cx, &p[0]).await,
            (EventType, Delete) => event_types::delete(cx, &p[0]).await,
            (Messages, Get) => messages::list(cx, &p[0]).await,
            (Messages, Post) => messages::create(cx, &p[0]).await,
            (Message, Get) => messages::get(cx, &p[0], &p[1]),
            (MessageBatch, Get) => messages::get(cx, &p[0], "batch"),
            (MessageBatch, Post) => messages::create_batch(cx, &p[0]).await,
            (MessageContent, Delete) => messages::expunge_content(cx, &p[0], &p[1]).await,
            (MessageEndpoints, Get) => attempts::message_endpoints(cx, &p[0], &p[1]),
            (MessageAttempt, Get) => attempts::get(cx, &p[0], &p[1], &p[2]),
            (MessageAttemptContent, Delete) => {
                attempts::expunge_content(cx, &p[0], &p[1], &p[2]).await
            }
            (AttemptsByMessage, Get) => attempts::by_message(cx, &p[0], &p[1]),
            (AttemptsByEndpoint, Get) => attempts::by_endpoint(cx, &p[0], &p[1]),
            (Sources, Get) => sources::list(cx),
            (PortalAccess, Post) => portal::access(cx, &p[0]).await,
            (ExpireAll, Post) => portal::expire_all(cx, &p[0]).await,
            (Audit, Get) => audit::list(cx),
            _ => Err(ApiError::MethodNotAllowed(route.allowed())),
        }
    }
}

/// Serializes `value` as a JSON response.
pub fn json_response<T: serde::Serialize>(status: u16, value: &T) -> ApiResult {
    serde_json::to_vec(value)
        .map(|b| Response::json(status, b))
        .map_err(|e| ApiError::Internal(format!("serializing a response: {e}")))
}

/// `GET /api/v1/health`: 204 while every part of hookd lives; 503 naming the parts whose
/// thread ended (a shard, the dispatcher or the recorder), which systemd's watchdog also stops
/// pinging for.
fn health(svc: &Service) -> Response {
    let dead = svc.liveness.dead();
    if dead.is_empty() {
        return Response::empty(204);
    }
    let parts: Vec<String> = dead.iter().map(|p| p.to_string()).collect();
    Response::error(
        503,
        "unhealthy",
        &format!(
            "stopped unexpectedly: {}; restart hookd (the log says why)",
            parts.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_with_their_parameters() {
        let (r, p) = parse_path("/api/v1/app/app_1/endpoint/ep%2E1/secret/rotate/").unwrap();
        assert_eq!(r, Route::EndpointSecretRotate);
        assert_eq!(p, vec!["app_1", "ep.1"]);
        assert_eq!(parse_path("/api/v1/health").unwrap().0, Route::Health);
        assert_eq!(
            parse_path("/api/v1/health/ping/").unwrap().0,
            Route::HealthPing
        );
        assert_eq!(
            parse_path("/api/v1/app/a/attempt/msg/m").unwrap().0,
            Route::AttemptsByMessage
        );
        assert!(parse_path("/api/v1/app//endpoint").is_none());
        assert!(parse_path("/api/v2/app").is_none());
        assert!(parse_path("/api/v1/nope").is_none());
    }

    /// The table the OpenAPI document is built from is the router's: every route's pattern,
    /// its parameters filled in, routes back to it with those parameters.
    #[test]
    fn every_route_pattern_routes_to_its_route() {
        let mut seen = std::collections::HashSet::new();
        for &route in Route::ALL {
            assert!(seen.insert(route), "{route:?} listed twice");
            let mut expected = Vec::new();
            let path: Vec<String> = route
                .pattern()
                .split('/')
                .map(|seg| match seg.strip_prefix('{') {
                    Some(name) => {
                        let v = format!("x-{}", name.trim_end_matches('}'));
                        expected.push(v.clone());
                        v
                    }
                    None => seg.to_owned(),
                })
                .collect();
            let (got, params) = parse_path(&format!("/api/v1/{}", path.join("/")))
                .unwrap_or_else(|| panic!("{route:?}: {} does not route", route.pattern()));
            assert_eq!(got, route, "{}", route.pattern());
            assert_eq!(params, expected, "{}", route.pattern());
        }
        assert_eq!(
            seen.len(),
            Route::Audit as usize + 1,
            "a route is missing from ALL"
        );
    }
}
