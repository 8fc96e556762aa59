//! Config reload: what SIGHUP does, and what the config file declares into the store.
//!
//! On SIGHUP the main thread ([`on_sighup`]) re-reads the file hookd was started with and
//! validates it the way `check-config` does. A config with problems is refused: every problem
//! is logged with its key, and the running config stays as it was. Otherwise:
//!
//! 1. [`plan_reload`] (pure) compares it with the running config: which changed keys apply
//!    live, which need a restart (those keep their old value, and each is logged as needing a
//!    restart, naming the key);
//! 2. the tokens are rebuilt (buckets of unchanged limits kept); a config without tokens falls
//!    back on the first-start admin token, and is refused if there is none;
//! 3. [`crate::service::Service::install`] swaps the running config, tokens, retry policy and
//!    HTTP limits at once; the log level is changed through its reload handle;
//! 4. the static definitions are written ([`statics::apply`]), and every stored endpoint is
//!    checked against `[endpoint_policy]` ([`recheck`]): one that now breaks a rule is
//!    disabled with the rule as its reason;
//! 5. one line sums up what changed (`config reloaded: ...`; a refusal ends with
//!    `config reload refused: ...`).
//!
//! Steps 4 also run at start ([`apply_at_start`]), before the shards serve.

pub mod plan;
pub mod statics;

use std::path::Path;

pub use plan::{plan_reload, ReloadPlan};
pub use statics::Applied;

use storage::state::AuditRecord;

use crate::{
    config::{ConfigError, EndpointPolicy, LoadError},
    ingest::Ingest,
    service::{Service, TokensError},
};

/// Apps read per page when checking every endpoint.
const PAGE: usize = 256;

/// Why a reload was refused (the running config is unchanged).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read, or has problems.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The new tokens cannot be installed.
    #[error(transparent)]
    Tokens(#[from] TokensError),
}

/// What a reload did.
#[derive(Debug)]
pub struct Reloaded {
    /// Changed keys applied live.
    pub live: Vec<&'static str>,
    /// Changed keys that need a restart.
    pub restart: Vec<&'static str>,
    /// Static definitions written.
    pub applied: Applied,
    /// Endpoints disabled by the policy: `(app/endpoint, reason)`.
    pub disabled: Vec<(String, String)>,
}

/// Disables every enabled endpoint that breaks `policy`, apps and endpoints in creation order
/// (so the count rule disables the newest ones), with the broken rules as the reason. Returns
/// `(app/endpoint, reason)` of each.
pub fn recheck(svc: &Service, policy: &EndpointPolicy) -> storage::Result<Vec<(String, String)>> {
    let state = svc.store.state();
    let now = svc.now_ms();
    let mut disabled = Vec::new();
    let mut after = None;
    loop {
        let page = state.list_apps(after, PAGE, false)?;
        for app in &page.items {
            let label = app.uid.as_deref().unwrap_or(&app.id);
            // The operator endpoint of `[operational_webhooks]` is hookd's own, not a tenant's.
            if label == crate::model::OPERATIONAL_APP_UID {
                continue;
            }
            for (rank, mut ep) in state.app_endpoints(app.key)?.into_iter().enumerate() {
                if ep.disabled {
                    continue;
                }
                let broken = crate::policy::violations(policy, &ep, Some(rank));
                if broken.is_empty() {
                    continue;
                }
                let reason = broken
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                ep.disabled = true;
                ep.disabled_reason = Some(reason.clone());
                ep.updated_ms = now;
                state.put_endpoint(&ep)?;
                // As when the engine disables one: its open deliveries fail (recoverable).
                state.fail_open_deliveries(ep.key, now)?;
                state.audit(&AuditRecord {
                    ts_ms: now,
                    actor: statics::ACTOR.into(),
                    action: "endpoint.disable".into(),
                    target: ep.id.clone(),
                })?;
                svc.metrics
                    .endpoints_disabled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let uid = ep.uid.as_deref().unwrap_or(&ep.id);
                disabled.push((format!("{label}/{uid}"), reason));
            }
        }
        match page.items.last() {
            Some(last) if !page.done => after = Some(last.key),
            _ => break,
        }
    }
    if !disabled.is_empty() {
        svc.endpoints_changed();
        state.flush()?;
    }
    Ok(disabled)
}

/// Writes the static definitions and checks every endpoint against the policy, logging what
/// changed. At start, before the shards serve, and on every reload.
fn apply_definitions(ingest: &Ingest) -> storage::Result<(Applied, Vec<(String, String)>)> {
    let svc = &*ingest.svc;
    let config = svc.config();
    let applied = statics::apply(ingest, &config)?;
    for what in &applied.created {
        tracing::info!("{what}: created from the config file");
    }
    for what in &applied.updated {
        tracing::info!("{what}: updated from the config file");
    }
    for what in &applied.released {
        tracing::info!(
            "{what}: no longer in the config file; kept, no longer config-owned (the API may delete it)"
        );
    }
    let disabled = recheck(svc, &config.endpoint_policy)?;
    for (what, reason) in &disabled {
        tracing::warn!(endpoint = %what, %reason, "endpoint disabled: it breaks the endpoint policy");
    }
    Ok((applied, disabled))
}

/// At start: the static definitions and the policy recheck.
pub fn apply_at_start(ingest: &Ingest) -> storage::Result<()> {
    apply_definitions(ingest).map(|_| ())
}

/// Re-reads and installs the config at `path` (see the module doc). On an error nothing was
/// installed; an error while writing the definitions is logged and the config stays installed.
pub fn reload(ingest: &Ingest, path: &Path) -> Result<Reloaded, ReloadError> {
    let svc = &*ingest.svc;
    let new = crate::config::load(path)?;
    for w in crate::preflight::warnings(&new) {
        tracing::warn!("config warning: {w}");
    }
    let old = svc.config();
    let plan = plan_reload(&old, &new);
    let auth = svc.auth_for(&plan.config.auth.tokens)?;
    for key in &plan.restart {
        tracing::warn!(
            key,
            "config reload: {key} changed; it needs a restart, the old value keeps running"
        );
    }
    let level = plan.config.log.level;
    let level_changed = plan.live.contains(&"log.level");
    svc.install(plan.config, auth);
    if level_changed {
        if let Err(e) = crate::logging::set_level(level) {
            tracing::error!(error = %e, "config reload: log.level not changed");
        }
    }
    let (applied, disabled) = match apply_definitions(ingest) {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "config reload: writing the static definitions failed; the next reload or start tries again");
            (Applied::default(), Vec::new())
        }
    };
    Ok(Reloaded {
        live: plan.live,
        restart: plan.restart,
        applied,
        disabled,
    })
}

/// The SIGHUP handler of the main thread: [`reload`] the file hookd started with (`None`: the
/// embedded default config, which cannot change), and log the outcome in one line that starts
/// with `config reloaded` or `config reload refused`.
pub fn on_sighup(ingest: &Ingest, path: Option<&Path>) {
    let Some(path) = path else {
        tracing::warn!("config reload refused: hookd runs with the embedded default config (no --config), which cannot change");
        return;
    };
    tracing::info!(file = %path.display(), "SIGHUP: reloading the config");
    match reload(ingest, path) {
        Ok(r) => tracing::info!("config reloaded: {}", summary(&r)),
        Err(ReloadError::Load(LoadError::Invalid { errors, .. })) => {
            for ConfigError { path: key, message } in &errors.errors {
                if key.is_empty() {
                    tracing::error!("config problem: {message}");
                } else {
                    tracing::error!(key = %key, "config problem: {key}: {message}");
                }
            }
            let n = errors.errors.len();
            tracing::error!(
                file = %path.display(),
                problems = n,
                "config reload refused: {n} problem{}; the running config is unchanged",
                if n == 1 { "" } else { "s" }
            );
        }
        Err(e) => {
            let source = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            tracing::error!("config reload refused: {e}{source}; the running config is unchanged");
        }
    }
}

/// `applied live: a, b; needs a restart (old value kept): c; definitions: 1 created, ...`.
fn summary(r: &Reloaded) -> String {
    let mut parts = Vec::new();
    if !r.live.is_empty() {
        parts.push(format!("applied live: {}", r.live.join(", ")));
    }
    if !r.restart.is_empty() {
        parts.push(format!(
            "needs a restart (old value kept): {}",
            r.restart.join(", ")
        ));
    }
    let a = &r.applied;
    if !a.is_empty() {
        parts.push(format!(
            "definitions: {} created, {} updated, {} no longer config-owned",
            a.created.len(),
            a.updated.len(),
            a.released.len()
        ));
    }
    if !r.disabled.is_empty() {
        parts.push(format!(
            "{} endpoint(s) disabled by the endpoint policy",
            r.disabled.len()
        ));
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}
