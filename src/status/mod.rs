//! The operator status page: `GET /` (and `/status`) and its one JSON route,
//! `GET /api/v1/status/summary` (a `read` token).
//!
//! The page is one HTML file (`page.html`: inline CSS and plain JavaScript, no external assets)
//! compiled into the binary. It holds no data, so it loads without a token; it asks for a
//! `read` token, keeps it in `sessionStorage`, and from then on talks to hookd only through
//! the summary route and the public API (an `admin` token, asked for when an action is
//! pressed, re-enables endpoints and recovers failed deliveries). Its Content-Security-Policy
//! allows only its own inline script and style (by hash) and requests to its own origin.
//!
//! The rate charts come from [`ring`]: each shard samples the process counters
//! ([`crate::metrics::Metrics`]) once a second on its own runtime, and the summary samples
//! once more before it answers; the ring keeps the differences per second for 15 minutes in
//! fixed memory. One [`Status`] is shared by every shard of a [`Service`]; since the service
//! has no slot for it, it is kept in a small registry keyed by the service's address.

pub mod ring;
mod summary;

use std::{
    sync::{Arc, LazyLock, Mutex, PoisonError, Weak},
    time::Duration,
};

use crate::{
    api::error::{ApiError, ApiResult},
    auth::{Denied, Need},
    deliver::Queues,
    http::{self, page::block_hash, Method, Request, Response},
    metrics::{Metrics, OUTCOMES},
    service::Service,
};
use ring::{Moves, Sampler, SERIES_LEN, WINDOW_SECS};

/// How often each shard samples the counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The page, as compiled in.
const PAGE: &str = include_str!("page.html");

/// The status of one service: when it started and the sampled counters.
#[derive(Debug)]
pub struct Status {
    started_ms: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    sampler: Sampler,
    beats: Moves,
}

/// One [`Status`] per live service (normally exactly one per process).
static REGISTRY: Mutex<Vec<(Weak<Service>, Arc<Status>)>> = Mutex::new(Vec::new());

impl Status {
    /// The status of `svc`, made by the first shard that asks; also starts this shard's
    /// sampling task. Call it on the shard's runtime.
    pub fn attach(svc: &Arc<Service>) -> Arc<Self> {
        let status = {
            let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            reg.retain(|(w, _)| w.strong_count() > 0);
            match reg.iter().find(|(w, _)| w.as_ptr() == Arc::as_ptr(svc)) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = Arc::new(Self::new(svc.now_ms()));
                    reg.push((Arc::downgrade(svc), s.clone()));
                    s
                }
            }
        };
        monoio::spawn(sample_every_second(Arc::downgrade(svc), status.clone()));
        status
    }

    /// A status whose counters start at zero (as the process's own counters do).
    fn new(now_ms: u64) -> Self {
        Self {
            started_ms: now_ms,
            inner: Mutex::new(Inner {
                sampler: Sampler::new([0; SERIES_LEN], WINDOW_SECS),
                beats: Moves::default(),
            }),
        }
    }

    /// Samples the counters and heartbeats now; returns the time sampled (Unix ms).
    fn sample(&self, svc: &Service) -> u64 {
        let now_ms = svc.now_ms();
        let totals = totals(&svc.metrics);
        let beats = svc.liveness.read();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.sampler.sample(now_ms / 1000, totals);
        inner.beats.observe(now_ms / 1000, &beats);
        now_ms
    }
}

/// The ring's series from the process counters: events appended; delivery attempts that got
/// a 2xx; every other attempt.
fn totals(m: &Metrics) -> [u64; SERIES_LEN] {
    let by_class = m.delivery_totals();
    let success_at = OUTCOMES.iter().position(|c| *c == "2xx").unwrap_or(0);
    let success = by_class[success_at];
    let attempts: u64 = by_class.iter().sum();
    [
        m.events_appended.load(std::sync::atomic::Ordering::Relaxed),
        success,
        attempts - success,
    ]
}

/// Samples once a second while the service lives.
async fn sample_every_second(svc: Weak<Service>, status: Arc<Status>) {
    loop {
        monoio::time::sleep(SAMPLE_EVERY).await;
        let Some(svc) = svc.upgrade() else { return };
        status.sample(&svc);
    }
}

/// Answers the page and the summary route; `None` for every other path.
pub fn handle(status: &Status, svc: &Service, queues: &Queues, req: &Request) -> Option<ApiResult> {
    let path = req.path();
    let summary = path
        .strip_prefix("/api/v1/status/summary")
        .is_some_and(|rest| rest.is_empty() || rest == "/");
    if !(summary || matches!(path, "/" | "/status" | "/status/")) {
        return None;
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(Err(ApiError::MethodNotAllowed(&["GET", "HEAD"])));
    }
    Some(if summary {
        svc.auth()
            .authorize(req.header("authorization"), Need::Read, &[])
            .map_err(|d| match d {
                Denied::Unauthenticated(why) => ApiError::Unauthorized(why.into()),
                Denied::Forbidden(why) => ApiError::Forbidden(why),
            })
            .and_then(|_| summary::answer(status, svc, queues, req))
    } else {
        Ok(page())
    })
}

/// The page with its security headers.
fn page() -> Response {
    http::page::response(PAGE.as_bytes().to_vec(), CSP.clone())
}

/// Only the page's own inline script and style run (named by their SHA-256, so nothing
/// injected would), requests go only to its own origin, and it may not be framed.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        block_hash(PAGE, "script"),
        block_hash(PAGE, "style")
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_its_policy_names_its_blocks() {
        http::page::assert_self_contained(PAGE);
        let csp = CSP.as_str();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        let page = page();
        assert_eq!(page.status, 200);
        assert!(page
            .headers
            .iter()
            .any(|(k, v)| *k == "content-security-policy" && v == csp));
    }

    #[test]
    fn totals_split_attempts_into_success_and_the_rest() {
        let m = Metrics::default();
        m.appended(10);
        m.appended(10);
        m.delivery("2xx");
        m.delivery("5xx");
        m.delivery("timeout");
        assert_eq!(totals(&m), [2, 1, 2]);
    }
}
