//! App portal access (`/api/v1/auth/...`, Svix's routes and shapes): the tokens a producer
//! hands its own customers so that they manage one app's endpoints through `/portal`.
//!
//! A portal token is `hkp_` and 64 hex digits (32 random bytes). hookd keeps only its SHA-256,
//! with the one app it is for, its expiry, its capabilities (Svix's names) and the producer's
//! session id. A request carrying one may use only the routes of that app that its
//! capabilities allow ([`permit`]) and the event-type catalogue; everything else is 403, and
//! an unknown, revoked or expired one is 401. Deleting the app revokes its tokens.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use storage::state::{AppRecord, PortalTokenRecord};

use super::{
    apps,
    error::{ApiError, ApiResult, FieldError},
    input, json_response,
    models::ApplicationIn,
    Ctx, Route,
};
use crate::{
    auth::Token,
    http::{Method, Response},
    service::Service,
    time::format_rfc3339,
};

/// What every portal token starts with.
pub const PREFIX: &str = "hkp_";

/// Basic read access: the app, its endpoints (not their secrets), messages, attempts, the
/// event catalogue. Every token has it.
const VIEW_BASE: u8 = 1;
const VIEW_ENDPOINT_SECRET: u8 = 1 << 1;
const MANAGE_ENDPOINT_SECRET: u8 = 1 << 2;
/// Accepted for Svix compatibility; hookd has no transformations.
const MANAGE_TRANSFORMATIONS: u8 = 1 << 3;
const CREATE_ATTEMPTS: u8 = 1 << 4;
const MANAGE_ENDPOINT: u8 = 1 << 5;
const ALL: u8 = (1 << 6) - 1;
/// What `readOnly` leaves: everything can be seen, nothing changed.
const READ_ONLY: u8 = VIEW_BASE | VIEW_ENDPOINT_SECRET;

/// Svix's capability names.
const NAMES: [(&str, u8); 6] = [
    ("ViewBase", VIEW_BASE),
    ("ViewEndpointSecret", VIEW_ENDPOINT_SECRET),
    ("ManageEndpointSecret", MANAGE_ENDPOINT_SECRET),
    ("ManageTransformations", MANAGE_TRANSFORMATIONS),
    ("CreateAttempts", CREATE_ATTEMPTS),
    ("ManageEndpoint", MANAGE_ENDPOINT),
];

/// The shortest lifetime a token may be given.
const EXPIRY_MIN_SECS: u64 = 1;
/// Longest session id.
const SESSION_ID_BYTES_MAX: usize = 256;
/// Most session ids in one `expire-all`.
const SESSION_IDS_MAX: usize = 100;

/// A request's portal token, once found.
#[derive(Debug, Clone)]
pub struct Grant {
    pub hash: [u8; 32],
    pub rec: PortalTokenRecord,
}

impl Grant {
    /// The identity the rest of the API sees: named for the audit trail, no scopes.
    pub fn token(&self) -> Token {
        let name = match &self.rec.session_id {
            Some(s) => format!("portal:{}:{s}", self.rec.app_id),
            None => format!("portal:{}", self.rec.app_id),
        };
        Token::portal(name)
    }

    fn may(&self, any_of: u8) -> bool {
        any_of == 0 || self.rec.capabilities & any_of != 0
    }
}

/// The bearer token of `header` when it is a portal token: `None` for any other (or none).
fn bearer(header: Option<&[u8]>) -> Option<&[u8]> {
    let h = header?;
    let t = h
        .strip_prefix(b"Bearer ")
        .or_else(|| h.strip_prefix(b"bearer "))?
        .trim_ascii();
    t.starts_with(PREFIX.as_bytes()).then_some(t)
}

/// Finds the portal token of a request: `None` when it carries none (another kind of token or
/// none at all), 401 when it is unknown, revoked or expired, or the portal is turned off.
pub fn authenticate(svc: &Service, header: Option<&[u8]>) -> ApiResult<Option<Grant>> {
    let Some(token) = bearer(header) else {
        return Ok(None);
    };
    if !svc.config().portal.enabled {
        return Err(ApiError::Unauthorized(
            "the app portal is turned off (portal.enabled)".into(),
        ));
    }
    let hash: [u8; 32] = Sha256::digest(token).into();
    let rec = svc
        .store
        .state()
        .portal_token(&hash, svc.now_ms())?
        .ok_or_else(|| ApiError::Unauthorized("unknown, revoked or expired portal token".into()))?;
    Ok(Some(Grant { hash, rec }))
}

/// Whether a portal token may take `route` with `method`: the route must be one of its app's
/// (checked against `params[0]`, the path's app id or uid) or the event catalogue, and one of
/// the capabilities it needs must be the token's.
pub(super) fn permit(
    svc: &Service,
    grant: &Grant,
    route: Route,
    method: Method,
    params: &[String],
) -> ApiResult<()> {
    use Method::*;
    use Route::*;
    let any_of = match (route, method) {
        (
            App | Endpoints | Endpoint | EndpointHeaders | Messages | MessageBatch | EventTypes
            | EventType,
            Get,
        )
        | (
            EndpointStats
            | EndpointMessages
            | EndpointBulkReplayTask
            | EndpointFilterTest
            | FilterTest
            | Message
            | MessageEndpoints
            | MessageAttempt
            | AttemptsByMessage
            | AttemptsByEndpoint,
            _,
        ) => VIEW_BASE,
        (EndpointSecret, _) => VIEW_ENDPOINT_SECRET | MANAGE_ENDPOINT_SECRET | MANAGE_ENDPOINT,
        (EndpointSecretRotate, _) => MANAGE_ENDPOINT_SECRET | MANAGE_ENDPOINT,
        (Endpoints, Post) | (Endpoint, Put | Patch | Delete) | (EndpointHeaders, Put | Patch) => {
            MANAGE_ENDPOINT
        }
        (
            EndpointRecover
            | EndpointReplayMissing
            | MessageResend
            | EndpointSendExample
            | EndpointBulkReplay,
            _,
        ) => CREATE_ATTEMPTS,
        (Logout | PortalSession, _) => 0,
        _ => {
            return Err(ApiError::Forbidden(
                "a portal token may use only its own app's endpoints, messages and attempts".into(),
            ))
        }
    };
    if !grant.may(any_of) {
        return Err(ApiError::Forbidden(format!(
            "this portal token may not do that (it needs one of: {})",
            names(any_of).join(", ")
        )));
    }
    if route.pattern().starts_with("app/{app_id}") {
        let app = svc.store.state().app_by_id_or_uid(&params[0])?;
        if app.is_none_or(|a| a.key != grant.rec.app_key) {
            return Err(ApiError::Forbidden(format!(
                "this portal token is for application {} only",
                grant.rec.app_id
            )));
        }
    }
    Ok(())
}

fn names(caps: u8) -> Vec<&'static str> {
    NAMES
        .iter()
        .filter(|(_, bit)| caps & bit != 0)
        .map(|(n, _)| *n)
        .collect()
}

/// `AppPortalAccessIn`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessIn {
    application: Option<ApplicationIn>,
    expiry: Option<u64>,
    read_only: Option<bool>,
    capabilities: Option<Vec<String>>,
    session_id: Option<String>,
    /// Accepted and ignored: hookd has no feature flags on tokens.
    #[allow(dead_code)]
    feature_flags: Option<Vec<String>>,
}

/// `AppPortalAccessOut`.
#[derive(Debug, Serialize)]
struct AccessOut {
    url: String,
    token: String,
}

/// 409 when `app` has `max` live tokens. Checked, then added: shards creating tokens for one
/// app at the same instant may each pass at the limit (at most one over per shard).
fn room_for_a_token(cx: &Ctx<'_>, app: &AppRecord, max: u64, now: u64) -> ApiResult<()> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let live = cx
        .svc
        .store
        .state()
        .count_portal_tokens(app.key, now, limit)?;
    if (live as u64) < max {
        return Ok(());
    }
    Err(ApiError::Conflict(format!(
        "application {} has {live} live portal tokens, the most portal.tokens_per_app_max \
         allows: expire some (POST /api/v1/auth/app/{}/expire-all) or wait until they expire",
        app.id, app.id
    )))
}

/// `POST /api/v1/auth/app-portal-access/{app}` (admin): a new portal token for the app, and
/// the portal's URL with the token in its fragment (never sent to a server, so never logged).
/// With `application`, an app that does not exist yet is made (its uid: the path's).
pub async fn access(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let body: AccessIn = if cx.req.body.is_empty() {
        AccessIn::default()
    } else {
        input::json(&cx.req.body)?
    };
    let config = cx.svc.config();
    if !config.portal.enabled {
        return Err(ApiError::Forbidden(
            "the app portal is turned off (portal.enabled)".into(),
        ));
    }
    let max_secs = config
        .portal
        .token_expiry_max
        .as_secs()
        .max(EXPIRY_MIN_SECS);
    let mut errors = Vec::new();
    let expiry = body.expiry.unwrap_or(max_secs);
    if !(EXPIRY_MIN_SECS..=max_secs).contains(&expiry) {
        errors.push(FieldError::body(
            "expiry",
            format!("must be {EXPIRY_MIN_SECS} to {max_secs} seconds (portal.token_expiry_max)"),
        ));
    }
    let mut caps = match &body.capabilities {
        None => ALL,
        Some(list) => {
            let mut caps = 0;
            for name in list {
                match NAMES.iter().find(|(n, _)| n == name) {
                    Some((_, bit)) => caps |= bit,
                    None => errors.push(FieldError::body(
                        "capabilities",
                        format!(
                            "unknown capability {name:?}, expected one of {}",
                            names(ALL).join(", ")
                        ),
                    )),
                }
            }
            if caps & VIEW_BASE == 0 && errors.is_empty() {
                errors.push(FieldError::body("capabilities", "must include ViewBase"));
            }
            caps
        }
    };
    if body.read_only == Some(true) {
        caps &= READ_ONLY;
    }
    if let Some(s) = &body.session_id {
        if s.is_empty() || s.len() > SESSION_ID_BYTES_MAX || s.chars().any(char::is_control) {
            errors.push(FieldError::body(
                "sessionId",
                format!("must be 1 to {SESSION_ID_BYTES_MAX} bytes without control characters"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let app = match cx.svc.store.state().app_by_id_or_uid(app)? {
        Some(a) => a,
        None => match body.application {
            Some(mut new) => {
                new.uid.get_or_insert_with(|| app.to_owned());
                let created = apps::new_record(cx, new)?;
                apps::insert(cx, &created).await?;
                created
            }
            None => return Err(ApiError::NotFound(format!("application {app} not found"))),
        },
    };
    let now = cx.svc.now_ms();
    room_for_a_token(cx, &app, config.portal.tokens_per_app_max, now)?;
    let token = crate::config::tokens::random_token(PREFIX)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let rec = PortalTokenRecord {
        app_key: app.key,
        app_id: app.id.clone(),
        created_ms: now,
        expires_ms: now.saturating_add(expiry.saturating_mul(1000)),
        capabilities: caps,
        session_id: body.session_id,
    };
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    cx.svc.store.state().put_portal_token(&hash, &rec)?;
    cx.audit("app-portal-access.create", &app.id)?;
    // A 200 means the token works, on any shard, after any crash.
    cx.commit().await?;
    json_response(
        200,
        &AccessOut {
            url: format!("{}/portal#token={token}", base_url(cx)),
            token,
        },
    )
}

/// Where the portal is, as the producer's customers reach hookd.
fn base_url(cx: &Ctx<'_>) -> String {
    let config = cx.svc.config();
    if let Some(url) = &config.portal.public_url {
        return url.clone();
    }
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = cx
        .req
        .header_str("host")
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                })
        })
        .map_or_else(|| config.server.listen.to_string(), str::to_owned);
    format!("{scheme}://{host}")
}

/// `POST /api/v1/auth/logout`: revokes the portal token the request carries (204). Other
/// tokens cannot be logged out (403): they live in the config file.
pub async fn logout(cx: &Ctx<'_>, grant: Option<&Grant>) -> ApiResult {
    let grant = grant.ok_or_else(|| {
        ApiError::Forbidden(
            "only a portal token can be logged out; API tokens are removed from the config".into(),
        )
    })?;
    cx.svc.store.state().revoke_portal_token(&grant.hash)?;
    cx.audit("app-portal-access.logout", &grant.rec.app_id)?;
    cx.commit().await?;
    Ok(Response::empty(204))
}

/// `ApplicationTokenExpireIn`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpireIn {
    /// Seconds until the tokens expire; none or 0: now.
    expiry: Option<u64>,
    session_ids: Option<Vec<String>>,
}

/// `POST /api/v1/auth/app/{app}/expire-all` (admin): the app's portal tokens (or those of the
/// given sessions) expire now or after `expiry` seconds (204).
pub async fn expire_all(cx: &Ctx<'_>, app: &str) -> ApiResult {
    let body: ExpireIn = if cx.req.body.is_empty() {
        ExpireIn::default()
    } else {
        input::json(&cx.req.body)?
    };
    let max_secs = cx.svc.config().portal.token_expiry_max.as_secs();
    let delay = body.expiry.unwrap_or(0);
    if delay > max_secs {
        return Err(ApiError::invalid(
            "expiry",
            format!("must be 0 to {max_secs} seconds (portal.token_expiry_max)"),
        ));
    }
    if body
        .session_ids
        .as_ref()
        .is_some_and(|s| s.len() > SESSION_IDS_MAX)
    {
        return Err(ApiError::invalid(
            "sessionIds",
            format!("at most {SESSION_IDS_MAX} session ids"),
        ));
    }
    let a: AppRecord = apps::find(cx, app)?;
    let at = cx.svc.now_ms().saturating_add(delay * 1000);
    cx.svc
        .store
        .state()
        .expire_portal_tokens(a.key, at, body.session_ids.as_deref())?;
    cx.audit("app-portal-access.expire-all", &a.id)?;
    cx.commit().await?;
    Ok(Response::empty(204))
}

/// `GET /api/v1/auth/session` (hookd): who the request's token is. For a portal token: its
/// app, capabilities and expiry, which the portal page reads to know what to show.
pub fn session(cx: &Ctx<'_>, grant: Option<&Grant>) -> ApiResult {
    let body = match grant {
        Some(g) => serde_json::json!({
            "kind": "portal",
            "appId": g.rec.app_id,
            "capabilities": names(g.rec.capabilities),
            "readOnly": g.rec.capabilities & !READ_ONLY == 0,
            "expiresAt": format_rfc3339(g.rec.expires_ms),
            "sessionId": g.rec.session_id,
        }),
        None => serde_json::json!({ "kind": "token", "name": cx.token.name }),
    };
    json_response(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_portal_bearers_are_taken() {
        assert_eq!(bearer(Some(b"Bearer hkp_ab")), Some(&b"hkp_ab"[..]));
        assert_eq!(bearer(Some(b"bearer hkp_ab ")), Some(&b"hkp_ab"[..]));
        assert_eq!(bearer(Some(b"Bearer hkd_ab")), None);
        assert_eq!(bearer(Some(b"hkp_ab")), None);
        assert_eq!(bearer(None), None);
        assert_eq!(names(READ_ONLY), ["ViewBase", "ViewEndpointSecret"]);
        assert_eq!(names(ALL).len(), NAMES.len());
    }
}
